"""The test servers work as the later integration tests expect.

Only the standard library talks to them here (asyncio streams, ssl,
xml.etree's pull parser): the library's session layer must not be needed to
know that the fixtures are sound.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import secrets
import shutil
import ssl
import sys
import time
import typing
import xml.etree.ElementTree as ET
from collections.abc import Callable

import pytest

from . import servers

STREAM_NS = "http://etherx.jabber.org/streams"
TLS_NS = "urn:ietf:params:xml:ns:xmpp-tls"
SASL_NS = "urn:ietf:params:xml:ns:xmpp-sasl"
BIND_NS = "urn:ietf:params:xml:ns:xmpp-bind"
FRAMING_NS = "urn:ietf:params:xml:ns:xmpp-framing"
CLIENT_HEADER = (
    "<?xml version='1.0'?><stream:stream to='localhost' version='1.0' "
    "xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>"
)
# Every network wait in this module is bounded by this many seconds.
TIMEOUT = 10.0


def q(ns: str, local: str) -> str:
    """ElementTree's ``{namespace}local`` form."""
    return f"{{{ns}}}{local}"


class XmlStream:
    """A minimal XMPP stream over asyncio streams: write text, read whole top-level elements."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self._restart_parser()

    def _restart_parser(self) -> None:
        self._parser = ET.XMLPullParser(events=("start", "end"))  # type: ignore[var-annotated]
        self._depth = 0
        self._ready: list[tuple[str, ET.Element]] = []

    @classmethod
    async def connect(cls, host: str, port: int, **kwargs: object) -> XmlStream:
        """Open a TCP (or, with ``ssl=``, TLS) connection."""
        connecting = asyncio.open_connection(host, port, **kwargs)  # type: ignore[arg-type]
        reader, writer = await asyncio.wait_for(connecting, TIMEOUT)
        return cls(reader, writer)

    async def send(self, text: str) -> None:
        """Write ``text`` and drain."""
        self.writer.write(text.encode())
        await asyncio.wait_for(self.writer.drain(), TIMEOUT)

    async def _next(self) -> tuple[str, ET.Element]:
        deadline = time.monotonic() + TIMEOUT
        while not self._ready:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError("no complete element from the server in time")
            data = await asyncio.wait_for(self.reader.read(65536), remaining)
            if not data:
                raise ConnectionError("the server closed the connection")
            self._parser.feed(data)
            for pair in self._parser.read_events():
                event, elem = typing.cast("tuple[str, ET.Element]", pair)
                if event == "start":
                    self._depth += 1
                    if self._depth == 1:
                        self._ready.append(("header", elem))
                else:
                    self._depth -= 1
                    if self._depth == 1:
                        self._ready.append(("element", elem))
                    elif self._depth == 0:
                        self._ready.append(("end", elem))
        return self._ready.pop(0)

    async def open(self, header: str = CLIENT_HEADER) -> ET.Element:
        """Send a stream header (after a parser restart) and return the server's."""
        self._restart_parser()
        await self.send(header)
        kind, elem = await self._next()
        assert kind == "header", f"expected a stream header, got {kind} {elem.tag}"
        assert elem.tag == q(STREAM_NS, "stream"), elem.tag
        return elem

    async def element(self) -> ET.Element:
        """Return the next complete top-level element."""
        kind, elem = await self._next()
        assert kind == "element", f"expected an element, got {kind} ({ET.tostring(elem)!r})"
        return elem

    async def starttls(self, context: ssl.SSLContext, server_hostname: str = "localhost") -> None:
        """Upgrade the connection to TLS (after ``<proceed/>``)."""
        if sys.version_info >= (3, 11):
            await asyncio.wait_for(self.writer.start_tls(context, server_hostname=server_hostname), TIMEOUT)
            return
        # Python 3.10 has no StreamWriter.start_tls: swap the transport by hand.
        loop = asyncio.get_running_loop()
        transport = self.writer.transport
        protocol = transport.get_protocol()
        new = await asyncio.wait_for(
            loop.start_tls(transport, protocol, context, server_hostname=server_hostname), TIMEOUT
        )
        self.writer._transport = new  # type: ignore[attr-defined]
        protocol._transport = new  # type: ignore[attr-defined]

    async def close(self) -> None:
        """Close the stream and the connection without waiting long for the peer."""
        try:
            self.writer.write(b"</stream:stream>")
        except (OSError, RuntimeError):
            pass
        self.writer.close()
        try:
            await asyncio.wait_for(self.writer.wait_closed(), 0.5)
        except (OSError, asyncio.TimeoutError, ssl.SSLError):
            self.writer.transport.abort()


