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


# ---------------------------------------------------------------------------
# The embedded server

import logging  # noqa: E402
import types  # noqa: E402
from collections.abc import Awaitable, Callable, Mapping  # noqa: E402

from xmpp import xmlstream as _xmlstream  # noqa: E402
from xmpp.client import receive_client_session  # noqa: E402
from xmpp.component import ComponentRegistry as _ComponentRegistry  # noqa: E402
from xmpp.component import receive_session as _receive_component  # noqa: E402
from xmpp.jid import JIDError  # noqa: E402
from xmpp.sasl import MIN_ITERATIONS, MemoryCredentialStore  # noqa: E402
from xmpp.session import SessionClosedError  # noqa: E402
from xmpp.stanza import Condition as _StanzaCondition  # noqa: E402
from xmpp.stanza import ErrorType as _ErrorType  # noqa: E402
from xmpp.stanza import StanzaError as _StanzaError  # noqa: E402
from xmpp.stream import NS_CLIENT as _NS_CLIENT  # noqa: E402
from xmpp.stream import NS_COMPONENT as _NS_COMPONENT  # noqa: E402
from xmpp.stream import Condition as _StreamCondition  # noqa: E402
from xmpp.stream import StreamError as _StreamError  # noqa: E402
from xmpp.xmlstream import Attr as _Attr  # noqa: E402
from xmpp.xmlstream import Element as _Element  # noqa: E402
from xmpp.xmlstream import Name as _Name  # noqa: E402
from xmpp.xmlstream import StartElement as _StartElement  # noqa: E402
from xmpp.xmlstream import Token as _Token  # noqa: E402

__all__ += ["Server"]

_log = logging.getLogger("xmpp.testing.server")

_NS_PING = "urn:xmpp:ping"
_NS_DISCO_INFO = "http://jabber.org/protocol/disco#info"
_PING = _Name(_NS_PING, "ping")
_DISCO_INFO = _Name(_NS_DISCO_INFO, "query")
_FROM = _Name("", "from")
_TO = _Name("", "to")
_ID = _Name("", "id")
_TYPE = _Name("", "type")
_STANZAS = frozenset(("message", "presence", "iq"))
_STANZA_NAMES = {local: _Name(_NS_CLIENT, local) for local in _STANZAS}
_REQUESTS = frozenset(("get", "set"))


def _attr_value(text: str) -> bytes:
    """``text`` escaped for a double-quoted XML attribute, as UTF-8."""
    return (
        text.replace("&", "&amp;")
        .replace("<", "&lt;")
        .replace(">", "&gt;")
        .replace('"', "&quot;")
        .encode("utf-8")
    )


def _disco_info(category: str, type_: str, name: str) -> list[_Token]:
    """The tokens of a disco#info answer with one identity and our two features."""
    q = _StartElement(_DISCO_INFO)
    ident = _StartElement(
        _Name(_NS_DISCO_INFO, "identity"),
        (_Attr(_Name("", "category"), category), _Attr(_Name("", "type"), type_), _Attr(_Name("", "name"), name)),
    )
    toks: list[_Token] = [q, ident, ident.end()]
    for var in (_NS_DISCO_INFO, _NS_PING):
        f = _StartElement(_Name(_NS_DISCO_INFO, "feature"), (_Attr(_Name("", "var"), var),))
        toks += [f, f.end()]
    toks.append(q.end())
    return toks


