"""An echo bot: answers every chat message with the same body.

Run it against any XMPP server::

    XMPP_PASSWORD=secret python examples/echo_bot.py --jid bot@example.org

or against a local test server (``xmpp.testing.Server``) with its CA::

    XMPP_PASSWORD=secret python examples/echo_bot.py --jid bot@localhost \\
        --host 127.0.0.1 --port 5222 --ca-file ca.pem

It logs in with :func:`xmpp.client.dial_client_session` (DNS SRV unless
``--host``/``--port`` are given; STARTTLS, SASL, resource binding), sends its
initial presence, and serves the stream with a :class:`xmpp.mux.ServeMux`
that routes chat messages with a body to :func:`echo`.  It prints one line,
``online as <full JID>``, once it is ready, and stops on Ctrl-C, SIGTERM or
when the server closes the stream.  The password is read from the
``XMPP_PASSWORD`` environment variable so that it never shows in the process
list.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import ssl
import sys

from xmpp.client import dial_client_session
from xmpp.mux import ServeMux, message_func
from xmpp.session import Session
from xmpp.stanza import Message, MessageType, Presence
from xmpp.stream import NS_CLIENT
from xmpp.xmlstream import Element, Name

BODY = Name(NS_CLIENT, "body")


async def echo(msg: Message, element: Element, session: Session) -> None:
    """Send the body of ``msg`` back to its sender, as a chat message."""
    body = element.find("body", NS_CLIENT)
    if body is None or msg.from_ is None:
        return
    reply = Message(to=msg.from_, type=MessageType.CHAT)
    await session.send_message(reply, body)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Read the command line."""
    p = argparse.ArgumentParser(description="Echo every chat message back to its sender.")
    p.add_argument("--jid", required=True, help="the bot's address, such as bot@example.org")
    p.add_argument("--host", help="connect to this host instead of looking up DNS SRV records")
    p.add_argument("--port", type=int, help="connect to this port (default 5222 with --host)")
    p.add_argument("--ca-file", help="trust the CA certificates in this PEM file instead of the system's")
    p.add_argument("--timeout", type=float, default=30.0, help="seconds allowed for logging in")
    return p.parse_args(argv)


async def run(args: argparse.Namespace, password: str) -> None:
    """Log in, go online and echo until the stream ends or we are told to stop."""
    ctx = ssl.create_default_context(cafile=args.ca_file) if args.ca_file else None
    session = await dial_client_session(
        args.jid, password, host=args.host, port=args.port, tls_context=ctx, timeout=args.timeout
    )
    async with session:
        mux = ServeMux(NS_CLIENT, message_func(MessageType.CHAT, BODY, echo))
        serving = asyncio.ensure_future(session.serve(mux))
        await session.send_presence(Presence())
        print(f"online as {session.local_addr}", flush=True)
        stop = asyncio.get_running_loop().create_future()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError):  # not on Windows
                asyncio.get_running_loop().add_signal_handler(sig, stop.cancel)
        await asyncio.wait([serving, stop], return_when=asyncio.FIRST_COMPLETED)
        if serving.done():
            serving.result()  # the server ended the stream: raise its error, if any
    # Leaving the block closed the stream; serve has ended with it.
    with contextlib.suppress(Exception):
        await asyncio.wait_for(serving, 5)


def main(argv: list[str] | None = None) -> int:
    """The command line entry point: returns the process exit status."""
    args = parse_args(argv)
    password = os.environ.get("XMPP_PASSWORD")
    if not password:
        print("set XMPP_PASSWORD to the bot's password", file=sys.stderr)
        return 2
    try:
        asyncio.run(run(args, password))
    except KeyboardInterrupt:
        pass
    except Exception as exc:
        print(f"echo_bot: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
