"""Stream-level values of RFC 6120 section 4: namespaces, the header, stream errors.

A stream error ends the whole stream (compare :class:`xmpp.stanza.StanzaError`,
which answers one stanza and lets the stream go on).  Every defined condition
of RFC 6120 section 4.9.3 is a member of :class:`Condition`; code never spells
a condition as a loose string.

:class:`Info` is the stream header, ``<stream:stream>``, as a value: read from
the :class:`~xmpp.xmlstream.StartElement` the engine gives for a header
(:meth:`Info.from_start`, which refuses a header a server would refuse, with
the stream error it would send), and written back as a start element or as
bytes (:meth:`Info.start`, :meth:`Info.header_bytes`).

:class:`StreamError` marshals to tokens and bytes (:meth:`StreamError.tokens`,
:meth:`StreamError.to_bytes`) and back (:meth:`StreamError.from_element`).

This module imports nothing from the engine at import time, because the
engine itself raises :class:`StreamError`; the functions that make tokens
import :mod:`xmpp.xmlstream` when they are first called.
"""

from __future__ import annotations

import dataclasses
import enum
import ipaddress
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from xmpp.jid import JID
    from xmpp.xmlstream import Element, StartElement, Token

__all__ = [
    "NS_STREAMS",
    "NS_STREAM_ERRORS",
    "NS_CLIENT",
    "NS_SERVER",
    "NS_COMPONENT",
    "NS_XML",
    "VERSION",
    "Condition",
    "Info",
    "StreamError",
]

#: The namespace of the ``<stream:stream>`` wrapper and ``<stream:features>``.
NS_STREAMS = "http://etherx.jabber.org/streams"
#: The namespace of the defined conditions inside ``<stream:error>``.
NS_STREAM_ERRORS = "urn:ietf:params:xml:ns:xmpp-streams"
#: The default namespace of client-to-server streams.
NS_CLIENT = "jabber:client"
#: The default namespace of server-to-server streams.
NS_SERVER = "jabber:server"
#: The default namespace of XEP-0114 component streams.
NS_COMPONENT = "jabber:component:accept"
#: The namespace bound to the ``xml:`` prefix (``xml:lang``).
NS_XML = "http://www.w3.org/XML/1998/namespace"
#: The version of XMPP this library speaks, as a stream header gives it.
VERSION = "1.0"

# The content namespaces a stream header may declare as its default.
_CONTENT_NAMESPACES = frozenset({NS_CLIENT, NS_SERVER, NS_COMPONENT})


class Condition(str, enum.Enum):
    """The defined stream error conditions of RFC 6120 section 4.9.3."""

    BAD_FORMAT = "bad-format"
    BAD_NAMESPACE_PREFIX = "bad-namespace-prefix"
    CONFLICT = "conflict"
    CONNECTION_TIMEOUT = "connection-timeout"
    HOST_GONE = "host-gone"
    HOST_UNKNOWN = "host-unknown"
    IMPROPER_ADDRESSING = "improper-addressing"
    INTERNAL_SERVER_ERROR = "internal-server-error"
    INVALID_FROM = "invalid-from"
    INVALID_NAMESPACE = "invalid-namespace"
    INVALID_XML = "invalid-xml"
    NOT_AUTHORIZED = "not-authorized"
    NOT_WELL_FORMED = "not-well-formed"
    POLICY_VIOLATION = "policy-violation"
    REMOTE_CONNECTION_FAILED = "remote-connection-failed"
    RESET = "reset"
    RESOURCE_CONSTRAINT = "resource-constraint"
    RESTRICTED_XML = "restricted-xml"
    SEE_OTHER_HOST = "see-other-host"
    SYSTEM_SHUTDOWN = "system-shutdown"
    UNDEFINED_CONDITION = "undefined-condition"
    UNSUPPORTED_ENCODING = "unsupported-encoding"
    UNSUPPORTED_FEATURE = "unsupported-feature"
    UNSUPPORTED_STANZA_TYPE = "unsupported-stanza-type"
    UNSUPPORTED_VERSION = "unsupported-version"

    def __str__(self) -> str:
        """Return the condition's element name, such as ``bad-format``."""
        return self.value


