"""Fuzz target for the stream parser (atheris / libFuzzer).

The one invariant: whatever bytes a peer sends, ``StreamParser.feed`` returns
events or raises :class:`xmpp.stream.StreamError`; never another exception.
Every ``Element`` it returns encodes again without error, and its bytes
(standalone, and in a ``jabber:client`` scope) parse back to an equal
element; no attribute inside it has the form of a namespace declaration
(``Name("", "xmlns")`` or ``Name("xmlns", prefix)``), which only the stream
header may carry.

The fuzz input is decoded as::

    byte 0        flags: bits 0-1 = number of chunks - 1 (1 to 4 chunks);
                  bits 2-4 = index of the chunk before which ``reset()`` is
                  called (no reset when it is not below the number of chunks);
                  bit 5 = small limits (max_stanza_bytes=512, max_depth=8)
    next 2*(n-1)  big-endian 16-bit cut offsets (taken modulo the payload
                  length + 1, then sorted) splitting the payload into n chunks
    the rest      the payload: the bytes the peer sends

:func:`make_input` builds such an input.  The engine is the one
``xmpp.xmlstream`` picks (``XMPP_NO_EXTENSIONS=1`` forces the pure twin) or,
when run as a script, ``--engine pure|compiled``.

Run it (see ``scripts/fuzz.sh`` for a bounded run on both engines)::

    python fuzz/fuzz_stream.py --engine pure -max_total_time=60 CORPUS_DIR
    python fuzz/fuzz_stream.py --write-seeds CORPUS_DIR
"""

from __future__ import annotations

import importlib
import os
import sys
import types
from collections.abc import Sequence

if __name__ == "__main__" and "--write-seeds" not in sys.argv:
    # Coverage feedback comes from Python code, so the library's modules are
    # instrumented as they are first imported: the pure engine, the prolog
    # check both engines share, the stream errors.  The compiled engine is
    # not instrumented; its run still checks the invariant on every input.
    import atheris  # type: ignore[import-untyped]

    with atheris.instrument_imports(include=["xmpp"]):
        import xmpp._prolog
        import xmpp._tokens_py
        import xmpp.stream
        import xmpp.xmlstream  # noqa: F401

from xmpp.stream import StreamError

STREAM_NS = "http://etherx.jabber.org/streams"
_BARE_HEADER = f"<stream:stream xmlns:stream='{STREAM_NS}'>".encode()
_CLIENT_HEADER = f"<stream:stream xmlns='jabber:client' xmlns:stream='{STREAM_NS}'>".encode()
SMALL_MAX_STANZA_BYTES = 512
SMALL_MAX_DEPTH = 8

ENGINES = {"compiled": "xmpp._tokens", "pure": "xmpp._tokens_py"}


def load_engine(name: str | None = None) -> types.ModuleType:
    """Return the engine module named ``name`` (``"pure"`` or ``"compiled"``).

    With no name, the engine :mod:`xmpp.xmlstream` picks (which honours
    ``XMPP_NO_EXTENSIONS``).
    """
    if name is None:
        from xmpp import xmlstream

        return sys.modules[xmlstream.StreamParser.__module__]
    if name not in ENGINES:
        raise ValueError(f"unknown engine {name!r}: use one of {sorted(ENGINES)}")
    return importlib.import_module(ENGINES[name])


_default_engine: types.ModuleType | None = None


def make_input(
    chunks: Sequence[bytes], *, reset_before: int | None = None, small_limits: bool = False
) -> bytes:
    """Encode a fuzz input that feeds ``chunks`` (one to four) in that order.

    ``reset_before`` is the index of the chunk before which the parser is
    reset; ``small_limits`` selects the small size and depth bounds.
    """
    if not 1 <= len(chunks) <= 4:
        raise ValueError("one to four chunks")
    if reset_before is not None and not 0 <= reset_before < len(chunks):
        raise ValueError("reset_before must index a chunk")
    flags = (len(chunks) - 1) | ((7 if reset_before is None else reset_before) << 2)
    if small_limits:
        flags |= 0x20
    payload = b"".join(chunks)
    head = bytearray([flags])
    pos = 0
    for c in chunks[:-1]:
        pos += len(c)
        if pos > 0xFFFF:
            raise ValueError("a cut past 64 KiB cannot be encoded in 16 bits")
        head += pos.to_bytes(2, "big")
    return bytes(head) + payload


