"""Tests of xmpp.dial against a DNS server and TCP/TLS listeners on loopback.

Every DNS answer comes from tests/dnsserver.py on a 127.0.0.1 UDP port (no
mock of dnspython), every connection goes to 127.0.0.1 or ::1.  Each test is
checked for leaked sockets: a ResourceWarning fails it, and so does a socket
file descriptor left open at its end.
"""

from __future__ import annotations

import asyncio
import collections
import datetime
import gc
import logging
import os
import random
import socket
import ssl
import warnings
from collections.abc import AsyncIterator, Iterator

import dns.exception
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from xmpp import dial as xdial
from xmpp.dial import DialError, DialTimeoutError, Target

from dnsserver import DNSServer

pytestmark = [
    pytest.mark.filterwarnings("error::ResourceWarning"),
    pytest.mark.filterwarnings("error::pytest.PytestUnraisableExceptionWarning"),
    pytest.mark.timeout(60),
]

DOMAIN = "example.org"


def _ipv6_works() -> bool:
    if not socket.has_ipv6:
        return False
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.bind(("::1", 0))
    except OSError:
        return False
    return True


HAVE_IPV6 = _ipv6_works()
needs_ipv6 = pytest.mark.skipif(not HAVE_IPV6, reason="::1 is not available here")


# -- leak checks -----------------------------------------------------------


def _socket_fds() -> set[str]:
    found = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:"):
            found.add(f"{fd}->{target}")
    return found


@pytest.fixture(autouse=True)
def no_leaked_sockets() -> Iterator[None]:
    """Fail the test if it leaves a socket open or an unclosed-resource warning."""
    have_proc = os.path.isdir("/proc/self/fd")
    before = _socket_fds() if have_proc else set()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)
        yield
        gc.collect()
    leaked = [w for w in caught if issubclass(w.category, ResourceWarning)]
    assert not leaked, [str(w.message) for w in leaked]
    if have_proc:
        assert _socket_fds() - before == set()


# -- helpers ----------------------------------------------------------------


@pytest.fixture
async def dns_server() -> AsyncIterator[DNSServer]:
    async with DNSServer() as server:
        yield server


class Recorder(asyncio.Protocol):
    """A protocol that keeps what it receives and notes when the connection ends."""

    def __init__(self) -> None:
        self.data = bytearray()
        self.lost = asyncio.get_running_loop().create_future()

    def data_received(self, data: bytes) -> None:
        self.data += data

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.lost.done():
            self.lost.set_result(exc)


async def close(transport: asyncio.Transport, protocol: Recorder) -> None:
    transport.close()
    await asyncio.wait_for(protocol.lost, 10)


class Listener:
    """A TCP listening socket on loopback that the kernel accepts for (no accept calls).

    ``hang=True`` fills its accept queue, so further connection attempts are
    neither accepted nor refused: they wait, as to a host that is slow to
    answer.
    """

    def __init__(self, host: str, port: int = 0, *, hang: bool = False) -> None:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, port))
        self.port: int = self.sock.getsockname()[1]
        self.fillers: list[socket.socket] = []
        if hang:
            self.sock.listen(0)
            filler = socket.socket(family, socket.SOCK_STREAM)
            filler.connect((host, self.port))  # takes the only place in the queue
            self.fillers.append(filler)
        else:
            self.sock.listen(16)

    def close(self) -> None:
        for filler in self.fillers:
            filler.close()
        self.sock.close()


