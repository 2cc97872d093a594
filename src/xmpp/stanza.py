"""Stanzas (RFC 6120 section 8, RFC 6121): their types, their errors, their tokens.

:class:`Message`, :class:`Presence` and :class:`IQ` hold the attributes
every stanza has (``to``, ``from_``, ``id``, ``type``, ``xml:lang``), typed:
addresses are :class:`~xmpp.jid.JID` values and types are members of
:class:`MessageType`, :class:`PresenceType` and :class:`IQType`.  Each reads
itself from a received element (``from_element``) and writes itself around
a payload as tokens (``wrap``), as mellium's ``stanza.Message.Wrap`` does.
Reply helpers swap the addresses and keep the id (:meth:`IQ.result`,
:meth:`IQ.error`, ``reply``).

:class:`StanzaError` is the ``<error/>`` of RFC 6120 section 8.3: an
exception (raise it from a handler), with every defined condition as a
member of :class:`Condition`, marshalled to tokens and read back.

Nothing received is dropped: a stanza read from an
:class:`~xmpp.xmlstream.Element` keeps it as ``element``, and ``payload``
gives its child elements (unknown ones included), in the engine that parsed
them.  Tokens this module makes are those of :mod:`xmpp.xmlstream`.

>>> from xmpp.jid import JID
>>> from xmpp.xmlstream import Encoder
>>> iq = IQ(to=JID.parse("example.com"), id="abc", type=IQType.GET)
>>> enc = Encoder(ns=NS_CLIENT)
>>> enc.encode(iq.wrap())
>>> enc.flush()
b'<iq to="example.com" id="abc" type="get"/>'
"""

from __future__ import annotations

import dataclasses
import enum
import itertools
import os
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar, Union

from xmpp import xmlstream as _xs
from xmpp.jid import JID, JIDError
from xmpp.jid import _parse_received as _parse_jid
from xmpp.jid import _received
from xmpp.stream import NS_CLIENT, NS_COMPONENT, NS_SERVER, NS_XML
from xmpp.stream import _native_element, _token_key

if TYPE_CHECKING:
    from xmpp.xmlstream import Element, StartElement, Token

__all__ = [
    "NS_CLIENT",
    "NS_COMPONENT",
    "NS_SERVER",
    "NS_STANZAS",
    "Condition",
    "ErrorType",
    "IQ",
    "IQType",
    "Message",
    "MessageType",
    "Presence",
    "PresenceType",
    "Stanza",
    "StanzaError",
    "from_element",
    "new_id",
]

#: The namespace of the defined conditions and ``<text/>`` inside ``<error/>``.
NS_STANZAS = "urn:ietf:params:xml:ns:xmpp-stanzas"

_Name = _xs.Name
_Attr = _xs.Attr
_StartElement = _xs.StartElement
_EndElement = _xs.EndElement
_CharData = _xs.CharData

_TO = _Name("", "to")
_FROM = _Name("", "from")
_ID = _Name("", "id")
_TYPE = _Name("", "type")
_BY = _Name("", "by")
_LANG = _Name(NS_XML, "lang")
_chain = itertools.chain


# Ids are cut from one read of the operating system's CSPRNG (what
# secrets.token_hex reads) per _ID_BATCH ids: one system call per id cost more
# than the rest of sending a stanza.  list.pop is atomic, so threads never get
# the same id; a forked child drops what it inherited, so it never repeats its
# parent's ids.
_ID_BATCH = 256
_id_pool: list[str] = []


def _refill_ids() -> None:
    h = os.urandom(8 * _ID_BATCH).hex()
    _id_pool.extend([h[i : i + 16] for i in range(0, 16 * _ID_BATCH, 16)])


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_id_pool.clear)


def new_id() -> str:
    """Return a fresh, unpredictable stanza id: 16 hexadecimal characters.

    The id holds 64 random bits from the operating system's CSPRNG (the
    source of :mod:`secrets`), so a peer cannot guess the id of a pending
    request and answer it in advance.
    """
    try:
        return _id_pool.pop()
    except IndexError:
        _refill_ids()
        return _id_pool.pop()


