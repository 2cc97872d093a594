"""XMPP over WebSocket (RFC 7395): both sides, and endpoint discovery (XEP-0156).

A WebSocket session is an ordinary :class:`xmpp.session.Session`: the same
negotiator, features, ``serve``, multiplexer and ``send_iq`` run on it
unchanged.  What differs lives below the session, in
:class:`WebSocketTransport`, an :class:`asyncio.Transport` placed between
the TCP (or TLS) transport and the session's protocol:

* WebSocket itself (the HTTP upgrade, frames, masking, ping and close) is
  done by wsproto, a sans-IO library; this module only moves its bytes.
* On the way in, each text message is one XMPP frame.  ``<open/>`` in
  ``urn:ietf:params:xml:ns:xmpp-framing`` becomes a stream header that the
  engine understands, ``<close/>`` becomes ``</stream:stream>``, and any
  other message (a stanza, ``<stream:features/>``, a SASL element) goes to
  the engine as it is.
* On the way out, what the session writes is split into its top-level
  elements by a second :class:`xmpp.xmlstream.StreamParser`: the header
  becomes ``<open/>``, each element one text message with its namespace
  declared on itself (RFC 7395 section 3.3.3), ``</stream:stream>`` becomes
  ``<close/>``.  So the session's write coalescing needs no special case.

The initiating side is :func:`dial_session`; the receiving side is
:func:`receive_session` on a transport accepted with
:func:`server_protocol_factory`, or :func:`start_server`, a listener that
hands each negotiated session to a callback.  Without a URL,
:func:`dial_session` finds the endpoint through :func:`discover`
(``/.well-known/host-meta.json``, then ``host-meta``, over verified HTTPS).

There is no STARTTLS over WebSocket: ``wss://`` is TLS from the start and
the session is ``SECURE``.  A plain ``ws://`` URL is refused unless the
caller passes ``allow_plaintext=True``, which also treats the connection as
secure (for a server on loopback or behind a TLS-terminating proxy, as
Prosody's ``consider_websocket_secure`` does).

Every wait is bounded by a timeout, and every failure ends in an exception
and a closed connection: :class:`WebSocketHandshakeError` (an HTTP status
other than 101, or no ``xmpp`` subprotocol), :class:`WebSocketError` (the
peer broke the WebSocket protocol or vanished mid-message),
``ssl.SSLError`` for TLS, and what the session raises (``SASLError``,
``StreamError``, ``TimeoutError``).

>>> parse_host_meta_json(b'{"links": [{"rel": "urn:xmpp:alt-connections:websocket",'
...                      b' "href": "wss://example.org/ws"}]}')
['wss://example.org/ws']
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import logging
import re
import ssl
import urllib.parse
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar
from xml.sax.saxutils import quoteattr

import h11
from wsproto import ConnectionType, WSConnection
from wsproto.connection import ConnectionState
from wsproto.events import (
    AcceptConnection,
    BytesMessage,
    CloseConnection,
    Event,
    Ping,
    RejectConnection,
    RejectData,
    Request,
    TextMessage,
)
from wsproto.utilities import LocalProtocolError, RemoteProtocolError

from xmpp import xmlstream
from xmpp.bind import Binder, bind
from xmpp.jid import JID
from xmpp.negotiator import NS_TLS, StreamConfig, StreamFeature, new_negotiator
from xmpp.sasl import DEFAULT_MECHANISMS, CredentialStore, sasl, sasl_server
from xmpp.session import Negotiator, Session, SessionState, new_session, protocol_factory
from xmpp.session import receive_session as _receive_session
from xmpp.stream import NS_CLIENT, NS_STREAMS, StreamError
from xmpp.xmlstream import Element, EndElement, StartElement

__all__ = [
    "NS_FRAMING",
    "REL_WEBSOCKET",
    "SUBPROTOCOL",
    "WebSocketError",
    "WebSocketHandshakeError",
    "WebSocketTransport",
    "connect",
    "dial_session",
    "discover",
    "negotiator",
    "parse_host_meta_json",
    "parse_host_meta_xrd",
    "receive_session",
    "server_protocol_factory",
    "start_server",
]

log = logging.getLogger(__name__)
_T = TypeVar("_T")

#: The namespace of ``<open/>`` and ``<close/>`` (RFC 7395 section 3.3).
NS_FRAMING = "urn:ietf:params:xml:ns:xmpp-framing"
#: The WebSocket subprotocol of XMPP (RFC 7395 section 3.1).
SUBPROTOCOL = "xmpp"
#: The host-meta link relation of a WebSocket endpoint (XEP-0156).
REL_WEBSOCKET = "urn:xmpp:alt-connections:websocket"
#: The namespace of XRD documents (host-meta in XML).
NS_XRD = "http://docs.oasis-open.org/ns/xri/xrd-1.0"

#: Seconds :meth:`WebSocketTransport.close` waits for the closing handshake.
DEFAULT_CLOSE_TIMEOUT = 2.0
# The most host-meta bytes read, and the most HTTP redirects followed.
_HOST_META_MAX = 64 * 1024
_MAX_HTTP_REDIRECTS = 3
# Outgoing elements are split by a parser too; it must not refuse what the
# application chose to send.
_OUT_MAX = 2**31 - 1

_FRAME_HEAD = re.compile(r"\s*<(?:[A-Za-z_][\w.\-]*:)?(open|close)[\s/>]")
_XML_DECL = re.compile(r"\s*<\?xml[^>]*\?>")
_HEADER_WRITE = re.compile(rb"\s*<(?:\?xml|stream:stream[\s>])")


class WebSocketError(ConnectionError):
    """The WebSocket connection failed: a protocol error by the peer, a
    connection lost in the middle of a message, a non-text message, or a
    WebSocket closed without the XMPP ``<close/>``.

    ``code`` is the WebSocket close code when there is one (1006 for a
    connection lost without a close frame).
    """

    def __init__(self, message: str, *, code: int | None = None) -> None:
        super().__init__(message)
        self.code = code


class WebSocketHandshakeError(WebSocketError):
    """The HTTP upgrade did not give an XMPP WebSocket.

    ``status`` is the HTTP status the server answered (``None`` when it
    answered 101 but without selecting the ``xmpp`` subprotocol, or when
    the request itself was refused by our receiving side).
    """

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


# ---------------------------------------------------------------------------
# Frames <-> stream bytes


def _quote(value: str) -> str:
    return quoteattr(value, {"\n": "&#10;", "\r": "&#13;", "\t": "&#9;"})


def _attrs_text(pairs: Sequence[tuple[str, str]]) -> str:
    return "".join(f" {k}={_quote(v)}" for k, v in pairs)


def _stream_attrs(start: StartElement) -> list[tuple[str, str]]:
    """The header attributes worth carrying between ``<open/>`` and a stream header."""
    out: list[tuple[str, str]] = []
    for a in start.attrs:
        space, local = a.name.space, a.name.local
        if space == "" and local in ("to", "from", "id", "version"):
            out.append((local, a.value))
        elif local == "lang" and space in ("http://www.w3.org/XML/1998/namespace", "xml"):
            out.append(("xml:lang", a.value))
    return out


def _open_bytes(start: StartElement) -> bytes:
    """The ``<open/>`` frame that stands for the stream header ``start``."""
    return f"<open xmlns='{NS_FRAMING}'{_attrs_text(_stream_attrs(start))}/>".encode()


def _header_bytes(open_: StartElement, ns: str) -> bytes:
    """The stream header the engine reads for a received ``<open/>``."""
    attrs = _attrs_text(_stream_attrs(open_))
    return f"<stream:stream xmlns={_quote(ns)} xmlns:stream='{NS_STREAMS}'{attrs}>".encode()


def _close_bytes(see_other_uri: str | None = None) -> bytes:
    extra = "" if see_other_uri is None else f" see-other-uri={_quote(see_other_uri)}"
    return f"<close xmlns='{NS_FRAMING}'{extra}/>".encode()


def _frame_element(el: Element) -> bytes:
    """One top-level element as a namespace-complete frame.

    Elements of the stream namespace keep the ``stream:`` prefix, declared on
    themselves, as RFC 7395's examples show (some servers match the prefix).
    """
    if el.name.space != NS_STREAMS:
        return bytes(el)
    attrs = _attrs_text([(a.name.local, a.value) for a in el.attrs if not a.name.space])
    inner = b"".join(bytes(child) for child in el.children())
    local = el.name.local
    return (
        f"<stream:{local} xmlns:stream='{NS_STREAMS}'{attrs}>".encode()
        + inner
        + f"</stream:{local}>".encode()
    )


def _parse_frame(data: bytes) -> StartElement:
    """Parse an ``<open/>`` or ``<close/>`` frame (restricted XML, as any input)."""
    p = xmlstream.StreamParser(max_stanza_bytes=len(data) + 1024)
    events = p.feed(data)
    if not events or not isinstance(events[0], StartElement) or not p.closed:
        raise WebSocketError(f"malformed framing element: {data[:200]!r}")
    return events[0]


# ---------------------------------------------------------------------------
# The transport


class _Wire(asyncio.Protocol):
    """The protocol on the TCP/TLS transport: runs wsproto and feeds a :class:`WebSocketTransport`."""

    def __init__(
        self,
        *,
        client: bool,
        path: str | None = None,
        max_message_bytes: int,
        on_made: Callable[[asyncio.BaseTransport], None] | None = None,
    ) -> None:
        self.client = client
        self.on_made = on_made
        self.path = path
        self.ws = WSConnection(ConnectionType.CLIENT if client else ConnectionType.SERVER)
        self.raw: asyncio.Transport | None = None
        self.upper: WebSocketTransport | None = None
        self.max_message_bytes = max_message_bytes
        loop = asyncio.get_running_loop()
        #: Resolved with the upper transport once the upgrade is done.
        self.handshake: asyncio.Future[WebSocketTransport] = loop.create_future()
        self.lost = loop.create_future()
        self._reject_status: int | None = None
        self._reject_body = bytearray()
        self.request: Request | None = None

    # -- asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.raw = transport  # type: ignore[assignment]
        if self.on_made is not None:
            self.on_made(transport)

    def data_received(self, data: bytes) -> None:
        try:
            self.ws.receive_data(data)
            events = list(self.ws.events())
        except LocalProtocolError:
            return  # data after the close: nothing more is read
        except RemoteProtocolError as exc:
            self._fail(WebSocketError(f"the peer broke the WebSocket protocol: {exc}", code=1002))
            return
        for ev in events:
            self._event(ev)
            if self.raw is None or self.raw.is_closing() and self.upper is None:
                break
        if self.upper is not None:
            self.upper._deliver()

    def eof_received(self) -> bool | None:
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.lost.done():
            self.lost.set_result(None)
        err: BaseException | None = None
        state = self.ws.state
        if state not in (ConnectionState.CLOSED, ConnectionState.REJECTING):
            up = self.upper
            if up is not None and up._partial_frame:
                what = "in the middle of a WebSocket frame"
            elif up is not None and up._partial:
                what = "in the middle of a WebSocket message"
            else:
                what = "without a WebSocket close"
            err = WebSocketError(f"the connection was lost {what}", code=1006)
            if exc is not None:
                err.__cause__ = exc
        if not self.handshake.done():
            if self._reject_status is not None:
                self._handshake_rejected()
            else:
                self.handshake.set_exception(
                    WebSocketHandshakeError("the connection closed during the WebSocket handshake")
                    if err is None else err
                )
            self.handshake.exception()
        if self.upper is not None:
            self.upper._lost(err)

    def pause_writing(self) -> None:
        if self.upper is not None:
            self.upper._pause_writing()

    def resume_writing(self) -> None:
        if self.upper is not None:
            self.upper._resume_writing()

    # -- helpers
    def send(self, event: Event) -> None:
        data = self.ws.send(event)
        if data and self.raw is not None and not self.raw.is_closing():
            self.raw.write(data)

    def _fail(self, err: WebSocketError) -> None:
        if self.upper is not None:
            self.upper._error = self.upper._error or err
        if not self.handshake.done():
            self.handshake.set_exception(err)
            self.handshake.exception()
        if self.raw is not None:
            with contextlib.suppress(Exception):
                if self.ws.state is ConnectionState.OPEN:
                    self.send(CloseConnection(code=err.code or 1002, reason=str(err)[:100]))
            self.raw.close()

    def _handshake_rejected(self) -> None:
        body = bytes(self._reject_body[:200]).decode("utf-8", "replace").strip()
        msg = f"the server refused the WebSocket upgrade: HTTP {self._reject_status}"
        if body:
            msg += f" ({body})"
        if not self.handshake.done():
            self.handshake.set_exception(WebSocketHandshakeError(msg, status=self._reject_status))
            self.handshake.exception()

    def _event(self, ev: Event) -> None:
        up = self.upper
        if up is not None:
            up._event(ev)
            return
        if isinstance(ev, AcceptConnection):  # client side
            if ev.subprotocol != SUBPROTOCOL:
                self._fail(
                    WebSocketHandshakeError(
                        f"the server did not select the {SUBPROTOCOL!r} WebSocket subprotocol "
                        f"(it selected {ev.subprotocol!r})"
                    )
                )
                return
            self._open()
        elif isinstance(ev, RejectConnection):
            self._reject_status = ev.status_code
            if not ev.has_body:
                self._handshake_rejected()
                if self.raw is not None:
                    self.raw.close()
        elif isinstance(ev, RejectData):
            if len(self._reject_body) < 4096:
                self._reject_body += ev.data
            if ev.body_finished:
                self._handshake_rejected()
                if self.raw is not None:
                    self.raw.close()
        elif isinstance(ev, Request):  # server side
            self.request = ev
            path = ev.target.split("?", 1)[0]
            if self.path is not None and path != self.path:
                self._refuse(404, "no XMPP WebSocket endpoint here")
            elif SUBPROTOCOL not in ev.subprotocols:
                self._refuse(400, f"the {SUBPROTOCOL!r} WebSocket subprotocol is required (RFC 7395)")
            else:
                self.send(AcceptConnection(subprotocol=SUBPROTOCOL))
                self._open()

    def _refuse(self, status: int, text: str) -> None:
        body = text.encode()
        headers = [(b"content-type", b"text/plain; charset=utf-8"), (b"content-length", str(len(body)).encode())]
        with contextlib.suppress(LocalProtocolError):
            self.send(RejectConnection(status_code=status, headers=headers, has_body=True))
            self.send(RejectData(data=body, body_finished=True))
        if not self.handshake.done():
            self.handshake.set_exception(WebSocketHandshakeError(f"refused the client: {text}", status=status))
            self.handshake.exception()
        if self.raw is not None:
            self.raw.close()

    def _open(self) -> None:
        assert self.raw is not None
        up = WebSocketTransport(self, max_message_bytes=self.max_message_bytes)
        self.upper = up
        if not self.handshake.done():
            self.handshake.set_result(up)


class WebSocketTransport(asyncio.Transport):
    """An asyncio transport that carries an XMPP stream over one WebSocket.

    Made by :func:`connect` (initiating side) or by the handshake of
    :func:`server_protocol_factory`'s protocol (receiving side); a session
    is built on it with :func:`xmpp.session.new_session` or
    :func:`xmpp.session.receive_session` like on any other transport.

    Bytes written to it are the session's stream; it sends them as RFC 7395
    frames.  Extra information (``ssl_object``, ``peername``, ...) is the
    underlying connection's; ``get_extra_info("subprotocol")`` is ``"xmpp"``.
    """

    def __init__(self, wire: _Wire, *, max_message_bytes: int, stanza_ns: str = NS_CLIENT) -> None:
        super().__init__({"subprotocol": SUBPROTOCOL})
        assert wire.raw is not None
        self._wire = wire
        self._raw: asyncio.Transport = wire.raw
        self._loop = asyncio.get_running_loop()
        self._protocol: asyncio.BaseProtocol = protocol_factory()
        self._protocol.connection_made(self)
        self._ns = stanza_ns
        self._max = max_message_bytes
        self._out = xmlstream.StreamParser(max_stanza_bytes=_OUT_MAX)
        self._out_started = False
        self._pending: list[bytes] = []
        self._parts: list[str] = []
        self._size = 0
        self._partial = False
        self._partial_frame = False
        self._closing = False
        self._close_handle: asyncio.TimerHandle | None = None
        self._error: WebSocketError | None = None
        self._connection_lost_called = False
        self._writing_paused = False
        self._opened = False
        #: The ``see-other-uri`` of the peer's ``<close/>``, if it sent one:
        #: the endpoint to reconnect to (RFC 7395 section 3.6.1).
        self.see_other_uri: str | None = None
        #: The close code of the peer's WebSocket close frame, once received.
        self.close_code: int | None = None
        #: The close reason of the peer's WebSocket close frame, once received.
        self.close_reason: str | None = None

    # -- asyncio.Transport: identity
    def get_extra_info(self, name: str, default: Any = None) -> Any:
        """The underlying connection's extra info (``subprotocol`` is ours)."""
        if name == "subprotocol":
            return SUBPROTOCOL
        if name == "websocket_request":
            return self._wire.request
        return self._raw.get_extra_info(name, default)

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        """Set the protocol that receives the stream's bytes."""
        self._protocol = protocol

    def get_protocol(self) -> asyncio.BaseProtocol:
        """The protocol that receives the stream's bytes."""
        return self._protocol

    @property
    def error(self) -> WebSocketError | None:
        """What went wrong with the WebSocket, if anything did."""
        return self._error

    # -- reading
    def is_reading(self) -> bool:
        """Whether the underlying transport is reading."""
        return self._raw.is_reading()

    def pause_reading(self) -> None:
        """Pause the underlying transport."""
        with contextlib.suppress(Exception):
            self._raw.pause_reading()

    def resume_reading(self) -> None:
        """Resume the underlying transport."""
        with contextlib.suppress(Exception):
            self._raw.resume_reading()

    def _event(self, ev: Event) -> None:
        if isinstance(ev, TextMessage):
            if not ev.message_finished or self._parts:
                self._size += len(ev.data)
                if self._size > self._max:
                    self._protocol_error(1009, f"a WebSocket message longer than {self._max} bytes")
                    return
                self._parts.append(ev.data)
                self._partial = not ev.message_finished
                self._partial_frame = not ev.frame_finished
                if ev.message_finished:
                    text = "".join(self._parts)
                    self._parts.clear()
                    self._size = 0
                    self._message(text)
            else:
                if len(ev.data) > self._max:
                    self._protocol_error(1009, f"a WebSocket message longer than {self._max} bytes")
                    return
                self._message(ev.data)
        elif isinstance(ev, BytesMessage):
            self._protocol_error(1003, "a binary WebSocket message (RFC 7395 uses text messages only)")
        elif isinstance(ev, Ping):
            self._wire.send(ev.response())
        elif isinstance(ev, CloseConnection):
            self.close_code = ev.code
            self.close_reason = ev.reason
            if ev.code not in (1000, 1001) and self._error is None:
                self._error = WebSocketError(
                    f"the peer closed the WebSocket with code {ev.code}"
                    + (f": {ev.reason}" if ev.reason else ""),
                    code=ev.code,
                )
            if self._wire.ws.state is ConnectionState.REMOTE_CLOSING:
                self._wire.send(ev.response())
            self._deliver()
            self._raw.close()

    def _protocol_error(self, code: int, text: str) -> None:
        self._error = self._error or WebSocketError(f"the peer sent {text}", code=code)
        self._parts.clear()
        self._partial = False
        with contextlib.suppress(LocalProtocolError):
            if self._wire.ws.state is ConnectionState.OPEN:
                self._wire.send(CloseConnection(code=code, reason=text[:100]))
        self._deliver()
        self._raw.close()

    def _message(self, text: str) -> None:
        if self._error is not None:
            return
        m = _FRAME_HEAD.match(text)
        if m is None:
            if text.startswith("<?xml") or text[:1].isspace():
                text = _XML_DECL.sub("", text, count=1).lstrip()
            self._pending.append(text.encode())
            return
        try:
            start = _parse_frame(_XML_DECL.sub("", text, count=1).encode())
        except (StreamError, WebSocketError) as exc:
            self._protocol_error(1002, f"a malformed framing element ({exc})")
            return
        if start.name.space != NS_FRAMING:
            self._pending.append(text.encode())
            return
        if m.group(1) == "open":
            self._opened = True
            self._pending.append(_header_bytes(start, self._ns))
        else:
            self.see_other_uri = start.get("see-other-uri")
            if not self._session_has_header():
                self._pending.append(_header_bytes(start, self._ns))
            self._pending.append(b"</stream:stream>")

    def _session_has_header(self) -> bool:
        """Whether the engine behind the session is inside a stream (it has read a header)."""
        session = getattr(self._protocol, "session", None)
        parser = getattr(session, "_parser", None)
        if parser is None:
            return self._opened  # no session yet: our own record of the early bytes
        self._deliver()
        return parser.header is not None

    def _deliver(self) -> None:
        if self._pending:
            data = self._pending[0] if len(self._pending) == 1 else b"".join(self._pending)
            self._pending.clear()
            proto: Any = self._protocol
            proto.data_received(data)

    def _lost(self, err: BaseException | None) -> None:
        if self._close_handle is not None:
            self._close_handle.cancel()
            self._close_handle = None
        if self._connection_lost_called:
            return
        self._connection_lost_called = True
        self._deliver()
        if self._error is None and isinstance(err, WebSocketError):
            self._error = err
        self._protocol.connection_lost(self._error)

    # -- writing
    def write(self, data: bytes | bytearray | memoryview) -> None:
        """Send the session's stream bytes as RFC 7395 frames, one element per message."""
        if self._closing or self._wire.ws.state is not ConnectionState.OPEN:
            return
        b = bytes(data)
        if _HEADER_WRITE.match(b):
            self._out.reset()
            self._out_started = True
        elif not self._out_started:
            raise WebSocketError("the stream must begin with a header")
        try:
            events = self._out.feed(b)
        except StreamError as exc:
            raise WebSocketError(f"cannot frame what the session wrote: {exc}") from exc
        out: list[bytes] = []
        ws = self._wire.ws
        for ev in events:
            if type(ev) is Element:
                frame = _frame_element(ev)
            elif isinstance(ev, StartElement):
                frame = _open_bytes(ev)
            elif isinstance(ev, EndElement):
                frame = _close_bytes()
            else:  # pragma: no cover - the parser gives nothing else
                continue
            out.append(ws.send(TextMessage(data=frame.decode())))
        if out:
            self._raw.write(b"".join(out))

    def writelines(self, list_of_data: Any) -> None:
        """Write each chunk in turn."""
        for d in list_of_data:
            self.write(d)

    def can_write_eof(self) -> bool:
        """No half-close over WebSocket."""
        return False

    def get_write_buffer_size(self) -> int:
        """The underlying transport's write buffer size."""
        return self._raw.get_write_buffer_size()

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        """Set the underlying transport's write buffer limits."""
        self._raw.set_write_buffer_limits(high, low)

    def _pause_writing(self) -> None:
        self._writing_paused = True
        with contextlib.suppress(Exception):
            self._protocol.pause_writing()

    def _resume_writing(self) -> None:
        self._writing_paused = False
        with contextlib.suppress(Exception):
            self._protocol.resume_writing()

    # -- closing
    def is_closing(self) -> bool:
        """True once closing has begun here or below."""
        return self._closing or self._raw.is_closing()

    def close(self) -> None:
        """Close the WebSocket (a close frame, then the connection), bounded in time.

        The initiating side sends its close frame at once; the receiving side
        first gives the client a moment to close (RFC 7395 section 3.6).
        """
        if self._closing:
            return
        self._closing = True
        ws = self._wire.ws
        if ws.state is ConnectionState.OPEN:
            if self._wire.client:
                self._send_close()
            else:
                self._loop.call_later(DEFAULT_CLOSE_TIMEOUT / 2, self._send_close)
        if ws.state is ConnectionState.CLOSED or self._raw.is_closing():
            self._raw.close()
            return
        self._close_handle = self._loop.call_later(DEFAULT_CLOSE_TIMEOUT, self._raw.abort)

    def _send_close(self) -> None:
        with contextlib.suppress(LocalProtocolError):
            if self._wire.ws.state is ConnectionState.OPEN:
                self._wire.send(CloseConnection(code=1000))

    def _shutdown(self, code: int = 1000) -> None:
        """Send a close frame (if the WebSocket is open) and close the connection now."""
        self._closing = True
        with contextlib.suppress(LocalProtocolError):
            if self._wire.ws.state is ConnectionState.OPEN:
                self._wire.send(CloseConnection(code=code))
        self._raw.close()

    def abort(self) -> None:
        """Drop the connection without a closing handshake."""
        self._closing = True
        self._raw.abort()


