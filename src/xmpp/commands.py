"""Ad-hoc commands (XEP-0050): run commands on other entities, and offer them.

Executing: :func:`list_commands` asks an entity for its commands (disco#items
at the node ``http://jabber.org/protocol/commands``); :func:`execute` runs
one step of a command and returns the :class:`Response` (its status, the
allowed next actions, notes, and a data form to fill in).  A multi-stage
command is driven by calling :func:`execute` again with the response's
``sessionid`` and an action::

    r = await execute(session, "bot@example.org/cmd", "config")
    while r.status is Status.EXECUTING:
        form = r.form.submit()          # fill in the fields first
        form["name"].value = "value"
        r = await execute(session, r.jid, r.node, Action.NEXT, form, r.sessionid)

Offering: register commands on a :class:`Handler` (a function of a
:class:`Request` returning a :class:`Response`) and add :func:`handle` to
the :class:`~xmpp.mux.ServeMux`.  The handler keeps each multi-stage
session (its ``sessionid``, the stage reached, the actions allowed, the
command's own ``data``), checks that the next request comes from the same
requester with an allowed action, and answers ``bad-sessionid``,
``bad-action``, ``item-not-found`` or ``forbidden`` otherwise.  Its
:meth:`Handler.disco_items` and :meth:`Handler.disco_nodes` plug into
:func:`xmpp.disco.handle` so that the commands are listed:

>>> from xmpp import disco
>>> from xmpp.stream import NS_CLIENT
>>> h = Handler()
>>> @h.command("hello", "Say hello")
... def hello(req):
...     return Response(notes=[Note(f"hello, {req.requester}")])
>>> mux = ServeMux(NS_CLIENT, handle(h),
...                disco.handle(items={NS: h.disco_items}, nodes=h.disco_nodes()))
>>> sorted(mux.disco_features())
['http://jabber.org/protocol/commands', 'http://jabber.org/protocol/disco#info', \
'http://jabber.org/protocol/disco#items', 'jabber:x:data']
"""

from __future__ import annotations

import collections
import dataclasses
import enum
import inspect
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

from xmpp import disco
from xmpp.forms import Form
from xmpp.forms import NS as NS_DATA
from xmpp.jid import JID
from xmpp.mux import ServeMux
from xmpp.session import Session, current_session
from xmpp.stanza import IQ, Condition, ErrorType, IQType, StanzaError, new_id
from xmpp.xmlstream import Attr, CharData, Element, Name, StartElement, Token

__all__ = [
    "NS",
    "Action",
    "Command",
    "Handler",
    "Note",
    "NoteType",
    "Request",
    "Response",
    "Status",
    "execute",
    "handle",
    "list_commands",
]

#: The namespace of ad-hoc commands, also the disco node listing them.
NS = "http://jabber.org/protocol/commands"

_COMMAND = Name(NS, "command")
_ACTIONS = Name(NS, "actions")
_NOTE = Name(NS, "note")


class Action(str, enum.Enum):
    """What the requester asks a command to do (XEP-0050 section 4)."""

    #: Start the command, or take the default action of the current stage.
    EXECUTE = "execute"
    #: Stop and drop the session.
    CANCEL = "cancel"
    #: Go back to the previous stage.
    PREV = "prev"
    #: Go on to the next stage.
    NEXT = "next"
    #: Finish with the data given.
    COMPLETE = "complete"

    def __str__(self) -> str:
        """Return the attribute value, such as ``next``."""
        return self.value


class Status(str, enum.Enum):
    """The state of a command after a step."""

    #: More stages follow: the session goes on.
    EXECUTING = "executing"
    #: The command finished.
    COMPLETED = "completed"
    #: The command was cancelled.
    CANCELED = "canceled"

    def __str__(self) -> str:
        """Return the attribute value, such as ``completed``."""
        return self.value


class NoteType(str, enum.Enum):
    """The ``type`` of a note."""

    INFO = "info"
    WARN = "warn"
    ERROR = "error"

    def __str__(self) -> str:
        """Return the attribute value, such as ``info``."""
        return self.value


@dataclasses.dataclass(frozen=True)
class Note:
    """A note for the user: its ``text`` and ``type``."""

    text: str
    type: NoteType = NoteType.INFO


_ACTION_VALUES = {a.value: a for a in Action}
_STATUS_VALUES = {s.value: s for s in Status}
_NOTE_VALUES = {n.value: n for n in NoteType}
_STAGE_ACTIONS = (Action.PREV, Action.NEXT, Action.COMPLETE)


