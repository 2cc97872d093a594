"""Tests of xmpp.sasl: mechanisms, selection policy and TLS channel binding."""

from __future__ import annotations

import asyncio
import base64
import datetime
import hashlib
import ipaddress
import ssl
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.x509.oid import NameOID

from xmpp import sasl
from xmpp.sasl import (
    ChannelBinding,
    ClientMechanism,
    MemoryCredentialStore,
    SASLCondition,
    SASLError,
    ScramClient,
    ScramCredentials,
    ScramServer,
    ServerMechanism,
)

USERS = {
    "alice": "secret",
    "bob": "pencil",
    "jürgen": "pässwörd€ with spaces",
    "a,b=c": "x=y,z",
    "名前": "パスワード",
}
STORE = MemoryCredentialStore(USERS)

SCRAM = ["SCRAM-SHA-1", "SCRAM-SHA-256", "SCRAM-SHA-512"]
PLUS = [n + "-PLUS" for n in SCRAM]
ALL = ["PLAIN", *SCRAM, *PLUS]

SERVER_BINDINGS = {"tls-unique": b"\x01" * 12, "tls-server-end-point": b"\x02" * 32}
CLIENT_BINDING = {t: ChannelBinding(t, d) for t, d in SERVER_BINDINGS.items()}


class FixedStore:
    """A credential store holding exactly one user's keys (for the RFC vectors)."""

    def __init__(self, username: str, hash_name: str, creds: ScramCredentials) -> None:
        self.key = (username, hash_name)
        self.creds = creds

    async def scram_credentials(self, username: str, hash_name: str) -> ScramCredentials | None:
        return self.creds if (username, hash_name) == self.key else None


async def exchange(client: ClientMechanism, server: ServerMechanism) -> None:
    """Run a whole exchange in memory, as the stream feature will over XML."""
    data: bytes | None = client.initial()
    for _ in range(8):
        challenge = await server.step(data)
        if challenge is None:
            assert server.done
            client.finish(server.success_data)
            return
        data = client.step(challenge)
    raise AssertionError("exchange did not end")


def make_pair(
    name: str,
    username: str,
    password: str,
    *,
    cb_type: str = "tls-server-end-point",
    authzid: str | None = None,
    store: sasl.CredentialStore = STORE,
    offered_plus: bool = True,
) -> tuple[ClientMechanism, ServerMechanism]:
    binding = CLIENT_BINDING[cb_type] if name.endswith("-PLUS") else None
    client = sasl.client_mechanism(
        name, username, password, channel_binding=binding, authzid=authzid
    )
    server = sasl.server_mechanism(
        name, store, bindings=SERVER_BINDINGS, offered_plus=offered_plus
    )
    return client, server


# --- errors and constants ---------------------------------------------------


def test_conditions_are_those_of_rfc6120() -> None:
    assert {c.value for c in SASLCondition} == {
        "aborted",
        "account-disabled",
        "credentials-expired",
        "encryption-required",
        "incorrect-encoding",
        "invalid-authzid",
        "invalid-mechanism",
        "malformed-request",
        "mechanism-too-weak",
        "not-authorized",
        "temporary-auth-failure",
    }
    assert sasl.NS_SASL == "urn:ietf:params:xml:ns:xmpp-sasl"
    assert sasl.NS_SASL_CB == "urn:xmpp:sasl-cb:0"


def test_sasl_error() -> None:
    err = SASLError("account-disabled", "ask the admin", lang="en")
    assert err.condition is SASLCondition.ACCOUNT_DISABLED
    assert (err.text, err.lang) == ("ask the admin", "en")
    assert str(err) == "account-disabled: ask the admin"
    assert str(SASLError(SASLCondition.ABORTED)) == "aborted"
    with pytest.raises(ValueError):
        SASLError("no-such-condition")


# --- RFC test vectors -------------------------------------------------------


RFC5802: dict[str, Any] = {
    "hash": "sha1",
    "client_nonce": "fyko+d2lbbFgONRv9qkxdawL",
    "server_nonce": "3rfcNHYJY1ZVvWVs7j",
    "salt": "QSXCR+Q6sek8bf92",
    "client_first": b"n,,n=user,r=fyko+d2lbbFgONRv9qkxdawL",
    "server_first": b"r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096",
    "client_final": b"c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,"
    b"p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=",
    "server_final": b"v=rmF9pqV8S7suAoZWja4dJRkFsKQ=",
}
RFC7677: dict[str, Any] = {
    "hash": "sha256",
    "client_nonce": "rOprNGfwEbeRWgbNEkqO",
    "server_nonce": "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0",
    "salt": "W22ZaJ0SNY7soEsUEjb6gQ==",
    "client_first": b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO",
    "server_first": b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
    b"s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",
    "client_final": b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
    b"p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
    "server_final": b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=",
}


@pytest.mark.parametrize("vec", [RFC5802, RFC7677], ids=["rfc5802", "rfc7677"])
async def test_rfc_vectors_client(vec: dict[str, Any]) -> None:
    client = ScramClient(vec["hash"], "user", "pencil", nonce=vec["client_nonce"])
    assert client.initial() == vec["client_first"]
    assert client.step(vec["server_first"]) == vec["client_final"]
    client.finish(vec["server_final"])


@pytest.mark.parametrize("vec", [RFC5802, RFC7677], ids=["rfc5802", "rfc7677"])
async def test_rfc_vectors_server(vec: dict[str, Any]) -> None:
    creds = ScramCredentials.derive(
        "pencil", hash_name=vec["hash"], salt=base64.b64decode(vec["salt"]), iterations=4096
    )
    store = FixedStore("user", vec["hash"], creds)
    server = ScramServer(vec["hash"], store, nonce=vec["server_nonce"])
    assert await server.step(vec["client_first"]) == vec["server_first"]
    assert not server.done
    assert await server.step(vec["client_final"]) is None
    assert server.done
    assert server.success_data == vec["server_final"]
    assert server.username == "user" and server.authzid is None


