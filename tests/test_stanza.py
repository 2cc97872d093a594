"""Tests of xmpp.stanza: stanzas, their replies and stanza errors, on both engines."""

from __future__ import annotations

import pickle
import re
import types
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from xmpp import stanza as stanzamod
from xmpp import xmlstream
from xmpp.jid import JID
from xmpp.stanza import (
    IQ,
    NS_STANZAS,
    Condition,
    ErrorType,
    IQType,
    Message,
    MessageType,
    Presence,
    PresenceType,
    StanzaError,
    new_id,
)
from xmpp.stream import NS_CLIENT, NS_COMPONENT, NS_SERVER, Info, _native_tokens

Name = xmlstream.Name
Attr = xmlstream.Attr

JULIET = JID.parse("juliet@example.com/balcony")
ROMEO = JID.parse("romeo@example.net/orchard")


def parse_all(engine: types.ModuleType, data: bytes, ns: str = NS_CLIENT) -> list[Any]:
    """The top-level elements the engine reads from ``data`` inside a stream."""
    p = engine.StreamParser()
    p.feed(Info(xmlns=ns).header_bytes())
    events: list[Any] = p.feed(data)
    return events


def through_stream(engine: types.ModuleType, tokens: Any, ns: str = NS_CLIENT) -> Any:
    """Encode ``tokens`` with xmlstream's Encoder in a stream, parse them with ``engine``."""
    enc = xmlstream.Encoder(ns="")
    enc.write_token(Info(xmlns=ns).start())
    enc.flush()
    enc.encode(tokens)
    data = enc.flush()
    events = parse_all(engine, data, ns)
    assert len(events) == 1, data
    return events[0]


def encode(tokens: Any, ns: str = NS_CLIENT) -> bytes:
    enc = xmlstream.Encoder(ns=ns)
    enc.encode(tokens)
    return enc.flush()


def el(engine: types.ModuleType, xml: str, ns: str = NS_CLIENT) -> Any:
    """One element of ``xml``, parsed by ``engine`` in a stream of namespace ``ns``."""
    (e,) = parse_all(engine, xml.encode(), ns)
    return e


def body(text: str) -> list[Any]:
    n = Name(NS_CLIENT, "body")
    return [xmlstream.StartElement(n), xmlstream.CharData(text), xmlstream.EndElement(n)]


def query(ns: str = "jabber:iq:version") -> xmlstream.Element:
    n = Name(ns, "query")
    return xmlstream.Element.from_tokens([xmlstream.StartElement(n), xmlstream.EndElement(n)])


# --- enums and ids ----------------------------------------------------------------


def test_conditions_of_rfc6120() -> None:
    assert [c.value for c in Condition] == [
        "bad-request",
        "conflict",
        "feature-not-implemented",
        "forbidden",
        "gone",
        "internal-server-error",
        "item-not-found",
        "jid-malformed",
        "not-acceptable",
        "not-allowed",
        "not-authorized",
        "policy-violation",
        "recipient-unavailable",
        "redirect",
        "registration-required",
        "remote-server-not-found",
        "remote-server-timeout",
        "resource-constraint",
        "service-unavailable",
        "subscription-required",
        "undefined-condition",
        "unexpected-request",
    ]
    assert [t.value for t in ErrorType] == ["auth", "cancel", "continue", "modify", "wait"]
    assert [t.value for t in MessageType] == ["normal", "chat", "error", "groupchat", "headline"]
    assert PresenceType.AVAILABLE.value == "" and len(PresenceType) == 8
    assert [t.value for t in IQType] == ["get", "set", "result", "error"]
    assert str(IQType.GET) == "get" and str(Condition.GONE) == "gone"


def test_new_id() -> None:
    ids = {new_id() for _ in range(1000)}
    assert len(ids) == 1000
    for i in ids:
        assert re.fullmatch("[0-9a-f]{16,}", i)


# --- writing ------------------------------------------------------------------------


