"""A deterministic, realistic XMPP client stream for benchmarks.

:func:`make_stream` returns a stream header followed by ``n`` top-level
stanzas with the mix a busy client connection sees: chat messages with
bodies, receipt requests and chat states; bare receipts and chat-state
notifications; presences with entity capabilities; disco#info results;
roster results and pushes; pings and their results.  The same ``n`` and
``seed`` give the same bytes on every machine and Python version (only
:class:`random.Random` with an integer seed is used).  Stanzas average about
400 bytes; some bodies carry escaped markup and non-ASCII text, and a few
white-space keepalives sit between stanzas.

:func:`stanza_count` counts the top-level elements of a stream with pyexpat,
independently of the engine under test, so a benchmark can check that every
stanza was delivered.

>>> data = make_stream(20)
>>> data.startswith(HEADER)
True
>>> stanza_count(data)
20
>>> make_stream(20) == data
True
"""

from __future__ import annotations

import random
from xml.parsers import expat

__all__ = ["DEFAULT_SEED", "HEADER", "make_stanzas", "make_stream", "stanza_count"]

DEFAULT_SEED = 6120

#: The stream header every corpus starts with (a server's reply to a client).
HEADER = (
    b"<?xml version='1.0'?>"
    b"<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' "
    b"from='example.com' to='juliet@example.com' id='f5b1e6a2-9c3d-4e1f-8a7b-2c6d0e9f1a3b' "
    b"version='1.0' xml:lang='en'>"
)

_DOMAINS = ["example.com", "example.net", "chat.example.org", "im.example.de"]
_NAMES = [
    "juliet", "romeo", "nurse", "mercutio", "benvolio", "tybalt", "paris", "laurence",
    "capulet", "montague", "balthasar", "sampson", "gregory", "abram", "peter", "rosaline",
    "escalus", "friar.john", "apothecary", "chorus", "lady.capulet", "lady.montague",
]
_RESOURCES = ["balcony", "orchard", "mobile", "laptop", "Conversations.x7Tq", "gajim.4F2A", "web"]
_WORDS = (
    "wherefore art thou romeo deny thy father and refuse thy name or if thou wilt not be "
    "but sworn my love and I'll no longer be a capulet what's in a name that which we call "
    "a rose by any other word would smell as sweet so romeo would were he not romeo call'd "
    "retain that dear perfection which he owes without that title doff thy name and for "
    "that name which is no part of thee take all myself meet me at the usual place at eight"
).split()
_EXTRA = [
    "caf\u00e9", "na\u00efve", "\u00fcber", "\u65e5\u672c\u8a9e", "\u043f\u0440\u0438\u0432\u0435\u0442",
    "\U0001f600", "\U0001f339", "&amp;", "&lt;3", "&quot;yes&quot;", "Fish &amp; chips", "&apos;tis",
]
_STATES = ["active", "composing", "paused", "inactive", "gone"]
_SHOWS = ["away", "chat", "dnd", "xa"]
_STATUS = ["At the ball", "In the orchard", "Busy \u2014 do not disturb", "Back soon", "On my way"]
_CAPS_NODES = [
    ("http://conversations.im", "Iq1bhkbM0Z3/bXuMOmH0b9CoFSo="),
    ("https://gajim.org", "q07IKJEyjvHSyhy//CH0CxmKi8w="),
    ("http://psi-im.org", "bRbNYcWrJE/OPe4DKUm5/2lY5hI="),
    ("https://dino.im", "S0DpHq2mh8P3Vh2sCsAbEHxtMIs="),
]
_FEATURES = [
    "http://jabber.org/protocol/caps", "http://jabber.org/protocol/disco#info",
    "http://jabber.org/protocol/disco#items", "http://jabber.org/protocol/chatstates",
    "urn:xmpp:receipts", "urn:xmpp:ping", "urn:xmpp:time", "jabber:iq:version",
    "urn:xmpp:message-correct:0", "urn:xmpp:chat-markers:0", "http://jabber.org/protocol/muc",
    "urn:xmpp:jingle:1", "urn:xmpp:avatar:metadata+notify", "urn:xmpp:mam:2",
]
_GROUPS = ["Friends", "Family", "Capulets", "Montagues", "Verona", "Work"]


