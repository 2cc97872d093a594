"""Stream Management (XEP-0198): acknowledgements, and resumption after a lost connection.

Both sides count the stanzas they receive (``h``, modulo 2**32).  The
sender keeps every stanza it wrote until the peer's ``<a h='...'/>`` says
it was handled, asks for that answer with ``<r/>`` every ``ack_every``
stanzas and ``ack_after`` seconds after an unacknowledged one, and, on a new
connection, either *resumes* the old stream (``<resume previd h/>``: no
bind; the stanzas the peer did not get are sent again, exactly those) or,
when the server refuses (``<failed h/>``), drops what the server says it
had, binds a new session and sends the rest on it.

The initiating side is the :func:`sm` stream feature over an
:class:`SMState` that the caller keeps between connections::

    state = SMState()
    features = [*client_features(jid, password), sm(state)]
    session = await dial_client_session(jid, password, features=features)
    ...  # the connection is lost
    session = await dial_client_session(jid, password, features=features)
    # resumed when the server still holds the stream: state.resumed is True

A stanza counts as handled (``h``) when the session has received it and
queued it for its handler: :meth:`xmpp.session.Session.serve` still runs
the handler on everything queued when the connection is lost, so nothing
counted is dropped by the library, but an acknowledgement may leave before
the handler has run.

The receiving side is :func:`sm_server` over an :class:`SMStore`, which
holds the state of resumable streams for ``max`` seconds after their
connection was lost.  A session with stream management on has
``session.sm``, a :class:`StreamManager` (counters, unacknowledged
stanzas, :meth:`StreamManager.wait_acked`).

>>> st = SMState()
>>> st.h_in, st.h_out, len(st.unacked)
(0, 0, 0)
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from xmpp.jid import JID
from xmpp.negotiator import StreamFeature
from xmpp.stanza import new_id
from xmpp.stream import Condition, StreamError
from xmpp.xmlstream import Element, Name, StartElement, Token

if TYPE_CHECKING:
    from xmpp.session import Session

__all__ = [
    "MASK",
    "NS",
    "SMState",
    "SMStore",
    "StreamManager",
    "sm",
    "sm_server",
]

#: The namespace of XEP-0198 version 3.
NS = "urn:xmpp:sm:3"
#: Counters wrap at 2**32: every arithmetic on ``h`` is ``& MASK``.
MASK = 0xFFFFFFFF
_FEATURE = Name(NS, "sm")
_STANZAS = frozenset(("message", "presence", "iq"))
_NS_STANZAS = "urn:ietf:params:xml:ns:xmpp-stanzas"
_TRUE = ("true", "1")


def _attr(value: str) -> str:
    return value.replace("&", "&amp;").replace("'", "&apos;").replace("<", "&lt;")


def _parse_h(el: Element) -> int | None:
    raw = el.get("h")
    if raw is None:
        return None
    try:
        h = int(raw)
    except ValueError:
        raise StreamError(Condition.INVALID_XML, f"h is not a number: {raw!r}") from None
    if not 0 <= h <= MASK:
        raise StreamError(Condition.INVALID_XML, f"h is not an unsigned 32-bit number: {raw!r}")
    return h


@dataclasses.dataclass(eq=False)
class SMState:
    """What one side knows of a managed stream; keep it to resume later.

    ``id`` is the stream's id for resumption (``None``: not resumable, or
    not enabled yet), ``resumable`` whether the peer agreed to resume,
    ``max`` the longest the server keeps it after a loss (seconds, or
    ``None`` when it did not say), ``location`` where the server prefers
    the resumption (``host`` or ``host:port``, or ``None``), ``jid`` the
    bound full JID.  ``h_in`` counts the stanzas received, ``h_out`` those
    sent, both modulo 2**32; ``unacked`` holds ``(start, bytes)`` of every
    sent stanza the peer has not acknowledged, oldest first; ``acked`` is
    the number of stanzas the peer acknowledged since this state was made
    (it does not wrap).  ``resumed`` says whether the last connection
    resumed the stream (rather than binding anew).  ``on_ack``, when set, is
    called with the ``StartElement`` of each stanza as it is acknowledged.
    """

    id: str | None = None
    resumable: bool = False
    max: int | None = None
    location: str | None = None
    jid: JID | None = None
    h_in: int = 0
    h_out: int = 0
    unacked: collections.deque[tuple[StartElement | None, bytes]] = dataclasses.field(
        default_factory=collections.deque
    )
    acked: int = 0
    resumed: bool = False
    lost_at: float | None = None
    on_ack: Callable[[StartElement | None], object] | None = None

    @property
    def peer_h(self) -> int:
        """The peer's count of our stanzas as of its last acknowledgement (modulo 2**32)."""
        return (self.h_out - len(self.unacked)) & MASK

    def ack(self, h: int) -> int:
        """Take the peer's ``h``: drop the stanzas it acknowledges, return how many.

        Raises :class:`xmpp.stream.StreamError` (``undefined-condition``,
        XEP-0198's handled-count-too-high) when ``h`` acknowledges more than
        was sent.
        """
        n = (h - self.peer_h) & MASK
        if n > len(self.unacked):
            raise StreamError(
                Condition.UNDEFINED_CONDITION,
                f"handled-count-too-high: h={h}, but only {self.h_out} stanzas were sent",
            )
        pop = self.unacked.popleft
        cb = self.on_ack
        for _ in range(n):
            start, _data = pop()
            if cb is not None:
                cb(start)
        self.acked += n
        return n


