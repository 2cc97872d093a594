# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""The compiled streaming engine: tokens, the stream parser and the encoder.

libexpat is reached through the C API that CPython's ``pyexpat`` exports as
the capsule ``pyexpat.expat_CAPI`` (the route ``_elementtree`` takes), so the
parser's callbacks are C functions: no Python call per token.  While a
top-level element is parsed, its tokens are recorded compactly in one byte
buffer (interned names by index, values as UTF-8 bytes); Python token objects
are made only when the element is read.

The behaviour is specified in ``docs/engine.md``; the pure-Python twin
``xmpp._tokens_py`` behaves identically.  Import through ``xmpp.xmlstream``.
"""

cimport cython
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.buffer cimport PyObject_GetBuffer, PyBuffer_Release, PyBUF_SIMPLE
from cpython.list cimport PyList_GET_ITEM, PyList_GET_SIZE
from cpython.mem cimport PyMem_Malloc, PyMem_Realloc, PyMem_Free
from cpython.pycapsule cimport PyCapsule_Import
from cpython.tuple cimport PyTuple_New, PyTuple_SET_ITEM
from cpython.ref cimport Py_INCREF
from cpython.unicode cimport PyUnicode_DecodeUTF8, PyUnicode_InternFromString
from libc.stdint cimport uint32_t, uint64_t
from libc.string cimport memchr, memcpy, memcmp, strcmp, strlen

from sys import intern as _intern_str

from xmpp._prolog import DECL as _DECL, ns_decl_error, scan_prolog
from xmpp.stream import Condition, StreamError

cdef extern from "Python.h":
    const char* PyUnicode_AsUTF8AndSize(object u, Py_ssize_t* size) except NULL
    object PyUnicode_New(Py_ssize_t size, Py_UCS4 maxchar)
    void* PyUnicode_DATA(object u)

cdef extern from "_expat_capi.h":
    ctypedef void* XML_Parser "XMPP_XML_Parser"
    ctypedef void (*StartElementHandler)(void*, const char*, const char**)
    ctypedef void (*EndElementHandler)(void*, const char*)
    ctypedef void (*CharDataHandler)(void*, const char*, int)
    ctypedef void (*CommentHandler)(void*, const char*)
    ctypedef void (*PIHandler)(void*, const char*, const char*)
    ctypedef void (*NsStartHandler)(void*, const char*, const char*)
    ctypedef void (*NsEndHandler)(void*, const char*)
    ctypedef void (*DoctypeHandler)(void*, const char*, const char*, const char*, int)

    struct xmpp_expat_capi:
        char* magic
        int size
        int MAJOR_VERSION
        int MINOR_VERSION
        int MICRO_VERSION
        const char* (*ErrorString)(int code)
        int (*GetErrorCode)(XML_Parser parser)
        unsigned long (*GetErrorColumnNumber)(XML_Parser parser)
        unsigned long (*GetErrorLineNumber)(XML_Parser parser)
        int (*Parse)(XML_Parser parser, const char* s, int len, int isFinal)
        XML_Parser (*ParserCreate_MM)(const char* encoding, const void* memsuite, const char* sep)
        void (*ParserFree)(XML_Parser parser)
        void (*SetCharacterDataHandler)(XML_Parser parser, CharDataHandler h)
        void (*SetCommentHandler)(XML_Parser parser, CommentHandler h)
        void (*SetElementHandler)(XML_Parser parser, StartElementHandler s, EndElementHandler e)
        void (*SetNamespaceDeclHandler)(XML_Parser parser, NsStartHandler s, NsEndHandler e)
        void (*SetProcessingInstructionHandler)(XML_Parser parser, PIHandler h)
        void (*SetUserData)(XML_Parser parser, void* ud)
        void (*SetStartDoctypeDeclHandler)(XML_Parser parser, DoctypeHandler h)
        unsigned char (*SetReparseDeferralEnabled)(XML_Parser parser, unsigned char enabled)

    bint XMPP_CAPI_HAS_DEFERRAL(xmpp_expat_capi* c)
    size_t XMPP_CAPI_MIN_SIZE


DEFAULT_MAX_STANZA_BYTES = 10 * 1024 * 1024
DEFAULT_MAX_DEPTH = 128

cdef str NS_XML = "http://www.w3.org/XML/1998/namespace"
cdef str NS_XMLNS_PREFIX = "xmlns"
cdef Py_ssize_t SLICE = 64 * 1024
cdef Py_ssize_t NAME_TABLE_LIMIT = 4096
cdef char SEP = b'\x01'

# expat error codes we map specially
cdef enum:
    XML_ERROR_NO_MEMORY = 1
    XML_ERROR_UNDEFINED_ENTITY = 11
    XML_ERROR_MISPLACED_XML_PI = 17

# record opcodes
cdef enum:
    OP_START = 1
    OP_TEXT = 2
    OP_END = 3

cdef xmpp_expat_capi* capi = <xmpp_expat_capi*>PyCapsule_Import(b"pyexpat.expat_CAPI", 0)
if capi == NULL or <size_t>capi.size < XMPP_CAPI_MIN_SIZE or capi.MAJOR_VERSION < 2:
    raise ImportError("pyexpat's C API is missing or too old for the compiled engine")
cdef bint HAS_DEFERRAL = XMPP_CAPI_HAS_DEFERRAL(capi)



# ---------------------------------------------------------------------------
# Tokens


@cython.final
@cython.freelist(256)
@cython.no_gc
cdef class Name:
    """An XML name: a namespace URI (never a prefix) and a local name.

    >>> Name("jabber:client", "body").local
    'body'
    """

    cdef readonly str space
    cdef readonly str local

    def __init__(self, str space not None, str local not None):
        self.space = space
        self.local = local

    def __iter__(self):
        return iter((self.space, self.local))

    def __eq__(self, other):
        if type(other) is not Name:
            return NotImplemented
        cdef Name o = <Name>other
        return self.local == o.local and self.space == o.space

    def __ne__(self, other):
        if type(other) is not Name:
            return NotImplemented
        cdef Name o = <Name>other
        return not (self.local == o.local and self.space == o.space)

    def __hash__(self):
        return hash((self.space, self.local))

    def __repr__(self):
        return f"Name({self.space!r}, {self.local!r})"

    def __reduce__(self):
        return (Name, (self.space, self.local))


@cython.final
@cython.freelist(256)
@cython.no_gc
cdef class Attr:
    """An attribute: its :class:`Name` and its unescaped value."""

    cdef readonly Name name
    cdef readonly str value

    def __init__(self, Name name not None, str value not None):
        self.name = name
        self.value = value

    def __iter__(self):
        return iter((self.name, self.value))

    def __eq__(self, other):
        if type(other) is not Attr:
            return NotImplemented
        cdef Attr o = <Attr>other
        return self.value == o.value and self.name == o.name

    def __ne__(self, other):
        r = self.__eq__(other)
        return r if r is NotImplemented else not r

    def __hash__(self):
        return hash((self.name, self.value))

    def __repr__(self):
        return f"Attr({self.name!r}, {self.value!r})"

    def __reduce__(self):
        return (Attr, (self.name, self.value))


@cython.final
@cython.freelist(256)
@cython.no_gc
cdef class StartElement:
    """The start of an element: its :class:`Name` and a tuple of :class:`Attr`."""

    cdef readonly Name name
    cdef readonly tuple attrs

    def __init__(self, Name name not None, attrs=()):
        cdef tuple t = attrs if type(attrs) is tuple else tuple(attrs)
        for a in t:
            if type(a) is not Attr:
                raise TypeError(f"attrs must hold Attr values, not {type(a).__name__}")
        self.name = name
        self.attrs = t

    def get(self, str local, default=None, str space=""):
        """Return the value of the attribute ``{space}local``, or ``default``."""
        cdef Attr a
        for a in self.attrs:
            if a.name.local == local and a.name.space == space:
                return a.value
        return default

    def stanza_attrs(self):
        """Return ``(to, from, id, type, lang)``: the values of the unqualified
        attributes of those names (``lang``: of ``xml:lang``), each ``None``
        when absent, read in one pass (as :meth:`Element.stanza_attrs`)."""
        cdef Attr a
        cdef Name n
        cdef str local
        cdef object to = None, frm = None, ident = None, typ = None, lang = None
        for a in self.attrs:
            n = a.name
            local = n.local
            if len(n.space) == 0:
                if local == "to":
                    to = a.value
                elif local == "from":
                    frm = a.value
                elif local == "id":
                    ident = a.value
                elif local == "type":
                    typ = a.value
            elif local == "lang" and n.space == NS_XML:
                lang = a.value
        return (to, frm, ident, typ, lang)

    def end(self):
        """Return the :class:`EndElement` that closes this element."""
        return _make_end(self.name)

    def __eq__(self, other):
        if type(other) is not StartElement:
            return NotImplemented
        cdef StartElement o = <StartElement>other
        return self.name == o.name and self.attrs == o.attrs

    def __ne__(self, other):
        r = self.__eq__(other)
        return r if r is NotImplemented else not r

    def __hash__(self):
        return hash((StartElement, self.name, self.attrs))

    def __repr__(self):
        return f"StartElement({self.name!r}, {self.attrs!r})"

    def __reduce__(self):
        return (StartElement, (self.name, self.attrs))


@cython.final
@cython.freelist(64)
@cython.no_gc
cdef class EndElement:
    """The end of an element."""

    cdef readonly Name name

    def __init__(self, Name name not None):
        self.name = name

    def __eq__(self, other):
        if type(other) is not EndElement:
            return NotImplemented
        return self.name == (<EndElement>other).name

    def __ne__(self, other):
        r = self.__eq__(other)
        return r if r is NotImplemented else not r

    def __hash__(self):
        return hash((EndElement, self.name))

    def __repr__(self):
        return f"EndElement({self.name!r})"

    def __reduce__(self):
        return (EndElement, (self.name,))


@cython.final
@cython.freelist(256)
@cython.no_gc
cdef class CharData:
    """Character data: text, already unescaped."""

    cdef readonly str text

    def __init__(self, str text not None):
        self.text = text

    def __eq__(self, other):
        if type(other) is not CharData:
            return NotImplemented
        return self.text == (<CharData>other).text

    def __ne__(self, other):
        r = self.__eq__(other)
        return r if r is NotImplemented else not r

    def __hash__(self):
        return hash((CharData, self.text))

    def __repr__(self):
        return f"CharData({self.text!r})"

    def __reduce__(self):
        return (CharData, (self.text,))


cdef inline EndElement _make_end(Name name):
    cdef EndElement e = EndElement.__new__(EndElement)
    e.name = name
    return e


cdef inline Attr _make_attr(Name name, str value):
    cdef Attr a = Attr.__new__(Attr)
    a.name = name
    a.value = value
    return a


cdef inline StartElement _make_start(Name name, tuple attrs):
    cdef StartElement s = StartElement.__new__(StartElement)
    s.name = name
    s.attrs = attrs
    return s


cdef inline CharData _make_chars(str text):
    cdef CharData c = CharData.__new__(CharData)
    c.text = text
    return c


cdef inline Name _make_name(str space, str local):
    cdef Name n = Name.__new__(Name)
    n.space = space
    n.local = local
    return n


# ---------------------------------------------------------------------------
# A growable byte buffer


cdef struct Buf:
    char* data
    Py_ssize_t len
    Py_ssize_t cap


cdef int buf_reserve(Buf* b, Py_ssize_t extra) except -1:
    cdef Py_ssize_t need = b.len + extra
    cdef Py_ssize_t cap
    cdef char* p
    if need <= b.cap:
        return 0
    cap = b.cap * 2 if b.cap else 256
    while cap < need:
        cap *= 2
    p = <char*>PyMem_Realloc(b.data, cap)
    if p == NULL:
        raise MemoryError()
    b.data = p
    b.cap = cap
    return 0


cdef inline int buf_put(Buf* b, const char* s, Py_ssize_t n) except -1:
    if b.len + n > b.cap:
        buf_reserve(b, n)
    memcpy(b.data + b.len, s, n)
    b.len += n
    return 0


cdef inline int buf_byte(Buf* b, char c) except -1:
    if b.len + 1 > b.cap:
        buf_reserve(b, 1)
    b.data[b.len] = c
    b.len += 1
    return 0


cdef inline int buf_u32(Buf* b, uint32_t v) except -1:
    if b.len + 4 > b.cap:
        buf_reserve(b, 4)
    memcpy(b.data + b.len, &v, 4)
    b.len += 4
    return 0


cdef inline int buf_str(Buf* b, str s) except -1:
    cdef Py_ssize_t n
    cdef const char* p = PyUnicode_AsUTF8AndSize(s, &n)
    return buf_put(b, p, n)


cdef inline uint32_t get_u32(const char* p) noexcept:
    cdef uint32_t v
    memcpy(&v, p, 4)
    return v


cdef inline void set_u32(char* p, uint32_t v) noexcept:
    memcpy(p, &v, 4)


cdef inline void buf_free(Buf* b) noexcept:
    PyMem_Free(b.data)
    b.data = NULL
    b.len = 0
    b.cap = 0


# ---------------------------------------------------------------------------
# Name tables: interned Name objects by index, with cached tokens per name


@cython.final
@cython.no_gc
cdef class _NameTable:
    """Names by index, shared by a parser and the elements it made."""

    cdef list names
    cdef list ends
    cdef list starts
    cdef list attr_cache
    cdef list text_cache

    def __cinit__(self):
        self.names = []
        self.ends = []
        self.starts = []
        # Streams repeat attribute values (types, addresses) and short texts;
        # tokens are immutable, so equal ones are shared from these caches.
        self.attr_cache = [None] * VALUE_CACHE_SLOTS
        self.text_cache = [None] * VALUE_CACHE_SLOTS

    cdef uint32_t add(self, Name n) except? 0xFFFFFFFF:
        self.names.append(n)
        self.ends.append(None)
        self.starts.append(None)
        return <uint32_t>(len(self.names) - 1)

    cdef inline Name name(self, uint32_t i):
        return <Name>PyList_GET_ITEM(self.names, i)

    cdef EndElement end(self, uint32_t i):
        cdef object e = <object>PyList_GET_ITEM(self.ends, i)
        if e is None:
            e = _make_end(self.name(i))
            self.ends[i] = e
        return <EndElement>e

    cdef StartElement bare_start(self, uint32_t i):
        cdef object s = <object>PyList_GET_ITEM(self.starts, i)
        if s is None:
            s = _make_start(self.name(i), ())
            self.starts[i] = s
        return <StartElement>s


cdef Py_ssize_t VALUE_CACHE_SLOTS = 1024
cdef uint32_t VALUE_CACHE_MAX = 64


cdef inline bint _same_utf8(str s, const char* v, uint32_t n):
    cdef Py_ssize_t m
    cdef const char* p = PyUnicode_AsUTF8AndSize(s, &m)
    return m == n and memcmp(p, v, n) == 0


cdef Attr _cached_attr(_NameTable tab, uint32_t idx, const char* v, uint32_t n):
    cdef Name name = tab.name(idx)
    cdef Py_ssize_t slot
    cdef object c
    cdef Attr a
    if n > VALUE_CACHE_MAX:
        return _make_attr(name, _decode(v, n))
    slot = <Py_ssize_t>((name_hash(v, n) ^ (<uint64_t>idx * 0x9E3779B97F4A7C15ULL)) >> 40) & (VALUE_CACHE_SLOTS - 1)
    c = <object>PyList_GET_ITEM(tab.attr_cache, slot)
    if c is not None:
        a = <Attr>c
        if a.name is name and _same_utf8(a.value, v, n):
            return a
    a = _make_attr(name, _decode(v, n))
    tab.attr_cache[slot] = a
    return a


cdef CharData _cached_text(_NameTable tab, const char* v, uint32_t n):
    cdef Py_ssize_t slot
    cdef object c
    cdef CharData t
    if n > VALUE_CACHE_MAX:
        return _make_chars(_decode(v, n))
    slot = <Py_ssize_t>(name_hash(v, n) >> 40) & (VALUE_CACHE_SLOTS - 1)
    c = <object>PyList_GET_ITEM(tab.text_cache, slot)
    if c is not None:
        t = <CharData>c
        if _same_utf8(t.text, v, n):
            return t
    t = _make_chars(_decode(v, n))
    tab.text_cache[slot] = t
    return t


cdef struct HashEntry:
    uint64_t hash
    char* key
    Py_ssize_t keylen
    uint32_t idx
    uint32_t has_sep


cdef inline uint64_t name_hash(const char* s, Py_ssize_t n) noexcept:
    # Names are short and differ at their ends ("jabber:client\x01body"):
    # mixing the first and last eight bytes with the length is enough; a
    # collision only costs a probe, since every hit is verified by memcmp.
    cdef uint64_t a = 0, b = 0, h
    if n >= 8:
        memcpy(&a, s, 8)
        memcpy(&b, s + n - 8, 8)
    else:
        memcpy(&a, s, n)
    h = (a ^ (b * 0x9E3779B97F4A7C15ULL) ^ <uint64_t>n) * 0xFF51AFD7ED558CCDULL
    return h ^ (h >> 32)


# ---------------------------------------------------------------------------
# Elements


cdef inline bint _is_ascii(const char* p, Py_ssize_t n) noexcept:
    cdef uint64_t acc = 0, w
    cdef Py_ssize_t i = 0
    while i + 8 <= n:
        memcpy(&w, p + i, 8)
        acc |= w
        i += 8
    while i < n:
        acc |= <unsigned char>p[i]
        i += 1
    return (acc & 0x8080808080808080ULL) == 0


cdef object _decode(const char* p, Py_ssize_t n):
    # Most names, addresses, ids and texts of a stream are ASCII: copy those
    # straight into a new compact str; anything else goes through the codec.
    cdef object s
    if n <= 256 and _is_ascii(p, n):
        if n == 0:
            return ""
        s = PyUnicode_New(n, 127)
        memcpy(PyUnicode_DATA(s), p, n)
        return s
    return PyUnicode_DecodeUTF8(p, n, NULL)


@cython.final
@cython.freelist(64)
@cython.no_gc
cdef class Element:
    """One complete element, recorded compactly; tokens are made when read.

    Iterating an element yields every token from its :class:`StartElement`
    to its :class:`EndElement` (a new iterator each time), so an element is a
    token reader.  ``bytes(element)`` encodes it standalone.
    """

    cdef bytes rec
    cdef const char* buf
    cdef Py_ssize_t off
    cdef Py_ssize_t stop
    cdef _NameTable tab
    cdef StartElement _start

    def __init__(self, *args, **kwargs):
        raise TypeError("Element objects come from StreamParser.feed or Element.from_tokens")

    @classmethod
    def from_tokens(cls, tokens):
        """Build an element from the tokens of exactly one balanced element.

        ``ValueError`` if the tokens do not start with a ``StartElement``,
        are unbalanced, end tags do not match, or tokens follow the end.
        """
        cdef Buf b
        cdef dict index = {}
        cdef _NameTable tab = _NameTable()
        cdef list stack = []
        cdef Py_ssize_t depth = 0
        cdef Py_ssize_t last_text = -1
        cdef Py_ssize_t at, n
        cdef StartElement s
        cdef Attr a
        cdef const char* p
        cdef bint done = False
        b.data = NULL
        b.len = 0
        b.cap = 0
        try:
            for tok in tokens:
                if done:
                    raise ValueError("tokens follow the end of the element")
                if type(tok) is StartElement:
                    s = <StartElement>tok
                    at = b.len
                    buf_byte(&b, OP_START)
                    buf_u32(&b, _index_of(index, tab, s.name))
                    buf_u32(&b, <uint32_t>len(s.attrs))
                    buf_u32(&b, 0)
                    for a in s.attrs:
                        buf_u32(&b, _index_of(index, tab, a.name))
                        p = PyUnicode_AsUTF8AndSize(a.value, &n)
                        buf_u32(&b, <uint32_t>n)
                        buf_put(&b, p, n)
                    stack.append((at, s.name))
                    depth += 1
                    last_text = -1
                elif type(tok) is EndElement:
                    if not stack:
                        raise ValueError("end element without a start")
                    at, nm = stack.pop()
                    if nm != (<EndElement>tok).name:
                        raise ValueError(f"end element {(<EndElement>tok).name!r} does not match {nm!r}")
                    buf_byte(&b, OP_END)
                    buf_u32(&b, _index_of(index, tab, nm))
                    set_u32(b.data + at + 9, <uint32_t>b.len)
                    depth -= 1
                    last_text = -1
                    if depth == 0:
                        done = True
                elif type(tok) is CharData:
                    if not stack:
                        raise ValueError("character data outside the element")
                    p = PyUnicode_AsUTF8AndSize((<CharData>tok).text, &n)
                    if n == 0:
                        continue
                    _check_xml_chars(p, n)
                    if last_text >= 0:
                        buf_put(&b, p, n)
                        set_u32(b.data + last_text + 1, get_u32(b.data + last_text + 1) + <uint32_t>n)
                    else:
                        last_text = b.len
                        buf_byte(&b, OP_TEXT)
                        buf_u32(&b, <uint32_t>n)
                        buf_put(&b, p, n)
                elif not stack:
                    raise ValueError(f"an element must start with a StartElement, not {tok!r}")
                else:
                    raise TypeError(f"not a token: {tok!r}")
            if not done:
                raise ValueError("the tokens do not make a complete element")
            return _new_element(PyBytes_FromStringAndSize(b.data, b.len), 0, b.len, tab)
        finally:
            buf_free(&b)

    cdef inline uint32_t _name_idx(self) noexcept:
        return get_u32(self.buf + self.off + 1)

    @property
    def name(self):
        """The element's :class:`Name`."""
        return self.tab.name(self._name_idx())

    @property
    def start(self):
        """The element's :class:`StartElement`."""
        if self._start is None:
            self._start = _read_start(self.buf, self.off, self.tab)
        return self._start

    @property
    def attrs(self):
        """The element's attributes, a tuple of :class:`Attr`."""
        if self._start is None:
            self._start = _read_start(self.buf, self.off, self.tab)
        return self._start.attrs

    def get(self, str local, default=None, str space=""):
        """Return the value of the attribute ``{space}local``, or ``default``."""
        cdef const char* p = self.buf + self.off
        cdef uint32_t nattrs = get_u32(p + 5)
        cdef uint32_t i, vlen
        cdef Name n
        p += 13
        for i in range(nattrs):
            n = self.tab.name(get_u32(p))
            vlen = get_u32(p + 4)
            if n.local == local and n.space == space:
                return _decode(p + 8, vlen)
            p += 8 + vlen
        return default

    def stanza_attrs(self):
        """Return ``(to, from, id, type, lang)`` of this element in one pass.

        Each is the value of the unqualified attribute of that name (``lang``:
        of ``xml:lang``), or ``None`` when absent; what a stanza reader needs,
        for the price of one ``get``.
        """
        cdef const char* p = self.buf + self.off
        cdef uint32_t nattrs = get_u32(p + 5)
        cdef uint32_t i, idx, vlen
        cdef _NameTable tab = self.tab
        cdef Name n
        cdef str local
        cdef object to = None, frm = None, ident = None, typ = None, lang = None
        p += 13
        for i in range(nattrs):
            idx = get_u32(p)
            vlen = get_u32(p + 4)
            n = tab.name(idx)
            local = n.local
            if len(n.space) == 0:
                # Addresses and types repeat along a stream: their strings
                # come from the value cache (shared, hashes kept); ids do not.
                if local == "to":
                    to = _cached_attr(tab, idx, p + 8, vlen).value
                elif local == "from":
                    frm = _cached_attr(tab, idx, p + 8, vlen).value
                elif local == "id":
                    ident = _decode(p + 8, vlen)
                elif local == "type":
                    typ = _cached_attr(tab, idx, p + 8, vlen).value
            elif local == "lang" and n.space == NS_XML:
                lang = _cached_attr(tab, idx, p + 8, vlen).value
            p += 8 + vlen
        return (to, frm, ident, typ, lang)

    @property
    def text(self):
        """The element's direct character data, concatenated ("" if none)."""
        cdef const char* b = self.buf
        cdef Py_ssize_t pos = _skip_start(b, self.off)
        cdef Py_ssize_t end = self.stop
        cdef uint32_t n
        cdef list parts = None
        cdef object first = None
        while pos < end:
            op = b[pos]
            if op == OP_TEXT:
                n = get_u32(b + pos + 1)
                s = _decode(b + pos + 5, n)
                if first is None:
                    first = s
                else:
                    if parts is None:
                        parts = [first]
                    parts.append(s)
                pos += 5 + n
            elif op == OP_START:
                pos = get_u32(b + pos + 9)
            else:
                pos += 5
        if parts is not None:
            return "".join(parts)
        return "" if first is None else first

    def children(self):
        """Yield each direct child element as an :class:`Element`."""
        return iter(self._children())

    cdef list _children(self):
        cdef list out = []
        cdef const char* b = self.buf
        cdef Py_ssize_t pos = _skip_start(b, self.off)
        cdef Py_ssize_t end = self.stop
        cdef Py_ssize_t nxt
        while pos < end:
            op = b[pos]
            if op == OP_START:
                nxt = get_u32(b + pos + 9)
                out.append(_new_element(self.rec, pos, nxt, self.tab))
                pos = nxt
            elif op == OP_TEXT:
                pos += 5 + get_u32(b + pos + 1)
            else:
                pos += 5
        return out

    def find(self, str local, space=None):
        """Return the first direct child named ``local`` (in ``space`` unless
        it is None), or None."""
        cdef const char* b = self.buf
        cdef Py_ssize_t pos = _skip_start(b, self.off)
        cdef Py_ssize_t end = self.stop
        cdef Py_ssize_t nxt
        cdef Name n
        while pos < end:
            op = b[pos]
            if op == OP_START:
                nxt = get_u32(b + pos + 9)
                n = self.tab.name(get_u32(b + pos + 1))
                if n.local == local and (space is None or n.space == space):
                    return _new_element(self.rec, pos, nxt, self.tab)
                pos = nxt
            elif op == OP_TEXT:
                pos += 5 + get_u32(b + pos + 1)
            else:
                pos += 5
        return None

    def __iter__(self):
        return iter(_read_tokens(self))

    def encode(self, str ns=""):
        """Encode the element inside a scope whose default namespace is ``ns``."""
        cdef Encoder enc = Encoder(None, ns=ns)
        enc._write_element(self)
        return enc._take()

    def __bytes__(self):
        cdef Encoder enc = Encoder(None, ns="")
        enc._write_element(self)
        return enc._take()

    def __eq__(self, other):
        if type(other) is not Element:
            return NotImplemented
        return _read_tokens(self) == _read_tokens(<Element>other)

    def __ne__(self, other):
        r = self.__eq__(other)
        return r if r is NotImplemented else not r

    __hash__ = None

    def __repr__(self):
        return f"<Element {self.name!r}>"

    def __reduce__(self):
        return (_element_from_tokens, (_read_tokens(self),))


