"""Tokens, the streaming parser and encoder, and combinators over token readers.

This is the Python form of Go's encoding/xml tokens and mellium.im/xmlstream.
A *TokenReader* is any iterable of tokens (``StartElement``, ``EndElement``,
``CharData``); a *TokenWriter* has ``write_token(tok)`` and ``flush()``.

The engine behind the names is picked here, once: the compiled module
``xmpp._tokens`` when it loads, else the pure-Python twin
``xmpp._tokens_py``.  ``XMPP_NO_EXTENSIONS=1`` in the environment forces the
pure twin.  :data:`COMPILED` says which is in use.

>>> p = StreamParser()
>>> events = p.feed(b"<stream:stream xmlns='jabber:client' "
...                 b"xmlns:stream='http://etherx.jabber.org/streams'>"
...                 b"<message to='a@b'><body>hi</body></message>")
>>> [type(e).__name__ for e in events]
['StartElement', 'Element']
>>> events[1].get("to"), events[1].find("body").text
('a@b', 'hi')
"""

from __future__ import annotations

import itertools
import os
import platform
import sys
import types
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Protocol, TypeAlias, cast, runtime_checkable

__all__ = [
    "COMPILED",
    "DEFAULT_MAX_DEPTH",
    "DEFAULT_MAX_STANZA_BYTES",
    "Attr",
    "CharData",
    "Element",
    "Encoder",
    "EndElement",
    "Event",
    "IQTable",
    "Name",
    "StartElement",
    "StreamParser",
    "Token",
    "TokenReader",
    "TokenWriter",
    "Transformer",
    "copy",
    "fmt",
    "inner",
    "insert",
    "inspect",
    "iter_children",
    "map_tokens",
    "multi_reader",
    "pretty",
    "read_all",
    "remove_attr",
    "skip",
    "tee_reader",
    "unwrap",
    "wrap",
]


def _want_compiled() -> bool:
    if os.environ.get("XMPP_NO_EXTENSIONS"):
        return False
    return platform.python_implementation() == "CPython"


if TYPE_CHECKING:
    from xmpp._tokens import (
        DEFAULT_MAX_DEPTH,
        DEFAULT_MAX_STANZA_BYTES,
        Attr,
        CharData,
        Element,
        Encoder,
        EndElement,
        Event,
        IQTable,
        Name,
        StartElement,
        StreamParser,
        Token,
    )

    #: True when the compiled engine is in use, False for the pure twin.
    COMPILED: bool
else:
    COMPILED = False
    if _want_compiled():
        try:
            from xmpp._tokens import (
                DEFAULT_MAX_DEPTH,
                DEFAULT_MAX_STANZA_BYTES,
                Attr,
                CharData,
                Element,
                Encoder,
                EndElement,
                IQTable,
                Name,
                StartElement,
                StreamParser,
            )

            COMPILED = True
        except ImportError:  # no wheel for this platform: the pure twin serves
            pass
    if not COMPILED:
        from xmpp._tokens_py import (
            DEFAULT_MAX_DEPTH,
            DEFAULT_MAX_STANZA_BYTES,
            Attr,
            CharData,
            Element,
            Encoder,
            EndElement,
            IQTable,
            Name,
            StartElement,
            StreamParser,
        )
    Token = StartElement | EndElement | CharData
    Event = StartElement | Element | EndElement


# -- token readers and writers ------------------------------------------------

#: A token reader: any iterable of tokens.  An :class:`Element` is one (it
#: yields its tokens from its ``StartElement`` to its ``EndElement``); so is a
#: list of tokens, a generator, or the result of any combinator below.
TokenReader: TypeAlias = Iterable[Token]

#: A transformer turns one token reader into another (see :func:`insert`).
Transformer: TypeAlias = Callable[[TokenReader], Iterator[Token]]


@runtime_checkable
class TokenWriter(Protocol):
    """Anything that tokens can be written to, such as an :class:`Encoder`.

    ``write_token`` takes one token; ``flush`` hands on whatever the writer
    has buffered (its return value is the writer's business: an
    :class:`Encoder` returns the bytes).
    """

    def write_token(self, tok: Token) -> None:
        """Write one token."""

    def flush(self) -> object:
        """Hand on everything written so far."""


# Tokens of both engines pass through the combinators: the compiled engine's
# classes and the pure twin's are different classes with the same names.  A
# token's kind is looked up by its exact type; types of the engine not picked
# above are recognised (and remembered) the first time they are seen, so the
# pure twin is never imported just for this.
_START = 1
_END = 2
_CHAR = 3
_KIND_NAMES = {"StartElement": _START, "EndElement": _END, "CharData": _CHAR}
_ENGINE_MODULES = ("xmpp._tokens", "xmpp._tokens_py")
_KINDS: dict[type, int] = {StartElement: _START, EndElement: _END, CharData: _CHAR}