# --- types ----------------------------------------------------------------------


class MessageType(str, enum.Enum):
    """The ``type`` of a message (RFC 6121 section 5.2.2)."""

    #: A single message outside any conversation; also a missing or unknown type.
    NORMAL = "normal"
    #: A message in a one-to-one conversation.
    CHAT = "chat"
    #: An error reply to a message.
    ERROR = "error"
    #: A message in a multi-user chat room.
    GROUPCHAT = "groupchat"
    #: An alert or notification that expects no reply.
    HEADLINE = "headline"

    def __str__(self) -> str:
        """Return the attribute value, such as ``chat``."""
        return self.value


class PresenceType(str, enum.Enum):
    """The ``type`` of a presence (RFC 6121 section 4.7.1).

    :attr:`AVAILABLE` is the empty string: an available presence has no
    ``type`` attribute.
    """

    #: Available (no ``type`` attribute).
    AVAILABLE = ""
    #: An error reply to a presence.
    ERROR = "error"
    #: A request for the contact's current presence.
    PROBE = "probe"
    #: A request to subscribe to the contact's presence.
    SUBSCRIBE = "subscribe"
    #: The subscription request was approved.
    SUBSCRIBED = "subscribed"
    #: The sender is no longer available.
    UNAVAILABLE = "unavailable"
    #: A request to end the subscription to the contact's presence.
    UNSUBSCRIBE = "unsubscribe"
    #: The subscription was denied or cancelled.
    UNSUBSCRIBED = "unsubscribed"

    def __str__(self) -> str:
        """Return the attribute value (empty for :attr:`AVAILABLE`)."""
        return self.value


class IQType(str, enum.Enum):
    """The ``type`` of an IQ (RFC 6120 section 8.2.3)."""

    #: A request for information.
    GET = "get"
    #: A request to change something.
    SET = "set"
    #: A successful answer to a get or set.
    RESULT = "result"
    #: An error answer to a get or set.
    ERROR = "error"

    def __str__(self) -> str:
        """Return the attribute value, such as ``get``."""
        return self.value


class ErrorType(str, enum.Enum):
    """The ``type`` of a stanza error (RFC 6120 section 8.3.2)."""

    #: Retry after providing credentials.
    AUTH = "auth"
    #: Do not retry: the error cannot be remedied.
    CANCEL = "cancel"
    #: Proceed: the condition was only a warning.
    CONTINUE = "continue"
    #: Retry after changing the data sent.
    MODIFY = "modify"
    #: Retry after waiting: the error is temporary.
    WAIT = "wait"

    def __str__(self) -> str:
        """Return the attribute value, such as ``cancel``."""
        return self.value


class Condition(str, enum.Enum):
    """The defined stanza error conditions of RFC 6120 section 8.3.3."""

    BAD_REQUEST = "bad-request"
    CONFLICT = "conflict"
    FEATURE_NOT_IMPLEMENTED = "feature-not-implemented"
    FORBIDDEN = "forbidden"
    #: The recipient is no longer at this address; the new address, if any,
    #: is :attr:`StanzaError.redirect`.
    GONE = "gone"
    INTERNAL_SERVER_ERROR = "internal-server-error"
    ITEM_NOT_FOUND = "item-not-found"
    JID_MALFORMED = "jid-malformed"
    NOT_ACCEPTABLE = "not-acceptable"
    NOT_ALLOWED = "not-allowed"
    NOT_AUTHORIZED = "not-authorized"
    POLICY_VIOLATION = "policy-violation"
    RECIPIENT_UNAVAILABLE = "recipient-unavailable"
    #: The request should go to another address, :attr:`StanzaError.redirect`.
    REDIRECT = "redirect"
    REGISTRATION_REQUIRED = "registration-required"
    REMOTE_SERVER_NOT_FOUND = "remote-server-not-found"
    REMOTE_SERVER_TIMEOUT = "remote-server-timeout"
    RESOURCE_CONSTRAINT = "resource-constraint"
    SERVICE_UNAVAILABLE = "service-unavailable"
    SUBSCRIPTION_REQUIRED = "subscription-required"
    UNDEFINED_CONDITION = "undefined-condition"
    UNEXPECTED_REQUEST = "unexpected-request"

    def __str__(self) -> str:
        """Return the condition's element name, such as ``item-not-found``."""
        return self.value


