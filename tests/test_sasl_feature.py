"""The SASL stream feature on both sides, over in-memory TLS (no network)."""

from __future__ import annotations

import asyncio
import base64
import ssl
from typing import Any

import pytest

from xmpp.bind import bind
from xmpp.negotiator import StreamConfig
from xmpp.sasl import MemoryCredentialStore, SASLCondition, SASLError, sasl, sasl_server
from xmpp.session import SessionState, new_session, receive_session
from xmpp.starttls import starttls
from xmpp.stream import StreamError
from xmpp.testing import TestCertificate, client_server_pair, memory_pipe

PASSWORD = "correct horse battery staple"


@pytest.fixture(scope="module")
def cert() -> TestCertificate:
    return TestCertificate(["example.net"])


@pytest.fixture(scope="module")
def store() -> MemoryCredentialStore:
    return MemoryCredentialStore({"alice": PASSWORD, "bob": "other"})


def features(cert: TestCertificate, store: MemoryCredentialStore, *, mechanisms: Any = None, password: str = PASSWORD, tls_max: Any = None) -> tuple[list[Any], list[Any]]:
    client = [
        starttls(cert.client_context(maximum=tls_max)),
        sasl("alice", password, mechanisms=mechanisms) if mechanisms else sasl("alice", password),
        bind("desk"),
    ]
    server = [starttls(cert.server_context()), sasl_server(store, own_cert_der=cert.cert_der), bind()]
    return client, server


MECHANISMS = [
    "PLAIN",
    "SCRAM-SHA-1",
    "SCRAM-SHA-256",
    "SCRAM-SHA-512",
    "SCRAM-SHA-1-PLUS",
    "SCRAM-SHA-256-PLUS",
    "SCRAM-SHA-512-PLUS",
]


@pytest.mark.parametrize("tls", ["1.2", "1.3"])
@pytest.mark.parametrize("mechanism", MECHANISMS)
async def test_login_with_every_mechanism(cert: TestCertificate, store: MemoryCredentialStore, mechanism: str, tls: str) -> None:
    tls_max = ssl.TLSVersion.TLSv1_2 if tls == "1.2" else ssl.TLSVersion.TLSv1_3
    cf, sf = features(cert, store, mechanisms=[mechanism], tls_max=tls_max)
    async with client_server_pair(client_features=cf, server_features=sf, client_jid="alice@example.net") as (c, s):
        assert c.state & SessionState.AUTHN and c.state & SessionState.SECURE
        assert str(c.local_addr) == "alice@example.net/desk"
        assert str(s.remote_addr) == "alice@example.net/desk"
        assert c.tls is not None and c.tls.version() == ("TLSv1.2" if tls == "1.2" else "TLSv1.3")


async def test_default_preference_picks_plus_with_channel_binding(cert: TestCertificate, store: MemoryCredentialStore) -> None:
    out: list[bytes] = []
    cf, sf = features(cert, store)
    async with client_server_pair(client_features=cf, server_features=sf, client_config=StreamConfig(features=cf, tee_out=out.append)) as (c, s):
        assert c.state & SessionState.AUTHN
    sent = b"".join(out)
    assert b"mechanism='SCRAM-SHA-512-PLUS'" in sent


async def test_wrong_password_is_not_authorized(cert: TestCertificate, store: MemoryCredentialStore) -> None:
    for mech in ("PLAIN", "SCRAM-SHA-256"):
        cf, sf = features(cert, store, mechanisms=[mech], password="wrong")
        ct, st = memory_pipe()
        server = asyncio.ensure_future(receive_session(st, "example.net", config=StreamConfig(features=sf, timeout=2)))
        with pytest.raises(SASLError) as ei:
            await new_session(ct, "example.net", origin="alice@example.net", config=StreamConfig(features=cf))
        assert ei.value.condition is SASLCondition.NOT_AUTHORIZED
        server.cancel()
        with pytest.raises(BaseException):
            await server