def _element_from_tokens(tokens):
    return Element.from_tokens(tokens)


cdef uint32_t _index_of(dict index, _NameTable tab, Name n) except? 0xFFFFFFFF:
    i = index.get(n)
    if i is None:
        i = tab.add(n)
        index[n] = i
    return <uint32_t>i


cdef inline Element _new_element(bytes rec, Py_ssize_t off, Py_ssize_t stop, _NameTable tab):
    cdef Element el = Element.__new__(Element)
    el.rec = rec
    el.buf = PyBytes_AS_STRING(rec)
    el.off = off
    el.stop = stop
    el.tab = tab
    return el


cdef inline Py_ssize_t _skip_start(const char* b, Py_ssize_t pos) noexcept:
    cdef uint32_t nattrs = get_u32(b + pos + 5)
    cdef uint32_t i
    pos += 13
    for i in range(nattrs):
        pos += 8 + get_u32(b + pos + 4)
    return pos


cdef StartElement _read_start(const char* b, Py_ssize_t pos, _NameTable tab):
    cdef uint32_t idx = get_u32(b + pos + 1)
    cdef uint32_t nattrs = get_u32(b + pos + 5)
    cdef uint32_t i, vlen
    cdef tuple attrs
    cdef Attr a
    if nattrs == 0:
        return tab.bare_start(idx)
    attrs = PyTuple_New(nattrs)
    pos += 13
    for i in range(nattrs):
        vlen = get_u32(b + pos + 4)
        a = _cached_attr(tab, get_u32(b + pos), b + pos + 8, vlen)
        Py_INCREF(a)
        PyTuple_SET_ITEM(attrs, i, a)
        pos += 8 + vlen
    return _make_start(tab.name(idx), attrs)


