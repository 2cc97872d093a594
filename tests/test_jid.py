"""Tests of xmpp.jid: RFC 7622 addresses and XEP-0106 escaping."""

from __future__ import annotations

import copy
import pickle
from collections.abc import Callable

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from xmpp import jid as jidmod
from xmpp.jid import JID, JIDError, Rule, escape_local, unescape_local

# --- RFC 7622 section 3.5 -------------------------------------------------

# The valid examples of RFC 7622 section 3.5, with the parts they prepare to.
RFC7622_VALID = [
    ("juliet@example.com", ("juliet", "example.com", None)),
    ("juliet@example.com/foo", ("juliet", "example.com", "foo")),
    ("juliet@example.com/foo bar", ("juliet", "example.com", "foo bar")),
    ("juliet@example.com/foo@bar", ("juliet", "example.com", "foo@bar")),
    ("foo\\20bar@example.com", ("foo\\20bar", "example.com", None)),
    ("fussball@example.com", ("fussball", "example.com", None)),
    ("fu\u00dfball@example.com", ("fu\u00dfball", "example.com", None)),
    ("\u03c0@example.com", ("\u03c0", "example.com", None)),
    # Capital sigma maps to small sigma; final sigma stays final sigma.
    ("\u03a3@example.com/foo", ("\u03c3", "example.com", "foo")),
    ("\u03c3@example.com/foo", ("\u03c3", "example.com", "foo")),
    ("\u03c2@example.com/foo", ("\u03c2", "example.com", "foo")),
    ("king@example.com/\u265a", ("king", "example.com", "\u265a")),
    ("example.com", (None, "example.com", None)),
    ("example.com/foobar", (None, "example.com", "foobar")),
    ("a.example.com/b@example.net", (None, "a.example.com", "b@example.net")),
]

# The invalid examples of RFC 7622 section 3.5 (table 2), with the part and
# rule, but for example 18 (see test_rfc7622_example_18).
RFC7622_INVALID = [
    ('"juliet"@example.com', "localpart", Rule.FORBIDDEN_CHARACTER),
    ("foo bar@example.com", "localpart", Rule.PRECIS),
    ("@example.com/", "localpart", Rule.EMPTY),
    ("henry\u2163@example.com", "localpart", Rule.PRECIS),  # ROMAN NUMERAL FOUR
    ("\u265a@example.com", "localpart", Rule.PRECIS),  # BLACK CHESS KING
    ("juliet@", "domainpart", Rule.EMPTY),
    ("/foobar", "domainpart", Rule.EMPTY),
]

# More refused addresses, one per kind of failure.
MORE_INVALID = [
    ("@example.com", "localpart", Rule.EMPTY),
    ("user@example.com/", "resourcepart", Rule.EMPTY),
    ("user@example.com/\u0001", "resourcepart", Rule.PRECIS),
    ("user@example.com/a\u0085b", "resourcepart", Rule.PRECIS),
    ("user@host@example.com", "domainpart", Rule.IDNA),
    ("user@exa mple.com", "domainpart", Rule.IDNA),
]


@pytest.mark.parametrize(("text", "parts"), RFC7622_VALID)
def test_rfc7622_valid(text: str, parts: tuple[str | None, str, str | None]) -> None:
    j = JID.parse(text)
    assert (j.local, j.domain, j.resource) == parts
    assert JID(*parts) == j
    assert JID.parse(str(j)) == j


@pytest.mark.parametrize(("text", "part", "rule"), RFC7622_INVALID + MORE_INVALID)
def test_rfc7622_invalid(text: str, part: str, rule: Rule) -> None:
    with pytest.raises(JIDError) as info:
        JID.parse(text)
    err = info.value
    assert isinstance(err, ValueError)
    assert (err.part, err.rule) == (part, rule)
    assert part in str(err) and rule.value in str(err)


def test_rfc7622_example_18() -> None:
    # Table 2 lists "juliet@example.com/ foo" as invalid for its leading
    # space, but no rule of RFC 7622 refuses it: OpaqueString allows spaces
    # anywhere.  Like mellium, accept it (refusing would lose messages that
    # other servers route).
    j = JID.parse("juliet@example.com/ foo")
    assert j.resource == " foo"
    assert JID.parse(str(j)) == j


