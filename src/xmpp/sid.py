"""Unique and Stable Stanza IDs (XEP-0359): ids that survive servers and archives.

* ``<origin-id xmlns='urn:xmpp:sid:0' id='...'/>`` is put in a message by its
  sender, and kept by every server on the way: the sender can recognise its
  own message coming back (a carbon, an archive, a MUC reflection).
* ``<stanza-id xmlns='urn:xmpp:sid:0' id='...' by='...'/>`` is added by
  an entity that stores the message (an archive, a room), ``by`` naming it.

Anyone can write a ``stanza-id`` into a message they send: believe one only
if ``by`` is an entity you trust to have stamped it and that entity
advertises ``urn:xmpp:sid:0`` (XEP-0359 section 6), which
:func:`stanza_id` helps with.

>>> from xmpp.stanza import Message
>>> from xmpp.xmlstream import Element
>>> oid, toks = with_origin_id(Message(id="m1"))
>>> el = Element.from_tokens(toks)
>>> oid, origin_id(el)
('m1', 'm1')
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

from xmpp.jid import JID, JIDError
from xmpp.stanza import Message, new_id
from xmpp.stream import NS_CLIENT
from xmpp.xmlstream import Attr, Name, StartElement, Token

if TYPE_CHECKING:
    from xmpp.session import Session

__all__ = [
    "NS",
    "Handler",
    "handle",
    "ORIGIN_ID",
    "STANZA_ID",
    "OriginID",
    "StanzaID",
    "add_origin_id",
    "origin_id",
    "send_message",
    "stanza_id",
    "stanza_ids",
    "with_origin_id",
]


def _is(name: Any, want: Name) -> bool:
    """Whether ``name`` (of either engine) is ``want``."""
    return bool(name.local == want.local and name.space == want.space)

#: The namespace of XEP-0359 (also its disco feature).
NS = "urn:xmpp:sid:0"
#: The names of the two elements.
ORIGIN_ID = Name(NS, "origin-id")
STANZA_ID = Name(NS, "stanza-id")
_ID = Name("", "id")
_BY = Name("", "by")


@dataclasses.dataclass(frozen=True)
class OriginID:
    """An ``<origin-id/>``: the id its sender gave the message."""

    id: str

    def tokens(self) -> Iterator[Token]:
        """Yield the tokens of the ``<origin-id/>`` element."""
        s = StartElement(ORIGIN_ID, (Attr(_ID, self.id),))
        yield s
        yield s.end()

    @classmethod
    def from_element(cls, el: Any) -> OriginID:
        """Read an ``<origin-id/>``; ``ValueError`` if it is not one or has no ``id``."""
        if not _is(el.name, ORIGIN_ID):
            raise ValueError(f"not an origin-id: {el.name!r}")
        v = el.get("id")
        if not v:
            raise ValueError("an origin-id needs an id")
        return cls(v)


@dataclasses.dataclass(frozen=True)
class StanzaID:
    """A ``<stanza-id/>``: the ``id`` the entity ``by`` gave the message."""

    id: str
    by: JID

    def tokens(self) -> Iterator[Token]:
        """Yield the tokens of the ``<stanza-id/>`` element."""
        s = StartElement(STANZA_ID, (Attr(_ID, self.id), Attr(_BY, str(self.by))))
        yield s
        yield s.end()

    @classmethod
    def from_element(cls, el: Any) -> StanzaID:
        """Read a ``<stanza-id/>``; ``ValueError`` if it is not one or lacks a
        well-formed ``id`` or ``by``."""
        if not _is(el.name, STANZA_ID):
            raise ValueError(f"not a stanza-id: {el.name!r}")
        v = el.get("id")
        by = el.get("by")
        if not v or not by:
            raise ValueError("a stanza-id needs an id and a by")
        try:
            return cls(v, JID.parse(by))
        except JIDError as exc:
            raise ValueError(f"malformed stanza-id by {by!r}: {exc}") from None


def origin_id(message: Any) -> str | None:
    """The origin id of a received message element, or ``None``."""
    for child in message.children():
        if _is(child.name, ORIGIN_ID):
            v = child.get("id")
            return v or None
    return None


def stanza_ids(message: Any) -> list[StanzaID]:
    """Every well-formed ``<stanza-id/>`` of a received message element, in order."""
    out: list[StanzaID] = []
    for child in message.children():
        if _is(child.name, STANZA_ID):
            try:
                out.append(StanzaID.from_element(child))
            except ValueError:
                continue
    return out


def stanza_id(message: Any, by: JID | str) -> str | None:
    """The id that the trusted entity ``by`` gave a received message, or ``None``.

    Only a ``<stanza-id/>`` whose ``by`` is exactly ``by`` counts; the
    caller must also know that ``by`` supports XEP-0359 (its disco#info
    lists :data:`NS`), or anyone could have written the element.
    """
    want = by if isinstance(by, JID) else JID.parse(by)
    for sid in stanza_ids(message):
        if sid.by == want:
            return sid.id
    return None


def add_origin_id(message: Iterable[Token], id: str) -> Iterator[Token]:
    """Yield the tokens of ``message`` (one whole stanza) with an
    ``<origin-id/>`` of ``id`` as its first child."""
    it = iter(message)
    first = next(it, None)
    if first is None:
        return
    yield first
    yield from OriginID(id).tokens()
    yield from it


def with_origin_id(
    msg: Message, payload: Iterable[Token] | None = None, id: str | None = None, ns: str = NS_CLIENT
) -> tuple[str, Iterator[Token]]:
    """The origin id and the tokens of ``msg`` around an ``<origin-id/>`` and ``payload``.

    The origin id is ``id`` if given, else the message's id; a message
    without an id gets a fresh one (:func:`xmpp.stanza.new_id`) first.
    """
    if not msg.id:
        msg.id = new_id()
    oid = id if id is not None else msg.id

    def inner() -> Iterator[Token]:
        yield from OriginID(oid).tokens()
        if payload is not None:
            yield from payload

    return oid, msg.wrap(inner(), ns)


async def send_message(
    session: Session, msg: Message, payload: Iterable[Token] | None = None, *, id: str | None = None
) -> str:
    """Send ``msg`` around ``payload`` with an ``<origin-id/>``; return the origin id
    (see :func:`with_origin_id`)."""
    oid, toks = with_origin_id(msg, payload, id, session.stanza_ns)
    await session.send(toks)
    return oid


class Handler:
    """Advertises ``urn:xmpp:sid:0`` in disco#info (XEP-0359 section 6: an
    entity that stamps or keeps stanza ids says so).  Nothing is routed to
    it: ids ride inside messages that other handlers take; read them with
    :func:`origin_id` and :func:`stanza_id`."""

    disco_features = (NS,)


def handle() -> Any:
    """A :class:`xmpp.mux.ServeMux` option advertising XEP-0359.

    >>> from xmpp.mux import ServeMux
    >>> ServeMux("jabber:client", handle()).disco_features()
    ['urn:xmpp:sid:0']
    """
    from xmpp.mux import advertise

    return advertise(Handler())
