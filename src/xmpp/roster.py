"""The roster (RFC 6121 section 2) and presence subscriptions (section 3).

Plain async functions over a session: :func:`fetch` the roster (optionally
versioned), :func:`set` an item, :func:`delete` one; :func:`subscribe`,
:func:`unsubscribe`, :func:`approve` and :func:`deny` send the presence
types of a subscription.  A :class:`Handler` takes roster pushes from the
server, answers them and hands each to a callback; :func:`handle` is its
:class:`~xmpp.mux.ServeMux` option.  :func:`versioning` is the stream
feature that reads (or, on a server, lists) roster versioning support.

A push is only accepted from the account itself (no ``from``, or the
account's bare JID, RFC 6121 section 2.1.6); a push from anyone else is a
spoof and is ignored: no callback, no answer.

>>> async def main(session):                        # doctest: +SKIP
...     roster = await fetch(session)
...     for item in roster:
...         print(item.jid, item.subscription, item.groups)
...     await set(session, Item(JID.parse("romeo@example.net"), name="Romeo", groups=("Friends",)))
...     await subscribe(session, JID.parse("romeo@example.net"))
"""

from __future__ import annotations

import dataclasses
import enum
import inspect
from collections.abc import Awaitable, Callable, Iterable, Iterator
from typing import Any

from xmpp.jid import JID, JIDError
from xmpp.mux import ServeMux
from xmpp.negotiator import StreamFeature
from xmpp.session import Session
from xmpp.stanza import IQ, Condition, ErrorType, IQType, Presence, PresenceType, StanzaError
from xmpp.xmlstream import Attr, CharData, Element, Name, StartElement, Token

__all__ = [
    "NS",
    "NS_VER",
    "Handler",
    "Item",
    "Push",
    "Roster",
    "Subscription",
    "approve",
    "delete",
    "deny",
    "fetch",
    "handle",
    "is_from_account",
    "set",
    "subscribe",
    "unsubscribe",
    "versioning",
    "versioning_supported",
]

#: The namespace of the roster.
NS = "jabber:iq:roster"
#: The namespace of the roster versioning stream feature.
NS_VER = "urn:xmpp:features:rosterver"

_QUERY = Name(NS, "query")
_ITEM = Name(NS, "item")
_GROUP = Name(NS, "group")
_VER_FEATURE = Name(NS_VER, "ver")



def _is(el: Element, local: str) -> bool:
    """Whether ``el`` is ``local`` in this module's namespace (names of either engine)."""
    name = el.name
    return name.local == local and name.space == NS

class Subscription(str, enum.Enum):
    """The ``subscription`` of a roster item (RFC 6121 section 2.1.2.5)."""

    #: Neither side is subscribed to the other's presence.
    NONE = "none"
    #: The user is subscribed to the contact's presence.
    TO = "to"
    #: The contact is subscribed to the user's presence.
    FROM = "from"
    #: Both are subscribed to each other's presence.
    BOTH = "both"
    #: In a push or a set: the item is removed.
    REMOVE = "remove"

    def __str__(self) -> str:
        """Return the attribute value, such as ``both``."""
        return self.value


_SUBS = {s.value: s for s in Subscription}


@dataclasses.dataclass(frozen=True)
class Item:
    """One roster item: the contact's bare ``jid``, a ``name`` (``""`` for
    none), the ``subscription`` state, ``ask`` (``"subscribe"`` while a
    subscription request is pending) and the ``groups`` it is in."""

    jid: JID
    name: str = ""
    subscription: Subscription = Subscription.NONE
    ask: str = ""
    groups: tuple[str, ...] = ()

    def tokens(self, *, for_set: bool = False) -> Iterator[Token]:
        """Yield the tokens of the ``<item/>`` element.

        With ``for_set`` (a roster set by the client) the ``subscription``
        is written only when it is ``remove`` and ``ask`` never, as RFC 6121
        section 2.1.2 requires.
        """
        attrs = [Attr(Name("", "jid"), str(self.jid))]
        if self.name:
            attrs.append(Attr(Name("", "name"), self.name))
        sub = Subscription(self.subscription)
        if not for_set or sub is Subscription.REMOVE:
            attrs.append(Attr(Name("", "subscription"), sub.value))
        if self.ask and not for_set:
            attrs.append(Attr(Name("", "ask"), self.ask))
        start = StartElement(_ITEM, attrs)
        yield start
        for g in self.groups:
            gs = StartElement(_GROUP)
            yield gs
            if g:
                yield CharData(g)
            yield gs.end()
        yield start.end()

    @classmethod
    def from_element(cls, el: Element) -> Item:
        """Read an ``<item/>`` element.

        Raises :class:`~xmpp.stanza.StanzaError` (``bad-request``) for a
        missing or malformed ``jid`` or an unknown ``subscription``.  A
        missing subscription is ``none``; groups repeated are kept once.
        """
        js = el.get("jid")
        if not js:
            raise StanzaError(ErrorType.MODIFY, Condition.BAD_REQUEST, "a roster item needs a jid")
        try:
            jid = JID.parse(js)
        except JIDError as exc:
            raise StanzaError(ErrorType.MODIFY, Condition.BAD_REQUEST, f"bad roster item jid: {exc}") from None
        sub_s = el.get("subscription") or "none"
        sub = _SUBS.get(sub_s)
        if sub is None:
            raise StanzaError(ErrorType.MODIFY, Condition.BAD_REQUEST, f"unknown subscription {sub_s!r}")
        groups: list[str] = []
        for child in el.children():
            if _is(child, "group"):
                g = child.text
                if g not in groups:
                    groups.append(g)
        return cls(jid, el.get("name") or "", sub, el.get("ask") or "", tuple(groups))


