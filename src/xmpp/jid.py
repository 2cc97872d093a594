"""XMPP addresses (JIDs) as defined by RFC 7622, and XEP-0106 escaping.

An address has up to three parts, ``localpart@domainpart/resourcepart``.
:meth:`JID.parse` splits a string at its separators first and then prepares
and enforces each part on its own, as RFC 7622 section 3 requires:

* the localpart goes through the PRECIS ``UsernameCaseMapped`` profile
  (RFC 8265), which maps width and case, and may not contain any of
  ``" & ' / : < > @`` afterwards (RFC 7622 section 3.3.1);
* the domainpart loses one trailing dot (RFC 7622 section 3.2), then is
  either a bracketed IPv6 literal (kept in its compressed form), or an
  internationalized domain name checked against IDNA2008 after UTS 46
  mapping and kept as U-labels (an IPv4 literal passes as a name of digit
  labels);
* the resourcepart goes through the PRECIS ``OpaqueString`` profile.

Every part is at most 1023 bytes of UTF-8 once prepared, and a part that is
present may not be empty.  A refused address raises :class:`JIDError`, which
names the part and the :class:`Rule` broken.

Addresses repeat on a stream, so preparation is cheap where it can be: the
results of :meth:`JID.parse` and of the :class:`JID` constructor are kept in
bounded least-recently-used caches (4096 entries each; refused input is not
kept), internationalized domains in a smaller one of their own, and parts
made only of ASCII characters whose preparation is known in advance (a
lowercased localpart, an unchanged resourcepart, a lowercased domain of
letter-digit-hyphen labels) skip the PRECIS and IDNA machinery.

:func:`escape_local` and :func:`unescape_local` implement XEP-0106, which
lets a localpart show the characters RFC 7622 forbids in it.
"""

from __future__ import annotations

import enum
import functools
import ipaddress
import re
from typing import Any, Literal, NoReturn, final

import idna
import precis_i18n
from precis_i18n.profile import Profile

__all__ = [
    "JID",
    "JIDError",
    "MAX_PART_BYTES",
    "Part",
    "Rule",
    "escape_local",
    "unescape_local",
]

#: The largest prepared part, in bytes of UTF-8 (RFC 7622 section 3.1).
MAX_PART_BYTES = 1023
# A part given as more characters than this is refused before any
# preparation, so that a hostile attribute cannot make PRECIS or IDNA walk
# megabytes.  Canonical composition joins at most four code points into one,
# so this refuses nothing that could prepare to 1023 bytes, except domains
# padded with characters that UTS 46 drops.
_MAX_INPUT_CHARS = 4 * MAX_PART_BYTES
_CACHE_SIZE = 4096

#: The names of the three parts, as ``JIDError.part`` gives them.
Part = Literal["localpart", "domainpart", "resourcepart"]


class Rule(str, enum.Enum):
    """The rules an address part can break, as carried by :class:`JIDError`.

    Each member is a string, so ``err.rule == "empty"`` holds for a member
    whose value is ``"empty"``.
    """

    #: A part that is present is empty (``@example.com``, ``example.com/``, or
    #: an empty string given for a part), or the domainpart is missing.
    EMPTY = "empty"
    #: A prepared part is longer than 1023 bytes of UTF-8.
    TOO_LONG = "too-long"
    #: The localpart contains one of ``" & ' / : < > @`` (RFC 7622 3.3.1).
    FORBIDDEN_CHARACTER = "forbidden-character"
    #: The PRECIS profile of the part refused it; ``JIDError.detail`` holds
    #: the profile's own reason, such as ``DISALLOWED/spaces``.
    PRECIS = "precis"
    #: The domainpart is not a valid IDNA2008 name after UTS 46 mapping.
    IDNA = "idna"
    #: A bracketed domainpart is not a valid IPv6 address without a zone.
    IP_LITERAL = "ip-literal"
    #: XEP-0106 cannot escape a space at the start or end of a localpart.
    EDGE_SPACE = "edge-space"

    def __str__(self) -> str:
        """Return the rule's name, such as ``too-long``."""
        return self.value


