"""Tokens, the streaming parser and encoder, and combinators over token readers.

This is the Python form of Go's encoding/xml tokens and mellium.im/xmlstream.
A *TokenReader* is any iterable of tokens (``StartElement``, ``EndElement``,
``CharData``); a *TokenWriter* has ``write_token(tok)`` and ``flush()``.

The engine behind the names is picked here, once: the compiled module
``xmpp._tokens`` when it loads, else the pure-Python twin
``xmpp._tokens_py``.  ``XMPP_NO_EXTENSIONS=1`` in the environment forces the
pure twin.  :data:`COMPILED` says which is in use.

>>> p = StreamParser()
>>> events = p.feed(b"<stream:stream xmlns='jabber:client' "
...                 b"xmlns:stream='http://etherx.jabber.org/streams'>"
...                 b"<message to='a@b'><body>hi</body></message>")
>>> [type(e).__name__ for e in events]
['StartElement', 'Element']
>>> events[1].get("to"), events[1].find("body").text
('a@b', 'hi')
"""

from __future__ import annotations

import os
import platform
from typing import TYPE_CHECKING

__all__ = [
    "COMPILED",
    "DEFAULT_MAX_DEPTH",
    "DEFAULT_MAX_STANZA_BYTES",
    "Attr",
    "CharData",
    "Element",
    "Encoder",
    "EndElement",
    "Event",
    "IQTable",
    "Name",
    "StartElement",
    "StreamParser",
    "Token",
]


def _want_compiled() -> bool:
    if os.environ.get("XMPP_NO_EXTENSIONS"):
        return False
    return platform.python_implementation() == "CPython"


if TYPE_CHECKING:
    from xmpp._tokens import (
        DEFAULT_MAX_DEPTH,
        DEFAULT_MAX_STANZA_BYTES,
        Attr,
        CharData,
        Element,
        Encoder,
        EndElement,
        Event,
        IQTable,
        Name,
        StartElement,
        StreamParser,
        Token,
    )

    #: True when the compiled engine is in use, False for the pure twin.
    COMPILED: bool
else:
    COMPILED = False
    if _want_compiled():
        try:
            from xmpp._tokens import (
                DEFAULT_MAX_DEPTH,
                DEFAULT_MAX_STANZA_BYTES,
                Attr,
                CharData,
                Element,
                Encoder,
                EndElement,
                IQTable,
                Name,
                StartElement,
                StreamParser,
            )

            COMPILED = True
        except ImportError:  # no wheel for this platform: the pure twin serves
            pass
    if not COMPILED:
        from xmpp._tokens_py import (
            DEFAULT_MAX_DEPTH,
            DEFAULT_MAX_STANZA_BYTES,
            Attr,
            CharData,
            Element,
            Encoder,
            EndElement,
            IQTable,
            Name,
            StartElement,
            StreamParser,
        )
    Token = StartElement | EndElement | CharData
    Event = StartElement | Element | EndElement