cdef list _read_tokens(Element el):
    cdef list out = []
    cdef const char* b = el.buf
    cdef Py_ssize_t pos = el.off
    cdef Py_ssize_t end = el.stop
    cdef _NameTable tab = el.tab
    cdef uint32_t n
    cdef char op
    while pos < end:
        op = b[pos]
        if op == OP_START:
            if pos == el.off and el._start is not None:
                out.append(el._start)
            else:
                out.append(_read_start(b, pos, tab))
            pos = _skip_start(b, pos)
        elif op == OP_TEXT:
            n = get_u32(b + pos + 1)
            out.append(_cached_text(tab, b + pos + 5, n))
            pos += 5 + n
        else:
            out.append(tab.end(get_u32(b + pos + 1)))
            pos += 5
    return out


# ---------------------------------------------------------------------------
# The stream parser


cdef void _cb_start(void* ud, const char* name, const char** atts) noexcept:
    cdef StreamParser p = <StreamParser>ud
    if p.failed:
        return
    try:
        p._on_start(name, atts)
    except BaseException as exc:
        p._fail_exc(exc)


cdef void _cb_end(void* ud, const char* name) noexcept:
    cdef StreamParser p = <StreamParser>ud
    if p.failed:
        return
    try:
        p._on_end()
    except BaseException as exc:
        p._fail_exc(exc)


