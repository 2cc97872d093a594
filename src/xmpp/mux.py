"""The multiplexer: route top-level elements to handlers (mellium's ``mux``).

>>> from xmpp.stream import NS_CLIENT
>>> m = ServeMux(NS_CLIENT)
>>> m.message_func("chat", Name(NS_CLIENT, "body"), lambda msg, el, s: None) is m
True

A :class:`ServeMux` is a :class:`xmpp.session.Handler`.  It routes

* IQs by ``(type, payload name)``,
* messages and presences by ``(type, child name)`` (the first child with a
  registered name wins),
* any other top-level element by its name (``handle``),

trying the exact pattern first, then the wildcards: a type of ``None``
matches every type; a name of ``None`` matches every payload (and no
payload), and a name whose ``local`` is ``""`` matches every element of its
namespace.  An IQ get or set that nothing handles gets
``service-unavailable`` (by :meth:`xmpp.session.Session.serve`); a result or
error IQ is never answered.

Typed handlers are called as ``handler(stanza, element, session)`` where
``stanza`` is the parsed :class:`~xmpp.stanza.IQ`,
:class:`~xmpp.stanza.Message` or :class:`~xmpp.stanza.Presence`, ``element``
the whole stanza and ``session`` the session to reply on; they may be sync
or async.  Objects with ``handle_iq``/``handle_message``/``handle_presence``
methods serve too.  A handler may declare the disco features and identities
it implements (``disco_features``, ``disco_identities`` attributes); the mux
aggregates them for the disco extension.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from xmpp import stanza as _stanza
from xmpp.session import Handler, _current
from xmpp.xmlstream import Element, Name, StartElement

__all__ = [
    "advertise",
    "IQHandlerFunc",
    "MessageHandlerFunc",
    "PresenceHandlerFunc",
    "ServeMux",
    "handle",
    "handle_func",
    "iq",
    "iq_func",
    "message",
    "message_func",
    "presence",
    "presence_func",
]

IQHandlerFunc = Callable[["_stanza.IQ", Element, Any], Awaitable[None] | None]
MessageHandlerFunc = Callable[["_stanza.Message", Element, Any], Awaitable[None] | None]
PresenceHandlerFunc = Callable[["_stanza.Presence", Element, Any], Awaitable[None] | None]

_Key = tuple[str | None, Name | None]

# The session of the running serve (what xmpp.session.current_session returns,
# without the extra call: this runs once per routed stanza).
_session = _current.get
_StanzaError = _stanza.StanzaError
_Message = _stanza.Message
_Presence = _stanza.Presence
_IQ = _stanza.IQ
_message_from = _stanza.Message.from_element


def _typestr(t: Any) -> str | None:
    if t is None:
        return None
    return str(getattr(t, "value", t))


def _as_func(handler: Any, method: str) -> Callable[..., Any]:
    f = getattr(handler, method, None)
    if f is not None:
        return f  # type: ignore[no-any-return]
    if callable(handler):
        return handler  # type: ignore[no-any-return]
    raise TypeError(f"handler needs a {method} method or must be callable")


class ServeMux:
    """Routes top-level elements to handlers; see the module documentation.

    ``stanza_ns`` is the stream's default namespace: the IQ, message and
    presence stanzas it routes are in it.  ``options`` are the results of
    :func:`iq`, :func:`message`, ... or may be registered later with the
    methods of the same names.
    """

    def __init__(self, stanza_ns: str, *options: Callable[[ServeMux], None]) -> None:
        self.stanza_ns = stanza_ns
        self._iq_name = Name(stanza_ns, "iq")
        self._msg_name = Name(stanza_ns, "message")
        self._pres_name = Name(stanza_ns, "presence")
        self._elements: dict[Name, Callable[[Element, StartElement], Any]] = {}
        self._iqs: dict[_Key, Callable[..., Any]] = {}
        self._msgs: dict[_Key, Callable[..., Any]] = {}
        self._press: dict[_Key, Callable[..., Any]] = {}
        self._msg_names: set[Name] = set()
        self._pres_names: set[Name] = set()
        # Derived from the tables when a handler is registered, so that
        # routing skips what cannot match: the catch-all handler, and whether
        # any pattern names a type (if none does, the type is never read).
        self._msg_any: Callable[..., Any] | None = None
        self._msg_typed = False
        self._msg_only: Callable[..., Any] | None = None  # the catch-all, when it is the only one
        self._pres_any: Callable[..., Any] | None = None
        self._pres_typed = False
        self._handlers: list[Any] = []
        for opt in options:
            opt(self)

    # ---------------------------------------------------------- registering

    def _note(self, handler: Any) -> None:
        self._handlers.append(handler)

    def handle(self, name: Name, handler: Handler) -> ServeMux:
        """Route top-level elements named ``name`` to ``handler.handle_xmpp``."""
        return self.handle_func(name, _as_func(handler, "handle_xmpp"), _owner=handler)

    def handle_func(
        self,
        name: Name,
        func: Callable[[Element, StartElement], Any],
        *,
        _owner: Any = None,
    ) -> ServeMux:
        """Route top-level elements named ``name`` to ``func(element, start)``."""
        if name in self._elements:
            raise ValueError(f"a handler for {name} is already registered")
        self._elements[name] = func
        self._note(_owner if _owner is not None else func)
        return self

    def iq(self, type: Any, payload: Name | None, handler: Any) -> ServeMux:
        """Route IQs of ``type`` (``None``: any) whose payload is named
        ``payload`` (``None``: any) to ``handler.handle_iq``."""
        return self.iq_func(type, payload, _as_func(handler, "handle_iq"), _owner=handler)

    def iq_func(self, type: Any, payload: Name | None, func: IQHandlerFunc, *, _owner: Any = None) -> ServeMux:
        """Route IQs to ``func(iq, element, session)``."""
        key = (_typestr(type), payload)
        if key in self._iqs:
            raise ValueError(f"an IQ handler for {key} is already registered")
        self._iqs[key] = func
        self._note(_owner if _owner is not None else func)
        return self

    def message(self, type: Any, child: Name | None, handler: Any) -> ServeMux:
        """Route messages of ``type`` with a child named ``child`` to ``handler.handle_message``."""
        return self.message_func(type, child, _as_func(handler, "handle_message"), _owner=handler)

    def message_func(
        self, type: Any, child: Name | None, func: MessageHandlerFunc, *, _owner: Any = None
    ) -> ServeMux:
        """Route messages to ``func(message, element, session)``."""
        key = (_typestr(type), child)
        if key in self._msgs:
            raise ValueError(f"a message handler for {key} is already registered")
        self._msgs[key] = func
        if child is not None:
            self._msg_names.add(child)
        self._msg_any = self._msgs.get((None, None))
        self._msg_typed = any(t is not None for t, _ in self._msgs)
        self._msg_only = self._msg_any if len(self._msgs) == 1 else None
        self._note(_owner if _owner is not None else func)
        return self

    def presence(self, type: Any, child: Name | None, handler: Any) -> ServeMux:
        """Route presences of ``type`` with a child named ``child`` to ``handler.handle_presence``."""
        return self.presence_func(type, child, _as_func(handler, "handle_presence"), _owner=handler)

    def presence_func(
        self, type: Any, child: Name | None, func: PresenceHandlerFunc, *, _owner: Any = None
    ) -> ServeMux:
        """Route presences to ``func(presence, element, session)``."""
        key = (_typestr(type), child)
        if key in self._press:
            raise ValueError(f"a presence handler for {key} is already registered")
        self._press[key] = func
        if child is not None:
            self._pres_names.add(child)
        self._pres_any = self._press.get((None, None))
        self._pres_typed = any(t is not None for t, _ in self._press)
        self._note(_owner if _owner is not None else func)
        return self

    def advertise(self, provider: Any) -> ServeMux:
        """Add ``provider``'s ``disco_features``/``disco_identities`` to what
        the mux aggregates, without routing anything to it (an extension that
        only marks stanzas, such as XEP-0359 stanza ids)."""
        self._note(provider)
        return self

    # ---------------------------------------------------------- disco

    def disco_features(self) -> list[str]:
        """Every feature var declared by a registered handler (``disco_features``), once each, sorted."""
        out: set[str] = set()
        for h in self._handlers:
            out.update(getattr(h, "disco_features", ()) or ())
        return sorted(out)

    def disco_identities(self) -> list[Any]:
        """Every identity declared by a registered handler (``disco_identities``), in order."""
        out: list[Any] = []
        for h in self._handlers:
            for ident in getattr(h, "disco_identities", ()) or ():
                if ident not in out:
                    out.append(ident)
        return out

    # ---------------------------------------------------------- routing

    def handle_element(self, el: Element) -> Awaitable[None] | None:
        """Route one top-level element read from the element alone (what
        :meth:`xmpp.session.Session.serve` calls: no StartElement is built)."""
        return self.handle_xmpp(el, el)  # type: ignore[arg-type]

    def handle_xmpp(self, reader: Element, start: StartElement) -> Awaitable[None] | None:
        """Route one top-level element (the :class:`~xmpp.session.Handler` method).

        Only ``start.name`` and ``start.get`` are read, so the element itself
        may stand for its start (see :meth:`handle_element`).
        """
        name = start.name
        local = name.local
        if name.space == self.stanza_ns:
            if local == "message":
                h = self._msg_only
                if h is not None:
                    # One handler takes every message: no table to consult.
                    try:
                        msg = _message_from(reader)
                    except _StanzaError:
                        return None
                    return h(msg, reader, _session())  # type: ignore[no-any-return]
                if not self._msgs:
                    return None
                return self._route_child(
                    self._msgs, self._msg_names, self._msg_any, self._msg_typed,
                    _Message, "normal", reader, start,
                )
            if local == "iq":
                return self._route_iq(reader, start)
            if local == "presence":
                if not self._press:
                    return None
                return self._route_child(
                    self._press, self._pres_names, self._pres_any, self._pres_typed,
                    _Presence, "", reader, start,
                )
        h = self._elements.get(name)
        if h is None and local:
            h = self._elements.get(Name(name.space, ""))
        if h is not None:
            return h(reader, reader.start)  # type: ignore[no-any-return]
        return None

    def _route_iq(self, el: Element, start: StartElement) -> Awaitable[None] | None:
        table = self._iqs
        if not table:
            return None
        typ = start.get("type")
        child = next(iter(el.children()), None)
        h = None
        if child is not None:
            payload = child.name
            h = table.get((typ, payload))
            if h is None:
                wild = Name(payload.space, "")
                h = table.get((typ, wild)) or table.get((None, payload)) or table.get((None, wild))
        if h is None:
            h = table.get((typ, None)) or table.get((None, None))
            if h is None:
                return None
        try:
            iq = _IQ.from_element(el)
        except _StanzaError:
            return None
        return h(iq, el, _session())  # type: ignore[no-any-return]

    def _route_child(
        self,
        table: dict[_Key, Callable[..., Any]],
        names: set[Name],
        catch_all: Callable[..., Any] | None,
        typed: bool,
        cls: Any,
        default_type: str,
        el: Element,
        start: StartElement,
    ) -> Awaitable[None] | None:
        # With no pattern naming a type, every (type, x) lookup would miss:
        # the type is not read at all.
        typ = (start.get("type") or default_type) if typed else None
        h = None
        if names:
            for child in el.children():
                cname = child.name
                wild = None
                if cname in names or (wild := Name(cname.space, "")) in names:
                    if wild is None:
                        wild = Name(cname.space, "")
                    h = (
                        table.get((typ, cname))
                        or table.get((None, cname))
                        or table.get((typ, wild))
                        or table.get((None, wild))
                    )
                    if h is not None:
                        break
        if h is None:
            h = (table.get((typ, None)) if typed else None) or catch_all
            if h is None:
                return None
        try:
            st = cls.from_element(el)
        except _StanzaError:
            return None
        return h(st, el, _session())  # type: ignore[no-any-return]


def _opt(method: str, *args: Any) -> Callable[[ServeMux], None]:
    def apply(m: ServeMux) -> None:
        getattr(m, method)(*args)

    return apply


def advertise(provider: Any) -> Callable[[ServeMux], None]:
    """A :class:`ServeMux` option: :meth:`ServeMux.advertise`."""
    return _opt("advertise", provider)


def handle(name: Name, handler: Handler) -> Callable[[ServeMux], None]:
    """A :class:`ServeMux` option: :meth:`ServeMux.handle`."""
    return _opt("handle", name, handler)


def handle_func(name: Name, func: Callable[[Element, StartElement], Any]) -> Callable[[ServeMux], None]:
    """A :class:`ServeMux` option: :meth:`ServeMux.handle_func`."""
    return _opt("handle_func", name, func)


def iq(type: Any, payload: Name | None, handler: Any) -> Callable[[ServeMux], None]:
    """A :class:`ServeMux` option: :meth:`ServeMux.iq`."""
    return _opt("iq", type, payload, handler)


def iq_func(type: Any, payload: Name | None, func: IQHandlerFunc) -> Callable[[ServeMux], None]:
    """A :class:`ServeMux` option: :meth:`ServeMux.iq_func`."""
    return _opt("iq_func", type, payload, func)


def message(type: Any, child: Name | None, handler: Any) -> Callable[[ServeMux], None]:
    """A :class:`ServeMux` option: :meth:`ServeMux.message`."""
    return _opt("message", type, child, handler)


def message_func(type: Any, child: Name | None, func: MessageHandlerFunc) -> Callable[[ServeMux], None]:
    """A :class:`ServeMux` option: :meth:`ServeMux.message_func`."""
    return _opt("message_func", type, child, func)


def presence(type: Any, child: Name | None, handler: Any) -> Callable[[ServeMux], None]:
    """A :class:`ServeMux` option: :meth:`ServeMux.presence`."""
    return _opt("presence", type, child, handler)


def presence_func(type: Any, child: Name | None, func: PresenceHandlerFunc) -> Callable[[ServeMux], None]:
    """A :class:`ServeMux` option: :meth:`ServeMux.presence_func`."""
    return _opt("presence_func", type, child, func)

