"""xmpp.client over real loopback TCP: logging in to xmpp.testing.Server.

Every test dials 127.0.0.1 with STARTTLS (or direct TLS), SASL and bind.
"""

from __future__ import annotations

import asyncio
import base64
import re
import ssl
from collections.abc import AsyncIterator
from typing import Any

import pytest

from xmpp.client import client_features, dial_client_session, dial_server_session, receive_client_session
from xmpp.dial import DialError
from xmpp.jid import JID
from xmpp.negotiator import StreamConfig
from xmpp.sasl import SASLCondition, SASLError
from xmpp.session import Session, SessionState, protocol_factory, receive_session
from xmpp.stanza import Message, MessageType
from xmpp.starttls import starttls
from xmpp.stream import NS_CLIENT, NS_SERVER, Condition, StreamError
from xmpp.testing import Server, TestCertificate
from xmpp.xmlstream import CharData, Element, Name, StartElement

PASSWORD = "correct horse battery staple"
MECHANISMS = [
    "PLAIN",
    "SCRAM-SHA-1",
    "SCRAM-SHA-256",
    "SCRAM-SHA-512",
    "SCRAM-SHA-1-PLUS",
    "SCRAM-SHA-256-PLUS",
    "SCRAM-SHA-512-PLUS",
]
TLS = {"1.2": ssl.TLSVersion.TLSv1_2, "1.3": ssl.TLSVersion.TLSv1_3}


@pytest.fixture(scope="module")
def cert() -> TestCertificate:
    return TestCertificate(["localhost", "127.0.0.1"])


@pytest.fixture
async def server(cert: TestCertificate) -> AsyncIterator[Server]:
    async with Server(users={"alice": PASSWORD, "bob": "bobs password"}, certificate=cert, timeout=5.0) as s:
        yield s


async def login(server: Server, jid: str = "alice@localhost", password: str = PASSWORD, **kw: Any) -> Session:
    kw.setdefault("tls_context", server.client_context())
    return await dial_client_session(jid, password, host=server.host, port=server.port, timeout=10.0, **kw)


def body(text: str) -> list[Any]:
    s = StartElement(Name(NS_CLIENT, "body"))
    return [s, CharData(text), s.end()]


@pytest.mark.parametrize("tls", sorted(TLS))
@pytest.mark.parametrize("mechanism", MECHANISMS)
async def test_login_with_each_mechanism_and_tls_version(server: Server, cert: TestCertificate, mechanism: str, tls: str) -> None:
    out: list[bytes] = []
    session = await login(
        server,
        "alice@localhost/desk",
        mechanisms=[mechanism],
        tls_context=cert.client_context(maximum=TLS[tls]),
        tee_out=out.append,
    )
    async with session:
        assert session.state & SessionState.READY
        assert session.state & SessionState.SECURE and session.state & SessionState.AUTHN
        assert session.tls is not None and session.tls.version() == f"TLSv{tls}"
        assert str(session.local_addr) == "alice@localhost/desk"
        sent = b"".join(out).decode()
        assert re.search(r"<auth[^>]*mechanism=[\"']" + re.escape(mechanism) + r"[\"']", sent), sent
        assert JID.parse("alice@localhost/desk") in server.sessions


async def test_default_preference_takes_a_plus_mechanism(server: Server) -> None:
    out: list[bytes] = []
    async with await login(server, tee_out=out.append) as session:
        assert session.local_addr is not None and session.local_addr.resource  # server-assigned
        assert re.search(r"mechanism=[\"']SCRAM-SHA-\d+-PLUS[\"']", b"".join(out).decode())


async def test_wrong_password_is_not_authorized(server: Server) -> None:
    with pytest.raises(SASLError) as ei:
        await login(server, password="wrong")
    assert ei.value.condition is SASLCondition.NOT_AUTHORIZED
    assert not server.sessions


@pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-256"])
async def test_unknown_user_is_not_authorized_too(server: Server, mechanism: str) -> None:
    with pytest.raises(SASLError) as ei:
        await login(server, "mallory@localhost", mechanisms=[mechanism])
    assert ei.value.condition is SASLCondition.NOT_AUTHORIZED
    assert not server.sessions


async def test_untrusted_certificate_gives_no_session(server: Server) -> None:
    stranger = TestCertificate(["localhost"])
    with pytest.raises(ssl.SSLCertVerificationError):
        await login(server, tls_context=stranger.client_context())
    with pytest.raises(ssl.SSLCertVerificationError):
        await login(server, tls_context=ssl.create_default_context())
    assert not server.sessions


async def test_wrong_host_name_is_a_certificate_error() -> None:
    wrong = TestCertificate(["wrong.example"])
    async with Server(users={"alice": PASSWORD}, certificate=wrong) as server:
        with pytest.raises(ssl.SSLCertVerificationError, match="(?i)hostname|match"):
            await login(server, tls_context=wrong.client_context())
        assert not server.sessions


async def test_unserved_domain_is_host_unknown(server: Server) -> None:
    with pytest.raises(StreamError) as ei:
        await login(server, "alice@elsewhere.example")
    assert ei.value.condition is Condition.HOST_UNKNOWN


async def test_direct_tls(cert: TestCertificate) -> None:
    async with Server(users={"alice": PASSWORD}, certificate=cert, direct_tls=True) as server:
        tee: list[bytes] = []
        async with await login(server, direct_tls=True, tee_out=tee.append) as session:
            assert session.state & SessionState.READY and session.state & SessionState.SECURE
            assert b"starttls" not in b"".join(tee)  # secure from the first byte: no STARTTLS
            assert session.tls is not None


