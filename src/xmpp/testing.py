"""In-memory peers for fast tests (mellium's ``xmpptest``).

:func:`memory_pipe` makes two connected asyncio transports that never touch
the network; each delivers what is written to it to the other side's
protocol on the next loop iteration, honours ``pause_reading`` and applies
write-buffer flow control (``pause_writing`` above the high-water mark while
the peer does not read), and supports ``loop.start_tls``, so STARTTLS can be
tested in memory too.

:func:`client_server_pair` connects two real sessions over such a pipe, each
running its negotiator and features, with ``serve`` already running on both:

>>> import asyncio
>>> async def main():
...     async with client_server_pair() as (client, server):
...         return bool(client.state & SessionState.READY)
>>> asyncio.run(main())
True

Real loopback peers (Prosody, ejabberd, slixmpp and the embedded
``Server``) are what the integration tests use; these are for unit tests.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
from collections.abc import AsyncIterator, Sequence
from typing import Any

from xmpp.jid import JID
from xmpp.negotiator import StreamConfig, StreamFeature
from xmpp.session import Handler, Session, SessionState, new_session, protocol_factory, receive_session

__all__ = ["MemoryTransport", "TestCertificate", "client_server_pair", "memory_pipe"]


class MemoryTransport(asyncio.Transport):
    """One end of an in-memory byte pipe (see :func:`memory_pipe`)."""

    _start_tls_compatible = True

    def __init__(self, loop: asyncio.AbstractEventLoop, name: str) -> None:
        super().__init__({"peername": (name, 0), "sockname": (name, 0)})
        self._loop = loop
        self._protocol: asyncio.BaseProtocol | None = None
        self.peer: MemoryTransport | None = None
        self._buf: collections.deque[bytes] = collections.deque()
        self._size = 0
        self._high = 64 * 1024
        self._low = 16 * 1024
        self._writing_paused = False
        self._reading = True
        self._closing = False
        self._lost = False
        self._scheduled = False
        #: Bytes written through this end, in total.
        self.bytes_written = 0

    # -- protocol
    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        """Set the protocol that receives this end's data."""
        self._protocol = protocol

    def get_protocol(self) -> asyncio.BaseProtocol:
        """The protocol that receives this end's data."""
        assert self._protocol is not None
        return self._protocol

    # -- reading
    def is_reading(self) -> bool:
        """True unless reading is paused."""
        return self._reading and not self._lost

    def pause_reading(self) -> None:
        """Stop delivering data to this end's protocol (the peer's buffer grows)."""
        self._reading = False

    def resume_reading(self) -> None:
        """Deliver data again."""
        if not self._reading:
            self._reading = True
            if self.peer is not None:
                self.peer._schedule()

    # -- writing
    def write(self, data: bytes | bytearray | memoryview) -> None:
        """Queue bytes for the peer."""
        if self._closing or self._lost:
            return
        if not data:
            return
        b = bytes(data)
        self._buf.append(b)
        self._size += len(b)
        self.bytes_written += len(b)
        self._schedule()
        if self._size > self._high and not self._writing_paused:
            self._writing_paused = True
            proto = self._protocol
            if proto is not None:
                proto.pause_writing()

    def writelines(self, list_of_data: Any) -> None:
        """Queue several chunks."""
        for d in list_of_data:
            self.write(d)

    def can_write_eof(self) -> bool:
        """An in-memory pipe has no half-close."""
        return False

    def write_eof(self) -> None:
        """Not supported: close instead."""
        raise NotImplementedError

    def get_write_buffer_size(self) -> int:
        """Bytes written but not yet delivered to the peer."""
        return self._size

    def get_write_buffer_limits(self) -> tuple[int, int]:
        """``(low, high)`` water marks."""
        return self._low, self._high

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        """Set the water marks (defaults 64 KiB and a quarter of it)."""
        if high is None:
            high = 64 * 1024 if low is None else 4 * low
        if low is None:
            low = high // 4
        self._high, self._low = high, low

    def _schedule(self) -> None:
        if not self._scheduled and self._buf:
            self._scheduled = True
            self._loop.call_soon(self._deliver)

    def _deliver(self) -> None:
        self._scheduled = False
        peer = self.peer
        if peer is None or peer._lost:
            self._buf.clear()
            self._size = 0
            return
        if not peer._reading:
            return
        data = b"".join(self._buf)
        self._buf.clear()
        self._size = 0
        if self._writing_paused:
            self._writing_paused = False
            if self._protocol is not None:
                self._protocol.resume_writing()
        proto = peer._protocol
        if proto is not None:
            if isinstance(proto, asyncio.BufferedProtocol):
                view = memoryview(data)
                while view:
                    buf = memoryview(proto.get_buffer(len(view)))
                    n = min(len(buf), len(view))
                    if n == 0:
                        raise RuntimeError("get_buffer() returned an empty buffer")
                    buf[:n] = view[:n]
                    proto.buffer_updated(n)
                    view = view[n:]
            else:
                proto.data_received(data)  # type: ignore[attr-defined]
        if self._closing and not self._buf:
            self._finish_close()

    # -- closing
    def is_closing(self) -> bool:
        """True once close or abort was called."""
        return self._closing or self._lost

    def close(self) -> None:
        """Close after delivering what is buffered; both protocols see connection_lost."""
        if self._closing or self._lost:
            return
        self._closing = True
        if self._buf and self.peer is not None and self.peer._reading:
            self._schedule()
        else:
            self._loop.call_soon(self._finish_close)

    def abort(self) -> None:
        """Close at once, dropping what is buffered."""
        self._buf.clear()
        self._size = 0
        self._closing = True
        self._loop.call_soon(self._finish_close)

    def _force_close(self, exc: BaseException | None) -> None:
        # asyncio's SSL protocol calls this on a fatal TLS error.
        self.abort()

    def _finish_close(self) -> None:
        if self._lost:
            return
        self._lost = True
        if self._protocol is not None:
            self._protocol.connection_lost(None)
        peer = self.peer
        if peer is not None and not peer._lost:
            peer._closing = True
            peer._lost = True
            if peer._protocol is not None:
                peer._protocol.connection_lost(None)


