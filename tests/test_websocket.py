"""xmpp.websocket over loopback TCP: our client, our receiving side, and scripted peers.

The scripted peers speak WebSocket through wsproto directly (no xmpp code),
so they see exactly the frames our side sends and can misbehave on purpose:
refuse the subprotocol, answer an HTTP error, close in the middle of a frame,
send binary messages, redirect with ``see-other-uri``.  Host-meta discovery
(XEP-0156) is fetched from a tiny HTTPS server on loopback with a generated
certificate.  Every wait is bounded.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from wsproto import ConnectionType, WSConnection
from wsproto.events import (
    AcceptConnection,
    BytesMessage,
    CloseConnection,
    Event,
    Ping,
    Pong,
    RejectConnection,
    RejectData,
    Request,
    TextMessage,
)

from xmpp import websocket
from xmpp.jid import JID
from xmpp.sasl import MemoryCredentialStore, SASLError
from xmpp.session import Session, SessionClosedError, SessionState
from xmpp.stanza import IQ, IQType, MessageType
from xmpp.stanza import Message as MessageStanza
from xmpp.stream import NS_CLIENT, StreamError
from xmpp.testing import TestCertificate
from xmpp.xmlstream import CharData, Element, Name, StartElement

TIMEOUT = 10.0
PASSWORD = "correct horse battery staple"
USERS = {"alice": PASSWORD, "bob": "bobs password"}
FRAMING = websocket.NS_FRAMING
BODY = Name(NS_CLIENT, "body")


async def bounded(aw: Awaitable[Any], what: str, timeout: float = TIMEOUT) -> Any:
    """Await ``aw`` at most ``timeout`` seconds; fail the test naming ``what`` after that."""
    try:
        return await asyncio.wait_for(aw, timeout)
    except asyncio.TimeoutError:
        pytest.fail(f"{what} did not finish within {timeout} s")


def body(text: str) -> list[Any]:
    s = StartElement(BODY)
    return [s, CharData(text), s.end()]


@pytest.fixture(scope="module")
def cert() -> TestCertificate:
    return TestCertificate(["localhost", "127.0.0.1"])


# ---------------------------------------------------------------------------
# Our receiving side


class OurServer:
    """:func:`xmpp.websocket.start_server` on loopback; records every session and what it received."""

    def __init__(self) -> None:
        self.sessions: list[Session] = []
        self.received: asyncio.Queue[Element] = asyncio.Queue()
        self.server: asyncio.Server | None = None
        self.port = 0

    async def on_session(self, session: Session) -> None:
        self.sessions.append(session)

        async def handle(el: Element, start: StartElement) -> None:
            if start.name.local == "iq" and start.get("type") == "get":
                reply = IQ.from_element(el).result(None, session.stanza_ns)
                await session.send(reply)
            else:
                self.received.put_nowait(el)

        await session.serve(handle)


@contextlib.asynccontextmanager
async def our_server(ssl_context: ssl.SSLContext | None = None, **kw: Any) -> AsyncIterator[OurServer]:
    s = OurServer()
    s.server = await websocket.start_server(
        s.on_session,
        "127.0.0.1",
        0,
        domain="localhost",
        store=MemoryCredentialStore(USERS),
        ssl_context=ssl_context,
        allow_plaintext=ssl_context is None,
        timeout=TIMEOUT,
        **kw,
    )
    s.port = s.server.sockets[0].getsockname()[1]
    try:
        yield s
    finally:
        s.server.close()
        for session in s.sessions:
            await session.close(timeout=1.0)
        await s.server.wait_closed()


async def dial(url: str | None, jid: str = "alice@localhost", password: str = PASSWORD, **kw: Any) -> Session:
    kw.setdefault("timeout", TIMEOUT)
    if url is not None and url.startswith("ws://"):
        kw.setdefault("allow_plaintext", True)
    session: Session = await bounded(websocket.dial_session(url, jid, password, **kw), "dial_session", TIMEOUT + 1)
    return session


async def test_login_messages_both_ways_and_close() -> None:
    async with our_server() as srv:
        out: list[bytes] = []
        client = await dial(f"ws://127.0.0.1:{srv.port}/xmpp-websocket", "alice@localhost/web", tee_out=out.append)
        assert client.state & SessionState.READY and client.state & SessionState.AUTHN
        assert client.local_addr == JID.parse("alice@localhost/web")
        assert client.transport.get_extra_info("subprotocol") == "xmpp"
        # The console shows the session's stream; SASL was negotiated (SCRAM by default).
        assert b"SCRAM-SHA-" in b"".join(out)
        got: asyncio.Queue[Element] = asyncio.Queue()

        def on_el(el: Element, start: StartElement) -> None:
            got.put_nowait(el)

        task = asyncio.ensure_future(client.serve(on_el))
        await bounded(_until(lambda: bool(srv.sessions)), "the server session")
        server = srv.sessions[0]
        assert server.remote_addr == JID.parse("alice@localhost/web")

        # Client -> server: a burst (the session coalesces writes; each stanza is still one message).
        for i in range(50):
            await client.send_message(MessageStanza(to=JID.parse("localhost"), type=MessageType.CHAT), body(f"m{i} <&>"))
        for i in range(50):
            el: Element = await bounded(srv.received.get(), f"message {i} at the server")
            b = el.find("body")
            assert b is not None and b.text == f"m{i} <&>"
        # Server -> client.
        await server.send_message(MessageStanza(to=client.local_addr, type=MessageType.CHAT), body("hello web"))
        el = await bounded(got.get(), "message at the client")
        b = el.find("body")
        assert el.name == Name(NS_CLIENT, "message") and b is not None and b.text == "hello web"
        # An IQ round trip through send_iq (the server's handler answers gets).
        reply = await client.send_iq(IQ(to=JID.parse("localhost"), type=IQType.GET), [StartElement(Name("urn:xmpp:ping", "ping")), StartElement(Name("urn:xmpp:ping", "ping")).end()], timeout=TIMEOUT)
        assert reply.get("type") == "result"

        await bounded(client.close(timeout=TIMEOUT), "closing")
        assert await bounded(task, "serve ending") is None
        assert client.closed and client.state & SessionState.INPUT_STREAM_CLOSED
        await bounded(_until(lambda: server.closed), "the server session closing")


async def test_wss_login(cert: TestCertificate) -> None:
    async with our_server(cert.server_context()) as srv:
        client = await dial(
            f"wss://localhost:{srv.port}/xmpp-websocket", tls_context=cert.client_context(), mechanisms=["PLAIN"]
        )
        assert client.tls is not None and client.state & SessionState.SECURE
        await bounded(client.close(timeout=TIMEOUT), "closing")


async def test_wss_untrusted_certificate(cert: TestCertificate) -> None:
    stranger = TestCertificate(["localhost"])
    async with our_server(cert.server_context()) as srv:
        with pytest.raises(ssl.SSLCertVerificationError):
            await dial(f"wss://localhost:{srv.port}/xmpp-websocket", tls_context=stranger.client_context())


async def test_wrong_password() -> None:
    async with our_server() as srv:
        with pytest.raises(SASLError):
            await dial(f"ws://127.0.0.1:{srv.port}/xmpp-websocket", password="wrong")


async def test_plain_ws_needs_allow_plaintext() -> None:
    with pytest.raises(ValueError, match="allow_plaintext"):
        await websocket.dial_session("ws://127.0.0.1:9/x", "alice@localhost", PASSWORD, timeout=TIMEOUT)
    with pytest.raises(ValueError, match="allow_plaintext"):
        await websocket.start_server(lambda s: asyncio.sleep(0), "127.0.0.1", 0, domain="localhost")


async def test_wrong_path_is_404() -> None:
    async with our_server() as srv:
        with pytest.raises(websocket.WebSocketHandshakeError) as err:
            await dial(f"ws://127.0.0.1:{srv.port}/elsewhere")
        assert err.value.status == 404


async def _until(cond: Callable[[], bool]) -> None:
    for _ in range(2000):
        if cond():
            return
        await asyncio.sleep(0.005)
    raise AssertionError("condition not reached")


# ---------------------------------------------------------------------------
# Scripted peers on wsproto


class Peer:
    """One end of a WebSocket on asyncio streams, moved by wsproto directly."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, kind: ConnectionType) -> None:
        self.reader = reader
        self.writer = writer
        self.ws = WSConnection(kind)
        self.pending: list[Event] = []

    def send(self, event: Event) -> None:
        self.writer.write(self.ws.send(event))

    def text(self, data: str) -> None:
        self.send(TextMessage(data=data))

    async def event(self) -> Event | None:
        """The next event (``None`` at end of stream)."""
        while not self.pending:
            data = await asyncio.wait_for(self.reader.read(65536), TIMEOUT)
            if not data:
                return None
            self.ws.receive_data(data)
            self.pending.extend(self.ws.events())
        return self.pending.pop(0)

    async def message(self) -> str:
        """The next complete text message (pings answered on the way)."""
        parts: list[str] = []
        while True:
            ev = await self.event()
            if ev is None:
                raise EOFError("the connection closed")
            if isinstance(ev, Ping):
                self.send(ev.response())
            elif isinstance(ev, TextMessage):
                parts.append(ev.data)
                if ev.message_finished:
                    return "".join(parts)
            elif isinstance(ev, CloseConnection):
                raise EOFError(f"closed: {ev.code}")

    async def accept(self, subprotocol: str | None = "xmpp") -> Request:
        ev = await self.event()
        assert isinstance(ev, Request), ev
        self.send(AcceptConnection(subprotocol=subprotocol))
        return ev