_MESSAGE_TYPES: dict[str, MessageType] = {t.value: t for t in MessageType}
_NORMAL = MessageType.NORMAL
_AVAILABLE = PresenceType.AVAILABLE
_RESULT = IQType.RESULT
_GET = IQType.GET
_SET = IQType.SET
_ERROR = IQType.ERROR
_PRESENCE_TYPES: dict[str, PresenceType] = {t.value: t for t in PresenceType}
_IQ_TYPES: dict[str, IQType] = {t.value: t for t in IQType}
_ERROR_TYPES: dict[str, ErrorType] = {t.value: t for t in ErrorType}
_CONDITIONS: dict[str, Condition] = {c.value: c for c in Condition}

# One Attr per type value, made once.  The enums are str enums, so equal
# values of two enums (all three have "error") share one entry.
_ALL_TYPES: list[str] = [*MessageType, *PresenceType, *IQType]
_TYPE_ATTRS: dict[str, Any] = {str(t): _Attr(_TYPE, str(t)) for t in _ALL_TYPES if t}
# The same, by the identity of the enum members: hashing a member calls
# Enum.__hash__ (Python code), hashing its id() does not.  Members live as
# long as their classes, so their ids are never reused.
_TYPE_ATTRS_BY_ID: dict[int, Any] = {id(t): _TYPE_ATTRS[str(t)] for t in _ALL_TYPES if t}
_NO_ATTR: Any = object()
for _t in PresenceType:
    if not _t:
        _TYPE_ATTRS_BY_ID[id(_t)] = None
_ERROR_TYPE_ATTRS: dict[int, Any] = {id(t): _Attr(_TYPE, t.value) for t in ErrorType}
_CONDITION_NAMES: dict[int, Any] = {id(c): _Name(NS_STANZAS, c.value) for c in Condition}
_TEXT = _Name(NS_STANZAS, "text")
_REDIRECTING = (Condition.REDIRECT, Condition.GONE)


# --- stanza errors ----------------------------------------------------------------