class JIDError(ValueError):
    """An address, or one part of it, was refused.

    ``part`` is ``"localpart"``, ``"domainpart"`` or ``"resourcepart"``;
    ``rule`` is the :class:`Rule` broken; ``detail`` is the reason given by
    the PRECIS or IDNA library where one of them refused the part, else
    ``None``.  The message names the part and the rule too.
    """

    def __init__(
        self, part: Part, rule: Rule, reason: str, detail: str | None = None
    ) -> None:
        """Make the error for ``part``, which broke ``rule`` for ``reason``."""
        super().__init__(f"invalid {part} ({rule.value}): {reason}")
        self.part: Part = part
        self.rule: Rule = rule
        self.reason: str = reason
        self.detail: str | None = detail

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickle the error with its part, rule, reason and detail."""
        return (type(self), (self.part, self.rule, self.reason, self.detail))


def _fail(part: Part, rule: Rule, reason: str, detail: str | None = None) -> NoReturn:
    raise JIDError(part, rule, reason, detail)


# --- localpart -------------------------------------------------------------

_USERNAME = precis_i18n.get_profile("UsernameCaseMapped")
_OPAQUE = precis_i18n.get_profile("OpaqueString")

_LOCAL_FORBIDDEN = "\"&'/:<>@"
_LOCAL_FORBIDDEN_RE = re.compile("[" + re.escape(_LOCAL_FORBIDDEN) + "]")
# Printable ASCII without space and without the forbidden characters: on
# these, UsernameCaseMapped does nothing but lowercase.
_LOCAL_ASCII_RE = re.compile(
    "["
    + "".join(
        re.escape(chr(c)) for c in range(0x21, 0x7F) if chr(c) not in _LOCAL_FORBIDDEN
    )
    + "]+"
)


def _precis(part: Part, profile: Profile, s: str) -> str:
    try:
        out = profile.enforce(s)
    except UnicodeEncodeError as exc:
        if exc.reason == "DISALLOWED/empty":
            _fail(part, Rule.EMPTY, "the part is empty once prepared", exc.reason)
        if exc.end - exc.start == 1:
            where = f"character {exc.object[exc.start]!r} at {exc.start}"
        else:
            where = "the part"
        _fail(part, Rule.PRECIS, f"{where} refused by {exc.encoding}", exc.reason)
    return out


def _check_input(part: Part, s: str) -> None:
    if not isinstance(s, str):
        raise TypeError(f"a {part} must be a str, not {type(s).__name__}")
    if not s:
        _fail(part, Rule.EMPTY, "a part that is present may not be empty")
    if len(s) > _MAX_INPUT_CHARS:
        _fail(part, Rule.TOO_LONG, f"{len(s)} characters before preparation")


def _check_length(part: Part, s: str) -> None:
    if len(s) > MAX_PART_BYTES // 4:  # a character is at most four bytes
        n = len(s.encode("utf-8"))
        if n > MAX_PART_BYTES:
            _fail(part, Rule.TOO_LONG, f"{n} bytes, the limit is {MAX_PART_BYTES}")


def _local_full(s: str) -> str:
    """Prepare a localpart through PRECIS, the path for any input."""
    _check_input("localpart", s)
    out = _precis("localpart", _USERNAME, s)
    m = _LOCAL_FORBIDDEN_RE.search(out)
    if m is not None:
        _fail(
            "localpart",
            Rule.FORBIDDEN_CHARACTER,
            f"{m.group()!r} may not appear in a localpart (RFC 7622 3.3.1)",
        )
    _check_length("localpart", out)
    return out


def _local_fast(s: str) -> str | None:
    """The prepared localpart if ASCII rules decide it, else ``None``."""
    if len(s) <= MAX_PART_BYTES and _LOCAL_ASCII_RE.fullmatch(s) is not None:
        return s.lower()
    return None


def _local(s: str) -> str:
    out = _local_fast(s) if type(s) is str else None
    return _local_full(s) if out is None else out


# --- resourcepart ----------------------------------------------------------

# Printable ASCII, space included: OpaqueString leaves it as it is.
_RESOURCE_ASCII_RE = re.compile("[ -~]+")


def _resource_full(s: str) -> str:
    """Prepare a resourcepart through PRECIS, the path for any input."""
    _check_input("resourcepart", s)
    out = _precis("resourcepart", _OPAQUE, s)
    _check_length("resourcepart", out)
    return out


def _resource_fast(s: str) -> str | None:
    """The prepared resourcepart if ASCII rules decide it, else ``None``."""
    if len(s) <= MAX_PART_BYTES and _RESOURCE_ASCII_RE.fullmatch(s) is not None:
        return s
    return None


def _resource(s: str) -> str:
    out = _resource_fast(s) if type(s) is str else None
    return _resource_full(s) if out is None else out


# --- domainpart ------------------------------------------------------------

_LDH_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_DOMAIN_ASCII_RE = re.compile(rf"{_LDH_LABEL}(?:\.{_LDH_LABEL})*\.?")


def _ip_literal(s: str) -> str:
    if not s.endswith("]"):
        _fail("domainpart", Rule.IP_LITERAL, "an IP literal must end with ']'")
    try:
        addr = ipaddress.IPv6Address(s[1:-1])
    except ValueError as exc:
        _fail("domainpart", Rule.IP_LITERAL, str(exc))
    if addr.scope_id is not None:
        _fail("domainpart", Rule.IP_LITERAL, "an IPv6 zone is not allowed")
    mapped = addr.ipv4_mapped
    if mapped is not None:
        # RFC 5952 section 5; older Pythons would print hex groups instead.
        return f"[::ffff:{mapped}]"
    return f"[{addr.compressed}]"


_LDH_LABEL_RE = re.compile(_LDH_LABEL)


def _domain_full(s: str, *, ascii_labels: bool = False) -> str:
    """Prepare a domainpart through UTS 46 and IDNA2008, the path for any input.

    With ``ascii_labels``, a mapped label of letters, digits and inner
    hyphens (no ``--``) is taken as it is, which is what IDNA2008 would do
    with it; the fast-path tests compare both ways.
    """
    if isinstance(s, str) and s.endswith("."):
        s = s[:-1]  # RFC 7622 3.2: before any other canonicalization
    _check_input("domainpart", s)
    if s[0] == "[":
        return _ip_literal(s)
    try:
        mapped = idna.uts46_remap(s, std3_rules=True, transitional=False)
    except idna.IDNAError as exc:
        _fail("domainpart", Rule.IDNA, str(exc), str(exc))
    labels = []
    for label in mapped.split("."):
        if not label:
            _fail("domainpart", Rule.IDNA, "empty label")
        if (
            ascii_labels
            and _LDH_LABEL_RE.fullmatch(label) is not None
            and "--" not in label
        ):
            labels.append(label)
            continue
        try:
            u = idna.ulabel(label)  # checks it; an A-label becomes its U-label
            # The A-label form is at most 63 octets (as idna.alabel checks).
            a = u if u.isascii() else "xn--" + u.encode("punycode").decode("ascii")
        except (idna.IDNAError, UnicodeError) as exc:
            _fail("domainpart", Rule.IDNA, f"label {label!r}: {exc}", str(exc))
        if len(a) > 63:
            _fail("domainpart", Rule.IDNA, f"label {label!r} is over 63 octets")
        labels.append(u)
    out = ".".join(labels)
    _check_length("domainpart", out)
    return out


def _domain_fast(s: str) -> str | None:
    """The prepared domainpart if ASCII rules decide it, else ``None``."""
    if (
        len(s) <= MAX_PART_BYTES + 1
        and _DOMAIN_ASCII_RE.fullmatch(s) is not None
        and "--" not in s  # leave "xn--" and "ab--" labels to IDNA
    ):
        if s.endswith("."):
            s = s[:-1]
        if len(s) <= MAX_PART_BYTES:
            return s.lower()
    return None


@functools.lru_cache(maxsize=1024)
def _domain_slow(s: str) -> str:
    # Domains repeat across addresses more than anything else, and an
    # internationalized one costs IDNA work, so it has a cache of its own.
    return _domain_full(s, ascii_labels=True)


def _domain(s: str) -> str:
    out = _domain_fast(s) if type(s) is str else None
    return _domain_slow(s) if out is None else out


# --- whole addresses -------------------------------------------------------


def _split(s: str) -> tuple[str | None, str, str | None]:
    """Split an address at its separators, before any mapping (RFC 7622 3.1)."""
    if not isinstance(s, str):
        raise TypeError(f"an address must be a str, not {type(s).__name__}")
    resource: str | None = None
    slash = s.find("/")
    if slash >= 0:
        resource = s[slash + 1 :]
        s = s[:slash]
    local: str | None = None
    at = s.find("@")
    if at >= 0:
        local = s[:at]
        s = s[at + 1 :]
    return local, s, resource


def _prepare(
    local: str | None, domain: str, resource: str | None
) -> tuple[str | None, str, str | None]:
    """Prepare the three parts, taking the ASCII fast path where it applies."""
    return (
        None if local is None else _local(local),
        _domain(domain),
        None if resource is None else _resource(resource),
    )


def _prepare_full(
    local: str | None, domain: str, resource: str | None
) -> tuple[str | None, str, str | None]:
    """Prepare the three parts through PRECIS and IDNA only (for tests)."""
    return (
        None if local is None else _local_full(local),
        _domain_full(domain),
        None if resource is None else _resource_full(resource),
    )


def _text(local: str | None, domain: str, resource: str | None) -> str:
    s = domain if local is None else f"{local}@{domain}"
    return s if resource is None else f"{s}/{resource}"




@final
class JID:
    """An XMPP address: an optional localpart, a domainpart, an optional resourcepart.

    ``JID(local, domain, resource)`` prepares and checks each part (``None``
    means the part is absent; an empty string is refused) and
    :meth:`JID.parse` does the same for the string form.  A JID is an
    immutable value: equality and hashing compare the prepared parts, so
    ``JID.parse("Juliet@Example.com") == JID("juliet", "example.com")``, and
    ``JID.parse(str(j)) == j`` for every prepared ``j``.

    >>> j = JID.parse("Juliet@Example.com/Balcony")
    >>> j
    JID('juliet', 'example.com', 'Balcony')
    >>> str(j.bare())
    'juliet@example.com'
    """

    __slots__ = ("_local", "_domain", "_resource", "_str")

    _local: str | None
    _domain: str
    _resource: str | None
    _str: str

    def __new__(
        cls, local: str | None, domain: str, resource: str | None = None
    ) -> JID:
        """Prepare the given parts and return the address they make.

        Raises :class:`JIDError` if a part is refused.
        """
        return _cached_new(local, domain, resource)

    @staticmethod
    def _make(local: str | None, domain: str, resource: str | None) -> JID:
        # Replaced below, once the slot descriptors exist.
        raise NotImplementedError

    @classmethod
    def parse(cls, s: str) -> JID:
        """Parse and prepare an address such as ``juliet@example.com/balcony``.

        The string is split at the first ``/`` (the rest is the resourcepart)
        and then at the first ``@`` before it (what precedes is the
        localpart); then each part is prepared.  Raises :class:`JIDError` if
        the address is refused.  Results are cached.
        """
        return _cached_parse(s)

    @classmethod
    def unsafe(
        cls, local: str | None, domain: str, resource: str | None = None
    ) -> JID:
        """Build an address from parts that are already prepared, without checks.

        This is for input that is trusted to be valid and prepared already,
        such as addresses read back from one's own database: no PRECIS or
        IDNA step runs, nothing is mapped and nothing is refused.  An empty
        localpart or resourcepart is taken as absent.  An address built from
        unprepared parts compares unequal to its prepared form.
        """
        return cls._make(local or None, domain, resource or None)

    @classmethod
    def unsafe_parse(cls, s: str) -> JID:
        """Split an address that is already prepared into its parts, without checks.

        The string is only split, as :meth:`parse` splits it; see
        :meth:`unsafe` for what is not done.
        """
        local, domain, resource = _split(s)
        return cls._make(local or None, domain, resource or None)

    @property
    def local(self) -> str | None:
        """The localpart, or ``None`` if the address has none."""
        return self._local

    @property
    def domain(self) -> str:
        """The domainpart, which every address has."""
        return self._domain

    @property
    def resource(self) -> str | None:
        """The resourcepart, or ``None`` if the address has none."""
        return self._resource

    @property
    def is_bare(self) -> bool:
        """Whether the address has no resourcepart."""
        return self._resource is None

    @property
    def is_domain(self) -> bool:
        """Whether the address is a domainpart alone."""
        return self._local is None and self._resource is None

    def bare(self) -> JID:
        """Return the address without its resourcepart."""
        if self._resource is None:
            return self
        return JID._make(self._local, self._domain, None)

    def domain_jid(self) -> JID:
        """Return the address of the domain alone."""
        if self._local is None and self._resource is None:
            return self
        return JID._make(None, self._domain, None)

    def with_local(self, local: str | None) -> JID:
        """Return the address with another localpart (``None`` removes it).

        The new localpart is prepared; raises :class:`JIDError` if it is refused.
        """
        return JID._make(
            None if local is None else _local(local), self._domain, self._resource
        )

    def with_domain(self, domain: str) -> JID:
        """Return the address with another domainpart.

        The new domainpart is prepared; raises :class:`JIDError` if it is refused.
        """
        return JID._make(self._local, _domain(domain), self._resource)

    def with_resource(self, resource: str | None) -> JID:
        """Return the address with another resourcepart (``None`` removes it).

        The new resourcepart is prepared; raises :class:`JIDError` if it is
        refused.
        """
        if resource is None:
            return self.bare()
        return JID._make(self._local, self._domain, _resource(resource))

    def __str__(self) -> str:
        """Return the address as text, ``localpart@domainpart/resourcepart``."""
        return self._str

    def __repr__(self) -> str:
        """Return a constructor call that makes an equal address."""
        return f"JID({self._local!r}, {self._domain!r}, {self._resource!r})"

    def __eq__(self, other: object) -> bool:
        """Compare the prepared parts of two addresses."""
        if self is other:
            return True
        if not isinstance(other, JID):
            return NotImplemented
        return (
            self._str == other._str
            and self._local == other._local
            and self._resource == other._resource
        )

    def __hash__(self) -> int:
        """Hash the prepared address, consistently with equality."""
        return hash(self._str)

    def __setattr__(self, name: str, value: object) -> NoReturn:
        """Refuse to change the address: a JID is immutable."""
        raise AttributeError(f"JID is immutable: cannot set {name!r}")

    def __delattr__(self, name: str) -> NoReturn:
        """Refuse to change the address: a JID is immutable."""
        raise AttributeError(f"JID is immutable: cannot delete {name!r}")

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickle the prepared parts, which unpickling takes as they are."""
        return (JID.unsafe, (self._local, self._domain, self._resource))

    def __copy__(self) -> JID:
        """Return the address itself, since it cannot change."""
        return self

    def __deepcopy__(self, memo: object) -> JID:
        """Return the address itself, since it cannot change."""
        return self


