"""Several `swapline serve` processes sharing one PostgreSQL queue (issue 9, "How it is
checked"): real servers on a real PostgreSQL (tools/pg-test-cluster.sh), real HAProxy configured
by deploy/haproxy.cfg, real `swapline worker` processes and the FaceFusion simulator.

- two servers behind HAProxy, four workers, 1,000 tasks created through both servers: every
  task is processed exactly once;
- a watcher on either server sees every change, in order, whichever server made it;
- a consumer waiting on one server is woken at once by a task created through the other;
- SIGKILL of one server (and a worker beside it) mid-run loses nothing that was acknowledged,
  and the dead worker's leases expire and are completed by the others;
- PostgreSQL stopped mid-run: calls fail cleanly with UNAVAILABLE, health turns NOT_SERVING,
  the servers stay up, and everything recovers by itself with nothing lost.

Each test has a database of its own (`postgres_db`), or, for the outage, a cluster of its own
(`postgres_cluster`), so stopping PostgreSQL never touches another test's queue.
"""

from __future__ import annotations

import concurrent.futures
import queue
import shutil
import signal
import statistics
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

import grpc
import httpx
import pytest

import services
from support import ALLOW_LOCAL_URLS, BINARY, CHANNEL_OPTIONS, HOST, Stubs, create_request, health_pb2, tasks_pb2 as pb
from test_worker import Simulator, WorkerProcess, params as sim_params, worker_flags

SC = grpc.StatusCode
T = 10
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
# Small images keep the simulator (one Python process for all workers) from being the bottleneck.
RESOLUTION = "128x128"


# ---------------------------------------------------------------------------------------------
# Processes: workers, the simulator, servers on PostgreSQL
# ---------------------------------------------------------------------------------------------


@pytest.fixture
def workers():
    """Starts workers (`workers(port, *flags)`) and stops them after the test. Their log tails
    are printed at teardown, which pytest shows only for a failed test."""
    started: list[WorkerProcess] = []

    def start(server_port: int, *flags: str) -> WorkerProcess:
        worker = WorkerProcess(server_port, *flags)
        started.append(worker)
        return worker

    yield start
    for worker in started:  # all drain at once
        if worker.proc.poll() is None:
            worker.proc.send_signal(signal.SIGTERM)
    for i, worker in enumerate(started):
        worker.stop(keep_log=True)
        print(f"\n--- swapline worker[{i}] log (tail) ---\n{worker.log_tail(3000)}")
        worker.remove()


@pytest.fixture
def simulator():
    """Starts FaceFusion simulators (tools/facefusion-sim): `simulator("--latency-ms", "200")`."""
    sims: list[Simulator] = []

    def start(*flags: str) -> Simulator:
        sim = Simulator(*flags)
        sims.append(sim)
        return sim

    yield start
    for sim in sims:
        sim.stop()