async def test_plain_is_never_used_without_tls(store: MemoryCredentialStore) -> None:
    ct, st = memory_pipe()
    # A server that (wrongly) offers only PLAIN without TLS: the client refuses.
    server = asyncio.ensure_future(
        receive_session(st, "example.net", config=StreamConfig(features=[sasl_server(store)], timeout=2))
    )
    with pytest.raises(SASLError) as ei:
        await new_session(ct, "example.net", config=StreamConfig(features=[sasl("alice", PASSWORD, mechanisms=["PLAIN"])]))
    assert ei.value.condition in (SASLCondition.MECHANISM_TOO_WEAK, SASLCondition.INVALID_MECHANISM)
    server.cancel()
    with pytest.raises(BaseException):
        await server


async def test_scram_without_tls_works_and_plain_is_not_offered(store: MemoryCredentialStore) -> None:
    inb: list[bytes] = []
    cfg = StreamConfig(features=[sasl("alice", PASSWORD)], tee_in=inb.append)
    async with client_server_pair(client_config=cfg, server_features=[sasl_server(store)], client_jid="alice@example.net") as (c, s):
        assert c.state & SessionState.AUTHN and not c.state & SessionState.SECURE
    features_seen = b"".join(inb)
    assert b"SCRAM-SHA-256" in features_seen and b">PLAIN<" not in features_seen


async def test_console_never_sees_secrets(cert: TestCertificate, store: MemoryCredentialStore) -> None:
    for mech in ("PLAIN", "SCRAM-SHA-256-PLUS"):
        inb: list[bytes] = []
        out: list[bytes] = []
        cf, sf = features(cert, store, mechanisms=[mech])
        scfg_in: list[bytes] = []
        ccfg = StreamConfig(features=cf, tee_in=inb.append, tee_out=out.append)
        scfg = StreamConfig(features=sf, tee_in=scfg_in.append)
        async with client_server_pair(client_config=ccfg, server_config=scfg, client_jid="alice@example.net") as (c, s):
            assert c.state & SessionState.AUTHN
        everything = b"".join(inb + out + scfg_in)
        assert b"[redacted]" in everything
        assert PASSWORD.encode() not in everything
        plain = base64.b64encode(b"\x00alice\x00" + PASSWORD.encode())
        assert plain not in everything
        # No SASL payload at all: every auth/challenge/response/success text is redacted.
        for tag in (b"<auth", b"<challenge", b"<response", b"<success"):
            idx = everything.find(tag)
            while idx != -1:
                end = everything.find(b">", idx)
                close = everything.find(b"<", end)
                body = everything[end + 1 : close]
                assert body in (b"", b"[redacted]"), (tag, body)
                idx = everything.find(tag, idx + 1)


async def test_too_many_failures_close_the_stream(cert: TestCertificate, store: MemoryCredentialStore) -> None:
    """A client that keeps retrying gets policy-violation after max_attempts."""
    ct, st = memory_pipe()
    sf = [sasl_server(store, max_attempts=2)]
    server = asyncio.ensure_future(receive_session(st, "example.net", config=StreamConfig(features=sf, timeout=2)))

    async def talk() -> bytes:
        from xmpp.session import Session

        s = Session(ct, location=None, origin=None, received=False)
        s.expect_header()
        s.write_raw(b"<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='example.net' version='1.0'>")
        await s.read_header(2)
        await s.read_element(2)  # features
        bad = base64.b64encode(b"n,,n=alice,r=abc").decode()
        for _ in range(2):
            s.write_raw(f"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='SCRAM-SHA-1'>{bad}</auth>".encode())
            try:
                el = await s.read_element(2)
            except StreamError as exc:
                return exc.condition.value.encode()
            if el.name.local == "challenge":
                s.write_raw(b"<response xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>Ymlhcw==</response>")
                await s.read_element(2)
        try:
            await s.read_element(2)
        except StreamError as exc:
            return exc.condition.value.encode()
        return b"none"

    result = await talk()
    assert result == b"policy-violation"
    with pytest.raises(StreamError):
        await server
