"""Entity Capabilities (XEP-0115): a hash of an entity's disco#info in its presence.

An entity that implements XEP-0115 puts ``<c xmlns='http://jabber.org/protocol/caps'
hash='sha-1' node='...' ver='...'/>`` in its presence; ``ver`` is the
base64 hash of the *verification string* of its disco#info
(:func:`verification_string`, section 5.1 of the XEP).  A receiver that has
seen the ``ver`` before knows the sender's features without asking;
otherwise it asks once (disco#info at ``node#ver``), checks that the answer
hashes to ``ver`` and caches it (:class:`Cache`).

* :func:`ver` and :func:`verification_string` compute them exactly as the
  XEP's examples do (section 5.2, simple, and 5.3, with a data form);
* :class:`Caps` is the ``<c/>`` element: built with :func:`caps_for`,
  read from a presence with :meth:`Caps.from_presence`;
* :class:`Cache` is a bounded map from ``(hash, ver)`` to the verified
  :class:`~xmpp.disco.Info`;
* :func:`stream_feature` reads the ``<c/>`` a server puts in its stream
  features (parse only: there is nothing to negotiate).

>>> from xmpp.disco import Identity, Info
>>> info = Info([Identity("client", "pc", "Exodus 0.9.1")],
...             ["http://jabber.org/protocol/caps", "http://jabber.org/protocol/disco#info",
...              "http://jabber.org/protocol/disco#items", "http://jabber.org/protocol/muc"])
>>> ver(info)
'QgayPKawpkPSDYmwT/WM94uAlu0='
"""

from __future__ import annotations

import base64
import collections
import dataclasses
import hashlib
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from xmpp import disco
from xmpp.jid import JID
from xmpp.negotiator import StreamFeature
from xmpp.session import DEFAULT_IQ_TIMEOUT
from xmpp.xmlstream import Attr, Name, StartElement, Token

if TYPE_CHECKING:
    from xmpp.session import Session

__all__ = [
    "C",
    "DEFAULT_HASH",
    "HASHES",
    "NS",
    "Cache",
    "Caps",
    "caps_for",
    "check",
    "stream_feature",
    "ver",
    "verification_string",
]


def _is(name: Any, want: Name) -> bool:
    """Whether ``name`` (of either engine) is ``want``."""
    return bool(name.local == want.local and name.space == want.space)

#: The namespace of XEP-0115 (also its disco feature).
NS = "http://jabber.org/protocol/caps"
#: The name of the ``<c/>`` element.
C = Name(NS, "c")
_FIELD = Name(disco.NS_DATA, "field")
_VALUE = Name(disco.NS_DATA, "value")
#: The hash function used unless told otherwise (the one every entity supports).
DEFAULT_HASH = "sha-1"
#: The hash functions of the IANA registry that :func:`ver` computes, by
#: their registry names, mapped to their :mod:`hashlib` names.
HASHES: dict[str, str] = {
    "sha-1": "sha1",
    "sha-224": "sha224",
    "sha-256": "sha256",
    "sha-384": "sha384",
    "sha-512": "sha512",
    "md5": "md5",
}


def _key(s: str) -> bytes:
    # "i;octet" collation (RFC 4790): compare the UTF-8 bytes.
    return s.encode("utf-8")


def _fields(form: Any) -> tuple[str | None, list[tuple[str, list[str]]]]:
    """The FORM_TYPE value and the other fields (var, values) of a data form element."""
    form_type: str | None = None
    fields: list[tuple[str, list[str]]] = []
    for field in form.children():
        if not _is(field.name, _FIELD):
            continue
        var = field.get("var")
        if var is None:
            continue
        values = [v.text for v in field.children() if _is(v.name, _VALUE)]
        if var == "FORM_TYPE":
            if len(values) != 1:
                raise ValueError("a FORM_TYPE field must have exactly one value")
            if form_type is not None:
                raise ValueError("a form has two FORM_TYPE fields")
            form_type = values[0]
        else:
            fields.append((var, values))
    return form_type, fields