async def test_the_whole_login_is_bounded_by_timeout(cert: TestCertificate) -> None:
    """A server that accepts the connection and never speaks: TimeoutError, nothing left open."""
    loop = asyncio.get_running_loop()
    lost: asyncio.Future[None] = loop.create_future()

    class Silent(asyncio.Protocol):
        def connection_lost(self, exc: Exception | None) -> None:
            if not lost.done():
                lost.set_result(None)

    srv = await loop.create_server(Silent, "127.0.0.1", 0)
    port = srv.sockets[0].getsockname()[1]
    try:
        with pytest.raises(TimeoutError):
            await dial_client_session(
                "alice@localhost", PASSWORD, host="127.0.0.1", port=port,
                tls_context=cert.client_context(), timeout=0.5,
            )
        await asyncio.wait_for(lost, 5)  # the client closed its connection
    finally:
        srv.close()
        await srv.wait_closed()


async def test_client_features_shape() -> None:
    f = client_features("alice@localhost/desk", PASSWORD)
    assert [x.name.local for x in f] == ["starttls", "mechanisms", "bind"]
    with pytest.raises(ValueError):
        client_features("localhost", PASSWORD)


async def test_xml_console_sees_everything_but_sasl_payloads(server: Server, cert: TestCertificate) -> None:
    for mechanism in ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-256-PLUS"):
        tee_in: list[bytes] = []
        tee_out: list[bytes] = []
        got: asyncio.Queue[Element] = asyncio.Queue()
        session = await login(server, "alice@localhost/console", mechanisms=[mechanism], tee_in=tee_in.append, tee_out=tee_out.append)
        async with session:
            task = asyncio.ensure_future(session.serve(lambda el, start: got.put_nowait(el)))
            await session.send_message(Message(to=session.local_addr, type=MessageType.CHAT), body("echo me"))
            await asyncio.wait_for(got.get(), 5)
            await session.close()
            await asyncio.wait_for(task, 5)
        seen_in = b"".join(tee_in)
        seen_out = b"".join(tee_out)
        both = seen_in + seen_out
        # Everything else is there: headers, STARTTLS, bind, the message both ways.
        assert b"<stream:stream" in seen_out and b"<stream:stream" in seen_in
        assert b"starttls" in seen_out and b"proceed" in seen_in
        assert b"urn:ietf:params:xml:ns:xmpp-bind" in seen_out
        assert b"alice@localhost/console" in seen_in
        assert seen_out.count(b"echo me") == 1 and seen_in.count(b"echo me") == 1
        assert b"</stream:stream>" in seen_out
        # The SASL exchange shows its elements, with payloads redacted.
        assert mechanism.encode() in seen_out
        assert b"[redacted]" in seen_out
        assert b"success" in seen_in
        # No secret: not the password, not a payload in base64.
        assert PASSWORD.encode() not in both
        assert base64.b64encode(f"\0alice\0{PASSWORD}".encode()) not in both
        for gs2 in ("n,,", "y,,", "p=tls-server-end-point,,", "p=tls-unique,,"):
            first = f"{gs2}n=alice,r=".encode()
            prefix = base64.b64encode(first[: len(first) // 3 * 3])
            assert prefix not in both
        for text in re.findall(rb"<(?:auth|response|challenge|success)\b[^>]*>([^<]*)<", both):
            assert text in (b"", b"=", b"[redacted]"), text


async def test_dial_server_session_negotiates_starttls_only() -> None:
    cert = TestCertificate(["b.example"])
    loop = asyncio.get_running_loop()
    received: asyncio.Future[Session] = loop.create_future()

    async def accept(transport: asyncio.Transport) -> None:
        try:
            s = await receive_session(
                transport, "b.example",
                config=StreamConfig(features=[starttls(cert.server_context())], s2s=True, timeout=5),
            )
            received.set_result(s)
        except Exception as exc:
            received.set_exception(exc)

    def factory() -> asyncio.BaseProtocol:
        proto = protocol_factory()
        made = proto.connection_made

        def connection_made(t: asyncio.BaseTransport) -> None:
            made(t)
            asyncio.ensure_future(accept(t))  # type: ignore[arg-type]

        setattr(proto, "connection_made", connection_made)
        return proto

    srv = await loop.create_server(factory, "127.0.0.1", 0)
    port = srv.sockets[0].getsockname()[1]
    try:
        session = await dial_server_session(
            "b.example", "a.example", host="127.0.0.1", port=port,
            tls_context=cert.client_context(), timeout=5,
        )
        theirs = await asyncio.wait_for(received, 5)
        async with session, theirs:
            assert session.state & SessionState.S2S and session.state & SessionState.SECURE
            assert session.state & SessionState.READY and not session.state & SessionState.AUTHN
            assert session.stanza_ns == NS_SERVER
            assert theirs.in_info is not None and str(theirs.in_info.from_) == "a.example"
    finally:
        srv.close()
        await srv.wait_closed()


async def test_nothing_listening_is_a_dial_error(cert: TestCertificate) -> None:
    loop = asyncio.get_running_loop()
    srv = await loop.create_server(asyncio.Protocol, "127.0.0.1", 0)
    port = srv.sockets[0].getsockname()[1]
    srv.close()
    await srv.wait_closed()  # the port is free again: connections are refused
    with pytest.raises(DialError):
        await dial_client_session(
            "alice@localhost", PASSWORD, host="127.0.0.1", port=port,
            tls_context=cert.client_context(), timeout=5,
        )


async def test_receive_client_session_insists_on_tls(cert: TestCertificate) -> None:
    from xmpp.sasl import MemoryCredentialStore
    from xmpp.testing import memory_pipe

    _ct, st = memory_pipe()
    with pytest.raises(ValueError, match="TLS"):
        await receive_client_session(st, "localhost", store=MemoryCredentialStore(), tls_context=None)
    assert st.is_closing()