class SMStore:
    """The receiving side's resumable streams: id to :class:`SMState`.

    A state is kept while its session lives and ``max`` seconds after its
    connection was lost; resuming takes it over (a session still attached to
    it is aborted first).  :meth:`expire` drops the expired ones (it also
    runs on every registration and lookup) and remembers their ``h`` (the
    last 1,024 of them), so that a late ``<resume/>`` is answered with
    ``<failed h='...'/>``: the peer then knows what to send again.
    """

    def __init__(self, max: int = 300) -> None:
        self.max = max
        self._states: dict[str, tuple[SMState, Session | None]] = {}
        self._expired: collections.OrderedDict[str, int] = collections.OrderedDict()

    def __len__(self) -> int:
        return len(self._states)

    def register(self, state: SMState, session: Session | None = None) -> None:
        """Keep ``state`` (which has an ``id``) as served by ``session``."""
        assert state.id is not None
        self.expire()
        self._states[state.id] = (state, session)

    def expire(self, now: float | None = None) -> None:
        """Drop every state whose connection was lost more than ``max`` seconds ago."""
        now = time.monotonic() if now is None else now
        dead = [k for k, (st, _) in self._states.items() if st.lost_at is not None and now - st.lost_at > self.max]
        for k in dead:
            self._expired[k] = self._states.pop(k)[0].h_in
            while len(self._expired) > 1024:
                self._expired.popitem(last=False)

    def expired_h(self, previd: str) -> int | None:
        """The ``h`` of stream ``previd`` if it expired recently, else ``None``."""
        return self._expired.get(previd)

    def take(self, previd: str) -> SMState | None:
        """The state of stream ``previd`` for resumption, or ``None`` (unknown or expired)."""
        self.expire()
        entry = self._states.get(previd)
        if entry is None:
            return None
        state, old = entry
        if old is not None and old._sm is not None:
            old._sm.detach()
            with contextlib.suppress(Exception):
                old.transport.abort()
        return state