@pytest.fixture
def storage_dir():
    path = Path(tempfile.mkdtemp(prefix="swapline-storage-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def pg_servers(server_factory, url: str, count: int, *flags: str):
    """`count` servers on the PostgreSQL database at `url`, started together (the schema
    migration must cope with that: an advisory lock makes the others wait)."""
    with concurrent.futures.ThreadPoolExecutor(count) as pool:
        return list(pool.map(lambda _: server_factory("--store", url, ALLOW_LOCAL_URLS, *flags), range(count)))


@pytest.fixture
def channels():
    """gRPC channels to addresses (a load balancer's), closed after the test."""
    opened: list[grpc.Channel] = []

    def open_channel(address: str) -> Stubs:
        channel = grpc.insecure_channel(address, options=CHANNEL_OPTIONS)
        opened.append(channel)
        return Stubs(channel)

    yield open_channel
    for channel in opened:
        channel.close()


# ---------------------------------------------------------------------------------------------
# The database as the truth
# ---------------------------------------------------------------------------------------------


def db_states(url: str) -> dict[str, int]:
    with services.connect(url) as conn:
        return dict(conn.execute("SELECT state, count(*) FROM swapline_tasks GROUP BY state").fetchall())


def db_tasks(url: str) -> dict[str, tuple[str, int]]:
    """task_id -> (state, attempt) of every stored task."""
    with services.connect(url) as conn:
        return {row[0]: (row[1], row[2]) for row in
                conn.execute("SELECT task_id, state, attempt FROM swapline_tasks").fetchall()}


def wait_until_finished(url: str, expected: int, timeout: float) -> dict[str, int]:
    """Waits until `expected` tasks are stored and none of them is PENDING or PROCESSING."""
    deadline = time.monotonic() + timeout
    states: dict[str, int] = {}
    while time.monotonic() < deadline:
        states = db_states(url)
        if sum(states.values()) >= expected and not states.get("PENDING") and not states.get("PROCESSING"):
            return states
        time.sleep(0.25)
    raise AssertionError(f"tasks not finished after {timeout}s: {states} (expected {expected})")


def attempts_histogram(tasks: dict[str, tuple[str, int]]) -> dict[int, int]:
    histogram: dict[int, int] = {}
    for _, attempt in tasks.values():
        histogram[attempt] = histogram.get(attempt, 0) + 1
    return dict(sorted(histogram.items()))


# ---------------------------------------------------------------------------------------------
# A fake consumer and watchers
# ---------------------------------------------------------------------------------------------


def update(stubs: Stubs, task_id: str, lease_id: str, status: int, **kw) -> pb.Task:
    return stubs.consumer.UpdateStatus(
        pb.UpdateStatusRequest(task_id=task_id, lease_id=lease_id, status=status, **kw), timeout=T)


def complete(stubs: Stubs, task_id: str, lease_id: str) -> pb.Task:
    return update(stubs, task_id, lease_id, pb.TASK_STATUS_COMPLETED, progress=1.0,
                  result=pb.TaskResult(output_url=f"https://example.com/{task_id}.jpg"))


class Watcher:
    """A WatchTask stream read on its own thread; every event lands in `events`."""

    def __init__(self, name: str, stubs: Stubs, task_id: str):
        self.name = name
        self.events: list[pb.TaskEvent] = []
        self.error: Exception | None = None
        self.ended = threading.Event()
        self._changed = threading.Condition()
        self.call = stubs.tasks.WatchTask(pb.WatchTaskRequest(task_id=task_id), timeout=120)
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        try:
            for event in self.call:
                with self._changed:
                    self.events.append(event)
                    self._changed.notify_all()
        except Exception as exc:  # noqa: BLE001 - reported by the test
            self.error = exc
        finally:
            self.ended.set()
            with self._changed:
                self._changed.notify_all()

    def wait_for_sequence(self, sequence: int, timeout: float) -> float:
        """Waits until an event with at least `sequence` arrived; returns the seconds waited."""
        t0 = time.monotonic()
        with self._changed:
            while not (self.events and self.events[-1].sequence >= sequence):
                remaining = timeout - (time.monotonic() - t0)
                if remaining <= 0 or self.ended.is_set():
                    raise AssertionError(
                        f"watcher {self.name}: no event with sequence >= {sequence} after "
                        f"{time.monotonic() - t0:.1f}s; got {self.summary()} (error: {self.error})")
                self._changed.wait(remaining)
        return time.monotonic() - t0

    def summary(self) -> list[tuple[int, str, float]]:
        return [(e.sequence, pb.TaskStatus.Name(e.task.status), round(e.task.progress, 3)) for e in self.events]

    def close(self) -> None:
        self.call.cancel()


# ---------------------------------------------------------------------------------------------
# Multi-server
# ---------------------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.timeout(420)
def test_two_servers_four_workers_complete_each_task_exactly_once(
        postgres_db, server_factory, load_balancer, workers, simulator, storage_dir):
    total = 1000
    sim = simulator("--latency-ms", "5")
    servers = pg_servers(server_factory, postgres_db, 2, "--storage", f"local:{storage_dir}")
    lb = load_balancer(servers)
    for _ in range(4):
        workers(lb.grpc_port, *worker_flags(sim, storage_dir, "--public-url", lb.rest_url, "--concurrency", "4",
                                            "--engine-output-dir", str(sim.tmpdir),
                                            "--drain-timeout-ms", "2000"))

    # Half the tasks through each server directly, so both create; the workers meanwhile
    # fetch and report through HAProxy, each call balanced on its own.
    direct = [Stubs(srv.channel()) for srv in servers]
    t0 = time.monotonic()

    def create(i: int) -> str:
        return direct[i % 2].tasks.CreateTask(
            pb.CreateTaskRequest(params=sim_params(sim, RESOLUTION), idempotency_key=f"multi-{i}"), timeout=T).task_id

    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        created = list(pool.map(create, range(total)))
    created_after = time.monotonic() - t0
    assert len(set(created)) == total

    states = wait_until_finished(postgres_db, total, timeout=300)
    finished_after = time.monotonic() - t0
    tasks = db_tasks(postgres_db)
    print(f"\n{total} tasks created in {created_after:.1f}s, all finished after {finished_after:.1f}s; "
          f"states {states}; attempts {attempts_histogram(tasks)}; simulator {sim.admin()['counters']}; "
          f"HAProxy requests per server "
          f"{ {name: s['stot'] for name, s in lb.server_states().items()} }")

    # In the database: exactly the acknowledged tasks, all COMPLETED, each delivered once (the
    # 30 s default lease never ran out, so nothing was redelivered).
    assert states == {"COMPLETED": total}, states
    assert set(tasks) == set(created)
    assert attempts_histogram(tasks) == {1: total}
    # FaceFusion ran each task exactly once: one /process call per task, no retries.
    counters = sim.admin()["counters"]
    assert counters["process_requests"] == total, counters
    assert counters["completed"] == total, counters
    # Every task's outputs were stored once, under its own id.
    assert sorted(p.name for p in storage_dir.iterdir() if any(p.glob("*/result.jpg"))) == sorted(created)

    # Both servers answered workers' calls through the balancer, and either reads any task.
    states_lb = lb.server_states()
    assert all(int(s["stot"]) > 0 for s in states_lb.values()), states_lb
    for srv_stubs in direct:
        for task_id in (created[0], created[1], created[-1]):
            task = srv_stubs.tasks.GetTask(pb.GetTaskRequest(task_id=task_id), timeout=T)
            assert task.status == pb.TASK_STATUS_COMPLETED and task.attempt == 1
            assert task.result.output_url.startswith(lb.rest_url + "/outputs/")


def test_watchers_on_either_server_see_every_change_in_order(postgres_db, server_factory):
    a, b = pg_servers(server_factory, postgres_db, 2)
    sa, sb = Stubs(a.channel()), Stubs(b.channel())

    # Paced: each change is made through one server or the other and must reach both watchers
    # (one on each server) before the next, so each must see every change: no gaps.
    task = sa.tasks.CreateTask(create_request(), timeout=T)
    watchers = [Watcher("A", sa, task.task_id), Watcher("B", sb, task.task_id)]
    latencies: list[float] = []
    try:
        for w in watchers:
            w.wait_for_sequence(1, timeout=T)
        lease = sb.consumer.FetchTask(pb.FetchTaskRequest(consumer_id="fake", wait_ms=0), timeout=T)
        assert lease.task.task_id == task.task_id
        changes = [(sb, 0.1), (sa, 0.2), (sb, 0.3), (sa, 0.4), (sb, 0.5), (sa, 0.75), (sb, 0.9)]
        sequence = 2  # the claim
        latencies.extend(w.wait_for_sequence(sequence, timeout=T) for w in watchers)
        for via, progress in changes:
            update(via, task.task_id, lease.lease_id, pb.TASK_STATUS_PROCESSING, progress=progress)
            sequence += 1
            latencies.extend(w.wait_for_sequence(sequence, timeout=T) for w in watchers)
        complete(sa, task.task_id, lease.lease_id)
        sequence += 1
        for w in watchers:
            w.wait_for_sequence(sequence, timeout=T)
            assert w.ended.wait(T), f"watcher {w.name}: the stream did not end after COMPLETED"
    finally:
        for w in watchers:
            w.close()
    print(f"\npaced changes reached the watchers after {max(latencies) * 1000:.0f} ms at most "
          f"(median {statistics.median(latencies) * 1000:.0f} ms)")

    expected = ([(1, "TASK_STATUS_PENDING", 0.0), (2, "TASK_STATUS_PROCESSING", 0.0)]
                + [(i + 3, "TASK_STATUS_PROCESSING", p) for i, (_, p) in enumerate(changes)]
                + [(len(changes) + 3, "TASK_STATUS_COMPLETED", 1.0)])
    for w in watchers:
        assert w.error is None, (w.name, w.error)
        assert w.call.code() == SC.OK, (w.name, w.call.code(), w.call.details())
        assert w.summary() == expected, w.name
        assert all(e.task.task_id == task.task_id for e in w.events)

    # Unpaced: a burst of changes through both servers. A watcher may skip intermediate states
    # (docs/api.md), but what it sees is in order, never repeated, and ends with the final state.
    burst = sa.tasks.CreateTask(create_request(), timeout=T)
    watchers = [Watcher("A", sa, burst.task_id), Watcher("B", sb, burst.task_id)]
    try:
        for w in watchers:
            w.wait_for_sequence(1, timeout=T)
        lease = sa.consumer.FetchTask(pb.FetchTaskRequest(consumer_id="fake", wait_ms=0), timeout=T)
        assert lease.task.task_id == burst.task_id
        for i in range(20):
            update((sa, sb)[i % 2], burst.task_id, lease.lease_id, pb.TASK_STATUS_PROCESSING, progress=(i + 1) / 25)
        final = complete(sb, burst.task_id, lease.lease_id)
        for w in watchers:
            assert w.ended.wait(T), f"watcher {w.name}: the stream did not end; got {w.summary()}"
    finally:
        for w in watchers:
            w.close()
    for w in watchers:
        assert w.error is None, (w.name, w.error)
        sequences = [e.sequence for e in w.events]
        assert sequences == sorted(set(sequences)), (w.name, sequences)
        assert w.summary()[-1] == (23, "TASK_STATUS_COMPLETED", 1.0), (w.name, w.summary())
        assert w.events[-1].task == final
        progress = [e.task.progress for e in w.events]
        assert progress == sorted(progress), (w.name, progress)


def test_a_task_created_on_one_server_wakes_a_consumer_waiting_on_the_other(postgres_db, server_factory):
    servers = pg_servers(server_factory, postgres_db, 2)
    stubs = [Stubs(srv.channel()) for srv in servers]
    for s in stubs:  # connected before anything is timed
        assert s.health.Check(health_pb2.HealthCheckRequest(), timeout=T).status == SERVING

    latencies = []
    for round_ in range(6):
        waiter, creator = (stubs[1], stubs[0]) if round_ % 2 == 0 else (stubs[0], stubs[1])
        answered: queue.Queue = queue.Queue()

        def fetch():
            try:
                response = waiter.consumer.FetchTask(
                    pb.FetchTaskRequest(consumer_id=f"waiter-{round_}", wait_ms=20_000), timeout=30)
                answered.put((time.monotonic(), response))
            except Exception as exc:  # noqa: BLE001
                answered.put((time.monotonic(), exc))

        threading.Thread(target=fetch, daemon=True).start()
        time.sleep(0.5)  # the fetch is parked on the waiting server
        assert answered.empty(), f"round {round_}: the fetch answered before any task existed: {answered.get()}"
        t0 = time.monotonic()
        task = creator.tasks.CreateTask(create_request(), timeout=T)
        at, response = answered.get(timeout=25)
        assert isinstance(response, pb.FetchTaskResponse), f"round {round_}: {response!r}"
        assert response.task.task_id == task.task_id, f"round {round_}: {response}"
        latencies.append(at - t0)
        complete(creator, task.task_id, response.lease_id)

    print("\ncross-server wake-up latency (CreateTask sent -> FetchTask answered): "
          + ", ".join(f"{s * 1000:.0f} ms" for s in latencies))
    assert max(latencies) < 1.5, latencies
    # The periodic re-check (every 2 s) would answer too, but later: the notification did it.
    assert statistics.median(latencies) < 0.5, latencies


# ---------------------------------------------------------------------------------------------
# Faults
# ---------------------------------------------------------------------------------------------


def create_with_retries(stubs: Stubs, sim, key: str, failures: list, attempts: int = 40) -> str:
    """CreateTask as a careful client does it: retried with the same idempotency key until
    acknowledged, so a call cut off by a dying server neither loses nor duplicates the task."""
    for _ in range(attempts):
        try:
            return stubs.tasks.CreateTask(
                pb.CreateTaskRequest(params=sim_params(sim, RESOLUTION), idempotency_key=key), timeout=T).task_id
        except grpc.RpcError as err:
            failures.append((key, err.code(), err.details()))
            if err.code() == SC.INVALID_ARGUMENT:
                raise
            time.sleep(0.2)
    raise AssertionError(f"CreateTask {key} never acknowledged: {failures[-3:]}")


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_sigkill_one_server_mid_run(postgres_db, server_factory, load_balancer, workers, simulator, storage_dir,
                                    channels):
    """The victim's machine dies: SIGKILL the server and a worker that used it directly, mid-run.
    Four workers and a client keep going through HAProxy; the dead worker's leases expire
    (--lease-ms 2000) and the others complete its tasks; nothing acknowledged is lost."""
    total = 300
    sim = simulator("--latency-ms", "200")
    victim, survivor = pg_servers(server_factory, postgres_db, 2, "--lease-ms", "2000")
    lb = load_balancer([victim, survivor])
    for _ in range(4):
        workers(lb.grpc_port, *worker_flags(sim, storage_dir, "--concurrency", "3", "--drain-timeout-ms", "2000"))
    colocated = workers(victim.port, *worker_flags(sim, storage_dir, "--concurrency", "3"))
    # Its consumer ids are HOST-PID#SLOT.
    colocated_leases = f"%-{colocated.proc.pid}#%"

    client = channels(lb.grpc_address)
    acknowledged: dict[str, str] = {}
    failures: list = []
    creator_error: list = []

    def create_all():
        try:
            for i in range(total):
                key = f"kill-{i}"
                acknowledged[key] = create_with_retries(client, sim, key, failures)
                time.sleep(0.01)
        except BaseException as exc:  # noqa: BLE001 - reported below
            creator_error.append(exc)

    def leased_by_colocated() -> list[str]:
        with services.connect(postgres_db) as conn:
            return [row[0] for row in conn.execute(
                "SELECT task_id FROM swapline_tasks WHERE state = 'PROCESSING' AND lease_consumer LIKE %s",
                (colocated_leases,)).fetchall()]

    creator = threading.Thread(target=create_all, daemon=True)
    creator.start()
    # Kill while tasks are being created through the balancer and worked on everywhere.
    deadline = time.monotonic() + 60
    while len(acknowledged) < total // 3 or sim.counter("completed") < 10 or not leased_by_colocated():
        assert time.monotonic() < deadline, f"never got busy: {len(acknowledged)} created, {sim.admin()}"
        time.sleep(0.02)
    colocated.proc.kill()
    colocated.proc.wait(10)
    time.sleep(0.2)  # a report it had already sent is committed or not by now; its leases last 2 s
    orphaned = leased_by_colocated()
    with services.connect(postgres_db) as conn:
        leased_at_kill = conn.execute("SELECT count(*) FROM swapline_tasks WHERE state = 'PROCESSING'").fetchone()[0]
    created_at_kill = len(acknowledged)
    victim.signal(signal.SIGKILL)
    killed_at = time.monotonic()
    assert victim.wait(timeout=10) == -signal.SIGKILL
    down_after = lb.wait_for_status("swapline1", "DOWN", timeout=15)

    creator.join(120)
    assert not creator.is_alive(), "the creator hung"
    assert not creator_error, creator_error
    assert len(acknowledged) == total

    states = wait_until_finished(postgres_db, total, timeout=120)
    recovered_after = time.monotonic() - killed_at
    tasks = db_tasks(postgres_db)
    counters = sim.admin()["counters"]
    print(f"\nkilled with {created_at_kill} created, {leased_at_kill} leased ({len(orphaned)} by the dead worker); "
          f"HAProxy marked it DOWN after {down_after:.1f}s; all finished {recovered_after:.1f}s after the kill; "
          f"{len(failures)} create calls retried ({sorted({str(f[1]) for f in failures})}); states {states}; "
          f"attempts {attempts_histogram(tasks)}; simulator {counters}")

    # Nothing acknowledged is lost, nothing is duplicated by the retries, everything completed.
    assert set(tasks) == set(acknowledged.values()), (len(tasks), len(acknowledged))
    assert states == {"COMPLETED": total}, states
    # The dead worker's leases expired and its tasks were delivered again and completed.
    assert orphaned
    assert all(tasks[t][0] == "COMPLETED" and tasks[t][1] >= 2 for t in orphaned), {t: tasks[t] for t in orphaned}
    # FaceFusion ran every task, and a task twice only where it was delivered twice.
    redelivered = sum(attempt - 1 for _, attempt in tasks.values())
    assert total <= counters["process_requests"] <= total + redelivered, counters
    assert survivor.alive()
    # The balancer keeps serving through the survivor.
    assert client.tasks.GetTask(pb.GetTaskRequest(task_id=acknowledged["kill-0"]), timeout=T).status == \
        pb.TASK_STATUS_COMPLETED


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_postgres_outage_fails_cleanly_and_recovers(postgres_cluster, server_factory, workers, simulator,
                                                     storage_dir):
    url = services.create_database(postgres_cluster.url)
    password = urlsplit(url).password
    sim = simulator("--latency-ms", "300")
    servers = pg_servers(server_factory, url, 2, "--lease-ms", "3000")
    stubs = [Stubs(srv.channel()) for srv in servers]
    for srv in servers:
        workers(srv.port, *worker_flags(sim, storage_dir, "--concurrency", "2", "--drain-timeout-ms", "2000"))

    before = [stubs[i % 2].tasks.CreateTask(
        pb.CreateTaskRequest(params=sim_params(sim, RESOLUTION)), timeout=T).task_id for i in range(30)]
    deadline = time.monotonic() + 30
    while sim.counter("completed") < 3 or sim.counter("in_flight") == 0:
        assert time.monotonic() < deadline, sim.admin()
        time.sleep(0.02)

    def health(srv, s) -> tuple[int, int]:
        grpc_status = s.health.Check(health_pb2.HealthCheckRequest(), timeout=T).status
        rest = httpx.get(f"http://{srv.address}/health", timeout=T, trust_env=False)
        return grpc_status, rest.status_code

    # A watch open across the outage stays open and catches up afterwards (docs/api.md).
    watcher = Watcher("B", stubs[1], before[-1])
    watcher.wait_for_sequence(1, timeout=T)

    postgres_cluster.pause()
    paused_at = time.monotonic()
    try:
        # Health turns NOT_SERVING on both within seconds (the store is probed every 2 s).
        seen: list = []
        while True:
            seen = [health(srv, s) for srv, s in zip(servers, stubs)]
            if all(g == NOT_SERVING and r != 200 for g, r in seen):
                break
            assert time.monotonic() - paused_at < 10, f"health while PostgreSQL is down: {seen}"
            time.sleep(0.1)
        unhealthy_after = time.monotonic() - paused_at
        assert all(r == 503 for _, r in seen), seen
        body = httpx.get(f"http://{servers[0].address}/health", timeout=T, trust_env=False).json()
        assert body["serving_status"] == "NOT_SERVING", body

        # Calls that need the store fail at once and cleanly, naming the store (not its password).
        for i, s in enumerate(stubs):
            t0 = time.monotonic()
            with pytest.raises(grpc.RpcError) as info:
                s.tasks.CreateTask(create_request(idempotency_key=f"during-{i}"), timeout=30)
            took = time.monotonic() - t0
            assert info.value.code() == SC.UNAVAILABLE, (i, info.value.code(), info.value.details())
            assert "postgresql" in info.value.details().lower(), info.value.details()
            assert password not in info.value.details()
            assert took < 15, f"server {i}: CreateTask took {took:.1f}s to fail"
        # Still up, while the workers' calls fail and the servers retry with backoff.
        time.sleep(5)
        assert all(srv.alive() for srv in servers)
        assert not watcher.ended.is_set(), f"the watch ended during the outage: {watcher.error}"
    finally:
        postgres_cluster.resume()
    resumed_at = time.monotonic()
    outage = resumed_at - paused_at

    # Back by itself: health SERVING and CreateTask succeeds on both within 15 s.
    recovered: list = [None, None]
    after: list[str] = []
    while not all(recovered):
        for i, (srv, s) in enumerate(zip(servers, stubs)):
            if recovered[i] is None and health(srv, s) == (SERVING, 200):
                try:
                    after.append(s.tasks.CreateTask(
                        pb.CreateTaskRequest(params=sim_params(sim, RESOLUTION)), timeout=T).task_id)
                    recovered[i] = time.monotonic() - resumed_at
                except grpc.RpcError as err:
                    assert err.code() == SC.UNAVAILABLE, (i, err.code(), err.details())
        assert time.monotonic() - resumed_at < 15, f"not recovered 15 s after PostgreSQL came back: {recovered}"
        time.sleep(0.1)
    # The creates refused during the outage left nothing behind.
    assert not any(key.startswith("during-") for key in _idempotency_keys(url))

    states = wait_until_finished(url, len(before) + len(after), timeout=90)
    tasks = db_tasks(url)
    print(f"\nNOT_SERVING {unhealthy_after:.1f}s after PostgreSQL stopped; outage {outage:.1f}s; "
          f"serving again {max(recovered):.1f}s after it came back ({recovered}); states {states}; "
          f"attempts {attempts_histogram(tasks)}; simulator {sim.admin()['counters']}")
    assert set(tasks) == set(before) | set(after)
    assert states == {"COMPLETED": len(before) + len(after)}, states
    assert watcher.ended.wait(T), f"the watch did not end: {watcher.summary()}"
    assert watcher.error is None and watcher.call.code() == SC.OK, (watcher.error, watcher.call.code())
    sequences = [e.sequence for e in watcher.events]
    assert sequences == sorted(set(sequences)), sequences
    assert watcher.events[-1].task.status == pb.TASK_STATUS_COMPLETED, watcher.summary()
    for srv in servers:
        assert srv.alive()
        assert password not in srv.stderr_tail(10**7), "the PostgreSQL password appears in the server log"


def _idempotency_keys(url: str) -> list[str]:
    with services.connect(url) as conn:
        return [row[0] for row in conn.execute(
            "SELECT idempotency_key FROM swapline_tasks WHERE idempotency_key IS NOT NULL").fetchall()]
