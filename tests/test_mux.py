"""ServeMux routing: exact patterns before wildcards, IQ auto-errors, disco aggregation."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from xmpp import mux as muxmod
from xmpp.mux import ServeMux
from xmpp.session import Session
from xmpp.stanza import IQ, Condition, IQType, Message, MessageType, Presence, PresenceType, StanzaError
from xmpp.stream import NS_CLIENT
from xmpp.testing import client_server_pair
from xmpp.xmlstream import CharData, Element, Name, StartElement

PING = Name("urn:xmpp:ping", "ping")
RECEIPT = Name("urn:xmpp:receipts", "request")
CHATSTATE = Name("http://jabber.org/protocol/chatstates", "active")
BODY = Name(NS_CLIENT, "body")


def el(name: Name, *children: Name, text: str = "") -> list[Any]:
    s = StartElement(name)
    out: list[Any] = [s]
    for c in children:
        cs = StartElement(c)
        out += [cs, cs.end()]
    if text:
        out.append(CharData(text))
    out.append(s.end())
    return out


async def _run(mux: ServeMux, send: list[Any]) -> None:
    async with client_server_pair(server_handler=mux) as (c, s):
        for item in send:
            await c.send(item)
        await asyncio.sleep(0.05)


async def test_message_routing_exact_then_wildcards() -> None:
    hits: list[tuple[str, str | None]] = []

    def rec(tag: str) -> Any:
        def h(msg: Message, element: Element, session: Session) -> None:
            assert isinstance(session, Session)
            assert element.name.local == "message"
            hits.append((tag, msg.id))

        return h

    m = (
        ServeMux(NS_CLIENT)
        .message_func(MessageType.CHAT, RECEIPT, rec("chat+receipt"))
        .message_func(None, RECEIPT, rec("any+receipt"))
        .message_func(MessageType.CHAT, Name(CHATSTATE.space, ""), rec("chat+chatstates-ns"))
        .message_func(MessageType.CHAT, None, rec("chat+anything"))
        .message_func(None, None, rec("catch-all"))
    )
    await _run(
        m,
        [
            Message(id="1", type=MessageType.CHAT).wrap(el(RECEIPT)),
            Message(id="2", type=MessageType.HEADLINE).wrap(el(RECEIPT)),
            Message(id="3", type=MessageType.CHAT).wrap(el(CHATSTATE)),
            Message(id="4", type=MessageType.CHAT).wrap(el(BODY, text="hi")),
            Message(id="5", type=MessageType.NORMAL).wrap(el(BODY, text="hi")),
            Message(id="6").wrap(None),
        ],
    )
    assert hits == [
        ("chat+receipt", "1"),
        ("any+receipt", "2"),
        ("chat+chatstates-ns", "3"),
        ("chat+anything", "4"),
        ("catch-all", "5"),
        ("catch-all", "6"),
    ]


async def test_message_without_type_is_normal() -> None:
    hits: list[str] = []
    m = ServeMux(NS_CLIENT).message_func(MessageType.NORMAL, None, lambda msg, e, s: hits.append(msg.id))
    await _run(m, [Message(id="n").wrap(None)])
    assert hits == ["n"]


async def test_presence_routing() -> None:
    hits: list[str] = []
    m = (
        ServeMux(NS_CLIENT)
        .presence_func(PresenceType.AVAILABLE, None, lambda p, e, s: hits.append("available:" + p.id))
        .presence_func(PresenceType.SUBSCRIBE, None, lambda p, e, s: hits.append("subscribe:" + p.id))
    )
    await _run(
        m,
        [
            Presence(id="a").wrap(None),
            Presence(id="b", type=PresenceType.SUBSCRIBE).wrap(None),
            Presence(id="c", type=PresenceType.UNAVAILABLE).wrap(None),
        ],
    )
    assert hits == ["available:a", "subscribe:b"]


async def test_iq_routing_and_auto_errors() -> None:
    seen: list[str] = []

    class PingHandler:
        disco_features = ["urn:xmpp:ping"]

        async def handle_iq(self, iq: IQ, element: Element, session: Session) -> None:
            seen.append("ping")
            await session.send(iq.result())

    def any_set(iq: IQ, element: Element, session: Session) -> Any:
        seen.append("set:" + element.find("query").name.space)  # type: ignore[union-attr]
        return session.send(iq.result())

    m = ServeMux(NS_CLIENT, muxmod.iq(IQType.GET, PING, PingHandler()), muxmod.iq_func(IQType.SET, None, any_set))
    async with client_server_pair(server_handler=m) as (c, s):
        await c.send_iq(IQ(type=IQType.GET), el(PING))
        await c.send_iq(IQ(type=IQType.SET), el(Name("urn:example:q", "query")))
        with pytest.raises(StanzaError) as ei:
            await c.send_iq(IQ(type=IQType.GET), el(Name("urn:example:q", "query")))
        assert ei.value.condition is Condition.SERVICE_UNAVAILABLE
    assert seen == ["ping", "set:urn:example:q"]
    assert m.disco_features() == ["urn:xmpp:ping"]


async def test_handle_routes_other_elements_by_name_and_namespace() -> None:
    got: list[str] = []
    nonza = Name("urn:example:nonza", "r")
    m = ServeMux(NS_CLIENT).handle_func(nonza, lambda e, start: got.append("exact")).handle_func(
        Name("urn:example:other", ""), lambda e, start: got.append("namespace")
    )
    await _run(m, [el(nonza), el(Name("urn:example:other", "x")), el(Name("urn:example:nobody", "y"))])
    assert got == ["exact", "namespace"]


def test_duplicate_registration_is_refused() -> None:
    m = ServeMux(NS_CLIENT).iq_func(IQType.GET, PING, lambda *a: None)
    with pytest.raises(ValueError):
        m.iq_func("get", PING, lambda *a: None)
    m.message_func(None, None, lambda *a: None)
    with pytest.raises(ValueError):
        m.message_func(None, None, lambda *a: None)
    with pytest.raises(TypeError):
        m.iq(IQType.SET, PING, object())


def test_disco_aggregation_is_sorted_and_unique() -> None:
    class A:
        disco_features = ["urn:b", "urn:a"]
        disco_identities = [("client", "bot", "A")]

        def handle_message(self, *a: Any) -> None: ...

    class B:
        disco_features = ["urn:a", "urn:c"]
        disco_identities = [("client", "bot", "A"), ("component", "generic", "B")]

        def handle_iq(self, *a: Any) -> None: ...

    m = ServeMux(NS_CLIENT).message(None, None, A()).iq(None, PING, B())
    assert m.disco_features() == ["urn:a", "urn:b", "urn:c"]
    assert m.disco_identities() == [("client", "bot", "A"), ("component", "generic", "B")]