def _kind(tok: object) -> int:
    t = type(tok)
    k = _KINDS.get(t)
    if k is not None:
        return k
    mod = sys.modules.get(t.__module__)
    k = _KIND_NAMES.get(t.__name__)
    if k is None or t.__module__ not in _ENGINE_MODULES or getattr(mod, t.__name__, None) is not t:
        raise TypeError(f"not a token: {tok!r}")
    _KINDS[t] = k
    return k


def _engine_of(tok: object) -> types.ModuleType:
    """The engine module whose classes ``tok`` belongs to."""
    _kind(tok)
    return sys.modules[type(tok).__module__]


def _same_name(a: Name, b: Name) -> bool:
    # Names of the two engines never compare equal with ==; compare fields.
    return a.local == b.local and a.space == b.space


def _show(name: Name) -> str:
    return f"{{{name.space}}}{name.local}" if name.space else name.local


def _mismatch(end: EndElement, open_name: Name | None) -> ValueError:
    if open_name is None:
        return ValueError(f"unbalanced tokens: </{_show(end.name)}> closes no open element")
    return ValueError(
        f"unbalanced tokens: </{_show(end.name)}> does not match <{_show(open_name)}>"
    )


def _ended_inside(name: Name | None) -> ValueError:
    where = f"<{_show(name)}>" if name is not None else "an element"
    return ValueError(f"unbalanced tokens: the token reader ended inside {where}")


class _Inner:
    """Iterator over the tokens inside an element whose start was consumed.

    Reads from the shared iterator ``it``; stops after consuming (but not
    yielding) the end element that closes the element, which is checked
    against ``start`` when that is known.
    """

    __slots__ = ("_it", "_stack", "_start", "_done")

    def __init__(self, it: Iterator[Token], start: StartElement | None) -> None:
        self._it = it
        self._stack: list[Name] = []
        self._start = start
        self._done = False

    def __iter__(self) -> _Inner:
        return self

    def __next__(self) -> Token:
        if self._done:
            raise StopIteration
        try:
            tok = next(self._it)
        except StopIteration:
            self._done = True
            inner_name = self._stack[-1] if self._stack else None
            outer = self._start.name if self._start is not None else None
            raise _ended_inside(inner_name or outer) from None
        k = _kind(tok)
        if k == _START:
            self._stack.append(cast(StartElement, tok).name)
        elif k == _END:
            end = cast(EndElement, tok)
            if self._stack:
                open_name = self._stack.pop()
                if not _same_name(open_name, end.name):
                    self._done = True
                    raise _mismatch(end, open_name)
            else:
                self._done = True
                if self._start is not None and not _same_name(self._start.name, end.name):
                    raise _mismatch(end, self._start.name)
                raise StopIteration
        return tok

    def _drain(self) -> None:
        for _ in self:
            pass


def wrap(reader: TokenReader | None, start: StartElement) -> Iterator[Token]:
    """Return a reader of ``start``, then every token of ``reader``, then ``start.end()``.

    ``reader`` may be ``None`` for an empty element.

    >>> body = StartElement(Name("jabber:client", "body"))
    >>> list(wrap([CharData("hi")], body))
    [StartElement(Name('jabber:client', 'body'), ()), CharData('hi'), EndElement(Name('jabber:client', 'body'))]
    """
    yield start
    if reader is not None:
        yield from reader
    yield start.end()


def unwrap(reader: TokenReader) -> tuple[Iterator[Token], StartElement]:
    """Drop the outermost element of ``reader``: return a reader of its inside, and its start.

    The first token is read at once; it must be a ``StartElement`` (else
    ``ValueError``).  The returned reader yields the tokens inside that
    element and stops after consuming its end element; tokens after it stay
    unread in ``reader``'s iterator.  If the end element does not match, or
    ``reader`` ends first, reading raises ``ValueError``.

    >>> a, b = Name("", "a"), Name("", "b")
    >>> toks = [StartElement(a), StartElement(b), EndElement(b), EndElement(a)]
    >>> inside, start = unwrap(toks)
    >>> start, list(inside)
    (StartElement(Name('', 'a'), ()), [StartElement(Name('', 'b'), ()), EndElement(Name('', 'b'))])
    """
    it = iter(reader)
    first = next(it, None)
    if first is None:
        raise ValueError("cannot unwrap an empty token reader")
    if _kind(first) != _START:
        raise ValueError(f"cannot unwrap: the token reader begins with {first!r}, not a StartElement")
    start = cast(StartElement, first)
    return _Inner(it, start), start


