"""Our client sessions against real Prosody and ejabberd (issue 5).

Every test dials a server that the fixtures started on loopback and
negotiates with the library's own features: STARTTLS (or direct TLS), SASL
and resource binding.  Each network wait is bounded (``TIMEOUT``), every
session is closed when its test ends, and a ``serve`` that does not end in
time fails the test instead of hanging it.

Facts about the servers these tests rely on (``servers.md``): Prosody 0.12
offers PLAIN, SCRAM-SHA-1 and SCRAM-SHA-256, and the ``-PLUS`` variants only
on TLS 1.2 (tls-unique); ejabberd 23.01 offers PLAIN and SCRAM-SHA-1/256/512,
and advertises ``-PLUS`` on TLS 1.3 as well, where no tls-unique exists.
Neither announces its channel binding types (XEP-0440), so the client
assumes tls-unique, RFC 5802's default: on TLS 1.3 it has no binding in
common with either server and must not choose ``-PLUS``.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import re
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import pytest

from xmpp import dial as xdial
from xmpp import stanza
from xmpp.client import client_features, dial_client_session
from xmpp.jid import JID
from xmpp.mux import ServeMux
from xmpp.negotiator import StreamFeature
from xmpp.sasl import DEFAULT_MECHANISMS, NS_SASL, SASLCondition, SASLError
from xmpp.session import Session, SessionState
from xmpp.stream import NS_CLIENT, Condition, StreamError
from xmpp.xmlstream import CharData, Element, Name, StartElement

from . import servers

#: Seconds any one network step of these tests may take.
TIMEOUT = 10.0
NS_PING = "urn:xmpp:ping"
PING = Name(NS_PING, "ping")
BODY = Name(NS_CLIENT, "body")
STARTTLS = Name("urn:ietf:params:xml:ns:xmpp-tls", "starttls")
SASL_MECHANISMS = Name(NS_SASL, "mechanisms")
ALL_MECHANISMS = (
    "PLAIN",
    "SCRAM-SHA-1",
    "SCRAM-SHA-256",
    "SCRAM-SHA-512",
    "SCRAM-SHA-1-PLUS",
    "SCRAM-SHA-256-PLUS",
    "SCRAM-SHA-512-PLUS",
)
TLS_VERSIONS = {"tls1.2": ssl.TLSVersion.TLSv1_2, "tls1.3": ssl.TLSVersion.TLSv1_3}
# OpenSSL's verify codes: X509_V_ERR_HOSTNAME_MISMATCH, and the two ways an
# unknown CA shows (the servers send their chain with the CA in it: 19).
HOSTNAME_MISMATCH = 62
UNTRUSTED_CHAIN = frozenset({19, 20})  # SELF_SIGNED_CERT_IN_CHAIN, UNABLE_TO_GET_ISSUER_CERT_LOCALLY

T = TypeVar("T")


async def bounded(aw: Awaitable[T], what: str, timeout: float = TIMEOUT) -> T:
    """Await ``aw`` for at most ``timeout`` seconds; fail the test (naming ``what``) if it takes longer."""
    try:
        return await asyncio.wait_for(aw, timeout)
    except asyncio.TimeoutError:
        pytest.fail(f"{what} did not finish within {timeout} s")


def client_context(pki: servers.Pki, tls: str | None = None, *, ca_file: Any = None) -> ssl.SSLContext:
    """A verifying client context, capped at TLS version ``tls`` when given."""
    ctx = pki.client_context(ca_file=ca_file)
    if tls is not None:
        ctx.maximum_version = TLS_VERSIONS[tls]
    return ctx


def plus_offered(server: servers.XMPPServer, tls: str) -> bool:
    """Whether ``server`` advertises SCRAM ``-PLUS`` mechanisms on TLS version ``tls``."""
    return tls == "tls1.2" or isinstance(server, servers.EjabberdServer)


@dataclasses.dataclass
class Wire:
    """What a login saw: the SASL mechanisms the server offered and the bytes we wrote."""

    offered: list[str] = dataclasses.field(default_factory=list)
    out: list[bytes] = dataclasses.field(default_factory=list)

    @property
    def chosen(self) -> list[str]:
        """The mechanism of every ``<auth/>`` we sent (the console shows it, payload redacted)."""
        return re.findall(r"<auth [^>]*mechanism='([^']+)'", b"".join(self.out).decode())


def noting_offers(features: list[StreamFeature], wire: Wire) -> list[StreamFeature]:
    """``features`` with the SASL feature's parser also noting in ``wire`` the mechanisms it read."""
    out = []
    for feature in features:
        parse = feature.parse
        if feature.name == SASL_MECHANISMS and parse is not None:

            def noting(session: Session, el: Element, parse: Any = parse) -> tuple[bool, Any]:
                required, data = parse(session, el)
                wire.offered[:] = list(data)
                return required, data

            feature = dataclasses.replace(feature, parse=noting)
        out.append(feature)
    return out


