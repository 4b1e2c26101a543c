"""Shared checks of the hostile-client suites (test_abuse_*.py): after each abuse case a normal
client must be served at once, and the server's resident memory must come back within a
stated bound. The figures are printed (run pytest with -s to see them) so a reader can see
how close each case came.

RSS is read from /proc/PID/status (VmRSS). glibc keeps freed memory in its arenas, so "back"
means "within `bound_mib` of the baseline taken before the abuse", not "equal to it".
"""

from __future__ import annotations

import time

import grpc

import support
from support import Stubs, SwaplineServer

# Default allowance over the baseline after an abuse case; a case may state a tighter one.
DEFAULT_RSS_BOUND_MIB = 64


def rss_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


def server_rss(server: SwaplineServer) -> int:
    assert server.proc is not None
    return rss_bytes(server.proc.pid)


def assert_normal_client_served(server: SwaplineServer, timeout: float = 5.0) -> None:
    """A fresh stock grpcio channel creates and reads a task within `timeout` seconds."""
    channel = grpc.insecure_channel(server.address, options=support.CHANNEL_OPTIONS)
    try:
        stubs = Stubs(channel)
        started = time.monotonic()
        created = stubs.tasks.CreateTask(support.create_request(), timeout=timeout)
        got = stubs.tasks.GetTask(
            support.tasks_pb2.GetTaskRequest(task_id=created.task_id), timeout=timeout)
        assert got.task_id == created.task_id
        elapsed = time.monotonic() - started
        assert elapsed < timeout, f"a normal client waited {elapsed:.2f}s"
    finally:
        channel.close()


def assert_rss_back(server: SwaplineServer, baseline: int, label: str,
                    bound_mib: int = DEFAULT_RSS_BOUND_MIB, settle_s: float = 5.0) -> int:
    """Waits up to `settle_s` for the server's RSS to come within `bound_mib` MiB of
    `baseline`, prints the figures and fails if it does not. Returns the last reading."""
    deadline = time.monotonic() + settle_s
    while True:
        now = server_rss(server)
        if now - baseline <= bound_mib * 1024 * 1024 or time.monotonic() >= deadline:
            break
        time.sleep(0.2)
    grown = (now - baseline) / (1024 * 1024)
    print(f"[rss] {label}: baseline {baseline / 1048576:.1f} MiB, after {now / 1048576:.1f} MiB "
          f"(+{grown:.1f} MiB, bound +{bound_mib} MiB)")
    assert grown <= bound_mib, f"{label}: RSS grew {grown:.1f} MiB (bound {bound_mib} MiB)"
    return now
