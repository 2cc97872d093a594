"""xmpp: the XMPP building block for Python.

A compiled streaming engine (:mod:`xmpp.xmlstream`), value types for
addresses, stanzas and streams, and, built on them, sessions, a multiplexer
and extensions.  See the README for the module map.

The names most programs need are re-exported here and imported on first
use, so ``import xmpp`` stays cheap:

>>> import xmpp
>>> xmpp.JID.parse("juliet@example.com/balcony").bare()
JID('juliet@example.com')
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0.dev0"

_EXPORTS = {
    "JID": "xmpp.jid",
    "JIDError": "xmpp.jid",
    "IQ": "xmpp.stanza",
    "IQType": "xmpp.stanza",
    "Message": "xmpp.stanza",
    "MessageType": "xmpp.stanza",
    "Presence": "xmpp.stanza",
    "PresenceType": "xmpp.stanza",
    "StanzaError": "xmpp.stanza",
    "StreamError": "xmpp.stream",
    "Session": "xmpp.session",
    "SessionClosedError": "xmpp.session",
    "SessionState": "xmpp.session",
    "new_session": "xmpp.session",
    "receive_session": "xmpp.session",
    "StreamConfig": "xmpp.negotiator",
    "StreamFeature": "xmpp.negotiator",
    "new_negotiator": "xmpp.negotiator",
    "ServeMux": "xmpp.mux",
    "SASLError": "xmpp.sasl",
    "dial_client_session": "xmpp.client",
    "receive_client_session": "xmpp.client",
    "dial_server_session": "xmpp.client",
}

__all__ = ["__version__", *sorted(_EXPORTS)]

if TYPE_CHECKING:
    from xmpp.client import dial_client_session, dial_server_session, receive_client_session
    from xmpp.jid import JID, JIDError
    from xmpp.mux import ServeMux
    from xmpp.negotiator import StreamConfig, StreamFeature, new_negotiator
    from xmpp.sasl import SASLError
    from xmpp.session import Session, SessionClosedError, SessionState, new_session, receive_session
    from xmpp.stanza import IQ, IQType, Message, MessageType, Presence, PresenceType, StanzaError
    from xmpp.stream import StreamError


def __getattr__(name: str) -> Any:
    mod = _EXPORTS.get(name)
    if mod is None:
        raise AttributeError(f"module 'xmpp' has no attribute {name!r}")
    value = getattr(importlib.import_module(mod), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
