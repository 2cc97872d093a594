"""Shared fixtures: the two engines."""

from __future__ import annotations

import importlib
import os
import types

import pytest

# Imported here, while the stack is shallow, rather than lazily by the
# hypothesis plugin at the end of the run: CPython 3.11.7 can fail an
# ast.parse (pytest's assertion rewriting) made deep in pytest's hook stack
# with "SystemError: AST constructor recursion depth mismatch".
import hypothesis  # noqa: F401


def _load(name: str) -> types.ModuleType:
    return importlib.import_module(name)


@pytest.fixture(params=["compiled", "pure"])
def engine(request: pytest.FixtureRequest) -> types.ModuleType:
    """Each engine test runs once on the compiled engine and once on the pure twin.

    The compiled run is skipped only where the extension is not built and
    ``XMPP_REQUIRE_COMPILED`` is unset; with it set, a missing extension fails.
    """
    if request.param == "pure":
        return _load("xmpp._tokens_py")
    try:
        return _load("xmpp._tokens")
    except ImportError as exc:
        if os.environ.get("XMPP_REQUIRE_COMPILED"):
            pytest.fail(f"compiled engine required but did not load: {exc}")
        pytest.skip(f"compiled engine not built: {exc}")
