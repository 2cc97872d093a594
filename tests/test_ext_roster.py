"""xmpp.roster over in-memory sessions: fetch, set, delete, pushes, versioning, subscriptions."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from xmpp import roster
from xmpp.jid import JID
from xmpp.mux import ServeMux
from xmpp.session import Session
from xmpp.stanza import IQ, Condition, IQType, Presence, PresenceType, StanzaError
from xmpp.stream import NS_CLIENT
from xmpp.testing import client_server_pair
from xmpp.xmlstream import Attr, Element, Name, StartElement

QUERY = Name(roster.NS, "query")


class FakeServer:
    """A server-side roster store answering gets and sets, and collecting other IQs and presences."""

    def __init__(self, items: list[roster.Item], ver: str = "v1") -> None:
        self.items = {i.jid: i for i in items}
        self.ver = ver
        self.gets: list[Element] = []
        self.sets: list[Element] = []
        self.replies: asyncio.Queue[Element] = asyncio.Queue()
        self.presences: asyncio.Queue[Presence] = asyncio.Queue()
        self.mux = ServeMux(NS_CLIENT)
        self.mux.iq_func(IQType.GET, QUERY, self.on_get)
        self.mux.iq_func(IQType.SET, QUERY, self.on_set)
        self.mux.iq_func(IQType.RESULT, None, lambda iq, el, s: self.replies.put_nowait(el))
        self.mux.iq_func(IQType.ERROR, None, lambda iq, el, s: self.replies.put_nowait(el))
        self.mux.presence_func(None, None, lambda p, el, s: self.presences.put_nowait(p))

    async def on_get(self, iq: IQ, el: Element, s: Session) -> None:
        self.gets.append(el)
        q = el.find("query", roster.NS)
        assert q is not None
        if q.get("ver") == self.ver:
            await s.send(iq.result(None))
            return
        start = StartElement(QUERY, [Attr(Name("", "ver"), self.ver)])
        toks: list[Any] = [start]
        for it in self.items.values():
            toks += list(it.tokens())
        toks.append(start.end())
        await s.send(iq.result(toks))

    async def on_set(self, iq: IQ, el: Element, s: Session) -> None:
        self.sets.append(el)
        q = el.find("query", roster.NS)
        assert q is not None
        item = roster.Item.from_element(next(iter(q.children())))
        if item.subscription is roster.Subscription.REMOVE:
            if item.jid not in self.items:
                await s.send(iq.error(StanzaError("cancel", "item-not-found")))
                return
            del self.items[item.jid]
        else:
            self.items[item.jid] = item
        await s.send(iq.result(None))


def push_tokens(item: roster.Item, *, frm: str | None = None, ver: str | None = None, iq_id: str = "p1") -> list[Any]:
    q = StartElement(QUERY, [Attr(Name("", "ver"), ver)] if ver else [])
    iq = IQ(type=IQType.SET, id=iq_id, from_=JID.parse(frm) if frm else None)
    return list(iq.wrap([q, *item.tokens(), q.end()]))


async def test_fetch_set_delete() -> None:
    server = FakeServer([roster.Item(JID.parse("romeo@example.net"), "Romeo", roster.Subscription.BOTH, groups=("Friends", "Lovers"))])
    async with client_server_pair(server_handler=server.mux) as (client, _):
        r = await roster.fetch(client)
        assert r.ver is None or r.ver == "v1"
        assert [(i.jid, i.name, i.subscription, i.groups) for i in r] == [
            (JID.parse("romeo@example.net"), "Romeo", roster.Subscription.BOTH, ("Friends", "Lovers"))
        ]
        assert server.gets[0].find("query", roster.NS).get("ver") is None  # type: ignore[union-attr]

        await roster.set(client, roster.Item(JID.parse("nurse@example.net"), "Nurse", roster.Subscription.BOTH, ask="subscribe"))
        sent = server.sets[-1].find("query", roster.NS).find("item", roster.NS)  # type: ignore[union-attr]
        assert sent is not None
        assert sent.get("jid") == "nurse@example.net" and sent.get("name") == "Nurse"
        # The client never sends subscription (except remove) nor ask.
        assert sent.get("subscription") is None and sent.get("ask") is None

        await roster.delete(client, "romeo@example.net/orchard")
        removed = server.sets[-1].find("query", roster.NS).find("item", roster.NS)  # type: ignore[union-attr]
        assert removed is not None
        assert removed.get("jid") == "romeo@example.net" and removed.get("subscription") == "remove"
        r = await roster.fetch(client)
        assert [i.jid for i in r] == [JID.parse("nurse@example.net")]
        assert r.get("nurse@example.net/x") is not None and r.get("romeo@example.net") is None

        with pytest.raises(StanzaError) as info:
            await roster.delete(client, "nobody@example.net")
        assert info.value.condition is Condition.ITEM_NOT_FOUND


async def test_versioned_fetch() -> None:
    server = FakeServer([roster.Item(JID.parse("a@example.net"))], ver="ver7")
    async with client_server_pair(server_handler=server.mux) as (client, _):
        full = await roster.fetch(client, ver="")
        assert full.ver == "ver7" and len(full) == 1 and not full.unchanged
        same = await roster.fetch(client, ver="ver7")
        assert same.unchanged and len(same) == 0 and same.ver == "ver7"
        assert server.gets[-1].find("query", roster.NS).get("ver") == "ver7"  # type: ignore[union-attr]


async def test_large_roster() -> None:
    n = 20000
    items = [roster.Item(JID.parse(f"c{i}@example.net"), f"Contact {i}", groups=("g",)) for i in range(n)]
    server = FakeServer(items)
    async with client_server_pair(server_handler=server.mux) as (client, _):
        r = await roster.fetch(client)
        assert len(r) == n
        assert r.get(f"c{n - 1}@example.net") == items[-1]
        assert [i.jid for i in r][:3] == [items[0].jid, items[1].jid, items[2].jid]


async def test_pushes_answered_and_spoofed_ignored() -> None:
    server = FakeServer([])
    pushes: list[roster.Push] = []
    h = roster.Handler(pushes.append)
    client_mux = ServeMux(NS_CLIENT, roster.handle(h))
    async with client_server_pair(client_handler=client_mux, server_handler=server.mux) as (client, srv):
        juliet = JID.parse("juliet@example.net")
        # A spoofed push (from another account) gets no answer and no callback.
        await srv.send(push_tokens(roster.Item(juliet, "Evil"), frm="mallory@evil.example", iq_id="spoof"))
        await srv.send(push_tokens(roster.Item(juliet, "Spoof2"), frm="test@example.net/other", iq_id="spoof2"))
        # A push from the account's bare JID and one without from are accepted.
        await srv.send(push_tokens(roster.Item(juliet, "Juliet"), frm="test@example.net", ver="v2", iq_id="ok1"))
        await srv.send(push_tokens(roster.Item(juliet, subscription=roster.Subscription.REMOVE), iq_id="ok2"))
        first = await asyncio.wait_for(server.replies.get(), 5)
        second = await asyncio.wait_for(server.replies.get(), 5)
        assert [first.get("id"), second.get("id")] == ["ok1", "ok2"]
        assert first.get("type") == "result" and second.get("type") == "result"
        assert [(p.item.name, p.item.subscription, p.ver) for p in pushes] == [
            ("Juliet", roster.Subscription.NONE, "v2"),
            ("", roster.Subscription.REMOVE, None),
        ]
        assert h.ignored == 2
        # A push with two items is refused.
        q = StartElement(QUERY)
        two = IQ(type=IQType.SET, id="two").wrap([q, *roster.Item(juliet).tokens(), *roster.Item(JID.parse("x@example.net")).tokens(), q.end()])
        await srv.send(two)
        err = await asyncio.wait_for(server.replies.get(), 5)
        assert err.get("id") == "two" and err.get("type") == "error"
        assert StanzaError.from_stanza(err).condition is Condition.BAD_REQUEST  # type: ignore[union-attr]
        assert server.replies.empty() and len(pushes) == 2


async def test_async_callback() -> None:
    got: asyncio.Queue[roster.Push] = asyncio.Queue()

    async def cb(p: roster.Push) -> None:
        await got.put(p)

    async with client_server_pair(client_handler=ServeMux(NS_CLIENT, roster.handle(roster.Handler(cb)))) as (_, srv):
        await srv.send(push_tokens(roster.Item(JID.parse("a@example.net"), "A")))
        p = await asyncio.wait_for(got.get(), 5)
        assert p.item.name == "A" and p.iq.id == "p1"


async def test_subscription_presences() -> None:
    server = FakeServer([])
    async with client_server_pair(server_handler=server.mux) as (client, _):
        calls = [
            (roster.subscribe, PresenceType.SUBSCRIBE),
            (roster.unsubscribe, PresenceType.UNSUBSCRIBE),
            (roster.approve, PresenceType.SUBSCRIBED),
            (roster.deny, PresenceType.UNSUBSCRIBED),
        ]
        for func, typ in calls:
            await func(client, "romeo@example.net/orchard")
            p = await asyncio.wait_for(server.presences.get(), 5)
            assert p.type is typ and p.to == JID.parse("romeo@example.net")


async def test_versioning_feature() -> None:
    assert roster.versioning().necessary  # listed after authentication by default
    feature = roster.versioning(necessary=0)  # these in-memory pairs do not authenticate
    async with client_server_pair(client_features=[feature], server_features=[feature]) as (client, _):
        assert roster.versioning_supported(client)
    async with client_server_pair(server_features=[feature]) as (client, _):
        # Not configured on the client: still recorded as offered.
        assert roster.versioning_supported(client)
    async with client_server_pair() as (client, _):
        assert not roster.versioning_supported(client)


def test_item_parse_errors(engine: Any) -> None:
    p = engine.StreamParser()
    p.feed(b"<stream xmlns='jabber:client'>")
    (bad,) = p.feed(b"<item xmlns='jabber:iq:roster' jid='a@b' subscription='weird'/>")
    with pytest.raises(StanzaError):
        roster.Item.from_element(bad)
    (nojid,) = p.feed(b"<item xmlns='jabber:iq:roster'/>")
    with pytest.raises(StanzaError):
        roster.Item.from_element(nojid)
    (good,) = p.feed(b"<item xmlns='jabber:iq:roster' jid='a@b' ask='subscribe'><group>x</group><group>x</group></item>")
    it = roster.Item.from_element(good)
    assert it.ask == "subscribe" and it.groups == ("x",) and it.subscription is roster.Subscription.NONE