# Making an address is on the hot path of every parse, so the slots are
# filled through their descriptors (cheaper than object.__setattr__, which
# JID.__setattr__ otherwise forces).
_set_local = JID.__dict__["_local"].__set__
_set_domain = JID.__dict__["_domain"].__set__
_set_resource = JID.__dict__["_resource"].__set__
_set_str = JID.__dict__["_str"].__set__
_object_new = object.__new__


def _new_jid(local: str | None, domain: str, resource: str | None) -> JID:
    """Make an address of parts that are already prepared."""
    self = _object_new(JID)
    _set_local(self, local)
    _set_domain(self, domain)
    _set_resource(self, resource)
    _set_str(self, _text(local, domain, resource))
    return self


JID._make = staticmethod(_new_jid)  # type: ignore[method-assign]


# A whole address whose parts all take the ASCII fast paths, matched at once.
_ADDRESS_ASCII_RE = re.compile(
    rf"(?:({_LOCAL_ASCII_RE.pattern})@)?"
    rf"({_LDH_LABEL}(?:\.{_LDH_LABEL})*)\.?"
    rf"(?:/({_RESOURCE_ASCII_RE.pattern}))?"
)
_MAX_ADDRESS = 3 * MAX_PART_BYTES + 3


def _parse_fast(s: str) -> JID | None:
    """The address if ASCII rules decide all of it, else ``None``."""
    if len(s) > _MAX_ADDRESS:
        return None
    m = _ADDRESS_ASCII_RE.fullmatch(s)
    if m is None:
        return None
    local, domain, resource = m.groups()
    if (
        "--" in domain
        or len(domain) > MAX_PART_BYTES
        or (local is not None and len(local) > MAX_PART_BYTES)
        or (resource is not None and len(resource) > MAX_PART_BYTES)
    ):
        return None
    return _new_jid(None if local is None else local.lower(), domain.lower(), resource)


