"""xmpp.carbons over in-memory sessions: enable/disable, unwrapping, the sender check."""

from __future__ import annotations

import asyncio
from typing import Any

from xmpp import carbons
from xmpp.mux import ServeMux
from xmpp.session import Session
from xmpp.stanza import IQ, IQType
from xmpp.stream import NS_CLIENT
from xmpp.testing import client_server_pair
from xmpp.xmlstream import Element, Name, StartElement

CARBON = (
    "<message xmlns='jabber:client' from='{frm}' to='test@example.net/client' type='chat'>"
    "<{dir} xmlns='urn:xmpp:carbons:2'><forwarded xmlns='urn:xmpp:forward:0'>"
    "<message xmlns='jabber:client' from='{inner_from}' to='{inner_to}' type='chat'><body>{body}</body></message>"
    "</forwarded></{dir}></message>"
)


def carbon(frm: str, direction: str = "received", body: str = "hi", *, inner_from: str = "romeo@example.net/orchard",
           inner_to: str = "test@example.net/phone") -> bytes:
    return CARBON.format(frm=frm, dir=direction, body=body, inner_from=inner_from, inner_to=inner_to).encode()


def parse(engine: Any, data: bytes) -> Element:
    p = engine.StreamParser()
    p.feed(b"<stream xmlns='jabber:client'>")
    (el,) = p.feed(data)
    return el  # type: ignore[no-any-return]


async def test_enable_disable() -> None:
    got: list[str] = []

    async def on_set(iq: IQ, el: Element, s: Session) -> None:
        got.append(next(iter(el.children())).name.local)
        await s.send(iq.result(None))

    mux = ServeMux(NS_CLIENT)
    mux.iq_func(IQType.SET, Name(carbons.NS, ""), on_set)
    async with client_server_pair(server_handler=mux) as (client, _):
        await carbons.enable(client)
        await carbons.disable(client)
    assert got == ["enable", "disable"]


async def test_unwrap_and_sender_check(engine: Any) -> None:
    async with client_server_pair() as (client, _):
        d, inner = carbons.unwrap(parse(engine, carbon("test@example.net")), client)  # type: ignore[misc]
        assert d is carbons.Direction.RECEIVED
        assert inner.get("from") == "romeo@example.net/orchard" and inner.find("body").text == "hi"  # type: ignore[union-attr]
        d, inner = carbons.unwrap(parse(engine, carbon("Test@Example.NET", "sent")), client)  # type: ignore[misc]
        assert d is carbons.Direction.SENT
        # Spoofed: from a contact, from another resource's full JID, from another account, no from.
        for frm in ("romeo@example.net", "test@example.net/other", "mallory@example.net", "example.net"):
            assert carbons.unwrap(parse(engine, carbon(frm)), client) is None, frm
        nofrom = carbon("x").replace(b" from='x'", b"")
        assert carbons.unwrap(parse(engine, nofrom), client) is None
        # Not a carbon at all, and a carbon without a forwarded message.
        plain = b"<message xmlns='jabber:client' from='test@example.net'><body>x</body></message>"
        assert carbons.unwrap(parse(engine, plain), client) is None
        empty = b"<message xmlns='jabber:client' from='test@example.net'><sent xmlns='urn:xmpp:carbons:2'/></message>"
        assert carbons.unwrap(parse(engine, empty), client) is None


async def test_handler_drops_spoofed_carbons() -> None:
    got: asyncio.Queue[tuple[carbons.Direction, str]] = asyncio.Queue()
    h = carbons.Handler(lambda d, m, s: got.put_nowait((d, m.find("body").text)))  # type: ignore[union-attr]
    async with client_server_pair(client_handler=ServeMux(NS_CLIENT, carbons.handle(h))) as (_, srv):
        srv.write_raw(carbon("mallory@evil.example", body="forged"))
        srv.write_raw(carbon("test@example.net", "sent", body="mine", inner_from="test@example.net/phone",
                             inner_to="romeo@example.net"))
        srv.write_raw(carbon("romeo@example.net", body="forged too"))
        srv.write_raw(carbon("test@example.net", body="theirs"))
        first = await asyncio.wait_for(got.get(), 5)
        second = await asyncio.wait_for(got.get(), 5)
        assert [first, second] == [(carbons.Direction.SENT, "mine"), (carbons.Direction.RECEIVED, "theirs")]
        assert got.empty() and h.ignored == 2


def test_private_tokens() -> None:
    names = [t.name for t in carbons.private() if isinstance(t, StartElement)]
    assert [(n.space, n.local) for n in names] == [(carbons.NS, "private"), ("urn:xmpp:hints", "no-copy")]