def test_sigmas() -> None:
    assert JID.parse("\u03a3@example.com") == JID.parse("\u03c3@example.com")
    assert JID.parse("\u03c2@example.com") != JID.parse("\u03c3@example.com")


def test_precis_detail() -> None:
    with pytest.raises(JIDError) as info:
        JID.parse("foo bar@example.com")
    assert info.value.detail == "DISALLOWED/spaces"
    with pytest.raises(JIDError) as info:
        JID("henry\u2163", "example.com")
    assert info.value.detail == "DISALLOWED/has_compat"


@pytest.mark.parametrize("char", list("\"&'/:<>@"))
def test_localpart_forbidden_characters(char: str) -> None:
    with pytest.raises(JIDError) as info:
        JID(f"a{char}b", "example.com")
    assert info.value.rule is Rule.FORBIDDEN_CHARACTER
    assert info.value.part == "localpart"


def test_forbidden_character_after_width_mapping() -> None:
    # FULLWIDTH COMMERCIAL AT maps to "@", which is then refused.
    with pytest.raises(JIDError) as info:
        JID("a\uff20b", "example.com")
    assert info.value.rule is Rule.FORBIDDEN_CHARACTER
    # Splitting happens before mapping: it does not split the address.
    with pytest.raises(JIDError) as info:
        JID.parse("a\uff20b@example.com")
    assert info.value.rule is Rule.FORBIDDEN_CHARACTER


# --- case and width mapping -----------------------------------------------


def test_case_mapping() -> None:
    j = JID.parse("Juliet@Example.COM/Balcony")
    assert (j.local, j.domain, j.resource) == ("juliet", "example.com", "Balcony")
    assert j == JID.parse("JULIET@example.com/Balcony")
    # The resourcepart is case-sensitive.
    assert j != JID.parse("juliet@example.com/balcony")


def test_width_mapping() -> None:
    # UsernameCaseMapped maps fullwidth to ASCII, then lowercases; UTS 46
    # does the same for the domain (FULLWIDTH FULL STOP included).
    j = JID.parse(
        "\uff2a\uff35\uff2c\uff29\uff25\uff34@\uff25\uff38\uff21\uff2d\uff30\uff2c"
        "\uff25\uff0e\uff23\uff2f\uff2d/\uff22\uff41\uff4c"
    )
    assert j.local == "juliet"
    assert j.domain == "example.com"
    # OpaqueString does no width mapping.
    assert j.resource == "\uff22\uff41\uff4c"


def test_resource_maps_spaces() -> None:
    # OpaqueString maps non-ASCII spaces to U+0020 and keeps edge spaces.
    assert JID("a", "example.com", "x\u00a0y").resource == "x y"
    assert JID("a", "example.com", " x ").resource == " x "


def test_normalization() -> None:
    decomposed = JID.parse("e\u0301@example.com/e\u0301")
    assert decomposed.local == "\u00e9"
    assert decomposed.resource == "\u00e9"


# --- domainparts ----------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "want"),
    [
        ("example.com.", "example.com"),
        ("EXAMPLE.com", "example.com"),
        ("B\u00fccher.example", "b\u00fccher.example"),
        ("xn--bcher-kva.example", "b\u00fccher.example"),
        ("XN--BCHER-KVA.example.", "b\u00fccher.example"),
        ("192.168.1.1", "192.168.1.1"),
        ("[::1]", "[::1]"),
        ("[2002:4559:1FE2::4559:1FE2]", "[2002:4559:1fe2::4559:1fe2]"),
        ("[2001:db8:0:0:0:0:0:1]", "[2001:db8::1]"),
        ("[::ffff:192.0.2.1]", "[::ffff:192.0.2.1]"),
        ("[::ffff:c000:0201]", "[::ffff:192.0.2.1]"),
        ("localhost", "localhost"),
    ],
)
def test_domainparts(given: str, want: str) -> None:
    assert JID.parse(f"u@{given}/r").domain == want
    assert JID(None, given).domain == want