def mechanisms(features: ET.Element) -> set[str]:
    """The SASL mechanism names in a features element."""
    mechs = features.find(q(SASL_NS, "mechanisms"))
    return set() if mechs is None else {m.text or "" for m in mechs.findall(q(SASL_NS, "mechanism"))}


def without_plus(mechs: set[str]) -> set[str]:
    """The mechanisms that are not channel-binding (-PLUS) variants."""
    return {m for m in mechs if not m.endswith("-PLUS")}


async def secure_client(server: servers.XMPPServer, pki: servers.Pki) -> tuple[XmlStream, ET.Element]:
    """Connect to the c2s port, do STARTTLS and return the stream with the post-TLS features."""
    xs = await XmlStream.connect(server.host, server.c2s_port)
    await xs.open()
    features = await xs.element()
    assert features.find(q(TLS_NS, "starttls")) is not None
    await xs.send(f"<starttls xmlns='{TLS_NS}'/>")
    proceed = await xs.element()
    assert proceed.tag == q(TLS_NS, "proceed"), proceed.tag
    await xs.starttls(pki.client_context())
    await xs.open()
    return xs, await xs.element()


async def plain_auth(xs: XmlStream, user: str, password: str) -> ET.Element:
    """Authenticate with SASL PLAIN and return the server's ``success`` or ``failure``."""
    token = base64.b64encode(f"\0{user}\0{password}".encode()).decode()
    await xs.send(f"<auth xmlns='{SASL_NS}' mechanism='PLAIN'>{token}</auth>")
    return await xs.element()


# ---------------------------------------------------------------------------
# PKI (no server needed)


def memory_handshake(server_ctx: ssl.SSLContext, client_ctx: ssl.SSLContext, hostname: str) -> None:
    """Run a TLS handshake between two contexts in memory; raise what the client raises."""
    c_in, c_out, s_in, s_out = (ssl.MemoryBIO() for _ in range(4))
    client = client_ctx.wrap_bio(c_in, c_out, server_hostname=hostname)
    server = server_ctx.wrap_bio(s_in, s_out, server_side=True)
    done = {"client": False, "server": False}
    for _ in range(20):
        for name, obj, out, peer_in in (("client", client, c_out, s_in), ("server", server, s_out, c_in)):
            if not done[name]:
                try:
                    obj.do_handshake()
                    done[name] = True
                except ssl.SSLWantReadError:
                    pass
                except ssl.SSLError:
                    if name == "client":
                        raise
                    done[name] = True  # the server's side of a refusal: let the client report it
            peer_in.write(out.read())
        if done["client"]:
            return
    raise AssertionError("handshake did not finish")


@pytest.mark.parametrize("name", [*servers.SERVER_DNS_NAMES, *servers.SERVER_IPS])
def test_pki_server_certificate_names(pki: servers.Pki, name: str) -> None:
    """The server certificate verifies, strictly, for each name and address it is meant for."""
    ctx = pki.client_context()
    ctx.verify_flags |= ssl.VERIFY_X509_STRICT
    memory_handshake(pki.server_context(), ctx, name)


def test_pki_no_wildcard(pki: servers.Pki) -> None:
    """Names not listed (such as other subdomains of localhost) do not verify."""
    with pytest.raises(ssl.SSLCertVerificationError, match="mismatch"):
        memory_handshake(pki.server_context(), pki.client_context(), "other.localhost")


def test_pki_untrusted_ca(pki: servers.Pki) -> None:
    """The untrusted CA's localhost certificate fails verification against the good CA, and vice versa."""
    with pytest.raises(ssl.SSLCertVerificationError, match="certificate verify failed"):
        memory_handshake(pki.server_context(pki.untrusted_server), pki.client_context(), "localhost")
    with pytest.raises(ssl.SSLCertVerificationError):
        memory_handshake(pki.server_context(), pki.client_context(ca_file=pki.untrusted_ca_file), "localhost")
    trusting_other = pki.client_context(ca_file=pki.untrusted_ca_file)
    memory_handshake(pki.server_context(pki.untrusted_server), trusting_other, "localhost")


