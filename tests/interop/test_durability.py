"""Durability of the default SQLite store, against the real binary: what a server acknowledged
survives a SIGKILL sent right after the acknowledgement, a restart on the same --data directory
rebuilds the queue and the leases, a full disk refuses changes without losing acknowledged
ones and recovers by itself, and a data directory that is in use, or a database file that is
damaged, stops a server from starting with a message that names it.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
import pytest

from support import BINARY, HOST, Stubs, create_request, now_ms, tasks_pb2 as pb

T = 10  # seconds: the deadline of calls that should answer at once
CLIENTS = 50
TASKS_PER_CLIENT = 10


@pytest.fixture
def data_dir():
    """A data directory that outlives one server, so the next one restarts on it. Tests list
    it before `server_factory`, so it is removed after their servers are stopped."""
    parent = Path(tempfile.mkdtemp(prefix="swapline-durability-"))
    yield parent / "data"
    shutil.rmtree(parent, ignore_errors=True)


def start(server_factory, data_dir: Path, *flags: str):
    return server_factory("--data", str(data_dir), *flags)


def kill(server) -> None:
    """SIGKILL: no shutdown code runs, so only what was committed can survive."""
    server.signal(signal.SIGKILL)
    assert server.wait(10) == -signal.SIGKILL


def in_parallel(count: int, work) -> list:
    """Runs `work(index)` for every index on `count` threads and returns the results in order."""
    with ThreadPoolExecutor(max_workers=count) as pool:
        return list(pool.map(work, range(count)))


def fetch_until_empty(stubs: Stubs, consumer: str) -> list[pb.FetchTaskResponse]:
    leased = []
    while True:
        resp = stubs.consumer.FetchTask(pb.FetchTaskRequest(consumer_id=consumer, wait_ms=0), timeout=T)
        if not resp.HasField("task"):
            return leased
        leased.append(resp)


def refused_start(data_dir: Path) -> subprocess.CompletedProcess:
    """Runs a server that must not start; returns its exit status and output."""
    proc = subprocess.run(
        [str(BINARY), "serve", "--host", HOST, "--port", "0", "--data", str(data_dir)],
        stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=30)
    assert "listening" not in proc.stdout, proc.stdout
    return proc


def test_every_acknowledged_create_survives_sigkill_and_is_fetched_exactly_once(data_dir, server_factory):
    server = start(server_factory, data_dir)

    def client(index: int) -> list[str]:
        stubs = Stubs(server.channel())
        return [stubs.tasks.CreateTask(create_request(), timeout=T).task_id for _ in range(TASKS_PER_CLIENT)]

    acknowledged = {task_id for ids in in_parallel(CLIENTS, client) for task_id in ids}
    kill(server)  # right after the last acknowledgement
    assert len(acknowledged) == CLIENTS * TASKS_PER_CLIENT

    restarted = start(server_factory, data_dir)
    stubs = Stubs(restarted.channel())
    for task_id in acknowledged:
        assert stubs.tasks.GetTask(pb.GetTaskRequest(task_id=task_id), timeout=T).status == pb.TASK_STATUS_PENDING

    consumers = 8
    leased = [resp for batch in in_parallel(consumers, lambda i: fetch_until_empty(Stubs(restarted.channel()), f"c{i}"))
              for resp in batch]
    fetched = [resp.task.task_id for resp in leased]
    assert len(fetched) == len(set(fetched)), "a task was handed out twice"
    assert set(fetched) == acknowledged
    assert all(resp.task.attempt == 1 for resp in leased)


def test_every_acknowledged_completion_survives_sigkill(data_dir, server_factory):
    server = start(server_factory, data_dir)
    stubs = Stubs(server.channel())
    for _ in range(100):
        stubs.tasks.CreateTask(create_request(), timeout=T)
    leased = fetch_until_empty(stubs, "worker")
    assert len(leased) == 100

    def complete(index: int) -> pb.Task:
        resp = leased[index]
        result = pb.TaskResult(output_url=f"https://cdn.example.com/{resp.task.task_id}.jpg", job_id=f"job_{index}",
                               outputs={"gif": f"https://cdn.example.com/{index}.gif"}, storage_provider="r2")
        return Stubs(server.channel()).consumer.UpdateStatus(
            pb.UpdateStatusRequest(task_id=resp.task.task_id, lease_id=resp.lease_id,
                                   status=pb.TASK_STATUS_COMPLETED, result=result), timeout=T)

    completed = in_parallel(20, lambda worker: [complete(i) for i in range(worker, 100, 20)])
    kill(server)

    stubs = Stubs(start(server_factory, data_dir).channel())
    for acknowledged in (task for batch in completed for task in batch):
        assert acknowledged.status == pb.TASK_STATUS_COMPLETED
        stored = stubs.tasks.GetTask(pb.GetTaskRequest(task_id=acknowledged.task_id), timeout=T)
        assert stored.status == pb.TASK_STATUS_COMPLETED
        assert stored.result == acknowledged.result
        assert stored.progress == 1.0
    assert fetch_until_empty(stubs, "late-worker") == []


def test_a_task_leased_before_sigkill_is_redelivered_after_its_lease_with_attempt_2(data_dir, server_factory):
    lease = ["--lease-ms", "1500"]
    server = start(server_factory, data_dir, *lease)
    stubs = Stubs(server.channel())
    task = stubs.tasks.CreateTask(create_request(idempotency_key="order-7"), timeout=T)
    first = stubs.consumer.FetchTask(pb.FetchTaskRequest(consumer_id="doomed", wait_ms=0), timeout=T)
    assert first.task.task_id == task.task_id and first.task.attempt == 1
    kill(server)

    stubs = Stubs(start(server_factory, data_dir, *lease).channel())
    # The idempotency key survived the restart too.
    assert stubs.tasks.CreateTask(create_request(idempotency_key="order-7"), timeout=T).task_id == task.task_id
    again = stubs.consumer.FetchTask(pb.FetchTaskRequest(consumer_id="next", wait_ms=10_000), timeout=T + 10)
    assert again.task.task_id == task.task_id
    assert again.task.attempt == 2
    assert again.lease_id != first.lease_id
    assert now_ms() >= first.lease_expires_at_ms


@pytest.fixture
def small_disk():
    """A 4 MiB tmpfs to fill up; skipped where mounting is not allowed (needs root)."""
    mountpoint = Path(tempfile.mkdtemp(prefix="swapline-small-disk-"))
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mountpoint)],
                      capture_output=True).returncode != 0:
        mountpoint.rmdir()
        pytest.skip("cannot mount a tmpfs here (not root)")
    yield mountpoint
    subprocess.run(["umount", "--lazy", str(mountpoint)], check=False)
    mountpoint.rmdir()


def test_a_full_disk_refuses_changes_and_recovers_when_space_returns(small_disk, server_factory):
    data_dir = small_disk / "data"
    # Creates until the disk is full: faster and more than the per-client rate allows.
    server = start(server_factory, str(data_dir), "--create-rate", "0")
    stubs = Stubs(server.channel())
    acknowledged = [stubs.tasks.CreateTask(create_request(), timeout=T).task_id for _ in range(20)]

    ballast = small_disk / "ballast"
    with open(ballast, "wb") as fill:
        try:
            while True:
                fill.write(b"\0" * 65536)
                fill.flush()
        except OSError:
            pass  # ENOSPC: the disk is full
    # The write-ahead log may still have room from earlier commits; keep creating until the
    # store runs out too.
    refusal = None
    for _ in range(5000):
        try:
            acknowledged.append(stubs.tasks.CreateTask(create_request(), timeout=T).task_id)
        except grpc.RpcError as error:
            refusal = error
            break
    assert refusal is not None, "the store never ran out of space"
    assert refusal.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, refusal
    assert "out of space" in refusal.details(), refusal.details()

    ballast.unlink()  # space returns: the server recovers by itself
    acknowledged.append(stubs.tasks.CreateTask(create_request(), timeout=T).task_id)

    kill(server)
    stubs = Stubs(start(server_factory, str(data_dir)).channel())
    fetched = {resp.task.task_id for resp in fetch_until_empty(stubs, "after-the-storm")}
    assert fetched == set(acknowledged), "every acknowledged task, and nothing else, is stored"


def test_a_second_server_on_the_same_data_directory_is_refused(data_dir, server_factory):
    server = start(server_factory, data_dir)
    refused = refused_start(data_dir)
    assert refused.returncode != 0
    assert str(data_dir) in refused.stderr and "in use by another swapline server" in refused.stderr, refused.stderr
    # The first server is unharmed.
    stubs = Stubs(server.channel())
    task = stubs.tasks.CreateTask(create_request(), timeout=T)
    assert stubs.tasks.GetTask(pb.GetTaskRequest(task_id=task.task_id), timeout=T).task_id == task.task_id


def test_the_lock_is_released_when_the_holder_is_killed(data_dir, server_factory):
    kill(start(server_factory, data_dir))
    start(server_factory, data_dir)


def test_a_corrupt_database_file_is_refused_naming_it(data_dir):
    data_dir.mkdir()
    database = data_dir / "tasks.db"
    database.write_bytes(bytes((i * 131 + 7) % 256 for i in range(16384)))
    refused = refused_start(data_dir)
    assert refused.returncode != 0
    assert str(database) in refused.stderr and "not a database" in refused.stderr, refused.stderr
    assert database.read_bytes()[:16] != b"SQLite format 3\x00", "the file must be left as it was"


def test_a_foreign_sqlite_database_is_refused(data_dir):
    import sqlite3

    data_dir.mkdir()
    with sqlite3.connect(data_dir / "tasks.db") as other:
        other.execute("CREATE TABLE invoices (id INTEGER PRIMARY KEY, total REAL)")
    refused = refused_start(data_dir)
    assert refused.returncode != 0
    assert "not a Swapline task database" in refused.stderr, refused.stderr
