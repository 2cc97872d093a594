"""ResilientClient (xmpp.resilient) against a loopback server of ours with stream
management, through tests/adversity.py's FaultProxy: cuts, resumption,
renegotiation, permanent errors, cancellation, the outage queue, liveness."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import random
from collections.abc import AsyncIterator
from typing import Any

import pytest

from xmpp import sid
from xmpp.bind import bind
from xmpp.jid import JID
from xmpp.negotiator import StreamConfig
from xmpp.resilient import (
    DeadPeerError,
    Event,
    EventKind,
    QueueFull,
    ResilientClient,
    backoff_delay,
    is_permanent,
)
from xmpp.sasl import MemoryCredentialStore, SASLCondition, SASLError, sasl_server
from xmpp.session import Session, protocol_factory, receive_session
from xmpp.sm import SMStore, sm_server
from xmpp.stanza import IQ, Message, MessageType
from xmpp.starttls import starttls
from xmpp.stream import NS_CLIENT, Condition, StreamError
from xmpp.testing import TestCertificate
from xmpp.xmlstream import Element, StartElement

import adversity

DOMAIN = "localhost"
PASSWORD = "correct horse"
TIMEOUT = 5.0


class SMServer:
    """A loopback c2s listener of our own receiving side with stream management.

    STARTTLS, SASL (SCRAM), bind and ``sm_server`` over one :class:`SMStore`;
    it answers pings (unless ``answer_pings`` is false), counts every
    message's origin-id in ``received`` and counts accepted connections.
    """

    def __init__(self, users: dict[str, str], *, sm_max: int = 60) -> None:
        self.cert = TestCertificate([DOMAIN, "127.0.0.1"])
        self.creds = MemoryCredentialStore(users)
        self.store = SMStore(max=sm_max)
        self.received: collections.Counter[str] = collections.Counter()
        self.accepted = 0
        self.sessions: list[Session] = []
        self.answer_pings = True
        #: Connections (numbered from 1 as accepted) that stop reading once
        #: negotiated: the stream looks alive but nothing sent is handled.
        self.deaf: set[int] = set()
        self.port = 0
        self._tls = self.cert.server_context()
        self._listener: asyncio.AbstractServer | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    def client_context(self) -> Any:
        return self.cert.client_context()

    async def __aenter__(self) -> SMServer:
        loop = asyncio.get_running_loop()
        self._listener = await loop.create_server(self._protocol, "127.0.0.1", self.port)
        self.port = self._listener.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._listener is not None
        self._listener.close()
        for s in self.sessions:
            with contextlib.suppress(Exception):
                s.transport.abort()
        for t in list(self._tasks):
            t.cancel()
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=2)

    def _protocol(self) -> asyncio.BaseProtocol:
        proto = protocol_factory()
        made = proto.connection_made

        def connection_made(transport: asyncio.BaseTransport) -> None:
            made(transport)
            self.accepted += 1
            task = asyncio.ensure_future(self._connection(transport, self.accepted))  # type: ignore[arg-type]
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

        setattr(proto, "connection_made", connection_made)  # noqa: B010
        return proto

    async def _connection(self, transport: asyncio.Transport, number: int) -> None:
        cfg = StreamConfig(
            features=[
                starttls(self._tls, required=True, timeout=TIMEOUT),
                sasl_server(self.creds, timeout=TIMEOUT),
                bind(timeout=TIMEOUT),
                sm_server(self.store, ack_every=8, ack_after=0.2),
            ],
            timeout=TIMEOUT,
        )
        try:
            session = await asyncio.wait_for(receive_session(transport, DOMAIN, config=cfg), TIMEOUT)
        except Exception:
            transport.abort()
            return
        self.sessions.append(session)
        if number in self.deaf:
            transport.pause_reading()

        async def handle(el: Element, start: StartElement) -> None:
            local = start.name.local
            if local == "message":
                oid = sid.origin_id(el)
                self.received[oid if oid is not None else start.get("id") or ""] += 1
            elif local == "iq" and start.get("type") == "get" and el.find("ping", "urn:xmpp:ping") is not None:
                if self.answer_pings:
                    await session.send(IQ.from_element(start).result(None, NS_CLIENT))
                else:
                    session.mark_answered()

        with contextlib.suppress(Exception):
            await session.serve(handle)

    def kick(self, condition: Condition) -> None:
        """End every live session with the stream error ``condition``."""
        for s in self.sessions:
            if not s.closed:
                with contextlib.suppress(Exception):
                    s.write_raw(StreamError(condition).to_bytes() + b"</stream:stream>")


@contextlib.asynccontextmanager
async def running(client: ResilientClient) -> AsyncIterator[asyncio.Task[None]]:
    task = asyncio.ensure_future(client.run())
    try:
        yield task
    finally:
        await client.stop(timeout=2)
        if not task.done():
            task.cancel()
        await asyncio.wait([task], timeout=5)
        assert task.done()


def make_client(port: int, server: SMServer, **kw: Any) -> ResilientClient:
    kw.setdefault("backoff_base", 0.05)
    kw.setdefault("backoff_max", 0.2)
    kw.setdefault("ack_after", 0.2)
    kw.setdefault("keepalive", None)
    kw.setdefault("ping_interval", None)
    kw.setdefault("timeout", TIMEOUT)
    kw.setdefault("rng", random.Random(7))
    password = kw.pop("password", PASSWORD)
    return ResilientClient(
        kw.pop("jid", f"alice@{DOMAIN}/r"),
        password,
        host="127.0.0.1",
        port=port,
        tls_context=server.client_context(),
        **kw,
    )


def chat(i: int) -> tuple[str, Element]:
    oid, toks = sid.with_origin_id(Message(to=JID.parse(f"bob@{DOMAIN}"), type=MessageType.CHAT, id=f"m{i}"))
    return oid, Element.from_tokens(list(toks))


def client_tasks(client: ResilientClient, session: Session | None) -> list[asyncio.Task[Any]]:
    """Tasks still running on behalf of the client (its own, or serving its session)."""
    left = []
    for t in asyncio.all_tasks():
        coro = t.get_coro()
        frame = getattr(coro, "cr_frame", None)
        me = frame.f_locals.get("self") if frame is not None else None
        if me is client or (session is not None and me is session):
            left.append(t)
    return left


# ----------------------------------------------------------------- pure parts


def test_backoff_is_capped_exponential_with_full_jitter() -> None:
    rng = random.Random(3)
    for attempt in range(1, 12):
        ceiling = min(30.0, 0.5 * 2 ** (attempt - 1))
        draws = [backoff_delay(attempt, 0.5, 30.0, rng) for _ in range(200)]
        assert all(0.0 <= d <= ceiling for d in draws)
        assert max(draws) > ceiling / 2  # jitter spreads over the whole range
    assert backoff_delay(10_000, 0.5, 30.0, rng) <= 30.0


def test_permanent_errors() -> None:
    assert is_permanent(SASLError(SASLCondition.NOT_AUTHORIZED))
    assert is_permanent(SASLError(SASLCondition.ACCOUNT_DISABLED))
    assert not is_permanent(SASLError(SASLCondition.TEMPORARY_AUTH_FAILURE))
    for cond in (Condition.HOST_UNKNOWN, Condition.CONFLICT, Condition.NOT_AUTHORIZED, Condition.POLICY_VIOLATION):
        assert is_permanent(StreamError(cond))
    assert not is_permanent(StreamError(Condition.SYSTEM_SHUTDOWN))
    assert not is_permanent(ConnectionResetError())
    assert not is_permanent(TimeoutError())


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ValueError):
        ResilientClient("a@b", "p", overflow="block")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        ResilientClient("a@b", "p", keepalive=0)


# ----------------------------------------------------------- with a server


async def test_reconnects_through_cuts_resumes_and_loses_nothing() -> None:
    total = 400
    rng = random.Random(42)
    cuts = [rng.randrange(4000, 12000) for _ in range(3)]
    async with SMServer({"alice": PASSWORD}) as server, adversity.FaultProxy(
        "127.0.0.1", server.port, cuts=cuts
    ) as proxy:
        client = make_client(proxy.port, server)
        acked: list[str] = []
        client.state.on_ack = lambda start: acked.append(start.get("id") or "" if start is not None else "")
        sent: list[str] = []
        async with running(client):
            await client.wait_connected(TIMEOUT)
            for i in range(total):
                oid, el = chat(i)
                await client.send(el)
                sent.append(oid)
                if i % 10 == 0:
                    await asyncio.sleep(0.005)
            await client.flush(30)
        assert proxy.cut_count == 3
        assert client.connections >= 4
        assert client.resumptions >= 1
        kinds = [e.kind for e in client.events]
        assert kinds.count(EventKind.DISCONNECTED) >= 3
        assert EventKind.RESUMED in kinds
        # Every message reached the server; resumption never duplicates.
        assert set(server.received) == set(sent)
        dup = sum(c - 1 for c in server.received.values())
        assert dup <= client.connections - client.resumptions - 1
        # The client's view: each acknowledged exactly once, nothing left.
        assert not client.state.unacked and client.queued == 0
        assert client.state.acked == total
        assert sorted(acked) == sorted(sent)


async def test_renegotiates_and_resends_when_resumption_is_refused() -> None:
    async with SMServer({"alice": PASSWORD}) as server, adversity.FaultProxy("127.0.0.1", server.port) as proxy:
        client = make_client(proxy.port, server, ack_after=None, ack_every=1000)
        sent: list[str] = []
        async with running(client):
            await client.wait_connected(TIMEOUT)
            for i in range(20):
                oid, el = chat(i)
                await client.send(el)
                sent.append(oid)
            await asyncio.sleep(0.05)
            assert client.unacked == 20
            n = client.event_count
            server.store.max = 0  # the server forgets lost streams at once
            proxy.cut_all()
            ev = await client.next_event(EventKind.CONNECTED, EventKind.RESUMED, since=n, timeout=TIMEOUT)
            assert ev.kind is EventKind.CONNECTED  # bound anew, not resumed
            await client.flush(TIMEOUT)
        assert set(server.received) == set(sent)
        assert client.state.acked == 20 and not client.state.unacked


async def test_wrong_password_stops_at_once() -> None:
    async with SMServer({"alice": PASSWORD}) as server:
        client = make_client(server.port, server, password="wrong")
        with pytest.raises(SASLError) as info:
            await asyncio.wait_for(client.run(), TIMEOUT * 2)
        assert info.value.condition is SASLCondition.NOT_AUTHORIZED
        assert server.accepted == 1
        assert [e.kind for e in client.events] == [EventKind.FAILED]
        assert client_tasks(client, None) == []


async def test_unknown_host_stops_at_once() -> None:
    async with SMServer({"alice": PASSWORD}) as server:
        client = make_client(server.port, server, jid="alice@elsewhere.example/r")
        with pytest.raises(StreamError) as info:
            await asyncio.wait_for(client.run(), TIMEOUT * 2)
        assert info.value.condition is Condition.HOST_UNKNOWN
        assert server.accepted == 1


async def test_conflict_while_connected_stops() -> None:
    async with SMServer({"alice": PASSWORD}) as server:
        client = make_client(server.port, server)
        task = asyncio.ensure_future(client.run())
        try:
            await client.wait_connected(TIMEOUT)
            server.kick(Condition.CONFLICT)
            done, _ = await asyncio.wait([task], timeout=TIMEOUT)
            assert done
            exc = task.exception()
            assert isinstance(exc, StreamError) and exc.condition is Condition.CONFLICT
            assert server.accepted == 1
        finally:
            await client.stop()


async def test_transient_stream_error_reconnects() -> None:
    async with SMServer({"alice": PASSWORD}) as server:
        client = make_client(server.port, server)
        async with running(client) as task:
            await client.wait_connected(TIMEOUT)
            n = client.event_count
            server.kick(Condition.SYSTEM_SHUTDOWN)
            ev = await client.next_event(EventKind.DISCONNECTED, since=n, timeout=TIMEOUT)
            assert isinstance(ev.error, StreamError) and ev.error.condition is Condition.SYSTEM_SHUTDOWN
            await client.next_event(EventKind.CONNECTED, EventKind.RESUMED, since=n, timeout=TIMEOUT)
            assert not task.done() and server.accepted == 2


async def test_stop_and_cancel_at_every_point() -> None:
    # 1. While connecting: a listener that accepts and never answers.
    silent: list[asyncio.Transport] = []

    class Silent(asyncio.Protocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            silent.append(transport)  # type: ignore[arg-type]

    loop = asyncio.get_running_loop()
    lst = await loop.create_server(Silent, "127.0.0.1", 0)
    port = lst.sockets[0].getsockname()[1]
    async with SMServer({"alice": PASSWORD}) as server:
        for how in ("stop", "cancel"):
            client = make_client(port, server)
            task = asyncio.ensure_future(client.run())
            for _ in range(200):
                if len(silent) and not silent[-1].is_closing():
                    break
                await asyncio.sleep(0.01)
            assert silent, "the client should be connecting"
            if how == "stop":
                await client.stop(timeout=2)
                assert task.done() and not task.cancelled() and task.exception() is None
            else:
                task.cancel()
                await asyncio.wait([task], timeout=2)
                assert task.cancelled()
            await asyncio.sleep(0.05)
            assert silent[-1].is_closing()  # the half-made connection was dropped
            assert client_tasks(client, None) == []
            assert client.events[-1].kind is EventKind.STOPPED
        lst.close()
        # 2. While waiting out a backoff: nothing listens there any more.
        for how in ("stop", "cancel"):
            client = make_client(port, server, backoff_base=60.0, backoff_max=60.0, rng=random.Random(1))
            task = asyncio.ensure_future(client.run())
            await client.next_event(EventKind.RETRYING, timeout=TIMEOUT)
            if how == "stop":
                await client.stop(timeout=2)
                assert task.done() and task.exception() is None
            else:
                task.cancel()
                await asyncio.wait([task], timeout=2)
                assert task.cancelled()
            assert client_tasks(client, None) == []
            assert client.events[-1].kind is EventKind.STOPPED
        # 3. While connected and serving.
        for how in ("stop", "cancel"):
            client = make_client(server.port, server, keepalive=0.05, ping_interval=0.1)
            task = asyncio.ensure_future(client.run())
            session = await client.wait_connected(TIMEOUT)
            assert client_tasks(client, session) != []
            if how == "stop":
                await client.stop(timeout=2)
                assert task.done() and task.exception() is None
                with pytest.raises(RuntimeError):
                    await client.send(chat(0)[1])  # a stopped client takes nothing more
            else:
                task.cancel()
                await asyncio.wait([task], timeout=2)
                assert task.cancelled()
            assert client.events[-1].kind is EventKind.STOPPED
            await asyncio.sleep(0.05)
            assert session.closed
            assert client_tasks(client, session) == []


@pytest.mark.parametrize("overflow", ["raise", "drop_oldest"])
async def test_outage_queue_is_bounded(overflow: str) -> None:
    async with SMServer({"alice": PASSWORD}) as server:
        client = make_client(server.port, server, queue_limit=3, overflow=overflow)
        ids = []
        for i in range(3):
            oid, el = chat(i)
            await client.send(el)  # not running: no connection, so it queues
            ids.append(oid)
        assert client.queued == 3
        extra = [chat(i) for i in range(3, 5)]
        if overflow == "raise":
            with pytest.raises(QueueFull):
                await client.send(extra[0][1])
            assert client.queued == 3 and client.dropped == 0
            expect = ids
        else:
            for _, el in extra:
                await client.send(el)
            assert client.queued == 3 and client.dropped == 2
            expect = ids[2:] + [oid for oid, _ in extra]
        async with running(client):
            await client.wait_connected(TIMEOUT)
            await client.flush(TIMEOUT)
        assert client.queued == 0
        assert sorted(server.received) == sorted(expect)


async def test_sends_during_an_outage_queue_and_leave_after_reconnecting() -> None:
    async with SMServer({"alice": PASSWORD}) as server, adversity.FaultProxy("127.0.0.1", server.port) as proxy:
        client = make_client(proxy.port, server, backoff_base=0.3, backoff_max=0.3)
        async with running(client):
            await client.wait_connected(TIMEOUT)
            n = client.event_count
            proxy.cut_all()
            await client.next_event(EventKind.DISCONNECTED, since=n, timeout=TIMEOUT)
            sent = []
            for i in range(5):
                oid, el = chat(i)
                await client.send(el)
                sent.append(oid)
            assert client.queued == 5 or client.connected
            await client.flush(TIMEOUT)
        assert sorted(server.received) == sorted(sent)


async def test_keepalive_whitespace_on_an_idle_stream() -> None:
    out: list[bytes] = []
    async with SMServer({"alice": PASSWORD}) as server:
        client = make_client(server.port, server, keepalive=0.05, tee_out=out.append)
        async with running(client):
            session = await client.wait_connected(TIMEOUT)
            out.clear()
            for _ in range(300):
                if out.count(b" ") >= 3:
                    break
                await asyncio.sleep(0.02)
            assert out.count(b" ") >= 3
            assert not session.closed and client.connections == 1


async def test_stalled_peer_is_detected_by_ping_and_the_client_resumes() -> None:
    async with SMServer({"alice": PASSWORD}) as server, adversity.FaultProxy("127.0.0.1", server.port) as proxy:
        seen: list[tuple[Event, bool]] = []
        client = make_client(
            proxy.port,
            server,
            ping_interval=0.2,
            ping_timeout=0.3,
            timeout=2.0,
            on_event=lambda ev: seen.append((ev, proxy._stalled.is_set())),
        )
        async with running(client):
            await client.wait_connected(TIMEOUT)
            n = client.event_count
            proxy.stall(6.0)  # silence both ways; the TCP connection stays up
            ev = await client.next_event(EventKind.DISCONNECTED, since=n, timeout=TIMEOUT)
            assert isinstance(ev.error, DeadPeerError)
            # Found by the ping while the proxy was still silent.
            assert [stalled for e, stalled in seen if e is ev] == [False]
            oid, el = chat(1)
            await client.send(el)
            ev2 = await client.next_event(EventKind.CONNECTED, EventKind.RESUMED, since=n, timeout=15)
            assert ev2.kind is EventKind.RESUMED
            await client.flush(TIMEOUT)
        assert server.received[oid] == 1


async def test_a_resumed_stream_that_answers_nothing_is_not_resumed_again() -> None:
    async with SMServer({"alice": PASSWORD}) as server, adversity.FaultProxy("127.0.0.1", server.port) as proxy:
        server.deaf = {2}  # the resumed connection handles nothing (as Prosody 0.12 can)
        client = make_client(proxy.port, server, ping_interval=0.2, ping_timeout=0.3, timeout=2.0)
        async with running(client):
            await client.wait_connected(TIMEOUT)
            n = client.event_count
            proxy.cut_all()
            ev = await client.next_event(EventKind.RESUMED, since=n, timeout=TIMEOUT)
            n = client.event_count
            oid, el = chat(1)
            await client.send(el)  # written to the deaf stream, never acknowledged
            ev = await client.next_event(EventKind.DISCONNECTED, since=n, timeout=TIMEOUT)
            assert isinstance(ev.error, DeadPeerError)
            assert len(client.state.unacked) >= 1
            ev = await client.next_event(EventKind.CONNECTED, EventKind.RESUMED, since=n, timeout=15)
            # Not resumed again: bound anew, and the message sent again.
            assert ev.kind is EventKind.CONNECTED
            await client.flush(TIMEOUT)
            assert not client.state.unacked
        assert server.received[oid] == 1
        assert client.resumptions == 1 and client.connections == 3


async def test_a_server_that_answers_pings_keeps_the_connection() -> None:
    async with SMServer({"alice": PASSWORD}) as server:
        client = make_client(server.port, server, ping_interval=0.05, ping_timeout=1.0)
        async with running(client):
            await client.wait_connected(TIMEOUT)
            await asyncio.sleep(0.5)  # several ping rounds
            assert client.connections == 1 and client.connected


async def test_max_attempts_bounds_the_retries() -> None:
    loop = asyncio.get_running_loop()
    lst = await loop.create_server(asyncio.Protocol, "127.0.0.1", 0)
    port = lst.sockets[0].getsockname()[1]
    lst.close()
    await lst.wait_closed()  # nothing listens there now: every attempt is refused
    async with SMServer({"alice": PASSWORD}) as server:
        client = make_client(port, server, max_attempts=3, backoff_base=0.01)
        with pytest.raises(OSError):
            await asyncio.wait_for(client.run(), TIMEOUT)
        kinds = [e.kind for e in client.events]
        assert kinds == [EventKind.RETRYING, EventKind.RETRYING, EventKind.FAILED]
        assert [e.attempt for e in client.events] == [1, 2, 3]
        assert client_tasks(client, None) == []
