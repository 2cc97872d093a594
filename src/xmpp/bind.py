"""Resource binding (RFC 6120 section 7) and the legacy session feature.

>>> f = bind("balcony")
>>> f.name.local
'bind'

The initiating side asks for a resource (or lets the server pick one),
sets the session's ``local_addr`` to the full JID the server assigned and,
when the server lists the RFC 3921 ``<session/>`` feature as required
(without ``<optional/>``), establishes it.  Then it runs the post-bind
step of any offered feature whose parsed data has an ``after_bind``
coroutine function (stream management's ``<enable/>``, :mod:`xmpp.sm`).
The receiving side assigns a random resource or honours the requested one
through a ``binder`` callback, which may refuse with a
:class:`~xmpp.stanza.StanzaError` (``conflict`` for a resource in use that
the server will not replace).
"""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from xmpp import stanza as _stanza
from xmpp.jid import JID, JIDError
from xmpp.negotiator import StreamFeature
from xmpp.stream import Condition as StreamCondition
from xmpp.stream import StreamError
from xmpp.xmlstream import CharData, Element, Name, StartElement, Token

if TYPE_CHECKING:
    from xmpp.session import Session

__all__ = ["NS_BIND", "NS_SESSION", "Binder", "bind", "random_resource"]

#: The namespace of resource binding.
NS_BIND = "urn:ietf:params:xml:ns:xmpp-bind"
#: The namespace of the legacy session establishment (RFC 3921).
NS_SESSION = "urn:ietf:params:xml:ns:xmpp-session"

_BIND = Name(NS_BIND, "bind")
_SESSION = Name(NS_SESSION, "session")

#: The receiving side's policy: given the session (whose ``remote_addr`` is
#: the authenticated bare JID) and the requested resource (``None`` for
#: none), return the full JID to bind, or raise a StanzaError.
Binder = Callable[["Session", "str | None"], "Awaitable[JID] | JID"]


def random_resource() -> str:
    """A fresh unpredictable resource."""
    return "xmpp-" + secrets.token_hex(8)


def _default_binder(session: Session, resource: str | None) -> JID:
    peer = session.remote_addr
    if peer is None:
        raise _stanza.StanzaError(_stanza.ErrorType.AUTH, _stanza.Condition.NOT_AUTHORIZED)
    if resource:
        try:
            return peer.bare().with_resource(resource)
        except JIDError:
            raise _stanza.StanzaError(
                _stanza.ErrorType.MODIFY, _stanza.Condition.BAD_REQUEST, "invalid resource"
            ) from None
    return peer.bare().with_resource(random_resource())


def _text_el(name: Name, text: str) -> list[Token]:
    s = StartElement(name)
    return [s, CharData(text), s.end()]


def bind(
    resource: str | None = None,
    *,
    binder: Binder | None = None,
    timeout: float = 30.0,
) -> StreamFeature:
    """The resource binding feature.

    ``resource`` is what the initiating side asks for (``None``: the
    server's choice); ``binder`` the receiving side's policy (default: honour
    the request, or pick a random resource).  Requires ``AUTHN``.
    """
    from xmpp.session import SessionState

    serve_bind = _bind_server(binder)

    def list_(session: Session) -> tuple[bool, list[Token]]:
        s = StartElement(_BIND)
        return True, [s, s.end()]

    def parse(session: Session, el: Element) -> tuple[bool, Any]:
        return True, None

    async def negotiate(session: Session, data: Any) -> tuple[int, bool]:
        ns = session.stanza_ns
        if session.state & SessionState.RECEIVED:
            await serve_bind(session, data, ns)
            return 0, False
        iq = _stanza.IQ(type=_stanza.IQType.SET, id=_stanza.new_id())
        b = StartElement(_BIND)
        payload: list[Token] = [b]
        if resource:
            payload += _text_el(Name(NS_BIND, "resource"), resource)
        payload.append(b.end())
        await session.send(iq.wrap(payload, ns))
        reply = await session.read_element(timeout)
        _check_reply(reply, iq.id, ns)
        if reply.get("type") == "error":
            err = _stanza.StanzaError.from_stanza(reply)
            raise err if err is not None else StreamError(StreamCondition.UNDEFINED_CONDITION, "bind failed")
        bound = reply.find("bind", NS_BIND)
        jid_el = bound.find("jid", NS_BIND) if bound is not None else None
        if jid_el is None:
            raise StreamError(StreamCondition.UNDEFINED_CONDITION, "bind result without a <jid/>")
        try:
            session.local_addr = JID.parse(jid_el.text.strip())
        except JIDError as exc:
            raise StreamError(StreamCondition.INVALID_XML, f"the server bound an invalid JID: {exc}") from None
        legacy = session.features.get(_SESSION)
        if isinstance(legacy, Element) and legacy.find("optional", NS_SESSION) is None:
            siq = _stanza.IQ(type=_stanza.IQType.SET, id=_stanza.new_id())
            s = StartElement(_SESSION)
            await session.send(siq.wrap([s, s.end()], ns))
            sreply = await session.read_element(timeout)
            _check_reply(sreply, siq.id, ns)
            if sreply.get("type") == "error":
                err = _stanza.StanzaError.from_stanza(sreply)
                raise err if err is not None else StreamError(StreamCondition.UNDEFINED_CONDITION, "session failed")
        # Steps that follow binding (XEP-0198's <enable/>): any parsed feature
        # data with an ``after_bind`` coroutine function is run now, in order.
        for offered in list(session.features.values()):
            after = getattr(offered, "after_bind", None)
            if after is not None:
                await after(session)
        return 0, False

    return StreamFeature(
        _BIND,
        necessary=int(SessionState.AUTHN),
        prohibited=int(SessionState.READY),
        list=list_,
        parse=parse,
        negotiate=negotiate,
    )


def _check_reply(reply: Element, iq_id: str, ns: str) -> None:
    if reply.name != Name(ns, "iq") or reply.get("id") != iq_id or reply.get("type") not in ("result", "error"):
        raise StreamError(StreamCondition.POLICY_VIOLATION, "expected the reply to our IQ during negotiation")


def _bind_server(binder: Binder | None) -> Callable[[Session, Element, str], Awaitable[None]]:
    async def run(session: Session, el: Element, ns: str) -> None:
        try:
            iq = _stanza.IQ.from_element(el)
        except _stanza.StanzaError as err:
            raise StreamError(StreamCondition.BAD_FORMAT, f"malformed bind request: {err}") from None
        if iq.type is not _stanza.IQType.SET:
            await session.send(iq.error(_stanza.StanzaError(_stanza.ErrorType.MODIFY, _stanza.Condition.BAD_REQUEST), ns))
            raise StreamError(StreamCondition.POLICY_VIOLATION, "bind needs an IQ set")
        req = el.find("bind", NS_BIND)
        res_el = req.find("resource", NS_BIND) if req is not None else None
        requested = res_el.text.strip() if res_el is not None else None
        f = binder or _default_binder
        try:
            r = f(session, requested or None)
            full = await r if not isinstance(r, JID) else r
        except _stanza.StanzaError as err:
            await session.send(iq.error(err, ns))
            raise StreamError(StreamCondition.POLICY_VIOLATION, f"binding refused: {err}") from None
        session.remote_addr = full
        b = StartElement(_BIND)
        await session.send(iq.result([b, *_text_el(Name(NS_BIND, "jid"), str(full)), b.end()], ns))

    return run
