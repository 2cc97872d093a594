"""Message Delivery Receipts (XEP-0184): did the message reach the recipient's client?

A sender puts ``<request xmlns='urn:xmpp:receipts'/>`` in a message with an
``id``; the recipient's client answers with a message holding
``<received xmlns='urn:xmpp:receipts' id='...'/>``.

* :func:`send_with_receipt` sends a message with a request and waits for
  its receipt;
* :class:`Handler` (registered with :func:`handle`) answers requests and
  delivers receipts to the waiting senders;
* :func:`answer` answers one request from any message handler (useful when
  another handler takes the message first: the mux routes a message by its
  first registered child, so a ``<body/>`` handler may see a request before
  this one does).

A request in an ``error`` or ``groupchat`` message is never answered
(XEP-0184 sections 5.1 and 6), nor one in a message without an ``id`` or a
sender.  A receipt is accepted only from the address the message went to
(any resource of it when that was a bare JID).

>>> from xmpp.mux import ServeMux
>>> from xmpp.stream import NS_CLIENT
>>> ServeMux(NS_CLIENT, handle()).disco_features()
['urn:xmpp:receipts']

Sending (``session.serve`` must be running, with :func:`handle` on its mux)::

    receipt = await xmpp.receipts.send_with_receipt(
        session, Message(to=JID.parse("juliet@example.com/balcony"), type=MessageType.CHAT),
        body_tokens, timeout=30)
"""

from __future__ import annotations

import asyncio
import itertools
import weakref
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any

from xmpp.jid import JID
from xmpp.session import DEFAULT_IQ_TIMEOUT, SessionState
from xmpp.stanza import Message, MessageType, StanzaError, new_id
from xmpp.xmlstream import Attr, Element, Name, StartElement, Token

if TYPE_CHECKING:
    from xmpp.mux import ServeMux
    from xmpp.session import Session

__all__ = [
    "NS",
    "RECEIVED",
    "REQUEST",
    "Handler",
    "answer",
    "handle",
    "received",
    "received_id",
    "request",
    "requested",
    "send_with_receipt",
]

#: The namespace of XEP-0184 (also its disco feature).
NS = "urn:xmpp:receipts"
#: The name of the request element.
REQUEST = Name(NS, "request")
#: The name of the receipt element.
RECEIVED = Name(NS, "received")
_REQUEST_START = StartElement(REQUEST)
_NO_ANSWER = (MessageType.ERROR, MessageType.GROUPCHAT)

# Per session: message id -> (the address it went to, the future of its receipt).
_Pending = dict[str, tuple["JID | None", "asyncio.Future[Element]"]]
_pending: weakref.WeakKeyDictionary[Any, _Pending] = weakref.WeakKeyDictionary()


def request() -> Iterator[Token]:
    """Yield the tokens of ``<request xmlns='urn:xmpp:receipts'/>``."""
    yield _REQUEST_START
    yield _REQUEST_START.end()


def received(id: str) -> Iterator[Token]:
    """Yield the tokens of the receipt for the message ``id``."""
    s = StartElement(RECEIVED, (Attr(Name("", "id"), id),))
    yield s
    yield s.end()


def requested(message: Any) -> bool:
    """Whether a received message element asks for a receipt."""
    return message.find("request", NS) is not None


def received_id(message: Any) -> str | None:
    """The id a received message acknowledges (its ``<received/>``), or ``None``."""
    el = message.find("received", NS)
    if el is None:
        return None
    return el.get("id") or None


def _sender(session: Session, msg: Message) -> JID | None:
    """Who sent ``msg``: its ``from``, or where a stanza without one comes from
    (RFC 6120 8.1.2.1: the connected client on a server's stream; the
    user's own account on a client's stream)."""
    if msg.from_ is not None:
        return msg.from_
    if session.state & SessionState.RECEIVED:
        return session.remote_addr
    local = session.local_addr
    return None if local is None else local.bare()


def _matches(to: JID | None, frm: JID | None) -> bool:
    if to is None:
        return True  # sent without a to: to our own account, answered by the server
    if frm is None:
        return False
    if to.resource is None:
        return frm.bare() == to
    return frm == to