async def test_rfc_vector_server_final_as_challenge() -> None:
    # Some servers send the server-final-message as a last challenge and an
    # empty <success/>.
    client = ScramClient("sha1", "user", "pencil", nonce=RFC5802["client_nonce"])
    client.initial()
    client.step(RFC5802["server_first"])
    assert client.step(RFC5802["server_final"]) == b""
    client.finish(None)


# --- client against server --------------------------------------------------


@pytest.mark.parametrize("name", ALL)
@pytest.mark.parametrize("username", sorted(USERS))
async def test_login_every_mechanism(name: str, username: str) -> None:
    client, server = make_pair(name, username, USERS[username])
    await exchange(client, server)
    assert server.done
    assert server.username == username
    assert server.authzid is None
    if name == "PLAIN":
        assert server.success_data is None
    else:
        assert server.success_data is not None and server.success_data.startswith(b"v=")


@pytest.mark.parametrize("name", PLUS)
@pytest.mark.parametrize("cb_type", sorted(SERVER_BINDINGS))
async def test_plus_with_each_binding_type(name: str, cb_type: str) -> None:
    client, server = make_pair(name, "alice", "secret", cb_type=cb_type)
    assert client.initial().startswith(f"p={cb_type},,".encode())  # type: ignore[union-attr]
    client, server = make_pair(name, "alice", "secret", cb_type=cb_type)
    await exchange(client, server)
    assert server.done


@pytest.mark.parametrize("name", ALL)
async def test_authzid(name: str) -> None:
    client, server = make_pair(name, "alice", "secret", authzid="admin@example.org")
    await exchange(client, server)
    assert server.authzid == "admin@example.org"


async def test_authzid_with_comma_and_equals_is_escaped() -> None:
    client, server = make_pair("SCRAM-SHA-256", "alice", "secret", authzid="a,b=c@example.org")
    first = client.initial()
    assert first is not None and first.startswith(b"n,a=a=2Cb=3Dc@example.org,n=alice,")
    assert await server.step(first) is not None
    assert server.authzid == "a,b=c@example.org"


@pytest.mark.parametrize("name", PLUS)
async def test_plus_binding_data_mismatch(name: str) -> None:
    client = sasl.client_mechanism(
        name, "alice", "secret", channel_binding=ChannelBinding("tls-unique", b"\x09" * 12)
    )
    server = sasl.server_mechanism(name, STORE, bindings=SERVER_BINDINGS, offered_plus=True)
    with pytest.raises(SASLError) as info:
        await exchange(client, server)
    assert info.value.condition is SASLCondition.NOT_AUTHORIZED
    assert "channel binding mismatch" in str(info.value)
    assert not server.done and server.username is None


async def test_plus_binding_type_the_server_lacks() -> None:
    client = sasl.client_mechanism(
        "SCRAM-SHA-256-PLUS",
        "alice",
        "secret",
        channel_binding=ChannelBinding("tls-exporter", b"x"),
    )
    server = sasl.server_mechanism(
        "SCRAM-SHA-256-PLUS", STORE, bindings=SERVER_BINDINGS, offered_plus=True
    )
    with pytest.raises(SASLError) as info:
        await exchange(client, server)
    assert info.value.condition is SASLCondition.NOT_AUTHORIZED
    assert "tls-exporter" in str(info.value)


@pytest.mark.parametrize("name", ALL)
async def test_wrong_password_and_unknown_user_fail_the_same(name: str) -> None:
    errors = []
    for username, password in [("alice", "wrong"), ("nobody", "secret"), ("nobody", "wrong")]:
        client, server = make_pair(name, username, password)
        with pytest.raises(SASLError) as info:
            await exchange(client, server)
        errors.append((info.value.condition, info.value.text))
        assert not server.done and server.username is None
    assert errors[0] == errors[1] == errors[2]
    assert errors[0][0] is SASLCondition.NOT_AUTHORIZED


@pytest.mark.parametrize("name", SCRAM)
async def test_unknown_user_gets_a_stable_salt_and_fails_at_the_proof(name: str) -> None:
    firsts = []
    for _ in range(2):
        client, server = make_pair(name, "nobody", "secret")
        challenge = await server.step(client.initial())
        assert challenge is not None
        firsts.append(challenge.split(b",")[1:])  # s= and i=, without the nonce
        with pytest.raises(SASLError, match="authentication failed"):
            await server.step(client.step(challenge))
    assert firsts[0] == firsts[1]
    assert firsts[0][1] == b"i=4096"


@pytest.mark.parametrize("name", SCRAM + PLUS)
async def test_tampered_server_signature(name: str) -> None:
    client, server = make_pair(name, "alice", "secret")
    challenge = await server.step(client.initial())
    assert challenge is not None
    assert await server.step(client.step(challenge)) is None
    assert server.success_data is not None
    signature = bytearray(base64.b64decode(server.success_data[2:]))
    signature[0] ^= 1
    with pytest.raises(SASLError) as info:
        client.finish(b"v=" + base64.b64encode(bytes(signature)))
    assert info.value.condition is SASLCondition.NOT_AUTHORIZED
    assert "server signature" in str(info.value)


async def test_success_without_server_signature_is_refused() -> None:
    client, server = make_pair("SCRAM-SHA-256", "alice", "secret")
    challenge = await server.step(client.initial())
    assert challenge is not None
    client.step(challenge)
    with pytest.raises(SASLError, match="without proving"):
        client.finish(None)


async def test_server_error_in_final_message() -> None:
    client, server = make_pair("SCRAM-SHA-256", "alice", "secret")
    challenge = await server.step(client.initial())
    assert challenge is not None
    client.step(challenge)
    with pytest.raises(SASLError, match="server error: invalid-proof"):
        client.finish(b"e=invalid-proof")


def _client_after_first(nonce: str = "abcdefgh") -> ScramClient:
    client = ScramClient("sha256", "alice", "secret", nonce=nonce)
    client.initial()
    return client