@contextlib.asynccontextmanager
async def scripted(script: Callable[[Peer], Awaitable[None]]) -> AsyncIterator[tuple[str, list[BaseException]]]:
    """A loopback server running ``script`` on each connection; yields its URL and the script failures."""
    failures: list[BaseException] = []
    tasks: set[asyncio.Task[None]] = set()

    async def run(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = Peer(reader, writer, ConnectionType.SERVER)
        try:
            await script(peer)
        except (EOFError, ConnectionError):
            pass
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            failures.append(exc)
        finally:
            writer.close()

    def start(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        t = asyncio.ensure_future(run(reader, writer))
        tasks.add(t)
        t.add_done_callback(tasks.discard)

    server = await asyncio.start_server(start, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"ws://127.0.0.1:{port}/xmpp-websocket", failures
    finally:
        server.close()
        for t in list(tasks):
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await server.wait_closed()


def features(*children: str) -> str:
    return "<stream:features xmlns:stream='http://etherx.jabber.org/streams'>" + "".join(children) + "</stream:features>"


OPEN_REPLY = f"<open xmlns='{FRAMING}' from='localhost' id='s1' version='1.0' xml:lang='en'/>"
MECHS = "<mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><mechanism>PLAIN</mechanism></mechanisms>"
BIND = "<bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/>"


async def scripted_login(peer: Peer, seen: list[str]) -> None:
    """Play the server through PLAIN and bind, noting every message received."""
    await peer.accept()
    seen.append(await peer.message())  # <open/>
    peer.text(OPEN_REPLY)
    peer.text(features(MECHS))
    seen.append(await peer.message())  # <auth/>
    peer.text("<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>")
    seen.append(await peer.message())  # <open/> again
    peer.text(OPEN_REPLY)
    peer.text(features(BIND))
    bind_iq = await peer.message()
    seen.append(bind_iq)
    iq_id = re.search(r'id="([^"]+)"', bind_iq).group(1)  # type: ignore[union-attr]
    peer.text(
        f"<iq xmlns='jabber:client' type='result' id='{iq_id}'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>"
        "<jid>alice@localhost/r</jid></bind></iq>"
    )


async def test_wire_framing_one_element_per_message() -> None:
    """What our client sends: <open/> in the framing namespace, one namespace-complete element per
    message (also for a burst the session coalesces), <close/> for the end of the stream."""
    seen: list[str] = []
    done = asyncio.Event()

    async def script(peer: Peer) -> None:
        await scripted_login(peer, seen)
        for _ in range(20):
            seen.append(await peer.message())
        seen.append(await peer.message())  # <close/>
        peer.text(f"<close xmlns='{FRAMING}'/>")
        ev = await peer.event()
        while ev is not None and not isinstance(ev, CloseConnection):
            ev = await peer.event()
        assert isinstance(ev, CloseConnection) and ev.code == 1000
        peer.send(ev.response())
        done.set()

    async with scripted(script) as (url, failures):
        client = await dial(url, mechanisms=["PLAIN"])
        assert str(client.local_addr) == "alice@localhost/r"
        for i in range(20):
            await client.send_message(MessageStanza(to=JID.parse("bob@localhost"), type=MessageType.CHAT), body(str(i)))
        await bounded(client.close(timeout=TIMEOUT), "closing")
        await bounded(done.wait(), "the scripted peer")
        assert not failures, failures
    open1, auth, open2, bind_iq, *messages, close = seen
    for o in (open1, open2):
        assert o == f"<open xmlns='{FRAMING}' to=\"localhost\" from=\"alice@localhost\" version=\"1.0\"/>", o
    assert auth.startswith('<auth xmlns="urn:ietf:params:xml:ns:xmpp-sasl" mechanism="PLAIN">')
    assert bind_iq.startswith('<iq xmlns="jabber:client"') and bind_iq.endswith("</iq>")
    assert len(messages) == 20
    for i, m in enumerate(messages):
        assert m.startswith('<message xmlns="jabber:client" ') and m.endswith(f"<body>{i}</body></message>"), m
    assert close == f"<close xmlns='{FRAMING}'/>"


async def test_our_server_frames() -> None:
    """What our receiving side sends a raw client: <open/> with from and id, features as one
    message with the stream prefix declared, and a refusal of a second <open/> never needed."""
    async with our_server() as srv:
        reader, writer = await asyncio.open_connection("127.0.0.1", srv.port)
        peer = Peer(reader, writer, ConnectionType.CLIENT)
        try:
            peer.send(Request(host="127.0.0.1", target="/xmpp-websocket", subprotocols=["xmpp"]))
            ev = await peer.event()
            assert isinstance(ev, AcceptConnection) and ev.subprotocol == "xmpp"
            peer.text(f"<open xmlns='{FRAMING}' to='localhost' version='1.0'/>")
            opened = await peer.message()
            assert opened.startswith(f"<open xmlns='{FRAMING}'") and opened.endswith("/>")
            assert 'from="localhost"' in opened and 'version="1.0"' in opened and ' id="' in opened
            feats = await peer.message()
            assert feats.startswith("<stream:features xmlns:stream='http://etherx.jabber.org/streams'>")
            assert "<mechanism>SCRAM-SHA-256</mechanism>" in feats and feats.endswith("</stream:features>")
            # Closing during negotiation: the server ends the WebSocket with a close frame.
            peer.text(f"<close xmlns='{FRAMING}'/>")
            ev = await peer.event()
            while isinstance(ev, TextMessage):
                assert ev.data == f"<close xmlns='{FRAMING}'/>"
                ev = await peer.event()
            assert isinstance(ev, CloseConnection) and ev.code == 1000
            assert await asyncio.wait_for(reader.read(), TIMEOUT) == b""
        finally:
            writer.close()


async def test_server_refuses_client_without_subprotocol() -> None:
    loop = asyncio.get_running_loop()
    accepted: asyncio.Future[asyncio.BaseTransport] = loop.create_future()

    def factory() -> asyncio.Protocol:
        proto = websocket.server_protocol_factory()
        orig = proto.connection_made

        def made(t: asyncio.BaseTransport) -> None:
            orig(t)
            if not accepted.done():
                accepted.set_result(t)

        proto.connection_made = made  # type: ignore[method-assign,assignment]
        return proto

    server = await loop.create_server(factory, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        raw = await bounded(accepted, "the accepted connection")
        refused = asyncio.ensure_future(
            websocket.receive_session(raw, "localhost", store=MemoryCredentialStore(USERS), allow_plaintext=True, timeout=TIMEOUT)
        )
        peer = Peer(reader, writer, ConnectionType.CLIENT)
        peer.send(Request(host="127.0.0.1", target="/xmpp-websocket"))
        ev = await peer.event()
        assert isinstance(ev, RejectConnection) and ev.status_code == 400
        ev = await peer.event()
        assert isinstance(ev, RejectData) and b"xmpp" in ev.data
        with pytest.raises(websocket.WebSocketHandshakeError, match="subprotocol"):
            await bounded(refused, "receive_session")
        assert await asyncio.wait_for(reader.read(), TIMEOUT) == b""  # the server closed the connection
        writer.close()
    finally:
        server.close()
        await server.wait_closed()


async def test_client_refuses_server_without_subprotocol() -> None:
    async def script(peer: Peer) -> None:
        await peer.accept(subprotocol=None)
        await peer.event()

    async with scripted(script) as (url, failures):
        with pytest.raises(websocket.WebSocketHandshakeError, match="did not select the 'xmpp'"):
            await dial(url)
        assert not failures


async def test_http_error_status() -> None:
    async def script(peer: Peer) -> None:
        ev = await peer.event()
        assert isinstance(ev, Request)
        peer.send(RejectConnection(status_code=403, headers=[(b"content-length", b"9")], has_body=True))
        peer.send(RejectData(data=b"forbidden"))

    async with scripted(script) as (url, failures):
        with pytest.raises(websocket.WebSocketHandshakeError) as err:
            await dial(url)
        assert err.value.status == 403 and "403" in str(err.value) and "forbidden" in str(err.value)
        assert not failures


@pytest.mark.parametrize("how", ["mid-frame", "mid-message", "no-close-frame"])
async def test_peer_vanishing(how: str) -> None:
    """The server drops the connection during negotiation: a clear WebSocketError, nothing hangs."""

    async def script(peer: Peer) -> None:
        await peer.accept()
        await peer.message()
        if how == "mid-frame":
            frame = peer.ws.send(TextMessage(data=OPEN_REPLY))
            peer.writer.write(frame[: len(frame) // 2])
        elif how == "mid-message":
            peer.send(TextMessage(data=OPEN_REPLY[:10], message_finished=False))
        await peer.writer.drain()
        peer.writer.close()

    async with scripted(script) as (url, failures):
        with pytest.raises(websocket.WebSocketError) as err:
            await dial(url)
        assert err.value.code == 1006
        expected = {
            "mid-frame": "lost in the middle of a WebSocket frame",
            "mid-message": "lost in the middle of a WebSocket message",
            "no-close-frame": "lost without a WebSocket close",
        }[how]
        assert expected in str(err.value)
        assert not failures


async def test_binary_message_is_refused() -> None:
    codes: list[int] = []

    async def script(peer: Peer) -> None:
        await peer.accept()
        await peer.message()
        peer.send(BytesMessage(data=b"<open/>"))
        while True:
            ev = await peer.event()
            if ev is None:
                return
            if isinstance(ev, CloseConnection):
                codes.append(ev.code)
                return

    async with scripted(script) as (url, failures):
        with pytest.raises(websocket.WebSocketError, match="binary") as err:
            await dial(url)
        assert err.value.code == 1003
        assert codes == [1003]
        assert not failures


async def test_close_frame_with_error_code() -> None:
    async def script(peer: Peer) -> None:
        await peer.accept()
        await peer.message()
        peer.send(CloseConnection(code=1011, reason="server bug"))
        await peer.event()

    async with scripted(script) as (url, failures):
        with pytest.raises(websocket.WebSocketError, match="1011: server bug") as err:
            await dial(url)
        assert err.value.code == 1011


async def test_handshake_timeout() -> None:
    async def script(peer: Peer) -> None:
        await asyncio.sleep(TIMEOUT)  # never answers the upgrade

    async with scripted(script) as (url, failures):
        with pytest.raises(TimeoutError, match="did not finish within"):
            await websocket.dial_session(url, "alice@localhost", PASSWORD, allow_plaintext=True, timeout=0.3)


async def test_websocket_ping_is_answered() -> None:
    pongs: list[bytes] = []

    async def script(peer: Peer) -> None:
        await scripted_login(peer, [])
        peer.send(Ping(payload=b"are you there"))
        while True:
            ev = await peer.event()
            if ev is None:
                return
            if isinstance(ev, Pong):
                pongs.append(bytes(ev.payload))
                peer.text(f"<close xmlns='{FRAMING}'/>")

    async with scripted(script) as (url, failures):
        client = await dial(url, mechanisms=["PLAIN"])
        # The peer's <close/> ends serve cleanly, after the pong went out.
        assert await bounded(client.serve(lambda el, start: None), "serve") is None
        assert pongs == [b"are you there"]
        assert client.closed
        assert not failures


async def test_stream_error_frame_ends_serve() -> None:
    async def script(peer: Peer) -> None:
        await scripted_login(peer, [])
        peer.text(
            "<stream:error xmlns:stream='http://etherx.jabber.org/streams'>"
            "<system-shutdown xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error>"
        )
        peer.text(f"<close xmlns='{FRAMING}'/>")
        await peer.event()

    async with scripted(script) as (url, failures):
        client = await dial(url, mechanisms=["PLAIN"])
        with pytest.raises(StreamError) as err:
            await bounded(client.serve(lambda el, start: None), "serve")
        assert err.value.condition.value == "system-shutdown"
        await bounded(client.close(timeout=1.0), "closing")
        assert client.closed


async def test_see_other_uri_is_followed_once() -> None:
    async with our_server() as srv:
        target = f"ws://127.0.0.1:{srv.port}/xmpp-websocket"

        async def script(peer: Peer) -> None:
            await peer.accept()
            await peer.message()
            peer.text(f"<close xmlns='{FRAMING}' see-other-uri='{target}'/>")
            await peer.event()

        async with scripted(script) as (url, failures):
            client = await dial(url)
            assert client.state & SessionState.READY and str(client.local_addr.bare()) == "alice@localhost"  # type: ignore[union-attr]
            await bounded(client.close(timeout=TIMEOUT), "closing")
            assert not failures


async def test_see_other_uri_loop_is_bounded() -> None:
    hits: list[int] = []

    async def script(peer: Peer) -> None:
        await peer.accept()
        await peer.message()
        hits.append(1)
        peer.text(f"<close xmlns='{FRAMING}' see-other-uri='{url}'/>")
        await peer.event()

    async with scripted(script) as (url, failures):
        with pytest.raises(websocket.WebSocketError, match="not followed"):
            await dial(url, max_redirects=2)
        assert len(hits) == 3


async def test_see_other_uri_never_downgrades() -> None:
    async def script(peer: Peer) -> None:
        await peer.accept()
        await peer.message()
        peer.text(f"<close xmlns='{FRAMING}' see-other-uri='ws://127.0.0.1:9/plain'/>")
        await peer.event()

    cert = TestCertificate(["localhost"])
    async with scripted(script) as (url, failures):
        port = int(url.split(":")[2].split("/")[0])
        # A TLS front for the scripted peer: a proxy is overkill, so serve TLS from a second listener.
        tls_server = await asyncio.start_server(
            lambda r, w: asyncio.ensure_future(_relay(r, w, port)), "127.0.0.1", 0, ssl=cert.server_context()
        )
        tls_port = tls_server.sockets[0].getsockname()[1]
        try:
            with pytest.raises(websocket.WebSocketError, match="from wss:// to plain"):
                await dial(f"wss://localhost:{tls_port}/xmpp-websocket", tls_context=cert.client_context())
        finally:
            tls_server.close()
            await tls_server.wait_closed()


async def _relay(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, port: int) -> None:
    """Relay one TLS-terminated connection to the plain scripted peer on ``port`` (bounded)."""
    r2, w2 = await asyncio.open_connection("127.0.0.1", port)

    async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
        with contextlib.suppress(Exception):
            while data := await asyncio.wait_for(src.read(65536), TIMEOUT):
                dst.write(data)
        dst.close()

    await asyncio.gather(pipe(reader, w2), pipe(r2, writer))


async def test_session_closed_error_after_ready() -> None:
    """The server vanishes after login: serve raises SessionClosedError caused by the WebSocketError."""

    async def script(peer: Peer) -> None:
        await scripted_login(peer, [])
        peer.writer.transport.abort()

    async with scripted(script) as (url, failures):
        client = await dial(url, mechanisms=["PLAIN"])
        with pytest.raises(SessionClosedError) as err:
            await bounded(client.serve(lambda el, start: None), "serve")
        assert isinstance(err.value.__cause__, websocket.WebSocketError)
        await bounded(client.close(timeout=1.0), "closing")
        assert client.closed


# ---------------------------------------------------------------------------
# Host-meta (XEP-0156)

JSON_SAMPLE = b"""{
  "links": [
    {"rel": "urn:xmpp:alt-connections:xbosh", "href": "https://example.org/http-bind"},
    {"rel": "urn:xmpp:alt-connections:websocket", "href": "wss://example.org/xmpp-websocket"},
    {"rel": "urn:xmpp:alt-connections:websocket", "href": "https://not-a-websocket.example"},
    {"rel": "urn:xmpp:alt-connections:websocket"},
    "junk",
    {"rel": "urn:xmpp:alt-connections:websocket", "href": "ws://example.org:5280/ws"}
  ]
}"""

XRD_SAMPLE = b"""<?xml version='1.0' encoding='utf-8'?>
<XRD xmlns='http://docs.oasis-open.org/ns/xri/xrd-1.0'>
  <Link rel="urn:xmpp:alt-connections:xbosh" href="https://example.org/http-bind"/>
  <Link rel="urn:xmpp:alt-connections:websocket" href="wss://example.org/ws"/>
  <Link rel="urn:xmpp:alt-connections:websocket" href="mailto:nobody@example.org"/>
  <Other rel="urn:xmpp:alt-connections:websocket" href="wss://wrong.example/"/>
</XRD>"""


def test_parse_host_meta_json() -> None:
    assert websocket.parse_host_meta_json(JSON_SAMPLE) == [
        "wss://example.org/xmpp-websocket",
        "ws://example.org:5280/ws",
    ]
    assert websocket.parse_host_meta_json("{}") == []
    assert websocket.parse_host_meta_json('{"links": 3}') == []
    with pytest.raises(ValueError):
        websocket.parse_host_meta_json(b"<XRD/>")


def test_parse_host_meta_xrd() -> None:
    assert websocket.parse_host_meta_xrd(XRD_SAMPLE) == ["wss://example.org/ws"]
    with pytest.raises(ValueError, match="not an XRD"):
        websocket.parse_host_meta_xrd(b"<html><body/></html>")
    with pytest.raises(StreamError):  # restricted XML: no DTD, no entities
        websocket.parse_host_meta_xrd(
            b"<!DOCTYPE XRD [<!ENTITY x 'wss://evil.example/'>]>"
            b"<XRD xmlns='http://docs.oasis-open.org/ns/xri/xrd-1.0'><Link rel='urn:xmpp:alt-connections:websocket' href='&x;'/></XRD>"
        )
    with pytest.raises(ValueError, match="truncated"):
        websocket.parse_host_meta_xrd(b"<XRD xmlns='http://docs.oasis-open.org/ns/xri/xrd-1.0'><Link")


@contextlib.asynccontextmanager
async def https_server(cert: TestCertificate, docs: dict[str, tuple[int, bytes]]) -> AsyncIterator[tuple[int, list[str]]]:
    """A tiny HTTPS server on loopback answering GET paths from ``docs``; yields its port and the paths asked."""
    asked: list[str] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), TIMEOUT)
            path = head.split(b" ")[1].decode()
            asked.append(path)
            status, data = docs.get(path, (404, b"not found"))
            writer.write(
                f"HTTP/1.1 {status} X\r\nContent-Length: {len(data)}\r\nConnection: close\r\n\r\n".encode() + data
            )
            await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.TimeoutError, ssl.SSLError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=cert.server_context())
    try:
        yield server.sockets[0].getsockname()[1], asked
    finally:
        server.close()
        await server.wait_closed()


async def test_discover_json(cert: TestCertificate) -> None:
    async with https_server(cert, {"/.well-known/host-meta.json": (200, JSON_SAMPLE)}) as (port, asked):
        found = await websocket.discover("localhost", tls_context=cert.client_context(), port=port, timeout=TIMEOUT)
    assert found == ["wss://example.org/xmpp-websocket", "ws://example.org:5280/ws"]
    assert asked == ["/.well-known/host-meta.json"]


async def test_discover_falls_back_to_xrd(cert: TestCertificate) -> None:
    docs = {"/.well-known/host-meta": (200, XRD_SAMPLE)}
    async with https_server(cert, docs) as (port, asked):
        found = await websocket.discover("localhost", tls_context=cert.client_context(), port=port, timeout=TIMEOUT)
    assert found == ["wss://example.org/ws"]
    assert asked == ["/.well-known/host-meta.json", "/.well-known/host-meta"]


async def test_discover_nothing_and_failures(cert: TestCertificate) -> None:
    docs = {"/.well-known/host-meta.json": (200, b'{"links": []}')}
    async with https_server(cert, docs) as (port, _):
        assert await websocket.discover("localhost", tls_context=cert.client_context(), port=port) == []
    async with https_server(cert, {}) as (port, _):
        with pytest.raises(websocket.WebSocketError, match="HTTP 404"):
            await websocket.discover("localhost", tls_context=cert.client_context(), port=port)
    async with https_server(cert, {}) as (port, _):
        with pytest.raises(ssl.SSLCertVerificationError):
            await websocket.discover("localhost", tls_context=TestCertificate(["localhost"]).client_context(), port=port)


async def test_dial_session_discovers_the_endpoint(cert: TestCertificate) -> None:
    """No URL: dial_session reads host-meta (over verified HTTPS) and logs in at the endpoint it names."""
    async with our_server(cert.server_context()) as srv:
        doc = (
            b'{"links": [{"rel": "urn:xmpp:alt-connections:websocket", "href": "wss://localhost:%d/xmpp-websocket"}]}'
            % srv.port
        )
        async with https_server(cert, {"/.well-known/host-meta.json": (200, doc)}) as (port, asked):
            client = await dial(None, tls_context=cert.client_context(), discovery_port=port)
            assert client.state & SessionState.READY and client.tls is not None
            await bounded(client.close(timeout=TIMEOUT), "closing")