async def login(
    server: servers.XMPPServer,
    pki: servers.Pki,
    user: str = "alice",
    *,
    password: str | None = None,
    ctx: ssl.SSLContext | None = None,
    mechanisms: Any = None,
    resource: str | None = None,
    direct_tls: bool = False,
    wire: Wire | None = None,
    domain: str | None = None,
) -> Session:
    """Log ``user`` in to ``server`` with :func:`xmpp.client.dial_client_session` (STARTTLS or direct TLS).

    The features are the standard ones (:func:`xmpp.client.client_features`);
    ``wire`` notes what the SASL feature read and every byte we wrote.
    """
    ctx = ctx if ctx is not None else client_context(pki)
    wire = wire if wire is not None else Wire()
    jid = JID(user, domain or server.domain, None)
    password = server.users[user] if password is None else password
    features = client_features(
        jid, password, tls_context=ctx, mechanisms=mechanisms, resource=resource, timeout=TIMEOUT
    )
    session = await bounded(
        dial_client_session(
            jid,
            password,
            features=noting_offers(features, wire),
            tls_context=ctx,
            host=server.host,
            port=server.direct_tls_port if direct_tls else server.c2s_port,
            direct_tls=direct_tls,
            timeout=TIMEOUT,
            tee_out=wire.out.append,
        ),
        f"login of {user}",
        TIMEOUT + 1,
    )
    assert session.state & SessionState.READY
    return session


