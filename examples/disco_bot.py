"""A bot that answers the questions every XMPP entity is asked: ping, disco, version, time.

Run it against any XMPP server::

    XMPP_PASSWORD=secret python examples/disco_bot.py --jid bot@example.org

or against a local test server (``xmpp.testing.Server``) with its CA::

    XMPP_PASSWORD=secret python examples/disco_bot.py --jid bot@localhost \\
        --host 127.0.0.1 --port 5222 --ca-file ca.pem

It logs in with :func:`xmpp.client.dial_client_session`, then serves a
:class:`xmpp.mux.ServeMux` built from the extension modules' options:

* :func:`xmpp.ping.handle` answers XEP-0199 pings;
* :func:`xmpp.version.handle` answers XEP-0092 software version queries;
* :func:`xmpp.time.handle` answers XEP-0202 entity time queries;
* :func:`xmpp.disco.handle` answers XEP-0030 disco#info with the features
  the mux aggregates from the handlers above (and disco#items), and the
  XEP-0115 capabilities node.

Its initial presence carries its XEP-0115 ``<c/>``, so that contacts know
its features without asking.  It prints ``online as <full JID> ver <ver>``
once it is ready, and stops on Ctrl-C, SIGTERM or when the server closes
the stream.  The password is read from ``XMPP_PASSWORD``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import ssl
import sys

from xmpp import caps, disco, ping, version
from xmpp import time as xtime
from xmpp.client import dial_client_session
from xmpp.mux import ServeMux
from xmpp.stanza import Presence
from xmpp.stream import NS_CLIENT

#: The node of this software, for XEP-0115.
CAPS_NODE = "https://github.com/xmpp-python/examples/disco_bot"


def make_mux(name: str) -> ServeMux:
    """The bot's handlers: ping, version, time and disco (which lists them all)."""
    return ServeMux(
        NS_CLIENT,
        ping.handle(),
        version.handle("disco_bot", "1.0"),
        xtime.handle(),
        disco.handle(identities=[disco.Identity("client", "bot", name)], caps_node=CAPS_NODE),
    )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Read the command line."""
    p = argparse.ArgumentParser(description="Answer pings, disco, version and time queries.")
    p.add_argument("--jid", required=True, help="the bot's address, such as bot@example.org")
    p.add_argument("--host", help="connect to this host instead of looking up DNS SRV records")
    p.add_argument("--port", type=int, help="connect to this port (default 5222 with --host)")
    p.add_argument("--ca-file", help="trust the CA certificates in this PEM file instead of the system's")
    p.add_argument("--name", default="disco bot", help="the name in the bot's disco identity")
    p.add_argument("--timeout", type=float, default=30.0, help="seconds allowed for logging in")
    return p.parse_args(argv)


async def run(args: argparse.Namespace, password: str) -> None:
    """Log in, go online with caps, and answer until the stream ends or we are told to stop."""
    ctx = ssl.create_default_context(cafile=args.ca_file) if args.ca_file else None
    session = await dial_client_session(
        args.jid, password, host=args.host, port=args.port, tls_context=ctx, timeout=args.timeout
    )
    mux = make_mux(args.name)
    ours = caps.caps_for(disco.mux_info(mux), CAPS_NODE)
    async with session:
        serving = asyncio.ensure_future(session.serve(mux))
        await session.send_presence(Presence(), ours)
        print(f"online as {session.local_addr} ver {ours.ver}", flush=True)
        stop = asyncio.get_running_loop().create_future()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError):  # not on Windows
                asyncio.get_running_loop().add_signal_handler(sig, stop.cancel)
        await asyncio.wait([serving, stop], return_when=asyncio.FIRST_COMPLETED)
        if serving.done():
            serving.result()  # the server ended the stream: raise its error, if any
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
        print(f"disco_bot: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