def _error(condition: Condition, app: str | None = None, text: str | None = None) -> StanzaError:
    app_el = None
    if app is not None:
        s = StartElement(Name(NS, app))
        app_el = Element.from_tokens([s, s.end()])
    etype = ErrorType.CANCEL if condition in (Condition.ITEM_NOT_FOUND, Condition.FORBIDDEN) else ErrorType.MODIFY
    return StanzaError(etype, condition, text, app=app_el)


@dataclasses.dataclass
class Response:
    """The answer to one step of a command (the ``<command/>`` of a result).

    ``status`` says whether more stages follow; ``actions`` are the actions
    the requester may take next (with ``default_action`` the one
    ``execute`` stands for); ``notes`` are messages for the user; ``form``
    a data form to fill in or the results.  ``node``, ``sessionid`` and
    ``jid`` (who answered) are filled in by :func:`execute`, and by the
    :class:`Handler` for a response a command returns.  ``element`` is
    the received ``<command/>``, if any.
    """

    status: Status = Status.COMPLETED
    form: Form | None = None
    actions: tuple[Action, ...] = ()
    default_action: Action | None = None
    notes: list[Note] = dataclasses.field(default_factory=list)
    node: str = ""
    sessionid: str | None = None
    jid: JID | None = None
    element: Any = dataclasses.field(default=None, compare=False, repr=False)

    def tokens(self) -> Iterator[Token]:
        """Yield the tokens of the ``<command/>`` element."""
        attrs = [Attr(Name("", "node"), self.node)]
        if self.sessionid:
            attrs.append(Attr(Name("", "sessionid"), self.sessionid))
        attrs.append(Attr(Name("", "status"), Status(self.status).value))
        start = StartElement(_COMMAND, attrs)
        yield start
        if self.actions or self.default_action is not None:
            a = StartElement(
                _ACTIONS,
                [Attr(Name("", "execute"), self.default_action.value)] if self.default_action is not None else [],
            )
            yield a
            for act in self.actions:
                s = StartElement(Name(NS, Action(act).value))
                yield s
                yield s.end()
            yield a.end()
        for n in self.notes:
            s = StartElement(_NOTE, [Attr(Name("", "type"), NoteType(n.type).value)])
            yield s
            if n.text:
                yield CharData(n.text)
            yield s.end()
        if self.form is not None:
            yield from self.form.tokens()
        yield start.end()

    @classmethod
    def from_element(cls, el: Element) -> Response:
        """Read a ``<command/>`` element; unknown statuses, actions and note
        types raise :class:`~xmpp.stanza.StanzaError` (``bad-request``)."""
        st = el.get("status") or "executing"
        status = _STATUS_VALUES.get(st)
        if status is None:
            raise StanzaError(ErrorType.MODIFY, Condition.BAD_REQUEST, f"unknown command status {st!r}")
        r = cls(status, node=el.get("node") or "", sessionid=el.get("sessionid"), element=el)
        for child in el.children():
            if child.name.space == NS and child.name.local == "actions":
                d = child.get("execute")
                if d is not None:
                    r.default_action = _ACTION_VALUES.get(d)
                r.actions = tuple(
                    _ACTION_VALUES[c.name.local]
                    for c in child.children()
                    if c.name.space == NS and c.name.local in ("prev", "next", "complete")
                )
            elif child.name.space == NS and child.name.local == "note":
                r.notes.append(Note(child.text, _NOTE_VALUES.get(child.get("type") or "info", NoteType.INFO)))
            elif child.name.space == NS_DATA and child.name.local == "x" and r.form is None:
                r.form = Form.from_element(child)
        return r


def _command_tokens(
    node: str, action: Action, sessionid: str | None, form: Form | None
) -> Iterator[Token]:
    attrs = [Attr(Name("", "node"), node)]
    if sessionid:
        attrs.append(Attr(Name("", "sessionid"), sessionid))
    attrs.append(Attr(Name("", "action"), Action(action).value))
    start = StartElement(_COMMAND, attrs)
    yield start
    if form is not None:
        yield from form.tokens()
    yield start.end()