@pytest.mark.parametrize(
    ("given", "rule"),
    [
        ("", Rule.EMPTY),
        (".", Rule.EMPTY),
        ("example..com", Rule.IDNA),
        ("example.com..", Rule.IDNA),
        (".example.com", Rule.IDNA),
        ("-example.com", Rule.IDNA),
        ("example-.com", Rule.IDNA),
        ("ab--cd.example", Rule.IDNA),
        ("xn--.example", Rule.IDNA),
        ("ex_ample.com", Rule.IDNA),
        ("exa mple.com", Rule.IDNA),
        ("\u265a.example", Rule.IDNA),
        ("a" * 64 + ".example", Rule.IDNA),
        ("[::1", Rule.IP_LITERAL),
        ("[example.com]", Rule.IP_LITERAL),
        ("[192.0.2.1]", Rule.IP_LITERAL),
        ("[fe80::1%eth0]", Rule.IP_LITERAL),
        ("::1", Rule.IDNA),
    ],
)
def test_bad_domainparts(given: str, rule: Rule) -> None:
    with pytest.raises(JIDError) as info:
        JID(None, given)
    assert (info.value.part, info.value.rule) == ("domainpart", rule)


def test_idn_equality() -> None:
    assert JID.parse("juliet@xn--bcher-kva.example") == JID.parse(
        "juliet@B\u00fccher.example"
    )


# --- limits ---------------------------------------------------------------


def _domain_of(n: int) -> str:
    """A valid domain of exactly ``n`` bytes (``n`` >= 64)."""
    labels = []
    left = n
    while left > 63:
        k = min(63, left - 2)
        labels.append("a" * k)
        left -= k + 1
    labels.append("b" * left)
    out = ".".join(labels)
    assert len(out) == n
    return out


def test_limits_localpart() -> None:
    assert len(JID("a" * 1023, "example.com").local or "") == 1023
    assert JID("\u00e9" * 511 + "a", "example.com").local is not None
    for local in ["a" * 1024, "\u00e9" * 512, "A" * 1024]:
        with pytest.raises(JIDError) as info:
            JID(local, "example.com")
        assert (info.value.part, info.value.rule) == ("localpart", Rule.TOO_LONG)


def test_limits_resourcepart() -> None:
    assert JID("a", "example.com", "r" * 1023).resource == "r" * 1023
    assert JID("a", "example.com", "\u265a" * 341).resource == "\u265a" * 341
    for resource in ["r" * 1024, "\u00e9" * 512, "\u265a" * 342]:
        with pytest.raises(JIDError) as info:
            JID("a", "example.com", resource)
        assert (info.value.part, info.value.rule) == ("resourcepart", Rule.TOO_LONG)


def test_limits_domainpart() -> None:
    ok = _domain_of(1023)
    assert len(ok) == 1023
    assert JID(None, ok).domain == ok
    assert JID(None, ok + ".").domain == ok  # the trailing dot does not count
    assert JID.parse(f"a@{ok.upper()}/r").domain == ok
    too_long = _domain_of(1024)
    assert len(too_long) == 1024
    with pytest.raises(JIDError) as info:
        JID(None, too_long)
    assert (info.value.part, info.value.rule) == ("domainpart", Rule.TOO_LONG)
    # Non-ASCII labels count in UTF-8 bytes (U-labels, not A-labels).
    label = "\u00fc" * 20  # 40 bytes
    labels = [label] * 24  # 24 * 41 - 1 = 983 bytes
    near = ".".join(labels) + "." + "a" * 40
    assert len(near.encode()) == 1024
    with pytest.raises(JIDError) as info:
        JID(None, near)
    assert info.value.rule is Rule.TOO_LONG
    assert JID(None, near[:-1]).domain == near[:-1]


def test_full_length_address_round_trips() -> None:
    j = JID("l" * 1023, _domain_of(1023), "r" * 1023)
    assert len(str(j)) == 3071
    assert JID.parse(str(j)) == j


def test_huge_input_refused_early() -> None:
    for args in [
        ("a" * 100_000, "example.com", None),
        ("a", "example.com", "\u00e9" * 100_000),
        (None, "\u00fc" * 100_000, None),
    ]:
        with pytest.raises(JIDError) as info:
            JID(*args)
        assert info.value.rule is Rule.TOO_LONG


