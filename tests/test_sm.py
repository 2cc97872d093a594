"""Stream management (XEP-0198) with both sides ours, over in-memory pipes."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from xmpp import sid
from xmpp.bind import bind
from xmpp.jid import JID
from xmpp.negotiator import StreamConfig, StreamFeature
from xmpp.session import Session, SessionState, new_session, receive_session
from xmpp.sm import MASK, NS, SMState, SMStore, sm, sm_server
from xmpp.stanza import Message
from xmpp.stream import StreamError
from xmpp.testing import MemoryTransport, memory_pipe
from xmpp.xmlstream import Element, Name, StartElement

AUTH = Name("urn:example:auth", "auth")
CLIENT_JID = "alice@example.net/phone"


def fake_auth() -> StreamFeature:
    """A stand-in for SASL: sets AUTHN and restarts the stream."""

    async def negotiate(session: Session, data: Any) -> tuple[int, bool]:
        if session.state & SessionState.RECEIVED:
            session.remote_addr = JID.parse("alice@example.net")
            session.reset_input()
            session.write_raw(b"<ok xmlns='urn:example:auth'/>")
        else:
            session.write_raw(b"<auth xmlns='urn:example:auth'/>")
            await session.read_element(2)
        return int(SessionState.AUTHN), True

    return StreamFeature(
        AUTH,
        prohibited=int(SessionState.AUTHN),
        list=lambda s: (True, [StartElement(AUTH), StartElement(AUTH).end()]),
        parse=lambda s, el: (True, None),
        negotiate=negotiate,
    )


class Peer:
    """One connected pair: the sessions, what each side's handler got, the pipe ends."""

    def __init__(self, client: Session, server: Session, ct: MemoryTransport, st: MemoryTransport) -> None:
        self.client, self.server, self.ct, self.st = client, server, ct, st
        self.got_client: list[str] = []
        self.got_server: list[str] = []
        self.tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        def on_client(el: Element, start: StartElement) -> None:
            self.got_client.append(start.get("id") or "")

        def on_server(el: Element, start: StartElement) -> None:
            self.got_server.append(start.get("id") or "")

        self.tasks = [
            asyncio.ensure_future(self.client.serve(on_client)),
            asyncio.ensure_future(self.server.serve(on_server)),
        ]

    async def stop(self) -> None:
        with contextlib.suppress(Exception):
            await self.client.close(timeout=1.0)
        with contextlib.suppress(Exception):
            await self.server.close(timeout=1.0)
        await asyncio.wait(self.tasks, timeout=2.0)
        for t in self.tasks:
            if not t.done():
                t.cancel()
            else:
                t.exception()  # a lost connection ends serve with an error: expected here


async def connect(
    state: SMState,
    store: SMStore,
    *,
    ack_every: int = 16,
    ack_after: float | None = None,
    tee_out: Any = None,
) -> Peer:
    ct, st = memory_pipe()
    scfg = StreamConfig(features=[fake_auth(), bind(), sm_server(store, ack_every=ack_every, ack_after=ack_after)])
    ccfg = StreamConfig(
        features=[fake_auth(), bind("phone"), sm(state, ack_every=ack_every, ack_after=ack_after)], tee_out=tee_out
    )
    server_task = asyncio.ensure_future(receive_session(st, "example.net", config=scfg))
    client = await asyncio.wait_for(new_session(ct, "example.net", origin=CLIENT_JID, config=ccfg), 5)
    server = await asyncio.wait_for(server_task, 5)
    p = Peer(client, server, ct, st)
    p.start()
    return p


@contextlib.asynccontextmanager
async def connected(state: SMState, store: SMStore, **kw: Any) -> AsyncIterator[Peer]:
    p = await connect(state, store, **kw)
    try:
        yield p
    finally:
        await p.stop()


async def turns(n: int = 5) -> None:
    """Let the loop run ``n`` turns (in-memory pipes deliver on the next one)."""
    for _ in range(n):
        await asyncio.sleep(0)


async def send_many(session: Session, prefix: str, n: int) -> list[str]:
    ids = [f"{prefix}{i}" for i in range(n)]
    for i in ids:
        await session.send(Message(id=i, to=JID.parse("bob@example.net")))
    return ids