# ---------------------------------------------------------------------------
# Endpoints


def _split_url(url: str) -> tuple[bool, str, int, str]:
    """``(secure, host, port, target)`` of a ``ws://`` or ``wss://`` URL."""
    parts = urllib.parse.urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in ("ws", "wss"):
        raise ValueError(f"not a WebSocket URL (ws:// or wss://): {url!r}")
    host = parts.hostname
    if not host:
        raise ValueError(f"a WebSocket URL needs a host: {url!r}")
    secure = scheme == "wss"
    port = parts.port or (443 if secure else 80)
    target = parts.path or "/"
    if parts.query:
        target += "?" + parts.query
    return secure, host, port, target


def _host_header(host: str, port: int, secure: bool) -> str:
    h = host
    with contextlib.suppress(ValueError):
        if ipaddress.ip_address(host).version == 6:
            h = f"[{host}]"
    if port != (443 if secure else 80):
        h += f":{port}"
    return h


def _default_context() -> ssl.SSLContext:
    return ssl.create_default_context(ssl.Purpose.SERVER_AUTH)


async def connect(
    url: str,
    *,
    tls_context: ssl.SSLContext | None = None,
    timeout: float = 30.0,
    headers: Sequence[tuple[str, str]] = (),
    max_message_bytes: int = xmlstream.DEFAULT_MAX_STANZA_BYTES,
) -> WebSocketTransport:
    """Open a WebSocket to ``url`` with the ``xmpp`` subprotocol and return its transport.

    ``wss://`` verifies the server's certificate against ``tls_context``
    (default: the system's trust store) for the URL's host name.  Raises
    :class:`WebSocketHandshakeError` when the server answers anything but
    a switch to the ``xmpp`` subprotocol, ``ssl.SSLError`` for TLS,
    ``OSError`` when nothing listens, ``TimeoutError`` after ``timeout``
    seconds; nothing is left open then.
    """
    secure, host, port, target = _split_url(url)
    loop = asyncio.get_running_loop()
    wire = _Wire(client=True, max_message_bytes=max_message_bytes)
    ctx: ssl.SSLContext | None = None
    if secure:
        ctx = tls_context if tls_context is not None else _default_context()
    raw: asyncio.Transport | None = None

    async def run() -> WebSocketTransport:
        nonlocal raw
        raw, _ = await loop.create_connection(
            lambda: wire,
            host,
            port,
            ssl=ctx,
            server_hostname=host if secure else None,
            ssl_handshake_timeout=timeout if secure else None,
        )
        wire.send(
            Request(
                host=_host_header(host, port, secure),
                target=target,
                subprotocols=[SUBPROTOCOL],
                extra_headers=[(k.encode(), v.encode()) for k, v in headers],
            )
        )
        return await asyncio.shield(wire.handshake)

    try:
        return await _bounded(run(), timeout, f"opening the WebSocket {url}")
    except BaseException:
        if raw is not None:
            raw.abort()
        raise