def check(info: disco.Info) -> None:
    """Raise ``ValueError`` if ``info`` must not be cached under a ``ver``
    (XEP-0115 section 5.4): two identities with the same category, type
    and language, a feature listed twice, two forms with the same
    ``FORM_TYPE``, or a ``FORM_TYPE`` field without exactly one value."""
    seen: set[tuple[str, str, str]] = set()
    for i in info.identities:
        k = (i.category, i.type, i.lang)
        if k in seen:
            raise ValueError(f"the identity {i.category}/{i.type} ({i.lang or 'no language'}) is listed twice")
        seen.add(k)
    if len(set(info.features)) != len(info.features):
        raise ValueError("a feature is listed twice")
    types: set[str] = set()
    for form in info.forms:
        ft, _ = _fields(form)
        if ft is None:
            continue
        if ft in types:
            raise ValueError(f"two forms have the FORM_TYPE {ft!r}")
        types.add(ft)


def verification_string(info: disco.Info) -> str:
    """The verification string of ``info`` (XEP-0115 section 5.1), before hashing.

    Identities sorted by category, type and language, each as
    ``category/type/lang/name<``; then the features sorted, each followed by
    ``<``; then each extended information form (sorted by ``FORM_TYPE``) as
    its ``FORM_TYPE<``, then its fields sorted by ``var``, each as ``var<``
    followed by its values sorted, each followed by ``<``.  Forms without a
    ``FORM_TYPE`` are left out.  Sorting is by UTF-8 bytes ("i;octet").
    Raises ``ValueError`` for a ``FORM_TYPE`` field without exactly one value.

    >>> from xmpp.disco import Identity, Info
    >>> verification_string(Info([Identity("client", "pc", "Exodus 0.9.1")], ["b", "a"]))
    'client/pc//Exodus 0.9.1<a<b<'
    """
    out: list[str] = []
    for i in sorted(info.identities, key=lambda i: (_key(i.category), _key(i.type), _key(i.lang))):
        out.append(f"{i.category}/{i.type}/{i.lang}/{i.name}<")
    for var in sorted(info.features, key=_key):
        out.append(var + "<")
    forms: list[tuple[str, list[tuple[str, list[str]]]]] = []
    for form in info.forms:
        ft, fields = _fields(form)
        if ft is not None:
            forms.append((ft, fields))
    for ft, fields in sorted(forms, key=lambda f: _key(f[0])):
        out.append(ft + "<")
        for var, values in sorted(fields, key=lambda f: _key(f[0])):
            out.append(var + "<")
            out.extend(v + "<" for v in sorted(values, key=_key))
    return "".join(out)


def ver(info: disco.Info, hash: str = DEFAULT_HASH) -> str:
    """The ``ver`` of ``info``: the base64 of the ``hash`` of its
    :func:`verification_string` in UTF-8.  ``ValueError`` for a hash name
    not in :data:`HASHES`."""
    algo = HASHES.get(hash)
    if algo is None:
        raise ValueError(f"unsupported caps hash {hash!r}")
    digest = hashlib.new(algo, verification_string(info).encode("utf-8")).digest()
    return base64.b64encode(digest).decode("ascii")


@dataclasses.dataclass(frozen=True)
class Caps:
    """The ``<c/>`` element of XEP-0115: ``node`` (the software's URI),
    ``ver`` (the hash of the disco#info), ``hash`` (its function's IANA
    name) and, for legacy senders that have no ``hash``, ``ext``.

    >>> Caps("https://example.org/bot", "abc=").start().get("hash")
    'sha-1'
    """

    node: str
    ver: str
    hash: str = DEFAULT_HASH
    ext: str | None = None

    @property
    def legacy(self) -> bool:
        """Whether this is a pre-1.5 ``<c/>`` (no ``hash``): its ``ver`` is no hash
        and must never be verified or cached as one."""
        return not self.hash

    @property
    def disco_node(self) -> str:
        """The disco node to query for the capabilities: ``node#ver``."""
        return f"{self.node}#{self.ver}"

    def start(self) -> StartElement:
        """Return the ``<c/>`` start element."""
        attrs = []
        if self.hash:
            attrs.append(Attr(Name("", "hash"), self.hash))
        attrs.append(Attr(Name("", "node"), self.node))
        attrs.append(Attr(Name("", "ver"), self.ver))
        if self.ext:
            attrs.append(Attr(Name("", "ext"), self.ext))
        return StartElement(C, attrs)

    def tokens(self) -> Iterator[Token]:
        """Yield the tokens of the ``<c/>`` element."""
        s = self.start()
        yield s
        yield s.end()

    def __iter__(self) -> Iterator[Token]:
        """Yield the tokens of the ``<c/>`` element (a token reader, to use as a payload)."""
        return self.tokens()

    @classmethod
    def from_element(cls, el: Any) -> Caps:
        """Read a ``<c/>`` element; ``ValueError`` if it is not one or lacks ``node`` or ``ver``."""
        if not _is(el.name, C):
            raise ValueError(f"not a caps element: {el.name!r}")
        node = el.get("node")
        v = el.get("ver")
        if not node or not v:
            raise ValueError("a caps element needs a node and a ver")
        return cls(node, v, el.get("hash", ""), el.get("ext"))

    @classmethod
    def from_presence(cls, presence: Any) -> Caps | None:
        """The caps of a received presence element, or ``None`` if it has
        no (well-formed) ``<c/>``."""
        el = presence.find("c", NS)
        if el is None:
            return None
        try:
            return cls.from_element(el)
        except ValueError:
            return None


