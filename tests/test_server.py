"""xmpp.testing.Server: routing, answering for itself, conflicts, timeouts, shutdown.

Every test runs the server on a loopback port and logs in with
xmpp.client.dial_client_session (STARTTLS, SASL, bind) over real TCP.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest

from xmpp.client import dial_client_session
from xmpp.jid import JID
from xmpp.mux import ServeMux
from xmpp.negotiator import StreamConfig
from xmpp.session import Session, SessionState, new_session, protocol_factory
from xmpp.starttls import starttls
from xmpp.stanza import IQ, Condition, IQType, Message, MessageType, Presence, StanzaError
from xmpp.stream import NS_CLIENT, StreamError
from xmpp.stream import Condition as SC
from xmpp.testing import Server, TestCertificate
from xmpp.xmlstream import CharData, Element, Name, StartElement

PING = Name("urn:xmpp:ping", "ping")
DISCO_INFO = Name("http://jabber.org/protocol/disco#info", "query")
BODY = Name(NS_CLIENT, "body")
USERS = {"alice": "alice pw", "bob": "bob pw", "carol": "carol pw"}


def ping() -> list[Any]:
    s = StartElement(PING)
    return [s, s.end()]


def body(text: str) -> list[Any]:
    s = StartElement(BODY)
    return [s, CharData(text), s.end()]


class Client:
    """A logged-in session with serve running, an inbox and a ping handler."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self.inbox: asyncio.Queue[Element] = asyncio.Queue()
        self.mux = ServeMux(NS_CLIENT)
        self.mux.iq_func(IQType.GET, PING, self._pong)
        self.mux.message_func(None, None, self._keep)
        self.mux.presence_func(None, None, self._keep)
        self.task: asyncio.Task[None] = asyncio.ensure_future(session.serve(self.mux))

    @property
    def jid(self) -> JID:
        assert self.session.local_addr is not None
        return self.session.local_addr

    async def _pong(self, iq: IQ, el: Element, s: Session) -> None:
        await s.send(iq.result())

    def _keep(self, stanza: Any, el: Element, s: Session) -> None:
        self.inbox.put_nowait(el)

    async def get(self, timeout: float = 5.0) -> Element:
        return await asyncio.wait_for(self.inbox.get(), timeout)

    async def nothing_more(self) -> None:
        """Prove the inbox stays empty: a ping round trip through the server comes first."""
        await self.session.send_iq(IQ(type=IQType.GET), ping(), timeout=5)
        assert self.inbox.empty(), self.inbox.get_nowait()

    async def close(self) -> None:
        await self.session.close(timeout=2)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.task, 5)


@pytest.fixture(scope="module")
def cert() -> TestCertificate:
    return TestCertificate(["localhost", "127.0.0.1"])


@pytest.fixture
async def server(cert: TestCertificate) -> AsyncIterator[Server]:
    async with Server(users=USERS, certificate=cert, timeout=5.0) as s:
        yield s


async def connect(server: Server, jid: str, **kw: Any) -> Client:
    local = JID.parse(jid).local
    assert local is not None
    session = await dial_client_session(
        jid, USERS[local], host=server.host, port=server.port,
        tls_context=server.client_context(), timeout=10, **kw,
    )
    c = Client(session)
    await asyncio.sleep(0)  # serve is running from here on
    return c


@contextlib.asynccontextmanager
async def clients(server: Server, *jids: str) -> AsyncIterator[list[Client]]:
    made: list[Client] = []
    try:
        for j in jids:
            made.append(await connect(server, j))
        yield made
    finally:
        for c in made:
            await c.close()


async def test_server_face(server: Server) -> None:
    assert server.host == "127.0.0.1" and server.port > 0
    assert server.domain == "localhost"
    with open(server.ca_file, "rb") as fh:
        assert b"BEGIN CERTIFICATE" in fh.read()
    assert "not a production server" in (Server.__doc__ or "")
    server.add_user("dave", "dave pw")
    session = await dial_client_session(
        "dave@localhost/x", "dave pw", host=server.host, port=server.port,
        tls_context=server.client_context(), timeout=10,
    )
    async with session:
        assert JID.parse("dave@localhost/x") in server.sessions
        assert server.sessions[JID.parse("dave@localhost/x")].state & SessionState.READY