def test_wrap_bytes() -> None:
    m = Message(to=JULIET, from_=ROMEO, id="m1", type=MessageType.CHAT, lang="en")
    assert encode(m.wrap(body("hi & bye"))) == (
        b'<message to="juliet@example.com/balcony" from="romeo@example.net/orchard" '
        b'id="m1" type="chat" xml:lang="en"><body>hi &amp; bye</body></message>'
    )
    assert encode(Presence().wrap()) == b"<presence/>"
    assert encode(Presence(type=PresenceType.UNAVAILABLE).wrap()) == b'<presence type="unavailable"/>'
    assert encode(Message().wrap()) == b'<message type="normal"/>'
    assert encode(IQ(id="i", type=IQType.SET).wrap(query(), NS_SERVER), NS_SERVER) == (
        b'<iq id="i" type="set"><query xmlns="jabber:iq:version"/></iq>'
    )
    # On a stream of another namespace, the stanza takes that namespace.
    assert encode(IQ(id="i").wrap(), NS_CLIENT) == b'<iq id="i" type="get"/>'
    assert encode(IQ(id="i").wrap(ns=NS_SERVER), NS_CLIENT) == (
        b'<iq xmlns="jabber:server" id="i" type="get"/>'
    )


def test_tokens_are_of_the_engine_in_use() -> None:
    m = Message(to=JULIET, id="x")
    toks = list(m.wrap(body("x")))
    assert type(toks[0]) is xmlstream.StartElement
    assert type(toks[-1]) is xmlstream.EndElement
    assert toks[0] == m.start()
    assert toks[-1] == xmlstream.EndElement(Name(NS_CLIENT, "message"))
    err = StanzaError(ErrorType.CANCEL, Condition.GONE, redirect="xmpp:x@y")
    assert {type(t) for t in err} <= {
        xmlstream.StartElement,
        xmlstream.EndElement,
        xmlstream.CharData,
    }
    assert list(err) == list(err.tokens())


# --- round trips ------------------------------------------------------------------------

STANZAS = [
    Message(),
    Message(to=JULIET, from_=ROMEO, id="m1", type=MessageType.CHAT, lang="en"),
    Message(to=JID.parse("\u03c0@b\u00fccher.example/\u265a"), type=MessageType.GROUPCHAT),
    Message(to=JID.parse("[::1]"), type=MessageType.HEADLINE, id="a<'\">&b"),
    Message(type=MessageType.ERROR),
    *[Presence(to=JULIET, id="p", type=t) for t in PresenceType],
    Presence(from_=JID.parse("example.com"), lang="de-CH"),
    *[IQ(to=JULIET, from_=ROMEO, id="q1", type=t) for t in (IQType.RESULT, IQType.ERROR)],
]


@pytest.mark.parametrize("ns", [NS_CLIENT, NS_SERVER, NS_COMPONENT])
@pytest.mark.parametrize("stanza", STANZAS, ids=repr)
def test_round_trip(engine: types.ModuleType, stanza: Any, ns: str) -> None:
    e = through_stream(engine, stanza.wrap(ns=ns), ns)
    assert type(e) is engine.Element
    assert e.name == engine.Name(ns, stanza.start().name.local)
    back = type(stanza).from_element(e)
    assert back == stanza
    assert back.element is e
    # The start element alone gives the same stanza.
    assert type(stanza).from_element(e.start) == stanza
    assert stanzamod.from_element(e) == stanza


@pytest.mark.parametrize("t", [IQType.GET, IQType.SET])
def test_iq_request_round_trip(engine: types.ModuleType, t: IQType) -> None:
    iq = IQ(to=JULIET, id=new_id(), type=t)
    e = through_stream(engine, iq.wrap(query()))
    back = IQ.from_element(e)
    assert back == iq
    (child,) = back.payload
    assert child.name == engine.Name("jabber:iq:version", "query")


XML_TEXT = st.text(
    st.characters(blacklist_categories=["Cs"], blacklist_characters="\ufffe\uffff")
    .filter(lambda c: c in "\t\n\r" or ord(c) >= 0x20),
    max_size=20,
)


