"""The pure-Python twin of the compiled engine ``xmpp._tokens``.

It exports the same names with the same behaviour (docs/engine.md is the
contract), built on :mod:`pyexpat` with Python handlers.  It is used where the
compiled module is not available, or when ``XMPP_NO_EXTENSIONS=1`` is set.
Import through :mod:`xmpp.xmlstream`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from operator import itemgetter
from typing import Any, Union
from xml.parsers import expat

from xmpp._prolog import DECL, NS_SUSPECT_PREFIXES, NS_SUSPECT_URIS, ns_decl_error, scan_prolog
from xmpp.stream import Condition, StreamError

__all__ = [
    "DEFAULT_MAX_DEPTH",
    "DEFAULT_MAX_STANZA_BYTES",
    "Attr",
    "CharData",
    "Element",
    "Encoder",
    "EndElement",
    "IQTable",
    "Name",
    "StartElement",
    "StreamParser",
]

DEFAULT_MAX_STANZA_BYTES = 10 * 1024 * 1024
DEFAULT_MAX_DEPTH = 128

_NS_XML = "http://www.w3.org/XML/1998/namespace"
_SEP = "\x01"
_SLICE = 64 * 1024
_NAME_TABLE_LIMIT = 4096
_new_tuple = tuple.__new__


# ---------------------------------------------------------------------------
# Tokens: tuples underneath (cheap to make), equal only to their own type.


class Name(tuple):  # type: ignore[type-arg]
    """An XML name: a namespace URI (never a prefix) and a local name.

    >>> Name("jabber:client", "body").local
    'body'
    """

    __slots__ = ()

    def __new__(cls, space: str, local: str) -> Name:
        if type(space) is not str or type(local) is not str:
            raise TypeError("Name takes two str values")
        return _new_tuple(cls, (space, local))

    space = property(itemgetter(0), doc="The namespace URI, '' for none.")
    local = property(itemgetter(1), doc="The local name.")

    def __eq__(self, other: object) -> bool:
        return type(other) is Name and tuple.__eq__(self, other)

    def __ne__(self, other: object) -> bool:
        return not self.__eq__(other)

    __hash__ = tuple.__hash__

    def __repr__(self) -> str:
        return f"Name({self[0]!r}, {self[1]!r})"

    def __getnewargs__(self) -> tuple[str, str]:
        return (self[0], self[1])


class Attr(tuple):  # type: ignore[type-arg]
    """An attribute: its :class:`Name` and its unescaped value."""

    __slots__ = ()

    def __new__(cls, name: Name, value: str) -> Attr:
        if type(name) is not Name or type(value) is not str:
            raise TypeError("Attr takes a Name and a str")
        return _new_tuple(cls, (name, value))

    name = property(itemgetter(0), doc="The attribute's Name.")
    value = property(itemgetter(1), doc="The attribute's value.")

    def __eq__(self, other: object) -> bool:
        return type(other) is Attr and tuple.__eq__(self, other)

    def __ne__(self, other: object) -> bool:
        return not self.__eq__(other)

    __hash__ = tuple.__hash__

    def __repr__(self) -> str:
        return f"Attr({self[0]!r}, {self[1]!r})"

    def __getnewargs__(self) -> tuple[Name, str]:
        return (self[0], self[1])


class StartElement(tuple):  # type: ignore[type-arg]
    """The start of an element: its :class:`Name` and a tuple of :class:`Attr`."""

    __slots__ = ()

    def __new__(cls, name: Name, attrs: Iterable[Attr] = ()) -> StartElement:
        if type(name) is not Name:
            raise TypeError("StartElement takes a Name")
        t = attrs if type(attrs) is tuple else tuple(attrs)
        for a in t:
            if type(a) is not Attr:
                raise TypeError(f"attrs must hold Attr values, not {type(a).__name__}")
        return _new_tuple(cls, (name, t))

    name = property(itemgetter(0), doc="The element's Name.")
    attrs = property(itemgetter(1), doc="The attributes, a tuple of Attr.")

    def get(self, local: str, default: str | None = None, space: str = "") -> str | None:
        """Return the value of the attribute ``{space}local``, or ``default``."""
        for a in self[1]:
            n = a[0]
            if n[1] == local and n[0] == space:
                return a[1]  # type: ignore[no-any-return]
        return default

    def stanza_attrs(self) -> tuple[str | None, str | None, str | None, str | None, str | None]:
        """Return ``(to, from, id, type, lang)``: the values of the unqualified
        attributes of those names (``lang``: of ``xml:lang``), each ``None``
        when absent, read in one pass."""
        found: dict[str, str] = {}
        for a in self[1]:
            n = a[0]
            if not n[0]:
                found[n[1]] = a[1]
            elif n[0] == _NS_XML and n[1] == "lang":
                found["xml:lang"] = a[1]
        get = found.get
        return (get("to"), get("from"), get("id"), get("type"), get("xml:lang"))

    def end(self) -> EndElement:
        """Return the :class:`EndElement` that closes this element."""
        return _new_tuple(EndElement, (self[0],))

    def __eq__(self, other: object) -> bool:
        return type(other) is StartElement and tuple.__eq__(self, other)

    def __ne__(self, other: object) -> bool:
        return not self.__eq__(other)

    __hash__ = tuple.__hash__

    def __repr__(self) -> str:
        return f"StartElement({self[0]!r}, {self[1]!r})"

    def __getnewargs__(self) -> tuple[Name, tuple[Attr, ...]]:
        return (self[0], self[1])


class EndElement(tuple):  # type: ignore[type-arg]
    """The end of an element."""

    __slots__ = ()

    def __new__(cls, name: Name) -> EndElement:
        if type(name) is not Name:
            raise TypeError("EndElement takes a Name")
        return _new_tuple(cls, (name,))

    name = property(itemgetter(0), doc="The element's Name.")

    def __eq__(self, other: object) -> bool:
        return type(other) is EndElement and tuple.__eq__(self, other)

    def __ne__(self, other: object) -> bool:
        return not self.__eq__(other)

    __hash__ = tuple.__hash__

    def __repr__(self) -> str:
        return f"EndElement({self[0]!r})"

    def __getnewargs__(self) -> tuple[Name]:
        return (self[0],)


class CharData(tuple):  # type: ignore[type-arg]
    """Character data: text, already unescaped."""

    __slots__ = ()

    def __new__(cls, text: str) -> CharData:
        if type(text) is not str:
            raise TypeError("CharData takes a str")
        return _new_tuple(cls, (text,))

    text = property(itemgetter(0), doc="The text.")

    def __eq__(self, other: object) -> bool:
        return type(other) is CharData and tuple.__eq__(self, other)

    def __ne__(self, other: object) -> bool:
        return not self.__eq__(other)

    __hash__ = tuple.__hash__

    def __repr__(self) -> str:
        return f"CharData({self[0]!r})"

    def __getnewargs__(self) -> tuple[str]:
        return (self[0],)


Token = Union[StartElement, EndElement, CharData]


# ---------------------------------------------------------------------------
# Elements


class Element:
    """One complete element; iterating it yields its tokens, start to end.

    ``bytes(element)`` encodes it standalone.  Children share the parent's
    storage.
    """

    __slots__ = ("_toks", "_lo", "_hi")

    _toks: list[Token]
    _lo: int
    _hi: int

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        raise TypeError("Element objects come from StreamParser.feed or Element.from_tokens")

    @classmethod
    def from_tokens(cls, tokens: Iterable[Token]) -> Element:
        """Build an element from the tokens of exactly one balanced element.

        ``ValueError`` if the tokens do not start with a ``StartElement``,
        are unbalanced, end tags do not match, or tokens follow the end.
        """
        out: list[Token] = []
        stack: list[Name] = []
        done = False
        for tok in tokens:
            if done:
                raise ValueError("tokens follow the end of the element")
            t = type(tok)
            if t is StartElement:
                stack.append(tok[0])
                out.append(tok)
            elif t is EndElement:
                if not stack:
                    raise ValueError("end element without a start")
                nm = stack.pop()
                if nm != tok[0]:
                    raise ValueError(f"end element {tok[0]!r} does not match {nm!r}")
                out.append(tok)
                if not stack:
                    done = True
            elif t is CharData:
                if not stack:
                    raise ValueError("character data outside the element")
                text = tok[0]
                if not text:
                    continue
                _check_chars(text)
                if type(out[-1]) is CharData:
                    out[-1] = _new_tuple(CharData, (out[-1][0] + text,))
                else:
                    out.append(tok)
            elif not stack:
                raise ValueError(f"an element must start with a StartElement, not {tok!r}")
            else:
                raise TypeError(f"not a token: {tok!r}")
        if not done:
            raise ValueError("the tokens do not make a complete element")
        return _new_element(out, 0, len(out))

    @property
    def start(self) -> StartElement:
        """The element's :class:`StartElement`."""
        return self._toks[self._lo]  # type: ignore[return-value]

    @property
    def name(self) -> Name:
        """The element's :class:`Name`."""
        return self._toks[self._lo][0]  # type: ignore[no-any-return]

    @property
    def attrs(self) -> tuple[Attr, ...]:
        """The element's attributes, a tuple of :class:`Attr`."""
        return self._toks[self._lo][1]  # type: ignore[no-any-return]

    def get(self, local: str, default: str | None = None, space: str = "") -> str | None:
        """Return the value of the attribute ``{space}local``, or ``default``."""
        for a in self._toks[self._lo][1]:
            n = a[0]
            if n[1] == local and n[0] == space:
                return a[1]  # type: ignore[no-any-return]
        return default

    def stanza_attrs(self) -> tuple[str | None, str | None, str | None, str | None, str | None]:
        """Return ``(to, from, id, type, lang)`` of this element in one pass
        (see :meth:`StartElement.stanza_attrs`)."""
        return self._toks[self._lo].stanza_attrs()  # type: ignore[union-attr]

    def _direct(self) -> Iterator[tuple[int, int]]:
        """Yield (kind, index): 0 for a direct text, 1 for a child's start."""
        toks = self._toks
        i = self._lo + 1
        hi = self._hi - 1
        depth = 0
        while i < hi:
            t = type(toks[i])
            if t is StartElement:
                if depth == 0:
                    yield 1, i
                depth += 1
            elif t is EndElement:
                depth -= 1
            elif depth == 0:
                yield 0, i
            i += 1

    def _child_end(self, i: int) -> int:
        toks = self._toks
        depth = 0
        while True:
            t = type(toks[i])
            if t is StartElement:
                depth += 1
            elif t is EndElement:
                depth -= 1
                if depth == 0:
                    return i + 1
            i += 1

    @property
    def text(self) -> str:
        """The element's direct character data, concatenated ("" if none)."""
        toks = self._toks
        return "".join(toks[i][0] for kind, i in self._direct() if kind == 0)

    def children(self) -> Iterator[Element]:
        """Yield each direct child element as an :class:`Element`."""
        return iter(
            [_new_element(self._toks, i, self._child_end(i)) for kind, i in self._direct() if kind == 1]
        )

    def find(self, local: str, space: str | None = None) -> Element | None:
        """Return the first direct child named ``local`` (in ``space`` unless
        it is None), or None."""
        toks = self._toks
        for kind, i in self._direct():
            if kind == 1:
                n = toks[i][0]
                if n[1] == local and (space is None or n[0] == space):
                    return _new_element(toks, i, self._child_end(i))
        return None

    def encode(self, ns: str = "") -> bytes:
        """Encode the element inside a scope whose default namespace is ``ns``."""
        enc = Encoder(None, ns=ns)
        enc.encode(self)
        return enc.flush()

    def __bytes__(self) -> bytes:
        return self.encode("")

    def __iter__(self) -> Iterator[Token]:
        return iter(self._toks[self._lo : self._hi])

    def __eq__(self, other: object) -> bool:
        if type(other) is not Element:
            return NotImplemented
        return self._toks[self._lo : self._hi] == other._toks[other._lo : other._hi]

    def __ne__(self, other: object) -> bool:
        r = self.__eq__(other)
        return r if r is NotImplemented else not r

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"<Element {self.name!r}>"

    def __reduce__(self) -> tuple[Any, ...]:
        return (Element.from_tokens, (list(self),))


