"""XMPP over WebSocket (RFC 7395) against real Prosody and ejabberd (issue 6).

Both servers serve WebSocket on plain HTTP on loopback (``ws_url``,
considered secure by their configuration) and on HTTPS (``wss_url``, with
the test PKI's certificate for ``localhost``).  Each test logs in with
:func:`xmpp.websocket.dial_session`, exchanges messages with a user logged in
over ordinary c2s (:func:`xmpp.client.dial_client_session`), pings the
server, and closes.  Each network wait is bounded.
"""

from __future__ import annotations

import ssl

import pytest

from xmpp import stanza, websocket
from xmpp.jid import JID
from xmpp.sasl import SASLError
from xmpp.session import Session, SessionState

from . import servers
from .test_c2s import TIMEOUT, body, body_text, bounded, login, ping, running


async def ws_login(
    server: servers.XMPPServer,
    pki: servers.Pki,
    user: str,
    *,
    secure: bool,
    resource: str | None = None,
    password: str | None = None,
) -> Session:
    """Log ``user`` in over ``wss_url`` (verified against the test CA) or plain ``ws_url``."""
    jid = JID(user, server.domain, resource)
    session = await bounded(
        websocket.dial_session(
            server.wss_url if secure else server.ws_url,
            jid,
            server.users[user] if password is None else password,
            tls_context=pki.client_context() if secure else None,
            allow_plaintext=not secure,
            timeout=TIMEOUT,
        ),
        f"WebSocket login of {user}",
        TIMEOUT + 1,
    )
    assert session.state & SessionState.READY and session.state & SessionState.SECURE
    return session


@pytest.mark.parametrize("secure", [False, True], ids=["ws", "wss"])
async def test_login_message_ping(xmpp_server: servers.XMPPServer, pki: servers.Pki, secure: bool) -> None:
    """alice over WebSocket and bob over c2s: messages both ways, a ping to the server, a clean close."""
    ws_session = await ws_login(xmpp_server, pki, "alice", secure=secure, resource="web")
    assert ws_session.transport.get_extra_info("subprotocol") == "xmpp"
    assert (ws_session.tls is not None) == secure
    async with running(ws_session) as alice, running(
        await login(xmpp_server, pki, "bob", resource="desk")
    ) as bob:
        alice_full = alice.session.local_addr
        bob_full = bob.session.local_addr
        assert alice_full is not None and str(alice_full) == "alice@localhost/web"
        assert bob_full is not None

        await alice.session.send_message(
            stanza.Message(to=bob_full, type=stanza.MessageType.CHAT), body("over websocket <&>")
        )
        got = await bounded(bob.messages.get(), "message from the WebSocket user")
        assert body_text(got) == "over websocket <&>" and got.from_ == alice_full

        for i in range(3):
            await bob.session.send_message(
                stanza.Message(to=alice_full, type=stanza.MessageType.CHAT), body(f"to the web {i}")
            )
        for i in range(3):
            got = await bounded(alice.messages.get(), f"message {i} to the WebSocket user")
            assert body_text(got) == f"to the web {i}" and got.from_ == bob_full

        reply = await ping(alice.session, xmpp_server.domain)
        assert reply.get("type") == "result" and reply.get("from") == xmpp_server.domain
    assert ws_session.closed
    assert ws_session.state & SessionState.INPUT_STREAM_CLOSED  # the server answered <close/>
    assert ws_session.transport.is_closing()


async def test_wrong_password(xmpp_server: servers.XMPPServer, pki: servers.Pki) -> None:
    """A refused login over WebSocket raises SASLError and leaves nothing open."""
    with pytest.raises(SASLError):
        await ws_login(xmpp_server, pki, "carol", secure=False, password="not the password")


async def test_wss_untrusted_certificate(xmpp_server: servers.XMPPServer, pki: servers.Pki) -> None:
    """wss:// verifies the server: a CA we do not trust fails the TLS handshake."""
    with pytest.raises(ssl.SSLCertVerificationError):
        await bounded(
            websocket.dial_session(
                xmpp_server.wss_url,
                xmpp_server.jid("alice"),
                xmpp_server.users["alice"],
                tls_context=pki.client_context(ca_file=pki.untrusted_ca_file),
                timeout=TIMEOUT,
            ),
            "a login that must fail",
            TIMEOUT + 1,
        )


async def test_wrong_path_is_an_http_error(xmpp_server: servers.XMPPServer) -> None:
    """A URL where the server has no WebSocket endpoint gives a handshake error with the HTTP status."""
    url = f"ws://{xmpp_server.host}:{xmpp_server.http_port}/no-such-endpoint"
    with pytest.raises(websocket.WebSocketHandshakeError) as err:
        await bounded(
            websocket.dial_session(
                url, xmpp_server.jid("alice"), xmpp_server.users["alice"],
                allow_plaintext=True, timeout=TIMEOUT,
            ),
            "a login that must fail",
            TIMEOUT + 1,
        )
    assert err.value.status is not None and err.value.status >= 400