# ------------------------------------------------------------------ counters


def test_ack_drops_acknowledged_stanzas_across_the_wrap() -> None:
    st = SMState(h_out=MASK - 1)
    for i in range(4):
        st.unacked.append((None, b"%d" % i))
    st.h_out = (st.h_out + 4) & MASK  # four sent: the counter wrapped to 2
    assert st.h_out == 2
    assert st.peer_h == MASK - 1
    assert st.ack(MASK) == 1
    assert st.ack(1) == 2  # MASK -> 0 -> 1
    assert [d for _, d in st.unacked] == [b"3"]
    assert st.acked == 3
    with pytest.raises(StreamError):
        st.ack(5)  # more than was sent: handled-count-too-high
    assert st.ack(1) == 0  # a repeated ack changes nothing


async def test_enable_counts_both_ways_and_acks() -> None:
    state, store = SMState(), SMStore(max=60)
    async with connected(state, store) as p:
        assert p.client.sm is not None and p.server.sm is not None
        assert state.id is not None and state.resumable and state.max == 60
        assert state.jid == JID.parse(CLIENT_JID)
        assert len(store) == 1
        ids = await send_many(p.client, "c", 10)
        await p.client.sm.wait_acked(5)
        await turns()
        assert p.got_server == ids
        assert (state.h_out, state.acked, len(state.unacked)) == (10, 10, 0)
        assert p.server.sm.h_in == 10
        sids = await send_many(p.server, "s", 5)
        await p.server.sm.wait_acked(5)
        await turns()
        assert p.got_client == sids
        assert state.h_in == 5 and p.server.sm.state.acked == 5


async def test_nonzas_never_reach_the_handler_and_iqs_count() -> None:
    state, store = SMState(), SMStore()
    async with connected(state, store) as p:
        p.server.write_raw(b"<r xmlns='urn:xmpp:sm:3'/>")
        await turns()
        assert p.got_client == []  # the <r/> was answered, not handled
        assert p.server.sm.state.acked == 0
        await p.client.send(Element.from_tokens(list(Message(id="m1").wrap(None, p.client.stanza_ns))))
        await p.client.sm.wait_acked(5)
        assert p.got_server == ["m1"] and state.acked == 1


async def test_the_window_asks_every_n_stanzas() -> None:
    wire: list[bytes] = []
    state, store = SMState(), SMStore()
    async with connected(state, store, ack_every=3, tee_out=wire.append) as p:
        wire.clear()
        for i in range(7):
            await p.client.send(Message(id=f"w{i}"))
            await turns(1)
        await turns()
        out = b"".join(wire)
        assert out.count(b"<r xmlns='urn:xmpp:sm:3'/>") == 2
        assert state.acked == 6 and len(state.unacked) == 1


async def test_the_window_asks_after_a_time() -> None:
    state, store = SMState(), SMStore()
    async with connected(state, store, ack_every=1000, ack_after=0.01) as p:
        await p.client.send(Message(id="t1"))
        for _ in range(500):
            if state.acked:
                break
            await asyncio.sleep(0.01)
        assert state.acked == 1 and not state.unacked


async def test_counters_wrap_at_2_to_the_32() -> None:
    store = SMStore()
    jid = JID.parse(CLIENT_JID)
    server_state = SMState(id="near-wrap", resumable=True, jid=jid, h_in=MASK - 1, h_out=MASK - 1)
    server_state.lost_at = time.monotonic()
    store.register(server_state)
    state = SMState(id="near-wrap", resumable=True, jid=jid, h_in=MASK - 1, h_out=MASK - 1)
    async with connected(state, store) as p:
        assert state.resumed and p.client.local_addr == jid
        ids = await send_many(p.client, "c", 5)
        sids = await send_many(p.server, "s", 5)
        await p.client.sm.wait_acked(5)
        await p.server.sm.wait_acked(5)
        await turns()
        assert p.got_server == ids and p.got_client == sids
        assert state.h_out == 3 and state.h_in == 3  # 2**32 - 2 + 5
        assert server_state.h_in == 3 and server_state.h_out == 3
        assert state.acked == 5 and server_state.acked == 5


