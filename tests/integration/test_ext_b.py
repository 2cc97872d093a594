"""Roster, carbons, blocking and ad-hoc commands against real Prosody and ejabberd,
and slixmpp running one of our ad-hoc commands (issue 9).

Each test logs in with the library's own features (``test_c2s.login``) and
serves the session with a mux holding the extension's handler.  Contacts
are made up per test (a fresh id), so tests sharing a server never see each
other's roster or block list entries.  Server facts these tests rely on:
both run carbons (Prosody mod_carbons, ejabberd mod_carboncopy), blocking
(Prosody mod_blocklist, ejabberd mod_blocking) and ad-hoc commands
(mod_adhoc; ejabberd offers its ``ping`` command to every user); Prosody
versions rosters, ejabberd (``mod_roster`` without ``versioning``) does not.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import slixmpp

from xmpp import blocking, carbons, commands, disco, roster
from xmpp.client import dial_client_session
from xmpp.forms import Field, FieldType, Form, FormType
from xmpp.jid import JID
from xmpp.mux import ServeMux
from xmpp.stanza import Message, MessageType, Presence, new_id
from xmpp.testing import Server
from xmpp.xmlstream import CharData, Element, Name, StartElement

from . import servers
from .test_c2s import TIMEOUT, Running, bounded, login
from .test_slixmpp import USERS, slix_client

BODY_NS = "jabber:client"


def body(text: str) -> list[Any]:
    """The tokens of a ``<body/>`` holding ``text``."""
    s = StartElement(Name(BODY_NS, "body"))
    return [s, CharData(text), s.end()]


def body_of(el: Element) -> str:
    """The text of the ``<body/>`` of a message element, ``""`` if it has none."""
    found = el.find("body", BODY_NS)
    return "" if found is None else found.text


async def next_where(q: asyncio.Queue[Any], pred: Any, what: str) -> Any:
    """The next item of ``q`` for which ``pred`` holds (others are skipped), bounded in time and count."""
    for _ in range(50):
        item = await bounded(q.get(), what)
        if pred(item):
            return item
    pytest.fail(f"{what}: 50 items came, none matched")


async def test_roster_fetch_set_delete_and_push(xmpp_server: servers.XMPPServer, pki: servers.Pki) -> None:
    """Set an item (the server pushes it back), fetch it, delete it (pushed as remove)."""
    pushes: asyncio.Queue[roster.Push] = asyncio.Queue()
    handler = roster.Handler(pushes.put_nowait)
    session = await login(xmpp_server, pki, "alice", resource=f"roster-{new_id()}")
    contact = JID.parse(f"contact-{new_id()}@localhost")
    async with session, Running(session, ServeMux(session.stanza_ns, roster.handle(handler))):
        before = await bounded(roster.fetch(session), "fetching the roster")
        assert before.get(contact) is None

        await bounded(roster.set(session, roster.Item(contact, "Contact", groups=("Friends",))), "roster set")
        push = await next_where(pushes, lambda p: p.item.jid == contact, "the roster push of the set")
        assert push.item.name == "Contact" and push.item.groups == ("Friends",)
        assert push.item.subscription is roster.Subscription.NONE

        after = await bounded(roster.fetch(session), "fetching the roster again")
        item = after.get(contact)
        assert item is not None and item.name == "Contact" and item.groups == ("Friends",)
        assert len(after) == len(before) + 1

        await bounded(roster.delete(session, contact), "roster delete")
        gone = await next_where(pushes, lambda p: p.item.jid == contact, "the roster push of the delete")
        assert gone.item.subscription is roster.Subscription.REMOVE
        final = await bounded(roster.fetch(session), "fetching the roster a third time")
        assert final.get(contact) is None
        assert handler.ignored == 0


async def test_roster_versioning(xmpp_server: servers.XMPPServer, pki: servers.Pki) -> None:
    """Prosody advertises versioning and answers an up-to-date fetch with an empty result; ejabberd does not version."""
    session = await login(xmpp_server, pki, "bob", resource=f"ver-{new_id()}")
    async with session, Running(session):
        supported = roster.versioning_supported(session)
        assert supported == isinstance(xmpp_server, servers.ProsodyServer)
        if not supported:
            r = await bounded(roster.fetch(session), "fetching the roster")
            assert r.ver is None and not r.unchanged
            return
        full = await bounded(roster.fetch(session, ver=""), "a versioned fetch")
        assert full.ver is not None and not full.unchanged
        same = await bounded(roster.fetch(session, ver=full.ver), "a fetch at the current version")
        assert same.unchanged and len(same) == 0


async def test_presence_subscription_request(xmpp_server: servers.XMPPServer, pki: servers.Pki) -> None:
    """subscribe() reaches the contact as a subscribe presence from our bare JID; deny() answers it."""
    alice = await login(xmpp_server, pki, "alice", resource=f"sub-{new_id()}")
    bob = await login(xmpp_server, pki, "bob", resource=f"sub-{new_id()}")
    async with alice, bob, Running(alice), Running(bob) as rb:
        await bob.send_presence(Presence())
        await bounded(roster.subscribe(alice, JID.parse(xmpp_server.jid("bob"))), "sending subscribe")
        got = await next_where(
            rb.presences, lambda p: p.type.value == "subscribe", "bob receiving the subscription request"
        )
        assert got.from_ == JID.parse(xmpp_server.jid("alice"))
        await bounded(roster.deny(bob, got.from_), "denying")
        await bounded(roster.unsubscribe(alice, JID.parse(xmpp_server.jid("bob"))), "withdrawing")


async def test_carbons_between_two_resources(xmpp_server: servers.XMPPServer, pki: servers.Pki) -> None:
    """carol/one and carol/two enable carbons; two sees copies of what one receives and sends."""
    copies: asyncio.Queue[tuple[carbons.Direction, Element]] = asyncio.Queue()
    handler = carbons.Handler(lambda d, m, s: copies.put_nowait((d, m)))
    one = await login(xmpp_server, pki, "carol", resource=f"one-{new_id()}")
    two = await login(xmpp_server, pki, "carol", resource=f"two-{new_id()}")
    bob = await login(xmpp_server, pki, "bob", resource=f"carbons-{new_id()}")
    assert one.local_addr is not None and bob.local_addr is not None
    async with one, two, bob, Running(one) as r1, Running(
        two, ServeMux(two.stanza_ns, carbons.handle(handler))
    ), Running(bob) as rb:
        for s in (one, two, bob):
            await s.send_presence(Presence())
        await bounded(carbons.enable(one), "enabling carbons on one")
        await bounded(carbons.enable(two), "enabling carbons on two")

        token = new_id()
        await bob.send_message(Message(to=one.local_addr, type=MessageType.CHAT), body(f"to one {token}"))
        await next_where(r1.messages, lambda m: True, "one receiving bob's message")
        d, msg = await next_where(copies, lambda c: token in body_of(c[1]), "the received carbon")
        assert d is carbons.Direction.RECEIVED
        assert msg.get("from") == str(bob.local_addr) and msg.get("to") == str(one.local_addr)

        await one.send_message(Message(to=bob.local_addr, type=MessageType.CHAT), body(f"from one {token}"))
        await next_where(rb.messages, lambda m: True, "bob receiving one's message")
        d, msg = await next_where(copies, lambda c: c[0] is carbons.Direction.SENT, "the sent carbon")
        found = msg.find("body")
        assert found is not None and found.text == f"from one {token}"
        assert msg.get("to") == str(bob.local_addr)
        assert handler.ignored == 0

        # A forged carbon sent by bob (not carol's account) is refused by the sender check.
        fwd_msg = Message(to=two.local_addr, from_=JID.parse("mallory@localhost/x"), type=MessageType.CHAT)
        f = StartElement(Name(carbons.NS_FORWARD, "forwarded"))
        rcv = StartElement(Name(carbons.NS, "received"))
        await bob.send_message(
            Message(to=two.local_addr, type=MessageType.CHAT),
            [rcv, f, *fwd_msg.wrap(body("forged")), f.end(), rcv.end()],
        )
        for _ in range(100):
            if handler.ignored:
                break
            await asyncio.sleep(0.05)
        assert handler.ignored == 1
        await bounded(carbons.disable(two), "disabling carbons")


async def test_blocking(xmpp_server: servers.XMPPServer, pki: servers.Pki) -> None:
    """Fetch, block, unblock, unblock all; the server pushes each change back."""
    pushes: asyncio.Queue[blocking.Push] = asyncio.Queue()
    handler = blocking.Handler(pushes.put_nowait)
    session = await login(xmpp_server, pki, "alice", resource=f"block-{new_id()}")
    a = JID.parse(f"spam-{new_id()}@example.org")
    b = JID.parse(f"spam-{new_id()}@example.org")
    async with session, Running(session, ServeMux(session.stanza_ns, blocking.handle(handler))):
        # Pushes go to resources that have fetched the list (XEP-0191 section 3.3).
        assert a not in await bounded(blocking.fetch(session), "fetching the block list first")
        await bounded(blocking.block(session, a, b), "blocking")
        push = await next_where(pushes, lambda p: p.blocked, "the block push")
        assert set(push.jids) == {a, b}
        listed = await bounded(blocking.fetch(session), "fetching the block list")
        assert a in listed and b in listed
        await bounded(blocking.unblock(session, a), "unblocking one")
        push = await next_where(pushes, lambda p: not p.blocked, "the unblock push")
        assert push.jids == (a,)
        listed = await bounded(blocking.fetch(session), "fetching the block list again")
        assert a not in listed and b in listed
        await bounded(blocking.unblock_all(session), "unblocking all")
        push = await next_where(pushes, lambda p: p.all, "the unblock-all push")
        assert await bounded(blocking.fetch(session), "fetching the empty block list") == []
        assert handler.ignored == 0


async def test_adhoc_commands_on_the_server(xmpp_server: servers.XMPPServer, pki: servers.Pki) -> None:
    """List the server's commands; on ejabberd run its ``ping`` command."""
    session = await login(xmpp_server, pki, "bob", resource=f"adhoc-{new_id()}")
    domain = JID.parse(xmpp_server.domain)
    async with session, Running(session):
        items = await bounded(commands.list_commands(session, domain), "listing the server's commands")
        assert all(i.node for i in items)
        if isinstance(xmpp_server, servers.EjabberdServer):
            assert "ping" in [i.node for i in items], items
            r = await bounded(commands.execute(session, domain, "ping"), "running ejabberd's ping command")
            assert r.status is commands.Status.COMPLETED and r.node == "ping"
            assert r.notes and r.notes[0].text