def decode_input(data: bytes) -> tuple[list[bytes], int | None, bool]:
    """Decode a fuzz input into its chunks, the reset index and the limits flag.

    Every byte string decodes to something (an empty input is one empty chunk).
    """
    if not data:
        return [b""], None, False
    flags = data[0]
    n = (flags & 3) + 1
    reset = (flags >> 2) & 7
    small = bool(flags & 0x20)
    head_len = 1 + 2 * (n - 1)
    head = data[1:head_len]
    payload = data[head_len:]
    cuts = sorted(
        int.from_bytes(head[i : i + 2], "big") % (len(payload) + 1) for i in range(0, len(head) - 1, 2)
    )
    chunks, last = [], 0
    for c in cuts:
        chunks.append(payload[last:c])
        last = c
    chunks.append(payload[last:])
    return chunks, (reset if reset < len(chunks) else None), small


def _check_element(engine: types.ModuleType, el: object) -> None:
    """An element from the parser re-encodes, and its bytes parse back to it."""
    toks = list(el)  # type: ignore[call-overload]
    if not toks or type(toks[0]) is not engine.StartElement:
        raise AssertionError(f"element does not start with a StartElement: {toks[:1]!r}")
    for tok in toks:
        if type(tok) is engine.StartElement:
            for a in tok.attrs:
                if a.name.space == "xmlns" or (not a.name.space and a.name.local == "xmlns"):
                    raise AssertionError(f"an attribute reads as a namespace declaration: {a!r}")
    standalone = bytes(el)  # type: ignore[call-overload]
    in_scope = el.encode("jabber:client")  # type: ignore[attr-defined]
    enc = engine.Encoder()
    enc.encode(toks)
    if enc.flush() != standalone:
        raise AssertionError("Encoder and bytes(element) disagree")
    for header, data in ((_BARE_HEADER, standalone), (_CLIENT_HEADER, in_scope)):
        again = engine.StreamParser().feed(header + data)
        if len(again) != 2 or again[1] != el:
            raise AssertionError(f"re-encoded element does not parse back: {data!r}")


def test_one_input(data: bytes, engine: types.ModuleType | None = None) -> None:
    """Feed ``data`` (see the module docstring for its layout) to a StreamParser.

    Returns normally when the invariant holds; raises whatever broke it
    otherwise (any exception but :class:`~xmpp.stream.StreamError` escaping
    ``feed``, or an ``AssertionError`` from a check on the events).
    """
    global _default_engine
    if engine is None:
        if _default_engine is None:
            _default_engine = load_engine()
        engine = _default_engine
    chunks, reset_before, small = decode_input(bytes(data))
    if small:
        parser = engine.StreamParser(max_stanza_bytes=SMALL_MAX_STANZA_BYTES, max_depth=SMALL_MAX_DEPTH)
    else:
        parser = engine.StreamParser()
    event_types = (engine.StartElement, engine.Element, engine.EndElement)
    for i, chunk in enumerate(chunks):
        if i == reset_before:
            parser.reset()
        failed = False
        try:
            events = parser.feed(chunk)
        except StreamError as err:
            events = list(err.events)
            failed = True
        if failed and parser.error is None:
            raise AssertionError("feed raised a StreamError but parser.error is None")
        for ev in events:
            if type(ev) not in event_types:
                raise AssertionError(f"feed returned a non-event: {ev!r}")
            if type(ev) is engine.Element:
                _check_element(engine, ev)


# -- seeds ------------------------------------------------------------------------