def inner(iterator: Iterable[Token], start: StartElement | None = None) -> Iterator[Token]:
    """Return a reader of the tokens inside the element whose start was just consumed.

    ``iterator`` is positioned just after a ``StartElement``.  The returned
    reader yields the tokens up to, not including, the matching
    ``EndElement``, which it consumes; the rest of ``iterator`` is left
    unread.  If ``start`` is given, the closing end element is checked
    against it.  An end element that does not match, or ``iterator`` ending
    first, raises ``ValueError``.

    >>> a, b = Name("", "a"), Name("", "b")
    >>> it = iter([StartElement(a), CharData("x"), EndElement(a), StartElement(b), EndElement(b)])
    >>> start = next(it)
    >>> list(inner(it, start))
    [CharData('x')]
    >>> next(it)
    StartElement(Name('', 'b'), ())
    """
    return _Inner(iter(iterator), start)


def skip(iterator: Iterable[Token], start: StartElement | None = None) -> None:
    """Consume ``iterator`` to the end of the element whose start was just consumed.

    Like reading :func:`inner` to its end: nested elements are skipped whole,
    and the matching end element is consumed.  ``ValueError`` if the tokens
    are unbalanced or ``iterator`` ends inside the element.

    >>> a, b = Name("", "a"), Name("", "b")
    >>> it = iter([StartElement(b), EndElement(b), EndElement(a), CharData("after")])
    >>> skip(it)
    >>> list(it)
    [CharData('after')]
    """
    _Inner(iter(iterator), start)._drain()


def multi_reader(*readers: TokenReader) -> Iterator[Token]:
    """Return a reader of the tokens of each of ``readers`` in turn.

    >>> a = StartElement(Name("", "a"))
    >>> list(multi_reader([a, a.end()], [], [CharData("x")]))
    [StartElement(Name('', 'a'), ()), EndElement(Name('', 'a')), CharData('x')]
    """
    return itertools.chain.from_iterable(readers)


def tee_reader(reader: TokenReader, writer: TokenWriter) -> Iterator[Token]:
    """Return a reader of ``reader``'s tokens that also writes each token to ``writer``.

    A token is written when it is read, before it is handed on; nothing is
    flushed (that stays the caller's choice).  This is how an XML console
    sees a stream.

    >>> enc = Encoder()
    >>> a = StartElement(Name("", "a"))
    >>> list(tee_reader([a, a.end()], enc))
    [StartElement(Name('', 'a'), ()), EndElement(Name('', 'a'))]
    >>> enc.flush()
    b'<a/>'
    """
    for tok in reader:
        writer.write_token(tok)
        yield tok


def read_all(reader: TokenReader) -> list[Token]:
    """Read every token of ``reader`` into a list.

    >>> read_all(wrap(None, StartElement(Name("", "a"))))
    [StartElement(Name('', 'a'), ()), EndElement(Name('', 'a'))]
    """
    return list(reader)


def copy(writer: TokenWriter, reader: TokenReader) -> int:
    """Write every token of ``reader`` to ``writer``, flush it, and return the number of tokens.

    >>> enc = Encoder()
    >>> copy(enc, wrap([CharData("1 < 2")], StartElement(Name("", "a"))))
    3
    >>> enc.flush()  # copy already flushed; nothing is left
    b''
    """
    n = 0
    write = writer.write_token
    for tok in reader:
        write(tok)
        n += 1
    writer.flush()
    return n