@functools.lru_cache(maxsize=_CACHE_SIZE)
def _cached_parse(s: str) -> JID:
    j = _parse_fast(s) if type(s) is str else None
    return _new_jid(*_prepare(*_split(s))) if j is None else j


@functools.lru_cache(maxsize=_CACHE_SIZE)
def _cached_new(local: str | None, domain: str, resource: str | None) -> JID:
    return _new_jid(*_prepare(local, domain, resource))


# Addresses read from received stanzas, by their text: a plain dict in front
# of _cached_parse, so that reading a stanza's to and from costs one dict
# lookup each (stanza.py calls _received.get inline).  Bounded: emptied when
# full.  It holds the very objects _cached_parse made.
_received: dict[str, JID] = {}


def _parse_received(s: str) -> JID:
    """Parse an address read from a received stanza (cached as above).

    Raises :class:`JIDError` as :meth:`JID.parse` does; refused addresses
    are not cached.
    """
    j = _cached_parse(s)
    if type(s) is str:
        if len(_received) >= _CACHE_SIZE:
            _received.clear()
        _received[s] = j
    return j


def _cache_clear() -> None:
    """Empty the address caches (for benchmarks and tests)."""
    _received.clear()
    _cached_parse.cache_clear()
    _cached_new.cache_clear()
    _domain_slow.cache_clear()