cdef void _cb_chars(void* ud, const char* s, int n) noexcept:
    cdef StreamParser p = <StreamParser>ud
    if p.failed:
        return
    try:
        p._on_chars(s, n)
    except BaseException as exc:
        p._fail_exc(exc)


cdef void _cb_comment(void* ud, const char* data) noexcept:
    cdef StreamParser p = <StreamParser>ud
    if p.failed:
        return
    try:
        p._fail(Condition.RESTRICTED_XML, "comments are not allowed in XMPP")
    except BaseException as exc:
        p._fail_exc(exc)


cdef void _cb_pi(void* ud, const char* target, const char* data) noexcept:
    cdef StreamParser p = <StreamParser>ud
    if p.failed:
        return
    try:
        p._fail(Condition.RESTRICTED_XML, "processing instructions are not allowed in XMPP")
    except BaseException as exc:
        p._fail_exc(exc)


cdef void _cb_doctype(void* ud, const char* name, const char* sysid, const char* pubid, int internal) noexcept:
    cdef StreamParser p = <StreamParser>ud
    if p.failed:
        return
    try:
        p._fail(Condition.RESTRICTED_XML, "a DOCTYPE is not allowed in XMPP")
    except BaseException as exc:
        p._fail_exc(exc)


cdef inline bint _ns_suspect(const char* prefix, const char* uri) noexcept:
    """True when a declaration names a reserved prefix or namespace name (see
    xmpp._prolog.ns_decl_error, which decides); false for nearly all of them."""
    if uri != NULL and (strcmp(uri, b"xmlns") == 0
                        or strcmp(uri, b"http://www.w3.org/2000/xmlns/") == 0
                        or strcmp(uri, b"http://www.w3.org/XML/1998/namespace") == 0):
        return True
    return prefix != NULL and (strcmp(prefix, b"xml") == 0 or strcmp(prefix, b"xmlns") == 0)


cdef void _cb_ns(void* ud, const char* prefix, const char* uri) noexcept:
    cdef StreamParser p = <StreamParser>ud
    if p.failed:
        return
    try:
        if _ns_suspect(prefix, uri):
            msg = ns_decl_error("" if prefix == NULL else prefix.decode("utf-8"),
                                "" if uri == NULL else uri.decode("utf-8"))
            if msg is not None:
                p._fail(Condition.NOT_WELL_FORMED, msg)
                return
        if p.depth == 0:
            # The header's declarations become its attributes (Go's form);
            # below it they only make namespace names.
            p.nsdecls.append((
                "" if prefix == NULL else prefix.decode("utf-8"),
                "" if uri == NULL else uri.decode("utf-8"),
            ))
    except BaseException as exc:
        p._fail_exc(exc)


