"""Tests of xmpp.stream: the stream header (Info) and stream errors, on both engines."""

from __future__ import annotations

import pickle
import subprocess
import sys
import types
from typing import Any

import pytest

from xmpp import xmlstream
from xmpp.jid import JID
from xmpp.stream import (
    NS_CLIENT,
    NS_COMPONENT,
    NS_SERVER,
    NS_STREAM_ERRORS,
    NS_STREAMS,
    NS_XML,
    Condition,
    Info,
    StreamError,
)

HEADER_CLIENT = (
    b"<?xml version='1.0'?><stream:stream xmlns='jabber:client' "
    b"xmlns:stream='http://etherx.jabber.org/streams' "
)


def header_of(engine: types.ModuleType, data: bytes) -> Any:
    """The header start element the engine gives for ``data``."""
    events = engine.StreamParser().feed(data)
    assert len(events) >= 1
    return events[0]


def through_stream(engine: types.ModuleType, tokens: Any, ns: str = NS_CLIENT) -> Any:
    """Write a header and ``tokens`` with xmlstream's Encoder, parse with ``engine``.

    Returns the one top-level element that comes back.
    """
    enc = xmlstream.Encoder(ns="")
    enc.write_token(Info(xmlns=ns).start())
    enc.encode(tokens)
    events = engine.StreamParser().feed(enc.flush())
    assert len(events) == 2, events
    return events[1]


# --- Info -------------------------------------------------------------------------


def test_header_bytes_exact() -> None:
    info = Info(
        to=JID.parse("example.com"),
        from_=JID.parse("juliet@example.com"),
        id="s1",
        lang="en",
    )
    assert info.header_bytes() == (
        b"<?xml version='1.0'?><stream:stream xmlns=\"jabber:client\" "
        b'xmlns:stream="http://etherx.jabber.org/streams" to="example.com" '
        b'from="juliet@example.com" id="s1" version="1.0" xml:lang="en">'
    )
    # Empty fields are left out.
    assert Info().header_bytes() == (
        b"<?xml version='1.0'?><stream:stream xmlns=\"jabber:client\" "
        b'xmlns:stream="http://etherx.jabber.org/streams" version="1.0">'
    )


def test_start_is_of_the_engine_in_use() -> None:
    start = Info().start()
    assert type(start) is xmlstream.StartElement
    assert start.attrs[:2] == (
        xmlstream.Attr(xmlstream.Name("", "xmlns"), NS_CLIENT),
        xmlstream.Attr(xmlstream.Name("xmlns", "stream"), NS_STREAMS),
    )


@pytest.mark.parametrize(
    "info",
    [
        Info(),
        Info(to=JID.parse("example.com"), lang="en"),
        Info(
            to=JID.parse("juliet@example.com"),
            from_=JID.parse("B\u00fccher.example"),
            id="a<b>&'\"c",
            version="1.0",
            lang="de-CH",
            xmlns=NS_SERVER,
        ),
        Info(from_=JID.parse("example.com"), id="x", xmlns=NS_COMPONENT),
        Info(to=JID.parse("[::1]"), version="1.5"),
    ],
)
def test_info_round_trip(engine: types.ModuleType, info: Info) -> None:
    data = info.header_bytes()
    start = header_of(engine, data)
    assert type(start) is engine.StartElement
    assert Info.from_start(start) == info
    # And the start element itself, as the other engine's tokens.
    assert Info.from_start(info.start()) == info


def test_info_after_reset(engine: types.ModuleType) -> None:
    p = engine.StreamParser()
    first = Info(to=JID.parse("example.com"))
    assert Info.from_start(p.feed(first.header_bytes())[0]) == first
    p.reset()
    second = first.reply("abc", from_=JID.parse("example.com"))
    assert Info.from_start(p.feed(second.header_bytes())[0]) == second


def test_info_reply() -> None:
    got = Info(
        to=JID.parse("example.com"),
        from_=JID.parse("juliet@example.com"),
        version="1.3",
        lang="fr",
        xmlns=NS_SERVER,
    ).reply("s2")
    assert got == Info(
        to=JID.parse("juliet@example.com"),
        from_=JID.parse("example.com"),
        id="s2",
        version="1.0",
        lang="fr",
        xmlns=NS_SERVER,
    )