class StanzaError(Exception):
    """A stanza error (RFC 6120 section 8.3): one stanza failed, the stream goes on.

    ``type`` is an :class:`ErrorType` and ``condition`` a :class:`Condition`
    (strings naming defined values are converted; others raise
    ``ValueError``).  ``text`` is an optional description in language
    ``lang``; ``by`` the address of the entity that found the error;
    ``app`` an optional application-specific condition element (an
    :class:`~xmpp.xmlstream.Element` in a namespace of its own).
    ``redirect`` is the address or URI carried by :attr:`Condition.REDIRECT`
    and :attr:`Condition.GONE`, written as the condition element's text.

    An error read by :meth:`from_element` keeps the received ``<error/>``
    as ``element``; an unknown condition becomes
    :attr:`Condition.UNDEFINED_CONDITION` there, and its raw element stays
    in ``element``.

    Iterating an error (or :meth:`tokens`) yields the tokens of its
    ``<error/>`` element.

    >>> err = StanzaError(ErrorType.CANCEL, Condition.ITEM_NOT_FOUND, "no such node")
    >>> str(err)
    'cancel item-not-found: no such node'
    """

    type: ErrorType
    condition: Condition
    text: str | None
    lang: str | None
    by: JID | None
    app: Any
    redirect: str | None
    element: Any

    def __init__(
        self,
        type: ErrorType | str,
        condition: Condition | str,
        text: str | None = None,
        lang: str | None = None,
        by: JID | None = None,
        app: Any = None,
        redirect: str | None = None,
    ) -> None:
        """Make the error; see the class documentation for the arguments."""
        etype = type if type.__class__ is ErrorType else ErrorType(type)
        cond = condition if condition.__class__ is Condition else Condition(condition)
        Exception.__init__(self, etype, cond, text)
        self.type = etype
        self.condition = cond
        self.text = text
        self.lang = lang
        self.by = by
        self.app = app
        self.redirect = redirect
        self.element = None

    def __str__(self) -> str:
        """Return the type and condition, then the text if there is one."""
        s = f"{self.type.value} {self.condition.value}"
        if self.redirect:
            s = f"{s} ({self.redirect})"
        return f"{s}: {self.text}" if self.text else s

    def __repr__(self) -> str:
        """Return a constructor call for the type, condition and text."""
        return (
            f"StanzaError({self.type.value!r}, {self.condition.value!r}, {self.text!r})"
        )

    def __eq__(self, other: object) -> bool:
        """Compare every value, the application element by its tokens."""
        if not isinstance(other, StanzaError):
            return NotImplemented
        return (
            self.type,
            self.condition,
            self.text,
            self.lang,
            self.by,
            self.redirect,
        ) == (
            other.type,
            other.condition,
            other.text,
            other.lang,
            other.by,
            other.redirect,
        ) and _app_key(self.app) == _app_key(other.app)

    __hash__ = Exception.__hash__

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickle the error's values (the elements are not pickled)."""
        return (
            StanzaError,
            (
                self.type.value,
                self.condition.value,
                self.text,
                self.lang,
                self.by,
                None,
                self.redirect,
            ),
        )

    def tokens(self, ns: str = NS_CLIENT) -> Iterator[Token]:
        """Yield the tokens of the ``<error/>`` element, in stanza namespace ``ns``.

        The defined condition comes first, then ``<text/>`` if there is a
        text, then the application-specific element (RFC 6120 8.3.2).
        """
        err = _error_name(ns)
        t = _ERROR_TYPE_ATTRS.get(id(self.type))
        attrs = [_Attr(_TYPE, ErrorType(self.type).value) if t is None else t]
        if self.by is not None:
            attrs.append(_Attr(_BY, str(self.by)))
        yield _StartElement(err, attrs)
        cond = _CONDITION_NAMES.get(id(self.condition))
        if cond is None:
            cond = _Name(NS_STANZAS, Condition(self.condition).value)
        yield _StartElement(cond)
        if self.redirect and self.condition in _REDIRECTING:
            yield _CharData(self.redirect)
        yield _EndElement(cond)
        if self.text:
            text = _TEXT
            yield _StartElement(text, (_Attr(_LANG, self.lang),) if self.lang else ())
            yield _CharData(self.text)
            yield _EndElement(text)
        if self.app is not None:
            yield from _native_element(self.app)
        yield _EndElement(err)

    def __iter__(self) -> Iterator[Token]:
        """Yield the tokens of the ``<error/>`` element in ``jabber:client``."""
        return self.tokens()

    @classmethod
    def from_element(cls, el: Any) -> StanzaError:
        """Read a received ``<error/>`` element (either engine's).

        Reading is lenient, since an error is never answered: a missing or
        unknown ``type`` becomes :attr:`ErrorType.CANCEL`, a missing or
        unknown condition :attr:`Condition.UNDEFINED_CONDITION`, a malformed
        ``by`` address ``None``; the element is kept as ``element`` either
        way.  The first ``<text/>`` gives ``text`` and ``lang``, the first
        child outside the stanza errors namespace ``app``, and the text of
        ``redirect`` or ``gone`` gives ``redirect``.  Raises ``ValueError``
        if ``el`` is not named ``error``.
        """
        if el.name.local != "error":
            raise ValueError(f"not an error element: {el.name!r}")
        etype = _ERROR_TYPES.get(el.get("type", ""), ErrorType.CANCEL)
        by: JID | None = None
        by_s = el.get("by")
        if by_s:
            try:
                by = _parse_jid(by_s)
            except JIDError:
                by = None
        condition: Condition | None = None
        redirect: str | None = None
        text: str | None = None
        lang: str | None = None
        app: Any = None
        for child in el.children():
            cname = child.name
            if cname.space == NS_STANZAS:
                if cname.local == "text":
                    if text is None:
                        text = child.text
                        lang = child.get("lang", None, NS_XML)
                elif condition is None:
                    condition = _CONDITIONS.get(cname.local, Condition.UNDEFINED_CONDITION)
                    if condition is Condition.REDIRECT or condition is Condition.GONE:
                        redirect = child.text.strip() or None
            elif app is None:
                app = _native_element(child)
        err = cls(
            etype,
            Condition.UNDEFINED_CONDITION if condition is None else condition,
            text,
            lang,
            by,
            app,
            redirect,
        )
        err.element = el
        return err

    @classmethod
    def from_stanza(cls, stanza: Any) -> StanzaError | None:
        """Read the ``<error/>`` child of a received stanza element.

        Returns ``None`` if the stanza has no ``<error/>`` child in its own
        namespace (whatever its ``type``); otherwise as :meth:`from_element`.
        """
        el = stanza.find("error", stanza.name.space)
        return None if el is None else cls.from_element(el)


