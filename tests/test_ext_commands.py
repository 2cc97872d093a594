"""xmpp.commands over in-memory sessions: listing, executing, multi-stage sessions, errors."""

from __future__ import annotations

from typing import Any

import pytest

from xmpp import commands, disco
from xmpp.commands import Action, Note, NoteType, Request, Response, Status
from xmpp.forms import Field, FieldType, Form, FormError, FormType, Option
from xmpp.jid import JID
from xmpp.mux import ServeMux
from xmpp.stanza import IQ, Condition, IQType, StanzaError
from xmpp.xmlstream import Attr, Name, StartElement
from xmpp.stream import NS_CLIENT
from xmpp.testing import client_server_pair

ME = JID.parse("example.net")


def make_handler() -> commands.Handler:
    h = commands.Handler(max_sessions=3)

    @h.command("ping", "Ping")
    def ping(req: Request) -> Response:
        return Response(notes=[Note("pong")])

    signup = Form(FormType.FORM, title="Sign up", fields=[
        Field("name", FieldType.TEXT_SINGLE, required=True),
        Field("color", FieldType.LIST_SINGLE, options=[Option("red"), Option("blue")]),
    ])
    confirm = Form(FormType.FORM, fields=[Field("ok", FieldType.BOOLEAN, required=True)])

    @h.command("signup", "Sign up")
    async def sign(req: Request) -> Response:
        if req.stage == 0 and req.form is None:
            return Response(Status.EXECUTING, signup, (Action.NEXT,), Action.NEXT)
        if req.stage == 1 and req.action is Action.NEXT:
            assert req.form is not None
            try:
                filled = signup.check_submission(req.form)
            except FormError as exc:
                raise StanzaError("modify", "bad-request", str(exc)) from None
            req.data["name"] = filled.get("name")
            return Response(Status.EXECUTING, confirm, (Action.PREV, Action.COMPLETE), Action.COMPLETE)
        if req.action is Action.PREV:
            return Response(Status.EXECUTING, signup, (Action.NEXT,), Action.NEXT)
        assert req.action is Action.COMPLETE and req.form is not None
        ok = confirm.check_submission(req.form).get("ok")
        return Response(notes=[Note(f"welcome {req.data['name']}" if ok else "not confirmed", NoteType.INFO)])

    h.register("admin", "Admin only", ping, allow=lambda j: j is not None and j.local == "admin")
    return h


def server_mux(h: commands.Handler) -> ServeMux:
    return ServeMux(NS_CLIENT, commands.handle(h), disco.handle(items={commands.NS: h.disco_items}, nodes=h.disco_nodes()))


async def test_list_and_single_stage() -> None:
    h = make_handler()
    async with client_server_pair(server_handler=server_mux(h)) as (client, _):
        items = await commands.list_commands(client, ME)
        assert [(i.node, i.name) for i in items] == [("ping", "Ping"), ("signup", "Sign up")]
        assert all(i.jid == ME for i in items)
        info = await disco.get_info(client, ME, "signup")
        assert commands.NS in info.features and info.identities[0].category == "automation"
        r = await commands.execute(client, ME, "ping")
        assert r.status is Status.COMPLETED and r.notes == [Note("pong")] and r.node == "ping"
        assert h.pending == 0


async def test_multi_stage_with_forms() -> None:
    h = make_handler()
    async with client_server_pair(server_handler=server_mux(h)) as (client, _):
        r = await commands.execute(client, ME, "signup")
        assert r.status is Status.EXECUTING and r.sessionid and r.actions == (Action.NEXT,)
        assert r.form is not None and r.form.title == "Sign up" and r.form["name"].required
        assert h.pending == 1
        sub = r.form.submit()
        sub["name"].value = "Juliet"
        sub["color"].value = "green"  # not an option: refused, the session ends
        with pytest.raises(StanzaError) as info:
            await commands.execute(client, ME, "signup", Action.NEXT, sub, r.sessionid)
        assert info.value.condition is Condition.BAD_REQUEST and "option" in (info.value.text or "")
        assert h.pending == 0

        r = await commands.execute(client, ME, "signup")
        sub = r.form.submit()  # type: ignore[union-attr]
        sub["name"].value = "Juliet"
        sub["color"].value = "red"
        r2 = await commands.execute(client, ME, "signup", Action.NEXT, sub, r.sessionid)
        assert r2.sessionid == r.sessionid and r2.actions == (Action.PREV, Action.COMPLETE)
        assert r2.default_action is Action.COMPLETE
        # NEXT is not allowed at this stage.
        with pytest.raises(StanzaError) as info:
            await commands.execute(client, ME, "signup", Action.NEXT, None, r.sessionid)
        assert info.value.app is not None and info.value.app.name.local == "bad-action"
        # Back, forward again, then complete through the default action.
        back = await commands.execute(client, ME, "signup", Action.PREV, None, r.sessionid)
        assert back.form is not None and back.form.title == "Sign up"
        r2 = await commands.execute(client, ME, "signup", Action.NEXT, sub, r.sessionid)
        conf = r2.form.submit()  # type: ignore[union-attr]
        conf["ok"].value = True
        done = await commands.execute(client, ME, "signup", Action.EXECUTE, conf, r.sessionid)
        assert done.status is Status.COMPLETED and done.notes == [Note("welcome Juliet")]
        assert h.pending == 0
        # The finished session is gone.
        with pytest.raises(StanzaError) as info:
            await commands.execute(client, ME, "signup", Action.NEXT, sub, r.sessionid)
        assert info.value.app.name.local == "bad-sessionid"