class StreamManager:
    """Stream management on one session: ``session.sm`` while it is on.

    It counts what the session receives and sends into its :attr:`state`,
    answers ``<r/>``, takes ``<a/>``, and asks for acknowledgements by the
    window it was given.  On the receiving side it also answers
    ``<enable/>``.  Made by :func:`sm` and :func:`sm_server`, not directly.
    """

    def __init__(
        self,
        session: Session,
        state: SMState | None,
        *,
        ack_every: int,
        ack_after: float | None,
        server: bool = False,
        store: SMStore | None = None,
        server_max: int | None = None,
    ) -> None:
        self.session = session
        #: The counters and unacknowledged stanzas (``None`` on a receiving
        #: side before ``<enable/>``).
        self.state = state
        self.enabled = state is not None
        self.ack_every = max(1, ack_every)
        self.ack_after = ack_after
        self._server = server
        self._store = store
        self._server_max = server_max
        self._since_request = 0
        self._request_scheduled = False
        self._timer: asyncio.TimerHandle | None = None
        self._waiters: list[asyncio.Future[None]] = []
        self._loop = asyncio.get_running_loop()

    # --------------------------------------------------------------- views

    @property
    def h_in(self) -> int:
        """Stanzas received on the managed stream (modulo 2**32)."""
        return self.state.h_in if self.state is not None else 0

    @property
    def h_out(self) -> int:
        """Stanzas sent on the managed stream (modulo 2**32)."""
        return self.state.h_out if self.state is not None else 0

    @property
    def unacked(self) -> list[bytes]:
        """The bytes of each sent stanza not yet acknowledged, oldest first."""
        return [d for _, d in self.state.unacked] if self.state is not None else []

    # ------------------------------------------------------- session hooks

    def install(self) -> None:
        """Attach to the session, taking over elements it already queued
        (they arrived after ``<enabled/>``/``<resumed/>``, in the same read)."""
        s = self.session
        s._sm = self
        q = s._queue
        keep = [el for el in q if not self.on_element(el)]
        q.clear()
        q.extend(keep)

    def detach(self) -> None:
        """Stop counting into the state (another session took it over)."""
        self.enabled = False
        self._cancel_timer()

    def on_element(self, el: Element) -> bool:
        """A received top-level element: count a stanza, handle a nonza of
        ours (then return True: the handler never sees it)."""
        name = el.name
        if name.space == NS:
            local = name.local
            if local == "r":
                if self.enabled:
                    self._answer()
                return True
            if local == "a":
                if self.enabled and self.state is not None:
                    h = _parse_h(el)
                    if h is not None:
                        try:
                            self.state.ack(h)
                        except StreamError as err:
                            self.session._input_failed(err)
                            return True
                        self._after_ack()
                return True
            if local == "enable" and self._server:
                self._enable(el)
                return True
            return False
        st = self.state
        if self.enabled and st is not None and name.local in _STANZAS:
            st.h_in = (st.h_in + 1) & MASK
        return False

    def on_sent(self, data: bytes, start: StartElement | None) -> None:
        """A stanza was written: count it and keep it until acknowledged."""
        st = self.state
        if not self.enabled or st is None or start is None or start.name.local not in _STANZAS:
            return
        st.unacked.append((start, data))
        st.h_out = (st.h_out + 1) & MASK
        self._since_request += 1
        if self._since_request >= self.ack_every and not self._request_scheduled:
            self._request_scheduled = True
            self._loop.call_soon(self.request_ack)
        elif self._timer is None and self.ack_after is not None:
            self._timer = self._loop.call_later(self.ack_after, self._on_timer)

    def on_lost(self) -> None:
        """The connection was lost: note when (for ``max``) and stop the timers."""
        if self.state is not None and self.enabled:
            self.state.lost_at = time.monotonic()
        self._cancel_timer()
        for w in self._waiters:
            if not w.done():
                w.set_exception(ConnectionError("the connection was lost before every stanza was acknowledged"))
        self._waiters.clear()

    # ------------------------------------------------------------- actions

    def request_ack(self) -> None:
        """Send ``<r/>`` now (nothing when the stream is closed)."""
        self._request_scheduled = False
        self._since_request = 0
        self._cancel_timer()
        if not self.enabled:
            return
        with contextlib.suppress(Exception):
            self.session.write_raw(b"<r xmlns='urn:xmpp:sm:3'/>")

    async def wait_acked(self, timeout: float | None = 30.0) -> None:
        """Ask for an acknowledgement and wait until every sent stanza is acknowledged.

        Raises ``TimeoutError`` after ``timeout`` seconds and
        ``ConnectionError`` when the connection is lost first.
        """
        if self.state is None or not self.state.unacked:
            return
        fut: asyncio.Future[None] = self._loop.create_future()
        self._waiters.append(fut)
        self.request_ack()
        try:
            await asyncio.wait_for(fut, timeout)
        except asyncio.TimeoutError:
            raise TimeoutError(f"{len(self.state.unacked)} stanzas still unacknowledged") from None

    def _answer(self) -> None:
        assert self.state is not None
        with contextlib.suppress(Exception):
            self.session.write_raw(b"<a xmlns='urn:xmpp:sm:3' h='%d'/>" % self.state.h_in)

    def _after_ack(self) -> None:
        st = self.state
        if st is not None and not st.unacked:
            self._cancel_timer()
            for w in self._waiters:
                if not w.done():
                    w.set_result(None)
            self._waiters.clear()

    def _on_timer(self) -> None:
        self._timer = None
        if self.state is not None and self.state.unacked:
            self.request_ack()

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _resend(self, items: list[tuple[StartElement | None, bytes]]) -> None:
        """Write stanzas again (counted and kept anew), then ask for an ack."""
        s = self.session
        for start, data in items:
            s._write_element(data, start)
        if items and self.enabled:
            self._request_scheduled = True
            self._loop.call_soon(self.request_ack)

    # -------------------------------------------------- receiving side

    def _enable(self, el: Element) -> None:
        s = self.session
        peer = s.remote_addr
        if self.enabled or peer is None or not peer.resource:
            with contextlib.suppress(Exception):
                s.write_raw(
                    b"<failed xmlns='urn:xmpp:sm:3'><unexpected-request xmlns='%s'/></failed>"
                    % _NS_STANZAS.encode()
                )
            return
        resume = el.get("resume") in _TRUE and self._store is not None
        st = SMState(jid=peer)
        out = "<enabled xmlns='urn:xmpp:sm:3'"
        if resume and self._store is not None:
            st.id = new_id()
            st.resumable = True
            st.max = self._server_max
            self._store.register(st, s)
            out += f" id='{_attr(st.id)}' resume='true'"
            if st.max is not None:
                out += f" max='{st.max}'"
        out += "/>"
        self.state = st
        self.enabled = True
        with contextlib.suppress(Exception):
            s.write_raw(out.encode())


