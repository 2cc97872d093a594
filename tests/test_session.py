"""The session over in-memory peers: negotiation, serve semantics, IQs, flow control."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from xmpp import xmlstream
from xmpp.mux import ServeMux
from xmpp.negotiator import NS_TLS, StreamConfig, StreamFeature
from xmpp.session import (
    Session,
    SessionClosedError,
    SessionState,
    new_session,
    receive_session,
    redact_sasl,
)
from xmpp.stanza import IQ, Condition, ErrorType, IQType, Message, MessageType, StanzaError
from xmpp.stream import NS_CLIENT, Condition as SC, StreamError
from xmpp.testing import client_server_pair, memory_pipe
from xmpp.xmlstream import CharData, Element, Name, StartElement

PING = Name("urn:xmpp:ping", "ping")
BODY = Name(NS_CLIENT, "body")


def ping_payload() -> list[Any]:
    s = StartElement(PING)
    return [s, s.end()]


def body(text: str) -> list[Any]:
    s = StartElement(BODY)
    return [s, CharData(text), s.end()]


class Recorder:
    """A handler recording every element it is given."""

    def __init__(self) -> None:
        self.elements: list[Element] = []
        self.event = asyncio.Event()

    def handle_xmpp(self, reader: Element, start: StartElement) -> None:
        assert reader.start == start
        self.elements.append(reader)
        self.event.set()

    async def wait_for(self, n: int, timeout: float = 2.0) -> None:
        async with asyncio.timeout(timeout):
            while len(self.elements) < n:
                self.event.clear()
                await self.event.wait()


async def test_pair_negotiates_ready_with_headers() -> None:
    async with client_server_pair() as (c, s):
        assert c.state & SessionState.READY
        assert s.state & SessionState.READY
        assert s.state & SessionState.RECEIVED
        assert not c.state & SessionState.RECEIVED
        assert c.in_info is not None and s.out_info is not None
        assert c.in_info.id == s.out_info.id and len(c.in_info.id) >= 16
        assert s.in_info is not None and s.in_info.to is not None
        assert str(s.in_info.to) == "example.net"
        assert c.stanza_ns == NS_CLIENT


async def test_message_reaches_the_peer_with_an_id_added() -> None:
    rec = Recorder()
    async with client_server_pair(server_handler=rec) as (c, s):
        await c.send_message(Message(type=MessageType.CHAT), body("hello"))
        await c.send(Message(type=MessageType.HEADLINE))
        await rec.wait_for(2)
    first, second = rec.elements
    assert first.name == Name(NS_CLIENT, "message")
    assert first.get("type") == "chat"
    assert first.find("body") is not None and first.find("body").text == "hello"  # type: ignore[union-attr]
    assert len(first.get("id") or "") >= 16
    assert len(second.get("id") or "") >= 16 and second.get("id") != first.get("id")


async def test_send_accepts_elements_and_token_readers_and_keeps_ids() -> None:
    rec = Recorder()
    async with client_server_pair(server_handler=rec) as (c, s):
        start = StartElement(Name(NS_CLIENT, "message"), [xmlstream.Attr(Name("", "id"), "fixed")])
        await c.send([start, *body("x"), start.end()])
        el = xmlstream.Element.from_tokens([start, start.end()])
        await c.send(el)
        nostart = StartElement(Name(NS_CLIENT, "presence"))
        await c.send(xmlstream.Element.from_tokens([nostart, nostart.end()]))
        await c.send_element(body("y"), StartElement(Name(NS_CLIENT, "message")))
        await rec.wait_for(4)
    assert [e.get("id") for e in rec.elements[:2]] == ["fixed", "fixed"]
    assert rec.elements[2].get("id")
    assert rec.elements[3].find("body").text == "y"  # type: ignore[union-attr]
    with pytest.raises(ValueError):
        async with client_server_pair() as (c, s):
            await c.send([CharData("not an element")])


async def test_send_iq_result_and_error() -> None:
    def on_ping(iq: IQ, el: Element, sess: Session) -> Any:
        return sess.send(iq.result())

    mux = ServeMux(NS_CLIENT).iq_func(IQType.GET, PING, on_ping)
    async with client_server_pair(server_handler=mux) as (c, s):
        reply = await c.send_iq(IQ(type=IQType.GET), ping_payload())
        assert reply.get("type") == "result"
        # Nobody handles this payload: service-unavailable, raised as a StanzaError.
        other = StartElement(Name("urn:example:nothing", "query"))
        with pytest.raises(StanzaError) as ei:
            await c.send_iq(IQ(type=IQType.SET), [other, other.end()])
        assert ei.value.condition is Condition.SERVICE_UNAVAILABLE
        assert ei.value.type is ErrorType.CANCEL


async def test_handler_error_reply_is_raised_by_send_iq() -> None:
    def deny(iq: IQ, el: Element, sess: Session) -> Any:
        return sess.send(iq.error(StanzaError(ErrorType.AUTH, Condition.FORBIDDEN, "no")))

    mux = ServeMux(NS_CLIENT).iq_func(None, PING, deny)
    async with client_server_pair(server_handler=mux) as (c, s):
        with pytest.raises(StanzaError) as ei:
            await c.send_iq(IQ(type=IQType.GET), ping_payload())
    assert ei.value.condition is Condition.FORBIDDEN and ei.value.text == "no"


async def test_results_and_errors_are_never_answered() -> None:
    rec = Recorder()
    async with client_server_pair(client_handler=rec) as (c, s):
        await c.send(IQ(type=IQType.RESULT, id="unsolicited"))
        await c.send(IQ(type=IQType.ERROR, id="unsolicited2"))
        # A ping afterwards: its auto-reply is the only thing the client gets back.
        await c.send(IQ(type=IQType.GET, id="p1").wrap(ping_payload()))
        await rec.wait_for(1)
        await asyncio.sleep(0.05)
    assert [e.get("id") for e in rec.elements] == ["p1"]
    assert rec.elements[0].get("type") == "error"


async def test_reply_matching_needs_id_and_stanza_name() -> None:
    """A message error carrying a pending IQ's id must not resolve that IQ."""
    rec = Recorder()

    async def tricky(iq: IQ, el: Element, sess: Session) -> None:
        fake = Message(id=iq.id, type=MessageType.ERROR)
        await sess.send(fake.wrap(None))
        pres = StartElement(Name(NS_CLIENT, "presence"), [xmlstream.Attr(Name("", "id"), iq.id), xmlstream.Attr(Name("", "type"), "error")])
        await sess.send([pres, pres.end()])
        await asyncio.sleep(0.02)
        await sess.send(iq.result(body("real")))

    mux = ServeMux(NS_CLIENT).iq_func(IQType.GET, PING, tricky)
    async with client_server_pair(client_handler=rec, server_handler=mux) as (c, s):
        reply = await c.send_iq(IQ(type=IQType.GET), ping_payload())
        assert reply.name.local == "iq"
        assert reply.find("body").text == "real"  # type: ignore[union-attr]
        await rec.wait_for(2)
    assert sorted(e.name.local for e in rec.elements) == ["message", "presence"]