cdef class StreamParser:
    """Sans-IO incremental parser of one XMPP stream: bytes in, events out.

    ``feed(data)`` returns, in stream order, the stream header
    (:class:`StartElement`), each complete top-level :class:`Element`, and an
    :class:`EndElement` when the peer closes the stream.  ``reset()`` starts
    a new stream on the same connection.  Errors are
    :class:`xmpp.stream.StreamError`; see docs/engine.md for the rules.
    """

    cdef XML_Parser xp
    cdef readonly Py_ssize_t max_stanza_bytes
    cdef readonly Py_ssize_t max_depth
    cdef Py_ssize_t depth
    cdef bint failed
    cdef bint _closed
    cdef bint in_prolog
    cdef bint boundary
    cdef object _error
    cdef object pyexc
    cdef StartElement _header
    cdef bytearray prolog
    cdef bytes tail
    cdef list events
    cdef list nsdecls
    cdef Buf rec
    cdef Py_ssize_t last_text
    cdef Py_ssize_t elem_size
    cdef Py_ssize_t pending
    cdef Py_ssize_t* starts
    cdef _NameTable tab
    cdef HashEntry* htab
    cdef Py_ssize_t hcap
    cdef Py_ssize_t hcount

    def __cinit__(self, *, Py_ssize_t max_stanza_bytes=DEFAULT_MAX_STANZA_BYTES,
                  Py_ssize_t max_depth=DEFAULT_MAX_DEPTH):
        if max_stanza_bytes <= 0:
            raise ValueError("max_stanza_bytes must be positive")
        if max_depth <= 0:
            raise ValueError("max_depth must be positive")
        self.max_stanza_bytes = max_stanza_bytes
        self.max_depth = max_depth
        self.starts = <Py_ssize_t*>PyMem_Malloc((max_depth + 2) * sizeof(Py_ssize_t))
        if self.starts == NULL:
            raise MemoryError()
        self.xp = NULL
        self.htab = NULL
        self.hcap = 0
        self.hcount = 0
        self.rec.data = NULL
        self.rec.len = 0
        self.rec.cap = 0
        self.tab = _NameTable()
        self._hash_init(1024)
        self._new_parser()

    def __dealloc__(self):
        if self.xp != NULL:
            capi.ParserFree(self.xp)
            self.xp = NULL
        self._hash_clear()
        PyMem_Free(self.htab)
        PyMem_Free(self.starts)
        buf_free(&self.rec)

    # -- name interning ------------------------------------------------------

    cdef int _hash_init(self, Py_ssize_t cap) except -1:
        cdef HashEntry* t = <HashEntry*>PyMem_Malloc(cap * sizeof(HashEntry))
        cdef Py_ssize_t i
        if t == NULL:
            raise MemoryError()
        for i in range(cap):
            t[i].key = NULL
        self.htab = t
        self.hcap = cap
        self.hcount = 0
        return 0

    cdef void _hash_clear(self) noexcept:
        cdef Py_ssize_t i
        if self.htab == NULL:
            return
        for i in range(self.hcap):
            if self.htab[i].key != NULL:
                PyMem_Free(self.htab[i].key)
                self.htab[i].key = NULL
        self.hcount = 0

    cdef int _hash_grow(self) except -1:
        cdef HashEntry* old = self.htab
        cdef Py_ssize_t oldcap = self.hcap
        cdef Py_ssize_t i, j, mask
        self._hash_init(oldcap * 2)
        mask = self.hcap - 1
        for i in range(oldcap):
            if old[i].key != NULL:
                j = <Py_ssize_t>(old[i].hash & <uint64_t>mask)
                while self.htab[j].key != NULL:
                    j = (j + 1) & mask
                self.htab[j] = old[i]
                self.hcount += 1
        PyMem_Free(old)
        return 0

    cdef uint32_t _intern(self, const char* s, Py_ssize_t* nbytes) except? 0xFFFFFFFF:
        """Index of the Name for expat's name string ``s`` ("uri\\x01local")."""
        cdef Py_ssize_t n = strlen(s)
        cdef Py_ssize_t sep
        cdef uint64_t h = name_hash(s, n)
        cdef const char* at
        cdef Py_ssize_t mask = self.hcap - 1
        cdef Py_ssize_t j = <Py_ssize_t>(h & <uint64_t>mask)
        cdef HashEntry* e
        cdef char* key
        cdef str space, local
        cdef uint32_t idx
        while True:
            e = &self.htab[j]
            if e.key == NULL:
                break
            if e.hash == h and e.keylen == n and memcmp(e.key, s, n) == 0:
                nbytes[0] = n - e.has_sep
                return e.idx
            j = (j + 1) & mask
        at = <const char*>memchr(s, SEP, n)
        sep = -1 if at == NULL else at - s
        nbytes[0] = n - 1 if sep >= 0 else n
        if sep >= 0:
            space = _decode(s, sep)
            local = _decode(s + sep + 1, n - sep - 1)
        else:
            space = ""
            local = _decode(s, n)
        space = _intern_str(space)
        local = _intern_str(local)
        idx = self.tab.add(_make_name(space, local))
        key = <char*>PyMem_Malloc(n if n else 1)
        if key == NULL:
            raise MemoryError()
        memcpy(key, s, n)
        e.key = key
        e.keylen = n
        e.hash = h
        e.idx = idx
        e.has_sep = 1 if sep >= 0 else 0
        self.hcount += 1
        if self.hcount * 2 > self.hcap:
            self._hash_grow()
        return idx

    cdef void _rotate_names(self):
        # Bound memory against a peer inventing names: elements made so far
        # keep the old table; new ones get a fresh one.
        self._hash_clear()
        self.tab = _NameTable()

    # -- expat lifecycle -----------------------------------------------------

    cdef int _new_parser(self) except -1:
        cdef char sep[2]
        sep[0] = SEP
        sep[1] = 0
        if self.xp != NULL:
            capi.ParserFree(self.xp)
            self.xp = NULL
        self.xp = capi.ParserCreate_MM(b"UTF-8", NULL, sep)
        if self.xp == NULL:
            raise MemoryError("libexpat could not create a parser")
        capi.SetUserData(self.xp, <void*>self)
        capi.SetElementHandler(self.xp, _cb_start, _cb_end)
        capi.SetCharacterDataHandler(self.xp, _cb_chars)
        capi.SetCommentHandler(self.xp, _cb_comment)
        capi.SetProcessingInstructionHandler(self.xp, _cb_pi)
        capi.SetStartDoctypeDeclHandler(self.xp, _cb_doctype)
        capi.SetNamespaceDeclHandler(self.xp, _cb_ns, NULL)
        if HAS_DEFERRAL:
            capi.SetReparseDeferralEnabled(self.xp, 0)
        self.depth = 0
        self.failed = False
        self._closed = False
        self.in_prolog = True
        self._error = None
        self.pyexc = None
        self._header = None
        self.prolog = bytearray()
        self.tail = b""
        self.nsdecls = []
        self.rec.len = 0
        self.last_text = -1
        self.elem_size = 0
        self.pending = 0
        return 0

    def reset(self):
        """Start a new stream on the same connection (after STARTTLS or SASL)."""
        self._new_parser()

    @property
    def header(self):
        """The current stream's header (a :class:`StartElement`), or None."""
        return self._header

    @property
    def closed(self):
        """True once the peer closed the stream."""
        return self._closed

    @property
    def error(self):
        """The :class:`~xmpp.stream.StreamError` that stopped the parser, or None."""
        return self._error

    # -- failures ------------------------------------------------------------

    cdef void _fail(self, cond, str text):
        if not self.failed:
            self.failed = True
            self._error = StreamError(cond, text)

    cdef void _fail_exc(self, exc):
        if not self.failed:
            self.failed = True
            if isinstance(exc, StreamError):
                self._error = exc
            else:
                self.pyexc = exc
                self._error = StreamError(Condition.INTERNAL_SERVER_ERROR, repr(exc))

    cdef void _fail_expat(self, const char* data, Py_ssize_t n):
        cdef int code = capi.GetErrorCode(self.xp)
        msg = "%s at line %d, column %d" % (
            capi.ErrorString(code).decode("utf-8", "replace"),
            capi.GetErrorLineNumber(self.xp),
            capi.GetErrorColumnNumber(self.xp),
        )
        if code == XML_ERROR_UNDEFINED_ENTITY or code == XML_ERROR_MISPLACED_XML_PI:
            self._fail(Condition.RESTRICTED_XML, msg)
        elif code == XML_ERROR_NO_MEMORY:
            self._fail(Condition.RESOURCE_CONSTRAINT, msg)
        else:
            chunk = self.tail + data[:n]
            if _DECL.search(chunk) is not None:
                self._fail(Condition.RESTRICTED_XML, "markup declarations are not allowed in XMPP (" + msg + ")")
            else:
                self._fail(Condition.NOT_WELL_FORMED, msg)

    # -- callbacks -----------------------------------------------------------

    cdef int _on_start(self, const char* name, const char** atts) except -1:
        cdef Py_ssize_t d = self.depth
        cdef Py_ssize_t nb, i, nattrs, vlen, size
        cdef uint32_t idx
        cdef Buf* r
        if d == 0:
            self._on_header(name, atts)
            return 0
        if d >= self.max_depth + 1:
            self._fail(Condition.POLICY_VIOLATION, f"elements nested deeper than {self.max_depth}")
            return 0
        if d == 1:
            self.boundary = True
            self.rec.len = 0
            self.elem_size = 0
            if PyList_GET_SIZE(self.tab.names) > NAME_TABLE_LIMIT:
                self._rotate_names()
        r = &self.rec
        idx = self._intern(name, &nb)
        size = self.elem_size + nb
        nattrs = 0
        while atts[nattrs * 2] != NULL:
            nattrs += 1
        self.starts[d] = r.len
        buf_reserve(r, 13)
        r.data[r.len] = OP_START
        set_u32(r.data + r.len + 1, idx)
        set_u32(r.data + r.len + 5, <uint32_t>nattrs)
        set_u32(r.data + r.len + 9, 0)
        r.len += 13
        for i in range(nattrs):
            idx = self._intern(atts[2 * i], &nb)
            vlen = strlen(atts[2 * i + 1])
            size += nb + vlen
            buf_reserve(r, 8 + vlen)
            set_u32(r.data + r.len, idx)
            set_u32(r.data + r.len + 4, <uint32_t>vlen)
            memcpy(r.data + r.len + 8, atts[2 * i + 1], vlen)
            r.len += 8 + vlen
        self.elem_size = size
        self.depth = d + 1
        self.last_text = -1
        if size > self.max_stanza_bytes:
            self._fail(Condition.POLICY_VIOLATION, f"element larger than {self.max_stanza_bytes} bytes")
        return 0

    cdef int _on_header(self, const char* name, const char** atts) except -1:
        cdef Py_ssize_t nb, i = 0
        cdef list attrs = []
        for prefix, uri in self.nsdecls:
            if prefix:
                attrs.append(_make_attr(self.tab.name(self._intern_py(NS_XMLNS_PREFIX, prefix)), uri))
            else:
                attrs.append(_make_attr(self.tab.name(self._intern_py("", NS_XMLNS_PREFIX)), uri))
        self.nsdecls = []
        while atts[i] != NULL:
            attrs.append(_make_attr(self.tab.name(self._intern(atts[i], &nb)), atts[i + 1].decode("utf-8")))
            i += 2
        self._header = _make_start(self.tab.name(self._intern(name, &nb)), tuple(attrs))
        self.depth = 1
        self.boundary = True
        self.events.append(self._header)
        return 0

    cdef uint32_t _intern_py(self, str space, str local) except? 0xFFFFFFFF:
        cdef Py_ssize_t nb
        cdef bytes key
        if space:
            key = space.encode("utf-8") + b"\x01" + local.encode("utf-8")
        else:
            key = local.encode("utf-8")
        return self._intern(key, &nb)

    cdef int _on_end(self) except -1:
        cdef Py_ssize_t d = self.depth - 1
        cdef Py_ssize_t at
        cdef Buf* r = &self.rec
        cdef Element el
        self.depth = d
        if d == 0:
            self._closed = True
            self.events.append(_make_end(self._header.name))
            return 0
        at = self.starts[d]
        buf_reserve(r, 5)
        r.data[r.len] = OP_END
        memcpy(r.data + r.len + 1, r.data + at + 1, 4)
        r.len += 5
        set_u32(r.data + at + 9, <uint32_t>r.len)
        self.last_text = -1
        if d == 1:
            el = _new_element(PyBytes_FromStringAndSize(r.data, r.len), 0, r.len, self.tab)
            r.len = 0
            self.events.append(el)
            self.boundary = True
        return 0

    cdef int _on_chars(self, const char* s, int n) except -1:
        cdef Buf* r = &self.rec
        cdef Py_ssize_t i
        cdef char c
        if self.depth <= 1:
            self.boundary = True
            for i in range(n):
                c = s[i]
                if c != b' ' and c != b'\t' and c != b'\n' and c != b'\r':
                    self._fail(Condition.BAD_FORMAT, "text between top-level elements")
                    return 0
            return 0
        if self.last_text >= 0:
            buf_put(r, s, n)
            set_u32(r.data + self.last_text + 1, get_u32(r.data + self.last_text + 1) + <uint32_t>n)
        else:
            self.last_text = r.len
            buf_reserve(r, 5 + n)
            r.data[r.len] = OP_TEXT
            set_u32(r.data + r.len + 1, <uint32_t>n)
            memcpy(r.data + r.len + 5, s, n)
            r.len += 5 + n
        self.elem_size += n
        if self.elem_size > self.max_stanza_bytes:
            self._fail(Condition.POLICY_VIOLATION, f"element larger than {self.max_stanza_bytes} bytes")
        return 0

    # -- feeding -------------------------------------------------------------

    def feed(self, data):
        """Parse the next bytes of the stream; return the events they complete.

        Raises :class:`~xmpp.stream.StreamError`; its ``events`` attribute
        holds the events completed earlier in the same call.
        """
        cdef Py_buffer view
        cdef const char* p
        cdef Py_ssize_t n, off, sl
        cdef int status
        cdef object keep = None
        cdef list events
        if self.failed:
            raise StreamError(self._error.condition, self._error.text)
        if type(data) is bytes:
            p = PyBytes_AS_STRING(data)
            n = PyBytes_GET_SIZE(data)
            keep = data
        else:
            PyObject_GetBuffer(data, &view, PyBUF_SIMPLE)
            try:
                keep = PyBytes_FromStringAndSize(<char*>view.buf, view.len)
            finally:
                PyBuffer_Release(&view)
            p = PyBytes_AS_STRING(keep)
            n = PyBytes_GET_SIZE(keep)
        self.events = []
        if self.in_prolog:
            self.prolog += keep[:n]
            try:
                if scan_prolog(bytes(self.prolog)) < 0:
                    self.events = None
                    return []
            except StreamError as exc:
                self.failed = True
                self._error = exc
                self.events = None
                raise StreamError(exc.condition, exc.text)
            keep = bytes(self.prolog)
            self.prolog = None
            self.in_prolog = False
            p = PyBytes_AS_STRING(keep)
            n = PyBytes_GET_SIZE(keep)
        off = 0
        while off < n:
            sl = n - off
            if sl > SLICE:
                sl = SLICE
            self.boundary = False
            status = capi.Parse(self.xp, p + off, <int>sl, 0)
            if status == 0 and not self.failed:
                self._fail_expat(p + off, sl)
            if self.failed:
                break
            if self.boundary:
                self.pending = 0
            else:
                self.pending += sl
                if self.pending > self.max_stanza_bytes:
                    self._fail(Condition.POLICY_VIOLATION,
                               f"more than {self.max_stanza_bytes} bytes without completing an element")
                    break
            off += sl
        if n >= 8:
            self.tail = p[n - 8:n]
        elif n:
            joined = self.tail + p[:n]
            self.tail = joined[len(joined) - 8:] if len(joined) > 8 else joined
        events = self.events
        self.events = None
        if self.failed:
            if self.pyexc is not None:
                exc = self.pyexc
                self.pyexc = None
                raise exc
            err = StreamError(self._error.condition, self._error.text)
            err.events = events
            raise err
        return events


