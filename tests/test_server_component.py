"""xmpp.testing.Server with components (XEP-0114): routing between components and clients.

The server runs on loopback ports; clients log in with
xmpp.client.dial_client_session (STARTTLS, SASL, bind) and components
connect with xmpp.component.dial_session to the server's component port,
both over real TCP.  Nothing asserts a time; every wait is bounded.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest

from xmpp.client import dial_client_session
from xmpp.component import dial_session
from xmpp.jid import JID
from xmpp.mux import ServeMux
from xmpp.session import Session
from xmpp.stanza import IQ, Condition, IQType, Message, MessageType, StanzaError
from xmpp.stream import NS_CLIENT, NS_COMPONENT, StreamError
from xmpp.stream import Condition as SC
from xmpp.testing import Server
from xmpp.xmlstream import CharData, Element, Name, StartElement

PING = Name("urn:xmpp:ping", "ping")
DISCO_INFO = Name("http://jabber.org/protocol/disco#info", "query")
USERS = {"alice": "alice pw", "bob": "bob pw"}
GW = "gw.localhost"
SECRET = "gateway secret"
COMPONENTS = {GW: SECRET, "other.localhost": "other secret"}
WAIT = 5.0


def ping() -> list[Any]:
    s = StartElement(PING)
    return [s, s.end()]


def body(ns: str, text: str) -> list[Any]:
    s = StartElement(Name(ns, "body"))
    return [s, CharData(text), s.end()]


class Peer:
    """A session with serve running: it keeps messages, answers pings."""

    def __init__(self, session: Session, ns: str) -> None:
        self.session = session
        self.inbox: asyncio.Queue[Element] = asyncio.Queue()
        self.pings_from: list[str] = []
        self.mux = ServeMux(ns)
        self.mux.iq_func(IQType.GET, PING, self._pong)
        self.mux.message_func(None, None, self._keep)
        self.task: asyncio.Task[None] = asyncio.ensure_future(session.serve(self.mux))

    async def _pong(self, iq: IQ, el: Element, s: Session) -> None:
        self.pings_from.append(str(iq.from_))
        await s.send(iq.result(ns=s.stanza_ns))

    def _keep(self, stanza: Any, el: Element, s: Session) -> None:
        self.inbox.put_nowait(el)

    async def get(self) -> Element:
        return await asyncio.wait_for(self.inbox.get(), WAIT)

    async def ping_server(self, server: Server) -> None:
        """A round trip through the server: everything sent before has been routed."""
        await self.session.send_iq(IQ(to=JID.parse(server.domain), type=IQType.GET), ping(), timeout=WAIT)

    async def close(self) -> None:
        await self.session.close(timeout=2)
        with contextlib.suppress(BaseException):
            await asyncio.wait_for(self.task, WAIT)


@pytest.fixture
async def server() -> AsyncIterator[Server]:
    async with Server(dict(USERS), components=COMPONENTS, timeout=10.0) as s:
        yield s


async def login(server: Server, jid: str) -> Peer:
    user = JID.parse(jid).local
    assert user is not None
    s = await dial_client_session(
        jid, USERS[user], host=server.host, port=server.port,
        tls_context=server.client_context(), timeout=WAIT * 2,
    )
    p = Peer(s, NS_CLIENT)
    await asyncio.sleep(0)  # serve runs before send_iq
    return p


async def component(server: Server, domain: str = GW, secret: str = SECRET) -> Peer:
    s = await dial_session(domain, secret, server.host, server.component_port, timeout=WAIT * 2)
    p = Peer(s, NS_COMPONENT)
    await asyncio.sleep(0)  # serve runs before send_iq
    await p.ping_server(server)  # served: the server has registered it
    return p


@pytest.fixture
async def peers(server: Server) -> AsyncIterator[tuple[Peer, Peer]]:
    """The component gw.localhost and alice@localhost/desk, both serving."""
    comp = await component(server)
    alice = await login(server, "alice@localhost/desk")
    try:
        yield comp, alice
    finally:
        await alice.close()
        await comp.close()


def test_component_domains_must_be_domains_and_not_the_servers() -> None:
    with pytest.raises(ValueError):
        Server(components={"user@gw.localhost": "x"})
    with pytest.raises(ValueError):
        Server(components={"localhost": "x"})


async def test_no_component_listener_without_components() -> None:
    async with Server(dict(USERS)) as s:
        assert s.component_port == 0
        assert dict(s.components) == {}


async def test_messages_both_ways(server: Server, peers: tuple[Peer, Peer]) -> None:
    comp, alice = peers
    assert server.component_port not in (0, server.port)
    assert set(server.component_sessions) == {GW}
    # Component to client: without from (the session stamps the domain), and
    # from an address at the domain; to the full and to the bare JID.
    await comp.session.send_message(
        Message(to=JID.parse("alice@localhost/desk"), type=MessageType.CHAT), body(NS_COMPONENT, "one")
    )
    await comp.session.send_message(
        Message(to=JID.parse("alice@localhost"), from_=JID.parse(f"bob@{GW}/x"), type=MessageType.CHAT),
        body(NS_COMPONENT, "two"),
    )
    first, second = await alice.get(), await alice.get()
    assert first.name == Name(NS_CLIENT, "message")
    assert (first.get("from"), first.get("to"), first.text) == (GW, "alice@localhost/desk", "")
    assert first.find("body", NS_CLIENT) is not None
    assert first.find("body", NS_CLIENT).text == "one"  # type: ignore[union-attr]
    assert second.get("from") == f"bob@{GW}/x"
    assert second.find("body").text == "two"  # type: ignore[union-attr]
    # Client to component: the domain, and an address at it; from is alice's full JID.
    for to in (GW, f"bob@{GW}", f"bob@{GW}/res"):
        await alice.session.send_message(Message(to=JID.parse(to), type=MessageType.CHAT), body(NS_CLIENT, to))
        got = await comp.get()
        assert got.name == Name(NS_COMPONENT, "message")
        assert (got.get("from"), got.get("to")) == ("alice@localhost/desk", to)
        assert got.find("body", NS_COMPONENT).text == to  # type: ignore[union-attr]


async def test_many_messages_keep_their_order(server: Server, peers: tuple[Peer, Peer]) -> None:
    comp, alice = peers
    to = JID.parse("alice@localhost/desk")
    for i in range(300):
        await comp.session.send_message(Message(to=to, type=MessageType.CHAT), body(NS_COMPONENT, str(i)))
    got = [(await alice.get()).find("body").text for _ in range(300)]  # type: ignore[union-attr]
    assert got == [str(i) for i in range(300)]


async def test_iqs_both_ways_and_to_the_server(server: Server, peers: tuple[Peer, Peer]) -> None:
    comp, alice = peers
    # Client to component: the component's mux answers.
    reply = await alice.session.send_iq(IQ(to=JID.parse(f"echo@{GW}"), type=IQType.GET), ping(), timeout=WAIT)
    assert reply.get("type") == "result" and reply.get("from") == f"echo@{GW}"
    assert comp.pings_from == ["alice@localhost/desk"]
    # Component to client.
    reply = await comp.session.send_iq(
        IQ(to=JID.parse("alice@localhost/desk"), type=IQType.GET), ping(), timeout=WAIT
    )
    assert reply.get("type") == "result"
    assert alice.pings_from == [GW]
    # Component to the server: ping and disco#info answered, to the sending address.
    q = StartElement(DISCO_INFO)
    info = await comp.session.send_iq(
        IQ(to=JID.parse("localhost"), from_=JID.parse(f"bot@{GW}"), type=IQType.GET), [q, q.end()],
        timeout=WAIT,
    )
    assert info.get("to") == f"bot@{GW}"
    assert any(f.get("var") == "urn:xmpp:ping" for f in info.find("query").children())  # type: ignore[union-attr]
    # An IQ nobody answers, from the component: service-unavailable.
    with pytest.raises(StanzaError) as e:
        await comp.session.send_iq(IQ(to=JID.parse("alice@localhost/gone"), type=IQType.GET), ping(), timeout=WAIT)
    assert e.value.condition == Condition.SERVICE_UNAVAILABLE


async def test_component_to_component(server: Server, peers: tuple[Peer, Peer]) -> None:
    comp, _alice = peers
    other = await component(server, "other.localhost", "other secret")
    try:
        reply = await comp.session.send_iq(IQ(to=JID.parse("other.localhost"), type=IQType.GET), ping(), timeout=WAIT)
        assert reply.get("from") == "other.localhost"
        assert other.pings_from == [GW]
    finally:
        await other.close()


async def test_invalid_from_ends_the_components_stream(server: Server, peers: tuple[Peer, Peer]) -> None:
    comp, alice = peers
    for bad in ("mallory@elsewhere", "localhost", "alice@localhost/desk"):
        c = await component(server, "other.localhost", "other secret")
        await c.session.send_message(
            Message(to=JID.parse("alice@localhost/desk"), from_=JID.parse(bad), type=MessageType.CHAT),
            body(NS_COMPONENT, "forged"),
        )
        with pytest.raises(StreamError) as e:
            await asyncio.wait_for(c.task, WAIT)
        assert e.value.condition == SC.INVALID_FROM
        await c.close()
    # Nothing forged arrived; a good message still does.
    await comp.session.send_message(
        Message(to=JID.parse("alice@localhost/desk"), type=MessageType.CHAT), body(NS_COMPONENT, "real")
    )
    assert (await alice.get()).find("body").text == "real"  # type: ignore[union-attr]
    assert alice.inbox.empty()


@pytest.mark.parametrize(
    ("domain", "secret", "condition"),
    [(GW, "wrong", SC.NOT_AUTHORIZED), ("nobody.localhost", SECRET, SC.HOST_UNKNOWN)],
)
async def test_refused_handshakes(server: Server, domain: str, secret: str, condition: SC) -> None:
    with pytest.raises(StreamError) as e:
        await dial_session(domain, secret, server.host, server.component_port, timeout=WAIT)
    assert e.value.condition == condition
    assert dict(server.component_sessions) == {}
    assert any(isinstance(f, StreamError) and f.condition == condition for f in server.failures)


async def test_second_connection_is_a_conflict(server: Server, peers: tuple[Peer, Peer]) -> None:
    with pytest.raises(StreamError) as e:
        await dial_session(GW, SECRET, server.host, server.component_port, timeout=WAIT)
    assert e.value.condition == SC.CONFLICT


async def test_disconnected_component_bounces(server: Server) -> None:
    alice = await login(server, "alice@localhost/desk")
    try:
        comp = await component(server)
        await comp.close()
        for _ in range(100):  # bounded: the server notices the end of the stream
            if not server.component_sessions:
                break
            await asyncio.sleep(0.05)
        assert dict(server.component_sessions) == {}
        with pytest.raises(StanzaError) as e:
            await alice.session.send_iq(IQ(to=JID.parse(GW), type=IQType.GET), ping(), timeout=WAIT)
        assert e.value.condition == Condition.SERVICE_UNAVAILABLE
        await alice.session.send_message(Message(to=JID.parse(f"bob@{GW}"), type=MessageType.CHAT, id="m1"),
                                         body(NS_CLIENT, "anyone?"))
        bounced = await alice.get()
        assert (bounced.get("type"), bounced.get("id"), bounced.get("from")) == ("error", "m1", f"bob@{GW}")
        err = bounced.find("error")
        assert err is not None and err.find("service-unavailable") is not None
        # A domain that is no component at all is another server: remote-server-not-found.
        with pytest.raises(StanzaError) as e:
            await alice.session.send_iq(IQ(to=JID.parse("elsewhere.example"), type=IQType.GET), ping(), timeout=WAIT)
        assert e.value.condition == Condition.REMOTE_SERVER_NOT_FOUND
        # It may connect again, and is reached again.
        comp = await component(server)
        reply = await alice.session.send_iq(IQ(to=JID.parse(GW), type=IQType.GET), ping(), timeout=WAIT)
        assert reply.get("type") == "result"
        await comp.close()
    finally:
        await alice.close()


async def test_close_ends_component_sessions(server: Server) -> None:
    comp = await component(server)
    await server.close()
    with contextlib.suppress(StreamError, ConnectionError):
        await asyncio.wait_for(comp.task, WAIT)
    assert comp.task.done()
    assert dict(server.component_sessions) == {}
    await comp.close()


async def test_client_namespace_from_a_component_is_refused(server: Server, peers: tuple[Peer, Peer]) -> None:
    """A component's stanzas are in jabber:component:accept: a jabber:client
    element written on a component stream is not a stanza there.  (Our own
    component sessions move jabber:client stanzas into their namespace, so
    the bytes are written raw here, as a foreign component might.)"""
    _comp, alice = peers
    c = await component(server, "other.localhost", "other secret")
    c.session.write_raw(
        b"<message xmlns='jabber:client' to='alice@localhost/desk' from='other.localhost'>"
        b"<body>x</body></message>"
    )
    with pytest.raises(StreamError) as e:
        await asyncio.wait_for(c.task, WAIT)
    assert e.value.condition == SC.UNSUPPORTED_STANZA_TYPE
    await c.close()
    await alice.ping_server(server)
    assert alice.inbox.empty()