async def test_reply_from_the_wrong_address_does_not_match() -> None:
    rec = Recorder()

    async def spoof(iq: IQ, el: Element, sess: Session) -> None:
        start = StartElement(
            Name(NS_CLIENT, "iq"),
            [
                xmlstream.Attr(Name("", "type"), "result"),
                xmlstream.Attr(Name("", "id"), iq.id),
                xmlstream.Attr(Name("", "from"), "mallory@evil.example"),
            ],
        )
        await sess.send([start, start.end()])
        await sess.send(iq.result())

    mux = ServeMux(NS_CLIENT).iq_func(IQType.GET, PING, spoof)
    async with client_server_pair(client_handler=rec, server_handler=mux) as (c, s):
        reply = await c.send_iq(IQ(type=IQType.GET), ping_payload())
        assert reply.get("from") is None
        await rec.wait_for(1)
    assert rec.elements[0].get("from") == "mallory@evil.example"


async def test_timeout_and_the_late_reply_goes_to_the_handler() -> None:
    rec = Recorder()

    async def slow(iq: IQ, el: Element, sess: Session) -> None:
        await asyncio.sleep(0.2)
        await sess.send(iq.result())

    mux = ServeMux(NS_CLIENT).iq_func(IQType.GET, PING, slow)
    async with client_server_pair(client_handler=rec, server_handler=mux) as (c, s):
        iq = IQ(type=IQType.GET)
        with pytest.raises(TimeoutError):
            await c.send_iq(iq, ping_payload(), timeout=0.05)
        await rec.wait_for(1)
    assert rec.elements[0].get("id") == iq.id
    assert rec.elements[0].get("type") == "result"