@pytest.mark.parametrize(
    "server_first",
    [
        b"r=zzzzzzzzXYZ,s=QSXCR+Q6sek8bf92,i=4096",  # another nonce
        b"r=abcdefg,s=QSXCR+Q6sek8bf92,i=4096",  # a prefix of ours
        b"r=abcdefgh,s=QSXCR+Q6sek8bf92,i=4096",  # nothing added
    ],
)
def test_client_refuses_a_nonce_that_does_not_extend_its_own(server_first: bytes) -> None:
    with pytest.raises(SASLError) as info:
        _client_after_first().step(server_first)
    assert info.value.condition is SASLCondition.MALFORMED_REQUEST
    assert "nonce" in str(info.value)


def test_client_refuses_too_few_iterations() -> None:
    with pytest.raises(SASLError) as info:
        _client_after_first().step(b"r=abcdefghXYZ,s=QSXCR+Q6sek8bf92,i=4095")
    assert info.value.condition is SASLCondition.MECHANISM_TOO_WEAK
    assert "4095" in str(info.value) and "4096" in str(info.value)


async def test_minimum_iterations_is_configurable() -> None:
    store = MemoryCredentialStore({"alice": "secret"}, iterations=1024)
    for minimum, ok in [(1000, True), (4096, False)]:
        client = ScramClient("sha256", "alice", "secret", min_iterations=minimum)
        server = ScramServer("sha256", store)
        if ok:
            await exchange(client, server)
            assert server.done
        else:
            with pytest.raises(SASLError, match="below the minimum"):
                await exchange(client, server)


def test_client_refuses_too_many_iterations() -> None:
    with pytest.raises(SASLError, match="above the maximum"):
        _client_after_first().step(b"r=abcdefghXYZ,s=QSXCR+Q6sek8bf92,i=999999999")


@pytest.mark.parametrize(
    "server_first",
    [
        b"",
        b"garbage",
        b"r=abcdefghXYZ,i=4096",
        b"s=QSXCR+Q6sek8bf92,r=abcdefghXYZ,i=4096",
        b"r=abcdefghXYZ,s=not base64!,i=4096",
        b"r=abcdefghXYZ,s=,i=4096",
        b"r=abcdefghXYZ,s=QSXCR+Q6sek8bf92,i=many",
        b"r=abcdefghXYZ,s=QSXCR+Q6sek8bf92,i=-4096",
        b"r=abcdefghXYZ,s=QSXCR+Q6sek8bf92,i=04096",
        b"m=ext,r=abcdefghXYZ,s=QSXCR+Q6sek8bf92,i=4096",
        b"r=abcdefghX Z,s=QSXCR+Q6sek8bf92,i=4096",
        b"r=abcdefghXYZ,s=QSXCR+Q6sek8bf92,i=4096,",
    ],
)
def test_client_refuses_malformed_server_first(server_first: bytes) -> None:
    with pytest.raises(SASLError) as info:
        _client_after_first().step(server_first)
    assert info.value.condition is SASLCondition.MALFORMED_REQUEST


def test_client_refuses_non_utf8() -> None:
    with pytest.raises(SASLError) as info:
        _client_after_first().step(b"r=abcdefgh\xff,s=QSXCR+Q6sek8bf92,i=4096")
    assert info.value.condition is SASLCondition.INCORRECT_ENCODING


@pytest.mark.parametrize("final", [b"x=abc", b"v=not base64!", b"v=", b"\xff"])
def test_client_refuses_malformed_server_final(final: bytes) -> None:
    client = _client_after_first()
    client.step(b"r=abcdefghXYZ,s=QSXCR+Q6sek8bf92,i=4096")
    with pytest.raises(SASLError):
        client.finish(final)


def test_client_server_first_extensions_are_ignored() -> None:
    client = _client_after_first()
    final = client.step(b"r=abcdefghXYZ,s=QSXCR+Q6sek8bf92,i=4096,x=future")
    assert final.startswith(b"c=biws,r=abcdefghXYZ,p=")


def test_client_order_errors() -> None:
    client = _client_after_first()
    with pytest.raises(SASLError):
        client.initial()
    with pytest.raises(SASLError):
        client.finish(b"v=AAAA")
    plain = sasl.PlainClient("alice", "secret")
    with pytest.raises(SASLError):
        plain.finish(None)
    assert plain.step(b"") == b"\x00alice\x00secret"
    with pytest.raises(SASLError):
        plain.step(b"")
    with pytest.raises(SASLError):
        plain.finish(b"data")
    plain.finish(None)


async def _server_after_first(
    name: str = "SCRAM-SHA-256",
) -> tuple[ScramClient, ServerMechanism, bytes]:
    binding = CLIENT_BINDING["tls-unique"] if "PLUS" in name else None
    client = sasl.client_mechanism(name, "alice", "secret", channel_binding=binding)
    assert isinstance(client, ScramClient)
    server = sasl.server_mechanism(name, STORE, bindings=SERVER_BINDINGS, offered_plus=True)
    challenge = await server.step(client.initial())
    assert challenge is not None
    return client, server, challenge


@pytest.mark.parametrize(
    "client_first",
    [
        b"",
        b"n=alice,r=abc",  # no GS2 header
        b"q,,n=alice,r=abc",  # bad flag
        b"n,x,n=alice,r=abc",  # bad authzid field
        b"n,a=,n=alice,r=abc",  # empty authzid
        b"n,,r=abc,n=alice",  # wrong order
        b"n,,n=alice",  # no nonce
        b"n,,n=alice,r=",  # empty nonce
        b"n,,n=alice,r=a,b",  # comma ends the nonce, then junk
        b"n,,n=al=2Xice,r=abc",  # bad escape
        b"n,,n=al=ice,r=abc",  # bare '='
        b"n,,m=ext,n=alice,r=abc",  # mandatory extension
        b"p=tls-unique,,n=alice,r=abc",  # binding on a non-PLUS mechanism
        b"p=bad type,,n=alice,r=abc",
    ],
)
async def test_server_refuses_malformed_client_first(client_first: bytes) -> None:
    server = sasl.server_mechanism(
        "SCRAM-SHA-256", STORE, bindings=SERVER_BINDINGS, offered_plus=False
    )
    with pytest.raises(SASLError) as info:
        await server.step(client_first)
    assert info.value.condition is SASLCondition.MALFORMED_REQUEST
    with pytest.raises(SASLError):  # a failed exchange stays failed
        await server.step(b"n,,n=alice,r=abc")