_CONDITIONS: dict[str, Condition] = {c.value: c for c in Condition}


# --- helpers shared with xmpp.stanza ----------------------------------------


def _native_tokens(tokens: Iterable[Any]) -> Iterator[Token]:
    """Yield the tokens as tokens of the engine :mod:`xmpp.xmlstream` uses.

    Tokens made by the other engine (the compiled one and the pure twin
    have distinct classes) are rebuilt; native ones pass as they are.
    """
    from xmpp import xmlstream as xs

    start_t, end_t, char_t = xs.StartElement, xs.EndElement, xs.CharData
    name_t, attr_t = xs.Name, xs.Attr
    for tok in tokens:
        t = type(tok)
        if t is start_t or t is end_t or t is char_t:
            yield tok
        elif hasattr(tok, "attrs"):
            yield start_t(
                name_t(tok.name.space, tok.name.local),
                tuple(attr_t(name_t(a.name.space, a.name.local), a.value) for a in tok.attrs),
            )
        elif hasattr(tok, "name"):
            yield end_t(name_t(tok.name.space, tok.name.local))
        elif hasattr(tok, "text"):
            yield char_t(tok.text)
        else:
            raise TypeError(f"not a token: {tok!r}")


def _native_element(el: Any) -> Element:
    """Return ``el`` as an element of the engine :mod:`xmpp.xmlstream` uses.

    An element parsed by the other engine is copied; a native one is
    returned as it is.
    """
    from xmpp import xmlstream as xs

    if type(el) is xs.Element:
        return el
    return xs.Element.from_tokens(_native_tokens(el))


def _token_key(tokens: Iterable[Any]) -> tuple[Any, ...]:
    """A comparable form of a token sequence, whichever engine made it."""
    out: list[Any] = []
    for tok in tokens:
        if hasattr(tok, "attrs"):
            out.append(
                (
                    "s",
                    tok.name.space,
                    tok.name.local,
                    tuple((a.name.space, a.name.local, a.value) for a in tok.attrs),
                )
            )
        elif hasattr(tok, "name"):
            out.append(("e", tok.name.space, tok.name.local))
        else:
            out.append(("c", tok.text))
    return tuple(out)


# --- see-other-host ----------------------------------------------------------


def _split_host_port(text: str) -> tuple[str, int | None]:
    """Split the text of ``<see-other-host/>`` into a host and a port.

    ``host``, ``host:port``, ``[ipv6]``, ``[ipv6]:port`` and an unbracketed
    IPv6 address (which then has no port) are understood; the brackets are
    removed from the host.  Text that is none of these is returned whole as
    the host, with no port.
    """
    text = text.strip()
    if text.startswith("["):
        close = text.find("]")
        if close > 0:
            host = text[1:close]
            rest = text[close + 1 :]
            if not rest:
                return host, None
            if rest.startswith(":") and _is_port(rest[1:]):
                return host, int(rest[1:])
        return text, None
    if text.count(":") == 1:
        host, _, port = text.partition(":")
        if host and _is_port(port):
            return host, int(port)
        return text, None
    return text, None


def _is_port(s: str) -> bool:
    return s.isascii() and s.isdigit() and 0 < int(s) < 65536


def _join_host_port(host: str, port: int | None) -> str:
    """Write a host and optional port as ``<see-other-host/>`` text.

    An IPv6 address is always enclosed in brackets (RFC 6120 4.9.3.19).
    """
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return host if port is None else f"{host}:{port}"


# --- stream errors ------------------------------------------------------------