# ---------------------------------------------------------------------------
# The encoder

# byte classes: 0 plain, 1 escape, 2 illegal, 3 first byte of U+FFFE/U+FFFF
cdef unsigned char TEXT_CLASS[256]
cdef unsigned char ATTR_CLASS[256]


cdef void _init_classes():
    cdef int i
    for i in range(256):
        TEXT_CLASS[i] = 0
        ATTR_CLASS[i] = 0
    for i in range(32):
        TEXT_CLASS[i] = 2
        ATTR_CLASS[i] = 2
    TEXT_CLASS[9] = 0
    TEXT_CLASS[10] = 0
    TEXT_CLASS[13] = 1
    ATTR_CLASS[9] = 1
    ATTR_CLASS[10] = 1
    ATTR_CLASS[13] = 1
    for i in (ord('&'), ord('<'), ord('>')):
        TEXT_CLASS[i] = 1
        ATTR_CLASS[i] = 1
    ATTR_CLASS[ord('"')] = 1
    TEXT_CLASS[0xEF] = 3
    ATTR_CLASS[0xEF] = 3


_init_classes()


cdef int _illegal(const unsigned char* s, Py_ssize_t i, Py_ssize_t n) except -1:
    cdef unsigned int cp
    if s[i] < 0x80:
        cp = s[i]
    else:
        cp = 0xFFFE if s[i + 2] == 0xBE else 0xFFFF
    raise ValueError(f"character U+{cp:04X} is not allowed in XML")


cdef int _check_xml_chars(const char* p, Py_ssize_t n) except -1:
    cdef const unsigned char* s = <const unsigned char*>p
    cdef Py_ssize_t i
    cdef unsigned char k
    for i in range(n):
        k = TEXT_CLASS[s[i]]
        if k == 2:
            _illegal(s, i, n)
        elif k == 3 and i + 2 < n and s[i + 1] == 0xBF and (s[i + 2] == 0xBE or s[i + 2] == 0xBF):
            _illegal(s, i, n)
    return 0


cdef int _put_escaped(Buf* b, const char* p, Py_ssize_t n, const unsigned char* cls) except -1:
    cdef const unsigned char* s = <const unsigned char*>p
    cdef Py_ssize_t i = 0, run = 0
    cdef unsigned char c, k
    while i < n:
        c = s[i]
        k = cls[c]
        if k == 0:
            i += 1
            continue
        if k == 3:
            if i + 2 < n and s[i + 1] == 0xBF and (s[i + 2] == 0xBE or s[i + 2] == 0xBF):
                _illegal(s, i, n)
            i += 1
            continue
        if k == 2:
            _illegal(s, i, n)
        if i > run:
            buf_put(b, p + run, i - run)
        if c == b'&':
            buf_put(b, "&amp;", 5)
        elif c == b'<':
            buf_put(b, "&lt;", 4)
        elif c == b'>':
            buf_put(b, "&gt;", 4)
        elif c == b'"':
            buf_put(b, "&quot;", 6)
        elif c == 13:
            buf_put(b, "&#13;", 5)
        elif c == 10:
            buf_put(b, "&#10;", 5)
        elif c == 9:
            buf_put(b, "&#9;", 4)
        i += 1
        run = i
    if n > run:
        buf_put(b, p + run, n - run)
    return 0