@settings(max_examples=60, deadline=None)
@given(
    id=XML_TEXT,
    lang=st.sampled_from(["", "en", "de-CH", "i-klingon"]),
    mtype=st.sampled_from(list(MessageType)),
    text=XML_TEXT,
)
def test_round_trip_any_text(id: str, lang: str, mtype: MessageType, text: str) -> None:
    m = Message(to=JULIET, from_=ROMEO, id=id, type=mtype, lang=lang)
    for engine in (xmlstream, _pure()):
        e = through_stream(engine, m.wrap(body(text)))
        got = Message.from_element(e)
        # Attribute values survive normalisation: tabs and newlines are escaped.
        assert got == m
        assert got.payload[0].text == text


def _pure() -> types.ModuleType:
    import xmpp._tokens_py

    return xmpp._tokens_py


# --- reading: types, ids, addresses, payloads ----------------------------------------------


@pytest.mark.parametrize(
    ("xml", "want"),
    [
        ("<message/>", MessageType.NORMAL),
        ("<message type='chat'/>", MessageType.CHAT),
        # RFC 6121 5.2.2: an unknown type is taken as normal.
        ("<message type='bogus'/>", MessageType.NORMAL),
        ("<message type=''/>", MessageType.NORMAL),
    ],
)
def test_message_types(engine: types.ModuleType, xml: str, want: MessageType) -> None:
    assert Message.from_element(el(engine, xml)).type is want


@pytest.mark.parametrize(
    ("xml", "want"),
    [
        ("<presence/>", PresenceType.AVAILABLE),
        ("<presence type='probe'/>", PresenceType.PROBE),
        ("<presence type='unsubscribed'/>", PresenceType.UNSUBSCRIBED),
    ],
)
def test_presence_types(engine: types.ModuleType, xml: str, want: PresenceType) -> None:
    assert Presence.from_element(el(engine, xml)).type is want


def bad(fn: Any, *args: Any) -> StanzaError:
    with pytest.raises(StanzaError) as info:
        fn(*args)
    return info.value


@pytest.mark.parametrize(
    ("cls", "xml", "condition"),
    [
        (Presence, "<presence type='available'/>", Condition.BAD_REQUEST),
        (Presence, "<presence type='Subscribe'/>", Condition.BAD_REQUEST),
        (IQ, "<iq id='1'><query xmlns='q'/></iq>", Condition.BAD_REQUEST),
        (IQ, "<iq id='1' type='fetch'><query xmlns='q'/></iq>", Condition.BAD_REQUEST),
        (IQ, "<iq type='get'><query xmlns='q'/></iq>", Condition.BAD_REQUEST),
        (IQ, "<iq type='get' id=''><query xmlns='q'/></iq>", Condition.BAD_REQUEST),
        (IQ, "<iq type='get' id='1'/>", Condition.BAD_REQUEST),
        (IQ, "<iq type='set' id='1'> text only </iq>", Condition.BAD_REQUEST),
        (IQ, "<iq type='get' id='1'><a xmlns='q'/><b xmlns='q'/></iq>", Condition.BAD_REQUEST),
        (IQ, "<iq type='set' id='1'><a xmlns='q'/><b/><c/></iq>", Condition.BAD_REQUEST),
        (IQ, "<iq type='result' id='1'><a xmlns='q'/><b xmlns='q'/></iq>", Condition.BAD_REQUEST),
        (Message, "<message to='a@b@c'/>", Condition.JID_MALFORMED),
        (Message, "<message from='@example.com'/>", Condition.JID_MALFORMED),
        (Presence, "<presence to=''/>", Condition.JID_MALFORMED),
        (IQ, "<iq type='get' id='1' to='juliet@example.com/'><q xmlns='q'/></iq>",
         Condition.JID_MALFORMED),
    ],
)
def test_malformed(engine: types.ModuleType, cls: Any, xml: str, condition: Condition) -> None:
    err = bad(cls.from_element, el(engine, xml))
    assert err.condition is condition
    assert err.type is ErrorType.MODIFY
    assert err.text