async def test_resume_after_abort_resends_exactly_the_unacknowledged() -> None:
    state, store = SMState(), SMStore()
    p = await connect(state, store)
    try:
        first = await send_many(p.client, "a", 20)
        await p.client.sm.wait_acked(5)
        delivered = await send_many(p.client, "b", 5)
        await turns()  # these reach the server, which has not acknowledged them
        assert p.got_server == first + delivered
        lost = await send_many(p.client, "c", 5)
        lost_s = await send_many(p.server, "s", 3)  # never leaves: the pipe is cut this turn
        p.ct.abort()
        await turns()
        assert len(state.unacked) == 10 and state.h_out == 30
        assert p.client.closed and p.server.closed
    finally:
        await p.stop()
    got_before = list(p.got_server)
    wire: list[bytes] = []
    async with connected(state, store, tee_out=wire.append) as q:
        assert state.resumed
        assert b"<bind" not in b"".join(wire)  # resumption replaces bind
        await q.client.sm.wait_acked(5)
        await q.server.sm.wait_acked(5)
        await turns()  # acknowledged on receipt; the handlers run right after
        assert got_before + q.got_server == first + delivered + lost
        assert q.got_client == lost_s
        assert state.acked == 30 and state.h_out == 30 and state.h_in == 3
        more = await send_many(q.client, "d", 2)
        await q.client.sm.wait_acked(5)
        await turns()
        assert q.got_server == lost + more
        assert q.server.sm.state.h_in == 32


async def test_failed_resume_drops_what_the_server_had_and_resends_the_rest() -> None:
    state, store = SMState(), SMStore(max=1)
    p = await connect(state, store)
    try:
        first = await send_many(p.client, "a", 4)
        await turns()
        assert p.got_server == first  # received, not acknowledged
        lost = await send_many(p.client, "b", 3)
        p.ct.abort()
        await turns()
    finally:
        await p.stop()
    old_id = state.id
    assert old_id is not None and len(state.unacked) == 7
    # The server gave up on the stream: its h is all that is left of it.
    store.expire(now=time.monotonic() + 10)
    assert len(store) == 0 and store.expired_h(old_id) == 4
    async with connected(state, store) as q:
        assert not state.resumed and state.id not in (None, old_id)
        assert q.client.local_addr == JID.parse(CLIENT_JID)  # bound anew
        await q.client.sm.wait_acked(5)
        await turns()
        assert q.got_server == lost  # the four the server had are not sent again
        assert state.acked == 4 + 3 and state.h_out == 3
        assert q.server.sm.state.h_in == 3


async def test_unknown_stream_fails_and_everything_unacknowledged_is_resent() -> None:
    state = SMState(id="never-heard-of-it", resumable=True, jid=JID.parse(CLIENT_JID))
    state.unacked.append((Message(id="x1").start("jabber:client"), b"<message id='x1'/>"))
    state.h_out = 1
    async with connected(state, SMStore()) as q:
        assert not state.resumed
        await q.client.sm.wait_acked(5)
        await turns()
        assert q.got_server == ["x1"]


async def test_an_ack_for_more_than_was_sent_is_a_stream_error() -> None:
    state, store = SMState(), SMStore()
    p = await connect(state, store)
    try:
        await send_many(p.client, "a", 2)
        p.server.write_raw(b"<a xmlns='urn:xmpp:sm:3' h='7'/>")
        done, _ = await asyncio.wait([p.tasks[0]], timeout=5)
        assert done
        exc = p.tasks[0].exception()
        assert isinstance(exc, StreamError) and "handled-count-too-high" in str(exc)
    finally:
        await p.stop()


async def test_origin_ids_survive_a_resumption() -> None:
    state, store = SMState(), SMStore()
    p = await connect(state, store)
    sent: list[str] = []
    try:
        for i in range(6):
            sent.append(await sid.send_message(p.client, Message(to=JID.parse("bob@example.net"))))
        p.ct.abort()
        await turns()
    finally:
        await p.stop()
    async with connected(state, store) as q:
        await q.client.sm.wait_acked(5)
        await turns()
        assert sorted(p.got_server + q.got_server) == sorted(sent)  # each once
        assert state.acked == 6


def test_namespace() -> None:
    assert NS == "urn:xmpp:sm:3"