cdef inline int _put_text_str(Buf* b, str s) except -1:
    cdef Py_ssize_t n
    cdef const char* p = PyUnicode_AsUTF8AndSize(s, &n)
    return _put_escaped(b, p, n, TEXT_CLASS)


cdef inline int _put_attr_str(Buf* b, str s) except -1:
    cdef Py_ssize_t n
    cdef const char* p = PyUnicode_AsUTF8AndSize(s, &n)
    return _put_escaped(b, p, n, ATTR_CLASS)


@cython.final
cdef class _Scope:
    cdef str qname      # the name as written, for the end tag
    cdef Name name
    cdef str default    # default namespace for the children
    cdef dict prefixes  # uri -> prefix in scope (shared until changed)


cdef class Encoder:
    """A TokenWriter that turns tokens into UTF-8 bytes.

    ``write_token`` buffers; ``flush`` hands what is buffered to ``write``
    (when given) and returns it.  ``ns`` is the default namespace in scope
    before the first token.

    >>> enc = Encoder(ns="jabber:client")
    >>> n = Name("jabber:client", "message")
    >>> enc.write_token(StartElement(n, [Attr(Name("", "to"), "a@b")]))
    >>> enc.write_token(EndElement(n))
    >>> enc.flush()
    b'<message to="a@b"/>'
    """

    cdef Buf out
    cdef object write
    cdef list stack
    cdef str ns
    cdef bint pending
    cdef dict prefixes0

    def __cinit__(self, write=None, *, str ns not None=""):
        self.out.data = NULL
        self.out.len = 0
        self.out.cap = 0
        self.write = write
        self.stack = []
        self.ns = ns
        self.pending = False
        self.prefixes0 = {}

    def __dealloc__(self):
        buf_free(&self.out)

    cdef inline int _close_pending(self) except -1:
        if self.pending:
            buf_byte(&self.out, b'>')
            self.pending = False
        return 0

    cdef inline str _default(self):
        if PyList_GET_SIZE(self.stack):
            return (<_Scope>PyList_GET_ITEM(self.stack, PyList_GET_SIZE(self.stack) - 1)).default
        return self.ns

    cdef inline dict _prefixes(self):
        if PyList_GET_SIZE(self.stack):
            return (<_Scope>PyList_GET_ITEM(self.stack, PyList_GET_SIZE(self.stack) - 1)).prefixes
        return self.prefixes0

    cdef int _open_simple(self, Name name) except -1:
        """Write ``<qname`` (+ xmlns if needed) for an element whose
        attributes carry no namespace declarations."""
        cdef Buf* b = &self.out
        cdef str default = self._default()
        cdef dict prefixes = self._prefixes()
        cdef _Scope sc = _Scope.__new__(_Scope)
        cdef object prefix
        if not name.local:
            raise ValueError("an element needs a local name")
        self._close_pending()
        buf_byte(b, b'<')
        sc.name = name
        sc.prefixes = prefixes
        if name.space == default:
            sc.qname = name.local
            sc.default = default
            buf_str(b, name.local)
        else:
            if name.space is NS_XML or name.space == NS_XML:
                prefix = "xml"  # bound in every document; it may not be the default
            else:
                prefix = prefixes.get(name.space) if name.space else None
            if prefix is not None:
                sc.qname = f"{prefix}:{name.local}"
                sc.default = default
                buf_str(b, sc.qname)
            else:
                sc.qname = name.local
                sc.default = name.space
                buf_str(b, name.local)
                buf_put(b, ' xmlns="', 8)
                _put_attr_str(b, name.space)
                buf_byte(b, b'"')
        self.stack.append(sc)
        self.pending = True
        return 0

    cdef int _put_attr(self, Name an, const char* v, Py_ssize_t vlen) except -1:
        """Write one ordinary attribute (space "" or the xml namespace)."""
        cdef Buf* b = &self.out
        if not an.local:
            raise ValueError("an attribute needs a local name")
        buf_byte(b, b' ')
        if an.space:
            buf_put(b, "xml:", 4)
        buf_str(b, an.local)
        buf_put(b, '="', 2)
        _put_escaped(b, v, vlen, ATTR_CLASS)
        buf_byte(b, b'"')
        return 0

    cdef int _start(self, StartElement s) except -1:
        cdef Attr a
        cdef Py_ssize_t n
        cdef const char* v
        for a in s.attrs:
            if a.name.space and a.name.space is not NS_XML and a.name.space != NS_XML:
                return self._start_general(s)
            if not a.name.space and a.name.local == "xmlns":
                return self._start_general(s)
        self._open_simple(s.name)
        for a in s.attrs:
            v = PyUnicode_AsUTF8AndSize(a.value, &n)
            self._put_attr(a.name, v, n)
        return 0

    cdef int _start_general(self, StartElement s) except -1:
        """Elements with namespace declarations or namespaced attributes."""
        cdef Buf* b = &self.out
        cdef str default = self._default()
        cdef dict prefixes = self._prefixes()
        cdef dict own = None
        cdef object explicit_default = None
        cdef _Scope sc = _Scope.__new__(_Scope)
        cdef Attr a
        cdef list decls = []
        cdef list extra = []
        cdef int counter = 0
        cdef Name name = s.name
        cdef object prefix
        if not name.local:
            raise ValueError("an element needs a local name")
        for a in s.attrs:
            if a.name.space == NS_XMLNS_PREFIX:
                if own is None:
                    own = dict(prefixes)
                for k in [k for k, v in own.items() if v == a.name.local]:
                    del own[k]
                own[a.value] = a.name.local
                decls.append(a)
            elif not a.name.space and a.name.local == "xmlns":
                explicit_default = a.value
        if own is not None:
            prefixes = own
        self._close_pending()
        buf_byte(b, b'<')
        sc.name = name
        if name.space == NS_XML:
            prefix = "xml"  # bound in every document; it may not be the default
        else:
            prefix = prefixes.get(name.space) if name.space else None
        if name.space == default and not (explicit_default is not None and explicit_default != default
                                          and prefix is not None):
            sc.qname = name.local
            sc.default = default
            buf_str(b, name.local)
        elif prefix is not None:
            sc.qname = f"{prefix}:{name.local}"
            sc.default = explicit_default if explicit_default is not None else default
            buf_str(b, sc.qname)
            if explicit_default is not None:
                buf_put(b, ' xmlns="', 8)
                _put_attr_str(b, explicit_default)
                buf_byte(b, b'"')
        else:
            sc.qname = name.local
            sc.default = name.space
            buf_str(b, name.local)
            buf_put(b, ' xmlns="', 8)
            _put_attr_str(b, name.space)
            buf_byte(b, b'"')
        for a in decls:
            buf_put(b, " xmlns:", 7)
            buf_str(b, a.name.local)
            buf_put(b, '="', 2)
            _put_attr_str(b, a.value)
            buf_byte(b, b'"')
        for a in s.attrs:
            if a.name.space == NS_XMLNS_PREFIX or (not a.name.space and a.name.local == "xmlns"):
                continue
            if not a.name.local:
                raise ValueError("an attribute needs a local name")
            buf_byte(b, b' ')
            if not a.name.space:
                buf_str(b, a.name.local)
            elif a.name.space == NS_XML:
                buf_put(b, "xml:", 4)
                buf_str(b, a.name.local)
            else:
                prefix = prefixes.get(a.name.space)
                if prefix is None:
                    if own is None:
                        own = dict(prefixes)
                        prefixes = own
                    while True:
                        counter += 1
                        prefix = f"ns{counter}"
                        if prefix not in prefixes.values():
                            break
                    own[a.name.space] = prefix
                    extra.append((prefix, a.name.space))
                buf_str(b, prefix)
                buf_byte(b, b':')
                buf_str(b, a.name.local)
            buf_put(b, '="', 2)
            _put_attr_str(b, a.value)
            buf_byte(b, b'"')
        for prefix, uri in extra:
            buf_put(b, " xmlns:", 7)
            buf_str(b, prefix)
            buf_put(b, '="', 2)
            _put_attr_str(b, uri)
            buf_byte(b, b'"')
        sc.prefixes = prefixes
        self.stack.append(sc)
        self.pending = True
        return 0

    cdef int _end(self, Name name) except -1:
        cdef _Scope sc
        if not PyList_GET_SIZE(self.stack):
            raise ValueError(f"end element {name!r} without a matching start")
        sc = <_Scope>PyList_GET_ITEM(self.stack, PyList_GET_SIZE(self.stack) - 1)
        if sc.name is not name and sc.name != name:
            raise ValueError(f"end element {name!r} does not match the open {sc.name!r}")
        self.stack.pop()
        if self.pending:
            buf_put(&self.out, "/>", 2)
            self.pending = False
        else:
            buf_put(&self.out, "</", 2)
            buf_str(&self.out, sc.qname)
            buf_byte(&self.out, b'>')
        return 0

    cdef int _text(self, const char* p, Py_ssize_t n) except -1:
        if n == 0:
            return 0
        self._close_pending()
        return _put_escaped(&self.out, p, n, TEXT_CLASS)

    cpdef write_token(self, tok):
        """Encode one token into the buffer."""
        cdef Py_ssize_t n
        cdef const char* p
        t = type(tok)
        if t is StartElement:
            self._start(<StartElement>tok)
        elif t is CharData:
            p = PyUnicode_AsUTF8AndSize((<CharData>tok).text, &n)
            self._text(p, n)
        elif t is EndElement:
            self._end((<EndElement>tok).name)
        else:
            raise TypeError(f"not a token: {tok!r}")

    cdef int _write_element(self, Element el) except -1:
        """Encode a recorded element straight from its record."""
        cdef const char* b = el.buf
        cdef Py_ssize_t pos = el.off
        cdef Py_ssize_t end = el.stop
        cdef Py_ssize_t apos
        cdef _NameTable tab = el.tab
        cdef uint32_t nattrs, i, n
        cdef Name an
        cdef bint simple
        cdef char op
        while pos < end:
            op = b[pos]
            if op == OP_START:
                nattrs = get_u32(b + pos + 5)
                simple = True
                apos = pos + 13
                for i in range(nattrs):
                    an = tab.name(get_u32(b + apos))
                    if an.space and an.space != NS_XML or (not an.space and an.local == "xmlns"):
                        simple = False
                        break
                    apos += 8 + get_u32(b + apos + 4)
                if simple:
                    self._open_simple(tab.name(get_u32(b + pos + 1)))
                    apos = pos + 13
                    for i in range(nattrs):
                        n = get_u32(b + apos + 4)
                        self._put_attr(tab.name(get_u32(b + apos)), b + apos + 8, n)
                        apos += 8 + n
                    pos = apos
                else:
                    self._start(_read_start(b, pos, tab))
                    pos = _skip_start(b, pos)
            elif op == OP_TEXT:
                n = get_u32(b + pos + 1)
                self._text(b + pos + 5, n)
                pos += 5 + n
            else:
                self._end(tab.name(get_u32(b + pos + 1)))
                pos += 5
        return 0

    def encode(self, tokens):
        """Encode every token of ``tokens`` (an :class:`Element` included)."""
        if type(tokens) is Element:
            self._write_element(<Element>tokens)
            return
        for tok in tokens:
            self.write_token(tok)

    cdef bytes _take(self):
        cdef bytes data
        self._close_pending()
        data = PyBytes_FromStringAndSize(self.out.data, self.out.len)
        self.out.len = 0
        return data

    def flush(self):
        """Hand everything buffered to ``write`` (if given) and return it.

        A start tag still open is closed with ``>`` first (so a stream
        header can be sent before its children exist).
        """
        cdef bytes data = self._take()
        if self.write is not None and data:
            self.write(data)
        return data