def test_iq_checks_children_only_of_whole_elements(engine: types.ModuleType) -> None:
    e = el(engine, "<iq type='get' id='1'/>")
    # A start element alone says nothing about the children.
    assert IQ.from_element(e.start) == IQ(id="1", type=IQType.GET)
    assert IQ.from_element(e.start).element is None
    # Results and errors may be empty; white space and text are not children.
    assert IQ.from_element(el(engine, "<iq type='result' id='1'/>")).type is IQType.RESULT
    assert IQ.from_element(el(engine, "<iq type='error' id='1'><a xmlns='x'/><b/></iq>"))
    iq = IQ.from_element(el(engine, "<iq type='get' id='1'>\n  <q xmlns='q'/>\n</iq>"))
    assert len(iq.payload) == 1


def test_wrong_element(engine: types.ModuleType) -> None:
    with pytest.raises(ValueError):
        Message.from_element(el(engine, "<presence/>"))
    with pytest.raises(ValueError):
        IQ.from_element(el(engine, "<message/>"))
    with pytest.raises(ValueError):
        stanzamod.from_element(el(engine, "<stream:features xmlns:stream='http://etherx.jabber.org/streams'/>"))


def test_unknown_children_are_kept(engine: types.ModuleType) -> None:
    xml = (
        "<message to='juliet@example.com' type='chat' xml:lang='en'>"
        "<body>hi</body><x xmlns='urn:example:unknown' a='1'><y>deep</y></x>"
        "<thread>t1</thread></message>"
    )
    m = Message.from_element(el(engine, xml))
    assert m.lang == "en"
    names = [c.name for c in m.payload]
    assert names == [
        engine.Name(NS_CLIENT, "body"),
        engine.Name("urn:example:unknown", "x"),
        engine.Name(NS_CLIENT, "thread"),
    ]
    deep = m.payload[1].find("y")
    assert m.payload[1].get("a") == "1" and deep is not None and deep.text == "deep"
    # Re-wrapping the kept payload gives the same element back.
    rewrapped = through_stream(
        xmlstream, m.wrap(_native_tokens(t for c in m.payload for t in c))
    )
    assert [c.name.local for c in rewrapped.children()] == ["body", "x", "thread"]
    assert Message.from_element(rewrapped) == m


def test_stanza_made_in_code_has_no_payload() -> None:
    assert Message().payload == () and Message().element is None


def test_addresses_are_cached_values(engine: types.ModuleType) -> None:
    a = Message.from_element(el(engine, "<message to='Juliet@Example.com/balcony'/>"))
    b = Message.from_element(el(engine, "<message to='juliet@example.com/balcony'/>"))
    assert a.to == b.to == JULIET
    assert a.to is JID.parse("Juliet@Example.com/balcony")


def test_dispatch(engine: types.ModuleType) -> None:
    got = [
        stanzamod.from_element(e)
        for e in parse_all(
            engine,
            b"<message/><presence type='probe'/><iq type='get' id='x'><q xmlns='q'/></iq>",
        )
    ]
    assert [type(s) for s in got] == [Message, Presence, IQ]


# --- replies ------------------------------------------------------------------------------


def test_iq_result(engine: types.ModuleType) -> None:
    req = IQ.from_element(
        el(
            engine,
            "<iq type='get' id='v1' to='example.com' from='juliet@example.com/balcony' "
            "xml:lang='en'><query xmlns='jabber:iq:version'/></iq>",
        )
    )
    e = through_stream(engine, req.result())
    res = IQ.from_element(e)
    assert res == IQ(to=JULIET, from_=JID.parse("example.com"), id="v1", type=IQType.RESULT)
    assert res.payload == ()
    e = through_stream(engine, req.result(query()))
    assert IQ.from_element(e).payload[0].name.local == "query"
    assert req.reply() == IQ(to=JULIET, from_=JID.parse("example.com"), id="v1", type=IQType.RESULT)
    assert req.reply(IQType.ERROR).type is IQType.ERROR
    assert req.reply().element is None


def test_iq_error(engine: types.ModuleType) -> None:
    req = IQ(to=JID.parse("example.com"), from_=JULIET, id="e1", type=IQType.SET)
    err = StanzaError(ErrorType.CANCEL, Condition.SERVICE_UNAVAILABLE)
    e = through_stream(engine, req.error(err))
    res = IQ.from_element(e)
    assert (res.to, res.from_, res.id, res.type) == (JULIET, JID.parse("example.com"), "e1", IQType.ERROR)
    assert StanzaError.from_stanza(e) == err
    assert encode(req.error(err)) == (
        b'<iq to="juliet@example.com/balcony" from="example.com" id="e1" type="error">'
        b'<error type="cancel"><service-unavailable xmlns="urn:ietf:params:xml:ns:xmpp-stanzas"/>'
        b"</error></iq>"
    )