class _Bound:
    """A bound client session and what routing needs of it, computed once.

    Stanzas for the session are gathered in ``pending`` and written with one
    call at the end of the event loop's iteration (one TLS record and one
    system call for a burst, not one per stanza).
    """

    __slots__ = ("session", "jid", "jid_s", "bare_s", "from_attr", "high", "pending", "pending_size", "scheduled")

    def __init__(self, session: Session, jid: JID) -> None:
        self.session = session
        self.jid = jid
        self.jid_s = str(jid)
        self.bare_s = str(jid.bare())
        # What is spliced into a stanza that came without a from.
        self.from_attr = b' from="' + _attr_value(self.jid_s) + b'"'
        try:
            self.high = int(session.transport.get_write_buffer_limits()[1])
        except (AttributeError, NotImplementedError):
            self.high = 64 * 1024
        self.pending: list[bytes] = []
        self.pending_size = 0
        self.scheduled = False

    def flush(self) -> None:
        """Write what is pending (dropped if the session can no longer be written)."""
        self.scheduled = False
        if not self.pending:
            return
        data = b"".join(self.pending)
        self.pending.clear()
        self.pending_size = 0
        with contextlib.suppress(SessionClosedError, OSError):
            # Through the session's own per-loop-turn coalescing: what is
            # written here always leaves before a later </stream:stream>.
            self.session._write_element(data, None)


