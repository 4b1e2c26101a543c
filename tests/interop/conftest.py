"""Fixtures for the interop suite: each starts the real `swapline` binary on a free loopback
port and always stops it (SIGTERM, then SIGKILL after a timeout) and removes its temp files.
The build itself is done by tools/test.sh."""

from __future__ import annotations

import pytest

import support
from support import Stubs, SwaplineServer


def _start(flags) -> SwaplineServer:
    try:
        return SwaplineServer(*flags).start()
    except RuntimeError as exc:
        pytest.fail(str(exc), pytrace=False)


def _finish(srv: SwaplineServer) -> None:
    died = not srv.alive() and not srv.stopped_by_test
    code = srv.proc.returncode if srv.proc else None
    tail = srv.stderr_tail()
    srv.stop()
    if died:
        # A server that crashed mid-test fails the test even if its assertions passed.
        pytest.fail(f"swapline exited unexpectedly with code {code}; stderr tail:\n{tail}",
                    pytrace=False)


@pytest.fixture
def server_factory():
    """Starts servers with custom flags: `server_factory("--lease-ms", "500")`."""
    started: list[SwaplineServer] = []

    def start(*flags: str) -> SwaplineServer:
        srv = _start(flags)
        started.append(srv)
        return srv

    yield start
    errors = []
    for srv in started:
        try:
            _finish(srv)
        except pytest.fail.Exception as exc:  # finish every server before failing
            errors.append(str(exc))
    if errors:
        pytest.fail("\n".join(errors), pytrace=False)


@pytest.fixture
def server():
    """A fresh server with default flags: an empty queue for every test."""
    srv = _start(())
    yield srv
    _finish(srv)


@pytest.fixture
def stubs(server) -> Stubs:
    return Stubs(server.channel())


@pytest.fixture(scope="module")
def module_server():
    """One server shared by a module whose tests do not depend on queue state."""
    srv = _start(())
    yield srv
    _finish(srv)


@pytest.fixture(scope="module")
def interop_server():
    srv = _start(("--enable-interop-testing",))
    yield srv
    _finish(srv)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.failed:
        for i, srv in enumerate(support.active_servers()):
            report.sections.append(
                (f"swapline[{i}] {' '.join(srv.flags)} port={srv.port} stderr (tail)",
                 srv.stderr_tail(3000)))
