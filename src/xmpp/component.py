"""External components (XEP-0114): the handshake, both sides, as a Negotiator.

A component is a service (a gateway, a bot farm, a game server) that
connects to an XMPP server's component port and is given a whole domain,
say ``gateway.example.org``: every stanza addressed to that domain or to
an address at it is routed to the component, which sends stanzas *from*
addresses at it.  There are no stream features: the component opens a
stream in the namespace ``jabber:component:accept`` with ``to`` set to its
domain, the server answers with a header carrying a stream id, and the
component proves it knows the shared secret by sending
``<handshake>`` with the lowercase hex SHA-1 of the stream id followed by
the secret (:func:`handshake_digest`).  The server answers with an empty
``<handshake/>``, or ends the stream with a stream error:
``not-authorized`` (wrong secret), ``host-unknown`` (no such component
domain) or ``conflict`` (the domain is already connected).

The handshake is one :data:`xmpp.session.Negotiator`
(:func:`negotiator`), run by :func:`xmpp.session.new_session` and
:func:`xmpp.session.receive_session` like the RFC 6120 one; everything
above it, :meth:`~xmpp.session.Session.serve`,
:class:`~xmpp.mux.ServeMux`, :meth:`~xmpp.session.Session.send_iq` and the
extensions, works unchanged.  The stanza namespace of these sessions is
:data:`xmpp.stream.NS_COMPONENT`.

Initiating side (the component)::

    session = await dial_session("gateway.example.org", secret, "127.0.0.1", 5347)
    async with session:
        await session.serve(ServeMux(NS_COMPONENT, ...))

Receiving side (a server accepting components)::

    registry = ComponentRegistry()
    session = await receive_session(transport, secrets={"gw.example.org": s}, registry=registry)

**The ``from`` address.**  A server routes a component's stanza by its
``from``, so a component must set it on everything it sends.  The session
the component side gets is a :class:`ComponentSession`: a thin subclass of
:class:`~xmpp.session.Session` (the negotiator gives the session that class
when it starts, so no change to the session module is needed) whose
sending paths (:meth:`~xmpp.session.Session.send`, ``send_message``,
``send_presence``, :meth:`~xmpp.session.Session.send_iq`, the automatic
error replies of ``serve`` and
:meth:`~xmpp.session.Session.token_writer`) add ``from=<component domain>``
to a top-level ``message``, ``presence`` or ``iq`` that has none.  A stanza
that has a ``from`` (any address at the domain, such as
``user@gateway.example.org``) is sent as it is; a stanza dataclass without
one gets its ``from_`` set, as it gets its ``id``.

**Checking ``from`` on the receiving side** is the application's job: the
receiving session delivers what the component sends as it is; a server
should refuse stanzas whose ``from`` is not at the component's domain
(:attr:`xmpp.session.Session.remote_addr`).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import inspect
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator, Mapping
from typing import Any, Union, cast

from xmpp import stanza as _stanza
from xmpp import xmlstream
from xmpp.dial import dial
from xmpp.jid import JID, JIDError
from xmpp.negotiator import StreamConfig
from xmpp.session import Negotiator, Session, SessionClosedError, SessionState, protocol_factory
from xmpp.session import new_session as _new_session
from xmpp.session import receive_session as _receive_session
from xmpp.stream import NS_COMPONENT, NS_STREAMS, Condition, StreamError
from xmpp.xmlstream import Attr, Element, EndElement, Name, StartElement, Token

__all__ = [
    "HANDSHAKE",
    "ComponentRegistry",
    "ComponentSession",
    "Secrets",
    "dial_session",
    "handshake_digest",
    "negotiator",
    "new_session",
    "receive_session",
]

#: The name of the handshake element.
HANDSHAKE = Name(NS_COMPONENT, "handshake")
#: The component domains a receiving side knows, with their secrets: a
#: mapping, or a function of the domain (sync or async) giving the secret or
#: ``None`` for an unknown domain.
Secrets = Union[Mapping[str, str], Callable[[str], Union[str, None, Awaitable[Union[str, None]]]]]

_Tee = Callable[[bytes], object]
_STANZA_NAMES = frozenset(("message", "presence", "iq"))
_FROM = Name("", "from")
_READY_BITS = SessionState.AUTHN | SessionState.READY


def handshake_digest(stream_id: str, secret: str) -> str:
    """The handshake value: lowercase hex SHA-1 of ``stream_id + secret`` (UTF-8).

    >>> handshake_digest("3BF96D32", "sesame")
    '7a98dc4c9e92493d7fd66a25364c862637789c45'
    """
    return hashlib.sha1((stream_id + secret).encode("utf-8")).hexdigest()


def _domain(addr: JID | str) -> JID:
    j = addr if isinstance(addr, JID) else JID.parse(addr)
    if j.local or j.resource:
        raise ValueError(f"a component address is a bare domain, not {str(j)!r}")
    return j


# ---------------------------------------------------------------- the session


class ComponentSession(Session):
    """The session of a component: a :class:`~xmpp.session.Session` that puts
    ``from=<component domain>`` on every outgoing stanza that lacks one.

    It is never constructed directly: :func:`negotiator` gives the
    initiating session this class when the handshake starts.
    ``component`` is the domain stamped.
    """

    #: The component's domain, the ``from`` of stanzas sent without one.
    component: JID
    _from_str: str

    def _encode_stanza(self, obj: Any) -> tuple[bytes, StartElement | None]:
        if isinstance(obj, (_stanza.Message, _stanza.Presence, _stanza.IQ)):
            if obj.from_ is None:
                obj.from_ = self.component
            return super()._encode_stanza(obj)
        if type(obj) is Element:
            start = obj.start
            if start.name.local not in _STANZA_NAMES or start.get("from") is not None:
                return super()._encode_stanza(obj)
            toks: Iterator[Token] = iter(obj)
            next(toks)
            return super()._encode_stanza(_chain(self._stamped(start), toks))
        toks = iter(obj)
        try:
            first = next(toks)
        except StopIteration:
            raise ValueError("nothing to send: the token reader is empty") from None
        if (
            isinstance(first, StartElement)
            and first.name.local in _STANZA_NAMES
            and first.get("from") is None
        ):
            first = self._stamped(first)
        return super()._encode_stanza(_chain(first, toks))

    async def send_message(
        self, msg: _stanza.Message, payload: Iterable[Token] | None = None
    ) -> None:
        """As :meth:`xmpp.session.Session.send_message`; a message without
        ``from_`` gets the component's domain."""
        if msg.from_ is None:
            msg.from_ = self.component
        await super().send_message(msg, payload)

    async def send_presence(
        self, presence: _stanza.Presence, payload: Iterable[Token] | None = None
    ) -> None:
        """As :meth:`xmpp.session.Session.send_presence`; a presence without
        ``from_`` gets the component's domain."""
        if presence.from_ is None:
            presence.from_ = self.component
        await super().send_presence(presence, payload)

    def _outgoing_start(self, start: StartElement) -> StartElement:
        if start.get("from") is not None:
            return start
        return self._stamped(start)

    def _stamped(self, start: StartElement) -> StartElement:
        return StartElement(start.name, (*start.attrs, Attr(_FROM, self._from_str)))

    @contextlib.asynccontextmanager
    async def token_writer(self) -> AsyncIterator[Any]:
        """As :meth:`xmpp.session.Session.token_writer`, with ``from`` added
        to each top-level stanza that has none."""
        async with super().token_writer() as w:
            yield _StampingWriter(w, self)