async def test_message_to_a_full_jid_is_stamped_with_the_sender(server: Server) -> None:
    async with clients(server, "alice@localhost/a", "bob@localhost/b") as (a, b):
        await b.session.send_message(Message(to=a.jid, type=MessageType.CHAT), body("hello"))
        got = await a.get()
        assert got.get("from") == "bob@localhost/b"
        assert got.get("to") == "alice@localhost/a"
        assert got.get("type") == "chat"
        found = got.find("body")
        assert found is not None and found.text == "hello"


async def test_a_forged_or_bare_from_is_replaced(server: Server) -> None:
    async with clients(server, "alice@localhost/a", "bob@localhost/b") as (a, b):
        for forged in ("carol@localhost/c", "bob@localhost", "localhost"):
            await b.session.send_message(
                Message(to=a.jid, from_=JID.parse(forged), type=MessageType.CHAT), body(forged)
            )
            got = await a.get()
            assert got.get("from") == "bob@localhost/b"
            assert got.find("body").text == forged  # type: ignore[union-attr]
        # Already right: passed on as it is.
        await b.session.send_message(Message(to=a.jid, from_=b.jid), body("as is"))
        got = await a.get()
        assert got.get("from") == "bob@localhost/b"


async def test_message_to_a_bare_jid_reaches_every_resource(server: Server) -> None:
    async with clients(server, "alice@localhost/one", "alice@localhost/two", "bob@localhost/b") as (a1, a2, b):
        await b.session.send_message(Message(to=JID.parse("alice@localhost"), type=MessageType.CHAT), body("both"))
        for c in (a1, a2):
            got = await c.get()
            assert got.get("from") == "bob@localhost/b" and got.get("to") == "alice@localhost"
            assert got.find("body").text == "both"  # type: ignore[union-attr]
        await b.nothing_more()


async def test_presence_to_the_server_goes_to_the_other_resources(server: Server) -> None:
    async with clients(server, "alice@localhost/one", "alice@localhost/two", "bob@localhost/b") as (a1, a2, b):
        await a1.session.send_presence(Presence())
        got = await a2.get()
        assert got.name.local == "presence" and got.get("from") == "alice@localhost/one"
        await a1.nothing_more()
        await b.nothing_more()
        # To a bare JID: every resource of that account.
        await b.session.send_presence(Presence(to=JID.parse("alice@localhost")))
        for c in (a1, a2):
            got = await c.get()
            assert got.get("from") == "bob@localhost/b"


async def test_ping_and_disco_of_the_server(server: Server) -> None:
    async with clients(server, "alice@localhost/a") as (a,):
        for to in (None, JID.parse("localhost")):
            reply = await a.session.send_iq(IQ(type=IQType.GET, to=to), ping(), timeout=5)
            assert reply.get("type") == "result"
            assert reply.get("to") == "alice@localhost/a"
        q = StartElement(DISCO_INFO)
        reply = await a.session.send_iq(IQ(type=IQType.GET, to=JID.parse("localhost")), [q, q.end()], timeout=5)
        query = reply.find("query", DISCO_INFO.space)
        assert query is not None
        idents = [(c.get("category"), c.get("type")) for c in query.children() if c.name.local == "identity"]
        features = {c.get("var") for c in query.children() if c.name.local == "feature"}
        assert idents == [("server", "im")]
        assert features == {DISCO_INFO.space, PING.space}


async def test_other_requests_to_the_server_are_service_unavailable(server: Server) -> None:
    async with clients(server, "alice@localhost/a") as (a,):
        v = StartElement(Name("jabber:iq:version", "query"))
        with pytest.raises(StanzaError) as ei:
            await a.session.send_iq(IQ(type=IQType.GET, to=JID.parse("localhost")), [v, v.end()], timeout=5)
        assert ei.value.condition is Condition.SERVICE_UNAVAILABLE
        with pytest.raises(StanzaError) as ei:
            await a.session.send_iq(IQ(type=IQType.SET), ping(), timeout=5)
        assert ei.value.condition is Condition.SERVICE_UNAVAILABLE


async def test_iq_ping_between_two_clients(server: Server) -> None:
    async with clients(server, "alice@localhost/a", "bob@localhost/b") as (a, b):
        reply = await b.session.send_iq(IQ(type=IQType.GET, to=a.jid), ping(), timeout=5)
        assert reply.get("type") == "result" and reply.get("from") == "alice@localhost/a"
        # A request the other client does not handle: its own serve says so.
        v = StartElement(Name("jabber:iq:version", "query"))
        with pytest.raises(StanzaError) as ei:
            await b.session.send_iq(IQ(type=IQType.GET, to=a.jid), [v, v.end()], timeout=5)
        assert ei.value.condition is Condition.SERVICE_UNAVAILABLE
        await b.nothing_more()