def _nonza(local: str, **attrs: str) -> bytes:
    a = "".join(f" {k}='{_attr(v)}'" for k, v in attrs.items())
    return f"<{local} xmlns='{NS}'{a}/>".encode()


class _Offer:
    """The initiating side's parse data for ``<sm/>``: carries the post-bind step."""

    def __init__(self, run_after_bind: Callable[[Session], Any]) -> None:
        self.after_bind = run_after_bind


def sm(
    state: SMState | None = None,
    *,
    resume: bool = True,
    max: int | None = None,
    ack_every: int = 16,
    ack_after: float | None = 5.0,
    timeout: float = 30.0,
) -> StreamFeature:
    """The initiating side of stream management, over ``state``.

    Add it to a client's features after bind's (:func:`xmpp.client.client_features`).
    When ``state`` holds a resumable stream (an ``id``), the feature tries
    ``<resume/>`` before binding: on ``<resumed/>`` the session is ready
    without a bind, the stanzas the server did not acknowledge are sent
    again and ``state.resumed`` is true; on ``<failed/>`` those the server
    says it had are dropped and the session binds.  After a bind it sends
    ``<enable/>`` (asking for resumption when ``resume``, for ``max``
    seconds when given) and then any stanza still unacknowledged from
    before.  ``ack_every`` and ``ack_after`` are the window: an ``<r/>`` is
    sent after that many stanzas, and that many seconds after a stanza that
    is still unacknowledged (``None``: no timer).  ``timeout`` bounds each
    wait on the server.

    A server that refuses ``<enable/>`` leaves the session unmanaged
    (``session.sm`` is ``None``); what was left over from before is still
    sent, once, but no longer tracked.
    """
    from xmpp.session import SessionState

    st = state if state is not None else SMState()

    def manager(session: Session) -> StreamManager:
        return StreamManager(session, st, ack_every=ack_every, ack_after=ack_after)

    async def after_bind(session: Session) -> None:
        leftovers = list(st.unacked)
        st.unacked.clear()
        st.id, st.resumable, st.resumed = None, False, False
        attrs: dict[str, str] = {}
        if resume:
            attrs["resume"] = "true"
            if max is not None:
                attrs["max"] = str(max)
        session.write_raw(_nonza("enable", **attrs))
        # The server may deliver stanzas (queued messages, presences) before
        # its answer: keep them, in order, for serve.  They come before
        # <enabled/>, so they are not counted: they go back into the queue
        # only after the manager has counted what came after <enabled/>.
        early: list[Element] = []
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            left = deadline - loop.time()  # (``max`` is this function's parameter)
            el = await session.read_element(left if left > 0 else 0.0)
            if el.name.space == NS:
                break
            early.append(el)
        if el.name == Name(NS, "enabled"):
            st.h_in = st.h_out = 0
            st.id = el.get("id")
            st.resumable = st.id is not None and el.get("resume") in _TRUE
            raw_max = el.get("max")
            st.max = int(raw_max) if raw_max is not None and raw_max.isdigit() else None
            st.location = el.get("location")
            st.jid = session.local_addr
            st.lost_at = None
            m = manager(session)
            m.install()
            session._queue.extendleft(reversed(early))
            m._resend(leftovers)
            return
        session._queue.extendleft(reversed(early))
        if el.name != Name(NS, "failed"):
            raise StreamError(Condition.UNDEFINED_CONDITION, f"expected <enabled/> or <failed/>, got {el.name.local}")
        for start, data in leftovers:
            session._write_element(data, start)

    def parse(session: Session, el: Element) -> tuple[bool, Any]:
        return False, _Offer(after_bind)

    async def negotiate(session: Session, data: Any) -> tuple[int, bool]:
        if data is None or st.id is None or not st.resumable:
            return 0, False
        session.write_raw(_nonza("resume", previd=st.id, h=str(st.h_in)))
        el = await session.read_element(timeout)
        if el.name == Name(NS, "resumed"):
            h = _parse_h(el)
            if h is not None:
                st.ack(h)
            pending = list(st.unacked)
            st.unacked.clear()
            st.h_out = (st.h_out - len(pending)) & MASK
            st.resumed = True
            st.lost_at = None
            if st.jid is not None:
                session.local_addr = st.jid
            m = manager(session)
            m.install()
            m._resend(pending)
            return int(SessionState.READY), False
        if el.name != Name(NS, "failed"):
            raise StreamError(Condition.UNDEFINED_CONDITION, f"expected <resumed/> or <failed/>, got {el.name.local}")
        h = _parse_h(el)
        if h is not None:
            st.ack(h)
        st.id, st.resumable, st.resumed = None, False, False
        return 0, False

    return StreamFeature(
        _FEATURE,
        necessary=int(SessionState.AUTHN),
        prohibited=int(SessionState.READY),
        parse=parse,
        negotiate=negotiate,
    )