def test_huge_address_refused_before_preparation() -> None:
    # Megabytes of input are refused by their length alone, before PRECIS or
    # IDNA walks them: the reason says so (no timing is asserted).
    for text, part in [
        ("a" * 2_000_000, "domainpart"),
        ("a@" + "b." * 1_000_000, "domainpart"),
        ("a@b/" + "c" * 2_000_000, "resourcepart"),
        ("\u00e9" * 2_000_000 + "@b", "localpart"),
    ]:
        with pytest.raises(JIDError) as info:
            JID.parse(text)
        assert (info.value.part, info.value.rule) == (part, Rule.TOO_LONG)
        assert "before preparation" in info.value.reason


# --- empty parts and types ------------------------------------------------


@pytest.mark.parametrize(
    ("args", "part"),
    [
        (("", "example.com", None), "localpart"),
        (("a", "example.com", ""), "resourcepart"),
        (("a", "", None), "domainpart"),
    ],
)
def test_empty_parts(args: tuple[str | None, str, str | None], part: str) -> None:
    with pytest.raises(JIDError) as info:
        JID(*args)
    assert (info.value.part, info.value.rule) == (part, Rule.EMPTY)


@pytest.mark.parametrize("text", ["", "@", "/", "@/", "a@/r", "@example.com/r"])
def test_empty_parse(text: str) -> None:
    with pytest.raises(JIDError) as info:
        JID.parse(text)
    assert info.value.rule is Rule.EMPTY


def test_types() -> None:
    with pytest.raises(TypeError):
        JID.parse(b"a@example.com")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        JID(1, "example.com")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        JID("a", None)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        JID("a", "example.com", 3)  # type: ignore[arg-type]


# --- the value ------------------------------------------------------------


def test_equality_and_hashing() -> None:
    a = JID.parse("Juliet@Example.com/balcony")
    b = JID("juliet", "example.com", "balcony")
    c = JID.parse("juliet@example.com/garden")
    assert a == b and hash(a) == hash(b)
    assert a != c
    assert a != "juliet@example.com/balcony"
    assert len({a, b, c, a.bare(), b.bare()}) == 3
    assert {a: 1}[b] == 1
    # Parts are compared, not only the text.
    assert JID.unsafe("a@b", "c") != JID.unsafe("a", "b@c")


def test_immutability() -> None:
    j = JID.parse("juliet@example.com/balcony")
    with pytest.raises(AttributeError):
        j.local = "romeo"  # type: ignore[misc]
    with pytest.raises(AttributeError):
        j._local = "romeo"
    with pytest.raises(AttributeError):
        del j._domain
    with pytest.raises(AttributeError):
        j.extra = 1
    assert not hasattr(j, "__dict__")
    assert str(j) == "juliet@example.com/balcony"
    assert copy.copy(j) is j and copy.deepcopy(j) is j


def test_pickle() -> None:
    j = JID.parse("juliet@example.com/balcony")
    assert pickle.loads(pickle.dumps(j)) == j
    err = JIDError("localpart", Rule.EMPTY, "empty", "detail")
    err2 = pickle.loads(pickle.dumps(err))
    assert (err2.part, err2.rule, err2.detail, str(err2)) == (
        "localpart",
        Rule.EMPTY,
        "detail",
        str(err),
    )


def test_derived_addresses() -> None:
    j = JID.parse("juliet@example.com/balcony")
    assert j.bare() == JID.parse("juliet@example.com")
    b = j.bare()
    d = b.domain_jid()
    assert b.bare() is b and d.domain_jid() is d
    assert j.domain_jid() == JID.parse("example.com")
    assert j.with_resource("Garden") == JID.parse("juliet@example.com/Garden")
    assert j.with_resource(None) == j.bare()
    assert j.with_local("ROMEO") == JID.parse("romeo@example.com/balcony")
    assert j.with_local(None) == JID.parse("example.com/balcony")
    assert j.with_domain("Example.NET.") == JID.parse("juliet@example.net/balcony")
    assert j.is_bare is False and j.bare().is_bare is True
    assert j.is_domain is False and j.domain_jid().is_domain is True
    assert JID.parse("example.com/r").is_domain is False
    bads: list[Callable[[], JID]] = [lambda: j.with_resource(""), lambda: j.with_local("a b")]
    for bad in bads:
        with pytest.raises(JIDError):
            bad()
    with pytest.raises(JIDError) as info:
        j.with_domain("")
    assert info.value.part == "domainpart"
    # The original is unchanged.
    assert str(j) == "juliet@example.com/balcony"