async def test_server_refuses_non_utf8() -> None:
    server = sasl.server_mechanism("SCRAM-SHA-256", STORE, bindings={}, offered_plus=False)
    with pytest.raises(SASLError) as info:
        await server.step(b"n,,n=\xff,r=abc")
    assert info.value.condition is SASLCondition.INCORRECT_ENCODING


async def test_plus_server_refuses_n_and_y() -> None:
    for flag in (b"n", b"y"):
        server = sasl.server_mechanism(
            "SCRAM-SHA-256-PLUS", STORE, bindings=SERVER_BINDINGS, offered_plus=True
        )
        with pytest.raises(SASLError) as info:
            await server.step(flag + b",,n=alice,r=abc")
        assert info.value.condition is SASLCondition.MALFORMED_REQUEST


def _mutate_final(final: bytes, how: str) -> bytes:
    fields = final.split(b",")
    if how == "nonce":
        fields[1] = fields[1] + b"x"
    elif how == "order":
        fields[0], fields[1] = fields[1], fields[0]
    elif how == "no-proof":
        fields = fields[:2]
    elif how == "bad-proof-b64":
        fields[2] = b"p=!!!"
    elif how == "short-proof":
        fields[2] = b"p=" + base64.b64encode(b"short")
    elif how == "wrong-proof":
        proof = bytearray(base64.b64decode(fields[2][2:]))
        proof[-1] ^= 0x80
        fields[2] = b"p=" + base64.b64encode(bytes(proof))
    elif how == "cbind":
        fields[0] = b"c=" + base64.b64encode(b"y,,")
    return b",".join(fields)


@pytest.mark.parametrize(
    ("how", "condition"),
    [
        ("nonce", SASLCondition.MALFORMED_REQUEST),
        ("order", SASLCondition.MALFORMED_REQUEST),
        ("no-proof", SASLCondition.MALFORMED_REQUEST),
        ("bad-proof-b64", SASLCondition.MALFORMED_REQUEST),
        ("short-proof", SASLCondition.MALFORMED_REQUEST),
        ("wrong-proof", SASLCondition.NOT_AUTHORIZED),
        ("cbind", SASLCondition.NOT_AUTHORIZED),
    ],
)
async def test_server_refuses_bad_client_final(how: str, condition: SASLCondition) -> None:
    client, server, challenge = await _server_after_first()
    final = client.step(challenge)
    with pytest.raises(SASLError) as info:
        await server.step(_mutate_final(final, how))
    assert info.value.condition is condition
    assert not server.done and server.success_data is None


async def test_server_asks_for_a_missing_initial_response() -> None:
    for name in ("PLAIN", "SCRAM-SHA-1"):
        client, server = make_pair(name, "alice", "secret")
        assert await server.step(None) == b""
        await exchange(client, server)
        assert server.done


async def test_server_step_after_success() -> None:
    client, server = make_pair("SCRAM-SHA-512", "alice", "secret")
    await exchange(client, server)
    with pytest.raises(SASLError):
        await server.step(b"more")


@pytest.mark.parametrize(
    "message",
    [
        b"alice\x00secret",
        b"\x00\x00secret",
        b"\x00alice\x00",
        b"\x00alice\x00secret\x00",
        b"a" * 256 + b"\x00alice\x00secret",
    ],
)
async def test_plain_server_refuses_malformed(message: bytes) -> None:
    server = sasl.server_mechanism("PLAIN", STORE, bindings={}, offered_plus=False)
    with pytest.raises(SASLError) as info:
        await server.step(message)
    assert info.value.condition is SASLCondition.MALFORMED_REQUEST


async def test_plain_wire_format() -> None:
    plain = sasl.PlainClient("jürgen", "pässwörd€ with spaces", authzid="j@example.org")
    assert plain.initial() == "j@example.org\x00jürgen\x00pässwörd€ with spaces".encode()
    with pytest.raises(ValueError):
        sasl.PlainClient("a" * 256, "x")


# --- preparation and escaping -----------------------------------------------


async def test_username_with_comma_and_equals_on_the_wire() -> None:
    client, server = make_pair("SCRAM-SHA-256", "a,b=c", "x=y,z")
    first = client.initial()
    assert first is not None and first.startswith(b"n,,n=a=2Cb=3Dc,r=")
    challenge = await server.step(first)
    assert challenge is not None
    assert await server.step(client.step(challenge)) is None
    client.finish(server.success_data)
    assert server.username == "a,b=c"


@pytest.mark.parametrize("name", ["PLAIN", "SCRAM-SHA-256"])
async def test_passwords_are_prepared_on_both_sides(name: str) -> None:
    # U+00A0 NO-BREAK SPACE and U+3000 IDEOGRAPHIC SPACE map to U+0020 in
    # OpaqueString, so these spell the stored password "pässwörd€ with spaces".
    client, server = make_pair(name, "jürgen", "pässwörd€\u00a0with\u3000spaces")
    await exchange(client, server)
    assert server.username == "jürgen"


def test_unpreparable_input_is_refused_locally() -> None:
    with pytest.raises(ValueError, match="password"):
        ScramClient("sha256", "alice", "bad\x00password")
    with pytest.raises(ValueError, match="user name"):
        sasl.PlainClient("", "secret")


async def test_unpreparable_username_at_the_server_is_not_authorized() -> None:
    server = sasl.server_mechanism("PLAIN", STORE, bindings={}, offered_plus=False)
    with pytest.raises(SASLError, match="authentication failed"):
        await server.step(b"\x00al\x07ice\x00secret")