async def test_send_iq_without_serve_raises_at_once() -> None:
    async with client_server_pair(serve=False) as (c, s):
        with pytest.raises(RuntimeError, match="serve"):
            await asyncio.wait_for(c.send_iq(IQ(type=IQType.GET), ping_payload()), 1.0)


async def test_pending_iqs_fail_when_the_stream_ends() -> None:
    async def never(iq: IQ, el: Element, sess: Session) -> None:
        await sess.close(timeout=0.1)

    mux = ServeMux(NS_CLIENT).iq_func(IQType.GET, PING, never)
    async with client_server_pair(server_handler=mux) as (c, s):
        results = await asyncio.gather(
            *(c.send_iq(IQ(type=IQType.GET), ping_payload(), timeout=5) for _ in range(5)),
            return_exceptions=True,
        )
    assert len(results) == 5
    assert all(isinstance(r, SessionClosedError) for r in results), results


async def test_sending_from_inside_a_handler_with_send_iq() -> None:
    """The server's handler asks the client something and awaits the answer."""

    def client_pong(iq: IQ, el: Element, sess: Session) -> Any:
        return sess.send(iq.result(body("pong")))

    answers: list[str] = []

    async def on_message(msg: Message, el: Element, sess: Session) -> None:
        reply = await sess.send_iq(IQ(type=IQType.GET, to=msg.from_), ping_payload(), timeout=2)
        answers.append(reply.find("body").text)  # type: ignore[union-attr]

    cmux = ServeMux(NS_CLIENT).iq_func(IQType.GET, PING, client_pong)
    smux = ServeMux(NS_CLIENT).message_func(None, None, on_message)
    async with client_server_pair(client_handler=cmux, server_handler=smux) as (c, s):
        for _ in range(3):
            await c.send_message(Message(), body("hi"))
        async with asyncio.timeout(2):
            while len(answers) < 3:
                await asyncio.sleep(0.01)
    assert answers == ["pong"] * 3


async def test_sync_and_async_handlers() -> None:
    seen: list[str] = []

    def sync_h(reader: Element, start: StartElement) -> None:
        seen.append("sync:" + start.name.local)

    async def async_h(reader: Element, start: StartElement) -> None:
        await asyncio.sleep(0)
        seen.append("async:" + start.name.local)

    async with client_server_pair(server_handler=sync_h) as (c, s):
        await c.send(Message())
        async with asyncio.timeout(2):
            while not seen:
                await asyncio.sleep(0.01)
    async with client_server_pair(server_handler=async_h) as (c, s):
        await c.send(Message())
        async with asyncio.timeout(2):
            while len(seen) < 2:
                await asyncio.sleep(0.01)
    assert seen == ["sync:message", "async:message"]


async def test_handler_exception_becomes_undefined_condition() -> None:
    class Boom(Exception):
        pass

    def bad(reader: Element, start: StartElement) -> None:
        raise Boom("handler failed")

    ct, st = memory_pipe()
    server_task = asyncio.ensure_future(receive_session(st, "example.net"))
    c = await new_session(ct, "example.net", origin="a@example.net/r")
    s = await server_task
    sserve = asyncio.ensure_future(s.serve(bad))
    cserve = asyncio.ensure_future(c.serve())
    await c.send(Message())
    with pytest.raises(Boom):
        await asyncio.wait_for(sserve, 2)
    with pytest.raises(StreamError) as ei:
        await asyncio.wait_for(cserve, 2)
    assert ei.value.condition is SC.UNDEFINED_CONDITION


async def test_handler_stream_error_is_sent_and_serve_ends() -> None:
    def strict(reader: Element, start: StartElement) -> None:
        raise StreamError(SC.POLICY_VIOLATION, "no messages here")

    ct, st = memory_pipe()
    server_task = asyncio.ensure_future(receive_session(st, "example.net"))
    c = await new_session(ct, "example.net")
    s = await server_task
    sserve = asyncio.ensure_future(s.serve(strict))
    cserve = asyncio.ensure_future(c.serve())
    await c.send(Message())
    with pytest.raises(StreamError):
        await asyncio.wait_for(sserve, 2)
    with pytest.raises(StreamError) as ei:
        await asyncio.wait_for(cserve, 2)
    assert ei.value.condition is SC.POLICY_VIOLATION
    assert ei.value.text == "no messages here"
    assert s.state & SessionState.OUTPUT_STREAM_CLOSED
    # The receiver of a stream error knows at once that its input is over.
    assert c.state & SessionState.INPUT_STREAM_CLOSED
    assert c.state & SessionState.OUTPUT_STREAM_CLOSED