_HEADER = (
    b"<?xml version='1.0'?><stream:stream xmlns='jabber:client' "
    b"xmlns:stream='http://etherx.jabber.org/streams' to='example.com' version='1.0' xml:lang='en'>"
)
_STANZAS = (
    b"<stream:features><starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'><required/></starttls>"
    b"</stream:features> \n"
    b"<message to='juliet@example.com' type='chat' id='m1'><body>hi &amp; &lt;3 \xc3\xa9"
    b"\xf0\x9f\x98\x80 &#x41;</body><x xmlns='urn:x' a:b='c' xmlns:a='urn:a'/></message>"
    b"<iq type='get' id='p1'><ping xmlns='urn:xmpp:ping'/></iq>"
    b"<presence><show>away</show></presence>"
)
_LAUGHS = (
    b"<?xml version='1.0'?><!DOCTYPE lolz [<!ENTITY lol 'lol'>"
    b"<!ENTITY lol1 '&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;'>"
    b"<!ENTITY lol2 '&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;'>]>"
    b"<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>"
    b"<message><body>&lol2;</body></message>"
)


def seeds() -> dict[str, bytes]:
    """A small seed corpus, name to fuzz input, covering the interesting paths."""
    restart = b"<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>"
    return {
        "stream": make_input([_HEADER + _STANZAS + b"</stream:stream>"]),
        "split": make_input([_HEADER[:30], _HEADER[30:] + _STANZAS[:77], _STANZAS[77:]]),
        "restart": make_input([_HEADER + _STANZAS[:100], restart + b"<iq type='result' id='b'/>"], reset_before=1),
        "small-limits": make_input([_HEADER + b"<a><b><c><d><e><f><g><h><i/></h></g></f></e></d></c></b></a>"
                                    + b"<m>" + b"x" * 600 + b"</m>"], small_limits=True),
        "laughs": make_input([_LAUGHS]),
        "doctype": make_input([b"<!DOCTYPE stream:stream SYSTEM 'file:///etc/passwd'>" + _HEADER]),
        "comment-pi": make_input([_HEADER + b"<!-- hi --><?php x?><message/>"]),
        "truncated": make_input([_HEADER + b"<message to='a@b'><body>never end"]),
        "bad-utf8": make_input([_HEADER + b"<message><body>\xc3\x28\xff\xfe</body></message>"]),
        "nul": make_input([_HEADER + b"<message>\x00</message>"]),
        "text-between": make_input([_HEADER + b"junk<message/>"]),
        "utf16": make_input([b"\xff\xfe<\x00s\x00"]),
        "prefixes": make_input([_HEADER + b"<p:m xmlns:p='jabber:client' xmlns:q='urn:q' q:a='1' "
                                b"xml:lang='de'><q:x/></p:m>"]),
        "cdata": make_input([_HEADER + b"<message><body><![CDATA[<&>]]></body></message>"]),
        "reserved-ns": make_input([_HEADER + b"<x xmlns:a='xmlns' a:b='c'/>"]),
        "xml-ns": make_input([_HEADER + b"<xml:x xmlns:xml='http://www.w3.org/XML/1998/namespace' "
                              b"xml:lang='en'><y xmlns:a='http://www.w3.org/2000/xmlns/'/></xml:x>"]),
    }


def write_seeds(directory: str) -> int:
    """Write :func:`seeds` into ``directory`` (created if missing); return how many."""
    os.makedirs(directory, exist_ok=True)
    found = seeds()
    for name, data in found.items():
        with open(os.path.join(directory, f"seed-{name}"), "wb") as f:
            f.write(data)
    return len(found)


def main(argv: list[str]) -> None:
    """Run the fuzzer: ``--engine pure|compiled`` picks the engine, the rest goes to libFuzzer."""
    global _default_engine
    args = list(argv)
    name = None
    if "--write-seeds" in args:
        i = args.index("--write-seeds")
        print(f"wrote {write_seeds(args[i + 1])} seeds to {args[i + 1]}")
        return
    for i, a in enumerate(args):
        if a == "--engine" and i + 1 < len(args):
            name = args[i + 1]
            del args[i : i + 2]
            break
        if a.startswith("--engine="):
            name = a.split("=", 1)[1]
            del args[i]
            break
    if name is None and os.environ.get("XMPP_NO_EXTENSIONS"):
        name = "pure"

    import atheris

    engine = load_engine(name)
    _default_engine = engine
    print(f"fuzz_stream: engine {engine.__name__}", file=sys.stderr)
    atheris.Setup(args, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main(sys.argv)