def sm_server(
    store: SMStore | None = None,
    *,
    ack_every: int = 16,
    ack_after: float | None = 5.0,
) -> StreamFeature:
    """The receiving side of stream management.

    Advertises ``<sm/>`` once the peer is authenticated, answers
    ``<enable/>`` after bind (resumable, with the store's ``max``, when a
    ``store`` is given), counts, answers ``<r/>`` and asks for
    acknowledgements by the same window as :func:`sm`.  A ``<resume/>`` in
    place of bind takes the state of the previous stream from ``store``:
    the peer's ``h`` acknowledges what the server sent, the session gets the
    previous bound JID, ``<resumed/>`` carries the server's ``h`` and what
    the peer had not received is sent again; an unknown or expired id is
    answered with ``<failed/>`` (``item-not-found``) and the peer binds.
    """
    from xmpp.session import SessionState

    def list_(session: Session) -> tuple[bool, list[Token]]:
        if session._sm is None:
            session._sm = StreamManager(
                session,
                None,
                ack_every=ack_every,
                ack_after=ack_after,
                server=True,
                store=store,
                server_max=store.max if store is not None else None,
            )
        s = StartElement(_FEATURE)
        return False, [s, s.end()]

    async def negotiate(session: Session, el: Element) -> tuple[int, bool]:
        if el.name != Name(NS, "resume"):
            session.write_raw(
                b"<failed xmlns='urn:xmpp:sm:3'><unexpected-request xmlns='%s'/></failed>" % _NS_STANZAS.encode()
            )
            return 0, False
        previd = el.get("previd") or ""
        h = _parse_h(el)
        prev = store.take(previd) if store is not None else None
        if prev is None or prev.jid is None:
            old_h = store.expired_h(previd) if store is not None else None
            hattr = b"" if old_h is None else b" h='%d'" % old_h
            session.write_raw(
                b"<failed xmlns='urn:xmpp:sm:3'%s><item-not-found xmlns='%s'/></failed>"
                % (hattr, _NS_STANZAS.encode())
            )
            return 0, False
        if h is not None:
            prev.ack(h)
        pending = list(prev.unacked)
        prev.unacked.clear()
        prev.h_out = (prev.h_out - len(pending)) & MASK
        prev.lost_at = None
        prev.resumed = True
        session.remote_addr = prev.jid
        session.write_raw(_nonza("resumed", previd=previd, h=str(prev.h_in)))
        assert store is not None
        m = StreamManager(
            session, prev, ack_every=ack_every, ack_after=ack_after, server=True, store=store, server_max=store.max
        )
        store.register(prev, session)
        m.install()
        m._resend(pending)
        # READY ends the negotiation here: resumption replaces bind.
        return int(SessionState.READY), True

    return StreamFeature(
        _FEATURE,
        necessary=int(SessionState.AUTHN),
        prohibited=int(SessionState.READY),
        list=list_,
        negotiate=negotiate,
    )
