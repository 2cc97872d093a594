"""slixmpp as a foreign client beside our sessions (issue 5).

slixmpp logs in to :class:`xmpp.testing.Server` (the library's own receiving
side: STARTTLS, SCRAM-SHA-256, bind) and to Prosody, and exchanges messages
and XEP-0199 pings with one of our sessions in both directions: its
``xep_0199`` plugin answers our pings, and our ping handler (a
:class:`xmpp.mux.ServeMux` IQ handler written here) answers its pings.

Every wait is bounded (``TIMEOUT``); slixmpp is disconnected and every
session closed when a test ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable
from pathlib import Path
from typing import Any, TypeVar

import pytest
import slixmpp
from slixmpp.exceptions import IqError

from xmpp import stanza
from xmpp.client import dial_client_session
from xmpp.jid import JID
from xmpp.mux import ServeMux
from xmpp.session import Session, SessionState
from xmpp.stream import NS_CLIENT
from xmpp.testing import Server
from xmpp.xmlstream import CharData, Element, Name, StartElement

from . import servers

#: Seconds any one network step of these tests may take.
TIMEOUT = 10.0
PING = Name("urn:xmpp:ping", "ping")
BODY = Name(NS_CLIENT, "body")
USERS = {"alice": "alice-secret", "bob": "bob-secret"}

T = TypeVar("T")


async def bounded(aw: Awaitable[T], what: str, timeout: float = TIMEOUT) -> T:
    """Await ``aw`` for at most ``timeout`` seconds; fail the test (naming ``what``) if it takes longer."""
    try:
        return await asyncio.wait_for(aw, timeout)
    except asyncio.TimeoutError:
        pytest.fail(f"{what} did not finish within {timeout} s")


class Slix(slixmpp.ClientXMPP):
    """A slixmpp client that verifies the server against ``ca_file`` and answers pings.

    It negotiates STARTTLS (never direct TLS, never plaintext) and SASL with
    ``mechanism``; ``messages`` receives every chat or normal message, and
    :meth:`online` waits for the session to start.
    """

    def __init__(self, jid: str, password: str, ca_file: str | Path, mechanism: str | None) -> None:
        """Prepare (not connect) the client."""
        super().__init__(jid, password, sasl_mech=mechanism)
        self.ca_certs = Path(ca_file)
        self.enable_direct_tls = False
        self.enable_starttls = True
        self.enable_plaintext = False
        self.register_plugin("xep_0199")  # XEP-0199: answers pings, sends them
        self.messages: asyncio.Queue[Any] = asyncio.Queue()
        self._started: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.add_event_handler("session_start", self._on_start)
        self.add_event_handler("message", self.messages.put_nowait)
        for event in ("failed_auth", "connection_failed", "disconnected"):
            self.add_event_handler(event, self._on_failure(event))

    def _on_start(self, event: Any) -> None:
        if not self._started.done():
            self._started.set_result(None)

    def _on_failure(self, name: str) -> Any:
        def fail(event: Any) -> None:
            if not self._started.done():
                problem = f"slixmpp: {name} before the session started: {event!r}"
                self._started.set_exception(AssertionError(problem))

        return fail

    async def online(self, host: str, port: int) -> None:
        """Connect to ``host``:``port`` and wait (bounded) until the session has started."""
        self.connect(host, port)
        await bounded(self._started, "slixmpp's login")


@contextlib.asynccontextmanager
async def slix_client(
    jid: str, password: str, *, host: str, port: int, ca_file: str | Path, mechanism: str | None = None
) -> AsyncIterator[Slix]:
    """A logged-in :class:`Slix`, disconnected (bounded) when the block ends."""
    client = Slix(jid, password, ca_file, mechanism)
    try:
        await client.online(host, port)
        yield client
    finally:
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(client.disconnect(wait=2.0), TIMEOUT)
        client.abort()


class Ours:
    """One of our sessions, served by a mux that collects messages and answers pings."""

    def __init__(self, session: Session) -> None:
        """Wrap ``session``; serving starts when the ``async with`` block is entered."""
        self.session = session
        self.messages: asyncio.Queue[stanza.Message] = asyncio.Queue()
        self.pings: list[stanza.IQ] = []
        self.mux = ServeMux(session.stanza_ns)
        self.mux.message_func(None, BODY, lambda msg, el, s: self.messages.put_nowait(msg))
        self.mux.iq_func(stanza.IQType.GET, PING, self._on_ping)
        self.task: asyncio.Task[None] | None = None

    async def _on_ping(self, iq: stanza.IQ, el: Element, s: Session) -> None:
        self.pings.append(iq)
        await s.send(iq.result(None, s.stanza_ns))

    async def __aenter__(self) -> Ours:
        """Start ``serve``."""
        self.task = asyncio.ensure_future(self.session.serve(self.mux))
        await asyncio.sleep(0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        """Close the session and check that ``serve`` ended without an error."""
        await bounded(self.session.close(timeout=TIMEOUT / 2), "closing our session")
        assert self.task is not None
        done, _ = await asyncio.wait([self.task], timeout=TIMEOUT)
        if not done:
            self.task.cancel()
            pytest.fail("serve did not end after our session was closed")
        failure = self.task.exception()
        if failure is not None and exc[0] is None:
            raise failure
        assert self.session.closed


async def ping(session: Session, to: JID) -> Element:
    """Ping ``to`` (XEP-0199) from our session; an error reply raises its StanzaError."""
    start = StartElement(PING)
    iq = stanza.IQ(to=to, type=stanza.IQType.GET)
    return await session.send_iq(iq, [start, start.end()], timeout=TIMEOUT)


def body(text: str) -> list[Any]:
    """The tokens of a ``<body/>`` holding ``text``."""
    start = StartElement(BODY)
    return [start, CharData(text), start.end()]


def body_text(msg: stanza.Message) -> str:
    """The text of the message's ``<body/>``."""
    for child in msg.payload:
        if child.name == BODY:
            return child.text
    raise AssertionError("message without a body")