async def test_iq_to_bare_jids(server: Server) -> None:
    async with clients(server, "alice@localhost/a", "bob@localhost/b") as (a, b):
        with pytest.raises(StanzaError) as ei:
            await b.session.send_iq(IQ(type=IQType.GET, to=JID.parse("alice@localhost")), ping(), timeout=5)
        assert ei.value.condition is Condition.SERVICE_UNAVAILABLE
        # The own bare JID: the server answers for the account.
        reply = await b.session.send_iq(IQ(type=IQType.GET, to=JID.parse("bob@localhost")), ping(), timeout=5)
        assert reply.get("type") == "result"
        await a.nothing_more()


@pytest.mark.parametrize(
    ("to", "condition"),
    [
        ("alice@localhost/offline", Condition.SERVICE_UNAVAILABLE),
        ("carol@localhost", Condition.SERVICE_UNAVAILABLE),
        ("nobody@localhost", Condition.SERVICE_UNAVAILABLE),
        ("alice@elsewhere.example", Condition.REMOTE_SERVER_NOT_FOUND),
    ],
)
async def test_undeliverable_stanzas_bounce(server: Server, to: str, condition: Condition) -> None:
    async with clients(server, "alice@localhost/a", "bob@localhost/b") as (a, b):
        with pytest.raises(StanzaError) as ei:
            await b.session.send_iq(IQ(type=IQType.GET, to=JID.parse(to)), ping(), timeout=5)
        assert ei.value.condition is condition
        await b.session.send_message(Message(to=JID.parse(to), id="m1", type=MessageType.CHAT), body("lost"))
        err = await b.get()
        assert err.name.local == "message" and err.get("type") == "error" and err.get("id") == "m1"
        assert err.get("from") == to
        e = StanzaError.from_stanza(err)
        assert e is not None and e.condition is condition
        # Presences to nobody are dropped without an error.
        await b.session.send_presence(Presence(to=JID.parse(to)))
        await b.nothing_more()
        await a.nothing_more()


async def test_a_non_stanza_is_a_stream_error(server: Server) -> None:
    async with clients(server, "alice@localhost/a") as (a,):
        x = StartElement(Name("urn:example:odd", "thing"))
        await a.session.send([x, x.end()])
        with pytest.raises(StreamError) as ei:
            await asyncio.wait_for(a.task, 5)
        assert ei.value.condition is SC.UNSUPPORTED_STANZA_TYPE


async def test_bind_conflict_replaces_the_old_session(server: Server) -> None:
    async with clients(server, "alice@localhost/same", "bob@localhost/b") as (old, b):
        new = await connect(server, "alice@localhost/same")
        try:
            with pytest.raises(StreamError) as ei:
                await asyncio.wait_for(old.task, 5)
            assert ei.value.condition is SC.CONFLICT
            assert str(new.jid) == "alice@localhost/same"
            await b.session.send_message(Message(to=new.jid), body("to the new one"))
            got = await new.get()
            assert got.find("body").text == "to the new one"  # type: ignore[union-attr]
            assert len([j for j in server.sessions if j.local == "alice"]) == 1
        finally:
            await new.close()


async def test_the_server_closing_a_session_ends_serve_cleanly(server: Server) -> None:
    async with clients(server, "alice@localhost/a") as (a,):
        await server.sessions[a.jid].close(timeout=2)
        await asyncio.wait_for(a.task, 5)  # returns: no exception
        assert a.task.exception() is None
        assert a.session.closed


async def test_leaving_the_server_block_closes_everything(cert: TestCertificate) -> None:
    async with Server(users=USERS, certificate=cert) as server:
        a = await connect(server, "alice@localhost/a")
        b = await connect(server, "bob@localhost/b")
        reader, writer = await asyncio.open_connection(server.host, server.port)  # still negotiating
    for c in (a, b):
        await asyncio.wait_for(c.task, 5)  # serve ended cleanly, without an exception
        assert c.task.exception() is None
    assert not server.sessions
    assert await asyncio.wait_for(reader.read(), 5) == b""
    writer.close()
    with pytest.raises(OSError):
        await asyncio.open_connection(server.host, server.port)
    tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
    assert all(t.done() for t in tasks if "Server" in repr(t.get_coro())), tasks