async def _bounded(coro: Awaitable[_T], timeout: float, what: str) -> _T:
    """Await ``coro`` for at most ``timeout`` seconds; a ``TimeoutError`` says what was late."""
    try:
        return await asyncio.wait_for(coro, timeout)
    except asyncio.TimeoutError:
        raise TimeoutError(f"{what} did not finish within {timeout:g} seconds") from None


def negotiator(config: StreamConfig, *, secure: bool) -> Negotiator:
    """The negotiator of an XMPP-over-WebSocket stream.

    It is the RFC 6120 negotiator (the framing is the transport's job)
    without STARTTLS; with ``secure`` the session counts as ``SECURE`` from
    the start (``wss://``, or plain ``ws://`` that the caller vouched for).
    """
    feats = tuple(f for f in config.features if f.name.space != NS_TLS)
    inner = new_negotiator(
        StreamConfig(
            lang=config.lang,
            features=feats,
            s2s=config.s2s,
            tee_in=config.tee_in,
            tee_out=config.tee_out,
            timeout=config.timeout,
        )
    )

    async def negotiate(session: Session, data: Any) -> tuple[SessionState, bool, Any]:
        if data is None and secure:
            session.state |= SessionState.SECURE
        return await inner(session, data)

    return negotiate


def _check_redirect(current: str, new: str, allow_plaintext: bool) -> str:
    try:
        secure_new = _split_url(new)[0]
    except ValueError as exc:
        raise WebSocketError(f"the server redirected to an unusable URL: {exc}") from None
    if _split_url(current)[0] and not secure_new:
        raise WebSocketError(f"the server redirected from wss:// to plain {new!r}: refused")
    if not secure_new and not allow_plaintext:
        raise WebSocketError(f"the server redirected to plain {new!r}: refused without allow_plaintext")
    return new