def test_str_and_repr() -> None:
    for text, _ in RFC7622_VALID:
        j = JID.parse(text)
        assert JID.parse(str(j)) == j
        assert eval(repr(j), {"JID": JID}) == j
    assert str(JID.parse("Juliet@Example.com./r")) == "juliet@example.com/r"
    assert repr(JID.parse("example.com")) == "JID(None, 'example.com', None)"


def test_resource_split_at_first_slash() -> None:
    j = JID.parse("server/resource@foo/bar")
    assert (j.local, j.domain, j.resource) == (None, "server", "resource@foo/bar")
    assert JID.parse("a@b/c@d").local == "a"


def test_unsafe() -> None:
    j = JID.unsafe("Juliet", "Example.com", "r")
    assert (j.local, j.domain, j.resource) == ("Juliet", "Example.com", "r")
    assert j != JID.parse("juliet@example.com/r")
    assert JID.unsafe("", "example.com", "") == JID.parse("example.com")
    u = JID.unsafe_parse("Juliet@Example.com/a/b@c")
    assert (u.local, u.domain, u.resource) == ("Juliet", "Example.com", "a/b@c")
    assert JID.unsafe_parse("juliet@example.com/r") == JID.parse("juliet@example.com/r")
    assert JID.unsafe_parse("example.com").local is None
    assert JID.unsafe_parse("@example.com/").local is None


def test_cache() -> None:
    jidmod._cache_clear()
    a = JID.parse("juliet@example.com/balcony")
    assert JID.parse("juliet@example.com/balcony") is a
    info = jidmod._cached_parse.cache_info()
    assert (info.hits, info.misses, info.maxsize) == (1, 1, 4096)
    assert JID("juliet", "example.com") is JID("juliet", "example.com")
    # A refused address is not cached, and keeps being refused.
    for _ in range(2):
        with pytest.raises(JIDError):
            JID.parse("@example.com")
    assert jidmod._cached_parse.cache_info().currsize == 1


# --- the ASCII fast path against the full path ----------------------------

PRINTABLE_ASCII = st.characters(min_codepoint=0x20, max_codepoint=0x7E)
ANY_ASCII = st.characters(max_codepoint=0x7F)
# Letters, digits and the characters where the rules change.
EDGY = st.sampled_from(list("aZ09-._ @/\\\"'&:<>[]%~\t\x00\x7f") + ["\u00e9", "\uff21"])
LDHISH = st.sampled_from(list("aBz09-.") + ["xn--", "--"])
PART_TEXT = st.one_of(
    st.text(PRINTABLE_ASCII, max_size=30),
    st.text(ANY_ASCII, max_size=30),
    st.text(EDGY, max_size=20),
    st.lists(LDHISH, max_size=20).map("".join),
    st.text(max_size=12),
)
FAST_SETTINGS = settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


def _outcome(f: object, s: str) -> object:
    try:
        return ("ok", f(s))  # type: ignore[operator]
    except JIDError as exc:
        return ("error", exc.part, exc.rule)


@pytest.mark.parametrize(
    ("fast", "full"),
    [
        (jidmod._local_fast, jidmod._local_full),
        (jidmod._resource_fast, jidmod._resource_full),
        (jidmod._domain_fast, jidmod._domain_full),
    ],
    ids=["localpart", "resourcepart", "domainpart"],
)
@FAST_SETTINGS
@given(s=PART_TEXT)
@example(s="A" * 1023)
@example(s="A" * 1024)
@example(s="a." * 511 + "a")
@example(s="xn--bcher-kva")
@example(s="Example.COM.")
@example(s="")
@example(s=" ")
def test_fast_path_agrees_with_full_path(fast: object, full: object, s: str) -> None:
    got = fast(s)  # type: ignore[operator]
    want = _outcome(full, s)
    if got is not None:
        # The fast path only answers where the full path accepts, and then
        # gives exactly its result.
        assert want == ("ok", got)