def _new_element(toks: list[Token], lo: int, hi: int) -> Element:
    el = object.__new__(Element)
    el._toks = toks
    el._lo = lo
    el._hi = hi
    return el


# ---------------------------------------------------------------------------
# The stream parser


class _Stop(Exception):
    """Raised inside a handler to stop libexpat at once."""


class StreamParser:
    """Sans-IO incremental parser of one XMPP stream: bytes in, events out.

    ``feed(data)`` returns, in stream order, the stream header
    (:class:`StartElement`), each complete top-level :class:`Element`, and an
    :class:`EndElement` when the peer closes the stream.  ``reset()`` starts
    a new stream on the same connection.  Errors are
    :class:`xmpp.stream.StreamError`; see docs/engine.md for the rules.
    """

    def __init__(
        self,
        *,
        max_stanza_bytes: int = DEFAULT_MAX_STANZA_BYTES,
        max_depth: int = DEFAULT_MAX_DEPTH,
    ) -> None:
        if max_stanza_bytes <= 0:
            raise ValueError("max_stanza_bytes must be positive")
        if max_depth <= 0:
            raise ValueError("max_depth must be positive")
        self._max_bytes = max_stanza_bytes
        self._max_depth = max_depth
        self._entries: dict[str, tuple[Name, int, EndElement]] = {}
        self._new_parser()

    def _new_parser(self) -> None:
        p = expat.ParserCreate("UTF-8", _SEP)
        p.ordered_attributes = True
        # No buffer_text: pyexpat drops buffered text when a parse error follows
        # it in the same chunk, and the text may be the first fault (text between
        # stanzas, a stanza over the size bound), as the compiled engine reports.
        p.buffer_text = False
        p.StartElementHandler = self._on_start
        p.EndElementHandler = self._on_end
        p.CharacterDataHandler = self._on_chars
        p.CommentHandler = self._on_comment
        p.ProcessingInstructionHandler = self._on_pi
        p.StartDoctypeDeclHandler = self._on_doctype
        p.StartNamespaceDeclHandler = self._on_ns
        if hasattr(p, "SetReparseDeferralEnabled"):
            p.SetReparseDeferralEnabled(False)
        self._xp = p
        self._depth = 0
        self._failed = False
        self._closed = False
        self._prolog: bytearray | None = bytearray()
        self._error: StreamError | None = None
        self._header: StartElement | None = None
        self._nsdecls: list[tuple[str, str]] = []
        self._tail = b""
        self._toks: list[Token] = []
        self._text: list[str] = []
        self._size = 0
        self._pending = 0
        self._boundary = False
        self._events: list[Any] = []

    @property
    def max_stanza_bytes(self) -> int:
        """The largest top-level element accepted, in bytes."""
        return self._max_bytes

    @property
    def max_depth(self) -> int:
        """The deepest nesting accepted (a top-level element is depth 1)."""
        return self._max_depth

    @property
    def header(self) -> StartElement | None:
        """The current stream's header (a :class:`StartElement`), or None."""
        return self._header

    @property
    def closed(self) -> bool:
        """True once the peer closed the stream."""
        return self._closed

    @property
    def error(self) -> StreamError | None:
        """The :class:`~xmpp.stream.StreamError` that stopped the parser, or None."""
        return self._error

    def reset(self) -> None:
        """Start a new stream on the same connection (after STARTTLS or SASL)."""
        self._new_parser()

    # -- names ---------------------------------------------------------------

    def _name(self, raw: str) -> Name:
        return (self._entries.get(raw) or self._entry(raw))[0]

    # -- handlers ------------------------------------------------------------

    def _fail(self, cond: Condition, text: str) -> None:
        self._failed = True
        self._error = StreamError(cond, text)
        raise _Stop

    def _flush_text(self) -> None:
        parts = self._text
        if parts:
            self._toks.append(_new_tuple(CharData, ("".join(parts) if len(parts) > 1 else parts[0],)))
            self._text = []

    def _entry(self, raw: str) -> tuple[Name, int, EndElement]:
        """The Name for expat's raw name, its size in bytes and its end token."""
        space, sep, local = raw.rpartition(_SEP)
        name: Name = _new_tuple(Name, (space, local) if sep else ("", raw))
        size = len(raw) - 1 if sep else len(raw)
        if not raw.isascii():
            size = len(raw.encode("utf-8")) - (1 if sep else 0)
        entry = (name, size, _new_tuple(EndElement, (name,)))
        self._entries[raw] = entry
        return entry

    def _on_start(self, raw: str, attrs: list[str]) -> None:
        d = self._depth
        if d == 1:
            self._boundary = True
            self._toks = []
            self._size = 0
            if len(self._entries) > _NAME_TABLE_LIMIT:
                self._entries = {}
        elif d == 0:
            self._on_header(raw, attrs)
            return
        elif d > self._max_depth:
            self._fail(Condition.POLICY_VIOLATION, f"elements nested deeper than {self._max_depth}")
        elif self._text:
            self._flush_text()
        entries = self._entries
        entry = entries.get(raw) or self._entry(raw)
        size = self._size + entry[1]
        if attrs:
            out = []
            it = iter(attrs)
            for rn, v in zip(it, it):
                ae = entries.get(rn) or self._entry(rn)
                size += ae[1] + len(v)
                if not v.isascii():
                    size += len(v.encode("utf-8")) - len(v)
                out.append(_new_tuple(Attr, (ae[0], v)))
            self._toks.append(_new_tuple(StartElement, (entry[0], tuple(out))))
        else:
            self._toks.append(_new_tuple(StartElement, (entry[0], ())))
        self._size = size
        self._depth = d + 1
        if size > self._max_bytes:
            self._fail(Condition.POLICY_VIOLATION, f"element larger than {self._max_bytes} bytes")

    def _on_header(self, raw: str, attrs: list[str]) -> None:
        self._xp.StartNamespaceDeclHandler = self._on_ns_below
        out = []
        for prefix, uri in self._nsdecls:
            n = Name("xmlns", prefix) if prefix else Name("", "xmlns")
            out.append(Attr(n, uri))
        self._nsdecls = []
        for i in range(0, len(attrs), 2):
            out.append(Attr(self._name(attrs[i]), attrs[i + 1]))
        self._header = StartElement(self._name(raw), tuple(out))
        self._depth = 1
        self._boundary = True
        self._events.append(self._header)

    def _on_end(self, raw: str) -> None:
        d = self._depth - 1
        self._depth = d
        if d == 0:
            self._closed = True
            assert self._header is not None
            self._events.append(self._header.end())
            return
        if self._text:
            self._flush_text()
        toks = self._toks
        toks.append((self._entries.get(raw) or self._entry(raw))[2])
        if d == 1:
            self._events.append(_new_element(toks, 0, len(toks)))
            self._toks = []
            self._boundary = True

    def _on_chars(self, s: str) -> None:
        if self._depth <= 1:
            self._boundary = True
            if s.strip(" \t\r\n"):
                self._fail(Condition.BAD_FORMAT, "text between top-level elements")
            return
        self._text.append(s)
        self._size += len(s) if s.isascii() else len(s.encode("utf-8"))
        if self._size > self._max_bytes:
            self._fail(Condition.POLICY_VIOLATION, f"element larger than {self._max_bytes} bytes")

    def _on_comment(self, data: str) -> None:
        self._fail(Condition.RESTRICTED_XML, "comments are not allowed in XMPP")

    def _on_pi(self, target: str, data: str) -> None:
        self._fail(Condition.RESTRICTED_XML, "processing instructions are not allowed in XMPP")

    def _on_doctype(self, *args: Any) -> None:
        self._fail(Condition.RESTRICTED_XML, "a DOCTYPE is not allowed in XMPP")

    def _on_ns(self, prefix: str | None, uri: str | None) -> None:
        if uri in NS_SUSPECT_URIS or prefix in NS_SUSPECT_PREFIXES:
            self._check_ns(prefix or "", uri or "")
        self._nsdecls.append((prefix or "", uri or ""))

    def _on_ns_below(self, prefix: str | None, uri: str | None) -> None:
        # Below the header declarations become namespace names, not tokens.
        if uri in NS_SUSPECT_URIS or prefix in NS_SUSPECT_PREFIXES:
            self._check_ns(prefix or "", uri or "")

    def _check_ns(self, prefix: str, uri: str) -> None:
        # Refused declarations: see xmpp._prolog.ns_decl_error.
        msg = ns_decl_error(prefix, uri)
        if msg is not None:
            self._fail(Condition.NOT_WELL_FORMED, msg)

    # -- feeding -------------------------------------------------------------

    def _expat_error(self, exc: expat.ExpatError, chunk: bytes) -> None:
        code = exc.code
        msg = f"{expat.ErrorString(code)} at line {exc.lineno}, column {exc.offset}"
        self._failed = True
        if code in (11, 17):  # undefined entity, misplaced XML declaration
            self._error = StreamError(Condition.RESTRICTED_XML, msg)
        elif code == 1:
            self._error = StreamError(Condition.RESOURCE_CONSTRAINT, msg)
        elif DECL.search(self._tail + chunk) is not None:
            self._error = StreamError(
                Condition.RESTRICTED_XML, "markup declarations are not allowed in XMPP (" + msg + ")"
            )
        else:
            self._error = StreamError(Condition.NOT_WELL_FORMED, msg)

    def feed(self, data: bytes | bytearray | memoryview) -> list[Any]:
        """Parse the next bytes of the stream; return the events they complete.

        Raises :class:`~xmpp.stream.StreamError`; its ``events`` attribute
        holds the events completed earlier in the same call.
        """
        if self._failed:
            assert self._error is not None
            raise StreamError(self._error.condition, self._error.text)
        buf = bytes(data)
        events: list[Any] = []
        self._events = events
        if self._prolog is not None:
            self._prolog += buf
            try:
                if scan_prolog(bytes(self._prolog)) < 0:
                    return []
            except StreamError as exc:
                self._failed = True
                self._error = exc
                raise StreamError(exc.condition, exc.text) from None
            buf = bytes(self._prolog)
            self._prolog = None
        n = len(buf)
        off = 0
        parse = self._xp.Parse
        while off < n:
            chunk = buf[off : off + _SLICE] if (off or n > _SLICE) else buf
            self._boundary = False
            try:
                parse(chunk, False)
            except _Stop:
                break
            except expat.ExpatError as exc:
                self._expat_error(exc, chunk)
                break
            if self._boundary:
                self._pending = 0
            else:
                self._pending += len(chunk)
                if self._pending > self._max_bytes:
                    self._failed = True
                    self._error = StreamError(
                        Condition.POLICY_VIOLATION,
                        f"more than {self._max_bytes} bytes without completing an element",
                    )
                    break
            off += len(chunk)
        self._tail = (self._tail + buf)[-8:] if len(buf) < 8 else buf[-8:]
        if self._failed:
            assert self._error is not None
            err = StreamError(self._error.condition, self._error.text)
            err.events = events
            raise err
        return events


