"""The input checks shared by both engines: the prolog and namespace declarations.

The prolog (RFC 6120 section 11):

Before a stream's root element only an optional byte order mark, an optional
XML declaration and white space may appear.  Everything else that XML allows
there (a DOCTYPE with its entity declarations, comments, processing
instructions) is refused here, before a single byte of it reaches libexpat,
so that no entity is ever declared and so never expanded.

This runs once per stream on a few hundred bytes, so plain Python is fine for
the compiled engine as well.

Namespace declarations: :func:`ns_decl_error` says which ones are refused.
The engines call it only for the rare declaration that names a reserved
prefix or namespace name, so it is off the hot path too.
"""

from __future__ import annotations

import re

from xmpp.stream import Condition, StreamError

#: The namespace name the prefix ``xml`` is bound to (Namespaces in XML 1.0, section 3).
NS_XML = "http://www.w3.org/XML/1998/namespace"
#: The namespace name of the prefix ``xmlns``; no prefix may be bound to it.
NS_XMLNS = "http://www.w3.org/2000/xmlns/"
#: Namespace names for which a declaration must go through :func:`ns_decl_error`.
NS_SUSPECT_URIS = frozenset(("xmlns", NS_XMLNS, NS_XML))
#: Prefixes for which a declaration must go through :func:`ns_decl_error`.
NS_SUSPECT_PREFIXES = frozenset(("xml", "xmlns"))

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


def ns_decl_error(prefix: str, uri: str) -> str | None:
    """Say why declaring ``prefix`` (``""`` for the default) as ``uri`` is refused, or None.

    Namespaces in XML 1.0 (section 3) forbids declaring the prefix ``xmlns``,
    binding any prefix to ``http://www.w3.org/2000/xmlns/``, binding ``xml`` to
    anything but ``http://www.w3.org/XML/1998/namespace``, and binding another
    prefix (or the default namespace) to that name; libexpat refuses these
    itself, and this check holds whatever libexpat does.  The engine also
    refuses the namespace name ``xmlns``: an attribute in it would be the
    token ``Attr(Name("xmlns", local), value)``, which is how a namespace
    declaration is written in Go's form, so it would be re-sent as a
    declaration and lost.  A refused declaration is a ``not-well-formed``
    stream error; a declaration that passes here can be used freely.

    >>> ns_decl_error("p", "urn:example") is None
    True
    >>> ns_decl_error("a", "xmlns")
    "xmlns:a binds the namespace name 'xmlns', which is reserved for namespace declarations"
    """
    qname = f"xmlns:{prefix}" if prefix else "xmlns"
    if uri == "xmlns":
        return f"{qname} binds the namespace name 'xmlns', which is reserved for namespace declarations"
    if prefix == "xmlns":
        return "the prefix xmlns must not be declared"
    if uri == NS_XMLNS:
        return f"{qname} binds the reserved namespace name {NS_XMLNS}"
    if prefix == "xml" and uri != NS_XML:
        return f"the prefix xml must not be bound to any namespace name but {NS_XML}"
    if prefix != "xml" and uri == NS_XML:
        return f"{qname} binds {NS_XML}, which only the prefix xml may be bound to"
    return None