async def dial_session(
    url: str | None,
    jid: JID | str,
    password: str,
    *,
    tls_context: ssl.SSLContext | None = None,
    timeout: float = 30.0,
    features: Sequence[StreamFeature] | None = None,
    allow_plaintext: bool = False,
    mechanisms: Sequence[str] | None = None,
    resource: str | None = None,
    lang: str = "",
    tee_in: Callable[[bytes], object] | None = None,
    tee_out: Callable[[bytes], object] | None = None,
    headers: Sequence[tuple[str, str]] = (),
    max_redirects: int = 1,
    discovery_port: int = 443,
    max_stanza_bytes: int = xmlstream.DEFAULT_MAX_STANZA_BYTES,
) -> Session:
    """Log in over XMPP-over-WebSocket and return a ``READY`` session.

    ``url`` is the endpoint (``wss://`` or, with ``allow_plaintext=True``,
    ``ws://``); ``None`` finds it with :func:`discover` on the JID's domain
    (``discovery_port`` for the HTTPS fetch, ``tls_context`` verifies it).
    The features are SASL (``mechanisms``, default
    :data:`xmpp.sasl.DEFAULT_MECHANISMS`) and resource binding
    (``resource``, else the JID's); ``features`` replaces them (STARTTLS is
    left out: there is none over WebSocket).  ``allow_plaintext`` permits
    ``ws://`` and counts it as secure (PLAIN may be chosen): only for a
    server on loopback or behind a TLS-terminating proxy.

    A ``<close/>`` with ``see-other-uri`` during negotiation is followed, at
    most ``max_redirects`` times, never from ``wss://`` to ``ws://``.  The
    whole of it is bounded by ``timeout`` seconds.  (A ``<close/>`` with
    ``see-other-uri`` on a ``READY`` session ends its ``serve``; the URI is
    then ``session.transport.see_other_uri``.)  Errors:
    :class:`WebSocketHandshakeError`, :class:`WebSocketError`,
    ``ssl.SSLError``, :class:`xmpp.sasl.SASLError`,
    :class:`xmpp.stream.StreamError`, ``TimeoutError``; nothing is left open.
    """
    j = jid if isinstance(jid, JID) else JID.parse(jid)
    if features is None:
        if not j.local:
            raise ValueError(f"a client JID needs a localpart (the user name): {str(j)!r}")
        features = [
            sasl(j.local, password, mechanisms=DEFAULT_MECHANISMS if mechanisms is None else mechanisms, timeout=timeout),
            bind(j.resource if resource is None else resource, timeout=timeout),
        ]
    config = StreamConfig(lang=lang, features=tuple(features), tee_in=tee_in, tee_out=tee_out, timeout=timeout)

    async def run() -> Session:
        target = url
        if target is None:
            found = await discover(j.domain, tls_context=tls_context, port=discovery_port, timeout=timeout)
            usable = [u for u in found if u.lower().startswith("wss://")]
            if allow_plaintext:
                usable += [u for u in found if u.lower().startswith("ws://")]
            if not usable:
                raise WebSocketError(f"{j.domain} announces no usable WebSocket endpoint (host-meta: {found!r})")
            target = usable[0]
        hops = 0
        while True:
            secure = _split_url(target)[0]
            if not secure and not allow_plaintext:
                raise ValueError(
                    f"{target!r} is unencrypted: use wss://, or pass allow_plaintext=True "
                    "for a server on loopback or behind a TLS proxy"
                )
            ws = await connect(
                target, tls_context=tls_context, timeout=timeout, headers=headers,
                max_message_bytes=max_stanza_bytes,
            )
            try:
                return await new_session(
                    ws,
                    j.domain,
                    origin=j,
                    negotiator=negotiator(config, secure=True),
                    config=config,
                    max_stanza_bytes=max_stanza_bytes,
                )
            except BaseException as exc:
                ws._shutdown()
                other = ws.see_other_uri
                if other is not None and hops < max_redirects and not isinstance(exc, asyncio.CancelledError):
                    target = _check_redirect(target, other, allow_plaintext)
                    hops += 1
                    log.info("following see-other-uri to %s", target)
                    continue
                if other is not None:
                    raise WebSocketError(f"the server sent us to {other!r}; not followed (after {hops} redirects)") from exc
                if ws.error is not None and not isinstance(exc, (StreamError, asyncio.CancelledError)):
                    raise ws.error from exc
                raise

    return await _bounded(run(), timeout, f"logging in over WebSocket as {j}")


