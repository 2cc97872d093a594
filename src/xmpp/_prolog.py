"""The prolog check shared by both engines (RFC 6120 section 11).

Before a stream's root element only an optional byte order mark, an optional
XML declaration and white space may appear.  Everything else that XML allows
there (a DOCTYPE with its entity declarations, comments, processing
instructions) is refused here, before a single byte of it reaches libexpat,
so that no entity is ever declared and so never expanded.

This runs once per stream on a few hundred bytes, so plain Python is fine for
the compiled engine as well.
"""

from __future__ import annotations

import re

from xmpp.stream import Condition, StreamError

#: The most bytes a prolog may take before the root element starts.
MAX_PROLOG_BYTES = 4096

_WS = b" \t\r\n"
#: A markup declaration (DOCTYPE, ENTITY, ELEMENT, ATTLIST, NOTATION) opening.
DECL = re.compile(rb"<![A-Z]")
_ENCODING = re.compile(rb"""\sencoding\s*=\s*(?:'([^']*)'|"([^"]*)")""")


def scan_prolog(buf: bytes) -> int:
    """Check the bytes before the root element.

    Returns the offset of the ``<`` that opens the root element, or ``-1``
    when more bytes are needed to decide.  Raises :class:`StreamError` with
    ``restricted-xml`` for a DOCTYPE, comment or processing instruction,
    ``unsupported-encoding`` for a declared encoding other than UTF-8 or a
    UTF-16 byte order mark, and ``not-well-formed`` for anything else that
    cannot start an XML document, or a prolog over :data:`MAX_PROLOG_BYTES`.

    >>> scan_prolog(b"<?xml version='1.0'?>\\n<stream:stream")
    22
    >>> scan_prolog(b"<?xml version")
    -1
    """
    n = len(buf)
    i = 0
    if n < 2 and buf in (b"\xfe", b"\xff"):
        return -1
    if buf[:2] in (b"\xfe\xff", b"\xff\xfe"):
        raise StreamError(Condition.UNSUPPORTED_ENCODING, "UTF-16 is not allowed; streams are UTF-8")
    if buf[:3] == b"\xef\xbb\xbf":
        i = 3
    elif n < 3 and b"\xef\xbb\xbf".startswith(buf):
        return -1
    # The XML declaration, only at the very start.
    rest = buf[i : i + 6]
    if len(rest) < 6 and b"<?xml ".startswith(rest) and rest:
        return _need_more(n)
    if len(rest) == 6 and rest[:5] == b"<?xml" and rest[5] in _WS:
        end = buf.find(b"?>", i)
        if end < 0:
            return _need_more(n)
        decl = buf[i:end]
        m = _ENCODING.search(decl)
        if m is not None:
            enc = (m.group(1) or m.group(2) or b"").decode("ascii", "replace")
            if enc.lower() not in ("utf-8", "utf8"):
                raise StreamError(
                    Condition.UNSUPPORTED_ENCODING,
                    f"declared encoding {enc!r}; streams are UTF-8",
                )
        i = end + 2
    while i < n and buf[i] in _WS:
        i += 1
    if i + 1 >= n:
        if i < n and buf[i] != 0x3C:  # '<'
            raise StreamError(Condition.NOT_WELL_FORMED, "content before the root element")
        return _need_more(n)
    if buf[i] != 0x3C:
        raise StreamError(Condition.NOT_WELL_FORMED, "content before the root element")
    nxt = buf[i + 1]
    if nxt == 0x21:  # '!'
        what = "comment" if buf[i + 2 : i + 4] == b"--" else "DOCTYPE or markup declaration"
        raise StreamError(Condition.RESTRICTED_XML, f"{what} is not allowed in XMPP")
    if nxt == 0x3F:  # '?'
        raise StreamError(Condition.RESTRICTED_XML, "processing instruction is not allowed in XMPP")
    return i


def _need_more(n: int) -> int:
    if n > MAX_PROLOG_BYTES:
        raise StreamError(Condition.POLICY_VIOLATION, f"prolog longer than {MAX_PROLOG_BYTES} bytes")
    return -1