def test_pki_wrong_host(pki: servers.Pki) -> None:
    """The wrong.example certificate is trusted but does not match localhost."""
    memory_handshake(pki.server_context(pki.wrong_host), pki.client_context(), "wrong.example")
    with pytest.raises(ssl.SSLCertVerificationError, match="mismatch"):
        memory_handshake(pki.server_context(pki.wrong_host), pki.client_context(), "localhost")


# ---------------------------------------------------------------------------
# c2s


async def test_starttls_required_then_sasl_mechanisms(
    xmpp_server: servers.XMPPServer, pki: servers.Pki
) -> None:
    """STARTTLS is offered as required; after it, the expected SASL mechanisms are offered."""
    xs = await XmlStream.connect(xmpp_server.host, xmpp_server.c2s_port)
    try:
        header = await xs.open()
        assert header.get("from") == "localhost"
        assert header.get("id")
        features = await xs.element()
        assert features.tag == q(STREAM_NS, "features")
        starttls = features.find(q(TLS_NS, "starttls"))
        assert starttls is not None, ET.tostring(features)
        assert starttls.find(q(TLS_NS, "required")) is not None, ET.tostring(features)
        await xs.send(f"<starttls xmlns='{TLS_NS}'/>")
        assert (await xs.element()).tag == q(TLS_NS, "proceed")
        await xs.starttls(pki.client_context())
        sslobj = xs.writer.get_extra_info("ssl_object")
        assert sslobj is not None and sslobj.version() in ("TLSv1.2", "TLSv1.3")
        await xs.open()
        features = await xs.element()
        assert features.find(q(TLS_NS, "starttls")) is None
        offered = mechanisms(features)
        assert without_plus(offered) == xmpp_server.sasl_mechanisms, offered
    finally:
        await xs.close()


async def test_starttls_on_tls12_offers_plus(xmpp_server: servers.XMPPServer, pki: servers.Pki) -> None:
    """On TLS 1.2 both servers offer the -PLUS variant of each SCRAM mechanism (tls-unique)."""
    xs = await XmlStream.connect(xmpp_server.host, xmpp_server.c2s_port)
    try:
        await xs.open()
        await xs.element()
        await xs.send(f"<starttls xmlns='{TLS_NS}'/>")
        await xs.element()
        ctx = pki.client_context()
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2
        await xs.starttls(ctx)
        assert xs.writer.get_extra_info("ssl_object").version() == "TLSv1.2"
        await xs.open()
        offered = mechanisms(await xs.element())
        scram = {m for m in xmpp_server.sasl_mechanisms if m.startswith("SCRAM-")}
        assert {m + "-PLUS" for m in scram} <= offered, offered
    finally:
        await xs.close()


async def test_registered_users_log_in(xmpp_server: servers.XMPPServer, pki: servers.Pki) -> None:
    """alice, bob and carol exist with their passwords; a wrong password is not-authorized."""
    for user, password in servers.DEFAULT_USERS.items():
        assert xmpp_server.users[user] == password
        xs, _ = await secure_client(xmpp_server, pki)
        try:
            result = await plain_auth(xs, user, password)
            assert result.tag == q(SASL_NS, "success"), ET.tostring(result)
        finally:
            await xs.close()
    xs, _ = await secure_client(xmpp_server, pki)
    try:
        result = await plain_auth(xs, "alice", "not-alicepass")
        assert result.tag == q(SASL_NS, "failure"), ET.tostring(result)
        assert result.find(q(SASL_NS, "not-authorized")) is not None, ET.tostring(result)
    finally:
        await xs.close()


async def test_register_during_tests(xmpp_server: servers.XMPPServer, pki: servers.Pki) -> None:
    """``register`` creates an account that can log in at once, and records it in ``users``."""
    user = "reg" + secrets.token_hex(4)
    password = secrets.token_hex(8)
    xmpp_server.register(user, password)
    assert xmpp_server.users[user] == password
    xs, _ = await secure_client(xmpp_server, pki)
    try:
        result = await plain_auth(xs, user, password)
        assert result.tag == q(SASL_NS, "success"), ET.tostring(result)
    finally:
        await xs.close()