async def test_malformed_input_is_answered_with_a_stream_error() -> None:
    ct, st = memory_pipe()
    server_task = asyncio.ensure_future(receive_session(st, "example.net"))
    c = await new_session(ct, "example.net")
    s = await server_task
    sserve = asyncio.ensure_future(s.serve())
    cserve = asyncio.ensure_future(c.serve())
    c.write_raw(b"<message><body>unclosed</message>")
    with pytest.raises(StreamError) as se:
        await asyncio.wait_for(sserve, 2)
    assert se.value.condition is SC.NOT_WELL_FORMED
    with pytest.raises(StreamError) as ce:
        await asyncio.wait_for(cserve, 2)
    assert ce.value.condition is SC.NOT_WELL_FORMED


async def test_whitespace_keepalives_are_skipped() -> None:
    rec = Recorder()
    async with client_server_pair(server_handler=rec) as (c, s):
        c.write_raw(b" \n ")
        c.write_raw(b" ")
        await c.send(Message(id="after"))
        await rec.wait_for(1)
        await asyncio.sleep(0.02)
    assert [e.get("id") for e in rec.elements] == ["after"]


async def test_close_ends_serve_cleanly_on_both_sides() -> None:
    ct, st = memory_pipe()
    server_task = asyncio.ensure_future(receive_session(st, "example.net"))
    c = await new_session(ct, "example.net")
    s = await server_task
    sserve = asyncio.ensure_future(s.serve())
    cserve = asyncio.ensure_future(c.serve())
    written = ct.bytes_written
    await c.close()
    await asyncio.wait_for(sserve, 2)
    await asyncio.wait_for(cserve, 2)
    assert c.closed and s.closed
    assert ct.bytes_written - written == len(b"</stream:stream>")
    await c.close()  # once only
    assert ct.bytes_written - written == len(b"</stream:stream>")
    with pytest.raises(SessionClosedError):
        await c.send(Message())


async def test_close_is_bounded_when_the_peer_never_answers() -> None:
    ct, st = memory_pipe()
    server_task = asyncio.ensure_future(receive_session(st, "example.net"))
    c = await new_session(ct, "example.net")
    await server_task  # the server never serves, never closes
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    await c.close(timeout=0.1)
    assert loop.time() - t0 < 2.0
    assert c.state & SessionState.OUTPUT_STREAM_CLOSED


async def test_peer_vanishing_mid_stanza_is_a_clear_error() -> None:
    ct, st = memory_pipe()
    server_task = asyncio.ensure_future(receive_session(st, "example.net"))
    c = await new_session(ct, "example.net")
    s = await server_task
    sserve = asyncio.ensure_future(s.serve())
    c.write_raw(b"<message><body>half")
    await asyncio.sleep(0.01)
    ct.abort()
    with pytest.raises(SessionClosedError, match="connection lost"):
        await asyncio.wait_for(sserve, 2)


async def test_backpressure_when_the_peer_stops_reading() -> None:
    async with client_server_pair() as (c, s):
        st = s.transport
        st.pause_reading()
        ct = c.transport
        high = ct.get_write_buffer_limits()[1]
        sent = 0

        async def flood() -> None:
            nonlocal sent
            while True:
                await c.send_message(Message(), body("x" * 1000))
                sent += 1

        task = asyncio.ensure_future(flood())
        await asyncio.sleep(0.2)
        assert not task.done()
        buffered = ct.get_write_buffer_size()
        # Blocked: the buffer stopped near the high-water mark (it may pass it
        # by one coalesced write: at most a TLS record of plaintext).
        assert buffered <= high + 16 * 1024 + 2000, buffered
        before = sent
        await asyncio.sleep(0.1)
        assert sent == before
        st.resume_reading()
        async with asyncio.timeout(2):
            while sent < before + 10:
                await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