class Running:
    """A session with ``serve`` running in a task, closed and joined on exit.

    ``messages`` receives every message with a body, ``presences`` every
    presence; ``pings`` holds the XEP-0199 pings this side answered.  Leaving
    the block re-raises what ``serve`` raised, unless the test collected it
    with :meth:`ended`.
    """

    def __init__(self, session: Session, mux: ServeMux | None = None) -> None:
        self.session = session
        self.messages: asyncio.Queue[stanza.Message] = asyncio.Queue()
        self.presences: asyncio.Queue[stanza.Presence] = asyncio.Queue()
        self.pings: list[stanza.IQ] = []
        self.mux = mux if mux is not None else ServeMux(session.stanza_ns)
        self.mux.message_func(None, BODY, self._on_message)
        self.mux.presence_func(None, None, self._on_presence)
        self.mux.iq_func(stanza.IQType.GET, PING, self._on_ping)
        self.task: asyncio.Task[None] | None = None
        self._end_collected = False

    def _on_presence(self, presence: stanza.Presence, el: Element, s: Session) -> None:
        self.presences.put_nowait(presence)

    def _on_message(self, msg: stanza.Message, el: Element, s: Session) -> None:
        self.messages.put_nowait(msg)

    async def _on_ping(self, iq: stanza.IQ, el: Element, s: Session) -> None:
        self.pings.append(iq)
        await s.send(iq.result(None, s.stanza_ns))

    async def __aenter__(self) -> Running:
        self.task = asyncio.ensure_future(self.session.serve(self.mux))
        await asyncio.sleep(0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await bounded(self.session.close(timeout=TIMEOUT / 2), "closing the session")
        assert self.task is not None
        done, _ = await asyncio.wait([self.task], timeout=TIMEOUT)
        if not done:
            self.task.cancel()
            pytest.fail("serve did not end after the session was closed")
        assert self.session.closed
        failure = self.task.exception()
        if failure is not None and not self._end_collected and exc[0] is None:
            raise failure

    async def ended(self) -> BaseException | None:
        """Wait (bounded) for ``serve`` to end; return what it raised, ``None`` for a clean end."""
        assert self.task is not None
        done, _ = await asyncio.wait([self.task], timeout=TIMEOUT)
        if not done:
            pytest.fail("serve did not end after the server closed the stream")
        self._end_collected = True
        return self.task.exception()


@contextlib.asynccontextmanager
async def running(session: Session) -> AsyncIterator[Running]:
    """Serve ``session`` for the length of the block, then close it (see :class:`Running`)."""
    async with session:
        async with Running(session) as r:
            yield r


def ping_payload() -> list[Any]:
    """The tokens of ``<ping xmlns='urn:xmpp:ping'/>``."""
    start = StartElement(PING)
    return [start, start.end()]


async def ping(session: Session, to: JID | str) -> Element:
    """Ping ``to`` (XEP-0199) and return the reply; an error reply raises its StanzaError."""
    target = to if isinstance(to, JID) else JID.parse(to)
    iq = stanza.IQ(to=target, type=stanza.IQType.GET)
    return await session.send_iq(iq, ping_payload(), timeout=TIMEOUT)


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


async def no_session(make: Callable[[], Awaitable[Session]]) -> BaseException:
    """Run a login that must fail; return its exception (a session coming back fails the test)."""
    try:
        session = await make()
    except Exception as exc:  # noqa: BLE001 - the caller checks the type
        return exc
    await session.close(timeout=1.0)
    pytest.fail(f"a session was negotiated: {session!r}")


# ---------------------------------------------------------------------------
# SASL: every mechanism on each TLS version


@pytest.mark.parametrize("tls", sorted(TLS_VERSIONS))
@pytest.mark.parametrize("mechanism", ALL_MECHANISMS)
async def test_login_with_each_mechanism(
    xmpp_server: servers.XMPPServer, pki: servers.Pki, mechanism: str, tls: str
) -> None:
    """Each mechanism the server offers logs in.

    One it does not offer, or a -PLUS it offers but we cannot bind (TLS 1.3
    has no tls-unique), is declined before any ``<auth/>`` is sent.
    """
    wire = Wire()
    plus = mechanism.endswith("-PLUS")
    base = mechanism.removesuffix("-PLUS")
    offered = base in xmpp_server.sasl_mechanisms and (not plus or plus_offered(xmpp_server, tls))
    usable = offered and (not plus or tls == "tls1.2")  # tls-unique only exists up to TLS 1.2

    def make() -> Awaitable[Session]:
        return login(xmpp_server, pki, ctx=client_context(pki, tls), mechanisms=[mechanism], wire=wire)

    if not usable:
        exc = await no_session(make)
        assert isinstance(exc, SASLError), repr(exc)
        assert exc.condition is SASLCondition.INVALID_MECHANISM
        assert (mechanism in wire.offered) is offered, wire.offered
        if offered:  # ejabberd's -PLUS on TLS 1.3: offered, but no binding type in common
            assert "channel binding" in str(exc)
        assert wire.chosen == [], "the client began an exchange it could not finish"
        return

    async with running(await make()) as c:
        s = c.session
        assert mechanism in wire.offered
        assert wire.chosen == [mechanism]
        assert s.state & SessionState.SECURE and s.state & SessionState.AUTHN and s.state & SessionState.READY
        assert s.tls is not None and s.tls.version() == ("TLSv1.2" if tls == "tls1.2" else "TLSv1.3")
        assert s.local_addr is not None and s.local_addr.bare() == JID.parse("alice@localhost")
        assert s.local_addr.resource
        reply = await ping(s, xmpp_server.domain)
        assert reply.get("type") == "result"


@pytest.mark.parametrize("tls", sorted(TLS_VERSIONS))
async def test_default_preference(xmpp_server: servers.XMPPServer, pki: servers.Pki, tls: str) -> None:
    """The default list takes the strongest -PLUS on TLS 1.2 and the strongest plain SCRAM on 1.3.

    On TLS 1.3 ejabberd still advertises -PLUS (tls-unique only): the client
    must not choose it, since it has no tls-unique binding there, and must
    log in with plain SCRAM instead.
    """
    wire = Wire()
    session = await login(xmpp_server, pki, ctx=client_context(pki, tls), wire=wire)
    async with running(session) as c:
        assert c.session.state & SessionState.AUTHN
        strongest = [m for m in DEFAULT_MECHANISMS if m.startswith("SCRAM") and m in wire.offered]
        if tls == "tls1.2":
            expected = next(m for m in strongest if m.endswith("-PLUS"))
        else:
            assert any(m.endswith("-PLUS") for m in wire.offered) is plus_offered(xmpp_server, tls)
            expected = next(m for m in strongest if not m.endswith("-PLUS"))
        assert wire.chosen == [expected]
        want = {"ejabberd": "SCRAM-SHA-512", "prosody": "SCRAM-SHA-256"}[xmpp_server.name]
        assert expected == (want + "-PLUS" if tls == "tls1.2" else want)


@pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-1", "SCRAM-SHA-256"])
async def test_wrong_password(xmpp_server: servers.XMPPServer, pki: servers.Pki, mechanism: str) -> None:
    """A wrong password is the server's not-authorized failure, raised as SASLError; no session."""
    wire = Wire()
    exc = await no_session(
        lambda: login(xmpp_server, pki, password="not the password", mechanisms=[mechanism], wire=wire)
    )
    assert isinstance(exc, SASLError), repr(exc)
    assert exc.condition is SASLCondition.NOT_AUTHORIZED
    assert wire.chosen == [mechanism]


# ---------------------------------------------------------------------------
# TLS


async def test_direct_tls(xmpp_server: servers.XMPPServer, pki: servers.Pki) -> None:
    """XEP-0368: TLS from the first byte on the direct TLS port, no STARTTLS, then SASL and bind."""
    ctx = client_context(pki)
    ctx.set_alpn_protocols(["xmpp-client"])
    wire = Wire()
    session = await login(xmpp_server, pki, ctx=ctx, direct_tls=True, wire=wire)
    async with running(session) as c:
        s = c.session
        assert s.state & SessionState.SECURE and s.state & SessionState.READY
        assert STARTTLS not in s.negotiated
        assert b"<starttls" not in b"".join(wire.out)
        assert s.tls is not None and s.tls.version() == "TLSv1.3"
        # Neither server selects ALPN on its direct TLS port (servers.md).
        assert s.tls.selected_alpn_protocol() is None
        reply = await ping(s, "localhost")
        assert reply.get("from") == "localhost"


@pytest.mark.parametrize("direct_tls", [False, True], ids=["starttls", "direct-tls"])
async def test_untrusted_certificate(
    xmpp_server: servers.XMPPServer, pki: servers.Pki, direct_tls: bool
) -> None:
    """A client that does not trust the server's CA gets a certificate verification error and no session."""
    ctx = client_context(pki, ca_file=pki.untrusted_ca_file)
    wire = Wire()
    exc = await no_session(lambda: login(xmpp_server, pki, ctx=ctx, direct_tls=direct_tls, wire=wire))
    if direct_tls:
        # dial tried the one target and says why it failed.
        assert isinstance(exc, xdial.DialError), repr(exc)
        exc = exc.errors[-1][1]
    assert isinstance(exc, ssl.SSLCertVerificationError), repr(exc)
    assert exc.verify_code in UNTRUSTED_CHAIN, exc
    assert wire.offered == [] and wire.chosen == []


class VerifyAs(ssl.SSLContext):
    """A client context that checks the peer's certificate against ``verify_name``, not the dialed domain."""

    verify_name = "wrong.example"

    def wrap_bio(
        self,
        incoming: Any,
        outgoing: Any,
        server_side: bool = False,
        server_hostname: Any = None,
        session: Any = None,
    ) -> ssl.SSLObject:
        """Wrap the BIOs with ``verify_name`` as the expected host name (and SNI)."""
        return super().wrap_bio(incoming, outgoing, server_side, self.verify_name, session)


async def test_host_name_mismatch_starttls(xmpp_server: servers.XMPPServer, pki: servers.Pki) -> None:
    """STARTTLS to the real server, verifying a name its certificate does not list: a certificate error."""
    ctx = VerifyAs(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(cafile=str(pki.ca_file))
    assert ctx.check_hostname and ctx.verify_mode is ssl.CERT_REQUIRED
    wire = Wire()
    exc = await no_session(lambda: login(xmpp_server, pki, ctx=ctx, wire=wire))
    assert isinstance(exc, ssl.SSLCertVerificationError), repr(exc)
    assert exc.verify_code == HOSTNAME_MISMATCH
    assert "wrong.example" in str(exc)
    assert wire.chosen == []


async def test_host_name_mismatch_direct_tls(xmpp_server: servers.XMPPServer, pki: servers.Pki) -> None:
    """Direct TLS dialed for a domain the certificate does not list (``wrong.example``): a TLS error.

    ejabberd presents its certificate and our verification refuses the name;
    Prosody refuses the handshake itself (``unrecognized_name`` alert for
    the SNI ``wrong.example``).  Either way: no session.
    """
    assert "wrong.example" not in pki.server.names
    exc = await no_session(lambda: login(xmpp_server, pki, direct_tls=True, domain="wrong.example"))
    assert isinstance(exc, xdial.DialError), repr(exc)
    cause = exc.errors[-1][1]
    if isinstance(xmpp_server, servers.ProsodyServer):
        assert isinstance(cause, ssl.SSLError), repr(cause)
        assert cause.reason == "TLSV1_UNRECOGNIZED_NAME", repr(cause)
    else:
        assert isinstance(cause, ssl.SSLCertVerificationError), repr(cause)
        assert cause.verify_code == HOSTNAME_MISMATCH


# ---------------------------------------------------------------------------
# Stanzas between our sessions and the server


async def test_message_full_and_bare_jid(xmpp_server: servers.XMPPServer, pki: servers.Pki) -> None:
    """alice -> bob through the server, to bob's full JID and to his bare JID (bob is available)."""
    async with running(await login(xmpp_server, pki, "alice")) as alice, running(
        await login(xmpp_server, pki, "bob", resource="desk")
    ) as bob:
        bob_full = bob.session.local_addr
        assert bob_full is not None and str(bob_full) == "bob@localhost/desk"
        # A message to a bare JID goes to an available resource: announce one.
        await bob.session.send(stanza.Presence())
        # The server sends bob's initial presence to bob too (RFC 6121 4.2.2):
        # once it is back, he is available.
        while (await bounded(bob.presences.get(), "bob's own presence")).from_ != bob_full:
            pass
        for i, to in enumerate((bob_full, bob_full.bare())):
            msg = stanza.Message(to=to, type=stanza.MessageType.CHAT)
            await alice.session.send_message(msg, body(f"hello {i}"))
            got = await bounded(bob.messages.get(), f"message {i} to {to}")
            assert body_text(got) == f"hello {i}"
            assert got.from_ == alice.session.local_addr
            assert got.to == to
            assert got.type is stanza.MessageType.CHAT
        # And back, bob -> alice's full JID.
        await bob.session.send_message(stanza.Message(to=alice.session.local_addr), body("back"))
        got = await bounded(alice.messages.get(), "message to alice")
        assert body_text(got) == "back" and got.from_ == bob_full
    # Leaving the blocks closed both streams in both directions.
    assert alice.session.closed and bob.session.closed
    assert alice.session.state & SessionState.INPUT_STREAM_CLOSED


async def test_ping_server_and_between_clients(xmpp_server: servers.XMPPServer, pki: servers.Pki) -> None:
    """XEP-0199 pings: to the server's domain, and alice -> bob answered by bob's mux."""
    async with running(await login(xmpp_server, pki, "alice")) as alice, running(
        await login(xmpp_server, pki, "bob", resource="ping")
    ) as bob:
        a = alice.session
        reply = await ping(a, xmpp_server.domain)
        assert reply.get("type") == "result" and reply.get("from") == xmpp_server.domain
        assert reply.get("to") == str(a.local_addr)

        bob_full = bob.session.local_addr
        assert bob_full is not None and bob_full.resource == "ping"
        reply = await ping(a, bob_full)
        assert reply.get("type") == "result" and reply.get("from") == str(bob_full)
        assert len(bob.pings) == 1 and bob.pings[0].from_ == a.local_addr

        # An IQ bob's mux does not handle is answered service-unavailable by serve.
        q = StartElement(Name("urn:example:unknown", "query"))
        with pytest.raises(stanza.StanzaError) as err:
            iq = stanza.IQ(to=bob_full, type=stanza.IQType.GET)
            await a.send_iq(iq, [q, q.end()], timeout=TIMEOUT)
        assert err.value.condition is stanza.Condition.SERVICE_UNAVAILABLE


# ---------------------------------------------------------------------------
# The server closing the stream


async def test_resource_conflict_closes_the_old_stream(
    xmpp_server: servers.XMPPServer, pki: servers.Pki
) -> None:
    """A second login with the same resource replaces the first: its serve ends with the conflict error."""
    first = await login(xmpp_server, pki, "carol", resource="phone")
    async with first, Running(first) as old:
        async with running(await login(xmpp_server, pki, "carol", resource="phone")) as new:
            exc = await old.ended()
            assert isinstance(exc, StreamError), repr(exc)
            assert exc.condition is Condition.CONFLICT
            assert first.state & SessionState.OUTPUT_STREAM_CLOSED
            # The newcomer holds the resource and works.
            assert str(new.session.local_addr) == "carol@localhost/phone"
            reply = await ping(new.session, "localhost")
            assert reply.get("type") == "result"
            # Nothing can be sent on the closed stream.
            with pytest.raises(ConnectionError):
                await first.send(stanza.Message(to=new.session.local_addr))
    assert first.closed and new.session.closed


async def test_ejabberd_kick_user_ends_serve(ejabberd: servers.EjabberdServer, pki: servers.Pki) -> None:
    """ejabberd's ``kick_user`` closes our stream: serve ends with the server's stream error, never hangs."""
    user = "kicked"
    if user not in ejabberd.users:
        ejabberd.register(user, "kickedpass")
    session = await login(ejabberd, pki, user)
    async with session, Running(session) as c:
        result = await asyncio.to_thread(ejabberd.api, "kick_user", {"user": user, "host": ejabberd.domain})
        assert result == {"num_resources": 1}
        exc = await c.ended()
        # ejabberd 23.01 says so with a stream error: policy-violation, "has been kicked".
        assert isinstance(exc, StreamError), repr(exc)
        assert exc.condition is Condition.POLICY_VIOLATION
        assert session.state & SessionState.OUTPUT_STREAM_CLOSED
    assert session.closed


async def test_prosody_shutdown_ends_serve(
    server_factory: Callable[..., servers.XMPPServer], pki: servers.Pki
) -> None:
    """A Prosody that shuts down closes our stream with system-shutdown; serve ends with that error."""
    server = server_factory("prosody")
    session = await login(server, pki)
    async with session, Running(session) as c:
        await asyncio.to_thread(server.stop)
        exc = await c.ended()
        assert isinstance(exc, StreamError), repr(exc)
        assert exc.condition is Condition.SYSTEM_SHUTDOWN
        assert session.state & SessionState.OUTPUT_STREAM_CLOSED
    assert session.closed
