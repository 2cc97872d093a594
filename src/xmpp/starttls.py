"""STARTTLS (RFC 6120 section 5) as a stream feature, for both sides.

>>> f = starttls()
>>> f.name.local, bool(f.prohibited)
('starttls', True)

The initiating side verifies the peer's certificate and host name by
default (``ssl.create_default_context()``); turning that off takes an
explicit :func:`insecure_client_context`, which warns every time it is
used.  The receiving side needs a server context holding its certificate.
"""

from __future__ import annotations

import logging
import ssl
import warnings
from typing import TYPE_CHECKING, Any

from xmpp.negotiator import NS_TLS, StreamFeature
from xmpp.xmlstream import Element, Name, StartElement, Token

if TYPE_CHECKING:
    from xmpp.session import Session

__all__ = [
    "NS_TLS",
    "InsecureTLSWarning",
    "TLSNegotiationError",
    "client_context",
    "insecure_client_context",
    "starttls",
]

log = logging.getLogger(__name__)

_STARTTLS = Name(NS_TLS, "starttls")
_PROCEED = Name(NS_TLS, "proceed")
_FAILURE = Name(NS_TLS, "failure")
_REQUIRED = Name(NS_TLS, "required")


class TLSNegotiationError(ConnectionError):
    """The peer refused STARTTLS (``<failure/>``) or answered something else."""


class InsecureTLSWarning(UserWarning):
    """A TLS context that does not verify the peer was put to use."""


def client_context(cafile: str | None = None) -> ssl.SSLContext:
    """A client context that verifies the certificate and host name
    (against ``cafile`` when given, else the system's trust store)."""
    ctx = ssl.create_default_context(cafile=cafile)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    return ctx


def insecure_client_context() -> ssl.SSLContext:
    """A client context that accepts any certificate: for tests against a
    server whose certificate cannot be checked.  Anyone on the path can read
    and change the stream; using it warns (:class:`InsecureTLSWarning`)."""
    warnings.warn(
        "TLS certificate verification is OFF: the stream can be read and altered by anyone on the path",
        InsecureTLSWarning,
        stacklevel=2,
    )
    log.warning("TLS certificate verification is OFF for this connection")
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def _element(name: Name) -> bytes:
    return b"<" + name.local.encode() + b" xmlns='" + NS_TLS.encode() + b"'/>"


def starttls(
    context: ssl.SSLContext | None = None,
    *,
    required: bool = True,
    timeout: float = 30.0,
) -> StreamFeature:
    """The STARTTLS feature.

    On the initiating side ``context`` defaults to :func:`client_context`
    (verification on); the peer's certificate is checked against the
    domain of the session's ``remote_addr``.  On the receiving side
    ``context`` is a server context and must be given; ``required`` marks the
    feature required in the list.  Either side sets ``SECURE`` and restarts
    the stream.  A refused handshake or certificate raises ``ssl.SSLError``
    (``ssl.SSLCertVerificationError`` for a certificate that does not
    verify), a ``<failure/>`` raises :class:`TLSNegotiationError`.
    """
    from xmpp.session import SessionState

    def list_(session: Session) -> tuple[bool, list[Token]]:
        start = StartElement(_STARTTLS)
        if required:
            req = StartElement(_REQUIRED)
            return True, [start, req, req.end(), start.end()]
        return False, [start, start.end()]

    def parse(session: Session, el: Element) -> tuple[bool, Any]:
        return el.find("required", NS_TLS) is not None, None

    async def negotiate(session: Session, data: Any) -> tuple[int, bool]:
        if session.state & SessionState.RECEIVED:
            if context is None:
                raise ValueError("the receiving side of STARTTLS needs a server SSLContext")
            session.reset_input()
            session.write_raw(_element(_PROCEED))
            await session.start_tls(context, server_side=True, timeout=timeout)
            return int(SessionState.SECURE), True
        ctx = context if context is not None else client_context()
        session.write_raw(_element(_STARTTLS))
        el = await session.read_element(timeout)
        if el.name == _FAILURE:
            raise TLSNegotiationError("the server refused STARTTLS (<failure/>)")
        if el.name != _PROCEED:
            raise TLSNegotiationError(f"expected <proceed/> after <starttls/>, got <{el.name.local}/>")
        remote = session.remote_addr
        host = remote.domain if remote is not None else None
        await session.start_tls(ctx, server_side=False, server_hostname=host, timeout=timeout)
        return int(SessionState.SECURE), True

    return StreamFeature(
        _STARTTLS,
        necessary=0,
        prohibited=int(SessionState.SECURE),
        list=list_,
        parse=parse,
        negotiate=negotiate,
    )
