"""The XMPP session: one negotiated stream in each direction, served by one handler.

This is the mid tier of the library, after mellium.im/xmpp's ``Session``.  A
:class:`Session` is made by :func:`new_session` (the initiating side, a client
or a server dialing another server) or :func:`receive_session` (the
receiving side).  Either runs a :data:`Negotiator` (by default the RFC 6120
one from :func:`xmpp.negotiator.new_negotiator`) until the stream is
``READY``, then :meth:`Session.serve` reads the stream and calls one
handler once per top-level element.

The engine does the reading: the session's asyncio protocol feeds every
chunk to a sans-IO :class:`xmpp.xmlstream.StreamParser`, matches IQ replies
against the engine's :class:`xmpp.xmlstream.IQTable` right there (so a
handler may await :meth:`Session.send_iq` without deadlock), and queues the
other elements for ``serve``.  Nothing is buffered without bound: when the
queue of received elements is long, reading from the transport pauses until
``serve`` catches up, and when the transport's write buffer is above its
high-water mark, :meth:`Session.send` waits.

>>> SessionState.SECURE | SessionState.AUTHN
<SessionState.SECURE|AUTHN: 3>
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import contextvars
import enum
import heapq
import inspect
import logging
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any, Protocol, Union

from xmpp import stanza as _stanza
from xmpp import xmlstream
from xmpp.jid import JID
from xmpp.stream import NS_CLIENT, NS_STREAMS, Condition, Info, StreamError
from xmpp.xmlstream import Attr, CharData, Element, EndElement, Name, StartElement, Token

if TYPE_CHECKING:
    from xmpp.negotiator import StreamConfig

__all__ = [
    "DEFAULT_IQ_TIMEOUT",
    "Handler",
    "HandlerFunc",
    "Negotiator",
    "Session",
    "SessionClosedError",
    "SessionState",
    "current_session",
    "new_session",
    "protocol_factory",
    "receive_session",
    "redact_sasl",
]

log = logging.getLogger(__name__)

#: Seconds :meth:`Session.send_iq` waits for a reply unless told otherwise.
DEFAULT_IQ_TIMEOUT = 30.0
#: Seconds :meth:`Session.close` waits for the peer's ``</stream:stream>``.
DEFAULT_CLOSE_TIMEOUT = 5.0
# Received elements waiting for serve: reading pauses above this many.
_QUEUE_HIGH = 4096
# Stanzas buffered in one loop turn before they are handed to the transport:
# at most one TLS record of plaintext (2**14 bytes), so that each record holds
# whole top-level elements (see _write_element).
_COALESCE_MAX = 16 * 1024
_QUEUE_LOW = 1024

_IQ_REPLY_TYPES = frozenset(("result", "error"))
_SERVICE_UNAVAILABLE = _stanza.StanzaError(_stanza.ErrorType.CANCEL, _stanza.Condition.SERVICE_UNAVAILABLE)
_STANZA_NAMES = frozenset(("iq", "message", "presence"))


class SessionState(enum.IntFlag):
    """The negotiated properties of a session, as bits (mellium's SessionState).

    A :class:`xmpp.negotiator.StreamFeature` declares the bits it needs
    (``necessary``) and those that rule it out (``prohibited``); the
    negotiation loop picks features by this bit arithmetic alone.
    """

    #: The stream is encrypted (STARTTLS or direct TLS).
    SECURE = 1
    #: The peer (or we) authenticated (SASL, component handshake).
    AUTHN = 2
    #: Negotiation is over: stanzas may flow.
    READY = 4
    #: This side received the connection (it is the server of the stream).
    RECEIVED = 8
    #: ``</stream:stream>`` was sent: nothing more may be written.
    OUTPUT_STREAM_CLOSED = 16
    #: ``</stream:stream>`` was received (or the connection was lost).
    INPUT_STREAM_CLOSED = 32
    #: A server-to-server stream.
    S2S = 64


class SessionClosedError(ConnectionError):
    """The stream ended (closed, lost or failed) while something still waited on it.

    Pending :meth:`Session.send_iq` calls fail with this when the stream ends
    before their reply arrives; writing to a closed stream raises it too.
    """


class Handler(Protocol):
    """Anything with ``handle_xmpp(reader, start)``, sync or async.

    ``reader`` is the complete top-level :class:`xmpp.xmlstream.Element`
    (a token reader: iterating it yields every token from ``start`` to its
    end) and ``start`` its :class:`xmpp.xmlstream.StartElement`.
    """

    def handle_xmpp(self, reader: Element, start: StartElement) -> Awaitable[None] | None:
        """Handle one top-level element."""


class HandlerFunc:
    """Adapts a plain function ``f(reader, start)`` (sync or async) to a :class:`Handler`."""

    __slots__ = ("func",)

    def __init__(self, func: Callable[[Element, StartElement], Awaitable[None] | None]) -> None:
        self.func = func

    def handle_xmpp(self, reader: Element, start: StartElement) -> Awaitable[None] | None:
        """Call the wrapped function."""
        return self.func(reader, start)


#: A negotiator runs one round of stream negotiation on a session: it
#: returns the state bits gained and whether the stream must be restarted
#: (a new header in each direction: after STARTTLS or SASL).  Rounds repeat
#: until ``READY`` is among the bits.  ``data`` is whatever the previous
#: round returned as its third element (``None`` first).
Negotiator = Callable[["Session", Any], Awaitable[tuple[SessionState, bool, Any]]]

_SECURE = int(SessionState.SECURE)
_AUTHN = int(SessionState.AUTHN)
_READY = int(SessionState.READY)
_RECEIVED = int(SessionState.RECEIVED)
_OUTPUT_STREAM_CLOSED = int(SessionState.OUTPUT_STREAM_CLOSED)
_INPUT_STREAM_CLOSED = int(SessionState.INPUT_STREAM_CLOSED)

_current: contextvars.ContextVar[Session] = contextvars.ContextVar("xmpp_session")


def current_session() -> Session:
    """The session whose :meth:`Session.serve` is calling the running handler.

    ``LookupError`` outside a handler.  The multiplexer uses this to give
    typed handlers the session they reply on.
    """
    return _current.get()


class _Protocol(asyncio.Protocol):
    """The asyncio side of a session: feeds bytes to the engine, holds flow control."""

    def __init__(self) -> None:
        self.session: Session | None = None
        self.transport: asyncio.Transport | None = None
        self._early: list[bytes] = []
        self._lost = False
        self._lost_exc: BaseException | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        s = self.session
        if s is None:
            self._early.append(bytes(data))
            return
        s._on_data(data)

    def eof_received(self) -> bool | None:
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self._lost = True
        self._lost_exc = exc
        if self.session is not None:
            self.session._on_lost(exc)

    def pause_writing(self) -> None:
        if self.session is not None:
            self.session._paused = True

    def resume_writing(self) -> None:
        s = self.session
        if s is not None:
            s._paused = False
            for w in s._drain_waiters:
                if not w.done():
                    w.set_result(None)
            s._drain_waiters.clear()


def protocol_factory() -> asyncio.Protocol:
    """An asyncio protocol for ``loop.create_connection``/``create_server`` that a
    session can adopt: bytes arriving before the session is made are kept."""
    return _Protocol()


StanzaLike = Union[Element, "_stanza.Message", "_stanza.Presence", "_stanza.IQ", Iterable[Token]]


class Session:
    """One XMPP session over one transport.  Made by :func:`new_session` or
    :func:`receive_session`, never directly.

    Use it as an async context manager: leaving the block closes both stream
    directions (:meth:`close`).
    """

    def __init__(
        self,
        transport: asyncio.Transport,
        *,
        location: JID | None,
        origin: JID | None,
        received: bool,
        config: StreamConfig | None = None,
        max_stanza_bytes: int = xmlstream.DEFAULT_MAX_STANZA_BYTES,
    ) -> None:
        self._loop = asyncio.get_running_loop()
        proto = transport.get_protocol()
        if not isinstance(proto, _Protocol):
            proto = _Protocol()
            proto.transport = transport
            transport.set_protocol(proto)
        self._proto = proto
        self.transport = transport
        self._state = _RECEIVED if received else 0
        if transport.get_extra_info("ssl_object") is not None:
            self._state |= _SECURE  # direct TLS
        if config is not None and config.s2s:
            self._state |= int(SessionState.S2S)
        self.config = config
        #: The address of this side (a client's full JID once bound; a server's domain).
        self.local_addr: JID | None = origin
        #: The address of the other side.
        self.remote_addr: JID | None = location
        #: The stream header we received, and the one we sent.
        self.in_info: Info | None = None
        self.out_info: Info | None = None
        #: What the initiating side parsed of each feature the peer offered
        #: in the last ``<stream:features>``: feature name -> parse data (the
        #: feature's element itself for features not configured here).
        self.features: dict[Name, Any] = {}
        #: Names of the features negotiated so far.
        self.negotiated: set[Name] = set()
        self._parser = xmlstream.StreamParser(max_stanza_bytes=max_stanza_bytes)
        self._ns = NS_CLIENT
        self._encoder = xmlstream.Encoder(ns=self._ns)
        self._queue: collections.deque[Element] = collections.deque()
        self._wakeup: asyncio.Future[None] | None = None
        self._reading_paused = False
        self._iqs = xmlstream.IQTable()
        self._deadlines: list[tuple[float, int, str]] = []
        self._timed: dict[str, int] = {}
        self._deadline_seq = 0
        self._timer: asyncio.TimerHandle | None = None
        self._accept_cache: dict[str | None, frozenset[str]] = {}
        self._accept_key: tuple[JID | None, JID | None] | None = None
        self._serving = False
        # serve's handler, whether serve is parked waiting for input, and the
        # unfinished work (a coroutine) inline dispatch handed over to it.
        self._handle: Callable[[Element], Any] | None = None
        self._parked = False
        self._pending: Any = None
        self._paused = False
        self._drain_waiters: list[asyncio.Future[None]] = []
        self._out_lock = asyncio.Lock()
        self._wbuf: list[bytes] = []
        self._wsize = 0
        self._wscheduled = False
        self._in_header: asyncio.Future[StartElement] | None = None
        self._input_error: BaseException | None = None
        self._closed_in = asyncio.Event()
        self._reply_id: str | None = None
        self._replied = False
        self._redact = False
        self._tee_in = config.tee_in if config is not None else None
        self._tee_out = config.tee_out if config is not None else None
        # Stream management (XEP-0198, xmpp.sm): None unless a feature attached it.
        self._sm: Any = None
        proto.session = self
        early, proto._early = proto._early, []
        if early and self._in_header is None:
            # The peer's header came before the session (direct TLS, a fast peer).
            self._in_header = self._loop.create_future()
        for chunk in early:
            self._on_data(chunk)
        if proto._lost:
            self._on_lost(proto._lost_exc)  # type: ignore[arg-type]

    # ------------------------------------------------------------------ info

    def __repr__(self) -> str:
        return (
            f"<Session {self.local_addr!s} -> {self.remote_addr!s} "
            f"state={self.state!r}>"
        )

    @property
    def state(self) -> SessionState:
        """The session's negotiated properties (:class:`SessionState` bits)."""
        return SessionState(self._state)

    @state.setter
    def state(self, value: int) -> None:
        self._state = int(value)

    @property
    def sm(self) -> Any:
        """The stream management (XEP-0198) of this session: an
        :class:`xmpp.sm.StreamManager` (counters, unacknowledged stanzas), or
        ``None`` when stream management is not in use."""
        return self._sm

    @property
    def stanza_ns(self) -> str:
        """The stream's default namespace (``jabber:client`` and the like)."""
        return self._ns

    @property
    def closed(self) -> bool:
        """True once both directions of the stream are closed."""
        both = _INPUT_STREAM_CLOSED | _OUTPUT_STREAM_CLOSED
        return self._state & both == both

    # ------------------------------------------------------------ input side

    def _on_data(self, data: bytes) -> None:
        tee = self._tee_in
        if tee is not None and not self._redact:
            tee(bytes(data))
        try:
            events = self._parser.feed(data)
            err: StreamError | None = None
        except StreamError as exc:
            events = exc.events
            err = exc
        queue = self._queue
        iqs = self._iqs
        sm = self._sm
        for ev in events:
            if type(ev) is Element:
                if tee is not None and self._redact:
                    tee(_redacted(ev, self._ns))
                if sm is not None and sm.on_element(ev):
                    continue  # a stream management nonza (<r/>, <a/>, <enable/>)
                if iqs and ev.get("type") in _IQ_REPLY_TYPES:
                    waiter = iqs.match(ev)
                    if waiter is not None:
                        if not waiter.done():  # type: ignore[attr-defined]
                            waiter.set_result(ev)  # type: ignore[attr-defined]
                        continue
                queue.append(ev)
            elif isinstance(ev, StartElement):
                fut = self._in_header
                if fut is not None and not fut.done():
                    fut.set_result(ev)
                else:
                    self._input_failed(
                        StreamError(Condition.INVALID_XML, "unexpected stream header")
                    )
                    return
            else:  # EndElement: the peer closed its stream
                self._input_closed(None)
        if err is not None:
            self._input_failed(err)
            return
        if self._parked and queue and self._pending is None:
            self._dispatch_inline()
        if len(queue) > _QUEUE_HIGH and not self._reading_paused:
            self._reading_paused = True
            with contextlib.suppress(Exception):
                self.transport.pause_reading()
        if queue or self._pending is not None:
            self._wake()

    def _dispatch_inline(self) -> None:
        """Run handlers right here, in the protocol callback, while serve is
        idle: a burst of stanzas costs no extra turn of the event loop.  The
        first handler that needs to await (or fails) hands its unfinished work
        to serve, which runs it and the rest of the queue in order."""
        queue = self._queue
        step = self._step
        token = _current.set(self)
        try:
            while queue:
                c = step(queue.popleft())
                if c is not None:
                    self._pending = c
                    break
        finally:
            _current.reset(token)

    def _wake(self) -> None:
        w = self._wakeup
        if w is not None and not w.done():
            w.set_result(None)

    def _input_failed(self, err: BaseException) -> None:
        """Our peer sent something we cannot accept (a stream error to send), or vanished."""
        if self._input_error is None:
            self._input_error = err
        self._input_closed(err)

    def _input_closed(self, err: BaseException | None) -> None:
        if self._state & _INPUT_STREAM_CLOSED:
            return
        self._state |= _INPUT_STREAM_CLOSED
        self._closed_in.set()
        reason = err if err is not None else SessionClosedError("the peer closed the stream")
        for waiter in self._iqs.drain():
            if not waiter.done():  # type: ignore[attr-defined]
                exc = SessionClosedError(f"stream ended before the IQ reply arrived: {reason}")
                waiter.set_exception(exc)  # type: ignore[attr-defined]
        fut = self._in_header
        if fut is not None and not fut.done():
            fut.set_exception(
                err if err is not None else SessionClosedError("the peer closed the stream")
            )
            fut.exception()  # nobody may be waiting: mark it retrieved
        self._wake()

    def _on_lost(self, exc: Exception | None) -> None:
        self._state |= _OUTPUT_STREAM_CLOSED
        if self._sm is not None:
            self._sm.on_lost()
        for w in self._drain_waiters:
            if not w.done():
                w.set_exception(SessionClosedError("connection lost"))
        self._drain_waiters.clear()
        if not self._state & _INPUT_STREAM_CLOSED:
            e = SessionClosedError("connection lost before the peer closed its stream")
            if exc is not None:
                e.__cause__ = exc
            self._input_failed(e)

    def _resume_reading_if_drained(self) -> None:
        if self._reading_paused and len(self._queue) < _QUEUE_LOW:
            self._reading_paused = False
            with contextlib.suppress(Exception):
                self.transport.resume_reading()

    async def _wait_input(self, timeout: float | None) -> None:
        """Wait until an element is queued or the input stream ends."""
        if self._queue or self._pending is not None or self._state & _INPUT_STREAM_CLOSED:
            return
        w = self._loop.create_future()
        self._wakeup = w
        try:
            if timeout is None:
                await w
            else:
                await asyncio.wait_for(w, timeout)
        finally:
            self._wakeup = None

    async def read_element(self, timeout: float | None = 30.0) -> Element:
        """Read the next top-level element (used by features during negotiation).

        Raises the stream's input error, :class:`SessionClosedError` when the
        peer closed the stream, ``TimeoutError`` after ``timeout`` seconds, and
        :class:`xmpp.stream.StreamError` when the peer sent a stream error.
        """
        if not self._queue:
            await self._wait_input(timeout)
        if self._queue:
            el = self._queue.popleft()
            self._resume_reading_if_drained()
            name = el.name
            if name.local == "error" and name.space == NS_STREAMS:
                err = StreamError.from_element(el)
                err._from_peer = True  # type: ignore[attr-defined]
                self._input_closed(err)
                raise err
            return el
        if self._input_error is not None:
            raise self._input_error
        raise SessionClosedError("the peer closed the stream")

    async def read_header(self, timeout: float | None = 30.0) -> StartElement:
        """Wait for the peer's stream header (during negotiation) and return it."""
        fut = self._in_header
        if fut is None:
            fut = self._in_header = self._loop.create_future()
        try:
            if timeout is None:
                return await fut
            return await asyncio.wait_for(asyncio.shield(fut), timeout)
        finally:
            self._in_header = None

    def expect_header(self) -> None:
        """Get ready for the peer's next header (call before sending ours)."""
        if self._in_header is None:
            self._in_header = self._loop.create_future()

    def reset_input(self) -> None:
        """Restart the input stream (after STARTTLS or SASL): a new header comes next."""
        self._parser.reset()
        self._queue.clear()
        self._in_header = self._loop.create_future()

    async def start_tls(
        self,
        context: ssl.SSLContext,
        *,
        server_side: bool,
        server_hostname: str | None = None,
        timeout: float = 30.0,
    ) -> None:
        """Upgrade the transport to TLS in place (STARTTLS) and set ``SECURE``.

        The peer's certificate is verified as ``context`` says; failures raise
        ``ssl.SSLError`` (``ssl.SSLCertVerificationError`` for a certificate
        that does not verify) and the transport is closed.
        """
        try:
            new = await self._loop.start_tls(
                self.transport,
                self._proto,
                context,
                server_side=server_side,
                server_hostname=server_hostname,
                ssl_handshake_timeout=timeout,
            )
        except BaseException:
            self._abort()
            raise
        if new is None:
            raise SessionClosedError("the connection closed during the TLS handshake")
        self.transport = new
        self._proto.transport = new
        self._state |= _SECURE

    @property
    def tls(self) -> ssl.SSLObject | None:
        """The TLS object of the transport (``None`` without TLS): version,
        cipher, peer certificate, channel bindings."""
        return self.transport.get_extra_info("ssl_object")  # type: ignore[no-any-return]

    def set_stanza_ns(self, ns: str) -> None:
        """Set the default namespace of stanzas written on this stream."""
        if ns != self._ns:
            self._ns = ns
            self._encoder = xmlstream.Encoder(ns=ns)

    # ----------------------------------------------------------- output side

    def write_raw(self, data: bytes, *, shown: bytes | None = None) -> None:
        """Write bytes to the transport as they are (headers, negotiation).

        ``shown`` is what the XML console sees instead (redacted secrets).
        """
        if self._state & _OUTPUT_STREAM_CLOSED:
            raise SessionClosedError("the output stream is closed")
        tee = self._tee_out
        if tee is not None:
            tee(data if shown is None else shown)
        if self._wbuf:
            self._flush_writes()
        self.transport.write(data)

    async def drain(self) -> None:
        """Wait while the transport's write buffer is above its high-water mark."""
        if self._paused:
            if self._state & _OUTPUT_STREAM_CLOSED:
                raise SessionClosedError("the output stream is closed")
            w = self._loop.create_future()
            self._drain_waiters.append(w)
            await w

    def _encode_stanza(self, obj: StanzaLike) -> tuple[bytes, StartElement | None]:
        """Encode one top-level element, adding an id to a stanza without one."""
        enc = self._encoder
        ns = self._ns
        if isinstance(obj, (_stanza.Message, _stanza.Presence, _stanza.IQ)):
            if not obj.id:
                obj.id = _stanza.new_id()
            start = obj.start(ns)
            enc.write_token(start)
            enc.write_token(start.end())
            return enc.flush(), start
        if ns != NS_CLIENT:
            # Stanzas built for jabber:client (the default of the stanza
            # helpers, IQ.result() included) go out in this stream's namespace.
            obj = _to_stream_ns(obj, ns)
        if type(obj) is Element:
            start = obj.start
            if start.name.local in _STANZA_NAMES and start.get("id") is None:
                start = _with_id(start)
                toks = iter(obj)
                next(toks)
                enc.write_token(start)
                enc.encode(toks)
            else:
                enc.encode(obj)
            return enc.flush(), start
        toks = iter(obj)
        try:
            first = next(toks)
        except StopIteration:
            raise ValueError("nothing to send: the token reader is empty") from None
        if not isinstance(first, StartElement):
            raise ValueError(f"a top-level element must begin with a StartElement, not {first!r}")
        if first.name.local in _STANZA_NAMES and first.get("id") is None:
            first = _with_id(first)
        try:
            enc.write_token(first)
            enc.encode(toks)
            data = enc.flush()
        except ValueError:
            self._encoder = xmlstream.Encoder(ns=ns)
            raise
        return data, first

    def mark_answered(self) -> None:
        """Tell :meth:`serve` that the IQ request being handled is taken care of
        (forwarded by a router, or answered later by another task), so that no
        automatic ``service-unavailable`` reply is sent for it."""
        if self._reply_id is not None:
            self._replied = True

    def _note_reply(self, start: StartElement | None) -> None:
        if (
            self._reply_id is not None
            and start is not None
            and start.name.local == "iq"
            and start.get("id") == self._reply_id
            and start.get("type") in _IQ_REPLY_TYPES
        ):
            self._replied = True

    async def send(self, obj: StanzaLike) -> None:
        """Send one top-level element: an :class:`~xmpp.xmlstream.Element`, a
        stanza dataclass, or a token reader of one whole element.

        A message, presence or IQ without an ``id`` gets one.  Waits while
        the transport's write buffer is full (backpressure) and while another
        writer holds :meth:`token_writer`.
        """
        if self._paused:
            await self.drain()
        data, start = self._encode_stanza(obj)
        if self._out_lock.locked():
            async with self._out_lock:
                self._write_element(data, start)
        else:
            self._write_element(data, start)

    def _write_element(self, data: bytes, start: StartElement | None) -> None:
        if self._state & _OUTPUT_STREAM_CLOSED:
            raise SessionClosedError("the output stream is closed")
        if self._reply_id is not None:
            self._note_reply(start)
        tee = self._tee_out
        if tee is not None:
            tee(data)
        sm = self._sm
        if sm is not None:
            sm.on_sent(data, start)  # counted, and kept until acknowledged
        # Coalesce: stanzas written in one turn of the event loop leave in one
        # transport write (one TLS record, one system call), bounded in size.
        # A write never splits an element unless the element alone is larger
        # than a record: a peer's TLS layer hands out only whole records, so a
        # peer that reads all it got before a cut holds no half element
        # (Prosody 0.12 parses a resumed stream's bytes with the old
        # connection's parser, where half an element breaks them).
        if self._wsize and self._wsize + len(data) > _COALESCE_MAX:
            self._flush_writes()
        self._wbuf.append(data)
        self._wsize += len(data)
        if self._wsize >= _COALESCE_MAX:
            self._flush_writes()
        elif not self._wscheduled:
            self._wscheduled = True
            self._loop.call_soon(self._flush_writes)

    def _flush_writes(self) -> None:
        self._wscheduled = False
        buf = self._wbuf
        if not buf:
            return
        data = buf[0] if len(buf) == 1 else b"".join(buf)
        buf.clear()
        self._wsize = 0
        if not self.transport.is_closing():
            self.transport.write(data)

    async def send_element(self, reader: Iterable[Token], start: StartElement) -> None:
        """Send ``reader`` (the payload) wrapped in ``start`` (mellium's SendElement)."""
        await self.send(xmlstream.wrap(reader, start))

    async def encode(self, obj: Any) -> None:
        """Send an object that marshals itself: anything with a ``tokens()`` method
        (a :class:`xmpp.stanza.StanzaError` is not one to send alone, but a
        payload type of an extension is) or a token reader."""
        toks = obj.tokens() if hasattr(obj, "tokens") else obj
        await self.send(toks)

    @contextlib.asynccontextmanager
    async def token_writer(self) -> AsyncIterator[_TokenWriter]:
        """Hold the output lock and write tokens one by one.

        >>> # async with session.token_writer() as w:
        >>> #     w.write_token(start); ...; w.write_token(start.end())
        Everything written is flushed when the block ends.
        """
        async with self._out_lock:
            if self._paused:
                await self.drain()
            w = _TokenWriter(self)
            try:
                yield w
            finally:
                w.flush()

    async def send_iq(
        self,
        iq: _stanza.IQ | Element | Iterable[Token],
        payload: Iterable[Token] | None = None,
        *,
        timeout: float | None = DEFAULT_IQ_TIMEOUT,
    ) -> Element:
        """Send an IQ get or set and wait for its reply.

        Returns the reply element (type ``result``); an ``error`` reply raises
        its :class:`xmpp.stanza.StanzaError`.  The reply is matched by id,
        stanza name and the sender's address, never by id alone.  Raises
        ``RuntimeError`` at once when no :meth:`serve` is running (nobody would
        read the reply), ``TimeoutError`` after ``timeout`` seconds (a reply
        arriving later goes to the handler), and :class:`SessionClosedError`
        when the stream ends first.
        """
        if not self._serving:
            raise RuntimeError("send_iq needs a running serve() to read the reply")
        if self._state & _INPUT_STREAM_CLOSED:
            raise SessionClosedError("the input stream is closed: no reply can arrive")
        if isinstance(iq, _stanza.IQ):
            if iq.type not in (_stanza.IQType.GET, _stanza.IQType.SET):
                raise ValueError("send_iq sends get or set IQs; send replies with send()")
            if not iq.id:
                iq.id = _stanza.new_id()
            start = self._outgoing_start(iq.start(self._ns))
            tokens: Iterable[Token] | None = None
        else:
            if payload is not None:
                raise TypeError("payload is only for an IQ dataclass")
            toks = iter(iq)
            first = next(toks)
            if not isinstance(first, StartElement) or first.name.local != "iq":
                raise ValueError("send_iq needs an <iq/> element")
            if first.get("type") not in ("get", "set"):
                raise ValueError("send_iq sends get or set IQs; send replies with send()")
            if first.get("id") is None:
                first = _with_id(first)
            start = first
            tokens = _chain(first, toks)
        iq_id = start.get("id") or ""
        waiter: asyncio.Future[Element] = self._loop.create_future()
        to = start.get("to")
        acc = self._accept_cache.get(to)
        if acc is None or self._accept_key != (self.local_addr, self.remote_addr):
            acc = self._accept_from(to)
        self._iqs.add(iq_id, acc, waiter)
        try:
            if timeout is not None:
                self._arm_timeout(timeout, iq_id)
            if tokens is None:
                await self._send_wrapped(start, payload)
            else:
                await self.send(tokens)
            reply = await waiter
        finally:
            self._iqs.pop(iq_id)
            self._timed.pop(iq_id, None)
        if reply.get("type") == "error":
            err = _stanza.StanzaError.from_stanza(reply)
            if err is None:
                err = _stanza.StanzaError(
                    _stanza.ErrorType.CANCEL,
                    _stanza.Condition.UNDEFINED_CONDITION,
                    "error reply without an <error/> element",
                )
            raise err
        return reply

    def _arm_timeout(self, timeout: float, iq_id: str) -> None:
        """Fail the pending IQ ``iq_id`` with ``TimeoutError`` after ``timeout`` seconds.

        One timer serves every pending IQ: deadlines wait in a heap, the timer
        moves only when a new deadline is the earliest, and entries of IQs
        answered in time are dropped lazily (the heap is compacted when they
        outnumber the pending ones).
        """
        deadline = self._loop.time() + timeout
        heap = self._deadlines
        self._deadline_seq += 1
        seq = self._deadline_seq
        self._timed[iq_id] = seq
        if len(heap) > 1024 and len(heap) > 4 * len(self._timed):
            timed = self._timed
            heap[:] = [e for e in heap if timed.get(e[2]) == e[1]]
            heapq.heapify(heap)
        heapq.heappush(heap, (deadline, seq, iq_id))
        if heap[0][1] == seq:
            if self._timer is not None:
                self._timer.cancel()
            self._timer = self._loop.call_at(deadline, self._expire)

    def _expire(self) -> None:
        self._timer = None
        heap = self._deadlines
        timed = self._timed
        now = self._loop.time()
        while heap and (heap[0][0] <= now or timed.get(heap[0][2]) != heap[0][1]):
            _, seq, iq_id = heapq.heappop(heap)
            if timed.get(iq_id) != seq:
                continue
            del timed[iq_id]
            waiter = self._iqs.pop(iq_id)
            if waiter is not None and not waiter.done():  # type: ignore[attr-defined]
                waiter.set_exception(  # type: ignore[attr-defined]
                    TimeoutError(f"no reply to IQ {iq_id!r} in time; a late reply goes to the handler")
                )
        if heap:
            self._timer = self._loop.call_at(heap[0][0], self._expire)

    def _accept_from(self, to: str | None) -> frozenset[str]:
        """The ``from`` values a reply to an IQ sent ``to`` may carry."""
        key = (self.local_addr, self.remote_addr)
        if self._accept_key != key:
            self._accept_cache.clear()
            self._accept_key = key
        acc = self._compute_accept(to)
        if len(self._accept_cache) < 256:
            self._accept_cache[to] = acc
        return acc

    def _compute_accept(self, to: str | None) -> frozenset[str]:
        local = self.local_addr
        if self._state & _RECEIVED:
            # We are the server of this stream: the peer's replies carry no
            # from, or its own address.
            acc = {""}
            if to:
                acc.add(to)
            if self.remote_addr is not None:
                acc.add(str(self.remote_addr))
                acc.add(str(self.remote_addr.bare()))
            return frozenset(acc)
        if not to:
            acc = {""}
            if local is not None:
                acc.add(str(local))
                acc.add(str(local.bare()))
                acc.add(local.domain)
            return frozenset(acc)
        acc = {to}
        if local is not None and to in (str(local.bare()), str(local)):
            acc.add("")
        return frozenset(acc)

    async def send_message(
        self, msg: _stanza.Message, payload: Iterable[Token] | None = None
    ) -> None:
        """Send a message stanza around ``payload``."""
        if not msg.id:
            msg.id = _stanza.new_id()
        await self._send_wrapped(self._outgoing_start(msg.start(self._ns)), payload)

    def _outgoing_start(self, start: StartElement) -> StartElement:
        """The start tag of a stanza this session sends (a hook: a component
        session sets ``from``)."""
        return start

    async def _send_wrapped(self, start: StartElement, payload: Iterable[Token] | None) -> None:
        if self._paused:
            await self.drain()
        ns = self._ns
        enc = self._encoder
        if payload is not None and self._ns != NS_CLIENT:
            payload = _to_stream_ns(payload, self._ns)
        try:
            enc.write_token(start)
            if payload is not None:
                enc.encode(payload)
            enc.write_token(start.end())
            data = enc.flush()
        except ValueError:
            self._encoder = xmlstream.Encoder(ns=ns)
            raise
        if self._out_lock.locked():
            async with self._out_lock:
                self._write_element(data, start)
        else:
            self._write_element(data, start)

    async def send_presence(
        self, presence: _stanza.Presence, payload: Iterable[Token] | None = None
    ) -> None:
        """Send a presence stanza around ``payload``."""
        if not presence.id:
            presence.id = _stanza.new_id()
        await self._send_wrapped(self._outgoing_start(presence.start(self._ns)), payload)

    # --------------------------------------------------------------- serving

    async def serve(self, handler: Handler | Callable[..., Any] | None = None) -> None:
        """Read the stream and call ``handler.handle_xmpp(reader, start)`` once
        per top-level element, in order, until the stream ends.

        ``handler`` is a :class:`Handler`, a plain function ``f(reader, start)``
        or ``None`` (a :class:`xmpp.mux.ServeMux` with nothing registered).
        Returns when the peer closes the stream; raises the received
        :class:`~xmpp.stream.StreamError`, a stream error of ours (sent to the
        peer first), the handler's exception (after sending
        ``undefined-condition``), or :class:`SessionClosedError` when the
        connection is lost without a closed stream.
        """
        if self._serving:
            raise RuntimeError("serve is already running on this session")
        if handler is None:
            from xmpp.mux import ServeMux

            handler = ServeMux(self._ns)
        fast = getattr(handler, "handle_element", None)
        if fast is not None:
            # A ServeMux reads names and attributes from the element itself:
            # no StartElement is built for it.
            handle: Callable[[Element], Any] = fast
        else:
            h2 = handler.handle_xmpp if hasattr(handler, "handle_xmpp") else handler

            def handle(el: Element) -> Any:
                return h2(el, el.start)

        self._serving = True
        token = _current.set(self)
        try:
            await self._serve(handle)
        finally:
            self._serving = False
            _current.reset(token)

    async def _serve(self, handle: Callable[[Element], Any]) -> None:
        queue = self._queue
        step = self._step
        self._handle = handle
        try:
            while True:
                pending = self._pending
                if pending is not None:
                    self._pending = None
                    await pending
                while queue:
                    c = step(queue.popleft())
                    if c is not None:
                        await c
                if self._pending is not None:
                    continue
                if self._state & _INPUT_STREAM_CLOSED:
                    err_in = self._input_error
                    if err_in is None:
                        await self._finish_output()
                        return
                    if isinstance(err_in, StreamError):
                        await self._send_stream_error(err_in)
                    else:
                        self._abort()
                    raise err_in
                self._parked = True
                try:
                    await self._wait_input(None)
                finally:
                    self._parked = False
        finally:
            self._handle = None
            pending = self._pending
            self._pending = None
            if pending is not None and hasattr(pending, "close"):
                pending.close()

    def _step(self, el: Element) -> Awaitable[None] | None:
        """Handle one element; return a coroutine when work must be awaited."""
        if self._reading_paused:
            self._resume_reading_if_drained()
        name = el.name
        if name.space == NS_STREAMS and name.local == "error":
            return self._stream_error_received(el)
        is_request = name.local == "iq" and el.get("type") in ("get", "set")
        if is_request:
            self._reply_id = el.get("id")
            self._replied = False
        handle = self._handle
        assert handle is not None
        try:
            r = handle(el)
        except StreamError as exc:
            self._reply_id = None
            return self._fail(exc, exc)
        except SessionClosedError as exc:
            self._reply_id = None
            if self._state & _OUTPUT_STREAM_CLOSED:
                # The handler wrote to a stream that is already closed: the
                # stream is ending, which is no handler failure.
                return None
            return self._fail(StreamError(Condition.UNDEFINED_CONDITION, "internal error in a handler"), exc)
        except Exception as exc:
            self._reply_id = None
            return self._fail(StreamError(Condition.UNDEFINED_CONDITION, "internal error in a handler"), exc)
        if r is not None and inspect.isawaitable(r):
            return self._finish_handler(r, is_request, el)
        if is_request:
            self._reply_id = None
            if not self._replied and not self._state & _OUTPUT_STREAM_CLOSED:
                if self._paused or self._out_lock.locked():
                    return self._auto_error(el, el.start)
                self._auto_error_now(el.start)
        return None

    async def _finish_handler(self, r: Awaitable[Any], is_request: bool, el: Element) -> None:
        try:
            await r
        except StreamError as exc:
            self._reply_id = None
            await self._send_stream_error(exc)
            raise
        except SessionClosedError:
            self._reply_id = None
            if self._state & _OUTPUT_STREAM_CLOSED:
                return  # the stream is ending (see _step)
            raise
        except Exception:
            self._reply_id = None
            await self._send_stream_error(
                StreamError(Condition.UNDEFINED_CONDITION, "internal error in a handler")
            )
            raise
        if is_request:
            self._reply_id = None
            if not self._replied and not self._state & _OUTPUT_STREAM_CLOSED:
                await self._auto_error(el, el.start)

    async def _fail(self, sent: StreamError, raised: BaseException) -> None:
        await self._send_stream_error(sent)
        raise raised

    async def _stream_error_received(self, el: Element) -> None:
        err = StreamError.from_element(el)
        self._input_closed(err)  # nothing may follow a stream error
        await self._finish_output()
        raise err

    def _auto_error_now(self, start: StartElement) -> None:
        """Answer an unanswered IQ request with ``service-unavailable`` at once
        (the output is free: nothing to wait for)."""
        try:
            iq = _stanza.IQ.from_element(start)
        except _stanza.StanzaError:
            return
        data, reply = self._encode_stanza(iq.error(_SERVICE_UNAVAILABLE, self._ns))
        with contextlib.suppress(SessionClosedError):
            self._write_element(data, reply)

    async def _auto_error(self, el: Element, start: StartElement) -> None:
        try:
            iq = _stanza.IQ.from_element(start)
        except _stanza.StanzaError:
            return
        with contextlib.suppress(SessionClosedError):
            await self.send(iq.error(_SERVICE_UNAVAILABLE, self._ns))

    async def _send_stream_error(self, err: StreamError) -> None:
        """Send a stream error and close our stream (never raises)."""
        if self._state & _OUTPUT_STREAM_CLOSED:
            return
        try:
            data = err.to_bytes() + b"</stream:stream>"
            self.write_raw(data)
        except Exception:  # the transport may already be gone
            pass
        self._state |= _OUTPUT_STREAM_CLOSED
        self._abort_later()

    def _abort(self) -> None:
        with contextlib.suppress(Exception):
            self._flush_writes()
            self.transport.close()

    def _abort_later(self) -> None:
        # Give the peer a moment to read the error, then close the transport.
        self._loop.call_later(0.05, self._abort)

    async def _finish_output(self) -> None:
        """The peer closed its stream: close ours and the transport."""
        if not self._state & _OUTPUT_STREAM_CLOSED:
            with contextlib.suppress(Exception):
                self.write_raw(b"</stream:stream>")
            self._state |= _OUTPUT_STREAM_CLOSED
        self._abort()

    # --------------------------------------------------------------- closing

    async def close(self, timeout: float = DEFAULT_CLOSE_TIMEOUT) -> None:
        """Send ``</stream:stream>`` (once) and wait, at most ``timeout``
        seconds, for the peer's; then close the transport."""
        if not self._state & _OUTPUT_STREAM_CLOSED:
            async with self._out_lock:
                with contextlib.suppress(Exception):
                    self.write_raw(b"</stream:stream>")
                self._state |= _OUTPUT_STREAM_CLOSED
        if not self._state & _INPUT_STREAM_CLOSED:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._closed_in.wait(), timeout)
        self._abort()
        if not self._proto._lost:
            # Let the transport finish closing (bounded), so nothing is left open.
            for _ in range(200):
                if self._proto._lost:
                    break
                await asyncio.sleep(0.005)

    async def __aenter__(self) -> Session:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