class StreamError(Exception):
    """A stream error (RFC 6120 section 4.9): the stream cannot go on.

    ``condition`` is a :class:`Condition` (a string naming a defined
    condition is converted; an unknown one raises ``ValueError``).  ``text``
    is an optional human-readable description in language ``lang``.
    ``app`` is an optional application-specific condition element (an
    :class:`~xmpp.xmlstream.Element` in a namespace of its own).

    For :attr:`Condition.SEE_OTHER_HOST`, ``host`` and ``port`` say where to
    reconnect; they are written as the text of the condition element
    (``host:port``, IPv6 addresses in brackets).

    When the engine raises a ``StreamError`` from
    :meth:`xmpp.xmlstream.StreamParser.feed`, ``events`` holds the events
    that were complete before the error in that same call, so that nothing
    the peer sent correctly is lost.  A ``StreamError`` read by
    :meth:`from_element` keeps the received element as ``element``.

    >>> err = StreamError(Condition.POLICY_VIOLATION, "too big")
    >>> err.condition is Condition.POLICY_VIOLATION, str(err)
    (True, 'policy-violation: too big')
    >>> StreamError("see-other-host", host="::1", port=5222).to_bytes()
    b'<stream:error xmlns:stream="http://etherx.jabber.org/streams"><see-other-host \
xmlns="urn:ietf:params:xml:ns:xmpp-streams">[::1]:5222</see-other-host></stream:error>'
    """

    condition: Condition
    text: str | None
    lang: str | None
    app: Any
    host: str | None
    port: int | None
    element: Any
    events: list[Any]

    def __init__(
        self,
        condition: Condition | str,
        text: str | None = None,
        *,
        lang: str | None = None,
        app: Any = None,
        host: str | None = None,
        port: int | None = None,
    ) -> None:
        """Make the error; see the class documentation for the arguments."""
        cond = Condition(condition)
        super().__init__(cond, text)
        self.condition = cond
        self.text = text
        self.lang = lang
        self.app = app
        self.host = host
        self.port = port
        self.element = None
        self.events = []

    def __str__(self) -> str:
        """Return the condition, then the text if there is one."""
        s = self.condition.value
        if self.host is not None:
            s = f"{s} ({_join_host_port(self.host, self.port)})"
        if self.text:
            return f"{s}: {self.text}"
        return s

    def __repr__(self) -> str:
        """Return a constructor call for the condition and text."""
        return f"StreamError({self.condition.value!r}, {self.text!r})"

    def __eq__(self, other: object) -> bool:
        """Compare condition, text, language, host, port and application element."""
        if not isinstance(other, StreamError):
            return NotImplemented
        return (
            self.condition,
            self.text,
            self.lang,
            self.host,
            self.port,
        ) == (
            other.condition,
            other.text,
            other.lang,
            other.host,
            other.port,
        ) and _app_key(self.app) == _app_key(other.app)

    __hash__ = Exception.__hash__

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickle the error's values (not ``events`` or ``element``)."""
        return (
            _rebuild_stream_error,
            (self.condition.value, self.text, self.lang, self.host, self.port),
        )

    def tokens(self) -> Iterator[Token]:
        """Yield the tokens of the ``<stream:error>`` element.

        The element is in the streams namespace without a declaration of
        the ``stream`` prefix: written with the Encoder that wrote the
        stream header, it comes out as ``<stream:error>``.  (A fresh
        Encoder writes the same element with a default namespace, which is
        equivalent XML; :meth:`to_bytes` gives the canonical form anywhere.)
        """
        return self._tokens(declare=False)

    def _tokens(self, *, declare: bool) -> Iterator[Token]:
        from xmpp import xmlstream as xs

        Name, Attr = xs.Name, xs.Attr
        err = Name(NS_STREAMS, "error")
        attrs = (Attr(Name("xmlns", "stream"), NS_STREAMS),) if declare else ()
        yield xs.StartElement(err, attrs)
        cond = Name(NS_STREAM_ERRORS, self.condition.value)
        yield xs.StartElement(cond)
        if self.condition is Condition.SEE_OTHER_HOST and self.host:
            yield xs.CharData(_join_host_port(self.host, self.port))
        yield xs.EndElement(cond)
        if self.text:
            text = Name(NS_STREAM_ERRORS, "text")
            lang = (Attr(Name(NS_XML, "lang"), self.lang),) if self.lang else ()
            yield xs.StartElement(text, lang)
            yield xs.CharData(self.text)
            yield xs.EndElement(text)
        if self.app is not None:
            yield from _native_tokens(self.app)
        yield xs.EndElement(err)

    def to_bytes(self) -> bytes:
        """Return the ``<stream:error>`` element as bytes, ready to write.

        The ``stream`` prefix is declared on the element itself, so the
        bytes are right both inside an open stream and on their own.
        """
        from xmpp import xmlstream as xs

        enc = xs.Encoder(ns="")
        enc.encode(self._tokens(declare=True))
        return enc.flush()

    @classmethod
    def from_element(cls, el: Any) -> StreamError:
        """Read a received ``<stream:error>`` element (either engine's).

        The first child in the stream errors namespace other than ``<text>``
        is the condition; an unknown or missing one gives
        :attr:`Condition.UNDEFINED_CONDITION`.  The first ``<text>`` gives
        ``text`` and ``lang``; the first child in another namespace is the
        application-specific ``app``; ``see-other-host`` text is split into
        ``host`` and ``port``.  The element is kept as ``element``, so
        nothing received is lost.  Raises ``ValueError`` if ``el`` is not a
        ``<stream:error>``.
        """
        name = el.name
        if name.local != "error" or name.space != NS_STREAMS:
            raise ValueError(f"not a stream error element: {name!r}")
        condition: Condition | None = None
        cond_text = ""
        text: str | None = None
        lang: str | None = None
        app: Any = None
        for child in el.children():
            cname = child.name
            if cname.space == NS_STREAM_ERRORS:
                if cname.local == "text":
                    if text is None:
                        text = child.text
                        lang = child.get("lang", None, NS_XML)
                elif condition is None:
                    condition = _CONDITIONS.get(cname.local, Condition.UNDEFINED_CONDITION)
                    cond_text = child.text
            elif app is None:
                app = _native_element(child)
        if condition is None:
            condition = Condition.UNDEFINED_CONDITION
        host: str | None = None
        port: int | None = None
        if condition is Condition.SEE_OTHER_HOST and cond_text.strip():
            host, port = _split_host_port(cond_text)
        err = cls(condition, text, lang=lang, app=app, host=host, port=port)
        err.element = el
        return err


