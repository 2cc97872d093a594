"""One call from an address and a password to a ready session.

This module puts the pieces of the mid tier together the way most programs
want them:

* :func:`client_features` is the standard feature list of a client stream:
  STARTTLS, SASL and resource binding.
* :func:`dial_client_session` finds and connects to the server of a JID
  (:func:`xmpp.dial.dial`: DNS SRV, happy eyeballs, direct TLS), negotiates
  those features and returns a ``READY`` :class:`~xmpp.session.Session`.
* :func:`receive_client_session` is the other side of the same stream: a
  server's view of a client connection (STARTTLS offered and required, SASL
  against a :class:`~xmpp.sasl.CredentialStore`, binding).
* :func:`dial_server_session` opens a server-to-server stream and secures it
  with STARTTLS.  Server authentication (dialback, XEP-0220, or SASL
  EXTERNAL, XEP-0178) is **not implemented yet**: the stream it returns is
  encrypted, but the receiving server has not authenticated us, so real
  servers will not accept stanzas on it.

Every constructor bounds the whole of its work (dialing included) by its
``timeout``.  On any failure the transport is closed and the error raised as
it is: ``ssl.SSLError`` (``ssl.SSLCertVerificationError`` for a certificate
that does not verify), :class:`xmpp.sasl.SASLError`,
:class:`xmpp.stream.StreamError`, :class:`xmpp.stanza.StanzaError` (a
refused bind), :class:`xmpp.dial.DialError`, or ``TimeoutError``.

Example::

    async with await dial_client_session("alice@example.org", password) as session:
        await session.serve(mux)
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

import dns.asyncresolver

from xmpp import xmlstream
from xmpp.bind import Binder, bind
from xmpp.dial import dial
from xmpp.jid import JID
from xmpp.negotiator import StreamConfig, StreamFeature
from xmpp.sasl import DEFAULT_MECHANISMS, CredentialStore, sasl, sasl_server
from xmpp.session import Session, new_session, protocol_factory, receive_session
from xmpp.starttls import starttls

__all__ = [
    "client_features",
    "dial_client_session",
    "dial_server_session",
    "receive_client_session",
]

_T = TypeVar("_T")

#: A callback given a copy of the bytes of one direction of the stream.
Tee = Callable[[bytes], object]


def _as_jid(value: JID | str) -> JID:
    return value if isinstance(value, JID) else JID.parse(value)


def client_features(
    jid: JID | str,
    password: str,
    *,
    tls_context: ssl.SSLContext | None = None,
    mechanisms: Sequence[str] | None = None,
    resource: str | None = None,
    timeout: float = 30.0,
) -> list[StreamFeature]:
    """The features of a client stream: STARTTLS, SASL and resource binding.

    ``jid`` gives the user name (its localpart, which it must have) and, when
    ``resource`` is ``None``, the resource to ask for (a bare JID lets the
    server pick one).  ``tls_context`` verifies the server (default:
    :func:`xmpp.starttls.client_context`, certificate and host name checked
    against the system's trust store).  ``mechanisms`` is the SASL
    preference order (default: :data:`xmpp.sasl.DEFAULT_MECHANISMS`).
    ``timeout`` bounds each wait of each feature on the server.

    A connection that is already under TLS (direct TLS) skips STARTTLS by its
    ``prohibited`` bits, so the same list serves both kinds of connection.
    """
    j = _as_jid(jid)
    if not j.local:
        raise ValueError(f"a client JID needs a localpart (the user name): {str(j)!r}")
    return [
        starttls(tls_context, timeout=timeout),
        sasl(
            j.local,
            password,
            mechanisms=DEFAULT_MECHANISMS if mechanisms is None else mechanisms,
            timeout=timeout,
        ),
        bind(j.resource if resource is None else resource, timeout=timeout),
    ]


async def dial_client_session(
    jid: JID | str,
    password: str,
    *,
    features: Sequence[StreamFeature] | None = None,
    tls_context: ssl.SSLContext | None = None,
    host: str | None = None,
    port: int | None = None,
    direct_tls: bool | None = None,
    resolver: dns.asyncresolver.Resolver | None = None,
    timeout: float = 30.0,
    lang: str = "",
    tee_in: Tee | None = None,
    tee_out: Tee | None = None,
    mechanisms: Sequence[str] | None = None,
    max_stanza_bytes: int = xmlstream.DEFAULT_MAX_STANZA_BYTES,
) -> Session:
    """Connect to the server of ``jid``, log in with ``password`` and bind.

    Returns a ``READY`` session whose ``local_addr`` is the full JID the
    server bound (the resource of ``jid`` is asked for when it has one).
    Dialing follows :func:`xmpp.dial.dial`: ``host``/``port`` skip DNS,
    ``direct_tls`` picks the kind of connection, ``resolver`` is the DNS
    resolver.  ``tls_context`` serves both direct TLS and STARTTLS
    (default: verify the certificate and the host name against the system's
    trust store); the certificate must be valid for the JID's domain.

    ``features`` replaces the standard list (:func:`client_features` with
    ``mechanisms`` and ``tls_context``).  ``lang`` is the stream's
    ``xml:lang``; ``tee_in`` and ``tee_out`` receive a copy of every byte
    read and written, SASL payloads redacted (an XML console).

    The whole of it, dialing and negotiation, is bounded by ``timeout``
    seconds (``TimeoutError``).  On failure nothing is left open and the
    error is raised: ``ssl.SSLCertVerificationError`` for a certificate
    that does not verify, :class:`xmpp.sasl.SASLError` for a refused login,
    :class:`xmpp.dial.DialError` when no server could be reached,
    :class:`xmpp.stream.StreamError` when the server ended the stream.
    """
    j = _as_jid(jid)
    if features is None:
        features = client_features(
            j, password, tls_context=tls_context, mechanisms=mechanisms, timeout=timeout
        )
    config = StreamConfig(
        lang=lang, features=tuple(features), tee_in=tee_in, tee_out=tee_out, timeout=timeout
    )
    return await _dial_and_negotiate(
        j.domain,
        j,
        "xmpp-client",
        config,
        host=host,
        port=port,
        direct_tls=direct_tls,
        tls_context=tls_context,
        resolver=resolver,
        timeout=timeout,
        max_stanza_bytes=max_stanza_bytes,
    )


async def dial_server_session(
    location: JID | str,
    origin: JID | str,
    *,
    features: Sequence[StreamFeature] | None = None,
    tls_context: ssl.SSLContext | None = None,
    host: str | None = None,
    port: int | None = None,
    direct_tls: bool | None = None,
    resolver: dns.asyncresolver.Resolver | None = None,
    timeout: float = 30.0,
    lang: str = "",
    tee_in: Tee | None = None,
    tee_out: Tee | None = None,
    max_stanza_bytes: int = xmlstream.DEFAULT_MAX_STANZA_BYTES,
) -> Session:
    """Open a server-to-server stream from the domain ``origin`` to ``location``.

    Dials the ``xmpp-server`` service of ``location`` (SRV
    ``_xmpps-server``/``_xmpp-server``, else port 5269) and negotiates
    STARTTLS only (``features`` replaces that list).  The stream namespace is
    ``jabber:server`` and the session has the ``S2S`` bit.

    Server authentication is not implemented yet: neither dialback
    (XEP-0220) nor SASL EXTERNAL with certificates (XEP-0178) is offered,
    so the receiving server knows the stream is encrypted but not who sent
    it.  Use this for tests of the stream layer, not to federate.

    Bounded by ``timeout``; on failure the transport is closed and the
    error raised, as :func:`dial_client_session` does.
    """
    remote = _as_jid(location).domain_jid()
    local = _as_jid(origin).domain_jid()
    if features is None:
        features = [starttls(tls_context, timeout=timeout)]
    config = StreamConfig(
        lang=lang,
        features=tuple(features),
        s2s=True,
        tee_in=tee_in,
        tee_out=tee_out,
        timeout=timeout,
    )
    return await _dial_and_negotiate(
        remote.domain,
        local,
        "xmpp-server",
        config,
        host=host,
        port=port,
        direct_tls=direct_tls,
        tls_context=tls_context,
        resolver=resolver,
        timeout=timeout,
        max_stanza_bytes=max_stanza_bytes,
    )


async def _dial_and_negotiate(
    domain: str,
    origin: JID,
    service: str,
    config: StreamConfig,
    *,
    host: str | None,
    port: int | None,
    direct_tls: bool | None,
    tls_context: ssl.SSLContext | None,
    resolver: dns.asyncresolver.Resolver | None,
    timeout: float,
    max_stanza_bytes: int,
) -> Session:
    async def run() -> Session:
        transport, _proto, _target = await dial(
            domain,
            protocol_factory,
            service=service,
            host=host,
            port=port,
            direct_tls=direct_tls,
            tls_context=tls_context,
            resolver=resolver,
            timeout=timeout,
        )
        try:
            return await new_session(
                transport,
                domain,
                origin=origin,
                config=config,
                max_stanza_bytes=max_stanza_bytes,
            )
        except BaseException:
            transport.abort()
            raise

    return await _bounded(run(), timeout, f"connecting to {domain}")


async def _bounded(coro: Awaitable[_T], timeout: float, what: str) -> _T:
    """Await ``coro`` for at most ``timeout`` seconds (cancelled after that).

    ``asyncio.wait_for`` rather than ``asyncio.timeout`` keeps Python 3.10;
    its ``asyncio.TimeoutError`` becomes the builtin ``TimeoutError`` (the
    same class from Python 3.11 on) with a message that says what was late.
    """
    try:
        return await asyncio.wait_for(coro, timeout)
    except asyncio.TimeoutError:
        raise TimeoutError(f"{what} did not finish within {timeout:g} seconds") from None


async def receive_client_session(
    transport: asyncio.Transport,
    domain: JID | str,
    *,
    store: CredentialStore,
    tls_context: ssl.SSLContext | None,
    binder: Binder | None = None,
    mechanisms: Sequence[str] | None = None,
    own_cert_der: bytes | None = None,
    timeout: float = 30.0,
    lang: str = "",
    tee_in: Tee | None = None,
    tee_out: Tee | None = None,
    max_stanza_bytes: int = xmlstream.DEFAULT_MAX_STANZA_BYTES,
) -> Session:
    """Negotiate the server side of a client stream on an accepted ``transport``.

    ``domain`` is the domain this server serves (the client must ask for
    it).  The features are STARTTLS with ``tls_context`` (a server context
    holding the certificate; offered as required), SASL against ``store``
    (``mechanisms`` limits what is offered; PLAIN only under TLS) and
    resource binding with ``binder`` (default: honour the requested
    resource, else pick a random one).  ``own_cert_der``, the DER of the
    certificate in ``tls_context``, enables the ``tls-server-end-point``
    channel binding (SCRAM ``-PLUS`` on TLS 1.3); without it ``-PLUS`` is
    offered only where ``tls-unique`` exists (TLS 1.2).  ``tls_context`` may be ``None`` only
    for a transport that is already under TLS (direct TLS), which needs no
    STARTTLS.

    Returns a ``READY`` session whose ``remote_addr`` is the client's bound
    full JID.  The whole negotiation is bounded by ``timeout`` seconds, so
    a peer that stalls is dropped; on any failure the transport is closed
    and the error raised.
    """
    feats: list[StreamFeature] = []
    if tls_context is not None:
        feats.append(starttls(tls_context, required=True, timeout=timeout))
    elif transport.get_extra_info("ssl_object") is None:
        transport.abort()
        raise ValueError("a client stream needs TLS: give a tls_context or a TLS transport")
    feats.append(
        sasl_server(store, mechanisms=mechanisms, own_cert_der=own_cert_der, timeout=timeout)
    )
    feats.append(bind(binder=binder, timeout=timeout))
    config = StreamConfig(
        lang=lang, features=tuple(feats), tee_in=tee_in, tee_out=tee_out, timeout=timeout
    )
    try:
        return await _bounded(
            receive_session(transport, domain, config=config, max_stanza_bytes=max_stanza_bytes),
            timeout,
            "negotiating a client stream",
        )
    except BaseException:
        transport.abort()
        raise
