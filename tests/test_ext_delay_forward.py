"""XEP-0203 delayed delivery and XEP-0297 forwarding: build, parse, round trips."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from xmpp import delay, forward
from xmpp.jid import JID
from xmpp.stanza import Message, MessageType
from xmpp.xmlstream import CharData, Element, Encoder, Name, StartElement

HEADER = b"<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>"
UTC = dt.timezone.utc


def parse(engine: Any, xml: str) -> Any:
    return engine.StreamParser().feed(HEADER + xml.encode())[1]


def test_delay_of_the_xep_example(engine: Any) -> None:
    msg = parse(engine, (
        "<message from='romeo@montague.net/orchard' to='juliet@capulet.com' type='chat'>"
        "<body>O blessed, blessed night!</body>"
        "<delay xmlns='urn:xmpp:delay' from='capulet.com' stamp='2002-09-10T23:08:25Z'>Offline Storage</delay>"
        "</message>"
    ))
    d = delay.find(msg)
    assert d == delay.Delay(dt.datetime(2002, 9, 10, 23, 8, 25, tzinfo=UTC), JID.parse("capulet.com"), "Offline Storage")
    back = Element.from_tokens(d.tokens())  # type: ignore[union-attr]
    assert delay.Delay.from_element(back) == d
    assert back.get("stamp") == "2002-09-10T23:08:25Z" and back.text == "Offline Storage"


@pytest.mark.parametrize("xml", [
    "<message><delay xmlns='urn:xmpp:delay'/></message>",
    "<message><delay xmlns='urn:xmpp:delay' stamp='yesterday'/></message>",
    "<message><delay xmlns='urn:xmpp:delay' stamp='2002-09-10T23:08:25Z' from='@'/></message>",
    "<message><delay xmlns='jabber:x:delay' stamp='20020910T23:08:25'/></message>",
])
def test_malformed_or_absent_delays(engine: Any, xml: str) -> None:
    assert delay.find(parse(engine, xml)) is None


def test_insert_puts_the_delay_last() -> None:
    d = delay.Delay(dt.datetime(2020, 1, 2, 3, 4, 5, tzinfo=UTC))
    body = StartElement(Name("jabber:client", "body"))
    el = Element.from_tokens(delay.insert(Message(type=MessageType.CHAT).wrap([body, CharData("x"), body.end()]), d))
    kids = [c.name.local for c in el.children()]
    assert kids == ["body", "delay"]
    assert delay.find(el) == d


def test_forward_round_trip(engine: Any) -> None:
    d = delay.Delay(dt.datetime(2010, 7, 10, 23, 8, 25, tzinfo=UTC))
    msg = Message(to=JID.parse("mercutio@verona.lit"), from_=JID.parse("romeo@montague.lit/orchard"), id="28gs",
                  type=MessageType.CHAT)
    body = StartElement(Name("jabber:client", "body"))
    enc = Encoder(ns="jabber:client")
    outer = Message(to=JID.parse("juliet@capulet.lit/balcony"), id="x")
    enc.encode(outer.wrap(forward.wrap(msg.wrap([body, CharData("A most courteous exposition."), body.end()]), d)))
    data = enc.flush()
    # The forwarded stanza is written in jabber:client, inside the forward namespace.
    assert b'<forwarded xmlns="urn:xmpp:forward:0">' in data
    assert b'<message xmlns="jabber:client" to="mercutio@verona.lit"' in data
    got = engine.StreamParser().feed(HEADER + data)[1]
    fwd = forward.unwrap(got.find("forwarded", forward.NS))
    assert fwd.delay == d
    inner = Message.from_element(fwd.stanza)
    assert inner == msg
    assert fwd.stanza.find("body", "jabber:client").text == "A most courteous exposition."
    again = list(fwd.tokens())
    assert again[0].name == forward.FORWARDED and again[-1].name == forward.FORWARDED
    assert [t.name.local for t in again if type(t).__name__ == "StartElement"][:3] == ["forwarded", "delay", "message"]


def test_unwrap_refuses_what_is_not_a_forward(engine: Any) -> None:
    with pytest.raises(ValueError):
        forward.unwrap(parse(engine, "<forwarded xmlns='urn:xmpp:forward:0'><body/></forwarded>"))
    with pytest.raises(ValueError):
        forward.unwrap(parse(engine, "<message/>"))
    # A stanza in a foreign namespace is not the forwarded stanza.
    with pytest.raises(ValueError):
        forward.unwrap(parse(engine, "<forwarded xmlns='urn:xmpp:forward:0'><message xmlns='urn:evil'/></forwarded>"))
    # Without a delay.
    f = forward.unwrap(parse(engine, "<forwarded xmlns='urn:xmpp:forward:0'><iq xmlns='jabber:client' type='get' id='1'/></forwarded>"))
    assert f.delay is None and f.stanza.name.local == "iq"