def _app_key(app: Any) -> Any:
    return None if app is None else _token_key(app)


_ERROR_NAMES: dict[str, Any] = {}


def _error_name(ns: str) -> Any:
    """The name of ``<error/>`` in stanza namespace ``ns`` (a few cached)."""
    name = _ERROR_NAMES.get(ns)
    if name is None:
        name = _Name(ns, "error")
        if len(_ERROR_NAMES) < 16:
            _ERROR_NAMES[ns] = name
    return name


# --- stanzas ----------------------------------------------------------------------------


def _bad(text: str) -> StanzaError:
    """The error a server answers a malformed stanza with (RFC 6120 8.3.3.1)."""
    return StanzaError(ErrorType.MODIFY, Condition.BAD_REQUEST, text)


_T = TypeVar("_T", bound="_Base")


class _Base:
    """What the three stanza kinds share: their start element and tokens."""

    __slots__ = ()

    _LOCAL: ClassVar[str]
    _NAMES: ClassVar[dict[str, Any]]

    to: JID | None
    from_: JID | None
    id: str
    type: Any
    lang: str
    element: Any

    def start(self, ns: str = NS_CLIENT) -> StartElement:
        """Return the stanza's start element, in stanza namespace ``ns``.

        The attributes ``to``, ``from``, ``id``, ``type`` and ``xml:lang``
        are written where they are set (an available presence has no
        ``type``).  The tokens are those of :mod:`xmpp.xmlstream`.
        """
        name = self._NAMES.get(ns)
        if name is None:
            name = _Name(ns, self._LOCAL)
            if len(self._NAMES) < 16:  # a few stream namespaces, bounded
                self._NAMES[ns] = name
        attrs = []
        to = self.to
        if to is not None:
            attrs.append(_Attr(_TO, to._str if type(to) is JID else str(to)))
        frm = self.from_
        if frm is not None:
            attrs.append(_Attr(_FROM, frm._str if type(frm) is JID else str(frm)))
        if self.id:
            attrs.append(_Attr(_ID, self.id))
        t = self.type
        a = _TYPE_ATTRS_BY_ID.get(id(t), _NO_ATTR)
        if a is _NO_ATTR:
            a = _TYPE_ATTRS.get(t)
        if a is not None:
            attrs.append(a)
        if self.lang:
            attrs.append(_Attr(_LANG, self.lang))
        return _StartElement(name, attrs)

    def wrap(self, payload: Iterable[Token] | None = None, ns: str = NS_CLIENT) -> Iterator[Token]:
        """Return the tokens of the whole stanza around ``payload``.

        ``payload`` is any token reader (an :class:`~xmpp.xmlstream.Element`
        included), or ``None`` for an empty stanza; ``ns`` is the stanza
        namespace.  As mellium's ``Wrap``: nothing is checked or copied.
        """
        start = self.start(ns)
        if payload is None:
            return iter((start, start.end()))
        return _chain((start,), payload, (start.end(),))

    @property
    def payload(self) -> tuple[Element, ...]:
        """The child elements of the element this stanza was read from.

        Empty for a stanza made in code or read from a start element alone.
        The elements are those of the engine that parsed them, unknown ones
        included.
        """
        el = self.element
        return () if el is None else tuple(el.children())

    def _swapped(self: _T, type: Any) -> _T:
        # Positional: to, from_, id, type, lang (the reply's language is the
        # replier's, so it is not copied).
        return self.__class__(self.from_, self.to, self.id, type, "")  # type: ignore[call-arg]

    def _reply_wrap(self, t: Any, payload: Iterable[Token] | None, ns: str) -> Iterator[Token]:
        """``self._swapped(t).wrap(payload, ns)`` without making the reply stanza.

        ``t`` is a member of the stanza's type enum.  A subclass that
        writes itself differently (its own ``start`` or ``wrap``) takes the
        long way.
        """
        cls = self.__class__
        if cls.start is not _Base.start or cls.wrap is not _Base.wrap:
            return self._swapped(t).wrap(payload, ns)
        name = self._NAMES.get(ns)
        if name is None:
            name = _Name(ns, self._LOCAL)
            if len(self._NAMES) < 16:
                self._NAMES[ns] = name
        attrs = []
        to = self.from_
        if to is not None:
            attrs.append(_Attr(_TO, to._str if type(to) is JID else str(to)))
        frm = self.to
        if frm is not None:
            attrs.append(_Attr(_FROM, frm._str if type(frm) is JID else str(frm)))
        if self.id:
            attrs.append(_Attr(_ID, self.id))
        a = _TYPE_ATTRS_BY_ID[id(t)]
        if a is not None:
            attrs.append(a)
        start = _StartElement(name, attrs)
        if payload is None:
            return iter((start, start.end()))
        return _chain((start,), payload, (start.end(),))