async def test_slixmpp_runs_our_command() -> None:
    """slixmpp (xep_0050 over xep_0030 and xep_0004) lists and runs a two-step command our session offers."""
    asked = Form(FormType.FORM, title="Name", fields=[Field("name", FieldType.TEXT_SINGLE, required=True)])
    handler = commands.Handler()

    def hello(req: commands.Request) -> commands.Response:
        if req.action is commands.Action.EXECUTE:
            return commands.Response(commands.Status.EXECUTING, asked, (commands.Action.COMPLETE,))
        assert req.form is not None
        filled = asked.check_submission(req.form)
        return commands.Response(notes=[commands.Note(f"hello, {filled.get('name')} at {req.requester}")])

    handler.register("hello", "Say hello", hello)

    async with Server(users=USERS) as server:
        ours = await dial_client_session(
            "alice@localhost/cmd", USERS["alice"], host=server.host, port=server.port,
            tls_context=server.client_context(), timeout=TIMEOUT,
        )
        mux = ServeMux(
            ours.stanza_ns,
            commands.handle(handler),
            disco.handle(items={commands.NS: handler.disco_items}, nodes=handler.disco_nodes()),
        )
        async with ours, Running(ours, mux), slix_client(
            "bob@localhost/slix", USERS["bob"], host=server.host, port=server.port,
            ca_file=server.ca_file, mechanism="SCRAM-SHA-256",
        ) as slix:
            for plugin in ("xep_0030", "xep_0004", "xep_0050"):
                slix.register_plugin(plugin)
            adhoc: Any = slix.plugin["xep_0050"]
            forms_plugin: Any = slix.plugin["xep_0004"]
            items = await bounded(adhoc.get_commands(slixmpp.JID("alice@localhost/cmd"), timeout=TIMEOUT), "slixmpp listing")
            listed = [(str(j), node, name) for j, node, name in items["disco_items"]["items"]]
            assert listed == [("alice@localhost/cmd", "hello", "Say hello")]

            first = await bounded(
                adhoc.send_command(slixmpp.JID("alice@localhost/cmd"), "hello", timeout=TIMEOUT), "slixmpp starting"
            )
            assert first["command"]["status"] == "executing"
            sid = first["command"]["sessionid"]
            assert sid and first["command"]["form"]["title"] == "Name"
            submit = forms_plugin.make_form(ftype="submit")
            submit.add_field(var="name", value="Slix")
            done = await bounded(
                adhoc.send_command(
                    slixmpp.JID("alice@localhost/cmd"), "hello", action="complete",
                    payload=submit, sessionid=sid, timeout=TIMEOUT,
                ),
                "slixmpp completing",
            )
            assert done["command"]["status"] == "completed"
            assert done["command"]["notes"] == [("info", "hello, Slix at bob@localhost/slix")]
        assert handler.pending == 0