def _app_key(app: Any) -> Any:
    return None if app is None else _token_key(app)


def _rebuild_stream_error(
    condition: str, text: str | None, lang: str | None, host: str | None, port: int | None
) -> StreamError:
    return StreamError(condition, text, lang=lang, host=host, port=port)


# --- the stream header ----------------------------------------------------------


def _check_version(version: str | None) -> None:
    """Refuse a header version this library does not speak (RFC 6120 4.7.5)."""
    if version is None:
        raise StreamError(
            Condition.UNSUPPORTED_VERSION, "the stream header has no version (1.0 is required)"
        )
    major, dot, minor = version.partition(".")
    if not (
        dot
        and major.isascii()
        and major.isdigit()
        and minor.isascii()
        and minor.isdigit()
    ):
        raise StreamError(Condition.UNSUPPORTED_VERSION, f"malformed version {version!r}")
    if int(major) != 1:
        raise StreamError(
            Condition.UNSUPPORTED_VERSION, f"version {version!r}: only major version 1 is spoken"
        )


def _parse_address(value: str, condition: Condition, attr: str) -> JID:
    from xmpp.jid import JID, JIDError

    try:
        return JID.parse(value)
    except JIDError as exc:
        raise StreamError(condition, f"the {attr!r} address is malformed: {exc}") from None