async def test_memory_store_add_and_remove() -> None:
    store = MemoryCredentialStore(iterations=4096)
    assert "carol" not in store
    store.add_user("carol", "one")
    assert "carol" in store
    client, server = make_pair("SCRAM-SHA-1", "carol", "one", store=store)
    await exchange(client, server)
    store.add_user("carol", "two")
    client, server = make_pair("PLAIN", "carol", "one", store=store)
    with pytest.raises(SASLError):
        await exchange(client, server)
    client, server = make_pair("PLAIN", "carol", "two", store=store)
    await exchange(client, server)
    store.remove_user("carol")
    assert await store.scram_credentials("carol", "sha256") is None
    creds = await STORE.scram_credentials("alice", "sha512")
    assert creds is not None and len(creds.stored_key) == 64 and creds.iterations == 4096


async def test_plain_server_uses_whichever_keys_the_store_has() -> None:
    creds = ScramCredentials.derive("pencil", hash_name="sha1", iterations=4096)
    store = FixedStore("user", "sha1", creds)
    server = sasl.PlainServer(store)
    assert await server.step(b"\x00user\x00pencil") is None
    assert server.done and server.username == "user"
    server = sasl.PlainServer(store)
    with pytest.raises(SASLError, match="authentication failed"):
        await server.step(b"\x00user\x00pencil2")


def test_salted_password_cache_is_used_and_bounded() -> None:
    cache = sasl._SaltedPasswordCache(4)
    a = cache.get(b"pw", b"salt", 4096, "sha256")
    assert a == hashlib.pbkdf2_hmac("sha256", b"pw", b"salt", 4096)
    assert cache.get(b"pw", b"salt", 4096, "sha256") is a  # the cached object
    assert cache.get(b"pw", b"salt", 4097, "sha256") != a
    for i in range(10):
        cache.get(b"pw%d" % i, b"salt", 1, "sha1")
    assert len(cache._data) == 4
    assert all(b"pw" not in key[1] for key in cache._data)  # no plaintext kept


# --- the y flag and downgrade detection -------------------------------------


async def test_y_flag_accepted_when_the_server_offered_no_plus() -> None:
    client = sasl.client_mechanism(
        "SCRAM-SHA-256", "alice", "secret", channel_binding=CLIENT_BINDING["tls-unique"]
    )
    assert client.initial().startswith(b"y,,n=alice,")  # type: ignore[union-attr]
    client = sasl.client_mechanism(
        "SCRAM-SHA-256", "alice", "secret", channel_binding=CLIENT_BINDING["tls-unique"]
    )
    server = sasl.server_mechanism(
        "SCRAM-SHA-256", STORE, bindings=SERVER_BINDINGS, offered_plus=False
    )
    await exchange(client, server)
    assert server.done


async def test_y_flag_refused_when_the_server_offered_plus() -> None:
    client = sasl.client_mechanism(
        "SCRAM-SHA-256", "alice", "secret", channel_binding=CLIENT_BINDING["tls-unique"]
    )
    server = sasl.server_mechanism(
        "SCRAM-SHA-256", STORE, bindings=SERVER_BINDINGS, offered_plus=True
    )
    with pytest.raises(SASLError) as info:
        await exchange(client, server)
    assert info.value.condition is SASLCondition.NOT_AUTHORIZED
    assert "downgrade" in str(info.value)


async def test_stripped_plus_is_detected_end_to_end() -> None:
    # A man in the middle removes the -PLUS mechanisms from the offer; the
    # client's choice then carries the y flag and the real server refuses it.
    advertised = sasl.server_mechanisms(True, SERVER_BINDINGS)
    stripped = [m for m in advertised if not m.endswith("-PLUS")]
    name, binding = select(stripped, server_bindings=None)
    assert name == "SCRAM-SHA-512" and binding is not None
    client = sasl.client_mechanism(name, "alice", "secret", channel_binding=binding)
    server = sasl.server_mechanism(name, STORE, bindings=SERVER_BINDINGS, offered_plus=True)
    with pytest.raises(SASLError, match="downgrade"):
        await exchange(client, server)


# --- selection policy -------------------------------------------------------


def select(
    offered: list[str],
    preferred: list[str] | tuple[str, ...] = sasl.DEFAULT_MECHANISMS,
    *,
    secure: bool = True,
    bindings: Mapping[str, bytes] = SERVER_BINDINGS,
    server_bindings: list[str] | None = None,
) -> tuple[str, ChannelBinding | None]:
    return sasl.select_mechanism(
        offered, preferred, secure=secure, bindings=bindings, server_bindings=server_bindings
    )


def test_select_preference_order_wins() -> None:
    offered = ["PLAIN", "SCRAM-SHA-1", "SCRAM-SHA-256"]
    assert select(offered, ["SCRAM-SHA-1", "SCRAM-SHA-256"], bindings={}) == ("SCRAM-SHA-1", None)
    assert select(offered, ["SCRAM-SHA-256", "SCRAM-SHA-1"], bindings={}) == (
        "SCRAM-SHA-256",
        None,
    )
    assert select(offered, ["PLAIN", "SCRAM-SHA-256"], bindings={}) == ("PLAIN", None)
    assert select(offered, bindings={}) == ("SCRAM-SHA-256", None)
    # Unknown and unoffered names are passed over.
    some = ["X-OAUTH2", "SCRAM-SHA-512", "scram-sha-1"]
    assert select(offered, some, bindings={}) == ("SCRAM-SHA-1", None)


def test_select_plus_order_among_plus_mechanisms() -> None:
    offered = ["SCRAM-SHA-1-PLUS", "SCRAM-SHA-256-PLUS", "SCRAM-SHA-1", "SCRAM-SHA-256"]
    prefs = ["SCRAM-SHA-1-PLUS", "SCRAM-SHA-256-PLUS"]
    name, binding = select(offered, prefs, server_bindings=["tls-unique"])
    assert name == "SCRAM-SHA-1-PLUS"
    assert binding == ChannelBinding("tls-unique", SERVER_BINDINGS["tls-unique"])


