"""STARTTLS and resource binding over in-memory peers (real TLS, no network)."""

from __future__ import annotations

import asyncio
import ssl
from typing import Any

import pytest

from xmpp.bind import NS_BIND, bind
from xmpp.jid import JID
from xmpp.negotiator import StreamConfig, StreamFeature
from xmpp.session import Session, SessionState, new_session, receive_session
from xmpp.stanza import Condition, ErrorType, StanzaError
from xmpp.starttls import InsecureTLSWarning, TLSNegotiationError, insecure_client_context, starttls
from xmpp.stream import StreamError
from xmpp.testing import TestCertificate, client_server_pair, memory_pipe
from xmpp.stanza import Message
from xmpp.xmlstream import Name, StartElement

AUTH = Name("urn:example:auth", "auth")


@pytest.fixture(scope="module")
def cert() -> TestCertificate:
    return TestCertificate(["example.net", "127.0.0.1"])


def fake_auth() -> StreamFeature:
    """A stand-in for SASL: sets AUTHN and restarts the stream (bind needs it)."""

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


async def test_starttls_secures_and_restarts(cert: TestCertificate) -> None:
    async with client_server_pair(
        client_features=[starttls(cert.client_context())],
        server_features=[starttls(cert.server_context())],
    ) as (c, s):
        assert c.state & SessionState.SECURE and s.state & SessionState.SECURE
        assert c.tls is not None and c.tls.version() in ("TLSv1.2", "TLSv1.3")
        assert s.tls is not None
        # A new stream header after the handshake: two ids differ from the first.
        assert c.in_info is not None and c.in_info.id == s.out_info.id  # type: ignore[union-attr]
        await c.send(Message(id="over-tls"))


async def test_starttls_rejects_an_untrusted_certificate(cert: TestCertificate) -> None:
    other = TestCertificate(["example.net"])
    ct, st = memory_pipe()
    server = asyncio.ensure_future(
        receive_session(st, "example.net", config=StreamConfig(features=[starttls(cert.server_context())]))
    )
    with pytest.raises(ssl.SSLCertVerificationError):
        await new_session(ct, "example.net", config=StreamConfig(features=[starttls(other.client_context())]))
    with pytest.raises(BaseException):
        await asyncio.wait_for(server, 5)


async def test_starttls_rejects_a_wrong_host_name(cert: TestCertificate) -> None:
    wrong = TestCertificate(["wrong.example"])
    ct, st = memory_pipe()
    server = asyncio.ensure_future(
        receive_session(st, "example.net", config=StreamConfig(features=[starttls(wrong.server_context())]))
    )
    with pytest.raises(ssl.SSLCertVerificationError, match="(?i)hostname|match"):
        await new_session(ct, "example.net", config=StreamConfig(features=[starttls(wrong.client_context())]))
    with pytest.raises(BaseException):
        await asyncio.wait_for(server, 5)


async def test_insecure_context_is_explicit_and_loud(cert: TestCertificate) -> None:
    with pytest.warns(InsecureTLSWarning):
        ctx = insecure_client_context()
    other = TestCertificate(["elsewhere.example"])
    async with client_server_pair(
        client_features=[starttls(ctx)],
        server_features=[starttls(other.server_context())],
    ) as (c, s):
        assert c.state & SessionState.SECURE


async def test_starttls_downgrade_is_refused(cert: TestCertificate) -> None:
    """A server that does not offer STARTTLS cannot strip it."""
    ct, st = memory_pipe()
    server = asyncio.ensure_future(receive_session(st, "example.net", config=StreamConfig(features=[fake_auth()])))
    with pytest.raises((StreamError, TLSNegotiationError)):
        await new_session(ct, "example.net", config=StreamConfig(features=[starttls(cert.client_context()), fake_auth()]))
    with pytest.raises(StreamError):
        await asyncio.wait_for(server, 5)


async def test_bind_requested_and_random_resources() -> None:
    async with client_server_pair(
        client_features=[fake_auth(), bind("balcony")],
        server_features=[fake_auth(), bind()],
        client_jid="alice@example.net",
    ) as (c, s):
        assert c.state & SessionState.READY
        assert str(c.local_addr) == "alice@example.net/balcony"
        assert str(s.remote_addr) == "alice@example.net/balcony"
    async with client_server_pair(
        client_features=[fake_auth(), bind()],
        server_features=[fake_auth(), bind()],
        client_jid="alice@example.net",
    ) as (c, s):
        assert c.local_addr is not None and c.local_addr.resource
        assert c.local_addr.resource.startswith("xmpp-")
        assert c.local_addr == s.remote_addr


async def test_bind_conflict_is_a_stanza_error() -> None:
    def refuse(session: Session, resource: str | None) -> JID:
        raise StanzaError(ErrorType.CANCEL, Condition.CONFLICT, "resource in use")

    ct, st = memory_pipe()
    server = asyncio.ensure_future(
        receive_session(st, "example.net", config=StreamConfig(features=[fake_auth(), bind(binder=refuse)]))
    )
    with pytest.raises(StanzaError) as ei:
        await new_session(ct, "example.net", config=StreamConfig(features=[fake_auth(), bind("taken")]))
    assert ei.value.condition is Condition.CONFLICT
    with pytest.raises(StreamError):
        await asyncio.wait_for(server, 5)


async def test_bind_needs_authentication() -> None:
    """Without AUTHN the server does not list bind; a client selecting it is refused."""
    ct, st = memory_pipe()
    server = asyncio.ensure_future(receive_session(st, "example.net", config=StreamConfig(features=[bind()])))
    client = await new_session(ct, "example.net", config=StreamConfig(features=[bind()]))
    # Nothing was listed (bind needs AUTHN), so both sides are READY without a bind.
    s = await server
    assert client.local_addr is None
    assert NS_BIND not in {n.space for n in client.negotiated}
    await client.close(0.1)
    await s.close(0.1)


def legacy_session_server(*, optional: bool, seen: list[str]) -> StreamFeature:
    """A server that lists the RFC 3921 session feature (required or optional)."""
    from xmpp.bind import NS_SESSION
    from xmpp.stanza import IQ

    name = Name(NS_SESSION, "session")

    def list_(session: Session) -> tuple[bool, list[Any]]:
        start = StartElement(name)
        if optional:
            opt = StartElement(Name(NS_SESSION, "optional"))
            return False, [start, opt, opt.end(), start.end()]
        return True, [start, start.end()]

    async def negotiate(session: Session, el: Any) -> tuple[int, bool]:
        seen.append("session")
        await session.send(IQ.from_element(el).result(None, session.stanza_ns))
        return 0, False

    return StreamFeature(name, necessary=int(SessionState.AUTHN), list=list_, parse=None, negotiate=negotiate)


@pytest.mark.parametrize("optional", [False, True])
async def test_legacy_session_only_when_the_server_requires_it(optional: bool) -> None:
    seen: list[str] = []
    async with client_server_pair(
        client_features=[fake_auth(), bind("r")],
        server_features=[fake_auth(), bind(), legacy_session_server(optional=optional, seen=seen)],
        client_jid="alice@example.net",
    ) as (c, s):
        assert c.state & SessionState.READY
        assert str(c.local_addr) == "alice@example.net/r"
    assert seen == ([] if optional else ["session"])