@dataclasses.dataclass(frozen=True, slots=True)
class Info:
    """A stream header (RFC 6120 section 4.7) as a value.

    ``to`` and ``from_`` are the addresses of the receiving and initiating
    entities, ``id`` the stream id (set by the receiving entity), ``version``
    the XMPP version (``"1.0"``), ``lang`` the default ``xml:lang`` of the
    stream, and ``xmlns`` its content namespace (:data:`NS_CLIENT`,
    :data:`NS_SERVER` or :data:`NS_COMPONENT`).  Empty strings and ``None``
    mean the attribute is absent.

    >>> from xmpp.jid import JID
    >>> Info(to=JID.parse("example.com"), lang="en").header_bytes()
    b'<?xml version=\\'1.0\\'?><stream:stream xmlns="jabber:client" \
xmlns:stream="http://etherx.jabber.org/streams" to="example.com" version="1.0" \
xml:lang="en">'
    """

    to: JID | None = None
    from_: JID | None = None
    id: str = ""
    version: str = VERSION
    lang: str = ""
    xmlns: str = NS_CLIENT

    @classmethod
    def from_start(cls, start: Any) -> Info:
        """Read a stream header as the engine gives it (either engine's tokens).

        Raises :class:`StreamError` with the condition a server sends:

        * the root is not ``stream`` in :data:`NS_STREAMS`, or the default
          namespace is missing or not a content namespace this library
          speaks: ``invalid-namespace``; the root carries no prefix (the
          default namespace is the streams namespace): ``bad-namespace-prefix``;
        * no ``version``, a malformed one, or a major version other than 1:
          ``unsupported-version``;
        * a malformed ``to`` address: ``improper-addressing``; a malformed
          ``from`` address: ``invalid-from``.
        """
        name = start.name
        if name.local != "stream" or name.space != NS_STREAMS:
            raise StreamError(
                Condition.INVALID_NAMESPACE,
                f"the stream root must be {{{NS_STREAMS}}}stream, not {{{name.space}}}{name.local}",
            )
        to_s = from_s = version = None
        xmlns: str | None = None
        sid = lang = ""
        for a in start.attrs:
            an = a.name
            space = an.space
            if space == "":
                local = an.local
                if local == "to":
                    to_s = a.value
                elif local == "from":
                    from_s = a.value
                elif local == "id":
                    sid = a.value
                elif local == "version":
                    version = a.value
                elif local == "xmlns":
                    xmlns = a.value
            elif space == NS_XML and an.local == "lang":
                lang = a.value
        if xmlns == NS_STREAMS:
            raise StreamError(
                Condition.BAD_NAMESPACE_PREFIX, "the stream root must use a prefix for its namespace"
            )
        if xmlns is None or xmlns not in _CONTENT_NAMESPACES:
            raise StreamError(
                Condition.INVALID_NAMESPACE, f"unsupported content namespace {xmlns!r}"
            )
        _check_version(version)
        assert version is not None
        to = None if to_s is None else _parse_address(to_s, Condition.IMPROPER_ADDRESSING, "to")
        frm = None if from_s is None else _parse_address(from_s, Condition.INVALID_FROM, "from")
        return cls(to, frm, sid, version, lang, xmlns)

    def start(self) -> StartElement:
        """Return the header as a start element of the engine in use.

        The namespace declarations come first, in Go's form, so that an
        Encoder writes ``<stream:stream xmlns="jabber:client"
        xmlns:stream="http://etherx.jabber.org/streams" ...>``; then ``to``,
        ``from``, ``id``, ``version`` and ``xml:lang`` where they are set.
        """
        from xmpp import xmlstream as xs

        Name, Attr = xs.Name, xs.Attr
        attrs = [
            Attr(Name("", "xmlns"), self.xmlns),
            Attr(Name("xmlns", "stream"), NS_STREAMS),
        ]
        if self.to is not None:
            attrs.append(Attr(Name("", "to"), str(self.to)))
        if self.from_ is not None:
            attrs.append(Attr(Name("", "from"), str(self.from_)))
        if self.id:
            attrs.append(Attr(Name("", "id"), self.id))
        if self.version:
            attrs.append(Attr(Name("", "version"), self.version))
        if self.lang:
            attrs.append(Attr(Name(NS_XML, "lang"), self.lang))
        return xs.StartElement(Name(NS_STREAMS, "stream"), attrs)

    def header_bytes(self) -> bytes:
        """Return the header as bytes, after an XML declaration.

        The declaration is ``<?xml version='1.0'?>``, which Prosody and
        ejabberd both accept; the stream element is left open.
        """
        from xmpp import xmlstream as xs

        enc = xs.Encoder(ns="")
        enc.write_token(self.start())
        return b"<?xml version='1.0'?>" + enc.flush()

    def reply(self, id: str, *, from_: JID | None = None) -> Info:
        """Return the header a receiving entity answers this one with.

        The addresses are swapped (``from_``, if given, replaces the
        answering entity's own address, which is otherwise this header's
        ``to``), the stream gets ``id``, the version is :data:`VERSION`,
        and language and namespace stay.
        """
        return Info(
            to=self.from_,
            from_=self.to if from_ is None else from_,
            id=id,
            version=VERSION,
            lang=self.lang,
            xmlns=self.xmlns,
        )