async def exchange(ours: Ours, slix: Slix) -> None:
    """A message each way and a ping each way between our session and slixmpp."""
    s = ours.session
    ours_jid = s.local_addr
    slix_jid = JID.parse(str(slix.boundjid.full))
    assert ours_jid is not None and slix_jid.resource

    # Ours -> slixmpp.
    await s.send_message(stanza.Message(to=slix_jid, type=stanza.MessageType.CHAT), body("from ours"))
    got = await bounded(slix.messages.get(), "slixmpp receiving our message")
    assert got["body"] == "from ours"
    assert str(got["from"]) == str(ours_jid)
    assert got["type"] == "chat"

    # slixmpp -> ours.
    slix.send_message(mto=slixmpp.JID(str(ours_jid)), mbody="from slixmpp", mtype="chat")
    msg = await bounded(ours.messages.get(), "our session receiving slixmpp's message")
    assert body_text(msg) == "from slixmpp"
    assert msg.from_ == slix_jid and msg.type is stanza.MessageType.CHAT

    # Our ping, answered by slixmpp's xep_0199 plugin.
    reply = await bounded(ping(s, slix_jid), "our ping to slixmpp")
    assert reply.get("type") == "result" and reply.get("from") == str(slix_jid)

    # slixmpp's ping, answered by our mux (an error reply would raise IqError).
    assert ours.pings == []
    try:
        pinging = slix.plugin["xep_0199"].ping(jid=slixmpp.JID(str(ours_jid)), timeout=TIMEOUT)
        rtt = await bounded(pinging, "slixmpp's ping")
    except IqError as exc:
        pytest.fail(f"our session answered slixmpp's ping with an error: {exc.iq}")
    assert rtt >= 0
    assert len(ours.pings) == 1 and ours.pings[0].from_ == slix_jid


@pytest.fixture(autouse=True)
def _quiet_slixmpp() -> None:
    """Keep slixmpp's debug chatter out of failure reports."""
    logging.getLogger("slixmpp").setLevel(logging.WARNING)


async def test_slixmpp_logs_in_to_our_server() -> None:
    """slixmpp: STARTTLS, SCRAM-SHA-256 (the only mechanism offered) and bind against xmpp.testing.Server."""
    async with Server(users=USERS, mechanisms=["SCRAM-SHA-256"]) as server:
        async with slix_client(
            "bob@localhost/slix",
            USERS["bob"],
            host=server.host,
            port=server.port,
            ca_file=server.ca_file,
            mechanism="SCRAM-SHA-256",
        ) as slix:
            assert str(slix.boundjid.full) == "bob@localhost/slix"
            bound = {str(j): s for j, s in server.sessions.items()}
            assert list(bound) == ["bob@localhost/slix"]
            theirs = bound["bob@localhost/slix"]
            assert theirs.state & SessionState.SECURE and theirs.state & SessionState.AUTHN
            assert theirs.tls is not None and theirs.tls.version() in ("TLSv1.2", "TLSv1.3")
            # slixmpp pings the server itself, which answers for its domain.
            pinging = slix.plugin["xep_0199"].ping(jid=slixmpp.JID("localhost"), timeout=TIMEOUT)
            rtt = await bounded(pinging, "slixmpp's ping to the server")
            assert rtt >= 0
        assert not list(server.failures), list(server.failures)


async def test_slixmpp_and_our_session_on_our_server() -> None:
    """Messages and pings both ways between our session and slixmpp, through xmpp.testing.Server."""
    async with Server(users=USERS) as server:
        ours_session = await dial_client_session(
            "alice@localhost",
            USERS["alice"],
            host=server.host,
            port=server.port,
            tls_context=server.client_context(),
            timeout=TIMEOUT,
        )
        async with ours_session, Ours(ours_session) as ours, slix_client(
            "bob@localhost/slix",
            USERS["bob"],
            host=server.host,
            port=server.port,
            ca_file=server.ca_file,
            mechanism="SCRAM-SHA-256",
        ) as slix:
            await exchange(ours, slix)


async def test_slixmpp_and_our_session_on_prosody(prosody: servers.ProsodyServer) -> None:
    """slixmpp logs in to Prosody and exchanges messages and pings with our session there."""
    ctx = prosody.pki.client_context()
    ours_session = await dial_client_session(
        "alice@localhost/ours",
        prosody.users["alice"],
        host=prosody.host,
        port=prosody.c2s_port,
        tls_context=ctx,
        timeout=TIMEOUT,
    )
    async with ours_session, Ours(ours_session) as ours, slix_client(
        "bob@localhost/slix",
        prosody.users["bob"],
        host=prosody.host,
        port=prosody.c2s_port,
        ca_file=prosody.ca_file,
    ) as slix:
        await exchange(ours, slix)