async def test_direct_tls_with_alpn(xmpp_server: servers.XMPPServer, pki: servers.Pki) -> None:
    """The direct TLS port (XEP-0368) completes a verified handshake offering ALPN xmpp-client."""
    ctx = pki.client_context()
    ctx.set_alpn_protocols(["xmpp-client"])
    xs = await XmlStream.connect(
        xmpp_server.host, xmpp_server.direct_tls_port, ssl=ctx, server_hostname="localhost"
    )
    try:
        sslobj = xs.writer.get_extra_info("ssl_object")
        assert sslobj is not None
        assert sslobj.selected_alpn_protocol() in ("xmpp-client", None)
        assert "localhost" in str(sslobj.getpeercert())
        await xs.open()
        features = await xs.element()
        assert features.find(q(TLS_NS, "starttls")) is None
        assert without_plus(mechanisms(features)) == xmpp_server.sasl_mechanisms
    finally:
        await xs.close()


async def test_untrusted_ca_is_refused(xmpp_server: servers.XMPPServer, pki: servers.Pki) -> None:
    """A client that trusts only the other CA fails the handshake with a verification error."""
    ctx = pki.client_context(ca_file=pki.untrusted_ca_file)
    with pytest.raises(ssl.SSLCertVerificationError):
        await XmlStream.connect(
            xmpp_server.host, xmpp_server.direct_tls_port, ssl=ctx, server_hostname="localhost"
        )


# ---------------------------------------------------------------------------
# Components


def component_header(domain: str) -> str:
    """A XEP-0114 stream header for ``domain``."""
    return (
        f"<stream:stream xmlns='jabber:component:accept' xmlns:stream='{STREAM_NS}' to='{domain}'>"
    )


async def component(server: servers.XMPPServer, domain: str, secret: str) -> tuple[XmlStream, ET.Element]:
    """Connect a component for ``domain`` and return the stream and the answer to its handshake."""
    xs = await XmlStream.connect(server.host, server.component_port)
    header = await xs.open(component_header(domain))
    stream_id = header.get("id")
    assert stream_id, ET.tostring(header)
    digest = hashlib.sha1((stream_id + secret).encode()).hexdigest()
    await xs.send(f"<handshake>{digest}</handshake>")
    return xs, await xs.element()


@pytest.mark.parametrize("which", ["component_domain", "balanced_domain"])
async def test_component_handshake(xmpp_server: servers.XMPPServer, which: str) -> None:
    """The component port answers with a stream id and accepts the configured secret."""
    domain = getattr(xmpp_server, which)
    xs, answer = await component(xmpp_server, domain, xmpp_server.component_secret)
    try:
        assert answer.tag == "{jabber:component:accept}handshake", ET.tostring(answer)
    finally:
        await xs.close()


async def test_component_wrong_secret(xmpp_server: servers.XMPPServer) -> None:
    """A wrong secret ends in a not-authorized stream error."""
    wrong = "wrong" + xmpp_server.component_secret
    xs, answer = await component(xmpp_server, xmpp_server.component_domain, wrong)
    try:
        assert answer.tag == q(STREAM_NS, "error"), ET.tostring(answer)
        assert answer.find("{urn:ietf:params:xml:ns:xmpp-streams}not-authorized") is not None
    finally:
        await xs.close()


async def bound_client(server: servers.XMPPServer, pki: servers.Pki, user: str) -> tuple[XmlStream, str]:
    """Log ``user`` in (STARTTLS, PLAIN, bind) and return the stream and the full JID."""
    xs, _ = await secure_client(server, pki)
    result = await plain_auth(xs, user, server.users[user])
    assert result.tag == q(SASL_NS, "success"), ET.tostring(result)
    await xs.open()
    features = await xs.element()
    assert features.find(q(BIND_NS, "bind")) is not None
    await xs.send(f"<iq type='set' id='bind1'><bind xmlns='{BIND_NS}'/></iq>")
    reply = await xs.element()
    jid = reply.findtext(f"{q(BIND_NS, 'bind')}/{q(BIND_NS, 'jid')}")
    assert reply.get("type") == "result" and jid, ET.tostring(reply)
    return xs, jid


