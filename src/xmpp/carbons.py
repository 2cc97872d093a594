"""Message carbons (XEP-0280): copies of one's own chats on every resource.

:func:`enable` asks the server to copy to this resource the messages that
other resources of the account send and receive; :func:`disable` stops it.
A copy arrives as a message from the account's bare JID holding
``<received/>`` or ``<sent/>`` around a forwarded message (XEP-0297).
:func:`unwrap` reads one and returns the direction and the inner message,
**only** when the copy comes from the account itself: anyone can send a
message that looks like a carbon, and believing it would let them put
words in the user's mouth (XEP-0280 section 11).  :class:`Handler` does
the unwrapping for a :class:`~xmpp.mux.ServeMux`; :func:`private` marks
a message that must not be copied.

>>> async def main(session):                          # doctest: +SKIP
...     await enable(session)
...     def copied(direction, message, session):
...         print(direction, message.get("to"), message.find("body").text)
...     mux = ServeMux(session.stanza_ns, handle(Handler(copied)))
...     await session.serve(mux)
"""

from __future__ import annotations

import enum
import inspect
from collections.abc import Awaitable, Callable, Iterator

from xmpp.jid import JID, JIDError
from xmpp.mux import ServeMux
from xmpp.session import Session
from xmpp.stanza import IQ, IQType, Message
from xmpp.xmlstream import Element, Name, StartElement, Token

__all__ = [
    "NS",
    "NS_FORWARD",
    "NS_HINTS",
    "Direction",
    "Handler",
    "disable",
    "enable",
    "handle",
    "private",
    "unwrap",
]

#: The namespace of message carbons.
NS = "urn:xmpp:carbons:2"
#: The namespace of stanza forwarding (XEP-0297) that carries the copy.
NS_FORWARD = "urn:xmpp:forward:0"
#: The namespace of message processing hints (XEP-0334).
NS_HINTS = "urn:xmpp:hints"

_ENABLE = Name(NS, "enable")
_DISABLE = Name(NS, "disable")
_PRIVATE = Name(NS, "private")
_NO_COPY = Name(NS_HINTS, "no-copy")


class Direction(str, enum.Enum):
    """Which way the copied message went."""

    #: Another resource of the account received it.
    RECEIVED = "received"
    #: Another resource of the account sent it.
    SENT = "sent"

    def __str__(self) -> str:
        """Return the element name, ``received`` or ``sent``."""
        return self.value


async def _toggle(session: Session, name: Name, timeout: float | None) -> None:
    start = StartElement(name)
    await session.send_iq(IQ(type=IQType.SET), [start, start.end()], timeout=timeout)


async def enable(session: Session, *, timeout: float | None = 30.0) -> None:
    """Enable carbons for this resource (an error reply raises its StanzaError)."""
    await _toggle(session, _ENABLE, timeout)


async def disable(session: Session, *, timeout: float | None = 30.0) -> None:
    """Disable carbons for this resource."""
    await _toggle(session, _DISABLE, timeout)


def private() -> Iterator[Token]:
    """Yield the tokens that keep a message from being copied:
    ``<private xmlns='urn:xmpp:carbons:2'/>`` and the ``no-copy`` hint.

    Add them to the payload of the message being sent.
    """
    for name in (_PRIVATE, _NO_COPY):
        start = StartElement(name)
        yield start
        yield start.end()


def unwrap(element: Element, session: Session) -> tuple[Direction, Element] | None:
    """Read a carbon copy: ``(direction, forwarded message element)``, or ``None``.

    ``None`` when ``element`` is not a carbon (no ``<received/>`` or
    ``<sent/>`` with a forwarded message in it) and when it is not from the
    account's own bare JID (``session.local_addr`` without its resource):
    a carbon from anyone else, or without a ``from``, is a spoof and must be
    ignored.  The forwarded message is returned as received (its own
    ``from`` and ``to`` tell the conversation).
    """
    local = session.local_addr
    frm = element.get("from")
    if local is None or frm is None:
        return None
    bare = local.bare()
    if frm != str(bare):
        try:
            if JID.parse(frm) != bare:
                return None
        except JIDError:
            return None
    for child in element.children():
        name = child.name
        if name.space != NS or name.local not in ("received", "sent"):
            continue
        fwd = child.find("forwarded", NS_FORWARD)
        if fwd is None:
            return None
        for inner in fwd.children():
            if inner.name.local == "message" and inner.name.space == element.name.space:
                return Direction(name.local), inner
        return None
    return None


CarbonCallback = Callable[[Direction, Element, Session], "Awaitable[None] | None"]


class Handler:
    """Unwraps carbons for a :class:`~xmpp.mux.ServeMux` and calls
    ``callback(direction, message_element, session)`` (sync or async) for
    each genuine one.  Spoofed carbons are dropped and counted in
    ``ignored``.
    """

    #: Carbons is a server feature; the client declares nothing.
    disco_features: tuple[str, ...] = ()

    def __init__(self, callback: CarbonCallback) -> None:
        """Make a handler that passes every genuine carbon to ``callback``."""
        self.callback = callback
        #: How many carbon-looking messages were refused by the sender check.
        self.ignored = 0

    async def handle_message(self, msg: Message, el: Element, session: Session) -> None:
        """Handle one message holding ``<received/>`` or ``<sent/>``."""
        got = unwrap(el, session)
        if got is None:
            self.ignored += 1
            return
        r = self.callback(got[0], got[1], session)
        if r is not None and inspect.isawaitable(r):
            await r


def handle(handler: Handler) -> Callable[[ServeMux], None]:
    """The :class:`~xmpp.mux.ServeMux` option routing messages with
    ``<received/>`` or ``<sent/>`` (any message type) to ``handler``."""

    def apply(mux: ServeMux) -> None:
        mux.message(None, Name(NS, "received"), handler)
        mux.message(None, Name(NS, "sent"), handler)

    return apply