async def test_cancel_unknown_forbidden_and_session_bound() -> None:
    h = make_handler()
    async with client_server_pair(server_handler=server_mux(h)) as (client, _):
        r = await commands.execute(client, ME, "signup")
        c = await commands.execute(client, ME, "signup", Action.CANCEL, None, r.sessionid)
        assert c.status is Status.CANCELED and h.pending == 0
        with pytest.raises(StanzaError) as info:
            await commands.execute(client, ME, "nope")
        assert info.value.condition is Condition.ITEM_NOT_FOUND
        with pytest.raises(StanzaError) as info:
            await commands.execute(client, ME, "admin")
        assert info.value.condition is Condition.FORBIDDEN
        # A session id of another node is refused.
        r = await commands.execute(client, ME, "signup")
        with pytest.raises(StanzaError) as info:
            await commands.execute(client, ME, "ping", Action.NEXT, None, r.sessionid)
        assert info.value.app.name.local == "bad-sessionid"
        # Only max_sessions (3) sessions are kept: the oldest are dropped.
        sids = [(await commands.execute(client, ME, "signup")).sessionid for _ in range(5)]
        assert h.pending == 3
        with pytest.raises(StanzaError):
            await commands.execute(client, ME, "signup", Action.CANCEL, None, r.sessionid)
        ok = await commands.execute(client, ME, "signup", Action.CANCEL, None, sids[-1])
        assert ok.status is Status.CANCELED


async def test_session_owned_by_requester() -> None:
    # The session id belongs to the requester: the same id from another address is refused.
    h = make_handler()

    def request(frm: str, action: str, sid: str | None) -> list[Any]:
        attrs = [Attr(Name("", "node"), "signup"), Attr(Name("", "action"), action)]
        if sid:
            attrs.append(Attr(Name("", "sessionid"), sid))
        c = StartElement(Name(commands.NS, "command"), attrs)
        return list(IQ(to=ME, from_=JID.parse(frm), type=IQType.SET).wrap([c, c.end()]))

    async with client_server_pair(server_handler=server_mux(h)) as (client, _):
        first = await client.send_iq(request("test@example.net/client", "execute", None))
        sid = first.find("command", commands.NS).get("sessionid")  # type: ignore[union-attr]
        assert sid
        with pytest.raises(StanzaError) as info:
            await client.send_iq(request("mallory@example.net/x", "cancel", sid))
        assert info.value.app.name.local == "bad-sessionid"
        done = await client.send_iq(request("test@example.net/client", "cancel", sid))
        assert done.find("command", commands.NS).get("status") == "canceled"  # type: ignore[union-attr]


def test_response_round_trip(engine: Any) -> None:
    r = Response(Status.EXECUTING, Form(fields=[Field("a")]), (Action.PREV, Action.NEXT), Action.NEXT,
                 [Note("careful", NoteType.WARN)], node="n", sessionid="s1")
    data = b"".join(_enc(r))
    p = engine.StreamParser()
    p.feed(b"<stream xmlns='jabber:client'>")
    (el,) = p.feed(data)
    back = Response.from_element(el)
    assert back == r


def _enc(r: Response) -> list[bytes]:
    from xmpp.xmlstream import Encoder

    e = Encoder()
    e.encode(r.tokens())
    return [e.flush()]