def memory_pipe(
    a: asyncio.BaseProtocol | None = None,
    b: asyncio.BaseProtocol | None = None,
) -> tuple[MemoryTransport, MemoryTransport]:
    """Two connected in-memory transports.  Their protocols default to
    session protocols (which :func:`xmpp.session.new_session` adopts)."""
    loop = asyncio.get_running_loop()
    ta = MemoryTransport(loop, "memory-a")
    tb = MemoryTransport(loop, "memory-b")
    ta.peer, tb.peer = tb, ta
    pa = a if a is not None else protocol_factory()
    pb = b if b is not None else protocol_factory()
    ta.set_protocol(pa)
    tb.set_protocol(pb)
    pa.connection_made(ta)
    pb.connection_made(tb)
    return ta, tb


@contextlib.asynccontextmanager
async def client_server_pair(
    client_handler: Handler | Any = None,
    server_handler: Handler | Any = None,
    *,
    client_features: Sequence[StreamFeature] = (),
    server_features: Sequence[StreamFeature] = (),
    client_config: StreamConfig | None = None,
    server_config: StreamConfig | None = None,
    client_jid: JID | str = "test@example.net/client",
    server_domain: JID | str = "example.net",
    serve: bool = True,
) -> AsyncIterator[tuple[Session, Session]]:
    """Two negotiated sessions over an in-memory pipe, ``serve`` running on
    both (``None`` handlers are empty :class:`xmpp.mux.ServeMux` es).

    Leaving the block closes both sessions and checks that neither ``serve``
    failed: an exception from a serve task is raised here.
    """
    ct, st = memory_pipe()
    ccfg = client_config or StreamConfig(features=client_features)
    scfg = server_config or StreamConfig(features=server_features)
    server_task = asyncio.ensure_future(receive_session(st, server_domain, config=scfg))
    try:
        client = await new_session(ct, server_domain, origin=client_jid, config=ccfg)
        server = await server_task
    except BaseException:
        server_task.cancel()
        with contextlib.suppress(BaseException):
            await server_task
        ct.abort()
        st.abort()
        raise
    if server.remote_addr is None:
        server.remote_addr = JID.parse(client_jid) if isinstance(client_jid, str) else client_jid
    tasks: list[asyncio.Task[None]] = []
    if serve:
        tasks.append(asyncio.ensure_future(client.serve(client_handler)))
        tasks.append(asyncio.ensure_future(server.serve(server_handler)))
        await asyncio.sleep(0)
    try:
        yield client, server
    finally:
        await client.close(timeout=2.0)
        await server.close(timeout=2.0)
        if tasks:
            done, pending = await asyncio.wait(tasks, timeout=2.0)
            for t in pending:
                t.cancel()
            for t in done:
                exc = t.exception()
                if exc is not None:
                    raise exc