def test_select_plain_never_without_tls() -> None:
    both = ["PLAIN", "SCRAM-SHA-1"]
    assert select(both, both, secure=False, bindings={}) == ("SCRAM-SHA-1", None)
    with pytest.raises(SASLError) as info:
        select(["PLAIN"], secure=False, bindings={})
    assert info.value.condition is SASLCondition.MECHANISM_TOO_WEAK
    assert "TLS" in str(info.value)


def test_select_nothing_acceptable() -> None:
    with pytest.raises(SASLError) as info:
        select(["DIGEST-MD5", "X-OAUTH2"])
    assert info.value.condition is SASLCondition.INVALID_MECHANISM
    assert "DIGEST-MD5" in str(info.value)
    with pytest.raises(SASLError) as info:
        select(["SCRAM-SHA-256"], ["PLAIN"])
    assert info.value.condition is SASLCondition.INVALID_MECHANISM
    # Only -PLUS accepted and offered, but no binding type in common.
    with pytest.raises(SASLError) as info:
        select(["SCRAM-SHA-256-PLUS"], ["SCRAM-SHA-256-PLUS"], server_bindings=["tls-exporter"])
    assert info.value.condition is SASLCondition.INVALID_MECHANISM
    assert "tls-exporter" in str(info.value)


def test_select_binding_type_negotiation() -> None:
    offered = ["SCRAM-SHA-256-PLUS", "SCRAM-SHA-256"]
    # Both common: tls-server-end-point is preferred.
    name, binding = select(offered, server_bindings=["tls-unique", "tls-server-end-point"])
    assert (name, binding and binding.type) == ("SCRAM-SHA-256-PLUS", "tls-server-end-point")
    # The server's XEP-0440 list restricts the choice.
    name, binding = select(offered, server_bindings=["tls-unique", "tls-exporter"])
    assert (name, binding and binding.type) == ("SCRAM-SHA-256-PLUS", "tls-unique")
    # No XEP-0440 list: only tls-unique is assumed.
    name, binding = select(offered, server_bindings=None)
    assert (name, binding and binding.type) == ("SCRAM-SHA-256-PLUS", "tls-unique")
    # The caller's binding preference can be changed.
    name, binding = sasl.select_mechanism(
        offered,
        sasl.DEFAULT_MECHANISMS,
        secure=True,
        bindings=SERVER_BINDINGS,
        server_bindings=["tls-unique", "tls-server-end-point"],
        binding_preference=["tls-unique"],
    )
    assert binding is not None and binding.type == "tls-unique"


def test_select_tls13_without_a_server_list_declines_plus_cleanly() -> None:
    # TLS 1.3: no tls-unique.  A server that announces no types is assumed
    # to know only tls-unique, so -PLUS is declined with the n flag (not y,
    # which that server would take for a downgrade).
    tls13 = {"tls-server-end-point": SERVER_BINDINGS["tls-server-end-point"]}
    offered = ["SCRAM-SHA-256-PLUS", "SCRAM-SHA-256"]
    assert select(offered, bindings=tls13, server_bindings=None) == ("SCRAM-SHA-256", None)
    only_unique = ["tls-unique"]
    assert select(offered, bindings=tls13, server_bindings=only_unique) == ("SCRAM-SHA-256", None)
    name, binding = select(offered, bindings=tls13, server_bindings=["tls-server-end-point"])
    assert name == "SCRAM-SHA-256-PLUS" and binding is not None


def test_select_refuses_downgrade_to_non_plus() -> None:
    offered = ["SCRAM-SHA-512", "SCRAM-SHA-256", "SCRAM-SHA-1-PLUS"]
    # The caller lists plain SHA-512 first, but an usable -PLUS is offered:
    # binding wins over the caller's order between the two groups.
    prefs = ["SCRAM-SHA-512", "SCRAM-SHA-1-PLUS"]
    name, binding = select(offered, prefs, server_bindings=["tls-unique"])
    assert name == "SCRAM-SHA-1-PLUS" and binding is not None
    # A caller who does not accept any -PLUS mechanism opts out: n flag.
    chosen = select(offered, ["SCRAM-SHA-512"], server_bindings=["tls-unique"])
    assert chosen == ("SCRAM-SHA-512", None)
    # Without binding data (no TLS), -PLUS cannot be used: n flag.
    assert select(offered, bindings={}, secure=False) == ("SCRAM-SHA-512", None)


def test_select_y_flag_semantics() -> None:
    offered = ["SCRAM-SHA-256", "PLAIN"]
    # No -PLUS offered, we could bind: y (a binding is returned with the plain name).
    name, binding = select(offered)
    assert name == "SCRAM-SHA-256" and binding is not None
    client = sasl.client_mechanism(name, "alice", "secret", channel_binding=binding)
    assert isinstance(client, ScramClient) and client.gs2_header == b"y,,"
    # y also when the server's list has no type of ours: y is about the client.
    name, binding = select(offered, bindings={"tls-server-end-point": b"x"}, server_bindings=None)
    assert binding is not None
    # Some -PLUS is offered (even one we do not implement): never y.
    assert select(["SCRAM-SHA-256", "SCRAM-SHA3-512-PLUS"]) == ("SCRAM-SHA-256", None)
    # No binding data, or a caller without -PLUS in its list: n.
    assert select(offered, bindings={}) == ("SCRAM-SHA-256", None)
    assert select(offered, ["SCRAM-SHA-256"]) == ("SCRAM-SHA-256", None)
    # PLAIN has no flag.
    assert select(offered, ["PLAIN"]) == ("PLAIN", None)


def test_server_mechanisms() -> None:
    assert sasl.server_mechanisms(False, {}) == ["SCRAM-SHA-512", "SCRAM-SHA-256", "SCRAM-SHA-1"]
    assert sasl.server_mechanisms(True, {}) == [
        "SCRAM-SHA-512",
        "SCRAM-SHA-256",
        "SCRAM-SHA-1",
        "PLAIN",
    ]
    with_cb = sasl.server_mechanisms(True, SERVER_BINDINGS)
    assert with_cb[:3] == PLUS[::-1]
    assert with_cb[3:] == ["SCRAM-SHA-512", "SCRAM-SHA-256", "SCRAM-SHA-1", "PLAIN"]