@FAST_SETTINGS
@given(s=PART_TEXT)
def test_domain_label_shortcut_agrees(s: str) -> None:
    assert _outcome(jidmod._domain, s) == _outcome(jidmod._domain_full, s)


ADDRESS_TEXT = st.one_of(
    st.text(st.sampled_from(list("aZ9.-@/ \\\"") + ["\u00e9", "\uff20", "\u03a3"]), max_size=20),
    st.text(PRINTABLE_ASCII, max_size=30),
    st.builds(
        lambda l, d, r: f"{l}@{d}/{r}",
        st.text(PRINTABLE_ASCII, max_size=8),
        st.lists(LDHISH, max_size=8).map("".join),
        st.text(max_size=8),
    ),
)


@FAST_SETTINGS
@given(text=ADDRESS_TEXT)
@example(text="Juliet@Example.COM./Bal/c@ny")
@example(text="a@b@c")
@example(text="a/b@c")
@example(text="a@xn--bcher-kva.example")
@example(text="l" * 1023 + "@" + "d." * 511 + "d./" + "r" * 1023)
@example(text="l" * 1024 + "@d")
def test_parse_agrees_with_full_path(text: str) -> None:
    jidmod._cache_clear()
    try:
        got: object = ("ok", JID.parse(text))
    except JIDError as exc:
        got = ("error", exc.part, exc.rule)
    try:
        want: object = ("ok", JID.unsafe(*jidmod._prepare_full(*jidmod._split(text))))
    except JIDError as exc:
        want = ("error", exc.part, exc.rule)
    assert got == want
    if got[0] == "ok":  # type: ignore[index]
        j = got[1]  # type: ignore[index]
        assert JID.parse(str(j)) == j
        assert JID(j.local, j.domain, j.resource) == j


@FAST_SETTINGS
@given(text=ADDRESS_TEXT)
@example(text="Juliet@Example.COM./Balcony")
@example(text="l" * 1024 + "@d")
@example(text="a@b--c.example")
def test_address_fast_path_agrees_with_full_path(text: str) -> None:
    # Where the whole-address ASCII path answers, the full path accepts
    # the address and prepares it to exactly the same parts.
    fast = jidmod._parse_fast(text)
    if fast is None:
        return
    full = jidmod._prepare_full(*jidmod._split(text))
    assert (fast.local, fast.domain, fast.resource) == full


@pytest.mark.parametrize(
    "text",
    [
        "juliet@example.com/balcony",
        "Juliet@Example.COM/Balcony",
        "example.com",
        "a.example.com/b@example.net",
        "foo\\20bar@example.com/ x y ",
        "192.0.2.1",
    ],
)
def test_fast_path_is_taken_for_plain_ascii(text: str) -> None:
    # The fast path is no fast path if it never answers.
    fast = jidmod._parse_fast(text)
    assert fast is not None
    assert fast == JID.unsafe(*jidmod._prepare_full(*jidmod._split(text)))


@pytest.mark.parametrize(
    "text",
    ["\u00e9@example.com", "a@b\u00fccher.example", "a@xn--bcher-kva.example", "a@[::1]", "a b@c"],
)
def test_fast_path_declines(text: str) -> None:
    assert jidmod._parse_fast(text) is None


# --- XEP-0106 -------------------------------------------------------------