class _TokenWriter:
    """The writer of :meth:`Session.token_writer`: buffers tokens, writes on flush."""

    def __init__(self, session: Session) -> None:
        self._s = session
        self._enc = xmlstream.Encoder(ns=session.stanza_ns)
        self._first: StartElement | None = None
        self._depth = 0

    def write_token(self, tok: Token) -> None:
        """Buffer one token (a top-level stanza without id gets one)."""
        if isinstance(tok, StartElement):
            if self._depth == 0 and tok.name.local in _STANZA_NAMES and tok.get("id") is None:
                tok = _with_id(tok)
            if self._depth == 0:
                self._first = tok
            self._depth += 1
        elif isinstance(tok, EndElement):
            self._depth -= 1
        self._enc.write_token(tok)

    def flush(self) -> None:
        """Write what is buffered to the transport."""
        data = self._enc.flush()
        if data:
            self._s._write_element(data, self._first)


def _to_stream_ns(tokens: Iterable[Token], ns: str) -> Iterator[Token]:
    """Move elements in ``jabber:client`` into the stream namespace ``ns``."""
    for tok in tokens:
        if isinstance(tok, StartElement):
            if tok.name.space == NS_CLIENT:
                tok = StartElement(Name(ns, tok.name.local), tok.attrs)
        elif isinstance(tok, EndElement):
            if tok.name.space == NS_CLIENT:
                tok = EndElement(Name(ns, tok.name.local))
        yield tok


