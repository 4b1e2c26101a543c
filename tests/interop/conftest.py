"""Fixtures for the interop suite: each starts the real `swapline` binary on a free loopback
port and always stops it (SIGTERM, then SIGKILL after a timeout) and removes its temp files.
The build itself is done by tools/test.sh."""

from __future__ import annotations

import os

import pytest

import services
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


# --------------------------------------------------------------------------------------------
# PostgreSQL and load balancers (services.py)
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def postgres_url():
    """The URL of the PostgreSQL cluster the whole run shares (postgres://swapline:...@127.0.0.1:
    PORT/swapline): tools/test.sh starts it once and exports SWAPLINE_TEST_POSTGRES_URL. Tests
    should not use its `swapline` database itself but a fresh one (`postgres_db`).

    Without the variable (pytest run by hand) the session starts a cluster of its own, unless
    SWAPLINE_TEST_POSTGRES=off, which skips the PostgreSQL tests; under CI a missing cluster
    fails them instead."""
    url = os.environ.get("SWAPLINE_TEST_POSTGRES_URL")
    if url:
        yield url
        return
    if os.environ.get("CI"):
        pytest.fail("SWAPLINE_TEST_POSTGRES_URL is not set: under CI, tools/test.sh must start "
                    "PostgreSQL (tools/pg-test-cluster.sh)", pytrace=False)
    if os.environ.get("SWAPLINE_TEST_POSTGRES") == "off":
        pytest.skip("SWAPLINE_TEST_POSTGRES=off: PostgreSQL tests not run")
    try:
        cluster = services.PostgresCluster().start()
    except RuntimeError as exc:
        pytest.fail(f"could not start PostgreSQL for the tests (SWAPLINE_TEST_POSTGRES=off skips "
                    f"them): {exc}", pytrace=False)
    yield cluster.url
    cluster.stop()


@pytest.fixture
def postgres_db(postgres_url) -> str:
    """A fresh, empty database on the shared cluster for one test (dropped afterwards, even
    while a server still holds connections to it): servers given its URL share one queue
    that no other test sees."""
    url = services.create_database(postgres_url)
    yield url
    services.drop_database(url)


@pytest.fixture
def postgres_cluster():
    """A cluster of this test's own, for fault tests that stop PostgreSQL (`pause()`) and
    start it again on the same port (`resume()`). Takes a few seconds to start."""
    if os.environ.get("SWAPLINE_TEST_POSTGRES") == "off" and not os.environ.get("CI"):
        pytest.skip("SWAPLINE_TEST_POSTGRES=off: PostgreSQL tests not run")
    try:
        cluster = services.PostgresCluster().start()
    except RuntimeError as exc:
        pytest.fail(str(exc), pytrace=False)
    _clusters.append(cluster)
    yield cluster
    _clusters.remove(cluster)
    cluster.stop()


_clusters: list[services.PostgresCluster] = []
_balancers: list[services.LoadBalancer] = []


@pytest.fixture
def load_balancer():
    """Starts HAProxy (default) or nginx, configured by deploy/, in front of servers:
    `load_balancer([srv1, srv2])`, `load_balancer([srv.port], kind="nginx")`. HAProxy is
    returned once its health checks see every backend UP. Stopped after the test."""
    started: list[services.LoadBalancer] = []

    def start(backends, kind: str = "haproxy") -> services.LoadBalancer:
        try:
            lb = services.LoadBalancer(kind, backends).start()
        except RuntimeError as exc:
            pytest.fail(str(exc), pytrace=False)
        started.append(lb)
        _balancers.append(lb)
        return lb

    yield start
    for lb in started:
        _balancers.remove(lb)
        lb.stop()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.failed:
        for i, srv in enumerate(support.active_servers()):
            report.sections.append(
                (f"swapline[{i}] {' '.join(srv.flags)} port={srv.port} stderr (tail)",
                 srv.stderr_tail(3000)))
        for lb in _balancers:
            report.sections.append((f"{lb.kind} on {lb.grpc_port}/{lb.rest_port} log (tail)", lb.log_tail(3000)))
        for cluster in _clusters:
            report.sections.append((f"postgres {cluster.dir} log (tail)", cluster.log_tail(3000)))