@pytest.mark.parametrize("t", [IQType.RESULT, IQType.ERROR])
def test_answers_are_never_answered(t: IQType) -> None:
    iq = IQ(id="1", type=t)
    err = StanzaError(ErrorType.CANCEL, Condition.BAD_REQUEST)
    with pytest.raises(ValueError):
        iq.result()
    with pytest.raises(ValueError):
        iq.error(err)
    with pytest.raises(ValueError):
        Message(type=MessageType.ERROR).error(err)
    with pytest.raises(ValueError):
        Presence(type=PresenceType.ERROR).error(err)


def test_message_and_presence_errors(engine: types.ModuleType) -> None:
    err = StanzaError(ErrorType.WAIT, Condition.RESOURCE_CONSTRAINT, "busy", "en")
    m = Message(to=JULIET, from_=ROMEO, id="m9", type=MessageType.CHAT, lang="en")
    e = through_stream(engine, m.error(err))
    got = Message.from_element(e)
    assert got == Message(to=ROMEO, from_=JULIET, id="m9", type=MessageType.ERROR)
    assert StanzaError.from_stanza(e) == err
    p = Presence(to=JULIET, from_=ROMEO, id="p9", type=PresenceType.SUBSCRIBE)
    e = through_stream(engine, p.error(err))
    assert Presence.from_element(e) == Presence(to=ROMEO, from_=JULIET, id="p9", type=PresenceType.ERROR)
    assert StanzaError.from_stanza(e) == err
    assert m.reply() == Message(to=ROMEO, from_=JULIET, id="m9", type=MessageType.CHAT)
    assert p.reply().type is PresenceType.SUBSCRIBE


# --- stanza errors ----------------------------------------------------------------------


@pytest.mark.parametrize("condition", list(Condition))
@pytest.mark.parametrize("etype", list(ErrorType))
def test_every_error_round_trips(
    engine: types.ModuleType, condition: Condition, etype: ErrorType
) -> None:
    err = StanzaError(etype, condition)
    iq = IQ(to=JULIET, id="1", type=IQType.GET)
    e = through_stream(engine, iq.error(err))
    back = StanzaError.from_stanza(e)
    assert back == err
    assert back is not None and back.condition is condition and back.type is etype
    assert back.element == e.find("error")


@pytest.mark.parametrize("ns", [NS_CLIENT, NS_SERVER, NS_COMPONENT])
def test_full_error_round_trips(engine: types.ModuleType, ns: str) -> None:
    app = xmlstream.Element.from_tokens(
        [
            xmlstream.StartElement(Name("http://jabber.org/protocol/pubsub#errors", "invalid-jid")),
            xmlstream.EndElement(Name("http://jabber.org/protocol/pubsub#errors", "invalid-jid")),
        ]
    )
    err = StanzaError(
        "modify",
        "not-acceptable",
        "Quiet, please!",
        "en",
        JID.parse("chat.example.com"),
        app,
    )
    e = through_stream(engine, Message(to=JULIET).error(err, ns), ns)
    back = StanzaError.from_stanza(e)
    assert back == err
    assert back is not None
    assert (back.text, back.lang, back.by) == ("Quiet, please!", "en", JID.parse("chat.example.com"))
    assert type(back.app) is xmlstream.Element and back.app == app
    # It goes out again as it came in.
    e2 = through_stream(engine, Message(to=JULIET).error(back, ns), ns)
    assert StanzaError.from_stanza(e2) == err


