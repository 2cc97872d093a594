"""The examples in the docstrings of the first-tier extension modules run and hold."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = ["ping", "disco", "caps", "version", "time", "delay", "forward", "receipts", "chatstates", "sid"]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name: str) -> None:
    mod = importlib.import_module(f"xmpp.{name}")
    result = doctest.testmod(mod, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0, f"xmpp.{name} has no docstring example"
    assert result.failed == 0