async def test_stream_management_bind_and_ping(xmpp_server: servers.XMPPServer, pki: servers.Pki) -> None:
    """After authentication XEP-0198 is offered, bind works and the server answers a ping."""
    xs, _ = await secure_client(xmpp_server, pki)
    try:
        result = await plain_auth(xs, "bob", xmpp_server.users["bob"])
        assert result.tag == q(SASL_NS, "success"), ET.tostring(result)
        await xs.open()
        features = await xs.element()
        assert features.find("{urn:xmpp:sm:3}sm") is not None, ET.tostring(features)
        await xs.send(f"<iq type='set' id='b1'><bind xmlns='{BIND_NS}'>"
            "<resource>smoke</resource></bind></iq>")
        reply = await xs.element()
        jid = reply.findtext(f"{q(BIND_NS, 'bind')}/{q(BIND_NS, 'jid')}")
        assert jid is not None and jid.startswith("bob@localhost/"), ET.tostring(reply)
        await xs.send("<iq type='get' id='p1' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>")
        pong = await xs.element()
        assert pong.tag == "{jabber:client}iq" and pong.get("id") == "p1", ET.tostring(pong)
        assert pong.get("type") == "result", ET.tostring(pong)
    finally:
        await xs.close()


def test_ejabberd_ctl(ejabberd: servers.EjabberdServer) -> None:
    """ejabberdctl commands reach the node over its loopback distribution port."""
    status, output = ejabberd.ctl("registered_users", "localhost")
    assert status == 0, output
    assert {"alice", "bob", "carol"} <= set(output.split())


async def test_ejabberd_balances_component_domain(ejabberd: servers.EjabberdServer, pki: servers.Pki) -> None:
    """Two connections for balanced.localhost share the messages sent to it: none lost, none twice."""
    count = 60
    domain = ejabberd.balanced_domain
    comps = []
    try:
        for _ in range(2):
            xs, answer = await component(ejabberd, domain, ejabberd.component_secret)
            comps.append(xs)
            assert answer.tag == "{jabber:component:accept}handshake", ET.tostring(answer)
        client, _ = await bound_client(ejabberd, pki, "carol")
        comps.append(client)
        for i in range(count):
            await client.send(f"<message to='{domain}' id='m{i}' type='chat'><body>{i}</body></message>")
        received: list[list[str]] = [[], []]
        deadline = time.monotonic() + TIMEOUT

        async def collect(index: int) -> None:
            while sum(map(len, received)) < count and time.monotonic() < deadline:
                try:
                    elem = await asyncio.wait_for(comps[index].element(), 0.5)
                except asyncio.TimeoutError:
                    continue
                if elem.tag == "{jabber:component:accept}message":
                    received[index].append(elem.get("id") or "")

        await asyncio.gather(collect(0), collect(1))
        every = received[0] + received[1]
        assert sorted(every) == sorted(f"m{i}" for i in range(count))
        assert received[0] and received[1], f"not balanced: {len(received[0])} / {len(received[1])}"
    finally:
        for xs in comps:
            await xs.close()


# ---------------------------------------------------------------------------
# WebSocket


def ws_frame(text: str) -> bytes:
    """One masked, final text frame (RFC 6455 section 5.2) carrying ``text``."""
    payload = text.encode()
    mask = os.urandom(4)
    n = len(payload)
    if n < 126:
        head = bytes([0x81, 0x80 | n])
    else:
        head = bytes([0x81, 0x80 | 126]) + n.to_bytes(2, "big")
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


async def ws_read_frame(reader: asyncio.StreamReader) -> str:
    """Read one unmasked text frame from the server."""
    head = await asyncio.wait_for(reader.readexactly(2), TIMEOUT)
    assert head[0] & 0x0F == 0x1, f"not a text frame: {head!r}"
    n = head[1] & 0x7F
    if n == 126:
        n = int.from_bytes(await asyncio.wait_for(reader.readexactly(2), TIMEOUT), "big")
    elif n == 127:
        n = int.from_bytes(await asyncio.wait_for(reader.readexactly(8), TIMEOUT), "big")
    return (await asyncio.wait_for(reader.readexactly(n), TIMEOUT)).decode()