async def execute(
    session: Session,
    to: JID | str,
    node: str,
    action: Action = Action.EXECUTE,
    form: Form | None = None,
    sessionid: str | None = None,
    *,
    timeout: float | None = 30.0,
) -> Response:
    """Run one step of the command ``node`` at ``to`` and return its :class:`Response`.

    The first step has no ``sessionid``; later steps pass the one of the
    previous response, an ``action`` among its ``actions`` (or
    ``execute`` for its default, or ``cancel``) and usually a submitted
    ``form``.  An error reply raises its :class:`~xmpp.stanza.StanzaError`
    (its ``app`` names ``bad-action``, ``bad-sessionid``, ... where the
    responder gave one).
    """
    j = JID.parse(to) if isinstance(to, str) else to
    reply = await session.send_iq(
        IQ(to=j, type=IQType.SET), _command_tokens(node, action, sessionid, form), timeout=timeout
    )
    c = reply.find("command", NS)
    if c is None:
        raise StanzaError(ErrorType.CANCEL, Condition.UNDEFINED_CONDITION, "command result without <command/>")
    r = Response.from_element(c)
    r.jid = j
    if not r.node:
        r.node = node
    return r


async def list_commands(session: Session, to: JID | str, *, timeout: float | None = 30.0) -> list[disco.Item]:
    """The commands ``to`` offers: its disco#items at the commands node.

    Each :class:`xmpp.disco.Item` has the ``jid`` to execute the command
    at, its ``node`` and a human-readable ``name``.
    """
    return await disco.get_items(session, to, NS, timeout=timeout)


@dataclasses.dataclass
class Request:
    """What a command function is called with: one step of a command.

    ``action`` is what the requester asked (``execute`` on the first step
    and, later, already resolved to the stage's default action), ``stage``
    counts the stages (0 for the first; ``next`` adds one, ``prev``
    takes one away), ``form`` is the submitted form if any, ``requester``
    who asked, ``data`` a dictionary the command keeps across the stages
    of its session, ``iq`` the request and ``session`` the stream.
    """

    node: str
    action: Action
    stage: int
    sessionid: str
    form: Form | None
    requester: JID | None
    data: dict[str, Any]
    iq: IQ
    session: Session


CommandFunc = Callable[[Request], "Response | Awaitable[Response]"]


@dataclasses.dataclass
class Command:
    """A registered command: its ``node``, human ``name``, the function
    answering each step, and ``allow`` (who may run it: a function of the
    requester's address; ``None`` lets everyone)."""

    node: str
    name: str
    func: CommandFunc
    allow: Callable[[JID | None], bool] | None = None


@dataclasses.dataclass
class _State:
    node: str
    requester: JID | None
    stage: int
    actions: tuple[Action, ...]
    default: Action | None
    data: dict[str, Any]


