"""XEP-0359 origin-id and stanza-id: build, parse, trust only the named entity."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from xmpp import sid
from xmpp.jid import JID
from xmpp.mux import ServeMux
from xmpp.session import Session
from xmpp.stanza import Message, MessageType
from xmpp.stream import NS_CLIENT
from xmpp.testing import client_server_pair
from xmpp.xmlstream import CharData, Element, Name, StartElement

HEADER = b"<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>"


def test_xep_example(engine: Any) -> None:
    xml = (
        "<message xmlns='jabber:client' to='room@muc.example.com' type='groupchat'><body>Hi</body>"
        "<stanza-id xmlns='urn:xmpp:sid:0' id='5f3dbc5e-e1d3-4077-a492-693f3769c7ad' by='room@muc.example.com'/>"
        "<stanza-id xmlns='urn:xmpp:sid:0' id='forged' by='example.com'/>"
        "<stanza-id xmlns='urn:xmpp:sid:0' id='nobody'/>"
        "<origin-id xmlns='urn:xmpp:sid:0' id='de305d54-75b4-431b-adb2-eb6b9e546013'/>"
        "</message>"
    )
    el = engine.StreamParser().feed(HEADER + xml.encode())[1]
    assert sid.origin_id(el) == "de305d54-75b4-431b-adb2-eb6b9e546013"
    assert sid.stanza_ids(el) == [
        sid.StanzaID("5f3dbc5e-e1d3-4077-a492-693f3769c7ad", JID.parse("room@muc.example.com")),
        sid.StanzaID("forged", JID.parse("example.com")),
    ]
    assert sid.stanza_id(el, "room@muc.example.com") == "5f3dbc5e-e1d3-4077-a492-693f3769c7ad"
    assert sid.stanza_id(el, JID.parse("example.com")) == "forged"
    assert sid.stanza_id(el, "other.example.com") is None


def test_elements_round_trip() -> None:
    o = sid.OriginID("abc")
    assert sid.OriginID.from_element(Element.from_tokens(o.tokens())) == o
    s = sid.StanzaID("x1", JID.parse("archive@example.com"))
    assert sid.StanzaID.from_element(Element.from_tokens(s.tokens())) == s
    with pytest.raises(ValueError):
        sid.OriginID.from_element(Element.from_tokens([StartElement(sid.ORIGIN_ID), StartElement(sid.ORIGIN_ID).end()]))
    with pytest.raises(ValueError):
        sid.StanzaID.from_element(Element.from_tokens(o.tokens()))


def test_add_origin_id_to_outgoing_tokens() -> None:
    body = StartElement(Name(NS_CLIENT, "body"))
    toks = Message(id="m9").wrap([body, CharData("x"), body.end()])
    el = Element.from_tokens(sid.add_origin_id(toks, "o1"))
    assert [c.name.local for c in el.children()] == ["origin-id", "body"]
    assert sid.origin_id(el) == "o1"
    assert list(sid.add_origin_id([], "o2")) == []


async def test_send_message_with_origin_id() -> None:
    got: asyncio.Queue[Element] = asyncio.Queue()

    def on_msg(m: Message, el: Element, s: Session) -> None:
        got.put_nowait(el)

    mux = ServeMux(NS_CLIENT).message_func(None, None, on_msg)
    async with client_server_pair(server_handler=mux) as (client, _server):
        m = Message(to=JID.parse("example.net"), type=MessageType.CHAT)
        oid = await sid.send_message(client, m)
        assert oid == m.id and oid
        oid2 = await sid.send_message(client, Message(id="fixed"), id="custom")
        first = await asyncio.wait_for(got.get(), 5)
        second = await asyncio.wait_for(got.get(), 5)
    assert sid.origin_id(first) == oid and first.get("id") == oid
    assert oid2 == "custom" and sid.origin_id(second) == "custom" and second.get("id") == "fixed"


async def test_handle_advertises_the_feature_in_disco_info() -> None:
    """sid.handle() routes nothing but puts urn:xmpp:sid:0 in disco#info."""
    from xmpp import disco, sid
    from xmpp.mux import ServeMux
    from xmpp.stream import NS_CLIENT
    from xmpp.testing import client_server_pair

    smux = ServeMux(NS_CLIENT, sid.handle(), disco.handle())
    async with client_server_pair(server_handler=smux) as (c, s):
        info = await disco.get_info(c, None)
    assert sid.NS in info.features
    assert sid.NS in smux.disco_features()
