"""Service Discovery (XEP-0030): what an entity is, what it supports, what it holds.

The payload types marshal to and from tokens:

* :class:`Identity` -- a category, a type, an optional name and language;
* :class:`Info` -- the answer to disco#info: identities, features and
  extended information forms (XEP-0128, kept as elements), optionally for a
  node;
* :class:`Item` -- one entry of a disco#items answer.

:func:`get_info` and :func:`get_items` ask another entity.  :class:`Handler`
answers both queries: disco#info for the entity itself from what the
:class:`~xmpp.mux.ServeMux` aggregates of its handlers
(``disco_features()``/``disco_identities()``) plus its own identities,
features and forms; other nodes from a mapping of node to :class:`Info` (or
a function making one); disco#items from a mapping of node to items.
:func:`handle` registers it.

>>> from xmpp.mux import ServeMux
>>> from xmpp.stream import NS_CLIENT
>>> from xmpp import ping
>>> mux = ServeMux(NS_CLIENT, ping.handle(), handle(identities=[Identity("client", "bot", "Bot")]))
>>> info = mux_info(mux)
>>> info.features
('http://jabber.org/protocol/disco#info', 'http://jabber.org/protocol/disco#items', 'urn:xmpp:ping')
>>> info.identities
(Identity(category='client', type='bot', name='Bot', lang=''),)

Asking another entity (``session.serve`` must be running)::

    info = await xmpp.disco.get_info(session, "example.org")
    if "urn:xmpp:ping" in info.features: ...
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Union

from xmpp.jid import JID, JIDError
from xmpp.session import DEFAULT_IQ_TIMEOUT
from xmpp.stanza import IQ, Condition, ErrorType, IQType, StanzaError
from xmpp.stream import NS_XML
from xmpp.xmlstream import Attr, Element, Name, StartElement, Token

if TYPE_CHECKING:
    from xmpp.mux import ServeMux
    from xmpp.session import Session

__all__ = [
    "DEFAULT_IDENTITY",
    "INFO_QUERY",
    "ITEMS_QUERY",
    "NS",
    "NS_DATA",
    "NS_INFO",
    "NS_ITEMS",
    "Handler",
    "Identity",
    "Info",
    "InfoProvider",
    "Item",
    "ItemsProvider",
    "get_info",
    "get_items",
    "handle",
    "mux_info",
]


def _is(name: Any, want: Name) -> bool:
    """Whether ``name`` (of either engine) is ``want``."""
    return bool(name.local == want.local and name.space == want.space)

#: The namespace of disco#info queries (also a feature every entity has).
NS_INFO = "http://jabber.org/protocol/disco#info"
#: The namespace of disco#items queries.
NS_ITEMS = "http://jabber.org/protocol/disco#items"
#: The module's namespace, as every extension module has one: disco#info.
NS = NS_INFO
#: The namespace of data forms (XEP-0004), the extended information of XEP-0128.
NS_DATA = "jabber:x:data"
#: The payload names of the two queries.
INFO_QUERY = Name(NS_INFO, "query")
ITEMS_QUERY = Name(NS_ITEMS, "query")

_IDENTITY = Name(NS_INFO, "identity")
_FEATURE = Name(NS_INFO, "feature")
_ITEM = Name(NS_ITEMS, "item")
_FORM = Name(NS_DATA, "x")
_NODE = Name("", "node")


def _a(local: str, value: str) -> Attr:
    return Attr(Name("", local), value)


@dataclasses.dataclass(frozen=True)
class Identity:
    """One identity of an entity (XEP-0030 section 3.1): ``category`` and
    ``type`` from the registry (such as ``client``/``pc`` or
    ``server``/``im``), an optional human-readable ``name`` and the
    ``lang`` (``xml:lang``) of that name.

    >>> Identity("client", "pc", "Laptop").start().get("category")
    'client'
    """

    category: str
    type: str
    name: str = ""
    lang: str = ""

    def start(self) -> StartElement:
        """Return the ``<identity/>`` start element."""
        attrs = [_a("category", self.category), _a("type", self.type)]
        if self.name:
            attrs.append(_a("name", self.name))
        if self.lang:
            attrs.append(Attr(Name(NS_XML, "lang"), self.lang))
        return StartElement(_IDENTITY, attrs)

    def tokens(self) -> Iterator[Token]:
        """Yield the tokens of the ``<identity/>`` element."""
        s = self.start()
        yield s
        yield s.end()

    @classmethod
    def from_element(cls, el: Any) -> Identity:
        """Read an ``<identity/>`` element; ``ValueError`` if it lacks a category or type."""
        category = el.get("category")
        typ = el.get("type")
        if not category or not typ:
            raise ValueError("a disco identity needs a category and a type")
        return cls(category, typ, el.get("name", ""), el.get("lang", "", NS_XML))


def _identity(v: Any) -> Identity:
    if isinstance(v, Identity):
        return v
    if isinstance(v, (tuple, list)):
        return Identity(*v)
    raise TypeError(f"not a disco identity: {v!r}")


@dataclasses.dataclass(frozen=True)
class Info:
    """The answer to a disco#info query (XEP-0030 section 3.1).

    ``identities`` (:class:`Identity` values), ``features`` (namespace
    strings), ``forms`` (XEP-0128 extended information: ``<x
    xmlns='jabber:x:data' type='result'/>`` elements, kept whole) and the
    ``node`` queried (``None`` for the entity itself).  Sequences given to the
    constructor are stored as tuples, so an :class:`Info` is immutable.

    >>> info = Info([Identity("server", "im")], [NS_INFO, "urn:xmpp:ping"])
    >>> "urn:xmpp:ping" in info.features
    True
    """

    identities: Sequence[Identity] = ()
    features: Sequence[str] = ()
    forms: Sequence[Element] = ()
    node: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "identities", tuple(_identity(i) for i in self.identities))
        object.__setattr__(self, "features", tuple(self.features))
        object.__setattr__(self, "forms", tuple(self.forms))

    def has_feature(self, var: str) -> bool:
        """Whether ``var`` is among the features."""
        return var in self.features

    def form(self, form_type: str) -> Element | None:
        """The extended information form whose hidden ``FORM_TYPE`` is ``form_type``, or ``None``."""
        for f in self.forms:
            if form_type_of(f) == form_type:
                return f
        return None

    def with_node(self, node: str | None) -> Info:
        """The same information, answering for ``node``."""
        return dataclasses.replace(self, node=node)

    def tokens(self) -> Iterator[Token]:
        """Yield the tokens of the ``<query xmlns='...disco#info'/>`` element."""
        q = StartElement(INFO_QUERY, [_a("node", self.node)] if self.node is not None else [])
        yield q
        for ident in self.identities:
            yield from ident.tokens()
        for var in self.features:
            f = StartElement(_FEATURE, [_a("var", var)])
            yield f
            yield f.end()
        for form in self.forms:
            yield from form
        yield q.end()

    @classmethod
    def from_element(cls, el: Any) -> Info:
        """Read a disco#info ``<query/>`` element (either engine's).

        Identities without a category or type and features without a
        ``var`` are skipped (a received answer is read leniently); data forms
        are kept as elements, in order.  ``ValueError`` if ``el`` is not a
        disco#info query.
        """
        if not _is(el.name, INFO_QUERY):
            raise ValueError(f"not a disco#info query: {el.name!r}")
        identities: list[Identity] = []
        features: list[str] = []
        forms: list[Element] = []
        for child in el.children():
            name = child.name
            if _is(name, _IDENTITY):
                try:
                    identities.append(Identity.from_element(child))
                except ValueError:
                    continue
            elif _is(name, _FEATURE):
                var = child.get("var")
                if var:
                    features.append(var)
            elif _is(name, _FORM):
                forms.append(child)
        return cls(identities, features, forms, el.get("node"))


def form_type_of(form: Any) -> str | None:
    """The value of the hidden ``FORM_TYPE`` field of a data form element, or ``None``."""
    for field in form.children():
        if field.name.local == "field" and field.get("var") == "FORM_TYPE":
            value = field.find("value", NS_DATA)
            return None if value is None else value.text
    return None


@dataclasses.dataclass(frozen=True)
class Item:
    """One item of a disco#items answer (XEP-0030 section 4.1): an entity's
    address ``jid``, an optional ``node`` and a human-readable ``name``."""

    jid: JID
    node: str | None = None
    name: str = ""

    def tokens(self) -> Iterator[Token]:
        """Yield the tokens of the ``<item/>`` element."""
        attrs = [_a("jid", str(self.jid))]
        if self.node is not None:
            attrs.append(_a("node", self.node))
        if self.name:
            attrs.append(_a("name", self.name))
        s = StartElement(_ITEM, attrs)
        yield s
        yield s.end()

    @classmethod
    def from_element(cls, el: Any) -> Item:
        """Read an ``<item/>`` element; ``ValueError`` for a missing or malformed ``jid``."""
        j = el.get("jid")
        if not j:
            raise ValueError("a disco item needs a jid")
        try:
            jid = JID.parse(j)
        except JIDError as exc:
            raise ValueError(f"malformed disco item jid {j!r}: {exc}") from None
        return cls(jid, el.get("node"), el.get("name", ""))


def _items_tokens(items: Iterable[Item], node: str | None) -> Iterator[Token]:
    q = StartElement(ITEMS_QUERY, [_a("node", node)] if node is not None else [])
    yield q
    for item in items:
        yield from item.tokens()
    yield q.end()


def _query(name: Name, node: str | None) -> tuple[Token, ...]:
    q = StartElement(name, [_a("node", node)] if node is not None else [])
    return (q, q.end())


def _jid(to: JID | str | None) -> JID | None:
    if to is None or isinstance(to, JID):
        return to
    return JID.parse(to)


async def get_info(
    session: Session,
    to: JID | str | None,
    node: str | None = None,
    *,
    timeout: float | None = DEFAULT_IQ_TIMEOUT,
) -> Info:
    """Ask ``to`` (``None``: the session's server or, for a client, its own
    account) for its disco#info, at ``node`` if given.

    Raises the :class:`~xmpp.stanza.StanzaError` of an error reply (such as
    ``item-not-found`` for an unknown node), ``TimeoutError`` and
    ``RuntimeError`` as :meth:`xmpp.session.Session.send_iq` does.  A result
    without a query is an empty :class:`Info`.
    """
    reply = await session.send_iq(IQ(to=_jid(to), type=IQType.GET), _query(INFO_QUERY, node), timeout=timeout)
    q = reply.find("query", NS_INFO)
    return Info(node=node) if q is None else Info.from_element(q)


async def get_items(
    session: Session,
    to: JID | str | None,
    node: str | None = None,
    *,
    timeout: float | None = DEFAULT_IQ_TIMEOUT,
) -> list[Item]:
    """Ask ``to`` for its disco#items (at ``node`` if given) and return them in order.

    Items with a missing or malformed ``jid`` are skipped.  Errors as
    :func:`get_info`.
    """
    reply = await session.send_iq(IQ(to=_jid(to), type=IQType.GET), _query(ITEMS_QUERY, node), timeout=timeout)
    q = reply.find("query", NS_ITEMS)
    out: list[Item] = []
    if q is None:
        return out
    for child in q.children():
        if _is(child.name, _ITEM):
            try:
                out.append(Item.from_element(child))
            except ValueError:
                continue
    return out


#: What a node of :class:`Handler` answers disco#info with: an :class:`Info`,
#: or a function of the request IQ returning one (or an awaitable of one).
InfoProvider = Union[Info, Callable[[IQ], Union[Info, Awaitable[Info]]]]
#: What a node of :class:`Handler` answers disco#items with: items, or a
#: function of the request IQ returning them (or an awaitable of them).
ItemsProvider = Union[Iterable[Item], Callable[[IQ], Union[Iterable[Item], Awaitable[Iterable[Item]]]]]

#: The identity a :class:`Handler` reports when nothing declares one
#: (XEP-0030 requires at least one): an automated client.
DEFAULT_IDENTITY = Identity("client", "bot")


async def _resolve(provider: Any, iq: IQ) -> Any:
    if callable(provider):
        v = provider(iq)
        if inspect.isawaitable(v):
            v = await v
        return v
    return provider


class Handler:
    """Answers disco#info and disco#items queries (XEP-0030).

    The entity's own disco#info (no ``node``) is :meth:`info`: the
    identities and features the ``mux`` aggregates from its handlers, then
    this handler's ``identities``, ``features`` and ``forms``
    (``disco#info`` itself is always listed; :data:`DEFAULT_IDENTITY` is
    used when nothing declares an identity).  The mux is read on every
    query, so handlers registered later are listed too.

    ``nodes`` maps other nodes to an :class:`InfoProvider`; ``items`` maps
    a node (``None`` for the entity itself) to an :class:`ItemsProvider`.
    The entity itself has no items unless ``items[None]`` says otherwise.
    A query for any other node gets ``item-not-found``.  With ``caps_node``
    set (the node of this entity's XEP-0115 capabilities), a disco#info
    query for ``caps_node#ver`` with the current verification string is
    answered with :meth:`info` too, as XEP-0115 requires.
    """

    #: The disco features this handler implements (read by the mux).
    disco_features = (NS_INFO, NS_ITEMS)

    def __init__(
        self,
        mux: ServeMux | None = None,
        *,
        identities: Iterable[Identity | tuple[str, ...]] = (),
        features: Iterable[str] = (),
        forms: Iterable[Element] = (),
        nodes: Mapping[str, InfoProvider] | None = None,
        items: Mapping[str | None, ItemsProvider] | None = None,
        caps_node: str | None = None,
    ) -> None:
        """Make a handler; see the class documentation."""
        self.mux = mux
        self.identities = [_identity(i) for i in identities]
        self.features = list(features)
        self.forms = list(forms)
        self.nodes: dict[str, InfoProvider] = dict(nodes or {})
        self.items: dict[str | None, ItemsProvider] = dict(items or {})
        self.caps_node = caps_node

    def info(self) -> Info:
        """The disco#info of the entity itself, as answered now."""
        identities: list[Identity] = []
        for i in [*(self.mux.disco_identities() if self.mux is not None else ()), *self.identities]:
            ident = _identity(i)
            if ident not in identities:
                identities.append(ident)
        if not identities:
            identities.append(DEFAULT_IDENTITY)
        features = {NS_INFO, *self.disco_features, *self.features}
        if self.mux is not None:
            features.update(self.mux.disco_features())
        return Info(identities, sorted(features), self.forms)

    async def handle_iq(self, iq: IQ, element: Element, session: Session) -> None:
        """Answer one disco#info or disco#items get (called by the mux)."""
        query = next(iter(element.children()), None)
        if query is None or iq.type is not IQType.GET:
            return
        node = query.get("node")
        ns = session.stanza_ns
        if _is(query.name, INFO_QUERY):
            info = await self._info_for(iq, node)
            if info is None:
                await session.send(iq.error(StanzaError(ErrorType.CANCEL, Condition.ITEM_NOT_FOUND), ns))
                return
            await session.send(iq.result(info.with_node(node).tokens(), ns))
        elif _is(query.name, ITEMS_QUERY):
            provider = self.items.get(node)
            if provider is None:
                if node is None or node in self.nodes:
                    await session.send(iq.result(_items_tokens((), node), ns))
                else:
                    await session.send(iq.error(StanzaError(ErrorType.CANCEL, Condition.ITEM_NOT_FOUND), ns))
                return
            found = list(await _resolve(provider, iq))
            await session.send(iq.result(_items_tokens(found, node), ns))

    async def _info_for(self, iq: IQ, node: str | None) -> Info | None:
        if node is None:
            return self.info()
        provider = self.nodes.get(node)
        if provider is not None:
            got: Info = await _resolve(provider, iq)
            return got
        if self.caps_node is not None and node.startswith(self.caps_node + "#"):
            from xmpp import caps  # sideways in the high tier; caps imports this module

            info = self.info()
            if node[len(self.caps_node) + 1 :] == caps.ver(info):
                return info
        if node in self.items:
            return Info()
        return None


def handle(mux: ServeMux | None = None, **options: Any) -> Callable[[ServeMux], None]:
    """A :class:`~xmpp.mux.ServeMux` option answering disco#info and
    disco#items with a :class:`Handler`.

    ``options`` are the keyword arguments of :class:`Handler`; its ``mux``
    (whose aggregated features and identities it reports) is ``mux`` if
    given, else the mux the option is applied to.
    """

    def apply(m: ServeMux) -> None:
        h = Handler(mux if mux is not None else m, **options)
        m.iq(IQType.GET, INFO_QUERY, h)
        m.iq(IQType.GET, ITEMS_QUERY, h)

    return apply


def mux_info(mux: ServeMux) -> Info:
    """The disco#info a mux with a disco :class:`Handler` answers for the entity itself.

    Raises ``LookupError`` if no disco handler is registered on ``mux``.
    """
    for h in getattr(mux, "_handlers", ()):
        if isinstance(h, Handler):
            return h.info()
    raise LookupError("no disco handler is registered on this mux")