# The JID examples of XEP-0106 section 5.1: user input and escaped localpart.
XEP0106_EXAMPLES = [
    ("space cadet", "space\\20cadet"),
    ('call me "ishmael"', "call\\20me\\20\\22ishmael\\22"),
    ("at&t guy", "at\\26t\\20guy"),
    ("d'artagnan", "d\\27artagnan"),
    ("/.fanboy", "\\2f.fanboy"),
    ("::foo::", "\\3a\\3afoo\\3a\\3a"),
    ("<foo>", "\\3cfoo\\3e"),
    ("user@host", "user\\40host"),
    ("c:\\net", "c\\3a\\5cnet"),
    ("c:\\\\net", "c\\3a\\5c\\5cnet"),
    ("c:\\cool stuff", "c\\3a\\5ccool\\20stuff"),
    ("c:\\5commas", "c\\3a\\5c5commas"),
    # Sections 5.2 and 5.5 (email and IMPS addresses).
    (
        "here's_a_wild_&_/cr%zy/_address",
        "here\\27s_a_wild_\\26_\\2fcr%zy\\2f_address",
    ),
    (
        "here's_a_wild_&_/cr%zy/_address_for:<wv>(\"IMPS\")",
        "here\\27s_a_wild_\\26_\\2fcr%zy\\2f_address_for\\3a\\3cwv\\3e(\\22IMPS\\22)",
    ),
    ("\\3and\\2is\\5cool", "\\5c3and\\2is\\5c5cool"),
]

# Examples 9 to 11 of the table escape a backslash that starts no escape
# sequence, against the XEP's own rules (section 4.3 leaves "foo\bar"
# unmodified); escape_local follows the rules and leaves such a backslash.
OURS_DIFFERS = {
    "c:\\net": "c\\3a\\net",
    "c:\\\\net": "c\\3a\\\\net",
    "c:\\cool stuff": "c\\3a\\cool\\20stuff",
}


@pytest.mark.parametrize(("user", "escaped"), XEP0106_EXAMPLES)
def test_xep0106_examples(user: str, escaped: str) -> None:
    assert unescape_local(escaped) == user
    ours = escape_local(user)
    assert ours == OURS_DIFFERS.get(user, escaped)
    assert unescape_local(ours) == user
    # Both the table's form and ours are valid localparts as they are.
    for local in {escaped, ours}:
        if local.lower() == local:
            assert JID(local, "example.com").local == local


@pytest.mark.parametrize("text", ["\\2plus\\2is\\4", "foo\\bar", "foob\\41r", "a\\", "\\"])
def test_xep0106_partial_and_unknown_sequences(text: str) -> None:
    assert escape_local(text) == text
    assert unescape_local(text) == text


def test_xep0106_case_is_significant() -> None:
    # Only lowercase sequences are escapes ...
    assert unescape_local("a\\2Fb") == "a\\2Fb"
    # ... but a backslash before an uppercase one is escaped, since the
    # localpart's case mapping would otherwise turn it into an escape.
    escaped = escape_local("a\\2Fb")
    assert escaped == "a\\5c2Fb"
    assert unescape_local(JID(escaped, "example.com").local or "") == "a\\2fb"


def test_xep0106_edge_spaces() -> None:
    for text in [" cadet", "cadet ", " ", "  x  "]:
        with pytest.raises(JIDError) as info:
            escape_local(text)
        assert (info.value.part, info.value.rule) == ("localpart", Rule.EDGE_SPACE)
    # A \20 at the start or end is not an escape, so it is left as it is.
    assert unescape_local("\\20callme\\20") == "\\20callme\\20"
    assert unescape_local("\\20call\\20me") == "\\20call me"
    assert unescape_local("\\20") == "\\20"
    assert escape_local("") == "" and unescape_local("") == ""


def test_xep0106_escaped_jid_is_valid() -> None:
    j = JID(escape_local("d'Artagnan"), "musketeers.lit")
    assert str(j) == "d\\27artagnan@musketeers.lit"
    assert unescape_local(j.local or "") == "d'artagnan"


@settings(max_examples=300, deadline=None)
@given(
    s=st.one_of(
        st.text(st.sampled_from(list("\\ 0123456789abcdefABCDEF\"&'/:<>@x")), max_size=24),
        st.text(max_size=16),
    )
)
def test_xep0106_round_trip(s: str) -> None:
    if s.startswith(" ") or s.endswith(" "):
        with pytest.raises(JIDError):
            escape_local(s)
        return
    e = escape_local(s)
    assert unescape_local(e) == s
    assert not any(c in e for c in " \"&'/:<>@")