def test_info_is_frozen() -> None:
    info = Info()
    with pytest.raises(AttributeError):
        info.id = "x"  # type: ignore[misc]
    assert hash(info) == hash(Info())


def test_info_reads_a_real_server_header(engine: types.ModuleType) -> None:
    data = (
        b"<?xml version='1.0'?><stream:stream xmlns:stream='http://etherx.jabber.org/streams' "
        b"xml:lang='en' from='localhost' version='1.0' "
        b"id='8e7a9b5c-0d9c-4c1b-b4a1-1f1d5e3f8c11' xmlns='jabber:client'>"
    )
    info = Info.from_start(header_of(engine, data))
    assert info == Info(
        from_=JID.parse("localhost"),
        id="8e7a9b5c-0d9c-4c1b-b4a1-1f1d5e3f8c11",
        lang="en",
    )


@pytest.mark.parametrize(
    ("data", "condition"),
    [
        # Wrong root name or namespace.
        (
            b"<stream:strem xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' "
            b"version='1.0'>",
            Condition.INVALID_NAMESPACE,
        ),
        (
            b"<stream:stream xmlns='jabber:client' xmlns:stream='http://example.com/streams' "
            b"version='1.0'>",
            Condition.INVALID_NAMESPACE,
        ),
        # No content namespace, an unknown one, none but the streams one.
        (
            b"<stream:stream xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>",
            Condition.INVALID_NAMESPACE,
        ),
        (
            b"<stream:stream xmlns='jabber:iq:roster' "
            b"xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>",
            Condition.INVALID_NAMESPACE,
        ),
        (
            b"<stream xmlns='http://etherx.jabber.org/streams' version='1.0'>",
            Condition.BAD_NAMESPACE_PREFIX,
        ),
        # Versions.
        (HEADER_CLIENT + b">", Condition.UNSUPPORTED_VERSION),
        (HEADER_CLIENT + b"version=''>", Condition.UNSUPPORTED_VERSION),
        (HEADER_CLIENT + b"version='2.0'>", Condition.UNSUPPORTED_VERSION),
        (HEADER_CLIENT + b"version='0.9'>", Condition.UNSUPPORTED_VERSION),
        (HEADER_CLIENT + b"version='1'>", Condition.UNSUPPORTED_VERSION),
        (HEADER_CLIENT + b"version='1.x'>", Condition.UNSUPPORTED_VERSION),
        (HEADER_CLIENT + b"version='\xd9\xa1.0'>", Condition.UNSUPPORTED_VERSION),
        # Addresses.
        (HEADER_CLIENT + b"version='1.0' to='a@b@c'>", Condition.IMPROPER_ADDRESSING),
        (HEADER_CLIENT + b"version='1.0' to=''>", Condition.IMPROPER_ADDRESSING),
        (HEADER_CLIENT + b"version='1.0' from='@example.com'>", Condition.INVALID_FROM),
        (HEADER_CLIENT + b"version='1.0' from='exa mple.com'>", Condition.INVALID_FROM),
    ],
)
def test_info_refused(engine: types.ModuleType, data: bytes, condition: Condition) -> None:
    start = header_of(engine, data)
    with pytest.raises(StreamError) as info:
        Info.from_start(start)
    assert info.value.condition is condition


@pytest.mark.parametrize("version", ["1.0", "1.1", "1.10", "01.0"])
def test_info_accepts_major_version_one(engine: types.ModuleType, version: str) -> None:
    data = HEADER_CLIENT + f"version='{version}'>".encode()
    assert Info.from_start(header_of(engine, data)).version == version


# --- stream errors -----------------------------------------------------------------


def error_through_stream(engine: types.ModuleType, err: StreamError) -> tuple[StreamError, bytes]:
    """Write ``err`` inside a stream with the header's Encoder, read it back."""
    enc = xmlstream.Encoder(ns="")
    enc.write_token(Info().start())
    enc.flush()
    enc.encode(err.tokens())
    data = enc.flush()
    p = engine.StreamParser()
    p.feed(Info().header_bytes())
    events = p.feed(data)
    assert len(events) == 1
    return StreamError.from_element(events[0]), data