# ---------------------------------------------------------------------------
# The receiving side


def server_protocol_factory(
    *, path: str | None = None, max_message_bytes: int = xmlstream.DEFAULT_MAX_STANZA_BYTES
) -> asyncio.Protocol:
    """A protocol for ``loop.create_server`` that answers the WebSocket upgrade.

    ``path`` (for example ``"/xmpp-websocket"``) restricts the endpoint;
    requests elsewhere get HTTP 404, requests without the ``xmpp``
    subprotocol HTTP 400.  Pass the accepted transport to
    :func:`receive_session`.
    """
    return _Wire(client=False, path=path, max_message_bytes=max_message_bytes)


async def receive_session(
    transport: asyncio.BaseTransport,
    domain: JID | str,
    *,
    store: CredentialStore | None = None,
    features: Sequence[StreamFeature] | None = None,
    allow_plaintext: bool = False,
    binder: Binder | None = None,
    mechanisms: Sequence[str] | None = None,
    own_cert_der: bytes | None = None,
    timeout: float = 30.0,
    lang: str = "",
    tee_in: Callable[[bytes], object] | None = None,
    tee_out: Callable[[bytes], object] | None = None,
    max_stanza_bytes: int = xmlstream.DEFAULT_MAX_STANZA_BYTES,
) -> Session:
    """Accept an XMPP client over WebSocket on a transport from :func:`server_protocol_factory`.

    Waits for the upgrade (refusing a client without the ``xmpp``
    subprotocol), then negotiates as a server for ``domain``: SASL against
    ``store`` (``mechanisms`` limits it, ``own_cert_der`` enables
    ``tls-server-end-point``) and binding with ``binder``; ``features``
    replaces that list.  A TLS transport (``wss``) is secure; plain ``ws``
    is refused unless ``allow_plaintext`` (which then counts it as secure).
    Bounded by ``timeout``; on failure the connection is closed and the
    error raised.
    """
    wire = transport.get_protocol()
    if not isinstance(wire, _Wire) or wire.client:
        transport.abort()  # type: ignore[attr-defined]
        raise TypeError("the transport must come from server_protocol_factory()")
    secure = transport.get_extra_info("ssl_object") is not None or allow_plaintext
    if features is None:
        if store is None:
            raise TypeError("give a credential store (store=) or the features")
        features = [
            sasl_server(store, mechanisms=mechanisms, own_cert_der=own_cert_der, timeout=timeout),
            bind(binder=binder, timeout=timeout),
        ]
    config = StreamConfig(lang=lang, features=tuple(features), tee_in=tee_in, tee_out=tee_out, timeout=timeout)
    ws: WebSocketTransport | None = None

    async def run() -> Session:
        nonlocal ws
        ws = await asyncio.shield(wire.handshake)
        if not secure:
            raise WebSocketError("plain ws:// refused: pass allow_plaintext=True to accept it")
        return await _receive_session(
            ws, domain, negotiator=negotiator(config, secure=True), config=config,
            max_stanza_bytes=max_stanza_bytes,
        )

    try:
        return await _bounded(run(), timeout, "accepting an XMPP WebSocket client")
    except BaseException:
        if ws is not None:
            ws._shutdown()
        else:
            transport.abort()  # type: ignore[attr-defined]
        raise