async def send_with_receipt(
    session: Session,
    msg: Message,
    payload: Iterable[Token] | None = None,
    *,
    timeout: float | None = DEFAULT_IQ_TIMEOUT,
) -> Element:
    """Send ``msg`` around ``payload`` with a receipt request, and return the receipt message.

    The message gets an id if it has none.  Waits at most ``timeout``
    seconds (``TimeoutError`` then; the message may still have arrived).
    The session's mux must run :class:`Handler` (:func:`handle`), which
    completes the wait; an error bounced for the message (carrying the
    request, as servers return the original payload) raises its
    :class:`~xmpp.stanza.StanzaError`.  Only a receipt from ``msg.to``
    counts.  ``ValueError`` for a groupchat message (XEP-0184 section 5.1:
    do not request receipts from a room).
    """
    if msg.type is MessageType.GROUPCHAT:
        raise ValueError("receipts are not requested in groupchat messages")
    if not msg.id:
        msg.id = new_id()
    loop = asyncio.get_running_loop()
    waiter: asyncio.Future[Element] = loop.create_future()
    table = _pending.setdefault(session, {})
    if msg.id in table:
        raise ValueError(f"a receipt for message id {msg.id!r} is already awaited")
    table[msg.id] = (msg.to, waiter)
    try:
        await session.send_message(msg, itertools.chain(payload or (), request()))
        if timeout is None:
            return await waiter
        try:
            return await asyncio.wait_for(asyncio.shield(waiter), timeout)
        except asyncio.TimeoutError:
            raise TimeoutError(f"no receipt for message {msg.id!r} within {timeout} s") from None
    finally:
        if table.get(msg.id, (None, None))[1] is waiter:
            del table[msg.id]
        if not waiter.done():
            waiter.cancel()


async def answer(msg: Message, element: Element, session: Session) -> bool:
    """Send the receipt that the received message asks for, if it may be answered.

    Returns whether a receipt was sent: only for a message that requests one,
    has an ``id`` and a known sender (a stanza without ``from`` comes from
    the peer of the stream, RFC 6120 8.1.2.1), and is neither ``error`` nor ``groupchat``.
    """
    if msg.type in _NO_ANSWER or not msg.id or not requested(element):
        return False
    to = _sender(session, msg)
    if to is None:
        return False
    await session.send_message(Message(to=to), received(msg.id))
    return True


def _settle(session: Session, msg: Message, element: Element) -> None:
    table = _pending.get(session)
    if not table:
        return
    if msg.type is MessageType.ERROR:
        entry = table.get(msg.id)
        if entry is not None and _matches(entry[0], _sender(session, msg)) and not entry[1].done():
            err = StanzaError.from_stanza(element)
            if err is not None:
                entry[1].set_exception(err)
        return
    rid = received_id(element)
    if rid is None:
        return
    entry = table.get(rid)
    if entry is not None and _matches(entry[0], _sender(session, msg)) and not entry[1].done():
        entry[1].set_result(element)


class Handler:
    """Answers receipt requests and hands receipts to :func:`send_with_receipt`.

    ``should_answer`` decides which requests are answered (all that may be,
    by default); XEP-0184 section 8 suggests answering only contacts with a
    presence subscription, since a receipt tells that a client is online.
    ``on_receipt`` is called with each receipt message and the id it
    acknowledges, awaited or not.
    """

    #: The disco feature this handler implements (read by the mux).
    disco_features = (NS,)

    def __init__(
        self,
        should_answer: Callable[[Message], bool] | None = None,
        on_receipt: Callable[[Message, str], object] | None = None,
    ) -> None:
        """Make a handler; see the class documentation."""
        self.should_answer = should_answer
        self.on_receipt = on_receipt

    async def handle_message(self, msg: Message, element: Element, session: Session) -> None:
        """Handle one message with a request or a receipt (called by the mux)."""
        _settle(session, msg, element)
        if self.on_receipt is not None and msg.type is not MessageType.ERROR:
            rid = received_id(element)
            if rid is not None:
                self.on_receipt(msg, rid)
        if self.should_answer is not None and not self.should_answer(msg):
            return
        await answer(msg, element, session)


def handle(handler: Handler | None = None) -> Callable[[ServeMux], None]:
    """A :class:`~xmpp.mux.ServeMux` option routing messages with a receipt
    request or a receipt (of any type) to ``handler`` (a new :class:`Handler`
    if ``None``)."""
    h = handler if handler is not None else Handler()

    def apply(mux: ServeMux) -> None:
        mux.message(None, REQUEST, h)
        mux.message(None, RECEIVED, h)

    return apply