@pytest.mark.parametrize("condition", list(Condition))
def test_every_condition_round_trips(engine: types.ModuleType, condition: Condition) -> None:
    err = StreamError(condition)
    back, data = error_through_stream(engine, err)
    assert back == err and back.condition is condition
    assert data == (
        f'<stream:error><{condition.value} xmlns="{NS_STREAM_ERRORS}"/></stream:error>'
    ).encode()
    # to_bytes() is right inside a stream too.
    p = engine.StreamParser()
    p.feed(Info().header_bytes())
    (el,) = p.feed(err.to_bytes())
    assert StreamError.from_element(el) == err


def test_text_lang_and_app(engine: types.ModuleType) -> None:
    app = xmlstream.Element.from_tokens(
        [
            xmlstream.StartElement(
                xmlstream.Name("urn:example:app", "escape-your-data"),
                [xmlstream.Attr(xmlstream.Name("", "why"), "1 < 2")],
            ),
            xmlstream.CharData("x"),
            xmlstream.EndElement(xmlstream.Name("urn:example:app", "escape-your-data")),
        ]
    )
    err = StreamError(
        Condition.NOT_WELL_FORMED, "Some special application diagnostic information!",
        lang="en", app=app,
    )
    back, data = error_through_stream(engine, err)
    assert back == err
    assert (back.text, back.lang) == (err.text, "en")
    assert type(back.app) is xmlstream.Element  # adopted into the engine in use
    assert back.app == app
    assert b'<text xmlns="urn:ietf:params:xml:ns:xmpp-streams" xml:lang="en">' in data
    # The error with an application element is written back as it came.
    again, _ = error_through_stream(engine, back)
    assert again == err
    assert back != StreamError(Condition.NOT_WELL_FORMED, err.text, lang="en")


def test_rfc6120_example(engine: types.ModuleType) -> None:
    # The example of RFC 6120 section 4.9.4.
    p = engine.StreamParser()
    p.feed(HEADER_CLIENT + b"version='1.0'>")
    (el,) = p.feed(
        b"<stream:error><not-well-formed xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>"
        b"<text xml:lang='en' xmlns='urn:ietf:params:xml:ns:xmpp-streams'>"
        b"Some special application diagnostic information!</text>"
        b"<escape-your-data xmlns='http://example.org/ns'/></stream:error>"
    )
    err = StreamError.from_element(el)
    assert err.condition is Condition.NOT_WELL_FORMED
    assert err.text == "Some special application diagnostic information!"
    assert err.lang == "en"
    assert err.app.name == xmlstream.Name("http://example.org/ns", "escape-your-data")
    assert err.element is el


@pytest.mark.parametrize(
    ("host", "port", "text"),
    [
        ("example.net", None, "example.net"),
        ("example.net", 5223, "example.net:5223"),
        ("192.0.2.1", 5222, "192.0.2.1:5222"),
        ("2001:db8::1", 5222, "[2001:db8::1]:5222"),
        ("2001:db8::1", None, "[2001:db8::1]"),
    ],
)
def test_see_other_host(engine: types.ModuleType, host: str, port: int | None, text: str) -> None:
    err = StreamError(Condition.SEE_OTHER_HOST, host=host, port=port)
    back, data = error_through_stream(engine, err)
    assert (back.host, back.port) == (host, port)
    assert back == err
    assert f">{text}</see-other-host>".encode() in data
    assert text in str(err)


@pytest.mark.parametrize(
    ("text", "host", "port"),
    [
        ("  example.net:5222 \n", "example.net", 5222),
        ("[::1]:5222", "::1", 5222),
        ("2001:db8::1", "2001:db8::1", None),  # unbracketed: no port
        ("example.net:0", "example.net:0", None),
        ("example.net:99999", "example.net:99999", None),
        ("example.net:", "example.net:", None),
        ("[::1]x", "[::1]x", None),
        ("[::1", "[::1", None),
        ("", None, None),
    ],
)
def test_see_other_host_text(
    engine: types.ModuleType, text: str, host: str | None, port: int | None
) -> None:
    p = engine.StreamParser()
    p.feed(Info().header_bytes())
    (el,) = p.feed(
        f"<stream:error><see-other-host xmlns='{NS_STREAM_ERRORS}'>{text}"
        "</see-other-host></stream:error>".encode()
    )
    err = StreamError.from_element(el)
    assert err.condition is Condition.SEE_OTHER_HOST
    assert (err.host, err.port) == (host, port)