def _with_id(start: StartElement) -> StartElement:
    return StartElement(start.name, (*start.attrs, Attr(Name("", "id"), _stanza.new_id())))


def _chain(first: Token, rest: Iterator[Token]) -> Iterator[Token]:
    yield first
    yield from rest


_SASL_NS = "urn:ietf:params:xml:ns:xmpp-sasl"


def _redacted(el: Element, ns: str) -> bytes:
    """The bytes the XML console shows for a received element: SASL payloads hidden."""
    if el.name.space != _SASL_NS:
        return el.encode(ns)
    return redact_sasl(el)


def redact_sasl(el: Iterable[Token]) -> bytes:
    """Encode a SASL element with its payload replaced by ``[redacted]``."""
    enc = xmlstream.Encoder()
    depth = 0
    for tok in el:
        if isinstance(tok, CharData):
            if depth == 1 and tok.text.strip():
                enc.write_token(CharData("[redacted]"))
                continue
        elif isinstance(tok, StartElement):
            depth += 1
        elif isinstance(tok, EndElement):
            depth -= 1
        enc.write_token(tok)
    return enc.flush()


async def new_session(
    transport: asyncio.Transport,
    location: JID | str,
    *,
    origin: JID | str | None = None,
    negotiator: Negotiator | None = None,
    config: StreamConfig | None = None,
    max_stanza_bytes: int = xmlstream.DEFAULT_MAX_STANZA_BYTES,
) -> Session:
    """Negotiate the initiating side of a session over ``transport``.

    ``location`` is the address of the peer (a client's server domain),
    ``origin`` ours (a client's JID).  ``negotiator`` defaults to
    ``new_negotiator(config or StreamConfig())``.  On failure the transport is
    closed and the error raised.
    """
    return await _negotiate(
        transport, _jid(location), _jid(origin), False, negotiator, config, max_stanza_bytes
    )