class _StampingWriter:
    """Wraps a session token writer: a top-level stanza start gets a ``from``."""

    def __init__(self, inner: Any, session: ComponentSession) -> None:
        self._inner = inner
        self._s = session
        self._depth = 0

    def write_token(self, tok: Token) -> None:
        """Write one token, stamping ``from`` on a top-level stanza."""
        if isinstance(tok, StartElement):
            if self._depth == 0 and tok.name.local in _STANZA_NAMES and tok.get("from") is None:
                tok = self._s._stamped(tok)
            self._depth += 1
        elif isinstance(tok, EndElement):
            self._depth -= 1
        self._inner.write_token(tok)

    def flush(self) -> None:
        """Write what is buffered."""
        self._inner.flush()


def _chain(first: Token, rest: Iterator[Token]) -> Iterator[Token]:
    yield first
    yield from rest


def _adopt(session: Session, component: JID) -> None:
    """Make ``session`` a :class:`ComponentSession` stamping ``component``.

    The session module builds plain sessions; a component's differs only in
    its sending paths, so the class is switched in place (the subclass adds
    no state of its own to the layout).
    """
    if not isinstance(session, ComponentSession):
        session.__class__ = ComponentSession
    cs = cast(ComponentSession, session)
    cs.component = component
    cs._from_str = str(component)