async def test_reading_pauses_when_serve_falls_behind() -> None:
    gate = asyncio.Event()
    count = 0

    async def slow(reader: Element, start: StartElement) -> None:
        nonlocal count
        await gate.wait()
        count += 1

    async with client_server_pair(server_handler=slow) as (c, s):
        for _ in range(6000):
            await c.send(Message(id="m"))
        await asyncio.sleep(0.2)
        # The server holds at most its high-water mark of parsed elements,
        # plus what one delivery of the pipe brings: the client's write buffer
        # (its high-water mark and one coalesced write of 16 KiB).
        per_delivery = (c.transport.get_write_buffer_limits()[1] + 16 * 1024) // len(b'<message id="m"/>')
        assert 4096 <= len(s._queue) <= 4096 + per_delivery
        gate.set()
        async with asyncio.timeout(10):
            while count < 6000:
                await asyncio.sleep(0.01)
    assert count == 6000


async def test_token_writer_holds_the_output_lock() -> None:
    rec = Recorder()
    async with client_server_pair(server_handler=rec) as (c, s):
        start = StartElement(Name(NS_CLIENT, "message"))
        async with c.token_writer() as w:
            w.write_token(start)
            for tok in body("by tokens"):
                w.write_token(tok)
            w.write_token(start.end())
        await rec.wait_for(1)
    el = rec.elements[0]
    assert el.find("body").text == "by tokens"  # type: ignore[union-attr]
    assert el.get("id")


async def test_pipelined_iqs() -> None:
    def on_ping(iq: IQ, el: Element, sess: Session) -> Any:
        return sess.send(iq.result())

    mux = ServeMux(NS_CLIENT).iq_func(IQType.GET, PING, on_ping)
    async with client_server_pair(server_handler=mux) as (c, s):
        replies = await asyncio.gather(*(c.send_iq(IQ(type=IQType.GET), ping_payload()) for _ in range(500)))
    assert len({r.get("id") for r in replies}) == 500


# ------------------------------------------------------------------ negotiation


def _feature(name: Name, *, required: bool, log: list[str], restart: bool = False, bits: int = 0, necessary: int = 0, prohibited: int = 0) -> StreamFeature:
    def list_(session: Session) -> tuple[bool, list[Any]]:
        s = StartElement(name)
        return required, [s, s.end()]

    def parse(session: Session, el: Element) -> tuple[bool, Any]:
        return required, el.name.local

    async def negotiate(session: Session, data: Any) -> tuple[int, bool]:
        if session.state & SessionState.RECEIVED:
            assert isinstance(data, Element) and data.name == name
            log.append("server:" + name.local)
            if restart:
                session.reset_input()
            ok = StartElement(Name(name.space, "ok"))
            session.write_raw(xmlstream.Element.from_tokens([ok, ok.end()]).encode(NS_CLIENT))
        else:
            log.append("client:" + name.local)
            s = StartElement(name)
            session.write_raw(xmlstream.Element.from_tokens([s, s.end()]).encode(NS_CLIENT))
            el = await session.read_element(2)
            assert el.name.local == "ok"
        return bits, restart

    return StreamFeature(name, necessary, prohibited, list_, parse, negotiate)


async def test_negotiation_order_state_bits_and_restart() -> None:
    log: list[str] = []
    auth = Name("urn:example:auth", "auth")
    extra = Name("urn:example:extra", "extra")
    after = Name("urn:example:after", "after")

    def features() -> list[StreamFeature]:
        return [
            _feature(auth, required=True, log=log, restart=True, bits=SessionState.AUTHN, prohibited=SessionState.AUTHN),
            _feature(extra, required=False, log=log, prohibited=SessionState.AUTHN),
            _feature(after, required=True, log=log, necessary=SessionState.AUTHN),
        ]

    async with client_server_pair(client_features=features(), server_features=features()) as (c, s):
        assert c.state & SessionState.AUTHN and s.state & SessionState.AUTHN
        assert c.negotiated == {auth, extra, after}
        assert s.negotiated == {auth, extra, after}
    client_log = [x for x in log if x.startswith("client:")]
    # Optional before required; the feature needing AUTHN only after the restart.
    assert client_log == ["client:extra", "client:auth", "client:after"]