_NativeElement = _xs.Element
_known_jid = _received.get


# Reading runs for every received stanza, so each ``from_element`` below
# reads its attributes inline (one ``get`` per attribute, no helper call, no
# tuple), and the slow cases (malformed addresses) leave through _jid_error.


def _jid_error(to_s: str | None, exc: JIDError) -> StanzaError:
    """The ``jid-malformed`` error for the first malformed address of a stanza."""
    attr = "to" if to_s is not None and _malformed(to_s) else "from"
    return StanzaError(
        ErrorType.MODIFY, Condition.JID_MALFORMED, f"the {attr!r} address is malformed: {exc}"
    )


def _not(local: str, el: Any) -> ValueError:
    return ValueError(f"not a {local} stanza: {el.name!r}")


def _whole(el: Any) -> Any:
    """``el`` if it is a whole element (it has children), ``None`` for a start element."""
    return el if type(el) is _NativeElement or hasattr(el, "children") else None


def _malformed(s: str) -> bool:
    try:
        _parse_jid(s)
    except JIDError:
        return True
    return False


@dataclasses.dataclass(slots=True)
class Message(_Base):
    """A message stanza (RFC 6121 section 5).

    ``to``, ``from_`` (addresses or ``None``), ``id`` (``""`` for none),
    ``type`` (a :class:`MessageType`) and ``lang`` (``xml:lang``, ``""``
    for none).  ``element`` is the element the message was read from, if
    any (see ``payload``); it takes no part in equality.

    >>> from xmpp.jid import JID
    >>> m = Message(to=JID.parse("juliet@example.com"), type=MessageType.CHAT)
    >>> m.start().get("type")
    'chat'
    """

    _LOCAL: ClassVar[str] = "message"
    _NAMES: ClassVar[dict[str, Any]] = {}

    to: JID | None = None
    from_: JID | None = None
    id: str = ""
    type: MessageType = MessageType.NORMAL
    lang: str = ""
    element: Any = dataclasses.field(default=None, compare=False, repr=False)

    @classmethod
    def from_element(cls, el: Any) -> Message:
        """Read a message from an element or a start element (either engine's).

        A missing or unknown ``type`` is :attr:`MessageType.NORMAL`, as RFC
        6121 section 5.2.2 requires.  Raises :class:`StanzaError`
        (``jid-malformed``) for a malformed address, and ``ValueError`` if
        the element is not a message.
        """
        if el.name.local != "message":
            raise _not("message", el)
        to_s, from_s, id_s, t, lang = el.stanza_attrs()
        try:
            to = None if to_s is None else (_known_jid(to_s) or _parse_jid(to_s))
            frm = None if from_s is None else (_known_jid(from_s) or _parse_jid(from_s))
        except JIDError as exc:
            raise _jid_error(to_s, exc) from None
        return cls(
            to,
            frm,
            id_s or "",
            _NORMAL if t is None else _MESSAGE_TYPES.get(t, _NORMAL),
            lang or "",
            el if type(el) is _NativeElement else _whole(el),
        )

    def reply(self) -> Message:
        """Return a message back to the sender: addresses swapped, same id and type."""
        return self._swapped(self.type)

    def error(self, err: StanzaError, ns: str = NS_CLIENT) -> Iterator[Token]:
        """Return the tokens of an error reply to this message (RFC 6120 8.3.1).

        The reply has type ``error``, the addresses swapped and the same id.
        Raises ``ValueError`` if this message is itself an error, which is
        never answered.
        """
        if self.type is MessageType.ERROR:
            raise ValueError("an error message is never answered with an error")
        return self._reply_wrap(MessageType.ERROR, err.tokens(ns), ns)