async def start_server(
    on_session: Callable[[Session], Awaitable[None]],
    host: str,
    port: int,
    *,
    domain: JID | str,
    store: CredentialStore | None = None,
    ssl_context: ssl.SSLContext | None = None,
    path: str | None = "/xmpp-websocket",
    allow_plaintext: bool = False,
    **options: Any,
) -> asyncio.Server:
    """Listen for XMPP WebSocket clients and hand each ``READY`` session to ``on_session``.

    ``ssl_context`` makes it ``wss``; without it, plain ``ws`` needs
    ``allow_plaintext=True``.  ``options`` go to :func:`receive_session`.
    ``on_session`` runs in its own task (typically ``serve``); the session
    is closed when it returns.  A client that fails negotiation is logged
    and dropped.  Close the returned server to stop listening.
    """
    if ssl_context is None and not allow_plaintext:
        raise ValueError("a plain ws:// listener needs allow_plaintext=True")
    loop = asyncio.get_running_loop()
    tasks: set[asyncio.Task[None]] = set()

    async def handle(raw: asyncio.BaseTransport) -> None:
        try:
            session = await receive_session(
                raw, domain, store=store, allow_plaintext=allow_plaintext, **options
            )
        except Exception as exc:  # one bad client must not stop the listener
            log.info("WebSocket client refused: %s", exc)
            return
        try:
            async with session:
                await on_session(session)
        except Exception:  # the listener outlives one session's failure
            log.exception("WebSocket session handler failed")

    def made(raw: asyncio.BaseTransport) -> None:
        task = loop.create_task(handle(raw))
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    max_bytes = options.get("max_stanza_bytes", xmlstream.DEFAULT_MAX_STANZA_BYTES)

    def factory() -> asyncio.Protocol:
        return _Wire(client=False, path=path, max_message_bytes=max_bytes, on_made=made)

    return await loop.create_server(factory, host, port, ssl=ssl_context)