def test_unknown_condition_kept(engine: types.ModuleType) -> None:
    p = engine.StreamParser()
    p.feed(Info().header_bytes())
    (el,) = p.feed(
        f"<stream:error><made-up xmlns='{NS_STREAM_ERRORS}'/>"
        f"<text xmlns='{NS_STREAM_ERRORS}'>why</text>"
        f"<text xmlns='{NS_STREAM_ERRORS}' xml:lang='de'>warum</text></stream:error>".encode()
    )
    err = StreamError.from_element(el)
    assert err.condition is Condition.UNDEFINED_CONDITION
    assert (err.text, err.lang) == ("why", None)
    assert err.element is el
    assert [c.name.local for c in err.element.children()] == ["made-up", "text", "text"]
    # An error without any condition is undefined too.
    (el,) = p.feed(b"<stream:error/>")
    assert StreamError.from_element(el).condition is Condition.UNDEFINED_CONDITION


def test_from_element_refuses_other_elements(engine: types.ModuleType) -> None:
    p = engine.StreamParser()
    p.feed(Info().header_bytes())
    (el,) = p.feed(b"<error xmlns='jabber:client'/>")
    with pytest.raises(ValueError):
        StreamError.from_element(el)


def test_to_bytes_exact() -> None:
    err = StreamError(Condition.SYSTEM_SHUTDOWN, "bye & thanks", lang="en")
    assert err.to_bytes() == (
        b'<stream:error xmlns:stream="http://etherx.jabber.org/streams">'
        b'<system-shutdown xmlns="urn:ietf:params:xml:ns:xmpp-streams"/>'
        b'<text xmlns="urn:ietf:params:xml:ns:xmpp-streams" xml:lang="en">bye &amp; thanks</text>'
        b"</stream:error>"
    )


def test_tokens_are_of_the_engine_in_use() -> None:
    toks = list(StreamError(Condition.CONFLICT, "x").tokens())
    assert {type(t) for t in toks} <= {
        xmlstream.StartElement,
        xmlstream.EndElement,
        xmlstream.CharData,
    }
    assert toks[0].name == xmlstream.Name(NS_STREAMS, "error")  # type: ignore[union-attr]


def test_stream_error_values() -> None:
    err = StreamError("host-unknown", "no such host", lang="en")
    assert err.condition is Condition.HOST_UNKNOWN
    assert str(err) == "host-unknown: no such host"
    assert repr(err) == "StreamError('host-unknown', 'no such host')"
    assert err.events == [] and err.element is None
    with pytest.raises(ValueError):
        StreamError("no-such-condition")
    back = pickle.loads(pickle.dumps(StreamError(Condition.SEE_OTHER_HOST, host="h", port=1)))
    assert (back.condition, back.host, back.port) == (Condition.SEE_OTHER_HOST, "h", 1)
    assert StreamError(Condition.RESET) != StreamError(Condition.RESET, "x")
    assert StreamError(Condition.RESET, lang="en") != StreamError(Condition.RESET)
    assert str(Condition.RESET) == "reset"


def test_engine_errors_still_marshal(engine: types.ModuleType) -> None:
    with pytest.raises(StreamError) as info:
        engine.StreamParser().feed(b"<stream:stream xmlns:stream='x'><!-- no -->")
    err = info.value
    assert err.condition is Condition.RESTRICTED_XML
    (el,) = xmlstream.StreamParser().feed(Info().header_bytes() + err.to_bytes())[1:]
    assert StreamError.from_element(el).condition is Condition.RESTRICTED_XML


def test_importable_without_the_engine() -> None:
    code = (
        "import sys, xmpp.stream\n"
        "assert 'xmpp.xmlstream' not in sys.modules, sorted(sys.modules)\n"
        "assert 'xmpp._tokens' not in sys.modules\n"
        "assert 'xmpp._tokens_py' not in sys.modules\n"
        "print('ok')\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


def test_namespaces() -> None:
    assert NS_XML == "http://www.w3.org/XML/1998/namespace"
    assert NS_STREAMS == "http://etherx.jabber.org/streams"
    assert len(Condition) == 25