def caps_for(info: disco.Info, node: str, hash: str = DEFAULT_HASH) -> Caps:
    """The :class:`Caps` to put in our presence for our disco#info ``info``.

    >>> from xmpp.disco import Identity, Info
    >>> caps_for(Info([Identity("client", "bot")], [disco.NS_INFO]), "https://example.org").ver
    'frTINOm1DtcSyUhZJXvBF75cCYo='
    """
    return Caps(node, ver(info, hash), hash)


class Cache:
    """A bounded cache of verified capabilities: ``(hash, ver)`` to :class:`~xmpp.disco.Info`.

    Only information whose hash matches is stored (:meth:`add`), so a peer
    cannot poison the cache for others; the least recently used entry goes
    when ``max_entries`` is reached.  :meth:`fetch` asks an entity whose
    ``ver`` is unknown and caches the verified answer.

    >>> from xmpp.disco import Identity, Info
    >>> info = Info([Identity("client", "bot")], [disco.NS_INFO])
    >>> cache = Cache(max_entries=2)
    >>> cache.add(caps_for(info, "n"), info), cache.add(Caps("n", "bogus="), info)
    (True, False)
    >>> cache.get(caps_for(info, "n")) == info
    True
    """

    def __init__(self, max_entries: int = 1024) -> None:
        """Make an empty cache holding at most ``max_entries`` entries."""
        if max_entries < 1:
            raise ValueError("max_entries must be positive")
        self.max_entries = max_entries
        self._entries: collections.OrderedDict[tuple[str, str], disco.Info] = collections.OrderedDict()

    def __len__(self) -> int:
        """The number of cached entries."""
        return len(self._entries)

    def get(self, caps: Caps) -> disco.Info | None:
        """The cached information for ``caps``, or ``None``."""
        k = (caps.hash, caps.ver)
        info = self._entries.get(k)
        if info is not None:
            self._entries.move_to_end(k)
        return info

    def add(self, caps: Caps, info: disco.Info) -> bool:
        """Cache ``info`` under ``caps`` if it verifies: a known hash, an
        acceptable ``info`` (:func:`check`) and a matching ``ver``.  Returns
        whether it was cached."""
        if caps.legacy or caps.hash not in HASHES:
            return False
        try:
            check(info)
            if ver(info, caps.hash) != caps.ver:
                return False
        except ValueError:
            return False
        k = (caps.hash, caps.ver)
        self._entries[k] = info.with_node(None)
        self._entries.move_to_end(k)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)
        return True

    async def fetch(
        self,
        session: Session,
        jid: JID | str,
        caps: Caps,
        *,
        timeout: float | None = DEFAULT_IQ_TIMEOUT,
    ) -> disco.Info:
        """The capabilities of ``jid`` which advertised ``caps``: from the
        cache, else by asking it (disco#info at ``node#ver``).

        The answer is returned whether or not it verifies, but cached only
        if it does (:meth:`add`).  Errors as :func:`xmpp.disco.get_info`.
        """
        found = self.get(caps)
        if found is not None:
            return found
        info = await disco.get_info(session, jid, caps.disco_node, timeout=timeout)
        self.add(caps, info)
        return info


def _parse_feature(session: Session, el: Any) -> tuple[bool, Caps | None]:
    try:
        return False, Caps.from_element(el)
    except ValueError:
        return False, None


def stream_feature() -> StreamFeature:
    """The ``<c/>`` a server may list in its stream features (XEP-0115
    section 6.3), parse only: the session's ``features[C]`` becomes the
    server's :class:`Caps` (``None`` if malformed), and nothing is negotiated."""
    return StreamFeature(name=C, parse=_parse_feature)