# ---------------------------------------------------------------------------
# The IQ correlation table


cdef inline bint _is_stanza_space(str space):
    return (space == "jabber:client" or space == "jabber:server"
            or space == "jabber:component:accept")


cdef inline bint _utf8_is(const char* p, uint32_t n, const char* lit, uint32_t m) noexcept:
    return n == m and memcmp(p, lit, m) == 0


@cython.final
cdef class IQTable:
    """Pending IQ requests keyed by id; sans-IO: it stores opaque waiter objects.

    A session adds an entry when it sends an IQ ``get`` or ``set`` and calls
    :meth:`match` on every top-level element it receives.  An element is the
    reply only when it is an ``iq`` in a stanza namespace, of type ``result``
    or ``error``, with a pending id, from one of the addresses accepted for
    that id: never on the id alone (CVE-2024-46957 in mellium.im/xmpp).

    >>> t = IQTable()
    >>> t.add("q1", frozenset({"", "example.com"}), "waiter")
    >>> iq = Name("jabber:client", "iq")
    >>> t.match(StartElement(iq, [Attr(Name("", "type"), "result"), Attr(Name("", "id"), "q1")]))
    'waiter'
    >>> len(t)
    0
    """

    cdef dict pending   # id -> (frozenset of accepted "from" values, waiter)

    def __cinit__(self):
        self.pending = {}

    def add(self, id, accept_from, waiter):
        """Remember ``waiter`` for the reply to the IQ with this ``id``.

        ``accept_from`` holds every ``from`` value a reply may carry (``""``
        for a reply without one).  ``ValueError`` if ``id`` is empty or
        already pending; ``TypeError`` if ``id`` is not a ``str`` or
        ``accept_from`` is a string rather than a set of strings.
        """
        if not isinstance(id, str):
            raise TypeError("an IQ id must be a str")
        if not id:
            raise ValueError("an IQ id must not be empty")
        if isinstance(accept_from, (str, bytes)):
            raise TypeError("accept_from must be a set of addresses, not a string")
        if id in self.pending:
            raise ValueError(f"an IQ with id {id!r} is already pending")
        allowed = accept_from if type(accept_from) is frozenset else frozenset(accept_from)
        self.pending[id] = (allowed, waiter)

    def match(self, element):
        """Return and remove the waiter ``element`` answers, else None.

        ``element`` is an :class:`Element` or a :class:`StartElement` (an
        ``EndElement`` or ``CharData`` never matches; any other object is a
        ``TypeError``).  An element that does not match leaves the table as
        it was.
        """
        cdef Element el
        cdef StartElement s
        cdef Name n
        cdef const char* p
        cdef const char* idp = NULL
        cdef const char* fromp = NULL
        cdef uint32_t nattrs, i, vlen, idlen = 0, fromlen = 0
        cdef bint typed = False, seen_type = False
        cdef object entry
        t = type(element)
        if t is Element:
            el = <Element>element
            n = el.tab.name(el._name_idx())
            if not self.pending or n.local != "iq" or not _is_stanza_space(n.space):
                return None
            # one pass over the record: the first type, id and from attributes
            p = el.buf + el.off
            nattrs = get_u32(p + 5)
            p += 13
            for i in range(nattrs):
                n = el.tab.name(get_u32(p))
                vlen = get_u32(p + 4)
                if not n.space:
                    if not seen_type and n.local == "type":
                        seen_type = True
                        typed = (_utf8_is(p + 8, vlen, "result", 6)
                                 or _utf8_is(p + 8, vlen, "error", 5))
                        if not typed:
                            return None
                    elif idp == NULL and n.local == "id":
                        idp = p + 8
                        idlen = vlen
                    elif fromp == NULL and n.local == "from":
                        fromp = p + 8
                        fromlen = vlen
                p += 8 + vlen
            if not typed or idp == NULL:
                return None
            id = _decode(idp, idlen)
            entry = self.pending.get(id)
            if entry is None:
                return None
            frm = "" if fromp == NULL else _decode(fromp, fromlen)
        elif t is StartElement:
            s = <StartElement>element
            if not self.pending or s.name.local != "iq" or not _is_stanza_space(s.name.space):
                return None
            typ = s.get("type")
            if typ != "result" and typ != "error":
                return None
            id = s.get("id")
            if id is None:
                return None
            entry = self.pending.get(id)
            if entry is None:
                return None
            frm = s.get("from", "")
        elif t is EndElement or t is CharData:
            return None
        else:
            raise TypeError(f"not an element: {element!r}")
        if frm not in (<tuple>entry)[0]:
            return None
        del self.pending[id]
        return (<tuple>entry)[1]

    def pop(self, id):
        """Remove the entry for ``id`` (on a timeout, say); return its waiter or None."""
        if not isinstance(id, str):
            return None
        entry = self.pending.pop(id, None)
        return None if entry is None else (<tuple>entry)[1]

    def drain(self):
        """Remove every entry and return the waiters in the order they were added."""
        cdef list out = [(<tuple>entry)[1] for entry in self.pending.values()]
        self.pending.clear()
        return out

    def __len__(self):
        return len(self.pending)

    def __contains__(self, id):
        return isinstance(id, str) and id in self.pending

    def __repr__(self):
        return f"<IQTable pending={len(self.pending)}>"