# ---------------------------------------------------------------------------
# Discovery (XEP-0156)


def parse_host_meta_json(data: bytes | str) -> list[str]:
    """The WebSocket endpoints in a JSON host-meta document (RFC 6415), in order.

    Links whose ``rel`` is :data:`REL_WEBSOCKET` and whose ``href`` is a
    ``ws://`` or ``wss://`` URL; anything malformed is skipped, and a
    document that is not JSON raises ``ValueError``.
    """
    doc = json.loads(data)
    links = doc.get("links") if isinstance(doc, dict) else None
    out: list[str] = []
    for link in links if isinstance(links, list) else ():
        if not isinstance(link, dict) or link.get("rel") != REL_WEBSOCKET:
            continue
        href = link.get("href")
        if isinstance(href, str) and href.lower().startswith(("ws://", "wss://")):
            out.append(href)
    return out


def parse_host_meta_xrd(data: bytes) -> list[str]:
    """The WebSocket endpoints in an XRD host-meta document, in order.

    Parsed by the library's restricted-XML engine (no DTD, no entities);
    ``<Link rel='urn:xmpp:alt-connections:websocket' href='wss://...'/>``
    children of ``<XRD/>`` count.  Malformed XML raises
    :class:`xmpp.stream.StreamError`; a wrong root raises ``ValueError``.
    """
    p = xmlstream.StreamParser(max_stanza_bytes=max(len(data), 1024))
    events = p.feed(data)
    if not events or not isinstance(events[0], StartElement):
        raise ValueError("an XRD document needs a root element")
    if not p.closed:
        raise ValueError("truncated XRD document")
    root = events[0]
    if root.name.local != "XRD" or root.name.space != NS_XRD:
        raise ValueError(f"not an XRD document: root {root.name!r}")
    out: list[str] = []
    for ev in events[1:]:
        if type(ev) is not Element or ev.name.local != "Link" or ev.name.space != NS_XRD:
            continue
        href = ev.get("href") or ""
        if ev.get("rel") == REL_WEBSOCKET and href.lower().startswith(("ws://", "wss://")):
            out.append(href)
    return out