class Server:
    """An embedded XMPP client-to-server service for tests and benchmarks.

    **This is not a production server.**  It keeps its accounts in memory,
    has no rosters, no subscriptions, no offline storage, no
    server-to-server links and no abuse protection beyond timeouts; it
    exists so that tests, examples and ``python -m xmpp bench`` have a real
    peer on a loopback port built only from this library's receiving side
    (:func:`xmpp.client.receive_client_session`).

    >>> # async with Server(users={"alice": "secret"}) as server:
    >>> #     session = await dial_client_session(
    >>> #         "alice@localhost", "secret", host=server.host, port=server.port,
    >>> #         tls_context=server.client_context())

    Each connection is negotiated with STARTTLS required (a
    :class:`TestCertificate` generated for ``domain`` and the listening
    address, or ``certificate``), SASL against a
    :class:`~xmpp.sasl.MemoryCredentialStore` of ``users`` (every mechanism
    of :mod:`xmpp.sasl`, ``-PLUS`` ones included, unless ``mechanisms``
    restricts them) and resource binding; then ``serve`` routes its stanzas:

    * The ``from`` of every stanza is stamped with the sender's full JID.
    * To a full JID: to that session.  To a bare JID: a message goes to every
      bound resource of the account, a presence to every one but the
      sender's, an IQ to another account gets ``service-unavailable``.
    * To the server's domain, or without ``to``: the server answers IQs
      itself: XEP-0199 ping, XEP-0030 disco#info (identity ``server/im``,
      features disco#info and ping), ``service-unavailable`` for any other
      get or set.  A presence without ``to`` goes to the sender's other
      resources.  An IQ to the sender's own bare JID is answered the same
      way, on behalf of the account.
    * To an address with nobody behind it: ``service-unavailable`` for IQs
      and messages (``remote-server-not-found`` for another domain), and
      presences are dropped (RFC 6120 section 10, RFC 6121 section 8).

    With ``direct_tls`` the listener speaks TLS from the first byte
    (XEP-0368, ALPN ``xmpp-client``) and STARTTLS is not offered.

    **Components (XEP-0114).**  ``components`` maps component domains to
    their secrets; when it is not empty, :meth:`start` opens a second
    listener on ``host`` (``component_port``, 0 picks a free one) where
    :func:`xmpp.component.receive_session` accepts them (plain TCP, one
    connection per domain: a second one gets ``conflict``).  Then:

    * Every stanza addressed to a component domain, or to any address at it
      (``user@gw.localhost/res``), goes to that component, whoever sent it.
    * A component's stanza must come ``from`` its domain or an address at
      it (checked by the domain part); any other ``from`` ends its stream
      with ``invalid-from``, and a stanza without ``from`` is given the
      component's domain.  It is routed as a client's is: to full or bare
      JIDs of users, to other components, or to the server, which answers
      pings and disco#info.
    * Stanzas to a configured component that is not connected get
      ``service-unavailable``.

    Forwarding between components and clients is as fast as between
    clients: the element is encoded once (the namespaces ``jabber:client``
    and ``jabber:component:accept`` are both the default namespace of their
    streams, so the bytes are the same) and only a missing ``from`` is
    spliced in.

    Binding a resource that is already bound replaces the old session: it
    gets the stream error ``conflict``.  A peer that does not finish
    negotiating within ``timeout`` seconds is dropped, as is a client that
    stops reading for that long while stanzas wait for it; failures of one
    connection never touch another.  Leaving the ``async with`` block closes
    every session (each bounded by ``close_timeout``) and the listener.
    """

    def __init__(
        self,
        users: Mapping[str, str] | None = None,
        *,
        domain: str = "localhost",
        host: str = "127.0.0.1",
        port: int = 0,
        timeout: float = 10.0,
        close_timeout: float = 2.0,
        certificate: TestCertificate | None = None,
        mechanisms: Sequence[str] | None = None,
        iterations: int = MIN_ITERATIONS,
        max_stanza_bytes: int = _xmlstream.DEFAULT_MAX_STANZA_BYTES,
        direct_tls: bool = False,
        components: Mapping[str, str] | None = None,
        component_port: int = 0,
    ) -> None:
        self._domain_jid = JID.parse(domain)
        if not self._domain_jid.is_domain:
            raise ValueError(f"a server domain has no localpart or resource: {domain!r}")
        #: The domain this server serves.
        self.domain = self._domain_jid.domain
        #: The address it listens on, and its port (known once started).
        self.host = host
        self.port = port
        #: Seconds a peer may take to negotiate (and a stalled reader may lag).
        self.timeout = timeout
        #: Seconds each session may take to close when the server stops.
        self.close_timeout = close_timeout
        #: The certificate it serves (generated unless one was given).
        self.certificate = certificate or TestCertificate([self.domain, host])
        #: Where the accounts live: add or remove users at any time.
        self.store = MemoryCredentialStore(users or {}, iterations=iterations)
        #: The last negotiation failures (at most 100), oldest first.
        self.failures: collections.deque[BaseException] = collections.deque(maxlen=100)
        #: True when connections are TLS from the first byte (XEP-0368)
        #: instead of negotiating STARTTLS.
        self.direct_tls = direct_tls
        comps: dict[str, str] = {}
        for name, secret in (components or {}).items():
            cj = JID.parse(name)
            if not cj.is_domain:
                raise ValueError(f"a component address is a bare domain, not {name!r}")
            if cj.domain == self.domain:
                raise ValueError(f"a component cannot have the server's domain {name!r}")
            comps[cj.domain] = secret
        #: The component domains served and their secrets (XEP-0114).
        self.components: Mapping[str, str] = types.MappingProxyType(comps)
        #: The port of the component listener (known once started; only
        #: opened when there are ``components``).
        self.component_port = component_port
        self._component_listener: asyncio.AbstractServer | None = None
        self._components: dict[str, _Bound] = {}
        self._registry = _ComponentRegistry()
        self._mechanisms = mechanisms
        self._max_stanza_bytes = max_stanza_bytes
        self._tls = self.certificate.server_context(alpn=("xmpp-client",) if direct_tls else ())
        self._listener: asyncio.AbstractServer | None = None
        self._closing = False
        self._bound: dict[JID, _Bound] = {}
        self._by_str: dict[str, _Bound] = {}
        self._by_bare: dict[str, dict[str, _Bound]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._negotiating: set[asyncio.Task[None]] = set()
        self._server_info = _disco_info("server", "im", "xmpp.testing.Server")
        self._account_info = _disco_info("account", "registered", "xmpp.testing.Server account")

    # ------------------------------------------------------------ public face

    @property
    def ca_file(self) -> str:
        """The path of the PEM of the CA that signed the server's certificate."""
        return str(self.certificate.ca_file)

    def client_context(self, *, maximum: Any = None) -> Any:
        """A client TLS context that trusts this server's CA and checks host
        names; ``maximum`` caps the TLS version (``ssl.TLSVersion``)."""
        return self.certificate.client_context(maximum=maximum)

    def add_user(self, name: str, password: str) -> None:
        """Create an account (or set a new password for an existing one)."""
        self.store.add_user(name, password)

    @property
    def sessions(self) -> Mapping[JID, Session]:
        """The bound sessions by full JID (a read-only snapshot)."""
        return types.MappingProxyType({j: b.session for j, b in self._bound.items()})

    @property
    def component_sessions(self) -> Mapping[str, Session]:
        """The connected component sessions by domain (a read-only snapshot)."""
        return types.MappingProxyType({d: b.session for d, b in self._components.items()})

    async def start(self) -> None:
        """Listen on ``host`` (``port`` 0 picks a free port and sets ``port``)."""
        if self._listener is not None:
            raise RuntimeError("the server is already started")
        loop = asyncio.get_running_loop()
        self._closing = False
        if self.direct_tls:
            self._listener = await loop.create_server(
                self._protocol,
                self.host,
                self.port,
                ssl=self._tls,
                ssl_handshake_timeout=self.timeout,
            )
        else:
            self._listener = await loop.create_server(self._protocol, self.host, self.port)
        sockets = self._listener.sockets
        if sockets:
            self.port = int(sockets[0].getsockname()[1])
        if self.components:
            self._registry = _ComponentRegistry()
            try:
                self._component_listener = await loop.create_server(
                    lambda: self._protocol(component=True), self.host, self.component_port
                )
            except BaseException:
                self._listener.close()
                self._listener = None
                raise
            csockets = self._component_listener.sockets
            if csockets:
                self.component_port = int(csockets[0].getsockname()[1])

    async def close(self) -> None:
        """Stop listening, close every session (bounded) and wait for every
        connection's task; nothing is left running."""
        self._closing = True
        listener, self._listener = self._listener, None
        clistener, self._component_listener = self._component_listener, None
        if listener is not None:
            listener.close()
        if clistener is not None:
            clistener.close()
        for t in list(self._negotiating):
            t.cancel()
        everyone = [*self._bound.values(), *self._components.values()]
        for b in everyone:
            b.flush()
        sessions = [b.session for b in everyone]
        if sessions:
            await asyncio.gather(
                *(s.close(timeout=self.close_timeout) for s in sessions), return_exceptions=True
            )
        tasks = list(self._tasks)
        if tasks:
            _done, pending = await asyncio.wait(tasks, timeout=self.close_timeout + 1.0)
            for t in pending:
                t.cancel()
            if pending:
                await asyncio.wait(pending, timeout=1.0)
        for lst in (listener, clistener):
            if lst is not None:
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(lst.wait_closed(), 1.0)

    async def __aenter__(self) -> Server:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # ------------------------------------------------------------ connections

    def _protocol(self, *, component: bool = False) -> asyncio.BaseProtocol:
        """A session protocol that also tells the server of its connection."""
        proto = protocol_factory()
        made = proto.connection_made
        accept = self._accept

        def connection_made(transport: asyncio.BaseTransport) -> None:
            made(transport)
            accept(transport, proto, component)

        setattr(proto, "connection_made", connection_made)  # noqa: B010
        return proto

    def _accept(
        self, transport: asyncio.BaseTransport, proto: asyncio.BaseProtocol, component: bool = False
    ) -> None:
        # Bytes that come before the session adopts the protocol are kept by
        # it and fed to the session when it is made.
        t: asyncio.Transport = transport  # type: ignore[assignment]
        if self._closing:
            t.abort()
            return
        loop = asyncio.get_running_loop()
        task = loop.create_task(self._component_connection(t) if component else self._connection(t))
        self._tasks.add(task)
        self._negotiating.add(task)
        task.add_done_callback(self._tasks.discard)
        task.add_done_callback(self._negotiating.discard)

    async def _connection(self, transport: asyncio.Transport) -> None:
        try:
            session = await receive_client_session(
                transport,
                self.domain,
                store=self.store,
                tls_context=None if self.direct_tls else self._tls,
                mechanisms=self._mechanisms,
                own_cert_der=self.certificate.cert_der,
                timeout=self.timeout,
                max_stanza_bytes=self._max_stanza_bytes,
            )
        except Exception as exc:  # one peer's failure is its own
            self.failures.append(exc)
            _log.debug("negotiation failed: %r", exc)
            return
        task = asyncio.current_task()
        if task is not None:
            self._negotiating.discard(task)
        if self._closing:
            await session.close(timeout=self.close_timeout)
            return
        bound = self._register(session)
        try:
            await session.serve(self._handler(bound))
        except (_StreamError, SessionClosedError, OSError) as exc:
            _log.debug("session %s ended: %r", bound.jid_s, exc)
        except Exception:
            _log.exception("session %s failed", bound.jid_s)
        finally:
            self._unregister(bound)
            bound.flush()
            if not session.closed:
                await session.close(timeout=self.close_timeout)

    async def _component_connection(self, transport: asyncio.Transport) -> None:
        try:
            session = await _receive_component(
                transport,
                secrets=self.components,
                registry=self._registry,
                timeout=self.timeout,
                max_stanza_bytes=self._max_stanza_bytes,
            )
        except Exception as exc:  # one peer's failure is its own
            self.failures.append(exc)
            _log.debug("component handshake failed: %r", exc)
            return
        task = asyncio.current_task()
        if task is not None:
            self._negotiating.discard(task)
        if self._closing:
            await session.close(timeout=self.close_timeout)
            return
        domain = session.remote_addr
        assert domain is not None
        c = _Bound(session, domain)
        self._components[c.jid_s] = c
        try:
            await session.serve(self._component_handler(c))
        except (_StreamError, SessionClosedError, OSError) as exc:
            _log.debug("component %s ended: %r", c.jid_s, exc)
        except Exception:
            _log.exception("component %s failed", c.jid_s)
        finally:
            self._unregister(c)
            c.flush()
            if not session.closed:
                await session.close(timeout=self.close_timeout)

    def _register(self, session: Session) -> _Bound:
        jid = session.remote_addr
        assert jid is not None and jid.resource is not None
        old = self._bound.get(jid)
        if old is not None:
            self._kick(old, _StreamError(_StreamCondition.CONFLICT, "replaced by a new session"))
        b = _Bound(session, jid)
        self._bound[jid] = b
        self._by_str[b.jid_s] = b
        self._by_bare.setdefault(b.bare_s, {})[b.jid_s] = b
        return b

    def _unregister(self, b: _Bound) -> None:
        if self._components.get(b.jid_s) is b:
            del self._components[b.jid_s]
            return
        if self._bound.get(b.jid) is b:
            del self._bound[b.jid]
        if self._by_str.get(b.jid_s) is b:
            del self._by_str[b.jid_s]
        res = self._by_bare.get(b.bare_s)
        if res is not None and res.get(b.jid_s) is b:
            del res[b.jid_s]
            if not res:
                del self._by_bare[b.bare_s]

    def _kick(self, b: _Bound, err: _StreamError) -> None:
        """End a session with a stream error (closing is bounded, in the background)."""
        self._unregister(b)
        b.flush()
        with contextlib.suppress(SessionClosedError, OSError):
            b.session.write_raw(err.to_bytes())
        self._spawn(b.session.close(timeout=self.close_timeout))

    def _spawn(self, coro: Awaitable[None]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # ---------------------------------------------------------------- routing

    def _handler(self, b: _Bound) -> Callable[[_Element, _StartElement], Awaitable[None] | None]:
        """The routing handler of one bound session (see the class documentation).

        The common case (a stanza to a bound full JID, or to a connected
        component) is synchronous: the element is encoded once by the
        engine, the sender's address spliced in when it came without one,
        and the bytes written to the recipient's transport.  Only a
        recipient whose write buffer is full makes the sender wait (that is
        the flow control of the whole path).
        """
        ns = _NS_CLIENT
        by_str = self._by_str
        comps = self._components
        domain = self.domain
        jid_s = b.jid_s
        from_attr = b.from_attr
        deliver = self._deliver
        slow = self._route
        to_self = self._to_self

        def handle(el: _Element, start: _StartElement) -> Awaitable[None] | None:
            name = start.name
            local = name.local
            if name.space != ns or local not in _STANZAS:
                raise _StreamError(
                    _StreamCondition.UNSUPPORTED_STANZA_TYPE, f"<{local}/> is not a stanza"
                )
            to = start.get("to")
            if to is None or to == domain:
                return to_self(b, el, start, local, to, account=False)
            target = by_str.get(to)
            if target is None:
                if comps:
                    target = comps.get(_domain_of(to))
                if target is None:
                    return slow(b, el, start, local, to)
            frm = start.get("from")
            data = el.encode(ns)
            if frm is None:
                n = len(local) + 1
                data = data[:n] + from_attr + data[n:]
            elif frm != jid_s:
                data = _restamp(el, start, jid_s)
            if local == "iq" and start.get("type") in _REQUESTS:
                _answered(b.session)
            return deliver(target, data)

        return handle

    def _component_handler(
        self, c: _Bound
    ) -> Callable[[_Element, _StartElement], Awaitable[None] | None]:
        """The routing handler of one component session.

        The ``from`` is checked, not rewritten: it must be the component's
        domain or an address at it (a stream error ``invalid-from``
        otherwise); a missing one is spliced in.  A stanza to a bound full
        JID or to a connected component is forwarded as encoded once, like
        a client's.
        """
        ns = _NS_COMPONENT
        by_str = self._by_str
        comps = self._components
        dom_s = c.jid_s
        dom = c.jid
        from_attr = c.from_attr
        deliver = self._deliver
        slow = self._route

        def handle(el: _Element, start: _StartElement) -> Awaitable[None] | None:
            name = start.name
            local = name.local
            if name.space != ns or local not in _STANZAS:
                raise _StreamError(
                    _StreamCondition.UNSUPPORTED_STANZA_TYPE, f"<{local}/> is not a stanza"
                )
            frm = start.get("from")
            stamp = frm is None
            if frm is None:
                frm = dom_s
            elif frm != dom_s and _domain_of(frm) != dom_s and not _is_at(frm, dom):
                raise _StreamError(
                    _StreamCondition.INVALID_FROM, f"{frm!r} is not an address at {dom_s}"
                )
            to = start.get("to")
            target = None
            if to is not None:
                target = by_str.get(to)
                if target is None and comps:
                    target = comps.get(_domain_of(to))
            if target is None:
                return slow(c, el, start, local, to, frm)
            data = el.encode(ns)
            if stamp:
                n = len(local) + 1
                data = data[:n] + from_attr + data[n:]
            if local == "iq" and start.get("type") in _REQUESTS:
                _answered(c.session)
            return deliver(target, data)

        return handle

    def _stamped(self, b: _Bound, el: _Element, start: _StartElement, local: str) -> bytes:
        frm = start.get("from")
        data = el.encode(_NS_CLIENT)
        if frm is None:
            n = len(local) + 1
            return data[:n] + b.from_attr + data[n:]
        if frm != b.jid_s:
            return _restamp(el, start, b.jid_s)
        return data

    def _payload(
        self, b: _Bound, el: _Element, start: _StartElement, local: str, component: bool
    ) -> bytes:
        """The bytes to forward: a client's stanza stamped with its full JID,
        a component's (``from`` already checked) with its domain if it had none."""
        if not component:
            return self._stamped(b, el, start, local)
        data = el.encode(_NS_COMPONENT)
        if start.get("from") is None:
            n = len(local) + 1
            data = data[:n] + b.from_attr + data[n:]
        return data

    def _deliver(self, target: _Bound, data: bytes) -> Awaitable[None] | None:
        """Queue ``data`` for ``target``; a coroutine to await when it is not reading."""
        target.pending.append(data)
        target.pending_size += len(data)
        # The session coalesces writes per loop turn itself; handing the bytes
        # over at once keeps them in order with whatever the session writes
        # next (its closing tag included).
        target.flush()
        if target.session.transport.get_write_buffer_size() > target.high:
            return self._wait_writable(target)
        return None

    async def _wait_writable(self, target: _Bound) -> None:
        try:
            await asyncio.wait_for(target.session.drain(), self.timeout)
        except asyncio.TimeoutError:
            _log.debug("dropping %s: it stopped reading", target.jid_s)
            self._unregister(target)
            target.session.transport.abort()
        except SessionClosedError:
            pass

    async def _deliver_all(self, targets: list[_Bound], data: bytes) -> None:
        for t in targets:
            w = self._deliver(t, data)
            if w is not None:
                await w

    def _fan_out(self, targets: list[_Bound], data: bytes) -> Awaitable[None] | None:
        for i, t in enumerate(targets):
            w = self._deliver(t, data)
            if w is not None:
                return _then(w, self._deliver_all(targets[i + 1 :], data))
        return None

    def _route(
        self,
        b: _Bound,
        el: _Element,
        start: _StartElement,
        local: str,
        to: str | None,
        frm: str | None = None,
    ) -> Awaitable[None] | None:
        """Everything but the fast path: bare JIDs, components that are not
        connected, unknown or malformed addresses.

        ``frm`` is ``None`` for a client's stanza; for a component's it is
        the (checked) ``from``, which errors and answers are addressed to.
        """
        component = frm is not None
        back = frm if frm is not None else b.jid_s
        if to is None or to == self.domain:
            return self._to_self(b, el, start, local, to, account=False, back=back)
        try:
            jid = JID.parse(to)
        except JIDError:
            return self._bounce(
                b, start, local, to, _ErrorType.MODIFY, _StanzaCondition.JID_MALFORMED, back=back
            )
        if jid.domain != self.domain:
            target = self._components.get(jid.domain)
            if target is None:
                cond = (
                    _StanzaCondition.SERVICE_UNAVAILABLE
                    if jid.domain in self.components
                    else _StanzaCondition.REMOTE_SERVER_NOT_FOUND
                )
                return self._bounce(b, start, local, to, _ErrorType.CANCEL, cond, back=back)
            if local == "iq" and start.get("type") in _REQUESTS:
                _answered(b.session)
            return self._deliver(target, self._payload(b, el, start, local, component))
        if jid.local is None:
            return self._to_self(b, el, start, local, to, account=False, back=back)
        unavailable = _StanzaCondition.SERVICE_UNAVAILABLE
        if jid.resource is not None:
            target = self._bound.get(jid)
            if target is None:
                return self._bounce(b, start, local, to, _ErrorType.CANCEL, unavailable, back=back)
            if local == "iq" and start.get("type") in _REQUESTS:
                _answered(b.session)
            return self._deliver(target, self._payload(b, el, start, local, component))
        resources = self._by_bare.get(str(jid))
        if local == "iq":
            if not component and str(jid) == b.bare_s:
                return self._to_self(b, el, start, local, to, account=True, back=back)
            return self._bounce(b, start, local, to, _ErrorType.CANCEL, unavailable, back=back)
        if local == "message":
            if not resources:
                return self._bounce(b, start, local, to, _ErrorType.CANCEL, unavailable, back=back)
            return self._fan_out(list(resources.values()), self._payload(b, el, start, local, component))
        others = [r for r in (resources or {}).values() if r is not b]
        if not others:
            return None
        return self._fan_out(others, self._payload(b, el, start, local, component))

    def _to_self(
        self,
        b: _Bound,
        el: _Element,
        start: _StartElement,
        local: str,
        to: str | None,
        *,
        account: bool,
        back: str | None = None,
    ) -> Awaitable[None] | None:
        """A stanza for the server (or, ``account``, for the sender's own
        account); answers go to ``back`` (default: the sender's full JID)."""
        typ = start.get("type")
        if local == "presence":
            if to is not None:
                return None
            res = self._by_bare.get(b.bare_s)
            others = [r for r in (res or {}).values() if r is not b]
            if not others:
                return None
            return self._fan_out(others, self._stamped(b, el, start, local))
        if local != "iq" or typ not in _REQUESTS:
            return None  # messages to the server, and IQ results or errors: nothing to do
        child = None
        for child in el.children():
            break
        payload: list[_Token] | None = None
        if child is not None and typ == "get":
            if child.name == _PING:
                payload = []
            elif child.name == _DISCO_INFO and child.get("node") is None:
                payload = self._account_info if account else self._server_info
        if payload is None:
            return self._bounce(
                b, start, local, to or self.domain, _ErrorType.CANCEL,
                _StanzaCondition.SERVICE_UNAVAILABLE, back=back,
            )
        reply = _StartElement(
            _STANZA_NAMES["iq"],
            (
                _Attr(_FROM, to or self.domain),
                _Attr(_TO, back or b.jid_s),
                _Attr(_ID, start.get("id", "")),
                _Attr(_TYPE, "result"),
            ),
        )
        _answered(b.session)
        return self._deliver(b, _encode([reply, *payload, reply.end()]))

    def _bounce(
        self,
        b: _Bound,
        start: _StartElement,
        local: str,
        to: str,
        etype: _ErrorType,
        condition: _StanzaCondition,
        *,
        back: str | None = None,
    ) -> Awaitable[None] | None:
        """Answer an undeliverable stanza with an error (RFC 6120 8.3.1), when
        one is due; it goes to ``back`` (default: the sender's full JID)."""
        typ = start.get("type")
        if local == "presence" or typ == "error":
            return None
        if local == "iq" and typ not in _REQUESTS:
            return None
        attrs = [_Attr(_FROM, to), _Attr(_TO, back or b.jid_s), _Attr(_TYPE, "error")]
        sid = start.get("id")
        if sid is not None:
            attrs.append(_Attr(_ID, sid))
        reply = _StartElement(_STANZA_NAMES[local], attrs)
        err = _StanzaError(etype, condition)
        if local == "iq":
            _answered(b.session)
        return self._deliver(b, _encode([reply, *err.tokens(_NS_CLIENT), reply.end()]))


def _domain_of(addr: str) -> str:
    """The domain part of a JID string as written (no parsing, no normalizing)."""
    slash = addr.find("/")
    if slash >= 0:
        addr = addr[:slash]
    return addr[addr.find("@") + 1 :]


def _is_at(addr: str, domain: JID) -> bool:
    """Whether ``addr`` parses as an address at ``domain`` (the slow check)."""
    try:
        return JID.parse(addr).domain == domain.domain
    except JIDError:
        return False


def _encode(tokens: list[_Token]) -> bytes:
    enc = _xmlstream.Encoder(ns=_NS_CLIENT)
    enc.encode(tokens)
    return enc.flush()


def _restamp(el: _Element, start: _StartElement, jid_s: str) -> bytes:
    """Encode ``el`` with its ``from`` replaced by ``jid_s`` (the slow path)."""
    attrs = [a for a in start.attrs if a.name != _FROM]
    attrs.append(_Attr(_FROM, jid_s))
    enc = _xmlstream.Encoder(ns=_NS_CLIENT)
    toks = iter(el)
    next(toks)
    enc.write_token(_StartElement(start.name, attrs))
    enc.encode(toks)
    return enc.flush()


def _answered(session: Session) -> None:
    """Tell ``serve`` that the IQ request it is handling was answered: the
    server routed it to its recipient, who answers it.

    ``Session.serve`` answers an unanswered IQ get or set with
    ``service-unavailable``; a router forwards requests instead of answering
    them.
    """
    session.mark_answered()


async def _then(first: Awaitable[None], second: Awaitable[None]) -> None:
    await first
    await second