# --- XEP-0106 --------------------------------------------------------------

_ESCAPES = {
    " ": "\\20",
    '"': "\\22",
    "&": "\\26",
    "'": "\\27",
    "/": "\\2f",
    ":": "\\3a",
    "<": "\\3c",
    ">": "\\3e",
    "@": "\\40",
    "\\": "\\5c",
}
_UNESCAPES = {v[1:]: k for k, v in _ESCAPES.items()}
_CODES = "|".join(_UNESCAPES)
# A backslash is escaped only where it starts something that reads as an
# escape.  Case is ignored here (but not when unescaping) because the
# localpart is case-mapped later, which would turn "\2F" into "\2f".
_ESCAPE_RE = re.compile(rf"[ \"&'/:<>@]|\\(?=(?i:{_CODES}))")
_UNESCAPE_RE = re.compile(rf"\\({_CODES})")


def _escape_one(m: re.Match[str]) -> str:
    return _ESCAPES[m.group()]


def escape_local(s: str) -> str:
    r"""Escape a localpart as XEP-0106 describes, for display text typed by a user.

    Each of the characters RFC 7622 forbids in a localpart, and the space,
    becomes ``\`` and two lowercase hex digits (``d'artagnan`` becomes
    ``d\27artagnan``).  A backslash becomes ``\5c`` only where it starts a
    sequence that unescaping would read as an escape; any other backslash
    is left alone, as the XEP's business rules ask.  The XEP forbids ``\20``
    at the start or end of an escaped localpart, so a leading or trailing
    space raises :class:`JIDError` (rule :attr:`Rule.EDGE_SPACE`).

    The result still has to pass localpart preparation; escaping does not
    check it.

    >>> escape_local("call me \"ishmael\"")
    'call\\20me\\20\\22ishmael\\22'
    """
    if s[:1] == " " or s[-1:] == " ":
        _fail(
            "localpart",
            Rule.EDGE_SPACE,
            "XEP-0106 cannot escape a space at the start or end of a localpart",
        )
    return _ESCAPE_RE.sub(_escape_one, s)


def unescape_local(s: str) -> str:
    r"""Undo XEP-0106 escaping of a localpart, for display.

    Only the ten sequences of the XEP's table (``\20``, ``\22``, ``\26``,
    ``\27``, ``\2f``, ``\3a``, ``\3c``, ``\3e``, ``\40``, ``\5c``, in
    lowercase) are replaced; partial or unknown sequences stay as they are.
    A ``\20`` at the very start or end is not an escape (the XEP forbids it
    there), so it stays too.  ``unescape_local(escape_local(s)) == s``.

    >>> unescape_local("d\\27artagnan")
    "d'artagnan"
    """
    n = len(s)

    def one(m: re.Match[str]) -> str:
        code = m.group(1)
        if code == "20" and (m.start() == 0 or m.end() == n):
            return m.group()
        return _UNESCAPES[code]

    return _UNESCAPE_RE.sub(one, s)
