"""A client that stays connected: reconnection, resumption and liveness.

:class:`ResilientClient` keeps one logical XMPP session alive over as many
connections as it takes.  Its :meth:`~ResilientClient.run` loop dials the
server (:func:`xmpp.client.dial_client_session`) with stream management
(:func:`xmpp.sm.sm` over an :class:`xmpp.sm.SMState` kept for the life of
the client), serves the session with the given handler and, when the
connection is lost:

* waits a *capped exponential backoff with full jitter* (a delay drawn
  uniformly from ``[0, min(backoff_max, backoff_base * 2**(n-1))]`` before
  the ``n``-th attempt in a row), then dials again;
* **resumes** the stream when the server still holds it (XEP-0198
  ``<resume/>``: no bind, the stanzas the server did not acknowledge are
  sent again, exactly those), or **renegotiates** (a new bind) when it
  cannot, and then sends again what was not acknowledged;
* **gives up at once** on a permanent error instead of retrying forever
  (see :data:`PERMANENT_SASL` and :data:`PERMANENT_STREAM`): ``run`` raises
  it.

While there is no connection :meth:`~ResilientClient.send` queues the
stanza; the queue holds at most ``queue_limit`` stanzas and what happens
past that is ``overflow``: ``"raise"`` (:class:`QueueFull`, the stanza is
not queued) or ``"drop_oldest"`` (the oldest queued stanza is dropped and
counted in :attr:`~ResilientClient.dropped`).  Queued stanzas leave, in
order, on the next connection, after whatever stream management sends
again.

**What is guaranteed.**  With stream management on, a stanza that was
written to a connection is kept until the server acknowledges it, and sent
again on the next connection otherwise: nothing is lost, but a stanza that
the server received without acknowledging it before the loss may arrive
twice after a renegotiation (never after a resumption).  Receivers
de-duplicate by an id the sender chose: send messages with
:func:`xmpp.sid.send_message` (XEP-0359 origin-id) or stable stanza ids.
A server that does not offer stream management gives at most once: what
was in flight when the connection died is lost.

**Liveness.**  Every ``keepalive`` seconds without output a single space
is written (a whitespace keepalive, RFC 6120 section 4.6.1) so that
middleboxes keep the connection.  When nothing was received for
``ping_interval`` seconds the server is pinged (XEP-0199); no answer within
``ping_timeout`` seconds means the peer (or a box in between) is dead: the
connection is aborted and the client reconnects.  A dead peer is so
detected at most ``ping_interval + ping_timeout`` seconds after it stopped
sending.  A resumed stream found dead that way before the server
acknowledged anything on it is not resumed again: the next connection
binds anew and sends again what is unacknowledged (a server can keep a
broken state for a resumed stream; Prosody 0.12 keeps the old connection's
XML parser, stuck inside a stanza when that connection died in the middle
of one).

**Stopping.**  :meth:`~ResilientClient.stop` closes the stream and waits
for ``run`` to return; cancelling the task that runs ``run`` works too.
Either way every task the client started has ended when they return.

Example::

    client = ResilientClient("alice@example.org", password, handler=mux)
    task = asyncio.create_task(client.run())
    await client.send(Message(to=bob, type=MessageType.CHAT).wrap(body))
    ...
    await client.stop()
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import enum
import random
import ssl
import time
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from typing import Any, Literal, TypeVar

from xmpp import ping as _ping
from xmpp import stanza as _stanza
from xmpp.client import Tee, client_features, dial_client_session
from xmpp.jid import JID
from xmpp.sasl import SASLCondition, SASLError
from xmpp.session import Handler, Session, SessionClosedError, SessionState
from xmpp.sm import SMState, sm
from xmpp.stream import Condition, StreamError
from xmpp.xmlstream import Element

__all__ = [
    "PERMANENT_SASL",
    "PERMANENT_STREAM",
    "DeadPeerError",
    "Event",
    "EventKind",
    "QueueFull",
    "ResilientClient",
    "backoff_delay",
    "is_permanent",
]

_T = TypeVar("_T")

#: SASL failures that another attempt with the same credentials cannot
#: fix: the password is wrong or the account is closed.
PERMANENT_SASL: frozenset[SASLCondition] = frozenset(
    {SASLCondition.NOT_AUTHORIZED, SASLCondition.ACCOUNT_DISABLED, SASLCondition.CREDENTIALS_EXPIRED}
)
#: Stream errors after which reconnecting is wrong: the server does not
#: serve the domain (``host-unknown``), another session took our place
#: (``conflict``: reconnecting would fight it forever), we are not allowed
#: (``not-authorized``) or broke the server's rules (``policy-violation``).
PERMANENT_STREAM: frozenset[Condition] = frozenset(
    {Condition.HOST_UNKNOWN, Condition.CONFLICT, Condition.NOT_AUTHORIZED, Condition.POLICY_VIOLATION}
)


class QueueFull(Exception):
    """:meth:`ResilientClient.send` found the outage queue full (``overflow="raise"``).

    The stanza was not queued; nothing else changed.
    """


class DeadPeerError(ConnectionError):
    """The server did not answer a ping in time: the connection was given up."""


class EventKind(str, enum.Enum):
    """What happened to a :class:`ResilientClient` (the ``kind`` of an :class:`Event`)."""

    #: A new session is up (bound anew: the server did not resume); the
    #: stanzas queued during the outage leave right after this event.
    CONNECTED = "connected"
    #: A new connection resumed the previous stream (XEP-0198).
    RESUMED = "resumed"
    #: The connection was lost (``error`` says why; ``None``: the server
    #: closed the stream).
    DISCONNECTED = "disconnected"
    #: A connection attempt failed; the next one follows after ``delay`` seconds.
    RETRYING = "retrying"
    #: A permanent error ended :meth:`ResilientClient.run` (``error``).
    FAILED = "failed"
    #: :meth:`ResilientClient.run` returned after :meth:`ResilientClient.stop`,
    #: or its task was cancelled.
    STOPPED = "stopped"


@dataclasses.dataclass(frozen=True)
class Event:
    """One thing that happened to a :class:`ResilientClient`.

    ``kind`` is the :class:`EventKind`; ``session`` the session concerned
    (for connected, resumed and disconnected); ``error`` the exception that
    ended a connection or an attempt (``None`` when there was none);
    ``attempt`` the number of failed attempts in a row so far and ``delay``
    the backoff before the next one (for retrying); ``at`` the monotonic
    time it happened.
    """

    kind: EventKind
    session: Session | None = None
    error: BaseException | None = None
    attempt: int = 0
    delay: float = 0.0
    at: float = dataclasses.field(default_factory=time.monotonic)


def is_permanent(exc: BaseException) -> bool:
    """True when ``exc`` ends a :class:`ResilientClient` instead of a retry.

    Permanent: a :class:`~xmpp.sasl.SASLError` whose condition is in
    :data:`PERMANENT_SASL`, a :class:`~xmpp.stream.StreamError` whose
    condition is in :data:`PERMANENT_STREAM`, and a certificate that does
    not verify (``ssl.SSLCertVerificationError``).  Everything else that a
    network, a restarting server or a failed resumption produces (``OSError``
    and its kin, ``TimeoutError``, other stream errors and SASL failures,
    TLS errors, a refused bind) is worth another attempt.
    """
    if isinstance(exc, SASLError):
        return exc.condition in PERMANENT_SASL
    if isinstance(exc, StreamError):
        return exc.condition in PERMANENT_STREAM
    return isinstance(exc, ssl.SSLCertVerificationError)


def _transient(exc: BaseException) -> bool:
    """Errors of the connection, not of the program: worth a new connection."""
    return isinstance(
        exc, (OSError, TimeoutError, asyncio.TimeoutError, StreamError, SASLError, ssl.SSLError, _stanza.StanzaError)
    )


def backoff_delay(attempt: int, base: float, cap: float, rng: random.Random | None = None) -> float:
    """The delay before the ``attempt``-th retry in a row (1 for the first).

    Capped exponential backoff with full jitter: uniform in
    ``[0, min(cap, base * 2**(attempt - 1))]``.

    >>> backoff_delay(1, 0.5, 30.0, random.Random(1)) <= 0.5
    True
    >>> all(backoff_delay(40, 0.5, 30.0) <= 30.0 for _ in range(100))
    True
    """
    ceiling = min(cap, base * (2.0 ** min(max(attempt - 1, 0), 62)))
    return (rng or random).uniform(0.0, ceiling)


class _Stopped(Exception):
    """Internal: stop() was called while run() waited for something."""


#: What :meth:`ResilientClient.send` accepts: an element, a stanza
#: dataclass, or tokens of one whole element (read at once).
Sendable = Any


class ResilientClient:
    """A client session that reconnects, resumes and watches its liveness.

    ``jid`` and ``password`` log in (the resource of ``jid`` is asked for
    on every bind; a bare JID lets the server pick one each time).
    ``handler`` serves every session (a :class:`xmpp.session.Handler`, a
    plain function ``f(element, start)`` or ``None``).  ``host``, ``port``,
    ``tls_context``, ``direct_tls``, ``mechanisms``, ``timeout``, ``lang``,
    ``tee_in`` and ``tee_out`` go to
    :func:`xmpp.client.dial_client_session` (``timeout`` bounds each
    connection attempt and each wait in stream management).

    ``backoff_base`` and ``backoff_max`` shape the backoff between attempts
    (see :func:`backoff_delay`); ``max_attempts`` (``None``: no limit)
    bounds the failed attempts in a row, after which ``run`` raises the
    last error.  ``queue_limit`` and ``overflow`` bound the outage queue
    (see the module documentation).  ``keepalive``, ``ping_interval`` and
    ``ping_timeout`` are the liveness settings in seconds (``None`` turns
    one off).  ``ack_every`` and ``ack_after`` are stream management's
    acknowledgement window, ``resume`` whether to ask for resumable
    streams.  ``on_event`` is called with every :class:`Event`; the same
    events go into :attr:`events`.  ``on_session(session, resumed)``, when
    given, is awaited on every new session before the queued stanzas leave
    (to send initial presence on a session that was not resumed, for
    example).  ``permanent`` decides which errors end
    ``run`` (default :func:`is_permanent`).  ``rng`` draws the jitter.
    """

    def __init__(
        self,
        jid: JID | str,
        password: str,
        *,
        handler: Handler | Callable[..., Any] | None = None,
        host: str | None = None,
        port: int | None = None,
        tls_context: ssl.SSLContext | None = None,
        direct_tls: bool | None = None,
        mechanisms: Sequence[str] | None = None,
        timeout: float = 30.0,
        lang: str = "",
        tee_in: Tee | None = None,
        tee_out: Tee | None = None,
        backoff_base: float = 0.5,
        backoff_max: float = 30.0,
        max_attempts: int | None = None,
        queue_limit: int = 1000,
        overflow: Literal["raise", "drop_oldest"] = "raise",
        keepalive: float | None = 60.0,
        ping_interval: float | None = 60.0,
        ping_timeout: float = 30.0,
        ack_every: int = 16,
        ack_after: float | None = 5.0,
        resume: bool = True,
        on_event: Callable[[Event], object] | None = None,
        on_session: Callable[[Session, bool], Awaitable[object]] | None = None,
        permanent: Callable[[BaseException], bool] = is_permanent,
        rng: random.Random | None = None,
    ) -> None:
        if overflow not in ("raise", "drop_oldest"):
            raise ValueError(f"overflow must be 'raise' or 'drop_oldest', not {overflow!r}")
        if queue_limit < 0:
            raise ValueError("queue_limit must not be negative")
        if backoff_base < 0 or backoff_max < 0:
            raise ValueError("backoff_base and backoff_max must not be negative")
        for name, value in (("keepalive", keepalive), ("ping_interval", ping_interval)):
            if value is not None and value <= 0:
                raise ValueError(f"{name} must be positive (or None to turn it off)")
        if ping_timeout <= 0:
            raise ValueError("ping_timeout must be positive")
        #: The address logged in with (the bound one is ``session.local_addr``).
        self.jid = jid if isinstance(jid, JID) else JID.parse(jid)
        self._password = password
        self.handler = handler
        self.host, self.port = host, port
        self.tls_context = tls_context
        self.direct_tls = direct_tls
        self.mechanisms = mechanisms
        self.timeout = timeout
        self.lang = lang
        self._tee_in, self._tee_out = tee_in, tee_out
        self.backoff_base, self.backoff_max = backoff_base, backoff_max
        self.max_attempts = max_attempts
        self.queue_limit = queue_limit
        self.overflow = overflow
        self.keepalive, self.ping_interval, self.ping_timeout = keepalive, ping_interval, ping_timeout
        self.ack_every, self.ack_after, self.resume = ack_every, ack_after, resume
        self.on_event = on_event
        self.on_session = on_session
        self.permanent = permanent
        self._rng = rng or random.Random()
        #: Stream management's state, kept across connections (counters,
        #: unacknowledged stanzas, the id to resume).  Set ``state.on_ack``
        #: to hear of each acknowledged stanza.
        self.state = SMState()
        #: Every :class:`Event`, oldest first (the last 1,024 are kept).
        self.events: collections.deque[Event] = collections.deque(maxlen=1024)
        #: How many events happened so far (a position for :meth:`next_event`).
        self.event_count = 0
        #: Stanzas dropped by ``overflow="drop_oldest"``.
        self.dropped = 0
        #: Connections made (resumed or not), and how many of them resumed.
        self.connections = 0
        self.resumptions = 0
        self._queue: collections.deque[Sendable] = collections.deque()
        self._live: Session | None = None
        self._session: Session | None = None
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._stop_evt: asyncio.Event | None = None
        self._changed: asyncio.Event | None = None
        self._last_in = 0.0
        self._last_out = 0.0
        self._dead: DeadPeerError | None = None

    # -------------------------------------------------------------- views

    @property
    def session(self) -> Session | None:
        """The current session once it is ready for direct sends, else ``None``."""
        return self._live

    @property
    def connected(self) -> bool:
        """True while a session is up and the outage queue has been sent."""
        return self._live is not None

    @property
    def queued(self) -> int:
        """Stanzas waiting in the outage queue."""
        return len(self._queue)

    @property
    def unacked(self) -> int:
        """Stanzas written to some connection and not yet acknowledged by the server."""
        return len(self.state.unacked)

    # ---------------------------------------------------------- sending

    async def send(self, obj: Sendable) -> None:
        """Send one stanza now, or queue it while there is no connection.

        ``obj`` is what :meth:`xmpp.session.Session.send` takes (tokens of
        one element are read into an :class:`~xmpp.xmlstream.Element` first,
        so that they can wait).  A message, presence or IQ without an id
        gets one before it leaves.  Past ``queue_limit`` queued stanzas,
        ``overflow="raise"`` raises :class:`QueueFull` and
        ``overflow="drop_oldest"`` drops the oldest queued one.  Raises
        ``RuntimeError`` after :meth:`stop`.
        """
        if self._stopping:
            raise RuntimeError("the client is stopped")
        if not isinstance(obj, (Element, _stanza.Message, _stanza.Presence, _stanza.IQ)):
            obj = Element.from_tokens(list(obj))
        s = self._live
        if s is not None:
            try:
                await s.send(obj)
                return
            except SessionClosedError:
                pass  # not written to the connection: it waits for the next one
        self._enqueue(obj)

    def _enqueue(self, obj: Sendable) -> None:
        q = self._queue
        if len(q) >= self.queue_limit:
            if self.overflow == "raise" or self.queue_limit == 0:
                raise QueueFull(f"{len(q)} stanzas already wait for a connection (queue_limit)")
            while len(q) >= self.queue_limit:
                q.popleft()
                self.dropped += 1
        q.append(obj)

    async def wait_connected(self, timeout: float | None = None) -> Session:
        """Wait until a session is ready (``TimeoutError`` after ``timeout`` seconds).

        A session whose connection just broke does not count, even before the
        client has noticed: a caller retrying on :class:`QueueFull` waits here
        instead of spinning."""
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        while self._live is None or self._live.state & SessionState.OUTPUT_STREAM_CLOSED:
            if self._task is not None and self._task.done():
                raise RuntimeError("the client is not running")
            await self._wait_change(deadline)
        live = self._live
        assert live is not None
        return live

    async def flush(self, timeout: float | None = 30.0) -> None:
        """Wait until nothing is queued and the server acknowledged every
        stanza sent (across reconnections).  ``TimeoutError`` after
        ``timeout`` seconds; on a session without stream management, waits
        only for the queue.
        """
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        last_request = 0.0
        while True:
            s = self._live
            if s is not None and not self._queue:
                m = s.sm
                if m is None or not self.state.unacked:
                    return
                if loop.time() - last_request >= 0.5:
                    last_request = loop.time()
                    m.request_ack()
            if self._task is not None and self._task.done():
                raise RuntimeError("the client is not running")
            await self._wait_change(deadline, 0.1)

    async def _wait_change(self, deadline: float | None, poll: float = 1.0) -> None:
        loop = asyncio.get_running_loop()
        if self._changed is None:
            self._changed = asyncio.Event()
        left = poll if deadline is None else min(poll, deadline - loop.time())
        if left <= 0:
            raise TimeoutError("the client did not get there in time")
        self._changed.clear()
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._changed.wait(), left)

    # ---------------------------------------------------------- running

    async def run(self) -> None:
        """Connect and stay connected until :meth:`stop` (then return).

        A client runs once: after :meth:`stop` this returns at once.
        Raises the permanent error that ended it (see :func:`is_permanent`),
        the last error after ``max_attempts`` failed attempts in a row, or
        the exception of the handler (a bug is not a network fault: the
        client does not reconnect over it).  Cancelling the task running
        this leaves nothing running.
        """
        if self._task is not None and not self._task.done():
            raise RuntimeError("run is already running")
        self._task = asyncio.current_task()
        self._stop_evt = asyncio.Event()
        self._changed = self._changed or asyncio.Event()
        attempt = 0
        try:
            while not self._stopping:
                try:
                    session = await self._until_stopped(self._connect())
                except _Stopped:
                    break
                except Exception as exc:
                    if self.permanent(exc) or not _transient(exc):
                        self._emit(Event(EventKind.FAILED, error=exc))
                        raise
                    attempt += 1
                    if self.max_attempts is not None and attempt >= self.max_attempts:
                        self._emit(Event(EventKind.FAILED, error=exc, attempt=attempt))
                        raise
                    delay = backoff_delay(attempt, self.backoff_base, self.backoff_max, self._rng)
                    self._emit(Event(EventKind.RETRYING, error=exc, attempt=attempt, delay=delay))
                    try:
                        await self._until_stopped(asyncio.sleep(delay))
                    except _Stopped:
                        break
                    continue
                attempt = 0
                if self._stopping:  # stop() came as the connection was made
                    with contextlib.suppress(Exception):
                        await asyncio.wait_for(session.close(timeout=1.0), 2.0)
                    break
                err = await self._serve(session)
                if self._stopping:
                    break
                if err is not None and (self.permanent(err) or not _transient(err)):
                    self._emit(Event(EventKind.FAILED, error=err))
                    raise err
                # A lost connection: the first attempt after it follows a short jittered pause.
                attempt = 0
                delay = backoff_delay(1, self.backoff_base, self.backoff_max, self._rng)
                try:
                    await self._until_stopped(asyncio.sleep(delay))
                except _Stopped:
                    break
            self._emit(Event(EventKind.STOPPED))
        except asyncio.CancelledError:
            self._emit(Event(EventKind.STOPPED))
            raise
        finally:
            self._live = None
            s, self._session = self._session, None
            if s is not None and not s.closed:
                with contextlib.suppress(Exception):
                    s.transport.abort()
            self._poke()

    async def stop(self, timeout: float = 5.0) -> None:
        """Close the stream (bounded by ``timeout``) and wait for :meth:`run` to end.

        Queued stanzas stay in the queue (see :attr:`queued`); call
        :meth:`flush` first to send them.  Safe to call at any point, and
        more than once.
        """
        self._stopping = True
        if self._stop_evt is not None:
            self._stop_evt.set()
        task = self._task
        s = self._session
        if s is not None and not s.closed:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(s.close(timeout=timeout), timeout + 1.0)
        if task is None or task is asyncio.current_task():
            return
        if not task.done():
            await asyncio.wait([task], timeout=timeout)
        if not task.done():
            task.cancel()
            await asyncio.wait([task], timeout=timeout)
        if task.done() and not task.cancelled():
            task.exception()  # run's own outcome belongs to whoever awaits it

    async def _until_stopped(self, coro: Coroutine[Any, Any, _T]) -> _T:
        """Await ``coro`` unless :meth:`stop` comes first (then cancel it, raise _Stopped)."""
        assert self._stop_evt is not None
        if self._stopping:
            coro.close()
            raise _Stopped
        work = asyncio.ensure_future(coro)
        stop = asyncio.ensure_future(self._stop_evt.wait())
        try:
            await asyncio.wait([work, stop], return_when=asyncio.FIRST_COMPLETED)
        finally:
            stop.cancel()
            if not work.done():
                work.cancel()
                with contextlib.suppress(BaseException):
                    await work
            with contextlib.suppress(BaseException):
                await stop
        if work.cancelled():
            raise _Stopped
        return work.result()

    def _features(self) -> list[Any]:
        feats: list[Any] = client_features(
            self.jid, self._password, tls_context=self.tls_context, mechanisms=self.mechanisms, timeout=self.timeout
        )
        feats.append(
            sm(self.state, resume=self.resume, ack_every=self.ack_every, ack_after=self.ack_after, timeout=self.timeout)
        )
        return feats

    def _note_in(self, data: bytes) -> None:
        self._last_in = time.monotonic()
        if self._tee_in is not None:
            self._tee_in(data)

    def _note_out(self, data: bytes) -> None:
        self._last_out = time.monotonic()
        if self._tee_out is not None:
            self._tee_out(data)

    async def _connect(self) -> Session:
        session = await dial_client_session(
            self.jid,
            self._password,
            features=self._features(),
            tls_context=self.tls_context,
            host=self.host,
            port=self.port,
            direct_tls=self.direct_tls,
            timeout=self.timeout,
            lang=self.lang,
            tee_in=self._note_in,
            tee_out=self._note_out,
        )
        self._session = session
        return session

    async def _serve(self, session: Session) -> BaseException | None:
        """Serve one session until it ends; return what ended it (``None``: closed by the peer)."""
        resumed = session.sm is not None and self.state.resumed
        acked_before = self.state.acked
        self.connections += 1
        self.resumptions += resumed
        self._dead = None
        now = time.monotonic()
        self._last_in = self._last_out = now
        serve = asyncio.ensure_future(session.serve(self.handler))
        live = asyncio.ensure_future(self._liveness(session))
        err: BaseException | None = None
        try:
            await asyncio.sleep(0)  # serve is reading before anything waits on a reply
            # What waited for a connection leaves now, after what stream
            # management sent again; sends made meanwhile queue behind it.
            self._emit(Event(EventKind.RESUMED if resumed else EventKind.CONNECTED, session=session))
            q = self._queue
            try:
                if self.on_session is not None:
                    await self.on_session(session, resumed)
                while q and not serve.done():
                    await session.send(q[0])
                    q.popleft()
            except SessionClosedError:
                pass
            if not serve.done():
                self._live = session
                self._poke()
            await asyncio.wait([serve])
            err = serve.exception()
        finally:
            self._live = None
            live.cancel()
            if not serve.done():
                session.transport.abort()
                serve.cancel()
            with contextlib.suppress(BaseException):
                await asyncio.wait([serve, live], timeout=self.timeout)
            if serve.done() and not serve.cancelled():
                serve.exception()
            if live.done() and not live.cancelled():
                live.exception()
        if self._dead is not None and isinstance(err, SessionClosedError):
            err = self._dead
        if resumed and self._dead is not None and self.state.acked == acked_before:
            # The resumed stream answered nothing, not even an ack: the
            # server may hold broken state for it (Prosody 0.12 parses a
            # resumed stream with the old connection's parser, which can be
            # stuck inside a stanza).  Resuming it again would fail the same
            # way: the next connection binds anew and sends again what is
            # unacknowledged.
            self.state.id, self.state.resumable = None, False
        self._session = None
        if not self._stopping or err is not None:
            self._emit(Event(EventKind.DISCONNECTED, session=session, error=err))
        return err

    async def _liveness(self, session: Session) -> None:
        """Whitespace keepalives and pings on one session, until it ends."""
        keep, every, wait = self.keepalive, self.ping_interval, self.ping_timeout
        if keep is None and every is None:
            return
        while not session.closed:
            now = time.monotonic()
            due = []
            if keep is not None:
                due.append(self._last_out + keep)
            if every is not None:
                due.append(self._last_in + every)
            delay = min(due) - now
            if delay > 0:
                await asyncio.sleep(delay)
                continue
            if every is not None and now - self._last_in >= every:
                try:
                    await _ping.send(session, None, timeout=wait)
                except _stanza.StanzaError:
                    pass  # an error reply still proves the server is there
                except TimeoutError:
                    if time.monotonic() - self._last_in < wait:
                        continue  # bytes came meanwhile: slow, not dead
                    self._dead = DeadPeerError(f"no answer to a ping within {wait:g} seconds")
                    session.transport.abort()
                    return
                except (SessionClosedError, RuntimeError):
                    return
                self._last_in = max(self._last_in, time.monotonic())
                continue
            if keep is not None and now - self._last_out >= keep:
                try:
                    session.write_raw(b" ")
                except (SessionClosedError, OSError):
                    return

    # ---------------------------------------------------------- events

    def _emit(self, ev: Event) -> None:
        self.events.append(ev)
        self.event_count += 1
        cb = self.on_event
        if cb is not None:
            cb(ev)
        self._poke()

    def _poke(self) -> None:
        if self._changed is not None:
            self._changed.set()

    async def next_event(self, *kinds: EventKind, since: int = 0, timeout: float = 30.0) -> Event:
        """The first event of one of ``kinds`` (any, when none are given)
        that happened after the first ``since`` events (a past value of
        :attr:`event_count`), waiting for it up to ``timeout`` seconds
        (``TimeoutError``)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            skip = max(0, since - (self.event_count - len(self.events)))
            for ev in list(self.events)[skip:]:
                if not kinds or ev.kind in kinds:
                    return ev
            await self._wait_change(deadline)