@dataclasses.dataclass
class Roster:
    """A fetched roster: its ``items`` and the version ``ver`` (``None`` if
    the server does not version rosters).

    ``unchanged`` is true when the server answered a versioned fetch with
    an empty result: the roster did not change since ``ver``, and
    ``items`` is empty (the changes, if any, arrive as pushes).  Iterate
    it, take its ``len``, or look an item up by bare JID with
    :meth:`get`.
    """

    items: list[Item] = dataclasses.field(default_factory=list)
    ver: str | None = None
    unchanged: bool = False
    _index: dict[JID, Item] | None = dataclasses.field(default=None, init=False, repr=False, compare=False)

    def __iter__(self) -> Iterator[Item]:
        """Iterate over the items in the order the server sent them."""
        return iter(self.items)

    def __len__(self) -> int:
        """Return the number of items."""
        return len(self.items)

    def get(self, jid: JID | str) -> Item | None:
        """Return the item of ``jid`` (bare), or ``None`` (an index built once, on first use)."""
        if self._index is None:
            self._index = {i.jid: i for i in self.items}
        j = JID.parse(jid) if isinstance(jid, str) else jid
        return self._index.get(j.bare())


@dataclasses.dataclass(frozen=True)
class Push:
    """A roster push: the changed ``item`` (subscription ``remove`` when it
    was deleted), the new roster version ``ver`` if any, and the ``iq``."""

    item: Item
    ver: str | None
    iq: IQ


def _query(attrs: Iterable[Attr], items: Iterable[Item], *, for_set: bool) -> Iterator[Token]:
    start = StartElement(_QUERY, list(attrs))
    yield start
    for it in items:
        yield from it.tokens(for_set=for_set)
    yield start.end()


async def fetch(session: Session, ver: str | None = None, *, timeout: float | None = 30.0) -> Roster:
    """Fetch the roster (RFC 6121 section 2.2).

    ``ver`` asks for a versioned fetch (section 2.6): pass ``""`` to get
    the whole roster and its version, or the version held locally to get
    only what changed (only where :func:`versioning_supported` says the
    server offers it).  The items are read in one pass over the reply, so
    a roster of many thousands of items costs linear time.  An error reply
    raises its :class:`~xmpp.stanza.StanzaError`.
    """
    attrs = [] if ver is None else [Attr(Name("", "ver"), ver)]
    reply = await session.send_iq(IQ(type=IQType.GET), _query(attrs, (), for_set=False), timeout=timeout)
    q = reply.find("query", NS)
    if q is None:
        return Roster([], ver, unchanged=ver is not None)
    items = [Item.from_element(c) for c in q.children() if _is(c, "item")]
    return Roster(items, q.get("ver"))


async def set(session: Session, item: Item, *, timeout: float | None = 30.0) -> None:
    """Add or update ``item`` in the roster (RFC 6121 section 2.3).

    The ``subscription`` and ``ask`` of ``item`` are not sent (the server
    owns them).  The server answers, then pushes the change to every
    interested resource.  An error reply raises its
    :class:`~xmpp.stanza.StanzaError`.
    """
    item = dataclasses.replace(item, subscription=Subscription.NONE, ask="")
    await session.send_iq(IQ(type=IQType.SET), _query((), [item], for_set=True), timeout=timeout)


async def delete(session: Session, jid: JID | str, *, timeout: float | None = 30.0) -> None:
    """Remove the contact ``jid`` from the roster (RFC 6121 section 2.5).

    The server also cancels the subscriptions both ways.  Deleting an item
    that is not there raises ``item-not-found``.
    """
    j = JID.parse(jid) if isinstance(jid, str) else jid
    item = Item(j.bare(), subscription=Subscription.REMOVE)
    await session.send_iq(IQ(type=IQType.SET), _query((), [item], for_set=True), timeout=timeout)