@dataclasses.dataclass(slots=True)
class Presence(_Base):
    """A presence stanza (RFC 6121 sections 3 and 4).

    Fields as :class:`Message`; ``type`` is a :class:`PresenceType`, whose
    :attr:`~PresenceType.AVAILABLE` means no ``type`` attribute.
    """

    _LOCAL: ClassVar[str] = "presence"
    _NAMES: ClassVar[dict[str, Any]] = {}

    to: JID | None = None
    from_: JID | None = None
    id: str = ""
    type: PresenceType = PresenceType.AVAILABLE
    lang: str = ""
    element: Any = dataclasses.field(default=None, compare=False, repr=False)

    @classmethod
    def from_element(cls, el: Any) -> Presence:
        """Read a presence from an element or a start element (either engine's).

        Raises :class:`StanzaError`: ``bad-request`` for a ``type`` that is
        not one of RFC 6121 section 4.7.1, ``jid-malformed`` for a malformed
        address; ``ValueError`` if the element is not a presence.
        """
        if el.name.local != "presence":
            raise _not("presence", el)
        to_s, from_s, id_s, t, lang = el.stanza_attrs()
        try:
            to = None if to_s is None else (_known_jid(to_s) or _parse_jid(to_s))
            frm = None if from_s is None else (_known_jid(from_s) or _parse_jid(from_s))
        except JIDError as exc:
            raise _jid_error(to_s, exc) from None
        if t is None:
            typ = _AVAILABLE
        else:
            found = _PRESENCE_TYPES.get(t)
            if found is None:
                raise _bad(f"unknown presence type {t!r}")
            typ = found
        return cls(
            to,
            frm,
            id_s or "",
            typ,
            lang or "",
            el if type(el) is _NativeElement else _whole(el),
        )

    def reply(self) -> Presence:
        """Return a presence back to the sender: addresses swapped, same id and type."""
        return self._swapped(self.type)

    def error(self, err: StanzaError, ns: str = NS_CLIENT) -> Iterator[Token]:
        """Return the tokens of an error reply to this presence (RFC 6120 8.3.1).

        The reply has type ``error``, the addresses swapped and the same id.
        Raises ``ValueError`` if this presence is itself an error.
        """
        if self.type is PresenceType.ERROR:
            raise ValueError("an error presence is never answered with an error")
        return self._reply_wrap(PresenceType.ERROR, err.tokens(ns), ns)