def iter_children(reader: TokenReader) -> Iterator[tuple[StartElement, Iterator[Token]]]:
    """Iterate over the children of the outermost element of ``reader``.

    The first token must be a ``StartElement`` (the outermost element).  For
    each child element, yields ``(start, inside)``: the child's start and a
    reader of the tokens inside it (without its end element; ``wrap(inside,
    start)`` gives the whole child).  Tokens of a child the caller did not
    read are skipped when the iteration advances; character data between
    children is skipped.  The iteration ends after the outermost element's
    end element; tokens after it stay unread.  Unbalanced tokens raise
    ``ValueError``.

    >>> q, item = Name("jabber:iq:roster", "query"), Name("jabber:iq:roster", "item")
    >>> toks = [StartElement(q)]
    >>> for who in ("a@b", "c@d"):
    ...     toks += [StartElement(item, [Attr(Name("", "jid"), who)]), EndElement(item)]
    >>> toks.append(EndElement(q))
    >>> [start.get("jid") for start, _ in iter_children(toks)]
    ['a@b', 'c@d']
    """
    it = iter(reader)
    first = next(it, None)
    if first is None:
        raise ValueError("cannot iterate over the children of an empty token reader")
    if _kind(first) != _START:
        raise ValueError(f"cannot iterate over children: the reader begins with {first!r}, not a StartElement")
    outer = cast(StartElement, first)
    for tok in it:
        k = _kind(tok)
        if k == _CHAR:
            continue
        if k == _END:
            end = cast(EndElement, tok)
            if not _same_name(end.name, outer.name):
                raise _mismatch(end, outer.name)
            return
        start = cast(StartElement, tok)
        child = _Inner(it, start)
        yield start, child
        child._drain()
    raise _ended_inside(outer.name)


def remove_attr(reader: TokenReader, pred: Callable[[StartElement, Attr], bool]) -> Iterator[Token]:
    """Return a reader of ``reader``'s tokens without the attributes for which ``pred`` is true.

    ``pred(start, attr)`` is called for each attribute of each start element;
    a start element that loses no attribute is passed on unchanged.

    >>> start = StartElement(Name("", "iq"), [Attr(Name("", "id"), "1"), Attr(Name("", "to"), "a@b")])
    >>> out = list(remove_attr([start, start.end()], lambda s, a: a.name.local == "id"))
    >>> out[0]
    StartElement(Name('', 'iq'), (Attr(Name('', 'to'), 'a@b'),))
    """
    for tok in reader:
        if _kind(tok) == _START:
            start = cast(StartElement, tok)
            attrs = start.attrs
            kept = tuple(a for a in attrs if not pred(start, a))
            if len(kept) != len(attrs):
                tok = type(start)(start.name, kept)
        yield tok


def insert(name: Name, payload: TokenReader, *, last: bool = False) -> Transformer:
    """Return a transformer that puts ``payload``'s tokens inside every element named ``name``.

    The payload is read once, when ``insert`` is called, and inserted into
    each matching element: as its first children (just after the start
    element), or with ``last=True`` as its last children (just before the end
    element, as mellium's ``Insert`` does).  An empty component of ``name``
    is a wildcard: ``Name("", "query")`` matches a ``query`` in any
    namespace, ``Name(ns, "")`` any element in ``ns``.

    >>> item = StartElement(Name("", "item"))
    >>> delay = Element.from_tokens(wrap(None, StartElement(Name("urn:xmpp:delay", "delay"))))
    >>> add_delay = insert(Name("", "item"), delay)
    >>> print(pretty(add_delay(wrap(wrap(None, StartElement(Name("", "body"))), item))))
    <item>
      <delay xmlns="urn:xmpp:delay"/>
      <body/>
    </item>
    """
    toks = tuple(payload)
    space, local = name.space, name.local

    def matches(n: Name) -> bool:
        return (not space or n.space == space) and (not local or n.local == local)

    def transform(reader: TokenReader) -> Iterator[Token]:
        for tok in reader:
            k = _kind(tok)
            if last and k == _END and matches(cast(EndElement, tok).name):
                yield from toks
                yield tok
                continue
            yield tok
            if not last and k == _START and matches(cast(StartElement, tok).name):
                yield from toks

    return transform


def map_tokens(reader: TokenReader, f: Callable[[Token], Token | None]) -> Iterator[Token]:
    """Return a reader of ``f(tok)`` for each token of ``reader``, dropping those mapped to ``None``.

    >>> def shout(tok):
    ...     return CharData(tok.text.upper()) if isinstance(tok, CharData) else tok
    >>> list(map_tokens([CharData("hi")], shout))
    [CharData('HI')]
    >>> list(map_tokens([CharData("hi")], lambda tok: None))
    []
    """
    for tok in reader:
        out = f(tok)
        if out is not None:
            yield out


def inspect(reader: TokenReader, f: Callable[[Token], object]) -> Iterator[Token]:
    """Return a reader of ``reader``'s tokens, unchanged, that calls ``f`` on each as it is read.

    >>> seen = []
    >>> list(inspect([CharData("a"), CharData("b")], seen.append)) == seen
    True
    >>> seen
    [CharData('a'), CharData('b')]
    """
    for tok in reader:
        f(tok)
        yield tok