async def test_a_stalling_peer_is_dropped_after_the_timeout(cert: TestCertificate) -> None:
    async with Server(users=USERS, certificate=cert, timeout=0.5) as server:
        stalls = []
        for partial in (b"", b"<?xml version='1.0'?><stream:stream xmlns='jabber:client' to='localhost' "):
            reader, writer = await asyncio.open_connection(server.host, server.port)
            writer.write(partial)
            stalls.append((reader, writer))
        # Others are not held up meanwhile.
        async with clients(server, "alice@localhost/a") as (a,):
            reply = await a.session.send_iq(IQ(type=IQType.GET), ping(), timeout=5)
            assert reply.get("type") == "result"
        for reader, writer in stalls:
            with contextlib.suppress(ConnectionResetError):
                while await asyncio.wait_for(reader.read(4096), 5):
                    pass  # until the server hangs up
            writer.close()
        assert sum(isinstance(f, TimeoutError) for f in server.failures) == 2


async def test_a_stall_after_starttls_is_dropped_too(cert: TestCertificate) -> None:
    """A client that authenticates slowly (here: never sends <auth/>) is cut off."""
    async with Server(users=USERS, certificate=cert, timeout=0.5) as server:
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_connection(protocol_factory, server.host, server.port)
        # STARTTLS only: the client is READY on its side, then says nothing.
        session = await new_session(
            transport, "localhost", origin="alice@localhost",
            config=StreamConfig(features=[starttls(server.client_context())], timeout=5),
        )
        assert session.state & SessionState.SECURE
        with pytest.raises((StreamError, ConnectionError)):
            await asyncio.wait_for(session.read_element(None), 5)
        await session.close(timeout=1)
        assert any(isinstance(f, TimeoutError) for f in server.failures)


async def test_fifty_concurrent_clients(cert: TestCertificate) -> None:
    users = {f"user{i}": f"pw{i}" for i in range(50)}
    async with Server(users=users, certificate=cert, timeout=30) as server:
        sessions = await asyncio.wait_for(
            asyncio.gather(*(
                dial_client_session(
                    f"user{i}@localhost/r", f"pw{i}", host=server.host, port=server.port,
                    tls_context=server.client_context(), timeout=60,
                )
                for i in range(50)
            )),
            90,
        )
        cs = [Client(s) for s in sessions]
        await asyncio.sleep(0)
        try:
            assert len(server.sessions) == 50
            for i, c in enumerate(cs):
                await c.session.send_message(Message(to=cs[(i + 1) % 50].jid), body(f"from {i}"))
            for i, c in enumerate(cs):
                got = await c.get(10)
                assert got.get("from") == f"user{(i - 1) % 50}@localhost/r"
                assert got.find("body").text == f"from {(i - 1) % 50}"  # type: ignore[union-attr]
        finally:
            await asyncio.gather(*(c.close() for c in cs))
        assert not server.sessions


async def test_a_flood_keeps_order_and_loses_nothing(server: Server) -> None:
    """Many messages at once, through the flow control of both sessions."""
    n = 3000
    async with clients(server, "alice@localhost/a", "bob@localhost/b") as (a, b):
        for i in range(n):
            await b.session.send_message(Message(to=a.jid, id=f"m{i}"), body("x" * 200))
        for i in range(n):
            got = await a.get(10)
            assert got.get("id") == f"m{i}"


async def test_a_client_that_stops_reading_is_dropped(cert: TestCertificate) -> None:
    async with Server(users=USERS, certificate=cert, timeout=1.0) as server:
        async with clients(server, "alice@localhost/a", "bob@localhost/b") as (a, b):
            a.session.transport.pause_reading()  # alice reads nothing more
            big = "x" * 4000
            sent = 0
            # Bob floods alice until the server gives up on her (bounded in count and time).
            async def flood() -> None:
                nonlocal sent
                while a.jid in server.sessions and sent < 20000:
                    await b.session.send_message(Message(to=a.jid), body(big))
                    sent += 1

            await asyncio.wait_for(flood(), 60)
            assert a.jid not in server.sessions
            assert sent < 20000
            # Bob was only held up, never cut off.
            reply = await b.session.send_iq(IQ(type=IQType.GET), ping(), timeout=10)
            assert reply.get("type") == "result"
