"""XEP-0030 disco: payload round trips, the handler's aggregation, nodes and items."""

from __future__ import annotations

from typing import Any

import pytest

from xmpp import disco, ping, version
from xmpp.jid import JID
from xmpp.mux import ServeMux
from xmpp.stanza import IQ, Condition, StanzaError
from xmpp.stream import NS_CLIENT
from xmpp.testing import client_server_pair
from xmpp.xmlstream import Attr, CharData, Element, Name, StartElement, Token

FORM_X = Name(disco.NS_DATA, "x")


def form(form_type: str, **fields: list[str]) -> Element:
    """A data form element of type result with a hidden FORM_TYPE and the fields given."""
    toks: list[Token] = [StartElement(FORM_X, (Attr(Name("", "type"), "result"),))]

    def field(var: str, values: list[str], hidden: bool = False) -> None:
        attrs = [Attr(Name("", "var"), var)]
        if hidden:
            attrs.append(Attr(Name("", "type"), "hidden"))
        f = StartElement(Name(disco.NS_DATA, "field"), attrs)
        toks.append(f)
        for v in values:
            vs = StartElement(Name(disco.NS_DATA, "value"))
            toks.extend([vs, CharData(v), vs.end()])
        toks.append(f.end())

    field("FORM_TYPE", [form_type], hidden=True)
    for var, values in fields.items():
        field(var, values)
    toks.append(toks[0].end())  # type: ignore[attr-defined]
    return Element.from_tokens(toks)


def test_info_round_trips_through_tokens(engine: Any) -> None:
    info = disco.Info(
        [disco.Identity("client", "pc", "Tkabber", "en"), disco.Identity("client", "pc", "Ткаббер", "ru")],
        [disco.NS_INFO, "urn:xmpp:ping"],
        [form("urn:xmpp:dataforms:softwareinfo", os=["Linux"])],
        node="n1",
    )
    el = engine.Element.from_tokens(engine_tokens(engine, info.tokens()))
    back = disco.Info.from_element(el)
    assert back.identities == info.identities
    assert back.features == info.features
    assert back.node == "n1"
    assert len(back.forms) == 1 and disco.form_type_of(back.forms[0]) == "urn:xmpp:dataforms:softwareinfo"
    assert back.form("urn:xmpp:dataforms:softwareinfo") is back.forms[0]
    assert back.form("other") is None


def engine_tokens(engine: Any, toks: Any) -> list[Any]:
    """The tokens re-made in ``engine``'s types (to read with its Element)."""
    from xmpp.xmlstream import Encoder

    enc = Encoder()
    enc.encode(toks)
    data = enc.flush()
    p = engine.StreamParser()
    events = p.feed(b"<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>" + data)
    return list(events[1])


def test_info_reading_is_lenient() -> None:
    q = StartElement(disco.INFO_QUERY)
    ident = StartElement(Name(disco.NS_INFO, "identity"), (Attr(Name("", "category"), "client"),))
    feat = StartElement(Name(disco.NS_INFO, "feature"))
    info = disco.Info.from_element(Element.from_tokens([q, ident, ident.end(), feat, feat.end(), q.end()]))
    assert info.identities == () and info.features == ()
    with pytest.raises(ValueError):
        disco.Info.from_element(Element.from_tokens([StartElement(disco.ITEMS_QUERY), StartElement(disco.ITEMS_QUERY).end()]))


def test_handler_aggregates_the_mux() -> None:
    mux = ServeMux(NS_CLIENT, ping.handle(), version.handle("bot", "1.0"))
    mux.iq(None, Name("urn:example:late", "q"), type("H", (), {"disco_features": ("urn:example:late",),
                                                             "disco_identities": (("client", "bot", "Late"),),
                                                             "handle_iq": lambda *a: None})())
    disco.handle(features=["urn:example:own"])(mux)
    info = disco.mux_info(mux)
    assert info.features == tuple(sorted(
        [disco.NS_INFO, disco.NS_ITEMS, "urn:xmpp:ping", "jabber:iq:version", "urn:example:late", "urn:example:own"]
    ))
    assert info.identities == (disco.Identity("client", "bot", "Late"),)
    assert mux.disco_features() == sorted(
        [disco.NS_INFO, disco.NS_ITEMS, "urn:xmpp:ping", "jabber:iq:version", "urn:example:late"]
    )