async def test_selecting_a_feature_not_offered_is_a_policy_violation() -> None:
    log: list[str] = []
    a = Name("urn:example:a", "a")
    b = Name("urn:example:b", "b")
    ct, st = memory_pipe()
    scfg = StreamConfig(features=[_feature(a, required=True, log=log)])
    server = asyncio.ensure_future(receive_session(st, "example.net", config=scfg))
    # The client knows only feature b and selects it (as if advertised).
    fb = _feature(b, required=True, log=log)
    hijack = StreamFeature(a, 0, 0, None, lambda s, el: (True, None), fb.negotiate)
    with pytest.raises(StreamError) as ce:
        await new_session(ct, "example.net", config=StreamConfig(features=[hijack]))
    with pytest.raises(StreamError) as se:
        await server
    assert se.value.condition is SC.POLICY_VIOLATION
    assert ce.value.condition is SC.POLICY_VIOLATION


async def test_starttls_is_attempted_even_when_not_advertised() -> None:
    tried: list[Any] = []

    async def negotiate(session: Session, data: Any) -> tuple[int, bool]:
        tried.append(data)
        start = StartElement(Name(NS_TLS, "starttls"))
        session.write_raw(xmlstream.Element.from_tokens([start, start.end()]).encode(NS_CLIENT))
        await session.read_element(2)
        raise AssertionError("the server must not accept")

    tls = StreamFeature(Name(NS_TLS, "starttls"), 0, SessionState.SECURE, None, lambda s, el: (True, el), negotiate)
    ct, st = memory_pipe()
    server = asyncio.ensure_future(receive_session(st, "example.net", config=StreamConfig(features=[_feature(Name("urn:example:a", "a"), required=True, log=[])])))
    with pytest.raises(StreamError) as ce:
        await new_session(ct, "example.net", config=StreamConfig(features=[tls]))
    assert tried == [None]
    assert ce.value.condition is SC.POLICY_VIOLATION
    with pytest.raises(StreamError):
        await server


async def test_wrong_domain_is_host_unknown() -> None:
    ct, st = memory_pipe()
    server = asyncio.ensure_future(receive_session(st, "example.net"))
    with pytest.raises(StreamError) as ce:
        await new_session(ct, "other.example")
    assert ce.value.condition is SC.HOST_UNKNOWN
    with pytest.raises(StreamError):
        await server


async def test_negotiation_times_out_on_a_silent_peer() -> None:
    ct, st = memory_pipe()
    with pytest.raises(TimeoutError):
        await new_session(ct, "example.net", config=StreamConfig(timeout=0.1))


async def test_tees_copy_every_byte_and_redact_sasl() -> None:
    cin: list[bytes] = []
    cout: list[bytes] = []
    ccfg = StreamConfig(tee_in=cin.append, tee_out=cout.append)
    async with client_server_pair(client_config=ccfg) as (c, s):
        await c.send(Message(id="teed"))
        await asyncio.sleep(0.02)
    out = b"".join(cout)
    assert out.startswith(b"<?xml") and b'id="teed"' in out and out.endswith(b"</stream:stream>")
    assert b"<stream:features" in b"".join(cin)
    sasl = "urn:ietf:params:xml:ns:xmpp-sasl"
    auth = StartElement(Name(sasl, "auth"), [xmlstream.Attr(Name("", "mechanism"), "PLAIN")])
    shown = redact_sasl([auth, CharData("AGFsaWNlAHNlY3JldA=="), auth.end()])
    assert b"AGFsaWNl" not in shown and b"[redacted]" in shown and b"PLAIN" in shown


async def test_a_handler_writing_to_a_closed_stream_ends_serve_quietly() -> None:
    """A reply that finds the output already closed is the stream ending,
    not a handler failure: serve returns, no undefined-condition."""
    ct, st = memory_pipe()
    server_task = asyncio.ensure_future(receive_session(st, "example.net"))
    c = await new_session(ct, "example.net")
    s = await server_task

    async def late(reader: Element, start: StartElement) -> None:
        await s.close(timeout=0.5)
        await s.send(Message(id="too-late"))

    sserve = asyncio.ensure_future(s.serve(late))
    cserve = asyncio.ensure_future(c.serve())
    await c.send(Message())
    await asyncio.wait_for(sserve, 2)  # returns: no exception
    await asyncio.wait_for(cserve, 2)
    assert s.closed