def fmt(reader: TokenReader, indent: str = "  ", prefix: str = "") -> Iterator[Token]:
    """Return ``reader``'s tokens with white space added so that an Encoder writes indented XML.

    Every element starts on a line of its own that begins with ``prefix`` and
    then ``indent`` once per nesting level (the first line has no newline
    before it, and nothing follows the last token).  An element that holds
    only text stays on one line, its text untouched; an empty element stays
    empty (self-closed when encoded).  Existing character data made only of
    white space between elements is dropped; other text among elements goes
    on a line of its own.  This is for showing XML (an XML console), not for
    sending it.  Unbalanced tokens raise ``ValueError``.

    >>> iq, q = Name("jabber:client", "iq"), Name("urn:xmpp:ping", "ping")
    >>> toks = [StartElement(iq, [Attr(Name("", "type"), "get")]), CharData("  "),
    ...         StartElement(q), EndElement(q), EndElement(iq)]
    >>> enc = Encoder(ns="jabber:client")
    >>> enc.encode(fmt(toks, indent="    ", prefix="| "))
    >>> print(enc.flush().decode())
    | <iq type="get">
    |     <ping xmlns="urn:xmpp:ping"/>
    | </iq>
    """
    it = iter(reader)
    stack: list[Name] = []
    first = True
    make_text: Callable[[str], Token] | None = None

    def line(depth: int) -> Token | None:
        # The white space that begins a new line at ``depth``.
        nonlocal first
        text = prefix + indent * depth
        if first:
            first = False
        else:
            text = "\n" + text
        if not text:
            return None
        assert make_text is not None
        return make_text(text)

    tok = next(it, None)
    while tok is not None:
        if make_text is None:
            make_text = cast(Callable[[str], Token], _engine_of(tok).CharData)
        k = _kind(tok)
        if k == _START:
            start = cast(StartElement, tok)
            ws = line(len(stack))
            if ws is not None:
                yield ws
            yield start
            stack.append(start.name)
            # Look ahead: is the content only text (or nothing)?
            texts: list[Token] = []
            tok = next(it, None)
            while tok is not None and _kind(tok) == _CHAR:
                texts.append(tok)
                tok = next(it, None)
            if tok is None:
                raise _ended_inside(stack[-1])
            if _kind(tok) == _END:
                end = cast(EndElement, tok)
                open_name = stack.pop()
                if not _same_name(open_name, end.name):
                    raise _mismatch(end, open_name)
                for t in texts:
                    if cast(CharData, t).text:
                        yield t
                yield end
                tok = next(it, None)
                continue
            # Element children follow: keep only text that is not blank.
            text = "".join(cast(CharData, t).text for t in texts)
            if text.strip():
                ws = line(len(stack))
                if ws is not None:
                    yield ws
                yield from texts
            continue
        if k == _CHAR:
            texts = [tok]
            tok = next(it, None)
            while tok is not None and _kind(tok) == _CHAR:
                texts.append(tok)
                tok = next(it, None)
            text = "".join(cast(CharData, t).text for t in texts)
            if text.strip():
                ws = line(len(stack))
                if ws is not None:
                    yield ws
                yield from texts
            continue
        end = cast(EndElement, tok)
        if not stack:
            raise _mismatch(end, None)
        open_name = stack.pop()
        if not _same_name(open_name, end.name):
            raise _mismatch(end, open_name)
        ws = line(len(stack))
        if ws is not None:
            yield ws
        yield end
        tok = next(it, None)
    if stack:
        raise _ended_inside(stack[-1])


def pretty(reader: TokenReader, ns: str = "", *, indent: str = "  ", prefix: str = "") -> str:
    """Return the tokens of ``reader`` (an :class:`Element`, say) as indented XML text.

    The text is what an :class:`Encoder` with default namespace ``ns`` writes
    for :func:`fmt` of the tokens.  An empty reader gives ``""``.

    >>> p = StreamParser()
    >>> _, msg = p.feed(b"<stream:stream xmlns='jabber:client' "
    ...                 b"xmlns:stream='http://etherx.jabber.org/streams'>"
    ...                 b"<message to='a@b'><body>hi</body><x xmlns='urn:x'><y/></x></message>")
    >>> print(pretty(msg, "jabber:client"))
    <message to="a@b">
      <body>hi</body>
      <x xmlns="urn:x">
        <y/>
      </x>
    </message>
    """
    it = iter(reader)
    first = next(it, None)
    if first is None:
        return ""
    enc = cast(Encoder, _engine_of(first).Encoder(ns=ns))
    enc.encode(fmt(itertools.chain((first,), it), indent=indent, prefix=prefix))
    return enc.flush().decode("utf-8")