def test_default_identity_when_none_is_declared() -> None:
    assert disco.mux_info(ServeMux(NS_CLIENT, disco.handle())).identities == (disco.DEFAULT_IDENTITY,)
    with pytest.raises(LookupError):
        disco.mux_info(ServeMux(NS_CLIENT))


async def test_get_info_items_and_nodes_over_a_session() -> None:
    calls: list[IQ] = []

    async def dynamic(iq: IQ) -> disco.Info:
        calls.append(iq)
        return disco.Info([disco.Identity("automation", "command-node")], ["jabber:x:data"])

    items = [disco.Item(JID.parse("example.net"), "n1", "Node one"), disco.Item(JID.parse("pubsub.example.net"))]
    server_mux = ServeMux(
        NS_CLIENT,
        ping.handle(),
        disco.handle(
            identities=[disco.Identity("server", "im", "Test")],
            nodes={"n1": disco.Info([disco.Identity("hierarchy", "leaf")], [disco.NS_INFO]), "dyn": dynamic},
            items={None: items, "n1": lambda iq: [disco.Item(JID.parse("x@example.net"))]},
        ),
    )
    async with client_server_pair(server_handler=server_mux) as (client, _server):
        info = await disco.get_info(client, "example.net", timeout=5)
        assert info.node is None
        assert info.identities == (disco.Identity("server", "im", "Test"),)
        assert info.features == (disco.NS_INFO, disco.NS_ITEMS, "urn:xmpp:ping")

        n1 = await disco.get_info(client, "example.net", "n1", timeout=5)
        assert n1.node == "n1" and n1.identities == (disco.Identity("hierarchy", "leaf"),)
        dyn = await disco.get_info(client, None, "dyn", timeout=5)
        assert dyn.features == ("jabber:x:data",) and len(calls) == 1

        with pytest.raises(StanzaError) as err:
            await disco.get_info(client, "example.net", "nope", timeout=5)
        assert err.value.condition is Condition.ITEM_NOT_FOUND

        assert await disco.get_items(client, "example.net", timeout=5) == items
        assert await disco.get_items(client, "example.net", "n1", timeout=5) == [disco.Item(JID.parse("x@example.net"))]
        assert await disco.get_items(client, "example.net", "dyn", timeout=5) == []
        with pytest.raises(StanzaError) as err:
            await disco.get_items(client, "example.net", "nope", timeout=5)
        assert err.value.condition is Condition.ITEM_NOT_FOUND


async def test_items_with_bad_jids_are_skipped() -> None:
    async def answer(iq: IQ, el: Element, s: Any) -> None:
        bad = StartElement(Name(disco.NS_ITEMS, "item"), (Attr(Name("", "jid"), "@bad"),))
        good = disco.Item(JID.parse("ok@example.net"))
        q = StartElement(disco.ITEMS_QUERY)
        await s.send(iq.result([q, bad, bad.end(), *good.tokens(), q.end()], s.stanza_ns))

    mux = ServeMux(NS_CLIENT).iq_func("get", disco.ITEMS_QUERY, answer)
    async with client_server_pair(server_handler=mux) as (client, _server):
        assert await disco.get_items(client, None, timeout=5) == [disco.Item(JID.parse("ok@example.net"))]


def test_identity_needs_category_and_type() -> None:
    s = StartElement(Name(disco.NS_INFO, "identity"), (Attr(Name("", "type"), "pc"),))
    with pytest.raises(ValueError):
        disco.Identity.from_element(Element.from_tokens([s, s.end()]))