def free_port_on_both() -> int:
    """A port number that is free on both 127.0.0.1 and ::1 at the moment."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s4:
            s4.bind(("127.0.0.1", 0))
            port: int = s4.getsockname()[1]
            if not HAVE_IPV6:
                return port
            try:
                with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s6:
                    s6.bind(("::1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no port free on both loopback addresses")


class PKI:
    """A throwaway CA and certificates it issues, made with ``cryptography``."""

    def __init__(self) -> None:
        self.key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "xmpp.dial test CA")])
        now = datetime.datetime.now(datetime.timezone.utc)
        self.cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(
                x509.SubjectKeyIdentifier.from_public_key(self.key.public_key()), critical=False
            )
            .sign(self.key, hashes.SHA256())
        )
        self.pem = self.cert.public_bytes(serialization.Encoding.PEM).decode()

    def server_context(self, tmp_path: os.PathLike[str], dns_name: str) -> ssl.SSLContext:
        """A server context whose certificate names only ``dns_name``."""
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.timezone.utc)
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, dns_name)]))
            .issuer_name(self.cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(dns_name)]), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()),
                critical=False,
            )
            .sign(self.key, hashes.SHA256())
        )
        base = os.fspath(tmp_path)
        cert_file = os.path.join(base, f"{dns_name}.crt")
        key_file = os.path.join(base, f"{dns_name}.key")
        with open(cert_file, "wb") as f:
            f.write(cert.public_bytes(serialization.Encoding.PEM))
        with open(key_file, "wb") as f:
            f.write(
                key.private_bytes(
                    serialization.Encoding.PEM,
                    serialization.PrivateFormat.PKCS8,
                    serialization.NoEncryption(),
                )
            )
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert_file, key_file)
        return context


@pytest.fixture(scope="module")
def pki() -> PKI:
    return PKI()


class TLSServer:
    """An asyncio TLS server on 127.0.0.1 offering ALPN xmpp-client and noting SNI."""

    def __init__(self, context: ssl.SSLContext) -> None:
        self.context = context
        self.context.set_alpn_protocols(["xmpp-client", "xmpp-server"])
        self.sni: list[str | None] = []
        self.context.sni_callback = self._sni
        self.handlers: set[asyncio.Task[None]] = set()
        self.server: asyncio.base_events.Server | None = None
        self.port = 0

    def _sni(self, sslobj: ssl.SSLObject, name: str | None, ctx: ssl.SSLContext) -> None:
        self.sni.append(name)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self.handlers.add(task)
        try:
            writer.write(b"hello")
            await writer.drain()
            await reader.read()  # until the client closes
        except (ConnectionError, ssl.SSLError):
            pass
        finally:
            writer.close()
            try:
                await writer.wait_closed()
            except (ConnectionError, ssl.SSLError):
                pass

    async def __aenter__(self) -> TLSServer:
        self.server = await asyncio.start_server(
            self._handle, "127.0.0.1", 0, ssl=self.context, ssl_handshake_timeout=10
        )
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()
        await self.server.wait_closed()
        if self.handlers:
            await asyncio.wait_for(asyncio.gather(*self.handlers, return_exceptions=True), 10)
        await asyncio.sleep(0)


def client_context(pki: PKI) -> ssl.SSLContext:
    context = xdial.default_tls_context("xmpp-client")
    context.load_verify_locations(cadata=pki.pem)
    return context


# -- ordering (RFC 2782) ------------------------------------------------------


def test_order_srv_lowest_priority_first() -> None:
    records = [Target(f"h{p}", 1, False, p, 5) for p in (30, 10, 20, 0, 10)]
    ordered = xdial.order_srv(records, random.Random(1))
    assert [t.priority for t in ordered] == [0, 10, 10, 20, 30]
    assert sorted(ordered, key=lambda t: t.host) == sorted(records, key=lambda t: t.host)


def test_order_srv_weights_decide_the_first_pick() -> None:
    rng = random.Random(2024)
    records = [Target("a", 1, False, 5, 60), Target("b", 1, False, 5, 30), Target("c", 1, False, 5, 10)]
    runs = 6000
    first = collections.Counter(xdial.order_srv(records, rng)[0].host for _ in range(runs))
    # Expected 0.6 / 0.3 / 0.1; the margins are several standard deviations wide.
    assert abs(first["a"] / runs - 0.60) < 0.04
    assert abs(first["b"] / runs - 0.30) < 0.04
    assert abs(first["c"] / runs - 0.10) < 0.03


def test_order_srv_zero_weight_has_a_small_chance() -> None:
    # RFC 2782: zero weights first, r uniform in [0, total]; the zero-weight
    # record is picked first only when r == 0, i.e. with chance 1 / (total + 1).
    rng = random.Random(7)
    records = [Target("zero", 1, False, 1, 0), Target("three", 1, False, 1, 3)]
    runs = 4000
    zero_first = sum(xdial.order_srv(records, rng)[0].host == "zero" for _ in range(runs))
    assert abs(zero_first / runs - 0.25) < 0.04


def test_order_srv_all_zero_weights_come_in_random_order() -> None:
    rng = random.Random(3)
    records = [Target(h, 1, False, 1, 0) for h in "abc"]
    orders = {tuple(t.host for t in xdial.order_srv(records, rng)) for _ in range(300)}
    assert len(orders) == 6  # every permutation shows up


def test_order_srv_is_reproducible_with_a_seed() -> None:
    records = [Target(f"h{i}", 1, False, i % 2, i) for i in range(8)]
    assert xdial.order_srv(records, random.Random(5)) == xdial.order_srv(records, random.Random(5))


def test_interleave_puts_ipv6_first() -> None:
    assert xdial._interleave(["6a", "6b"], ["4a", "4b", "4c"]) == ["6a", "4a", "6b", "4b", "4c"]
    assert xdial._interleave([], ["4a"]) == ["4a"]
    assert xdial._interleave(["6a", "6b"], []) == ["6a", "6b"]


# -- lookup -------------------------------------------------------------------


async def test_lookup_orders_by_priority_direct_tls_first(dns_server: DNSServer) -> None:
    dns_server.add(
        f"_xmpps-client._tcp.{DOMAIN}", "SRV", "10 0 5223 tls10.example.net.", "20 0 443 tls20.example.net."
    )
    dns_server.add(
        f"_xmpp-client._tcp.{DOMAIN}", "SRV", "5 0 5222 plain5.example.net.", "10 0 5222 plain10.example.net."
    )
    targets = await xdial.lookup(DOMAIN, resolver=dns_server.resolver())
    assert targets == [
        Target("plain5.example.net", 5222, False, 5, 0),
        Target("tls10.example.net", 5223, True, 10, 0),
        Target("plain10.example.net", 5222, False, 10, 0),
        Target("tls20.example.net", 443, True, 20, 0),
    ]
    assert dns_server.asked(f"_xmpps-client._tcp.{DOMAIN}", "SRV")
    assert dns_server.asked(f"_xmpp-client._tcp.{DOMAIN}", "SRV")


async def test_lookup_weight_distribution_over_dns(dns_server: DNSServer) -> None:
    dns_server.add(
        f"_xmpp-client._tcp.{DOMAIN}",
        "SRV",
        "1 75 5222 heavy.example.net.",
        "1 25 5222 light.example.net.",
        "9 0 5222 backup.example.net.",
    )
    resolver = dns_server.resolver()
    rng = random.Random(11)
    runs = 300
    first: collections.Counter[str] = collections.Counter()
    for _ in range(runs):
        targets = await xdial.lookup(DOMAIN, resolver=resolver, rng=rng)
        assert targets[-1].host == "backup.example.net"
        assert {t.host for t in targets[:2]} == {"heavy.example.net", "light.example.net"}
        first[targets[0].host] += 1
    assert abs(first["heavy.example.net"] / runs - 0.75) < 0.08
    assert len(dns_server.queries) == 2 * runs  # each lookup really asked DNS


async def test_lookup_server_service_names(dns_server: DNSServer) -> None:
    dns_server.add(f"_xmpp-server._tcp.{DOMAIN}", "SRV", "0 0 5269 s2s.example.net.")
    targets = await xdial.lookup(DOMAIN, service="xmpp-server", resolver=dns_server.resolver())
    assert targets == [Target("s2s.example.net", 5269, False, 0, 0)]
    assert dns_server.asked(f"_xmpps-server._tcp.{DOMAIN}", "SRV")
    assert not dns_server.asked(f"_xmpp-client._tcp.{DOMAIN}")


async def test_nxdomain_falls_back_to_the_domain(dns_server: DNSServer) -> None:
    dns_server.nxdomain(f"_xmpps-client._tcp.{DOMAIN}")
    dns_server.nxdomain(f"_xmpp-client._tcp.{DOMAIN}")
    resolver = dns_server.resolver()
    assert await xdial.lookup(DOMAIN, resolver=resolver) == [Target(DOMAIN, 5222, False)]
    assert await xdial.lookup(DOMAIN, service="xmpp-server", resolver=resolver) == [
        Target(DOMAIN, 5269, False)
    ]


async def test_no_srv_records_at_an_existing_name_falls_back(dns_server: DNSServer) -> None:
    # The names exist (TXT records) but have no SRV records: NOERROR, no answer.
    dns_server.add(f"_xmpp-client._tcp.{DOMAIN}", "TXT", '"hi"')
    dns_server.add(f"_xmpps-client._tcp.{DOMAIN}", "TXT", '"hi"')
    assert await xdial.lookup(DOMAIN, resolver=dns_server.resolver()) == [Target(DOMAIN, 5222, False)]


async def test_dot_target_means_no_service(dns_server: DNSServer) -> None:
    dns_server.add(f"_xmpp-client._tcp.{DOMAIN}", "SRV", "0 0 0 .")
    resolver = dns_server.resolver()
    assert await xdial.lookup(DOMAIN, resolver=resolver) == []
    with pytest.raises(DialError, match="does not offer xmpp-client"):
        await xdial.dial(DOMAIN, Recorder, resolver=resolver, timeout=10)
    # No fallback: the domain's own addresses were never asked for.
    assert not dns_server.asked(DOMAIN)


async def test_dot_for_direct_tls_leaves_starttls(dns_server: DNSServer) -> None:
    dns_server.add(f"_xmpps-client._tcp.{DOMAIN}", "SRV", "0 0 0 .")
    dns_server.add(f"_xmpp-client._tcp.{DOMAIN}", "SRV", "5 0 5222 plain.example.net.")
    assert await xdial.lookup(DOMAIN, resolver=dns_server.resolver()) == [
        Target("plain.example.net", 5222, False, 5, 0)
    ]


async def test_dot_for_direct_tls_and_nothing_else_is_no_fallback(dns_server: DNSServer) -> None:
    # XEP-0368 section 5: a "." answer rules out the A/AAAA fallback.
    dns_server.add(f"_xmpps-client._tcp.{DOMAIN}", "SRV", "0 0 0 .")
    assert await xdial.lookup(DOMAIN, resolver=dns_server.resolver()) == []


async def test_servfail_is_reported_and_falls_back(
    dns_server: DNSServer, caplog: pytest.LogCaptureFixture
) -> None:
    dns_server.servfail(f"_xmpps-client._tcp.{DOMAIN}")
    dns_server.servfail(f"_xmpp-client._tcp.{DOMAIN}")
    resolver = dns_server.resolver()
    with caplog.at_level(logging.WARNING, logger="xmpp.dial"):
        assert await xdial.lookup(DOMAIN, resolver=resolver) == [Target(DOMAIN, 5222, False)]
    assert any("SERVFAIL" in r.getMessage() for r in caplog.records)
    # The domain has no address either (NXDOMAIN), so nothing is connected to;
    # the error names both SRV failures and the fallback target.
    with pytest.raises(DialError) as info:
        await xdial.dial(DOMAIN, Recorder, resolver=resolver, timeout=10)
    wheres = [where for where, _ in info.value.errors]
    assert wheres == [
        f"SRV _xmpps-client._tcp.{DOMAIN}",
        f"SRV _xmpp-client._tcp.{DOMAIN}",
        Target(DOMAIN, 5222, False),
    ]
    assert "SERVFAIL" in str(info.value)
    assert dns_server.asked(DOMAIN, "AAAA") and dns_server.asked(DOMAIN, "A")


async def test_ip_literals_and_localhost_skip_dns(dns_server: DNSServer) -> None:
    resolver = dns_server.resolver()
    assert await xdial.lookup("127.0.0.1", resolver=resolver) == [Target("127.0.0.1", 5222)]
    assert await xdial.lookup("[::1]", resolver=resolver) == [Target("::1", 5222)]
    assert await xdial.lookup("localhost", service="xmpp-server", resolver=resolver) == [
        Target("localhost", 5269)
    ]
    assert await xdial.resolve_host("localhost", resolver=resolver) == ["::1", "127.0.0.1"]
    assert await xdial.resolve_host("[::1]", resolver=resolver) == ["::1"]
    assert await xdial.resolve_host("127.0.0.1", resolver=resolver) == ["127.0.0.1"]
    assert dns_server.queries == []


async def test_resolve_host_asks_aaaa_and_a_and_interleaves(dns_server: DNSServer) -> None:
    # Addresses from documentation ranges: answers only, nothing connects to them.
    dns_server.add("multi.example.net", "AAAA", "2001:db8::1", "2001:db8::2")
    dns_server.add("multi.example.net", "A", "192.0.2.1", "192.0.2.2", "192.0.2.3")
    addresses = await xdial.resolve_host("multi.example.net", resolver=dns_server.resolver())
    # The order within a family is the server's; the families alternate, IPv6 first.
    families = ["6" if ":" in a else "4" for a in addresses]
    assert families == ["6", "4", "6", "4", "4"]
    assert set(addresses) == {"2001:db8::1", "2001:db8::2", "192.0.2.1", "192.0.2.2", "192.0.2.3"}
    assert dns_server.asked("multi.example.net", "AAAA")
    assert dns_server.asked("multi.example.net", "A")


async def test_resolve_host_uses_one_family_when_the_other_fails(dns_server: DNSServer) -> None:
    dns_server.add("half.example.net", "A", "192.0.2.7")
    dns_server.servfail("half.example.net", "AAAA")
    assert await xdial.resolve_host("half.example.net", resolver=dns_server.resolver()) == ["192.0.2.7"]


async def test_resolve_host_without_addresses_says_why(dns_server: DNSServer) -> None:
    dns_server.servfail("broken.example.net")
    with pytest.raises(DialError, match="no IP address for broken.example.net") as info:
        await xdial.resolve_host("broken.example.net", resolver=dns_server.resolver())
    assert [where for where, _ in info.value.errors] == [
        "AAAA broken.example.net",
        "A broken.example.net",
    ]


async def test_bad_arguments() -> None:
    with pytest.raises(ValueError):
        await xdial.lookup(DOMAIN, service="xmpp-component")
    with pytest.raises(ValueError):
        await xdial.dial(DOMAIN, Recorder, host="localhost", direct_tls=True)
    with pytest.raises(ValueError):
        await xdial.lookup("a" * 70 + ".example.org")  # a label longer than 63


# -- connecting -------------------------------------------------------------


async def test_host_and_port_skip_dns(dns_server: DNSServer) -> None:
    listener = Listener("127.0.0.1")
    try:
        transport, protocol, target = await xdial.dial(
            DOMAIN, Recorder, host="127.0.0.1", port=listener.port, resolver=dns_server.resolver()
        )
        try:
            assert target == Target("127.0.0.1", listener.port, False)
            assert transport.get_extra_info("peername")[:2] == ("127.0.0.1", listener.port)
            assert transport.get_extra_info("ssl_object") is None
        finally:
            await close(transport, protocol)
    finally:
        listener.close()
    assert dns_server.queries == []


@needs_ipv6
async def test_bracketed_ipv6_domain_with_port(dns_server: DNSServer) -> None:
    listener = Listener("::1")
    try:
        transport, protocol, target = await xdial.dial(
            "[::1]", Recorder, port=listener.port, resolver=dns_server.resolver()
        )
        try:
            assert target == Target("::1", listener.port, False)
            assert str(target) == f"[::1]:{listener.port} (STARTTLS)"
            assert transport.get_extra_info("peername")[:2] == ("::1", listener.port)
        finally:
            await close(transport, protocol)
    finally:
        listener.close()
    assert dns_server.queries == []


async def test_failing_first_target_falls_through(dns_server: DNSServer) -> None:
    live = Listener("127.0.0.1")
    dead_port = free_port_on_both()
    dns_server.add(
        f"_xmpp-client._tcp.{DOMAIN}",
        "SRV",
        f"1 0 {dead_port} dead.example.net.",
        f"2 0 {live.port} live.example.net.",
    )
    dns_server.add("dead.example.net", "A", "127.0.0.1")
    dns_server.add("live.example.net", "A", "127.0.0.1")
    try:
        transport, protocol, target = await xdial.dial(
            DOMAIN, Recorder, resolver=dns_server.resolver(), timeout=10
        )
        try:
            assert target == Target("live.example.net", live.port, False, 2, 0)
            assert transport.get_extra_info("peername")[1] == live.port
        finally:
            await close(transport, protocol)
    finally:
        live.close()
    assert dns_server.asked("dead.example.net", "A")


async def test_all_targets_failing_lists_them_and_skips_fallback(dns_server: DNSServer) -> None:
    port = free_port_on_both()
    dns_server.add(
        f"_xmpp-client._tcp.{DOMAIN}",
        "SRV",
        f"1 0 {port} one.example.net.",
        f"2 0 {port} two.example.net.",
    )
    dns_server.add("one.example.net", "A", "127.0.0.1")
    dns_server.nxdomain("two.example.net")
    dns_server.add(DOMAIN, "A", "127.0.0.1")
    with pytest.raises(DialError, match="cannot connect to xmpp-client at example.org") as info:
        await xdial.dial(DOMAIN, Recorder, resolver=dns_server.resolver(), timeout=10)
    errors = dict(info.value.errors)
    assert list(errors) == [
        Target("one.example.net", port, False, 1, 0),
        Target("two.example.net", port, False, 2, 0),
    ]
    refused = errors[Target("one.example.net", port, False, 1, 0)]
    assert isinstance(refused, DialError)
    assert isinstance(refused.errors[0][1], ConnectionRefusedError)
    assert "no IP address for two.example.net" in str(info.value)
    assert not dns_server.asked(DOMAIN)  # RFC 6120 3.2.1 step 7: no fallback


async def test_direct_tls_filter(dns_server: DNSServer) -> None:
    dns_server.add(f"_xmpps-client._tcp.{DOMAIN}", "SRV", "0 0 5223 tls.example.net.")
    with pytest.raises(DialError, match="no STARTTLS target"):
        await xdial.dial(DOMAIN, Recorder, direct_tls=False, resolver=dns_server.resolver())


async def test_direct_tls_alpn_and_certificate_of_the_domain(
    dns_server: DNSServer, pki: PKI, tmp_path: os.PathLike[str]
) -> None:
    # The certificate names only the XMPP domain, not the SRV target host.
    async with TLSServer(pki.server_context(tmp_path, DOMAIN)) as server:
        dns_server.add(f"_xmpps-client._tcp.{DOMAIN}", "SRV", f"0 0 {server.port} tls.hosting.test.")
        dns_server.add("tls.hosting.test", "A", "127.0.0.1")
        transport, protocol, target = await xdial.dial(
            DOMAIN, Recorder, tls_context=client_context(pki), resolver=dns_server.resolver(), timeout=10
        )
        try:
            assert target == Target("tls.hosting.test", server.port, True, 0, 0)
            sslobj = transport.get_extra_info("ssl_object")
            assert sslobj is not None
            assert sslobj.selected_alpn_protocol() == "xmpp-client"
            assert sslobj.server_hostname == DOMAIN
            assert server.sni == [DOMAIN]
            while len(protocol.data) < 5:
                await asyncio.sleep(0.01)
            assert bytes(protocol.data) == b"hello"
        finally:
            await close(transport, protocol)


async def test_direct_tls_server_alpn(dns_server: DNSServer, pki: PKI, tmp_path: os.PathLike[str]) -> None:
    async with TLSServer(pki.server_context(tmp_path, DOMAIN)) as server:
        dns_server.add(f"_xmpps-server._tcp.{DOMAIN}", "SRV", f"0 0 {server.port} s2s.hosting.test.")
        dns_server.add("s2s.hosting.test", "A", "127.0.0.1")
        context = xdial.default_tls_context("xmpp-server")
        context.load_verify_locations(cadata=pki.pem)
        transport, protocol, target = await xdial.dial(
            DOMAIN, Recorder, service="xmpp-server", tls_context=context, resolver=dns_server.resolver()
        )
        try:
            assert target.direct_tls
            assert transport.get_extra_info("ssl_object").selected_alpn_protocol() == "xmpp-server"
        finally:
            await close(transport, protocol)


async def test_certificate_of_the_srv_target_is_not_enough(
    dns_server: DNSServer, pki: PKI, tmp_path: os.PathLike[str]
) -> None:
    async with TLSServer(pki.server_context(tmp_path, "tls.hosting.test")) as server:
        dns_server.add(f"_xmpps-client._tcp.{DOMAIN}", "SRV", f"0 0 {server.port} tls.hosting.test.")
        dns_server.add("tls.hosting.test", "A", "127.0.0.1")
        with pytest.raises(DialError) as info:
            await xdial.dial(
                DOMAIN, Recorder, tls_context=client_context(pki), resolver=dns_server.resolver(), timeout=10
            )
        (where, exc), = info.value.errors
        assert where == Target("tls.hosting.test", server.port, True, 0, 0)
        assert isinstance(exc, ssl.SSLCertVerificationError)
        assert "example.org" in str(exc)
        assert server.sni == [DOMAIN]


async def test_default_context_verifies(dns_server: DNSServer, pki: PKI, tmp_path: os.PathLike[str]) -> None:
    # Our test CA is not among the system's trusted ones: the default refuses.
    async with TLSServer(pki.server_context(tmp_path, DOMAIN)) as server:
        with pytest.raises(DialError) as info:
            await xdial.dial(
                DOMAIN, Recorder, host="127.0.0.1", port=server.port, direct_tls=True, timeout=10
            )
        (_, exc), = info.value.errors
        assert isinstance(exc, ssl.SSLCertVerificationError)


async def test_explicit_host_with_direct_tls(dns_server: DNSServer, pki: PKI, tmp_path: os.PathLike[str]) -> None:
    async with TLSServer(pki.server_context(tmp_path, DOMAIN)) as server:
        transport, protocol, target = await xdial.dial(
            DOMAIN,
            Recorder,
            host="localhost",
            port=server.port,
            direct_tls=True,
            tls_context=client_context(pki),
            resolver=dns_server.resolver(),
        )
        try:
            assert target == Target("localhost", server.port, True)
            assert transport.get_extra_info("ssl_object").server_hostname == DOMAIN
        finally:
            await close(transport, protocol)
    assert dns_server.queries == []


# -- happy eyeballs -----------------------------------------------------------


async def _dial_both_families(dns_server: DNSServer, port: int, delay: float = 0.25) -> tuple[
    asyncio.Transport, Recorder, Target
]:
    dns_server.add(f"_xmpp-client._tcp.{DOMAIN}", "SRV", f"0 0 {port} dual.example.net.")
    dns_server.add("dual.example.net", "AAAA", "::1")
    dns_server.add("dual.example.net", "A", "127.0.0.1")
    return await xdial.dial(
        DOMAIN, Recorder, resolver=dns_server.resolver(), timeout=20, happy_eyeballs_delay=delay
    )


@needs_ipv6
async def test_ipv6_refused_ipv4_accepts(dns_server: DNSServer) -> None:
    port = free_port_on_both()
    v4 = Listener("127.0.0.1", port)
    try:
        # A long delay: only the refusal of ::1 can start the IPv4 attempt in time.
        transport, protocol, _ = await _dial_both_families(dns_server, port, delay=30)
        try:
            assert transport.get_extra_info("peername")[0] == "127.0.0.1"
        finally:
            await close(transport, protocol)
    finally:
        v4.close()


@needs_ipv6
async def test_ipv4_refused_ipv6_accepts(dns_server: DNSServer) -> None:
    port = free_port_on_both()
    v6 = Listener("::1", port)
    try:
        transport, protocol, _ = await _dial_both_families(dns_server, port)
        try:
            assert transport.get_extra_info("peername")[0] == "::1"
        finally:
            await close(transport, protocol)
    finally:
        v6.close()


@needs_ipv6
async def test_ipv6_hangs_ipv4_wins_after_the_delay(dns_server: DNSServer) -> None:
    port = free_port_on_both()
    v6 = Listener("::1", port, hang=True)
    v4 = Listener("127.0.0.1", port)
    try:
        # The attempt to ::1 never completes: only the delay starts IPv4.
        transport, protocol, target = await _dial_both_families(dns_server, port, delay=0.05)
        try:
            assert transport.get_extra_info("peername")[0] == "127.0.0.1"
            assert target.host == "dual.example.net"
        finally:
            await close(transport, protocol)
    finally:
        v6.close()
        v4.close()


@needs_ipv6
async def test_ipv4_hangs_ipv6_wins(dns_server: DNSServer) -> None:
    port = free_port_on_both()
    v6 = Listener("::1", port)
    v4 = Listener("127.0.0.1", port, hang=True)
    try:
        transport, protocol, _ = await _dial_both_families(dns_server, port, delay=0)
        try:
            assert transport.get_extra_info("peername")[0] == "::1"
        finally:
            await close(transport, protocol)
    finally:
        v6.close()
        v4.close()


async def test_happy_eyeballs_losers_are_closed() -> None:
    # With no delay, each further attempt starts while the ones before are in
    # flight; whichever connects first wins, and every other attempt must be
    # cancelled or, if it connected too, closed (the module's leak check fails
    # the test otherwise).
    live = Listener("127.0.0.1")
    try:
        winner = await xdial._happy_eyeballs(["127.0.0.1"] * 3, live.port, 0)
        try:
            assert winner.getpeername() == ("127.0.0.1", live.port)
        finally:
            winner.close()
    finally:
        live.close()


async def test_happy_eyeballs_every_address_failing() -> None:
    port = free_port_on_both()
    addresses = ["::1", "127.0.0.1"] if HAVE_IPV6 else ["127.0.0.1"]
    with pytest.raises(DialError, match="every address failed") as info:
        await xdial._happy_eyeballs(addresses, port, 30)
    assert [where for where, _ in info.value.errors] == [
        f"[{a}]:{port}" if ":" in a else f"{a}:{port}" for a in addresses
    ]
    assert all(isinstance(exc, ConnectionRefusedError) for _, exc in info.value.errors)


# -- the overall bound --------------------------------------------------------


async def test_dns_that_never_answers_ends_within_the_bound(dns_server: DNSServer) -> None:
    dns_server.delay(None)  # drop every question
    with pytest.raises(DialError) as info:
        await asyncio.wait_for(
            xdial.dial(DOMAIN, Recorder, resolver=dns_server.resolver(lifetime=30), timeout=0.6), 20
        )
    assert dns_server.asked(f"_xmpp-client._tcp.{DOMAIN}")
    error = info.value
    if isinstance(error, DialTimeoutError):  # the overall bound struck first
        assert isinstance(error, TimeoutError)
        assert "timed out after 0.6 s" in str(error)
    else:  # each DNS stage ran out of its share first: the error names the queries
        wheres = [where for where, _ in error.errors]
        assert wheres[:2] == [f"SRV _xmpps-client._tcp.{DOMAIN}", f"SRV _xmpp-client._tcp.{DOMAIN}"]
        assert all(
            isinstance(exc, (dns.exception.Timeout, TimeoutError)) for _, exc in error.errors[:2]
        )


async def test_slow_dns_is_waited_for_within_the_bound(dns_server: DNSServer) -> None:
    live = Listener("127.0.0.1")
    dns_server.add(f"_xmpp-client._tcp.{DOMAIN}", "SRV", f"0 0 {live.port} slow.example.net.")
    dns_server.add("slow.example.net", "A", "127.0.0.1")
    dns_server.delay(0.2, f"_xmpp-client._tcp.{DOMAIN}")
    try:
        transport, protocol, target = await xdial.dial(
            DOMAIN, Recorder, resolver=dns_server.resolver(), timeout=20
        )
        await close(transport, protocol)
        assert target.host == "slow.example.net"
    finally:
        live.close()


async def test_connect_that_never_completes_times_out(dns_server: DNSServer) -> None:
    hang = Listener("127.0.0.1", hang=True)
    try:
        with pytest.raises(DialTimeoutError, match="while connecting to 127.0.0.1"):
            await asyncio.wait_for(
                xdial.dial(DOMAIN, Recorder, host="127.0.0.1", port=hang.port, timeout=0.3), 20
            )
    finally:
        hang.close()