def test_server_mechanism_factory_errors() -> None:
    with pytest.raises(SASLError) as info:
        sasl.server_mechanism("DIGEST-MD5", STORE, bindings={}, offered_plus=False)
    assert info.value.condition is SASLCondition.INVALID_MECHANISM
    with pytest.raises(SASLError):
        sasl.server_mechanism("SCRAM-SHA-256-PLUS", STORE, bindings={}, offered_plus=False)
    with pytest.raises(SASLError):
        sasl.client_mechanism("SCRAM-SHA-384", "a", "b")
    with pytest.raises(ValueError):
        sasl.client_mechanism("SCRAM-SHA-256-PLUS", "a", "b")


@pytest.mark.parametrize("name", ALL)
async def test_selected_mechanism_logs_in(name: str) -> None:
    # The whole client path: offer -> select -> mechanism -> server.
    offered = sasl.server_mechanisms(True, SERVER_BINDINGS)
    chosen, binding = select(offered, [name], server_bindings=sorted(SERVER_BINDINGS))
    assert chosen == name
    client = sasl.client_mechanism(chosen, "alice", "secret", channel_binding=binding)
    server = sasl.server_mechanism(chosen, STORE, bindings=SERVER_BINDINGS, offered_plus=True)
    await exchange(client, server)
    assert server.done


# --- tls-server-end-point on certificates -----------------------------------


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _builder(public_key: object, cn: str = "localhost") -> x509.CertificateBuilder:
    now = datetime.datetime.now(datetime.timezone.utc)
    return (
        x509.CertificateBuilder()
        .subject_name(_name(cn))
        .issuer_name(_name(cn))
        .public_key(public_key)  # type: ignore[arg-type]
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
    )


def _der(tag: int, content: bytes) -> bytes:
    n = len(content)
    if n < 0x80:
        length = bytes([n])
    else:
        raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
        length = bytes([0x80 | len(raw)]) + raw
    return bytes([tag]) + length + content


# DER of the OIDs sha256WithRSAEncryption, sha1WithRSAEncryption, md5WithRSAEncryption.
_RSA_SHA256 = bytes.fromhex("06092a864886f70d01010b")
_RSA_WEAK = {
    "sha1": bytes.fromhex("06092a864886f70d010105"),
    "md5": bytes.fromhex("06092a864886f70d010104"),
}


def _weak_rsa_cert(hash_name: str) -> bytes:
    """An RSA certificate signed with SHA-1 or MD5.

    cryptography no longer signs certificates with those, so the to-be-signed
    part of a SHA-256 certificate is re-labelled (the OIDs have the same
    length) and signed by hand.
    """
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    cert = _builder(key.public_key()).sign(key, hashes.SHA256())
    tbs = cert.tbs_certificate_bytes
    assert tbs.count(_RSA_SHA256) == 1
    tbs = tbs.replace(_RSA_SHA256, _RSA_WEAK[hash_name])
    algo = hashes.SHA1() if hash_name == "sha1" else hashes.MD5()
    signature = key.sign(tbs, padding.PKCS1v15(), algo)
    alg_id = _der(0x30, _RSA_WEAK[hash_name] + b"\x05\x00")
    return _der(0x30, tbs + alg_id + _der(0x03, b"\x00" + signature))


@pytest.fixture(scope="module")
def ec_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


@pytest.mark.parametrize(
    ("algorithm", "hash_name"),
    [(hashes.SHA256(), "sha256"), (hashes.SHA384(), "sha384"), (hashes.SHA512(), "sha512")],
)
def test_tls_server_end_point_uses_the_signature_hash(
    ec_key: ec.EllipticCurvePrivateKey,
    algorithm: hashes.SHA256 | hashes.SHA384 | hashes.SHA512,
    hash_name: str,
) -> None:
    cert = _builder(ec_key.public_key()).sign(ec_key, algorithm)
    der = cert.public_bytes(serialization.Encoding.DER)
    value = sasl.tls_server_end_point(der)
    assert value == hashlib.new(hash_name, der).digest()
    assert len(value) == hashlib.new(hash_name).digest_size


def test_tls_server_end_point_rsa_sha384() -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    cert = _builder(key.public_key()).sign(key, hashes.SHA384())
    der = cert.public_bytes(serialization.Encoding.DER)
    assert sasl.tls_server_end_point(der) == hashlib.sha384(der).digest()


@pytest.mark.parametrize("weak", ["sha1", "md5"])
def test_tls_server_end_point_upgrades_sha1_and_md5(weak: str) -> None:
    der = _weak_rsa_cert(weak)
    cert = x509.load_der_x509_certificate(der)
    assert cert.signature_hash_algorithm is not None
    assert cert.signature_hash_algorithm.name == weak
    assert sasl.tls_server_end_point(der) == hashlib.sha256(der).digest()


def test_tls_server_end_point_undefined_for_ed25519() -> None:
    key = ed25519.Ed25519PrivateKey.generate()
    der = _builder(key.public_key()).sign(key, None).public_bytes(serialization.Encoding.DER)
    with pytest.raises(ValueError, match="undefined"):
        sasl.tls_server_end_point(der)
    with pytest.raises(ValueError):
        sasl.tls_server_end_point(b"not a certificate")


# --- real TLS connections on loopback ---------------------------------------


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, bytes]:
    """A self-signed ECDSA certificate signed with SHA-384, its key, and its DER."""
    key = ec.generate_private_key(ec.SECP256R1())
    cert = _builder(key.public_key()).sign(key, hashes.SHA384())
    directory = tmp_path_factory.mktemp("tls")
    cert_file = directory / "cert.pem"
    key_file = directory / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_file, key_file, cert.public_bytes(serialization.Encoding.DER)