class TestCertificate:
    """A throw-away CA and a server certificate it signed, for tests and
    the embedded :class:`Server` — never for production.

    ``ca_pem``, ``cert_pem`` and ``key_pem`` are PEM bytes; ``ca_file`` a
    path to the CA (written to ``directory``, or a temporary directory);
    :meth:`server_context` and :meth:`client_context` are ready TLS contexts
    (the client one trusts only this CA and verifies the host name).
    """

    __test__ = False  # not a pytest test class

    def __init__(
        self,
        hostnames: Sequence[str] = ("localhost",),
        *,
        directory: str | None = None,
        key_type: str = "ec",
        hash_name: str = "sha256",
    ) -> None:
        import datetime
        import ipaddress
        import os
        import tempfile

        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec, rsa
        from cryptography.x509.oid import NameOID

        def new_key() -> Any:
            if key_type == "rsa":
                return rsa.generate_private_key(public_exponent=65537, key_size=2048)
            return ec.generate_private_key(ec.SECP256R1())

        algo: Any = {"sha256": hashes.SHA256(), "sha384": hashes.SHA384(), "sha512": hashes.SHA512(), "sha1": hashes.SHA1()}[hash_name]
        now = datetime.datetime.now(datetime.timezone.utc)
        ca_key = new_key()
        ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "xmpp test CA")])
        ca = (
            x509.CertificateBuilder()
            .subject_name(ca_name)
            .issuer_name(ca_name)
            .public_key(ca_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=2))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True, content_commitment=False, key_encipherment=False,
                    data_encipherment=False, key_agreement=False, key_cert_sign=True,
                    crl_sign=True, encipher_only=False, decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
            .sign(ca_key, algo)
        )
        key = new_key()
        sans: list[x509.GeneralName] = []
        for h in hostnames:
            try:
                sans.append(x509.IPAddress(ipaddress.ip_address(h)))
            except ValueError:
                sans.append(x509.DNSName(h))
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostnames[0])]))
            .issuer_name(ca_name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=2))
            .add_extension(x509.SubjectAlternativeName(sans), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
            )
            .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH, x509.oid.ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
            .sign(ca_key, algo)
        )
        self.hostnames = tuple(hostnames)
        self.ca_pem = ca.public_bytes(serialization.Encoding.PEM)
        self.cert_pem = cert.public_bytes(serialization.Encoding.PEM)
        self.cert_der = cert.public_bytes(serialization.Encoding.DER)
        self.key_pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        self.directory = directory or tempfile.mkdtemp(prefix="xmpp-cert-")
        self.ca_file = os.path.join(self.directory, "ca.pem")
        self.cert_file = os.path.join(self.directory, "cert.pem")
        self.key_file = os.path.join(self.directory, "key.pem")
        for path, data in ((self.ca_file, self.ca_pem), (self.cert_file, self.cert_pem + self.ca_pem), (self.key_file, self.key_pem)):
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)

    def server_context(
        self,
        *,
        minimum: Any = None,
        maximum: Any = None,
        alpn: Sequence[str] = (),
    ) -> Any:
        """A server TLS context with this certificate (TLS versions bounded when asked)."""
        import ssl

        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(self.cert_file, self.key_file)
        ctx.minimum_version = minimum or ssl.TLSVersion.TLSv1_2
        if maximum is not None:
            ctx.maximum_version = maximum
        if alpn:
            ctx.set_alpn_protocols(list(alpn))
        return ctx

    def client_context(self, *, maximum: Any = None) -> Any:
        """A client TLS context trusting only this CA, verifying host names."""
        import ssl

        ctx = ssl.create_default_context(cafile=self.ca_file)
        if maximum is not None:
            ctx.maximum_version = maximum
        return ctx