class _Gen:
    """One generator: a seeded Random and the shared vocabulary."""

    def __init__(self, seed: int) -> None:
        self.r = random.Random(seed)
        self.counter = 0

    def jid(self, resource: bool = True) -> str:
        r = self.r
        bare = f"{r.choice(_NAMES)}@{r.choice(_DOMAINS)}"
        return f"{bare}/{r.choice(_RESOURCES)}" if resource else bare

    def id(self) -> str:
        self.counter += 1
        r = self.r
        return f"{r.getrandbits(32):08x}-{self.counter:x}"

    def text(self, lo: int, hi: int) -> str:
        r = self.r
        words = [r.choice(_WORDS) for _ in range(r.randint(lo, hi))]
        if r.random() < 0.3:
            words.insert(r.randrange(len(words) + 1), r.choice(_EXTRA))
        return " ".join(words)

    def chat(self) -> str:
        r = self.r
        to, frm = self.jid(), self.jid()
        body = self.text(12, 56)
        markers = ""
        if r.random() < 0.3:
            markers = "<markable xmlns='urn:xmpp:chat-markers:0'/>"
        thread = ""
        if r.random() < 0.25:
            thread = f"<thread>{r.getrandbits(48):012x}</thread>"
        return (
            f"<message to='{to}' from='{frm}' type='chat' id='{self.id()}' xml:lang='en'>"
            f"<body>{body}</body>{thread}"
            f"<request xmlns='urn:xmpp:receipts'/>"
            f"<active xmlns='http://jabber.org/protocol/chatstates'/>{markers}"
            f"<origin-id xmlns='urn:xmpp:sid:0' id='{self.id()}'/></message>"
        )

    def receipt(self) -> str:
        return (
            f"<message to='{self.jid()}' from='{self.jid()}' type='chat' id='{self.id()}'>"
            f"<received xmlns='urn:xmpp:receipts' id='{self.id()}'/>"
            f"<store xmlns='urn:xmpp:hints'/></message>"
        )

    def chatstate(self) -> str:
        state = self.r.choice(_STATES)
        return (
            f"<message to='{self.jid()}' from='{self.jid()}' type='chat' id='{self.id()}'>"
            f"<{state} xmlns='http://jabber.org/protocol/chatstates'/>"
            f"<no-store xmlns='urn:xmpp:hints'/></message>"
        )

    def presence(self) -> str:
        r = self.r
        node, ver = r.choice(_CAPS_NODES)
        show = f"<show>{r.choice(_SHOWS)}</show>" if r.random() < 0.6 else ""
        status = f"<status>{r.choice(_STATUS)}</status>" if r.random() < 0.5 else ""
        return (
            f"<presence from='{self.jid()}' to='{self.jid(False)}' id='{self.id()}'>"
            f"{show}{status}<priority>{r.randint(-1, 50)}</priority>"
            f"<c xmlns='http://jabber.org/protocol/caps' hash='sha-1' node='{node}' ver='{ver}'/>"
            f"<x xmlns='vcard-temp:x:update'><photo>{r.getrandbits(160):040x}</photo></x>"
            f"</presence>"
        )

    def disco(self) -> str:
        r = self.r
        node, ver = r.choice(_CAPS_NODES)
        feats = "".join(f"<feature var='{f}'/>" for f in r.sample(_FEATURES, r.randint(5, 10)))
        return (
            f"<iq type='result' id='{self.id()}' from='{self.jid()}' to='{self.jid()}'>"
            f"<query xmlns='http://jabber.org/protocol/disco#info' node='{node}#{ver}'>"
            f"<identity category='client' type='{r.choice(['pc', 'phone', 'web'])}' name='Client'/>"
            f"{feats}</query></iq>"
        )

    def roster(self) -> str:
        r = self.r
        items = []
        for _ in range(r.randint(1, 4)):
            group = f"<group>{r.choice(_GROUPS)}</group>" if r.random() < 0.7 else ""
            sub = r.choice(["both", "to", "from", "none"])
            name = r.choice(_NAMES).replace(".", " ").title()
            items.append(f"<item jid='{self.jid(False)}' name='{name}' subscription='{sub}'>{group}</item>")
        typ = "result" if r.random() < 0.5 else "set"
        return (
            f"<iq type='{typ}' id='{self.id()}' to='{self.jid()}'>"
            f"<query xmlns='jabber:iq:roster' ver='ver{r.randint(1, 999)}'>{''.join(items)}</query></iq>"
        )

    def ping(self) -> str:
        if self.r.random() < 0.5:
            return f"<iq type='get' id='{self.id()}' from='{self.jid(False)}' to='{self.jid()}'><ping xmlns='urn:xmpp:ping'/></iq>"
        return f"<iq type='result' id='{self.id()}' from='{self.jid()}' to='{self.jid()}'/>"

    def stanza(self) -> str:
        x = self.r.random()
        if x < 0.40:
            return self.chat()
        if x < 0.50:
            return self.receipt()
        if x < 0.58:
            return self.chatstate()
        if x < 0.80:
            return self.presence()
        if x < 0.88:
            return self.disco()
        if x < 0.96:
            return self.roster()
        return self.ping()


def make_stanzas(n: int = 50_000, seed: int = DEFAULT_SEED) -> list[bytes]:
    """Return ``n`` stanzas, each the UTF-8 bytes of one top-level element."""
    if n < 0:
        raise ValueError("n must not be negative")
    g = _Gen(seed)
    return [g.stanza().encode("utf-8") for _ in range(n)]


def make_stream(n: int = 50_000, seed: int = DEFAULT_SEED) -> bytes:
    """Return :data:`HEADER` followed by ``n`` stanzas (the stream is left open).

    About one stanza in fifty is followed by a white-space keepalive.
    """
    stanzas = make_stanzas(n, seed)
    r = random.Random(seed + 1)
    parts = [HEADER]
    for s in stanzas:
        parts.append(s)
        if r.random() < 0.02:
            parts.append(b"\n ")
    return b"".join(parts)


def stanza_count(stream: bytes) -> int:
    """Count the top-level elements (children of the root) of ``stream`` with pyexpat."""
    depth = 0
    count = 0

    def start(name: str, attrs: object) -> None:
        nonlocal depth, count
        if depth == 1:
            count += 1
        depth += 1

    def end(name: str) -> None:
        nonlocal depth
        depth -= 1

    p = expat.ParserCreate("UTF-8", "\x01")
    p.StartElementHandler = start
    p.EndElementHandler = end
    p.Parse(stream, False)
    return count


if __name__ == "__main__":
    data = make_stream()
    n = stanza_count(data)
    print(f"{n} stanzas, {len(data)} bytes, {(len(data) - len(HEADER)) / n:.0f} bytes a stanza")
