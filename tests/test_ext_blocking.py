"""xmpp.blocking over in-memory sessions: fetch, block, unblock, unblock_all, pushes."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from xmpp import blocking
from xmpp.jid import JID
from xmpp.mux import ServeMux
from xmpp.session import Session
from xmpp.stanza import IQ, Condition, IQType, StanzaError
from xmpp.stream import NS_CLIENT
from xmpp.testing import client_server_pair
from xmpp.xmlstream import Attr, Element, Name, StartElement


class BlockServer:
    """A server-side block list."""

    def __init__(self) -> None:
        self.blocked: list[str] = []
        self.replies: asyncio.Queue[Element] = asyncio.Queue()
        self.mux = ServeMux(NS_CLIENT)
        self.mux.iq_func(IQType.GET, Name(blocking.NS, "blocklist"), self.on_get)
        self.mux.iq_func(IQType.SET, Name(blocking.NS, ""), self.on_set)
        self.mux.iq_func(IQType.RESULT, None, lambda iq, el, s: self.replies.put_nowait(el))
        self.mux.iq_func(IQType.ERROR, None, lambda iq, el, s: self.replies.put_nowait(el))

    async def on_get(self, iq: IQ, el: Element, s: Session) -> None:
        start = StartElement(Name(blocking.NS, "blocklist"))
        toks: list[Any] = [start]
        for j in self.blocked:
            it = StartElement(Name(blocking.NS, "item"), [Attr(Name("", "jid"), j)])
            toks += [it, it.end()]
        toks.append(start.end())
        await s.send(iq.result(toks))

    async def on_set(self, iq: IQ, el: Element, s: Session) -> None:
        payload = next(iter(el.children()))
        jids = [c.get("jid") or "" for c in payload.children()]
        if payload.name.local == "block":
            if not jids:
                await s.send(iq.error(StanzaError("modify", "bad-request")))
                return
            self.blocked += [j for j in jids if j not in self.blocked]
        elif jids:
            self.blocked = [j for j in self.blocked if j not in jids]
        else:
            self.blocked = []
        await s.send(iq.result(None))


async def test_fetch_block_unblock() -> None:
    server = BlockServer()
    async with client_server_pair(server_handler=server.mux) as (client, _):
        assert await blocking.fetch(client) == []
        await blocking.block(client, "a@example.org", JID.parse("b@example.org/res"), "example.com")
        assert server.blocked == ["a@example.org", "b@example.org/res", "example.com"]
        assert await blocking.fetch(client) == [JID.parse(j) for j in server.blocked]
        await blocking.unblock(client, "a@example.org")
        assert await blocking.fetch(client) == [JID.parse("b@example.org/res"), JID.parse("example.com")]
        await blocking.unblock_all(client)
        assert await blocking.fetch(client) == []
        with pytest.raises(ValueError):
            await blocking.block(client)
        with pytest.raises(ValueError):
            await blocking.unblock(client)


def push(name: str, jids: list[str], frm: str | None, iq_id: str) -> list[Any]:
    start = StartElement(Name(blocking.NS, name))
    toks: list[Any] = [start]
    for j in jids:
        it = StartElement(Name(blocking.NS, "item"), [Attr(Name("", "jid"), j)])
        toks += [it, it.end()]
    toks.append(start.end())
    return list(IQ(type=IQType.SET, id=iq_id, from_=JID.parse(frm) if frm else None).wrap(toks))


async def test_pushes() -> None:
    server = BlockServer()
    pushes: list[blocking.Push] = []
    h = blocking.Handler(pushes.append)
    mux = ServeMux(NS_CLIENT, blocking.handle(h))
    assert mux.disco_features() == [blocking.NS]
    async with client_server_pair(client_handler=mux, server_handler=server.mux) as (_, srv):
        await srv.send(push("block", ["evil@example.org"], "mallory@example.org", "spoof"))
        await srv.send(push("block", ["a@example.org", "b@example.org"], "test@example.net", "b1"))
        await srv.send(push("unblock", ["a@example.org"], None, "u1"))
        await srv.send(push("unblock", [], None, "u2"))
        await srv.send(push("block", [], None, "empty"))
        await srv.send(push("block", ["@bad"], None, "bad"))
        replies = [await asyncio.wait_for(server.replies.get(), 5) for _ in range(5)]
        assert [(r.get("id"), r.get("type")) for r in replies] == [
            ("b1", "result"), ("u1", "result"), ("u2", "result"), ("empty", "error"), ("bad", "error"),
        ]
        assert StanzaError.from_stanza(replies[4]).condition is Condition.JID_MALFORMED  # type: ignore[union-attr]
        assert [(p.blocked, [str(j) for j in p.jids], p.all) for p in pushes] == [
            (True, ["a@example.org", "b@example.org"], False),
            (False, ["a@example.org"], False),
            (False, [], True),
        ]
        assert h.ignored == 1 and server.replies.empty()
