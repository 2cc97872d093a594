"""Blocking command (XEP-0191): a simple block list kept by the server.

:func:`fetch` returns the blocked addresses, :func:`block` and
:func:`unblock` change the list, :func:`unblock_all` empties it.  The
server pushes every change, as an IQ set holding ``<block/>`` or
``<unblock/>``, to the account's resources that have fetched the list
(XEP-0191 section 3.3: call :func:`fetch` once to get pushes).
:class:`Handler` answers those, ignores any that do not come from the
account itself (the same check as roster pushes,
:func:`xmpp.roster.is_from_account`) and hands each to a callback.  :func:`handle` is its :class:`~xmpp.mux.ServeMux` option.

>>> async def main(session):                          # doctest: +SKIP
...     await block(session, "spammer@example.org")
...     print(await fetch(session))
...     await unblock_all(session)
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Awaitable, Callable, Iterable, Iterator

from xmpp.jid import JID, JIDError
from xmpp.mux import ServeMux
from xmpp.roster import is_from_account
from xmpp.session import Session
from xmpp.stanza import IQ, Condition, ErrorType, IQType, StanzaError
from xmpp.xmlstream import Attr, Element, Name, StartElement, Token

__all__ = [
    "NS",
    "Handler",
    "Push",
    "block",
    "fetch",
    "handle",
    "unblock",
    "unblock_all",
]

#: The namespace of the blocking command.
NS = "urn:xmpp:blocking"

_BLOCKLIST = Name(NS, "blocklist")
_BLOCK = Name(NS, "block")
_UNBLOCK = Name(NS, "unblock")
_ITEM = Name(NS, "item")


def _jids(el: Element) -> list[JID]:
    out: list[JID] = []
    for c in el.children():
        if c.name.local == "item" and c.name.space == NS:
            s = c.get("jid")
            if not s:
                raise StanzaError(ErrorType.MODIFY, Condition.BAD_REQUEST, "a blocking item needs a jid")
            try:
                out.append(JID.parse(s))
            except JIDError as exc:
                raise StanzaError(ErrorType.MODIFY, Condition.JID_MALFORMED, str(exc)) from None
    return out


def _payload(name: Name, jids: Iterable[JID | str]) -> Iterator[Token]:
    start = StartElement(name)
    yield start
    for j in jids:
        item = StartElement(_ITEM, [Attr(Name("", "jid"), str(JID.parse(j) if isinstance(j, str) else j))])
        yield item
        yield item.end()
    yield start.end()


async def fetch(session: Session, *, timeout: float | None = 30.0) -> list[JID]:
    """Return the blocked addresses, in the server's order."""
    reply = await session.send_iq(IQ(type=IQType.GET), _payload(_BLOCKLIST, ()), timeout=timeout)
    bl = reply.find("blocklist", NS)
    return [] if bl is None else _jids(bl)


async def block(session: Session, *jids: JID | str, timeout: float | None = 30.0) -> None:
    """Block ``jids`` (at least one: XEP-0191 has no empty block)."""
    if not jids:
        raise ValueError("block needs at least one address")
    await session.send_iq(IQ(type=IQType.SET), _payload(_BLOCK, jids), timeout=timeout)


async def unblock(session: Session, *jids: JID | str, timeout: float | None = 30.0) -> None:
    """Unblock ``jids`` (at least one; :func:`unblock_all` empties the list)."""
    if not jids:
        raise ValueError("unblock needs at least one address; use unblock_all to empty the list")
    await session.send_iq(IQ(type=IQType.SET), _payload(_UNBLOCK, jids), timeout=timeout)


async def unblock_all(session: Session, *, timeout: float | None = 30.0) -> None:
    """Empty the block list (an ``<unblock/>`` without items)."""
    await session.send_iq(IQ(type=IQType.SET), _payload(_UNBLOCK, ()), timeout=timeout)


@dataclasses.dataclass(frozen=True)
class Push:
    """A block list push: ``blocked`` tells block or unblock, ``jids`` the
    addresses (empty with ``unblock``: everything was unblocked)."""

    blocked: bool
    jids: tuple[JID, ...]
    iq: IQ

    @property
    def all(self) -> bool:
        """True for an unblock of everything."""
        return not self.blocked and not self.jids


class Handler:
    """Takes block list pushes: answers each with an empty result and calls
    ``callback(push)`` (sync or async) with a :class:`Push`.

    Pushes not from the account itself are ignored without an answer
    (counted in ``ignored``); a malformed one is answered with its error.
    """

    #: Clients that understand pushes say so (XEP-0191 section 4).
    disco_features: tuple[str, ...] = (NS,)

    def __init__(self, callback: Callable[[Push], Awaitable[None] | None]) -> None:
        """Make a handler that passes every accepted push to ``callback``."""
        self.callback = callback
        #: How many pushes from other addresses were ignored.
        self.ignored = 0

    async def handle_iq(self, iq: IQ, el: Element, session: Session) -> None:
        """Handle one IQ set holding ``<block/>`` or ``<unblock/>``."""
        if iq.type is not IQType.SET:
            return
        if not is_from_account(iq, session):
            self.ignored += 1
            session.mark_answered()
            return
        payload = next(iter(el.children()))
        blocked = payload.name.local == "block"
        try:
            jids = _jids(payload)
            if blocked and not jids:
                raise StanzaError(ErrorType.MODIFY, Condition.BAD_REQUEST, "an empty block")
        except StanzaError as err:
            await session.send(iq.error(err, session.stanza_ns))
            return
        await session.send(iq.result(None, session.stanza_ns))
        r = self.callback(Push(blocked, tuple(jids), iq))
        if r is not None and inspect.isawaitable(r):
            await r


def handle(handler: Handler) -> Callable[[ServeMux], None]:
    """The :class:`~xmpp.mux.ServeMux` option routing block list pushes to ``handler``."""

    def apply(mux: ServeMux) -> None:
        mux.iq(IQType.SET, _BLOCK, handler)
        mux.iq(IQType.SET, _UNBLOCK, handler)

    return apply
