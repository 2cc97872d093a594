"""Stream features as data, and the RFC 6120 negotiator that runs them.

A :class:`StreamFeature` (mellium's ``StreamFeature``) is a frozen record of
a name, the session state bits it needs (``necessary``) and forbids
(``prohibited``), and three callables:

``list(session) -> (required, tokens)``
    receiving side: advertise the feature (sync or async); ``tokens`` is the
    feature's element inside ``<stream:features/>``.
``parse(session, element) -> (required, data)``
    initiating side: read the advertisement.
``negotiate(session, data) -> (bits, restart)``
    both sides (async): run the feature.  On the initiating side ``data`` is
    what ``parse`` returned (``None`` when STARTTLS is attempted without an
    advertisement); on the receiving side it is the element with which the
    peer selected the feature.  ``bits`` are the state bits gained; ``restart``
    tells that the stream starts anew (after STARTTLS, SASL).  A feature
    whose completion lets the peer restart must call
    :meth:`xmpp.session.Session.reset_input` *before* writing the element
    that allows it.

:func:`new_negotiator` makes the negotiator of RFC 6120 from a
:class:`StreamConfig`.  The initiating side negotiates optional features
before required ones (as mellium does); the receiving side lists what the
state allows and takes the peer's selection by the namespace of the element
it sends (the namespace of an IQ's payload for bind).  A selection of a
feature not listed, or already negotiated, is a ``policy-violation``.
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

from xmpp import xmlstream
from xmpp.stanza import new_id
from xmpp.stream import NS_CLIENT, NS_SERVER, NS_STREAMS, Condition, Info, StreamError
from xmpp.xmlstream import Element, Name, Token

if TYPE_CHECKING:
    from xmpp.session import Negotiator, Session, SessionState

__all__ = [
    "NS_TLS",
    "StreamConfig",
    "StreamFeature",
    "new_negotiator",
]

#: The namespace of STARTTLS (RFC 6120 section 5).
NS_TLS = "urn:ietf:params:xml:ns:xmpp-tls"
_STARTTLS = Name(NS_TLS, "starttls")
_FEATURES = Name(NS_STREAMS, "features")


@dataclasses.dataclass(frozen=True)
class StreamFeature:
    """One stream feature: its element name, the state bits it needs and
    forbids, and how each side lists, parses and negotiates it."""

    name: Name
    necessary: int = 0
    prohibited: int = 0
    list: Callable[[Session], tuple[bool, Iterable[Token]] | Awaitable[tuple[bool, Iterable[Token]]]] | None = None
    parse: Callable[[Session, Element], tuple[bool, Any]] | None = None
    negotiate: Callable[[Session, Any], Awaitable[tuple[int, bool]]] | None = None

    def allowed(self, state: int) -> bool:
        """True when a session in ``state`` may negotiate this feature."""
        return state & self.necessary == self.necessary and not state & self.prohibited


@dataclasses.dataclass(frozen=True)
class StreamConfig:
    """What the standard negotiator needs: the stream's language, its
    features, whether it is server-to-server, and the XML console tees.

    ``tee_in``/``tee_out`` receive a copy of every byte read and written
    (SASL payloads redacted).  ``timeout`` bounds every wait on the peer
    during negotiation.
    """

    lang: str = ""
    features: Sequence[StreamFeature] = ()
    s2s: bool = False
    tee_in: Callable[[bytes], object] | None = None
    tee_out: Callable[[bytes], object] | None = None
    timeout: float = 30.0

    def feature(self, name: Name) -> StreamFeature | None:
        """The configured feature with this name, or ``None``."""
        for f in self.features:
            if f.name == name:
                return f
        return None


async def _maybe_await(v: Any) -> Any:
    if inspect.isawaitable(v):
        return await v
    return v


def new_negotiator(config: StreamConfig) -> Negotiator:
    """The RFC 6120 negotiator over ``config``'s features.

    Each call runs one round: exchange stream headers, then list (receiving
    side) or parse (initiating side) the features, and negotiate until one of
    them restarts the stream or none is left; the session is ``READY`` when a
    round ends without a restart.
    """

    async def negotiate(session: Session, data: Any) -> tuple[SessionState, bool, Any]:
        from xmpp.session import SessionState

        if session.state & SessionState.RECEIVED:
            bits, restart = await _receive_round(session, config)
        else:
            bits, restart = await _initiate_round(session, config, data is not None)
        if not restart:
            bits |= SessionState.READY
        return SessionState(bits), restart, True

    return negotiate


def _stream_ns(session: Session, config: StreamConfig) -> str:
    return NS_SERVER if config.s2s else NS_CLIENT


async def _initiate_round(
    session: Session, config: StreamConfig, restarted: bool
) -> tuple[int, bool]:
    from xmpp.session import SessionState

    ns = _stream_ns(session, config)
    session.set_stanza_ns(ns)
    if restarted:
        session.reset_input()
    session.expect_header()
    remote = session.remote_addr
    local = session.local_addr
    secure = bool(session.state & SessionState.SECURE)
    out = Info(
        to=remote.domain_jid() if remote is not None else None,
        from_=(local.bare() if local is not None and secure else None),
        id="",
        version="1.0",
        lang=config.lang,
        xmlns=ns,
    )
    session.out_info = out
    session.write_raw(out.header_bytes())
    start = await session.read_header(config.timeout)
    info = Info.from_start(start)
    if info.xmlns != ns:
        raise StreamError(Condition.INVALID_NAMESPACE, f"expected stream namespace {ns}")
    session.in_info = info
    el = await session.read_element(config.timeout)
    if el.name != _FEATURES:
        raise StreamError(Condition.BAD_FORMAT, f"expected <stream:features/>, got {el.name.local}")

    # Parse what the peer offers.
    listed: dict[Name, tuple[StreamFeature, bool, Any]] = {}
    session.features = {}
    for child in el.children():
        f = config.feature(child.name)
        if f is None or f.parse is None:
            session.features[child.name] = child
            continue
        req, pdata = f.parse(session, child)
        session.features[child.name] = pdata
        if f.allowed(int(session.state)) and child.name not in session.negotiated:
            listed[child.name] = (f, bool(req), pdata)

    # Downgrade protection: STARTTLS is attempted when configured, advertised or not.
    tls = config.feature(_STARTTLS)
    if (
        tls is not None
        and _STARTTLS not in listed
        and not session.state & SessionState.SECURE
        and tls.allowed(int(session.state))
    ):
        listed[_STARTTLS] = (tls, True, None)

    bits = 0
    while True:
        chosen: tuple[StreamFeature, bool, Any] | None = None
        # STARTTLS first, before anything can be sent in the clear.
        first = listed.get(_STARTTLS)
        if first is not None and _STARTTLS not in session.negotiated and first[0].negotiate is not None:
            chosen = first
        for name, entry in listed.items() if chosen is None else ():
            if name in session.negotiated or entry[0].negotiate is None:
                continue
            if not entry[0].allowed(int(session.state) | bits):
                continue
            if not entry[1]:
                chosen = entry
                break
            if chosen is None:
                chosen = entry
        if chosen is None:
            return bits, False
        f, _req, pdata = chosen
        assert f.negotiate is not None
        gained, restart = await f.negotiate(session, pdata)
        session.negotiated.add(f.name)
        bits |= gained
        session.state |= SessionState(gained)
        if restart:
            return bits, True


def _selected_ns(el: Element) -> str:
    if el.name.local == "iq" and el.name.space in (NS_CLIENT, NS_SERVER):
        for child in el.children():
            return child.name.space
        return ""
    return el.name.space


async def _receive_round(session: Session, config: StreamConfig) -> tuple[int, bool]:
    from xmpp.session import SessionState

    ns = _stream_ns(session, config)
    session.set_stanza_ns(ns)
    start = await session.read_header(config.timeout)
    try:
        info = Info.from_start(start)
    except StreamError:
        _answer_header(session, None, ns, config)
        raise
    _answer_header(session, info, ns, config)
    session.in_info = info
    if info.xmlns != ns:
        raise StreamError(Condition.INVALID_NAMESPACE, f"this stream needs namespace {ns}")
    local = session.local_addr
    if local is not None and (info.to is None or info.to.domain != local.domain):
        raise StreamError(Condition.HOST_UNKNOWN, "this server does not serve that domain")

    # List the features the state allows.
    state = int(session.state)
    listed: dict[str, StreamFeature] = {}
    required: set[str] = set()
    enc = xmlstream.Encoder(ns=ns)
    for f in config.features:
        if f.list is None or f.name in session.negotiated or not f.allowed(state):
            continue
        req, toks = await _maybe_await(f.list(session))
        enc.encode(toks)
        listed[f.name.space] = f
        if req:
            required.add(f.name.space)
    session.write_raw(b"<stream:features>" + enc.flush() + b"</stream:features>")

    bits = 0
    while required:
        el = await session.read_element(config.timeout)
        sel = _selected_ns(el)
        found = listed.get(sel)
        if found is None or found.name in session.negotiated:
            if not session.state & SessionState.AUTHN and el.name.local in ("message", "presence", "iq"):
                raise StreamError(Condition.NOT_AUTHORIZED, "stanza before authentication")
            raise StreamError(
                Condition.POLICY_VIOLATION,
                f"feature {sel or el.name.local!r} was not offered or is already negotiated",
            )
        assert found.negotiate is not None
        gained, restart = await found.negotiate(session, el)
        session.negotiated.add(found.name)
        required.discard(sel)
        bits |= gained
        session.state |= SessionState(gained)
        if restart:
            return bits, True
    return bits, False


def _answer_header(session: Session, info: Info | None, ns: str, config: StreamConfig) -> Info:
    """Write the receiving side's header (before any stream error, RFC 6120 4.9.1.2)."""
    out = Info(
        to=info.from_ if info is not None else None,
        from_=session.local_addr,
        id=new_id(),
        version="1.0",
        lang=config.lang,
        xmlns=ns,
    )
    session.out_info = out
    session.write_raw(out.header_bytes())
    return out