@dataclasses.dataclass(slots=True)
class IQ(_Base):
    """An IQ stanza, a request or its answer (RFC 6120 section 8.2.3).

    Fields as :class:`Message`; ``type`` is an :class:`IQType`.  An IQ
    needs an id; :func:`new_id` makes one.

    >>> from xmpp.jid import JID
    >>> iq = IQ(from_=JID.parse("juliet@example.com/balcony"), id="x1", type=IQType.GET)
    >>> iq.reply()
    IQ(to=JID('juliet', 'example.com', 'balcony'), from_=None, id='x1', \
type=<IQType.RESULT: 'result'>, lang='')
    """

    _LOCAL: ClassVar[str] = "iq"
    _NAMES: ClassVar[dict[str, Any]] = {}

    to: JID | None = None
    from_: JID | None = None
    id: str = ""
    type: IQType = IQType.GET
    lang: str = ""
    element: Any = dataclasses.field(default=None, compare=False, repr=False)

    @classmethod
    def from_element(cls, el: Any) -> IQ:
        """Read an IQ from an element or a start element (either engine's).

        Raises :class:`StanzaError` with ``bad-request`` for a missing or
        unknown ``type``, a missing ``id``, and (given a whole element, not
        only its start) a get or set without exactly one child element or a
        result with more than one (RFC 6120 8.2.3); ``jid-malformed`` for
        a malformed address.  ``ValueError`` if the element is not an IQ.
        """
        if el.name.local != "iq":
            raise _not("iq", el)
        to_s, from_s, id_s, t, lang = el.stanza_attrs()
        try:
            to = None if to_s is None else (_known_jid(to_s) or _parse_jid(to_s))
            frm = None if from_s is None else (_known_jid(from_s) or _parse_jid(from_s))
        except JIDError as exc:
            raise _jid_error(to_s, exc) from None
        typ = None if t is None else _IQ_TYPES.get(t)
        if typ is None:
            raise _bad(
                "an IQ needs a type of get, set, result or error"
                if t is None
                else f"unknown IQ type {t!r}"
            )
        sid = id_s or ""
        if not sid:
            raise _bad("an IQ needs an id")
        element = el if type(el) is _NativeElement else _whole(el)
        if element is not None and typ is not _ERROR:
            children = iter(element.children())
            if next(children, None) is None:
                if typ is not _RESULT:
                    raise _bad(f"an IQ {typ.value} needs exactly one child element, not none")
            elif next(children, None) is not None:
                if typ is _RESULT:
                    raise _bad("an IQ result has at most one child element")
                raise _bad(f"an IQ {typ.value} needs exactly one child element, not two or more")
        return cls(to, frm, sid, typ, lang or "", element)

    def reply(self, type: IQType = IQType.RESULT) -> IQ:
        """Return the answer's IQ: addresses swapped, same id, type ``result``."""
        return self._swapped(type)

    def result(self, payload: Iterable[Token] | None = None, ns: str = NS_CLIENT) -> Iterator[Token]:
        """Return the tokens of a result reply to this request, around ``payload``.

        As mellium's ``iq.Result``: type ``result``, the addresses swapped,
        the same id.  Raises ``ValueError`` unless this IQ is a get or set.
        """
        t = self.type
        if t is not _GET and t is not _SET:
            raise ValueError(f"an IQ {t.value} is never answered")
        return self._reply_wrap(_RESULT, payload, ns)

    def error(self, err: StanzaError, ns: str = NS_CLIENT) -> Iterator[Token]:
        """Return the tokens of an error reply to this request.

        As mellium's ``iq.Error``: type ``error``, the addresses swapped,
        the same id, the ``<error/>`` of ``err`` inside.  Raises
        ``ValueError`` unless this IQ is a get or set (results and errors
        are never answered).
        """
        self._check_request()
        return self._reply_wrap(_ERROR, err.tokens(ns), ns)

    def _check_request(self) -> None:
        t = self.type
        if t is not _GET and t is not _SET:
            raise ValueError(f"an IQ {t.value} is never answered")


#: Any of the three stanza kinds.
Stanza = Union[Message, Presence, IQ]

_KINDS: dict[str, Any] = {"message": Message, "presence": Presence, "iq": IQ}


def from_element(el: Any) -> Stanza:
    """Read a message, presence or IQ, whichever ``el`` is, by its local name.

    Raises ``ValueError`` for any other element, and :class:`StanzaError`
    as the ``from_element`` of each kind does.
    """
    kind = _KINDS.get(el.name.local)
    if kind is None:
        raise ValueError(f"not a stanza: {el.name!r}")
    return kind.from_element(el)  # type: ignore[no-any-return]