@pytest.mark.parametrize("secure", [False, True], ids=["ws", "wss"])
async def test_websocket_upgrade(xmpp_server: servers.XMPPServer, pki: servers.Pki, secure: bool) -> None:
    """The HTTP(S) port upgrades to WebSocket with subprotocol xmpp and answers an RFC 7395 open."""
    url = xmpp_server.wss_url if secure else xmpp_server.ws_url
    port = xmpp_server.https_port if secure else xmpp_server.http_port
    assert url.startswith("wss://" if secure else "ws://")
    path = url.split(f":{port}", 1)[1]
    key, accept = servers.websocket_key()
    tls = {"ssl": pki.client_context(), "server_hostname": "localhost"} if secure else {}
    reader, writer = await asyncio.wait_for(
        asyncio.open_connection(xmpp_server.host, port, **tls), TIMEOUT  # type: ignore[arg-type]
    )
    try:
        writer.write(
            (
                f"GET {path} HTTP/1.1\r\nHost: localhost:{port}\r\n"
                "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
                "Sec-WebSocket-Protocol: xmpp\r\nOrigin: http://localhost\r\n\r\n"
            ).encode()
        )
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), TIMEOUT)
        lines = head.decode("latin-1").split("\r\n")
        assert lines[0].split()[1] == "101", lines[0]
        headers = {k.strip().lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:] if ln)}
        assert headers.get("sec-websocket-protocol") == "xmpp", headers
        assert headers.get("sec-websocket-accept") == accept, headers
        writer.write(ws_frame(f"<open xmlns='{FRAMING_NS}' to='localhost' version='1.0'/>"))
        opened = ET.fromstring(await ws_read_frame(reader))
        assert opened.tag == q(FRAMING_NS, "open") and opened.get("from") == "localhost"
        features = ET.fromstring(await ws_read_frame(reader))
        assert features.tag == q(STREAM_NS, "features")
        # Loopback http counts as secure: authentication is offered at once.
        assert without_plus(mechanisms(features)) == xmpp_server.sasl_mechanisms
    finally:
        writer.close()


# ---------------------------------------------------------------------------
# Life cycle


@pytest.mark.parametrize("kind", ["prosody", "ejabberd"])
def test_stop_leaves_nothing_running(server_factory: Callable[..., servers.XMPPServer], kind: str) -> None:
    """After stop, the server's pid and every process it started are gone and its ports are closed."""
    server = server_factory(kind, users={"dave": "davepass"}, keep_directory=False)
    assert server.running and server.pid
    assert servers._pid_alive(server.pid)
    tree = servers._descendants(server.pid)
    ports = [server.c2s_port, server.direct_tls_port, server.component_port]
    ports += [server.http_port, server.https_port]
    directory = server.directory
    assert directory.is_dir() and server.log_path.is_file()
    server.stop()
    assert not server.running
    assert not servers._pid_alive(server.pid)
    assert servers._still_running(tree) == []
    assert servers._processes_in_group(server.pid) == []
    new_epmd = servers._pids_named("epmd") - server._epmd_before
    assert not [pid for pid in new_epmd if server._owned_by_service_user(pid)]
    assert not any(servers._port_open(server.host, p) for p in ports)
    assert not directory.exists()
    server.stop()  # a second stop does nothing


def test_missing_program_is_reported(pki: servers.Pki) -> None:
    """A server whose program is absent raises ServerNotInstalled before starting anything."""

    class Missing(servers.ProsodyServer):
        def _programs(self) -> list[str]:
            return ["xmpp-no-such-server-program"]

    server = Missing(pki)
    with pytest.raises(servers.ServerNotInstalled, match="xmpp-no-such-server-program"):
        server.start()
    assert server.pid == 0 and not server.running
    server.stop()


def test_marked_integration(request: pytest.FixtureRequest) -> None:
    """Tests in this directory carry the integration marker."""
    assert request.node.get_closest_marker("integration") is not None


def test_sweep_removes_only_orphaned_directories() -> None:
    """Directories whose owning process is gone are swept; live owners' and foreign ones stay."""
    import subprocess
    import tempfile
    from pathlib import Path

    dead = subprocess.Popen(["true"])
    dead.wait()
    base = Path(tempfile.gettempdir())
    orphan = Path(tempfile.mkdtemp(prefix="xmpp-sweeptest-", dir=base))
    live = Path(tempfile.mkdtemp(prefix="xmpp-sweeptest-", dir=base))
    foreign = Path(tempfile.mkdtemp(prefix="xmpp-sweeptest-", dir=base))
    try:
        (orphan / servers._OWNER_FILE).write_text(f"{dead.pid} 1\n")
        servers._mark_owned(live)
        removed = servers.sweep_stale_directories()
        assert orphan in removed and not orphan.exists()
        assert live.is_dir() and foreign.is_dir()
    finally:
        for d in (orphan, live, foreign):
            shutil.rmtree(d, ignore_errors=True)
