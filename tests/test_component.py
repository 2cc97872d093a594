"""XEP-0114 components in memory: our component against our receiving side.

Each test connects :func:`xmpp.component.new_session` to
:func:`xmpp.component.receive_session` over :func:`xmpp.testing.memory_pipe`
and checks the handshake, its three refusals (on both sides, as stream
errors), that stanzas flow both ways with ``from`` set by the component
session, and that ``serve``, the multiplexer and ``send_iq`` work on these
sessions as on any other.  Every wait is bounded.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from collections.abc import AsyncIterator
from typing import Any

import pytest

from xmpp import component
from xmpp.jid import JID
from xmpp.mux import ServeMux
from xmpp.session import Session, SessionState
from xmpp.stanza import IQ, IQType, Message, MessageType, Presence, StanzaError
from xmpp.stream import NS_COMPONENT, Condition, StreamError
from xmpp.testing import memory_pipe
from xmpp.xmlstream import CharData, Element, Name, StartElement

DOMAIN = "gw.example.net"
SECRET = "s3cret & <more>"
BODY = Name(NS_COMPONENT, "body")
PING = Name("urn:xmpp:ping", "ping")
WAIT = 5.0


async def close_both(*sessions: Session) -> None:
    """Close sessions side by side (each waits for the other's end of stream)."""
    await asyncio.wait_for(asyncio.gather(*(x.close(timeout=WAIT) for x in sessions)), WAIT * 2)


async def connect(
    addr: str = DOMAIN,
    secret: str = SECRET,
    *,
    secrets: Any = None,
    registry: component.ComponentRegistry | None = None,
    timeout: float = WAIT,
    tee_out: Any = None,
    server_tee_in: Any = None,
) -> tuple[Any, Any]:
    """Run both sides of the handshake; return each side's session or exception."""
    ct, st = memory_pipe()
    srv = asyncio.ensure_future(
        component.receive_session(
            st,
            secrets={DOMAIN: SECRET} if secrets is None else secrets,
            registry=registry,
            timeout=timeout,
            tee_in=server_tee_in,
        )
    )
    comp = asyncio.ensure_future(component.new_session(addr, secret, ct, timeout=timeout, tee_out=tee_out))
    c, s = await asyncio.wait_for(asyncio.gather(comp, srv, return_exceptions=True), WAIT * 2)
    return c, s


@contextlib.asynccontextmanager
async def serving(
    comp_mux: ServeMux | None = None, server_mux: ServeMux | None = None
) -> AsyncIterator[tuple[component.ComponentSession, Session]]:
    """A connected pair with serve running on both; closed and checked on exit."""
    c, s = await connect()
    assert isinstance(c, component.ComponentSession), c
    assert isinstance(s, Session), s
    tasks = [
        asyncio.ensure_future(c.serve(comp_mux)),
        asyncio.ensure_future(s.serve(server_mux)),
    ]
    await asyncio.sleep(0)
    try:
        yield c, s
    finally:
        await close_both(c, s)
        done, pending = await asyncio.wait(tasks, timeout=WAIT)
        assert not pending
        for t in done:
            assert t.exception() is None, t.exception()


def collect(mux: ServeMux) -> asyncio.Queue[Element]:
    """Register a catch-all message handler on ``mux``; return the queue it fills."""
    q: asyncio.Queue[Element] = asyncio.Queue()
    mux.message_func(None, None, lambda m, el, s: q.put_nowait(el))
    return q


def body(text: str) -> list[Any]:
    """The tokens of a ``<body>`` in the component namespace."""
    return [StartElement(BODY), CharData(text), StartElement(BODY).end()]


def test_handshake_digest_is_sha1_hex_of_id_and_secret() -> None:
    assert component.handshake_digest("abc", "xyz") == hashlib.sha1(b"abcxyz").hexdigest()
    d = component.handshake_digest("id", "sécret")
    assert d == d.lower() and len(d) == 40
    assert d == hashlib.sha1("idsécret".encode()).hexdigest()


async def test_handshake_succeeds_and_both_sides_are_ready() -> None:
    out: list[bytes] = []
    seen: list[bytes] = []
    c, s = await connect(tee_out=out.append, server_tee_in=seen.append)
    assert isinstance(c, component.ComponentSession)
    assert isinstance(s, Session) and not isinstance(s, component.ComponentSession)
    for sess in (c, s):
        assert sess.state & SessionState.READY
        assert sess.state & SessionState.AUTHN
        assert sess.stanza_ns == NS_COMPONENT
    assert s.state & SessionState.RECEIVED
    assert s.remote_addr == JID.parse(DOMAIN)
    assert c.local_addr == JID.parse(DOMAIN)
    assert c.component == JID.parse(DOMAIN)
    # What went over the wire: the component header names the domain, and
    # the handshake is shown redacted on the console but sent in full.
    sent = b"".join(out)
    assert b"xmlns=\"jabber:component:accept\"" in sent or b"xmlns='jabber:component:accept'" in sent
    assert b"to=\"gw.example.net\"" in sent or b"to='gw.example.net'" in sent
    assert b"<handshake>[redacted]</handshake>" in sent
    received = b"".join(seen)
    assert b"<handshake>" in received and b"[redacted]" not in received
    await close_both(c, s)
    assert c.closed and s.closed


@pytest.mark.parametrize(
    ("addr", "secret", "condition"),
    [
        (DOMAIN, "wrong", Condition.NOT_AUTHORIZED),
        ("unknown.example.net", SECRET, Condition.HOST_UNKNOWN),
    ],
)
async def test_refusals_are_stream_errors_on_both_sides(addr: str, secret: str, condition: Condition) -> None:
    c, s = await connect(addr, secret)
    assert isinstance(c, StreamError), c
    assert isinstance(s, StreamError), s
    assert c.condition is condition
    assert s.condition is condition


async def test_secrets_may_be_a_function_sync_or_async() -> None:
    async def lookup(domain: str) -> str | None:
        return SECRET if domain == DOMAIN else None

    for secrets in (lookup, {DOMAIN: SECRET}.get):
        c, s = await connect(secrets=secrets)
        assert isinstance(c, component.ComponentSession) and isinstance(s, Session)
        await close_both(c, s)
        c, s = await connect("other.example.net", secrets=secrets)
        assert isinstance(c, StreamError) and c.condition is Condition.HOST_UNKNOWN


async def test_second_connection_for_a_domain_is_a_conflict() -> None:
    reg = component.ComponentRegistry()
    c1, s1 = await connect(registry=reg)
    assert isinstance(c1, component.ComponentSession)
    assert reg.sessions(DOMAIN) == [s1]
    c2, s2 = await connect(registry=reg)
    assert isinstance(c2, StreamError) and c2.condition is Condition.CONFLICT
    assert isinstance(s2, StreamError) and s2.condition is Condition.CONFLICT
    assert reg.sessions(DOMAIN) == [s1]
    # Once the first one is gone the domain is free again.
    await close_both(c1, s1)
    assert reg.sessions(DOMAIN) == []
    c3, s3 = await connect(registry=reg)
    assert isinstance(c3, component.ComponentSession), c3
    assert reg.domains() == [DOMAIN]
    await close_both(c3, s3)


@pytest.mark.parametrize("multiple", [True, [DOMAIN]])
async def test_registry_may_allow_several_connections(multiple: Any) -> None:
    reg = component.ComponentRegistry(multiple=multiple)
    pairs = [await connect(registry=reg) for _ in range(3)]
    for c, s in pairs:
        assert isinstance(c, component.ComponentSession), c
    assert reg.sessions(DOMAIN) == [s for _, s in pairs]
    for c, s in pairs:
        await close_both(c, s)


async def test_silent_peers_end_in_time() -> None:
    # A component that never sends its header: the server side gives up.
    ct, st = memory_pipe()
    with pytest.raises(StreamError) as info:
        await asyncio.wait_for(component.receive_session(st, secrets={DOMAIN: SECRET}, timeout=0.2), WAIT)
    assert info.value.condition is Condition.CONNECTION_TIMEOUT
    ct.abort()
    # A server that never answers: the component side gives up.
    ct, st = memory_pipe()
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(component.new_session(DOMAIN, SECRET, ct, timeout=0.2), WAIT)
    st.abort()


async def test_peer_closing_during_handshake_is_an_error_not_a_hang() -> None:
    ct, st = memory_pipe()
    task = asyncio.ensure_future(component.new_session(DOMAIN, SECRET, ct, timeout=WAIT))
    await asyncio.sleep(0.01)
    st.close()
    with pytest.raises((ConnectionError, StreamError)):
        await asyncio.wait_for(task, WAIT)


async def test_wrong_stream_namespace_is_refused() -> None:
    ct, st = memory_pipe()
    srv = asyncio.ensure_future(component.receive_session(st, secrets={DOMAIN: SECRET}, timeout=WAIT))
    got: list[bytes] = []
    proto = ct.get_protocol()
    proto.data_received = got.append  # type: ignore[attr-defined]
    ct.write(
        b"<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' "
        b"to='gw.example.net'>"
    )
    with pytest.raises(StreamError) as info:
        await asyncio.wait_for(srv, WAIT)
    assert info.value.condition is Condition.INVALID_NAMESPACE
    await asyncio.sleep(0.1)
    assert b"invalid-namespace" in b"".join(got)


async def test_stanzas_flow_both_ways_with_from_set() -> None:
    cmux, smux = ServeMux(NS_COMPONENT), ServeMux(NS_COMPONENT)
    to_comp, to_server = collect(cmux), collect(smux)
    user = JID.parse("juliet@example.net/balcony")
    async with serving(cmux, smux) as (c, s):
        # A dataclass without from: the component domain is put in.
        msg = Message(to=user, type=MessageType.CHAT)
        await c.send_message(msg, body("one"))
        assert msg.from_ == JID.parse(DOMAIN)
        # An explicit address at the domain is kept.
        await c.send_message(Message(to=user, from_=JID.parse(f"romeo@{DOMAIN}")), body("two"))
        # A token reader and a parsed element without from.
        m3 = StartElement(Name(NS_COMPONENT, "message"), ())
        m3 = StartElement(m3.name, (*m3.attrs,))
        await c.send([m3, *body("three"), m3.end()])
        el = Element.from_tokens(
            [StartElement(Name(NS_COMPONENT, "message"), ()), *body("four"), StartElement(Name(NS_COMPONENT, "message")).end()]
        )
        await c.send(el)
        await c.send_presence(Presence(to=user))
        async with c.token_writer() as w:
            start = StartElement(Name(NS_COMPONENT, "message"))
            for tok in (start, *body("five"), start.end()):
                w.write_token(tok)
        got = [await asyncio.wait_for(to_server.get(), WAIT) for _ in range(5)]
        froms = [g.get("from") for g in got]
        texts = [g.find("body", NS_COMPONENT).text for g in got]  # type: ignore[union-attr]
        assert texts == ["one", "two", "three", "four", "five"]
        assert froms == [DOMAIN, f"romeo@{DOMAIN}", DOMAIN, DOMAIN, DOMAIN]
        assert all(g.get("id") for g in got)

        # The other way: the server's session sends as it is (no stamping).
        await s.send_message(Message(to=JID.parse(f"bot@{DOMAIN}"), from_=user), body("back"))
        back = await asyncio.wait_for(to_comp.get(), WAIT)
        assert back.get("from") == str(user)
        assert back.get("to") == f"bot@{DOMAIN}"
        assert back.find("body", NS_COMPONENT).text == "back"  # type: ignore[union-attr]


async def test_serve_and_send_iq_work_unchanged() -> None:
    user = JID.parse("juliet@example.net/balcony")

    async def pong(iq: IQ, el: Element, s: Session) -> None:
        await s.send(iq.result(None, s.stanza_ns))

    cmux = ServeMux(NS_COMPONENT).iq_func(IQType.GET, PING, pong)
    smux = ServeMux(NS_COMPONENT).iq_func(IQType.GET, PING, pong)
    async with serving(cmux, smux) as (c, s):
        # Component -> server: the reply matches; our request carried from.
        reply = await asyncio.wait_for(
            c.send_iq(IQ(to=user, type=IQType.GET), [StartElement(PING), StartElement(PING).end()]), WAIT
        )
        assert reply.get("type") == "result"
        assert reply.get("to") == DOMAIN  # the reply went back to the stamped from
        # Server -> component: the component's handler answers from the address asked.
        reply = await asyncio.wait_for(
            s.send_iq(
                IQ(to=JID.parse(f"bot@{DOMAIN}"), from_=user, type=IQType.GET),
                [StartElement(PING), StartElement(PING).end()],
            ),
            WAIT,
        )
        assert reply.get("type") == "result"
        assert reply.get("from") == f"bot@{DOMAIN}"
        # An IQ nobody handles gets service-unavailable, stamped as well.
        other = Name("urn:example:nothing", "query")
        with pytest.raises(StanzaError) as info:
            await asyncio.wait_for(
                s.send_iq(
                    IQ(to=JID.parse(DOMAIN), from_=user, type=IQType.GET),
                    [StartElement(other), StartElement(other).end()],
                ),
                WAIT,
            )
        assert info.value.condition.value == "service-unavailable"


async def test_closing_ends_both_serves_cleanly() -> None:
    c, s = await connect()
    tasks = [asyncio.ensure_future(c.serve()), asyncio.ensure_future(s.serve())]
    await asyncio.sleep(0)
    await asyncio.wait_for(c.close(timeout=WAIT), WAIT)
    done, pending = await asyncio.wait(tasks, timeout=WAIT)
    assert not pending
    for t in done:
        assert t.exception() is None
    assert s.state & SessionState.INPUT_STREAM_CLOSED


def test_component_address_must_be_a_domain() -> None:
    async def go() -> None:
        ct, st = memory_pipe()
        try:
            with pytest.raises(ValueError):
                await component.new_session("user@gw.example.net", SECRET, ct)
        finally:
            ct.abort()
            st.abort()

    asyncio.run(go())


async def test_replies_built_for_jabber_client_go_out_in_the_component_namespace() -> None:
    """``iq.result()`` defaults to jabber:client; a component session writes it
    (and jabber:client payload elements) in jabber:component:accept."""
    user = JID.parse("juliet@example.net/balcony")
    body = Name("jabber:client", "body")

    async def pong(iq: IQ, el: Element, s: Session) -> None:
        await s.send(iq.result())  # no ns given: built for jabber:client

    cmux = ServeMux(NS_COMPONENT).iq_func(IQType.GET, PING, pong)
    got: list[Element] = []
    smux = ServeMux(NS_COMPONENT).message_func(None, None, lambda m, el, s: got.append(el))
    async with serving(cmux, smux) as (c, s):
        reply = await asyncio.wait_for(
            s.send_iq(
                IQ(to=JID.parse(f"bot@{DOMAIN}"), from_=user, type=IQType.GET),
                [StartElement(PING), StartElement(PING).end()],
            ),
            WAIT,
        )
        assert reply.name == Name(NS_COMPONENT, "iq")
        await c.send_message(Message(to=user), [StartElement(body), CharData("hi"), StartElement(body).end()])
        async with asyncio.timeout(WAIT):
            while not got:
                await asyncio.sleep(0.01)
    assert got[0].name == Name(NS_COMPONENT, "message")
    assert got[0].find("body", NS_COMPONENT) is not None