@pytest.mark.parametrize("condition", [Condition.REDIRECT, Condition.GONE])
def test_redirect_and_gone_carry_their_address(engine: types.ModuleType, condition: Condition) -> None:
    err = StanzaError(ErrorType.CANCEL, condition, redirect="xmpp:characters@conference.example.org")
    data = encode(err.tokens())
    assert (
        f'<{condition.value} xmlns="{NS_STANZAS}">xmpp:characters@conference.example.org'
        f"</{condition.value}>"
    ).encode() in data
    e = through_stream(engine, IQ(id="1", type=IQType.SET).error(err))
    back = StanzaError.from_stanza(e)
    assert back is not None and back.redirect == "xmpp:characters@conference.example.org"
    assert back == err
    # Without an address, the element is empty.
    assert f'<{condition.value} xmlns="{NS_STANZAS}"/>'.encode() in encode(
        StanzaError(ErrorType.CANCEL, condition)
    )


def test_rfc6120_error_example(engine: types.ModuleType) -> None:
    # RFC 6120 section 8.3.2, with an application-specific condition.
    e = el(
        engine,
        "<iq from='im.example.com' id='ixc3v1b9' to='juliet@im.example.com/foo' type='error'>"
        "<error type='modify'>"
        "<bad-request xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>"
        "<too-many-subscriptions xmlns='http://jabber.org/protocol/pubsub#errors'/>"
        "</error></iq>",
    )
    iq = IQ.from_element(e)
    assert iq.type is IQType.ERROR
    err = StanzaError.from_stanza(e)
    assert err is not None
    assert (err.type, err.condition, err.text) == (ErrorType.MODIFY, Condition.BAD_REQUEST, None)
    assert err.app.name == xmlstream.Name("http://jabber.org/protocol/pubsub#errors", "too-many-subscriptions")


def test_lenient_error_reading(engine: types.ModuleType) -> None:
    e = el(
        engine,
        "<message type='error'><error type='whatever' by='not a jid@@'>"
        f"<made-up-condition xmlns='{NS_STANZAS}'/>"
        f"<text xmlns='{NS_STANZAS}' xml:lang='en'>first</text>"
        f"<text xmlns='{NS_STANZAS}' xml:lang='de'>zweite</text>"
        "</error></message>",
    )
    err = StanzaError.from_stanza(e)
    assert err is not None
    assert err.type is ErrorType.CANCEL
    assert err.condition is Condition.UNDEFINED_CONDITION
    assert err.by is None
    assert (err.text, err.lang) == ("first", "en")
    # The raw element keeps what was not understood.
    assert err.element.get("type") == "whatever"
    assert [c.name.local for c in err.element.children()] == ["made-up-condition", "text", "text"]
    e = el(engine, "<iq type='error' id='1'><error/></iq>")
    bare = StanzaError.from_stanza(e)
    assert bare is not None and bare.condition is Condition.UNDEFINED_CONDITION


def test_from_stanza_without_error(engine: types.ModuleType) -> None:
    assert StanzaError.from_stanza(el(engine, "<iq type='error' id='1'/>")) is None
    # An <error/> in another namespace is not the stanza's error.
    assert StanzaError.from_stanza(el(engine, "<message><error xmlns='urn:x'/></message>")) is None
    with pytest.raises(ValueError):
        StanzaError.from_element(el(engine, "<message/>"))


def test_stanza_error_values() -> None:
    err = StanzaError("auth", "forbidden", "no", "en", JULIET)
    assert (err.type, err.condition) == (ErrorType.AUTH, Condition.FORBIDDEN)
    assert isinstance(err, Exception)
    assert str(err) == "auth forbidden: no"
    assert repr(err) == "StanzaError('auth', 'forbidden', 'no')"
    with pytest.raises(ValueError):
        StanzaError("fatal", "forbidden")
    with pytest.raises(ValueError):
        StanzaError("auth", "payment-required")  # RFC 3920 only
    back = pickle.loads(pickle.dumps(err))
    assert back == err
    assert err != StanzaError("auth", "forbidden", "no", "en")
    assert err != StanzaError("auth", "forbidden", "no", "en", JULIET, query())
    with pytest.raises(StanzaError):
        raise err
    assert encode(err) == (
        b'<error type="auth" by="juliet@example.com/balcony">'
        b'<forbidden xmlns="urn:ietf:params:xml:ns:xmpp-stanzas"/>'
        b'<text xmlns="urn:ietf:params:xml:ns:xmpp-stanzas" xml:lang="en">no</text></error>'
    )