async def _loopback_bindings(
    tls_files: tuple[Path, Path, bytes], version: ssl.TLSVersion
) -> tuple[dict[str, bytes], dict[str, bytes], str]:
    """Connect over TLS on 127.0.0.1; return (client bindings, server bindings, version)."""
    cert_file, key_file, cert_der = tls_files
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(cert_file, key_file)
    server_ctx.minimum_version = server_ctx.maximum_version = version
    client_ctx = ssl.create_default_context(cafile=str(cert_file))
    client_ctx.minimum_version = client_ctx.maximum_version = version

    server_side: asyncio.Future[dict[str, bytes]] = asyncio.get_running_loop().create_future()

    async def on_client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        ssl_object = writer.get_extra_info("ssl_object")
        server_side.set_result(
            sasl.available_bindings(ssl_object, server_side=True, own_cert_der=cert_der)
        )
        await reader.read(1)  # wait for the client to close
        writer.close()

    server = await asyncio.start_server(on_client, "127.0.0.1", 0, ssl=server_ctx)
    try:
        port = server.sockets[0].getsockname()[1]
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(
                "127.0.0.1", port, ssl=client_ctx, server_hostname="localhost"
            ),
            timeout=10,
        )
        ssl_object = writer.get_extra_info("ssl_object")
        negotiated = ssl_object.version()
        with pytest.raises(ValueError, match="client end"):
            sasl.available_bindings(ssl_object, server_side=True, own_cert_der=cert_der)
        client_bindings = sasl.available_bindings(ssl_object, server_side=False)
        server_bindings = await asyncio.wait_for(server_side, timeout=10)
        writer.close()
        await writer.wait_closed()
    finally:
        server.close()
        await server.wait_closed()
    return client_bindings, server_bindings, negotiated


async def _login_over(
    client_bindings: dict[str, bytes], server_bindings: dict[str, bytes], cb_type: str
) -> None:
    client = sasl.client_mechanism(
        "SCRAM-SHA-256-PLUS",
        "alice",
        "secret",
        channel_binding=ChannelBinding(cb_type, client_bindings[cb_type]),
    )
    server = sasl.server_mechanism(
        "SCRAM-SHA-256-PLUS", STORE, bindings=server_bindings, offered_plus=True
    )
    await exchange(client, server)
    assert server.done


async def test_loopback_tls12_bindings_agree(tls_files: tuple[Path, Path, bytes]) -> None:
    client_b, server_b, version = await _loopback_bindings(tls_files, ssl.TLSVersion.TLSv1_2)
    assert version == "TLSv1.2"
    assert set(client_b) == set(server_b) == {"tls-unique", "tls-server-end-point"}
    assert client_b["tls-unique"] == server_b["tls-unique"]
    assert len(client_b["tls-unique"]) == 12  # a TLS 1.2 Finished verify_data
    assert client_b["tls-server-end-point"] == server_b["tls-server-end-point"]
    assert client_b["tls-server-end-point"] == hashlib.sha384(tls_files[2]).digest()
    for cb_type in ("tls-unique", "tls-server-end-point"):
        await _login_over(client_b, server_b, cb_type)


async def test_loopback_tls12_connections_differ(tls_files: tuple[Path, Path, bytes]) -> None:
    first, _, _ = await _loopback_bindings(tls_files, ssl.TLSVersion.TLSv1_2)
    second, server_second, _ = await _loopback_bindings(tls_files, ssl.TLSVersion.TLSv1_2)
    assert first["tls-unique"] != second["tls-unique"]
    # Bound to the first connection, the login fails on the second.
    client = sasl.client_mechanism(
        "SCRAM-SHA-256-PLUS", "alice", "secret",
        channel_binding=ChannelBinding("tls-unique", first["tls-unique"]),
    )
    server = sasl.server_mechanism(
        "SCRAM-SHA-256-PLUS", STORE, bindings=server_second, offered_plus=True
    )
    with pytest.raises(SASLError, match="channel binding mismatch"):
        await exchange(client, server)


async def test_loopback_tls13_bindings_agree(tls_files: tuple[Path, Path, bytes]) -> None:
    if not ssl.HAS_TLSv1_3:
        pytest.skip("TLS 1.3 not available in this OpenSSL")
    client_b, server_b, version = await _loopback_bindings(tls_files, ssl.TLSVersion.TLSv1_3)
    assert version == "TLSv1.3"
    assert set(client_b) == set(server_b) == {"tls-server-end-point"}
    assert client_b["tls-server-end-point"] == server_b["tls-server-end-point"]
    await _login_over(client_b, server_b, "tls-server-end-point")


# --- a foreign client: slixmpp's SASL mechanisms against our server ---------


@pytest.mark.parametrize("name", ["PLAIN", *SCRAM, *PLUS])
async def test_slixmpp_client_against_our_server(name: str) -> None:
    from slixmpp.util import sasl as slix

    tls_unique = SERVER_BINDINGS["tls-unique"]

    def credentials(required: object, optional: object) -> dict[str, object]:
        return {
            "username": "jürgen".encode(),
            "password": "pässwörd€ with spaces".encode(),
            "authzid": b"",
            "channel_binding": tls_unique,
        }

    def security(values: object) -> dict[str, object]:
        return {
            "encrypted": True,
            "encrypted_plain": True,
            "unencrypted_plain": False,
            "unencrypted_scram": False,
            "tls_version": "TLSv1.2",
            "binding_proposed": name.endswith("-PLUS"),
        }

    mech = slix.choose([name], credentials, security)
    server = sasl.server_mechanism(
        name, STORE, bindings={"tls-unique": tls_unique}, offered_plus=name.endswith("-PLUS")
    )
    data = mech.process()
    for _ in range(4):
        challenge = await server.step(data)
        if challenge is None:
            break
        data = mech.process(challenge)
    assert server.done and server.username == "jürgen"
    if server.success_data is not None:
        mech.process(server.success_data)  # slixmpp verifies our signature