async def _presence(session: Session, jid: JID | str, typ: PresenceType) -> None:
    j = JID.parse(jid) if isinstance(jid, str) else jid
    await session.send_presence(Presence(to=j.bare(), type=typ))


async def subscribe(session: Session, jid: JID | str) -> None:
    """Ask to subscribe to the presence of ``jid`` (a ``subscribe`` presence to its bare JID)."""
    await _presence(session, jid, PresenceType.SUBSCRIBE)


async def unsubscribe(session: Session, jid: JID | str) -> None:
    """End our subscription to the presence of ``jid`` (``unsubscribe``)."""
    await _presence(session, jid, PresenceType.UNSUBSCRIBE)


async def approve(session: Session, jid: JID | str) -> None:
    """Approve the subscription request of ``jid``, or pre-approve one (``subscribed``)."""
    await _presence(session, jid, PresenceType.SUBSCRIBED)


async def deny(session: Session, jid: JID | str) -> None:
    """Deny the subscription request of ``jid``, or cancel its subscription (``unsubscribed``)."""
    await _presence(session, jid, PresenceType.UNSUBSCRIBED)


def is_from_account(iq: IQ, session: Session) -> bool:
    """Whether ``iq`` comes from the session's own account (RFC 6121 section 2.1.6).

    True when it has no ``from``, or its ``from`` is the bare JID of the
    session's own address.  Pushes (roster, blocking) are only accepted
    from there; anything else is a spoofing attempt.
    """
    if iq.from_ is None:
        return True
    local = session.local_addr
    return local is not None and iq.from_ == local.bare()


PushCallback = Callable[[Push], "Awaitable[None] | None"]


class Handler:
    """Takes roster pushes: answers each with an empty result and calls
    ``callback(push)`` (sync or async) with a :class:`Push`.

    A push from anyone but the account (see :func:`is_from_account`) is
    ignored: no answer and no callback (``ignored`` counts them).  A push
    that does not hold exactly one valid item is answered ``bad-request``.

    >>> pushes = []
    >>> h = Handler(pushes.append)
    >>> mux = ServeMux("jabber:client", handle(h))
    """

    #: Roster pushes carry no disco feature of the client.
    disco_features: tuple[str, ...] = ()

    def __init__(self, callback: PushCallback) -> None:
        """Make a handler that passes every accepted push to ``callback``."""
        self.callback = callback
        #: How many pushes from other addresses were ignored.
        self.ignored = 0

    async def handle_iq(self, iq: IQ, el: Element, session: Session) -> None:
        """Handle one roster push (an IQ set with a ``<query/>``)."""
        if iq.type is not IQType.SET:
            return
        if not is_from_account(iq, session):
            self.ignored += 1
            session.mark_answered()  # ignored: not even an error goes back
            return
        q = el.find("query", NS)
        items = [] if q is None else [c for c in q.children() if _is(c, "item")]
        try:
            if len(items) != 1:
                raise StanzaError(
                    ErrorType.MODIFY, Condition.BAD_REQUEST, "a roster push holds exactly one item"
                )
            item = Item.from_element(items[0])
        except StanzaError as err:
            await session.send(iq.error(err, session.stanza_ns))
            return
        assert q is not None
        await session.send(iq.result(None, session.stanza_ns))
        r = self.callback(Push(item, q.get("ver"), iq))
        if r is not None and inspect.isawaitable(r):
            await r


def handle(handler: Handler) -> Callable[[ServeMux], None]:
    """The :class:`~xmpp.mux.ServeMux` option routing roster pushes to ``handler``."""

    def apply(mux: ServeMux) -> None:
        mux.iq(IQType.SET, _QUERY, handler)

    return apply


def _parse_ver(session: Session, el: Element) -> tuple[bool, Any]:
    return False, True


def _list_ver(session: Session) -> tuple[bool, list[Token]]:
    s = StartElement(_VER_FEATURE)
    return False, [s, s.end()]


def versioning(necessary: int | None = None) -> StreamFeature:
    """The roster versioning stream feature (``<ver xmlns='urn:xmpp:features:rosterver'/>``).

    It is informational: never negotiated.  On the initiating side it
    records the server's support in ``session.features`` (see
    :func:`versioning_supported`); on the receiving side it lists the
    feature once the session has the state bits ``necessary`` (by default
    :attr:`~xmpp.session.SessionState.AUTHN`: after authentication).
    """
    from xmpp.session import SessionState

    return StreamFeature(
        name=_VER_FEATURE,
        necessary=int(SessionState.AUTHN) if necessary is None else int(necessary),
        list=_list_ver,
        parse=_parse_ver,
    )


def versioning_supported(session: Session) -> bool:
    """Whether the server advertised roster versioning in its last stream features.

    Works whether or not :func:`versioning` was configured: an advertised
    feature nobody parsed is kept in ``session.features`` too.
    """
    return _VER_FEATURE in session.features
