"""Benchmarks of address parsing: xmpp.jid beside slixmpp's JID.

Run with ``pytest benchmarks/test_bench_jid.py``.  Three groups:

* ``cached``: the same address parsed again and again, as on a stream where
  a few peers talk a lot;
* ``uncached-ascii`` and ``uncached-non-ascii``: a batch of
  ``BATCH`` distinct addresses, parsed once each from empty caches (the
  figure is for the whole batch).

slixmpp's ``JID`` is its compiled (Rust) one where that is installed, which
keeps no cache, so its cached and uncached figures measure the same work.
Its pure-Python ``slixmpp/jid.py``, where present, is loaded on its own and
measured too; it caches with ``functools.lru_cache`` (cleared for the
uncached groups).
"""

from __future__ import annotations

import importlib.util
import os
import types
from typing import Any, Callable

import pytest

from xmpp import jid as jidmod
from xmpp.jid import JID

BATCH = 200
ASCII = "juliet@example.com/balcony"
ASCII_BATCH = [f"juliet{i}@example{i}.com/balcony{i}" for i in range(BATCH)]
NON_ASCII = "Juli\u00ebtte@B\u00fccher.example/Balc\u00f3n"
NON_ASCII_BATCH = [
    f"juli\u00ebtte{i}@b\u00fccher{i}.example/balc\u00f3n{i}" for i in range(BATCH)
]


def _slixmpp_compiled() -> Any:
    try:
        from slixmpp.jid import JID as SlixJID
    except ImportError:
        return None
    return SlixJID


def _slixmpp_pure() -> types.ModuleType | None:
    try:
        import slixmpp
    except ImportError:
        return None
    path = os.path.join(os.path.dirname(slixmpp.__file__), "jid.py")
    spec = importlib.util.spec_from_file_location("_slixmpp_jid_pure", path)
    if spec is None or spec.loader is None:
        return None
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except Exception:
        return None
    return module


SLIX = _slixmpp_compiled()
SLIX_PURE = _slixmpp_pure()


def _ours_cold(batch: list[str]) -> Callable[[], None]:
    def run() -> None:
        jidmod._cache_clear()
        for s in batch:
            JID.parse(s)

    return run


def _slix_cold(batch: list[str]) -> Callable[[], None]:
    parse = SLIX

    def run() -> None:
        for s in batch:
            parse(s)

    return run


def _slix_pure_cold(batch: list[str]) -> Callable[[], None]:
    assert SLIX_PURE is not None
    module = SLIX_PURE

    def run() -> None:
        module._parse_jid.cache_clear()
        for s in batch:
            module.JID(s)

    return run


need_slix = pytest.mark.skipif(SLIX is None, reason="slixmpp is not importable")
need_slix_pure = pytest.mark.skipif(
    SLIX_PURE is None, reason="slixmpp's pure jid.py is not loadable"
)


def test_results_agree() -> None:
    """The libraries read the benchmark addresses alike (a sanity check)."""
    for s in [ASCII, NON_ASCII, *ASCII_BATCH[:3], *NON_ASCII_BATCH[:3]]:
        ours = JID.parse(s)
        if SLIX is not None:
            assert str(SLIX(s)) == str(ours)
        if SLIX_PURE is not None:
            assert str(SLIX_PURE.JID(s)).lower() == str(ours).lower()


# --- cached ---------------------------------------------------------------


@pytest.mark.benchmark(group="cached")
def test_cached_ours(benchmark: Any) -> None:
    JID.parse(ASCII)
    assert benchmark(JID.parse, ASCII) == JID.parse(ASCII)


@need_slix
@pytest.mark.benchmark(group="cached")
def test_cached_slixmpp(benchmark: Any) -> None:
    benchmark(SLIX, ASCII)


@need_slix_pure
@pytest.mark.benchmark(group="cached")
def test_cached_slixmpp_pure(benchmark: Any) -> None:
    assert SLIX_PURE is not None
    SLIX_PURE.JID(ASCII)
    benchmark(SLIX_PURE.JID, ASCII)


# --- uncached, ASCII ------------------------------------------------------


@pytest.mark.benchmark(group="uncached-ascii")
def test_uncached_ascii_ours(benchmark: Any) -> None:
    benchmark(_ours_cold(ASCII_BATCH))


@need_slix
@pytest.mark.benchmark(group="uncached-ascii")
def test_uncached_ascii_slixmpp(benchmark: Any) -> None:
    benchmark(_slix_cold(ASCII_BATCH))


@need_slix_pure
@pytest.mark.benchmark(group="uncached-ascii")
def test_uncached_ascii_slixmpp_pure(benchmark: Any) -> None:
    benchmark(_slix_pure_cold(ASCII_BATCH))


# --- uncached, non-ASCII --------------------------------------------------


@pytest.mark.benchmark(group="uncached-non-ascii")
def test_uncached_non_ascii_ours(benchmark: Any) -> None:
    benchmark(_ours_cold(NON_ASCII_BATCH))


@need_slix
@pytest.mark.benchmark(group="uncached-non-ascii")
def test_uncached_non_ascii_slixmpp(benchmark: Any) -> None:
    benchmark(_slix_cold(NON_ASCII_BATCH))


@need_slix_pure
@pytest.mark.benchmark(group="uncached-non-ascii")
def test_uncached_non_ascii_slixmpp_pure(benchmark: Any) -> None:
    benchmark(_slix_pure_cold(NON_ASCII_BATCH))