# ---------------------------------------------------------- who is connected


class ComponentRegistry:
    """The component sessions a receiving side holds, by domain.

    :func:`receive_session` consults it to refuse a second connection for a
    domain already connected (``conflict``), unless ``multiple`` allows it:
    ``True`` for every domain, or a collection of the domains that may have
    several connections at once (as ejabberd's ``domain_balancing`` spreads
    one domain over several components).  Sessions whose input stream has
    ended are forgotten lazily, so nothing needs to unregister them.
    """

    def __init__(self, *, multiple: bool | Iterable[str] = False) -> None:
        """Make an empty registry; see the class documentation for ``multiple``."""
        self._multiple: bool | frozenset[str] = (
            multiple if isinstance(multiple, bool) else frozenset(multiple)
        )
        self._by_domain: dict[str, list[Session]] = {}

    def allows_several(self, domain: str) -> bool:
        """Whether ``domain`` may have more than one connection at once."""
        m = self._multiple
        return m if isinstance(m, bool) else domain in m

    def sessions(self, domain: str) -> list[Session]:
        """The live sessions of ``domain`` (oldest first)."""
        live = [s for s in self._by_domain.get(domain, ()) if not _ended(s)]
        if live:
            self._by_domain[domain] = live
        else:
            self._by_domain.pop(domain, None)
        return live

    def domains(self) -> list[str]:
        """The domains with at least one live session."""
        return [d for d in list(self._by_domain) if self.sessions(d)]

    def claim(self, domain: str, session: Session) -> None:
        """Record ``session`` for ``domain``; raise ``conflict`` if the domain is
        taken and may not have several connections."""
        live = self.sessions(domain)
        if live and not self.allows_several(domain):
            raise StreamError(Condition.CONFLICT, f"{domain} is already connected")
        self._by_domain.setdefault(domain, []).append(session)


def _ended(s: Session) -> bool:
    return bool(s.state & (SessionState.INPUT_STREAM_CLOSED | SessionState.OUTPUT_STREAM_CLOSED))


# ------------------------------------------------------------- the negotiator


def _header(to: str | None, from_: str | None, sid: str | None) -> bytes:
    """A component stream header (no version: XEP-0114 streams have none)."""
    enc = xmlstream.Encoder(ns="")
    attrs = [Attr(Name("", "xmlns"), NS_COMPONENT), Attr(Name("xmlns", "stream"), NS_STREAMS)]
    if to:
        attrs.append(Attr(Name("", "to"), to))
    if from_:
        attrs.append(Attr(Name("", "from"), from_))
    if sid:
        attrs.append(Attr(Name("", "id"), sid))
    enc.write_token(StartElement(Name(NS_STREAMS, "stream"), attrs))
    return b"<?xml version='1.0'?>" + enc.flush()


def _check_header(start: StartElement) -> None:
    """Refuse a header that does not open a component stream."""
    name = start.name
    if name.local != "stream" or name.space != NS_STREAMS:
        raise StreamError(Condition.INVALID_NAMESPACE, "the stream root must be {%s}stream" % NS_STREAMS)
    if start.get("xmlns") != NS_COMPONENT:
        raise StreamError(
            Condition.INVALID_NAMESPACE,
            f"a component stream has the namespace {NS_COMPONENT}, not {start.get('xmlns')!r}",
        )


def negotiator(
    secret: str | None = None,
    *,
    secrets: Secrets | None = None,
    registry: ComponentRegistry | None = None,
    timeout: float = 30.0,
) -> Negotiator:
    """The XEP-0114 handshake as a :data:`xmpp.session.Negotiator`.

    The initiating side (a component; ``secret`` is its secret, and the
    session's ``local_addr`` its domain) sends its header, reads the
    server's, sends the handshake and waits for the empty one; its session
    becomes a :class:`ComponentSession`.  The receiving side (``secrets``
    gives the secret of each domain it serves; ``registry``, if any, keeps
    track of who is connected) answers the header, checks the domain
    (``host-unknown``), the handshake (``not-authorized``) and the registry
    (``conflict``), and sets the session's ``remote_addr`` to the domain.
    Either side gains ``AUTHN | READY`` in one round; every wait on the peer
    is bounded by ``timeout`` seconds.
    """

    async def negotiate(session: Session, data: Any) -> tuple[SessionState, bool, Any]:
        session.set_stanza_ns(NS_COMPONENT)
        if session.state & SessionState.RECEIVED:
            if secrets is None:
                raise ValueError("the receiving side needs secrets")
            await _receive(session, secrets, registry, timeout)
        else:
            if secret is None:
                raise ValueError("the initiating side needs a secret")
            await _initiate(session, secret, timeout)
        return _READY_BITS, False, None

    return negotiate