async def receive_session(
    transport: asyncio.Transport,
    location: JID | str,
    *,
    origin: JID | str | None = None,
    negotiator: Negotiator | None = None,
    config: StreamConfig | None = None,
    max_stanza_bytes: int = xmlstream.DEFAULT_MAX_STANZA_BYTES,
) -> Session:
    """Negotiate the receiving side of a session over ``transport``.

    ``location`` is *our* address (the server's domain) — the one the peer
    must ask for in its header; ``origin`` the peer's, when known.
    """
    return await _negotiate(
        transport, _jid(origin), _jid(location), True, negotiator, config, max_stanza_bytes
    )


def _jid(v: JID | str | None) -> JID | None:
    if v is None or isinstance(v, JID):
        return v
    return JID.parse(v)


async def _negotiate(
    transport: asyncio.Transport,
    remote: JID | None,
    local: JID | None,
    received: bool,
    negotiator: Negotiator | None,
    config: StreamConfig | None,
    max_stanza_bytes: int,
) -> Session:
    from xmpp.negotiator import StreamConfig, new_negotiator

    if config is None:
        config = StreamConfig()
    if negotiator is None:
        negotiator = new_negotiator(config)
    s = Session(
        transport,
        location=remote,
        origin=local,
        received=received,
        config=config,
        max_stanza_bytes=max_stanza_bytes,
    )
    data: Any = None
    try:
        while not s._state & _READY:
            bits, restart, data = await negotiator(s, data)
            s._state |= int(bits)
    except BaseException as exc:
        if isinstance(exc, StreamError) and not s._state & _OUTPUT_STREAM_CLOSED:
            if not getattr(exc, "_from_peer", False):
                await s._send_stream_error(exc)
            else:
                await s._finish_output()
        s._abort()
        raise
    return s
