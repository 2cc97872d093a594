"""``python -m xmpp console``: an interactive XML console over a real session.

Everything the session reads and writes is shown, element by element,
pretty-printed by :func:`xmpp.xmlstream.pretty`: lines of incoming XML
start with ``<<`` (cyan on a terminal), outgoing ones with ``>>`` (green).
The bytes come from the session's ``tee_in``/``tee_out`` (see
:class:`xmpp.negotiator.StreamConfig`), which never carry SASL payloads:
those show as ``[redacted]``.

What the user types is collected line by line until it forms one or more
well-formed top-level elements, which are then sent (a stanza without an
``id`` gets one).  Malformed input is reported and dropped.  ``/quit`` (or
the end of input) closes the session; so does the server closing the
stream.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import ssl
import sys
import threading
from typing import Any, TextIO

from xmpp.cli import common
from xmpp.cli.common import EXIT_OK

__all__ = ["Assembler", "Printer", "StreamView", "run"]

_STREAMS = "http://etherx.jabber.org/streams"
_XML_NS = "http://www.w3.org/XML/1998/namespace"
_RESTARTS = {("urn:ietf:params:xml:ns:xmpp-tls", "proceed"), ("urn:ietf:params:xml:ns:xmpp-sasl", "success")}
_INPUT_HEADER = (
    b"<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>"
)


class Printer:
    """Writes XML text with a direction mark on every line, coloured if asked."""

    MARKS = {"in": "<< ", "out": ">> ", "note": "-- "}
    COLORS = {"in": "\x1b[36m", "out": "\x1b[32m", "note": "\x1b[33m"}

    def __init__(self, out: TextIO, *, color: bool) -> None:
        self.out = out
        self.color = color

    def show(self, direction: str, text: str) -> None:
        """Print ``text`` (any number of lines) as coming ``in`` or going ``out``
        (or a ``note`` of the console itself)."""
        mark = self.MARKS[direction]
        lines = [mark + line for line in text.splitlines() or [""]]
        body = "\n".join(lines)
        if self.color:
            body = self.COLORS[direction] + body + "\x1b[0m"
        self.out.write(body + "\n")
        self.out.flush()


def _attr_name(name: Any) -> str:
    if name.space == "":
        return str(name.local)
    if name.space == "xmlns":
        return f"xmlns:{name.local}"
    if name.space == _XML_NS:
        return f"xml:{name.local}"
    return f"{{{name.space}}}{name.local}"


def header_text(start: Any) -> str:
    """A stream header as text: ``<stream:stream to="…" …>`` (never closed)."""
    from xmpp.xmlstream import Encoder

    parts = []
    for a in start.attrs:
        # Escape the value as an attribute (the encoder does that for text).
        enc = Encoder()
        from xmpp.xmlstream import CharData

        enc.write_token(CharData(a.value))
        value = enc.flush().decode("utf-8").replace('"', "&quot;")
        parts.append(f'{_attr_name(a.name)}="{value}"')
    prefix = "stream:" if start.name.space == _STREAMS else ""
    return f"<{prefix}{start.name.local}" + "".join(" " + p for p in parts) + ">"


class StreamView:
    """Turns one direction's bytes (as a tee gets them) into printed elements.

    Incoming bytes arrive in arbitrary chunks, so they go through a
    :class:`xmpp.xmlstream.StreamParser` of their own; the parser starts a
    new document after ``<proceed/>`` and ``<success/>`` (the stream
    restarts) and whenever a chunk begins with a new stream header.  What
    does not parse is shown as it is.
    """

    def __init__(self, printer: Printer, direction: str, *, raw: bool = False) -> None:
        from xmpp.xmlstream import StreamParser

        self.printer = printer
        self.direction = direction
        self.raw = raw
        self.parser = StreamParser()
        self.ns = "jabber:client"

    def __call__(self, data: bytes) -> None:
        """Show ``data`` (the tee callback)."""
        try:
            self.feed(data)
        except Exception as exc:  # never let a display problem break the session
            self.printer.show("note", f"(cannot show {len(data)} bytes: {exc})")

    def feed(self, data: bytes) -> None:
        """Parse ``data`` and print every complete element it finishes."""
        from xmpp.stream import StreamError
        from xmpp.xmlstream import Element, StartElement, pretty

        if self.raw:
            self.printer.show(self.direction, bytes(data).decode("utf-8", "replace"))
            return
        head = bytes(data[:16]).lstrip()
        if head.startswith((b"<?xml", b"<stream:stream")) and self.parser.header is not None:
            self.parser.reset()
        try:
            events = self.parser.feed(data)
            failed: StreamError | None = None
        except StreamError as exc:
            events, failed = exc.events, exc
        for ev in events:
            if isinstance(ev, StartElement):
                for a in ev.attrs:
                    if a.name.space == "" and a.name.local == "xmlns":
                        self.ns = a.value
                self.printer.show(self.direction, header_text(ev))
            elif isinstance(ev, Element):
                self.printer.show(self.direction, pretty(ev, self.ns))
                if (ev.name.space, ev.name.local) in _RESTARTS:
                    self.parser.reset()
            else:
                self.printer.show(self.direction, "</stream:stream>")
        if failed is not None:
            self.printer.show(self.direction, bytes(data).decode("utf-8", "replace"))
            self.parser.reset()


class Assembler:
    """Collects typed lines until they make whole top-level elements.

    :meth:`add` returns the elements completed by a line (an empty list
    while an element is still open) and raises ``ValueError`` for input
    that can never become well-formed (the buffer is then cleared).
    """

    def __init__(self) -> None:
        self.buffer = ""

    @property
    def pending(self) -> bool:
        """True while part of an element waits for more lines."""
        return bool(self.buffer.strip())

    def add(self, line: str) -> list[Any]:
        """Add one line; return the elements it completed."""
        from xmpp.stream import StreamError
        from xmpp.xmlstream import Element, EndElement, StreamParser

        self.buffer += line + "\n"
        data = _INPUT_HEADER + self.buffer.encode("utf-8")
        try:
            events = StreamParser().feed(data)
        except StreamError as exc:
            self.buffer = ""
            raise ValueError(f"not sent: {exc}") from None
        try:
            closed = StreamParser().feed(data + b"</stream:stream>")
        except StreamError:
            return []  # an element is still open: wait for more
        if not any(isinstance(e, EndElement) for e in closed):
            return []
        self.buffer = ""
        return [e for e in events if isinstance(e, Element)]


def _read_lines(loop: asyncio.AbstractEventLoop, queue: asyncio.Queue[str | None], stream: TextIO) -> None:
    """Read ``stream`` line by line in a daemon thread, handing each to ``queue``."""
    try:
        for line in stream:
            loop.call_soon_threadsafe(queue.put_nowait, line.rstrip("\r\n"))
    except (OSError, ValueError, RuntimeError):
        pass
    with contextlib.suppress(RuntimeError):  # the loop may be gone already
        loop.call_soon_threadsafe(queue.put_nowait, None)


async def console(
    args: argparse.Namespace, jid: Any, password: str, ctx: ssl.SSLContext | None, printer: Printer
) -> int:
    """Run the console until ``/quit``, the end of input, or the end of the stream."""
    view_in = StreamView(printer, "in", raw=args.raw)
    view_out = StreamView(printer, "out", raw=args.raw)
    session = await common.connect(args, jid, password, context=ctx, tee_in=view_in, tee_out=view_out)
    printer.show("note", f"logged in as {session.local_addr}; type a stanza, /quit to leave")
    serve = asyncio.ensure_future(session.serve(None))
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[str | None] = asyncio.Queue()
    threading.Thread(target=_read_lines, args=(loop, queue, sys.stdin), daemon=True,
                     name="xmpp-console-input").start()
    assembler = Assembler()
    ended_by_server = False
    try:
        while True:
            get = asyncio.ensure_future(queue.get())
            done, _ = await asyncio.wait({get, serve}, return_when=asyncio.FIRST_COMPLETED)
            if get not in done:
                get.cancel()
                ended_by_server = True
                break
            line = get.result()
            if line is None or (not assembler.pending and line.strip() == "/quit"):
                break
            if not assembler.pending and not line.strip():
                continue
            try:
                elements = assembler.add(line)
            except ValueError as exc:
                printer.show("note", str(exc))
                continue
            for el in elements:
                await session.send(el)
    finally:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(session.close(timeout=min(args.timeout, 5.0)), args.timeout + 1.0)
        if not serve.done():
            _d, pending = await asyncio.wait([serve], timeout=2.0)
            for t in pending:
                t.cancel()
            await asyncio.wait([serve], timeout=2.0)
    if ended_by_server:
        printer.show("note", "the server closed the stream")
        failure = None if serve.cancelled() else serve.exception()
        if failure is not None:
            raise failure
    elif serve.done() and not serve.cancelled():
        serve.exception()  # retrieved; our own close ended it
    return EXIT_OK


def run(args: argparse.Namespace) -> int:
    """Run ``console`` with parsed ``args``; return the exit code."""
    from xmpp.cli.tools import account

    jid, password, ctx = account(args)
    if args.color == "always":
        color = True
    elif args.color == "never":
        color = False
    else:
        color = sys.stdout.isatty() and not os.environ.get("NO_COLOR")
    return asyncio.run(console(args, jid, password, ctx, Printer(sys.stdout, color=color)))