async def _https_get(
    host: str, port: int, target: str, ctx: ssl.SSLContext, timeout: float
) -> tuple[int, dict[str, str], bytes]:
    """One verified HTTPS GET with h11: ``(status, headers, body)`` (body bounded)."""
    reader, writer = await asyncio.wait_for(
        asyncio.open_connection(host, port, ssl=ctx, server_hostname=host, ssl_handshake_timeout=timeout),
        timeout,
    )
    try:
        conn = h11.Connection(h11.CLIENT)
        writer.write(
            conn.send(
                h11.Request(
                    method="GET",
                    target=target,
                    headers=[
                        ("Host", _host_header(host, port, True)),
                        ("Accept", "application/json, application/xrd+xml;q=0.9, */*;q=0.1"),
                        ("Connection", "close"),
                        ("User-Agent", "xmpp-python"),
                    ],
                )
            )
            + conn.send(h11.EndOfMessage())
        )
        status = 0
        headers: dict[str, str] = {}
        body = bytearray()
        while True:
            ev = conn.next_event()
            if ev is h11.NEED_DATA:
                chunk = await asyncio.wait_for(reader.read(16384), timeout)
                conn.receive_data(chunk)
                continue
            if isinstance(ev, h11.Response):
                status = ev.status_code
                headers = {k.decode().lower(): v.decode("latin-1") for k, v in ev.headers}
            elif isinstance(ev, h11.Data):
                body += ev.data
                if len(body) > _HOST_META_MAX:
                    raise WebSocketError(f"host-meta from {host} is larger than {_HOST_META_MAX} bytes")
            elif isinstance(ev, (h11.EndOfMessage, h11.ConnectionClosed)):
                return status, headers, bytes(body)
    except h11.RemoteProtocolError as exc:
        raise WebSocketError(f"bad HTTP answer from {host}: {exc}") from None
    finally:
        writer.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(writer.wait_closed(), 1.0)


async def _fetch(url: str, ctx: ssl.SSLContext, timeout: float) -> tuple[int, bytes]:
    for _ in range(_MAX_HTTP_REDIRECTS + 1):
        parts = urllib.parse.urlsplit(url)
        if parts.scheme != "https" or not parts.hostname:
            raise WebSocketError(f"host-meta must come over https: {url!r}")
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        status, headers, body = await _https_get(parts.hostname, parts.port or 443, target, ctx, timeout)
        if status in (301, 302, 303, 307, 308) and "location" in headers:
            url = urllib.parse.urljoin(url, headers["location"])
            continue
        return status, body
    raise WebSocketError(f"too many HTTP redirects fetching host-meta ({url})")


async def discover(
    domain: str,
    *,
    tls_context: ssl.SSLContext | None = None,
    port: int = 443,
    timeout: float = 10.0,
) -> list[str]:
    """Find the WebSocket endpoints of ``domain`` through host-meta (XEP-0156).

    Fetches ``https://domain/.well-known/host-meta.json`` and, when that
    gives nothing, ``https://domain/.well-known/host-meta`` (XRD), over
    HTTPS verified with ``tls_context`` (default: the system's trust
    store); ``port`` is for tests.  Returns the endpoints in document order
    (possibly none).  Raises ``ssl.SSLError`` for a certificate that does not
    verify, :class:`WebSocketError` when neither document could be read, and
    ``TimeoutError`` after ``timeout`` seconds.
    """
    ctx = tls_context if tls_context is not None else _default_context()
    base = f"https://{_host_header(domain, port, True)}/.well-known/"

    async def run() -> list[str]:
        errors: list[str] = []
        readable = False
        for name, parse in (("host-meta.json", parse_host_meta_json), ("host-meta", parse_host_meta_xrd)):
            try:
                status, body = await _fetch(base + name, ctx, timeout)
            except ssl.SSLError:
                raise
            except (OSError, WebSocketError) as exc:
                errors.append(f"{name}: {exc}")
                continue
            if status != 200:
                errors.append(f"{name}: HTTP {status}")
                continue
            try:
                found: list[str] = parse(body)
            except (ValueError, StreamError) as exc:
                errors.append(f"{name}: {exc}")
                continue
            if found:
                return found
            readable = True
        if readable:
            return []
        raise WebSocketError(f"host-meta discovery for {domain} failed: " + "; ".join(errors))

    return await _bounded(run(), timeout, f"host-meta discovery for {domain}")
