"""Fixtures that start real XMPP servers (Prosody, ejabberd) once per test session.

Fixtures:

- ``pki`` (session): the generated :class:`servers.Pki`.
- ``prosody`` / ``ejabberd`` (session): a running :class:`servers.ProsodyServer`
  / :class:`servers.EjabberdServer` with alice, bob and carol registered.
- ``xmpp_server`` (session, parametrized): each of the two in turn.
- ``server_factory`` (function): ``server_factory("prosody" | "ejabberd",
  **kwargs)`` starts a fresh private instance, stopped when the test ends;
  for tests that stop, break or reconfigure a server.

A missing server program fails the test (``pytest.fail``); it never skips.
Every test under this directory gets the ``integration`` marker, so ``-m
'not integration'`` leaves them out. Servers are stopped by pid at the end
of the session, by the ``atexit`` hook of :mod:`servers` if pytest is
interrupted before that, and by their parent-death signal if the test
process is killed outright.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest

from . import servers

S = TypeVar("S", bound=servers.XMPPServer)
_HERE = Path(__file__).resolve().parent
_KINDS: dict[str, type[servers.XMPPServer]] = {
    "prosody": servers.ProsodyServer,
    "ejabberd": servers.EjabberdServer,
}
# Start-up times of the session servers, shown in the terminal summary.
_START_TIMES: dict[str, float] = {}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark every test collected from this directory with ``integration``."""
    for item in items:
        if _HERE in Path(str(item.path)).resolve().parents:
            item.add_marker(pytest.mark.integration)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Report how long each session server took to start."""
    if _START_TIMES:
        text = ", ".join(f"{name} {seconds:.2f} s" for name, seconds in _START_TIMES.items())
        terminalreporter.write_line(f"integration servers started: {text}")


def _start(cls: type[S], pki: servers.Pki, **kwargs: object) -> S:
    server = cls(pki, **kwargs)  # type: ignore[arg-type]
    try:
        server.start()
    except servers.ServerNotInstalled as exc:
        pytest.fail(f"{cls.name} is required for the integration tests: {exc}", pytrace=False)
    return server


@pytest.fixture(scope="session")
def pki() -> Iterator[servers.Pki]:
    """The test PKI: a trusted CA, server certificates, an untrusted CA, a wrong-host certificate."""
    servers.sweep_stale_directories()
    p = servers.Pki()
    yield p
    p.cleanup()


@pytest.fixture(scope="session")
def prosody(pki: servers.Pki) -> Iterator[servers.ProsodyServer]:
    """A Prosody instance shared by the whole test session."""
    server = _start(servers.ProsodyServer, pki)
    _START_TIMES["prosody"] = server.start_seconds
    yield server
    server.stop()


@pytest.fixture(scope="session")
def ejabberd(pki: servers.Pki) -> Iterator[servers.EjabberdServer]:
    """An ejabberd node shared by the whole test session."""
    server = _start(servers.EjabberdServer, pki)
    _START_TIMES["ejabberd"] = server.start_seconds
    yield server
    server.stop()


@pytest.fixture(scope="session", params=sorted(_KINDS))
def xmpp_server(request: pytest.FixtureRequest) -> servers.XMPPServer:
    """Each session server in turn (test ids ``[ejabberd]`` and ``[prosody]``)."""
    server: servers.XMPPServer = request.getfixturevalue(request.param)
    return server


@pytest.fixture
def server_factory(pki: servers.Pki) -> Iterator[Callable[..., servers.XMPPServer]]:
    """Start private server instances for one test; each is stopped when the test ends."""
    started: list[servers.XMPPServer] = []

    def factory(kind: str, **kwargs: object) -> servers.XMPPServer:
        server = _start(_KINDS[kind], pki, **kwargs)
        started.append(server)
        return server

    yield factory
    errors = []
    for server in reversed(started):
        try:
            server.stop()
        except RuntimeError as exc:
            errors.append(str(exc))
    if errors:
        pytest.fail("; ".join(errors), pytrace=False)