async def _initiate(session: Session, secret: str, timeout: float) -> None:
    local = session.local_addr
    if local is None:
        raise ValueError("a component session needs its domain as origin")
    _adopt(session, local)
    session.expect_header()
    session.write_raw(_header(str(local), None, None))
    try:
        start = await session.read_header(timeout)
    except asyncio.TimeoutError:
        raise TimeoutError(f"no stream header from the server within {timeout:g} s") from None
    _check_header(start)
    sid = start.get("id") or ""
    if not sid:
        # A server that refuses at once may send no id; its error comes next.
        el = await _read(session, timeout, "a stream error or handshake")
        raise StreamError(Condition.INVALID_XML, f"the server's header has no id (then {el.name.local})")
    digest = handshake_digest(sid, secret)
    try:
        session.write_raw(
            b"<handshake>" + digest.encode("ascii") + b"</handshake>",
            shown=b"<handshake>[redacted]</handshake>",
        )
    except SessionClosedError:
        # The server refused at once and is gone: its stream error, if it
        # sent one, is what to report.
        await _read(session, timeout, "a stream error")
        raise
    el = await _read(session, timeout, "the handshake reply")
    if el.name != HANDSHAKE:
        raise StreamError(
            Condition.INVALID_XML, f"expected the empty <handshake/>, got <{el.name.local}>"
        )


async def _read(session: Session, timeout: float, what: str) -> Element:
    try:
        return await session.read_element(timeout)
    except asyncio.TimeoutError:
        raise TimeoutError(f"no {what} from the peer within {timeout:g} s") from None


async def _receive(
    session: Session, secrets: Secrets, registry: ComponentRegistry | None, timeout: float
) -> None:
    try:
        start = await session.read_header(timeout)
    except asyncio.TimeoutError:
        raise StreamError(Condition.CONNECTION_TIMEOUT, "no stream header in time") from None
    sid = _stanza.new_id()
    to_s = start.get("to") or ""
    try:
        to = JID.parse(to_s) if to_s else None
    except JIDError:
        to = None
    # Our header first, then any stream error (RFC 6120 4.9.1.2).
    session.write_raw(_header(None, str(to) if to is not None else None, sid))
    _check_header(start)
    if to is None or to.local or to.resource:
        raise StreamError(Condition.HOST_UNKNOWN, f"{to_s!r} is not a component domain")
    domain = to.domain
    secret = await _lookup(secrets, domain)
    if secret is None:
        raise StreamError(Condition.HOST_UNKNOWN, f"no component {domain} here")
    try:
        el = await session.read_element(timeout)
    except asyncio.TimeoutError:
        raise StreamError(Condition.CONNECTION_TIMEOUT, "no handshake in time") from None
    if el.name != HANDSHAKE:
        raise StreamError(Condition.NOT_AUTHORIZED, f"expected <handshake>, got <{el.name.local}>")
    got = el.text.strip().lower().encode("ascii", "replace")
    want = handshake_digest(sid, secret).encode("ascii")
    if not hmac.compare_digest(got, want):
        raise StreamError(Condition.NOT_AUTHORIZED, "the handshake does not match the secret")
    if registry is not None:
        registry.claim(domain, session)
    session.remote_addr = to
    session.write_raw(b"<handshake/>")


async def _lookup(secrets: Secrets, domain: str) -> str | None:
    if isinstance(secrets, Mapping):
        return secrets.get(domain)
    v = secrets(domain)
    if inspect.isawaitable(v):
        v = await v
    return v


# ------------------------------------------------------------- constructors


def _config(timeout: float, tee_in: _Tee | None, tee_out: _Tee | None) -> StreamConfig:
    return StreamConfig(tee_in=tee_in, tee_out=tee_out, timeout=timeout)