class Handler:
    """Offers registered commands; see the module documentation.

    At most ``max_sessions`` multi-stage sessions are kept: starting one
    more drops the oldest (its next step gets ``bad-sessionid``), so a
    requester that never finishes cannot grow memory without bound.
    """

    #: What the mux aggregates for disco#info.
    disco_features: tuple[str, ...] = (NS, NS_DATA)

    def __init__(self, *, max_sessions: int = 1000) -> None:
        """Make a handler without commands."""
        self.commands: dict[str, Command] = {}
        self.max_sessions = max_sessions
        self._sessions: collections.OrderedDict[str, _State] = collections.OrderedDict()

    def register(
        self,
        node: str,
        name: str,
        func: CommandFunc,
        *,
        allow: Callable[[JID | None], bool] | None = None,
    ) -> None:
        """Offer ``func`` as the command ``node`` named ``name``."""
        if node in self.commands:
            raise ValueError(f"a command {node!r} is already registered")
        self.commands[node] = Command(node, name, func, allow)

    def command(
        self, node: str, name: str, *, allow: Callable[[JID | None], bool] | None = None
    ) -> Callable[[CommandFunc], CommandFunc]:
        """A decorator form of :meth:`register`."""

        def deco(func: CommandFunc) -> CommandFunc:
            self.register(node, name, func, allow=allow)
            return func

        return deco

    @property
    def pending(self) -> int:
        """How many multi-stage sessions are in progress."""
        return len(self._sessions)

    def _visible(self, requester: JID | None) -> list[Command]:
        return [c for c in self.commands.values() if c.allow is None or c.allow(requester)]

    def disco_items(self, iq: IQ) -> list[disco.Item]:
        """The disco#items of the commands node: the commands ``iq``'s sender may run.

        Use it as ``disco.handle(items={commands.NS: handler.disco_items})``.
        """
        me = iq.to
        if me is None:
            with_session = current_session()
            me = with_session.local_addr
        if me is None:
            raise StanzaError(ErrorType.CANCEL, Condition.INTERNAL_SERVER_ERROR, "own address unknown")
        return [disco.Item(me, c.node, c.name) for c in self._visible(iq.from_)]

    def disco_nodes(self) -> dict[str, Callable[[IQ], disco.Info]]:
        """disco#info providers for each command node (identity
        ``automation/command-node``, features commands and data forms), for
        ``disco.handle(nodes=...)``; the commands node itself answers with
        the ``automation/command-list`` identity."""

        def info_for(node: str, name: str, category_type: str) -> Callable[[IQ], disco.Info]:
            def provide(iq: IQ) -> disco.Info:
                cmd = self.commands.get(node)
                if cmd is not None and cmd.allow is not None and not cmd.allow(iq.from_):
                    raise StanzaError(ErrorType.CANCEL, Condition.ITEM_NOT_FOUND)
                return disco.Info(
                    [disco.Identity("automation", category_type, name)], [NS, NS_DATA], node=node
                )

            return provide

        out = {NS: info_for(NS, "Commands", "command-list")}
        for c in self.commands.values():
            out[c.node] = info_for(c.node, c.name, "command-node")
        return out

    async def handle_iq(self, iq: IQ, el: Element, session: Session) -> None:
        """Answer one ``<command/>`` request (called by the mux)."""
        if iq.type is not IQType.SET:
            return
        c = el.find("command", NS)
        if c is None:
            return
        ns = session.stanza_ns
        try:
            response = await self._step(iq, c, session)
        except StanzaError as err:
            await session.send(iq.error(err, ns))
            return
        await session.send(iq.result(response.tokens(), ns))

    async def _step(self, iq: IQ, c: Element, session: Session) -> Response:
        node = c.get("node") or ""
        cmd = self.commands.get(node)
        if cmd is None or (cmd.allow is not None and not cmd.allow(iq.from_)):
            if cmd is None:
                raise _error(Condition.ITEM_NOT_FOUND, text=f"no command {node!r}")
            raise _error(Condition.FORBIDDEN)
        act_s = c.get("action") or "execute"
        action = _ACTION_VALUES.get(act_s)
        if action is None:
            raise _error(Condition.BAD_REQUEST, "malformed-action", f"unknown action {act_s!r}")
        sid = c.get("sessionid")
        x = c.find("x", NS_DATA)
        try:
            form = None if x is None else Form.from_element(x)
        except ValueError as exc:
            raise _error(Condition.BAD_REQUEST, "bad-payload", str(exc)) from None
        if sid:
            st = self._sessions.get(sid)
            if st is None or st.node != node or st.requester != iq.from_:
                raise _error(Condition.BAD_REQUEST, "bad-sessionid")
            if action is Action.CANCEL:
                del self._sessions[sid]
                return Response(Status.CANCELED, node=node, sessionid=sid)
            allowed = st.actions or (Action.COMPLETE,)
            if action is Action.EXECUTE:
                action = st.default or (Action.NEXT if Action.NEXT in allowed else allowed[-1])
            if action not in allowed:
                raise _error(Condition.BAD_REQUEST, "bad-action", f"{action.value} is not allowed now")
            stage = st.stage + 1 if action is Action.NEXT else max(0, st.stage - 1) if action is Action.PREV else st.stage
            data = st.data
        else:
            if action is Action.CANCEL:
                return Response(Status.CANCELED, node=node)
            if action is not Action.EXECUTE:
                raise _error(Condition.BAD_REQUEST, "bad-sessionid", "no session to continue")
            sid = new_id()
            stage = 0
            data = {}
            st = None
        req = Request(node, action, stage, sid, form, iq.from_, data, iq, session)
        try:
            got = cmd.func(req)
            if inspect.isawaitable(got):
                got = await got
        except StanzaError:
            self._sessions.pop(sid, None)
            raise
        if not isinstance(got, Response):
            self._sessions.pop(sid, None)
            raise StanzaError(ErrorType.CANCEL, Condition.INTERNAL_SERVER_ERROR, "the command gave no response")
        resp = dataclasses.replace(got, node=node, sessionid=sid)
        if resp.status is Status.EXECUTING:
            self._sessions[sid] = _State(node, iq.from_, stage, tuple(resp.actions), resp.default_action, data)
            self._sessions.move_to_end(sid)
            while len(self._sessions) > self.max_sessions:
                self._sessions.popitem(last=False)
        else:
            self._sessions.pop(sid, None)
        return resp


def handle(handler: Handler) -> Callable[[ServeMux], None]:
    """The :class:`~xmpp.mux.ServeMux` option routing ``<command/>`` requests to ``handler``.

    List the commands in disco with
    ``disco.handle(items={NS: handler.disco_items}, nodes=handler.disco_nodes())``.
    """

    def apply(mux: ServeMux) -> None:
        mux.iq(IQType.SET, _COMMAND, handler)

    return apply