# ---------------------------------------------------------------------------
# The encoder

_ILLEGAL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff\ud800-\udfff]")
_TEXT_SPECIAL = re.compile("[&<>\r]")
_ATTR_SPECIAL = re.compile('[&<>"\t\n\r]')
_TEXT_ESC = {"&": "&amp;", "<": "&lt;", ">": "&gt;", "\r": "&#13;"}
_ATTR_ESC = {"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "\t": "&#9;", "\n": "&#10;", "\r": "&#13;"}


def _check_chars(s: str) -> None:
    m = _ILLEGAL.search(s)
    if m is not None:
        raise ValueError(f"character U+{ord(m.group()):04X} is not allowed in XML")


def _esc_text(s: str) -> str:
    _check_chars(s)
    if _TEXT_SPECIAL.search(s) is None:
        return s
    return _TEXT_SPECIAL.sub(lambda m: _TEXT_ESC[m.group()], s)


def _esc_attr(s: str) -> str:
    _check_chars(s)
    if _ATTR_SPECIAL.search(s) is None:
        return s
    return _ATTR_SPECIAL.sub(lambda m: _ATTR_ESC[m.group()], s)


class Encoder:
    """A TokenWriter that turns tokens into UTF-8 bytes.

    ``write_token`` buffers; ``flush`` hands what is buffered to ``write``
    (when given) and returns it.  ``ns`` is the default namespace in scope
    before the first token.

    >>> enc = Encoder(ns="jabber:client")
    >>> n = Name("jabber:client", "message")
    >>> enc.write_token(StartElement(n, [Attr(Name("", "to"), "a@b")]))
    >>> enc.write_token(EndElement(n))
    >>> enc.flush()
    b'<message to="a@b"/>'
    """

    def __init__(self, write: Callable[[bytes], object] | None = None, *, ns: str = "") -> None:
        if type(ns) is not str:
            raise TypeError("ns must be a str")
        self._write = write
        self._ns = ns
        self._out: list[str] = []
        # each open element: (its Name, the name as written, default ns, prefixes uri->prefix)
        self._stack: list[tuple[Name, str, str, dict[str, str]]] = []
        self._prefixes0: dict[str, str] = {}
        self._pending = False

    def _scope(self) -> tuple[str, dict[str, str]]:
        if self._stack:
            top = self._stack[-1]
            return top[2], top[3]
        return self._ns, self._prefixes0

    def _start(self, s: StartElement) -> None:
        name, attrs = s[0], s[1]
        if not name[1]:
            raise ValueError("an element needs a local name")
        default, prefixes = self._scope()
        own: dict[str, str] | None = None
        explicit_default: str | None = None
        decls = []
        for a in attrs:
            an = a[0]
            if an[0] == "xmlns":
                if own is None:
                    own = dict(prefixes)
                for k in [k for k, v in own.items() if v == an[1]]:
                    del own[k]
                own[a[1]] = an[1]
                decls.append(a)
            elif not an[0] and an[1] == "xmlns":
                explicit_default = a[1]
        if own is not None:
            prefixes = own
        out = self._out
        if self._pending:
            out.append(">")
        space, local = name[0], name[1]
        # The prefix xml is bound in every document, and may not be the default.
        prefix = "xml" if space == _NS_XML else prefixes.get(space) if space else None
        if space == default and not (
            explicit_default is not None and explicit_default != default and prefix is not None
        ):
            qname = local
            child_default = default
            out.append("<" + local)
        elif prefix is not None:
            qname = f"{prefix}:{local}"
            child_default = explicit_default if explicit_default is not None else default
            out.append("<" + qname)
            if explicit_default is not None:
                out.append(f' xmlns="{_esc_attr(explicit_default)}"')
        else:
            qname = local
            child_default = space
            out.append(f'<{local} xmlns="{_esc_attr(space)}"')
        for a in decls:
            out.append(f' xmlns:{a[0][1]}="{_esc_attr(a[1])}"')
        extra = []
        counter = 0
        for a in attrs:
            an = a[0]
            if an[0] == "xmlns" or (not an[0] and an[1] == "xmlns"):
                continue
            if not an[1]:
                raise ValueError("an attribute needs a local name")
            if not an[0]:
                out.append(f' {an[1]}="{_esc_attr(a[1])}"')
            elif an[0] == _NS_XML:
                out.append(f' xml:{an[1]}="{_esc_attr(a[1])}"')
            else:
                p = prefixes.get(an[0])
                if p is None:
                    if own is None:
                        own = dict(prefixes)
                        prefixes = own
                    while True:
                        counter += 1
                        p = f"ns{counter}"
                        if p not in prefixes.values():
                            break
                    own[an[0]] = p
                    extra.append((p, an[0]))
                out.append(f' {p}:{an[1]}="{_esc_attr(a[1])}"')
        for p, uri in extra:
            out.append(f' xmlns:{p}="{_esc_attr(uri)}"')
        self._stack.append((name, qname, child_default, prefixes))
        self._pending = True

    def write_token(self, tok: Token) -> None:
        """Encode one token into the buffer."""
        t = type(tok)
        if t is StartElement:
            self._start(tok)  # type: ignore[arg-type]
        elif t is CharData:
            text = tok[0]
            if not text:
                return
            if self._pending:
                self._out.append(">")
                self._pending = False
            self._out.append(_esc_text(text))
        elif t is EndElement:
            name = tok[0]
            if not self._stack:
                raise ValueError(f"end element {name!r} without a matching start")
            top = self._stack[-1]
            if top[0] != name:
                raise ValueError(f"end element {name!r} does not match the open {top[0]!r}")
            self._stack.pop()
            if self._pending:
                self._out.append("/>")
                self._pending = False
            else:
                self._out.append(f"</{top[1]}>")
        else:
            raise TypeError(f"not a token: {tok!r}")

    def encode(self, tokens: Iterable[Token]) -> None:
        """Encode every token of ``tokens`` (an :class:`Element` included)."""
        write = self.write_token
        for tok in tokens:
            write(tok)

    def flush(self) -> bytes:
        """Hand everything buffered to ``write`` (if given) and return it.

        A start tag still open is closed with ``>`` first (so a stream
        header can be sent before its children exist).
        """
        if self._pending:
            self._out.append(">")
            self._pending = False
        data = "".join(self._out).encode("utf-8")
        self._out = []
        if self._write is not None and data:
            self._write(data)
        return data


# ---------------------------------------------------------------------------
# The IQ correlation table

_IQ_SPACES = frozenset(("jabber:client", "jabber:server", "jabber:component:accept"))


class IQTable:
    """Pending IQ requests keyed by id; sans-IO: it stores opaque waiter objects.

    A session adds an entry when it sends an IQ ``get`` or ``set`` and calls
    :meth:`match` on every top-level element it receives.  An element is the
    reply only when it is an ``iq`` in a stanza namespace, of type ``result``
    or ``error``, with a pending id, from one of the addresses accepted for
    that id: never on the id alone (CVE-2024-46957 in mellium.im/xmpp).

    >>> t = IQTable()
    >>> t.add("q1", frozenset({"", "example.com"}), "waiter")
    >>> iq = Name("jabber:client", "iq")
    >>> t.match(StartElement(iq, [Attr(Name("", "type"), "result"), Attr(Name("", "id"), "q1")]))
    'waiter'
    >>> len(t)
    0
    """

    __slots__ = ("_pending",)

    def __init__(self) -> None:
        self._pending: dict[str, tuple[frozenset[str], object]] = {}

    def add(self, id: str, accept_from: frozenset[str], waiter: object) -> None:
        """Remember ``waiter`` for the reply to the IQ with this ``id``.

        ``accept_from`` holds every ``from`` value a reply may carry (``""``
        for a reply without one).  ``ValueError`` if ``id`` is empty or
        already pending; ``TypeError`` if ``id`` is not a ``str`` or
        ``accept_from`` is a string rather than a set of strings.
        """
        if not isinstance(id, str):
            raise TypeError("an IQ id must be a str")
        if not id:
            raise ValueError("an IQ id must not be empty")
        if isinstance(accept_from, (str, bytes)):
            raise TypeError("accept_from must be a set of addresses, not a string")
        if id in self._pending:
            raise ValueError(f"an IQ with id {id!r} is already pending")
        allowed = accept_from if type(accept_from) is frozenset else frozenset(accept_from)
        self._pending[id] = (allowed, waiter)

    def match(self, element: Element | StartElement | EndElement | CharData) -> object | None:
        """Return and remove the waiter ``element`` answers, else None.

        ``element`` is an :class:`Element` or a :class:`StartElement` (an
        ``EndElement`` or ``CharData`` never matches; any other object is a
        ``TypeError``).  An element that does not match leaves the table as
        it was.
        """
        el: Element | StartElement
        if type(element) is Element or type(element) is StartElement:
            el = element
        elif type(element) is EndElement or type(element) is CharData:
            return None
        else:
            raise TypeError(f"not an element: {element!r}")
        pending = self._pending
        name = el.name
        if not pending or name[1] != "iq" or name[0] not in _IQ_SPACES:
            return None
        typ = el.get("type")
        if typ != "result" and typ != "error":
            return None
        id = el.get("id")
        if id is None:
            return None
        entry = pending.get(id)
        if entry is None or el.get("from", "") not in entry[0]:
            return None
        del pending[id]
        return entry[1]

    def pop(self, id: str) -> object | None:
        """Remove the entry for ``id`` (on a timeout, say); return its waiter or None."""
        entry = self._pending.pop(id, None) if isinstance(id, str) else None
        return None if entry is None else entry[1]

    def drain(self) -> list[object]:
        """Remove every entry and return the waiters in the order they were added."""
        out = [entry[1] for entry in self._pending.values()]
        self._pending.clear()
        return out

    def __len__(self) -> int:
        return len(self._pending)

    def __contains__(self, id: object) -> bool:
        return isinstance(id, str) and id in self._pending

    def __repr__(self) -> str:
        return f"<IQTable pending={len(self._pending)}>"