async def _bounded(coro: Awaitable[Session], timeout: float, what: str) -> Session:
    try:
        return await asyncio.wait_for(coro, timeout)
    except asyncio.TimeoutError:
        raise TimeoutError(f"{what} did not finish within {timeout:g} seconds") from None


async def new_session(
    addr: JID | str,
    secret: str,
    transport: asyncio.Transport,
    *,
    timeout: float = 30.0,
    tee_in: _Tee | None = None,
    tee_out: _Tee | None = None,
    max_stanza_bytes: int = xmlstream.DEFAULT_MAX_STANZA_BYTES,
) -> ComponentSession:
    """Run the component side of the handshake over ``transport``.

    ``addr`` is the component's domain and ``secret`` the secret it shares
    with the server.  Returns a ``READY`` :class:`ComponentSession` whose
    ``local_addr`` and ``remote_addr`` are ``addr``.  Raises the server's
    :class:`~xmpp.stream.StreamError` (``not-authorized``,
    ``host-unknown``, ``conflict``, ...) or ``TimeoutError`` after
    ``timeout`` seconds; on failure the transport is closed.  ``tee_in`` and
    ``tee_out`` see the bytes of each direction (the handshake redacted).
    """
    domain = _domain(addr)
    s = await _bounded(
        _new_session(
            transport,
            domain,
            origin=domain,
            negotiator=negotiator(secret, timeout=timeout),
            config=_config(timeout, tee_in, tee_out),
            max_stanza_bytes=max_stanza_bytes,
        ),
        timeout,
        f"the component handshake for {domain}",
    )
    return cast(ComponentSession, s)


async def dial_session(
    addr: JID | str,
    secret: str,
    host: str,
    port: int,
    *,
    timeout: float = 30.0,
    tee_in: _Tee | None = None,
    tee_out: _Tee | None = None,
    max_stanza_bytes: int = xmlstream.DEFAULT_MAX_STANZA_BYTES,
) -> ComponentSession:
    """Connect to a server's component port (``host``, ``port``, plain TCP)
    and run the handshake as :func:`new_session` does.

    Dialing and handshake together are bounded by ``timeout`` seconds; a
    connection that cannot be made raises :class:`xmpp.dial.DialError`.
    """
    domain = _domain(addr)

    async def run() -> Session:
        transport, _proto, _target = await dial(
            domain.domain, protocol_factory, host=host, port=port, direct_tls=False, timeout=timeout
        )
        try:
            return await new_session(
                domain,
                secret,
                transport,
                timeout=timeout,
                tee_in=tee_in,
                tee_out=tee_out,
                max_stanza_bytes=max_stanza_bytes,
            )
        except BaseException:
            transport.abort()
            raise

    s = await _bounded(run(), timeout, f"connecting component {domain} to {host}:{port}")
    return cast(ComponentSession, s)


async def receive_session(
    transport: asyncio.Transport,
    *,
    secrets: Secrets,
    registry: ComponentRegistry | None = None,
    timeout: float = 30.0,
    tee_in: _Tee | None = None,
    tee_out: _Tee | None = None,
    max_stanza_bytes: int = xmlstream.DEFAULT_MAX_STANZA_BYTES,
) -> Session:
    """Accept a component on ``transport`` (the server side of the handshake).

    ``secrets`` gives the secret of each component domain served (a mapping
    or a function, see :data:`Secrets`); a header asking for another domain
    is answered with ``host-unknown``, a wrong handshake with
    ``not-authorized``.  With a ``registry``, a second connection for a
    domain already connected gets ``conflict`` unless the registry allows
    several; without one nothing is tracked.  Returns a ``READY`` session
    (stanza namespace ``jabber:component:accept``) whose ``remote_addr`` is
    the component's domain.  Every failure sends the stream error to the
    component, closes the transport and raises the same
    :class:`~xmpp.stream.StreamError` here; a component that says nothing
    for ``timeout`` seconds gets ``connection-timeout``.
    """
    s = await _bounded(
        _receive_session(
            transport,
            cast(str, None),  # our own address: a component server has none to offer
            negotiator=negotiator(secrets=secrets, registry=registry, timeout=timeout),
            config=_config(timeout, tee_in, tee_out),
            max_stanza_bytes=max_stanza_bytes,
        ),
        timeout + 1.0,
        "accepting a component",
    )
    return s
