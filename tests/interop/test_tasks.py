"""TaskService and ConsumerService driven by the stock grpcio client: every RPC, its error
paths, the scheduler's ordering, long-polls, leases and the watch streams.

Every test gets a fresh server (an empty queue); tests that need a short lease start their own.
"""

from __future__ import annotations

import queue
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import grpc
import pytest

from support import (SOURCE, TARGET, RawH2, Stubs, create_request, frame, now_ms, params, without_history,
                     tasks_pb2 as pb, wait_for)

T = 10  # seconds: the deadline for calls that should answer at once
SC = grpc.StatusCode

FACEFUSION_SWAPPER_MODELS = [
    "blendswap_256", "ghost_1_256", "ghost_2_256", "ghost_3_256", "hififace_unofficial_256",
    "hyperswap_1a_256", "hyperswap_1b_256", "hyperswap_1c_256", "inswapper_128",
    "inswapper_128_fp16", "simswap_256", "simswap_unofficial_512", "uniface_256",
]


def rpc_error(fn, *args, **kw) -> grpc.RpcError:
    kw.setdefault("timeout", T)
    with pytest.raises(grpc.RpcError) as info:
        fn(*args, **kw)
    return info.value


def create(stubs: Stubs, **kw) -> pb.Task:
    return stubs.tasks.CreateTask(create_request(**kw), timeout=T)


def fetch(stubs: Stubs, wait_ms: int = 0, workflows=(), consumer="pytest", timeout=None):
    return stubs.consumer.FetchTask(
        pb.FetchTaskRequest(consumer_id=consumer, workflows=list(workflows), wait_ms=wait_ms),
        timeout=timeout or T + wait_ms / 1000)


def fetch_future(stubs: Stubs, wait_ms: int, timeout=None, consumer="pytest"):
    return stubs.consumer.FetchTask.future(
        pb.FetchTaskRequest(consumer_id=consumer, wait_ms=wait_ms),
        timeout=timeout or T + wait_ms / 1000)


def get(stubs: Stubs, task_id: str) -> pb.Task:
    return stubs.tasks.GetTask(pb.GetTaskRequest(task_id=task_id), timeout=T)


def update(stubs: Stubs, task_id: str, lease_id: str, status, **kw) -> pb.Task:
    return stubs.consumer.UpdateStatus(
        pb.UpdateStatusRequest(task_id=task_id, lease_id=lease_id, status=status, **kw), timeout=T)


def assert_empty_fetch(resp: pb.FetchTaskResponse) -> None:
    assert not resp.HasField("task"), f"expected no task, got {resp.task}"
    assert resp.lease_id == ""
    assert resp.lease_expires_at_ms == 0


# ---------------------------------------------------------------------------------------------
# CreateTask / GetTask
# ---------------------------------------------------------------------------------------------


def test_create_task_fills_defaults_and_unified_fields(stubs):
    before = now_ms()
    task = create(stubs)
    after = now_ms()
    assert re.fullmatch(r"task_[0-9A-Za-z_-]+", task.task_id), task.task_id
    assert task.status == pb.TASK_STATUS_PENDING
    assert task.workflow == "face_swap"
    assert task.params.source_url == SOURCE
    assert task.params.target_url == TARGET
    assert task.params.model == "inswapper_128_fp16"
    assert task.params.resolution == "1024x1024"
    assert task.environment != ""
    assert task.target_port > 0
    assert task.source_channel != ""
    assert before - 2000 <= task.created_at_ms <= after + 2000
    assert task.updated_at_ms >= task.created_at_ms
    assert task.attempt == 0
    assert task.error == ""
    assert without_history(get(stubs, task.task_id)) == task


def test_create_task_keeps_explicit_fields(stubs):
    task = create(stubs, workflow="face_swap", priority=7,
                  params=params(model="hyperswap_1a_256", resolution="512x512",
                                options={"face_selector_mode": "one"}))
    assert task.workflow == "face_swap"
    assert task.priority == 7
    assert task.params.model == "hyperswap_1a_256"
    assert task.params.resolution == "512x512"
    assert dict(task.params.options) == {"face_selector_mode": "one"}
    assert without_history(get(stubs, task.task_id)) == task


def test_task_ids_are_unique_and_sortable(stubs):
    ids = [create(stubs).task_id for _ in range(50)]
    assert len(set(ids)) == len(ids)
    assert all(i.startswith("task_") for i in ids)
    assert ids == sorted(ids), "task ids must sort in creation order"


BAD_FIELDS = [
    ({"source_url": ""}, "source_url"),
    ({"source_url": "not a url"}, "source_url"),
    ({"source_url": "/relative/source.jpg"}, "source_url"),
    ({"source_url": "ftp://example.com/source.jpg"}, "source_url"),
    ({"source_url": "file:///etc/passwd"}, "source_url"),
    ({"source_url": "http://"}, "source_url"),
    ({"source_url": "https:///no-host.jpg"}, "source_url"),
    ({"target_url": ""}, "target_url"),
    ({"target_url": "example.com/target.jpg"}, "target_url"),
    ({"target_url": "javascript:alert(1)"}, "target_url"),
    ({"model": "inswapper_129"}, "model"),
    ({"model": "INSWAPPER_128_FP16 "}, "model"),
    ({"resolution": "big"}, "resolution"),
    ({"resolution": "1024"}, "resolution"),
    ({"resolution": "1024x"}, "resolution"),
    ({"resolution": "x1024"}, "resolution"),
    ({"resolution": "64x64"}, "resolution"),
    ({"resolution": "2048x2048"}, "resolution"),
    ({"resolution": "-128x-128"}, "resolution"),
]


@pytest.mark.parametrize("fields,name", BAD_FIELDS, ids=[f"{n}={next(iter(f.values()))!r}"
                                                         for f, n in BAD_FIELDS])
def test_create_task_rejects_bad_field(stubs, fields, name):
    err = rpc_error(stubs.tasks.CreateTask, create_request(params=params(**fields)))
    assert err.code() == SC.INVALID_ARGUMENT
    assert name in err.details(), f"message must name {name}: {err.details()!r}"
    assert_empty_fetch(fetch(stubs))  # nothing was queued


def test_create_task_without_params_is_invalid(stubs):
    err = rpc_error(stubs.tasks.CreateTask, pb.CreateTaskRequest())
    assert err.code() == SC.INVALID_ARGUMENT
    assert "source_url" in err.details() or "params" in err.details(), err.details()


@pytest.mark.parametrize("model", FACEFUSION_SWAPPER_MODELS)
def test_create_task_accepts_every_facefusion_swapper_model(stubs, model):
    task = create(stubs, params=params(model=model, resolution="1024x1024"))
    assert task.params.model == model
    assert task.status == pb.TASK_STATUS_PENDING


@pytest.mark.parametrize("resolution", ["128x128", "256x256", "512x512", "1024x1024"])
def test_create_task_accepts_supported_resolutions(stubs, resolution):
    task = create(stubs, params=params(model="inswapper_128_fp16", resolution=resolution))
    assert task.params.resolution == resolution


def test_idempotency_key_returns_the_same_task(stubs):
    a = create(stubs, idempotency_key="order-1")
    b = create(stubs, idempotency_key="order-1")
    c = create(stubs, idempotency_key="order-2")
    assert a.task_id == b.task_id
    assert c.task_id != a.task_id
    # Only two tasks were queued.
    got = {fetch(stubs).task.task_id, fetch(stubs).task.task_id}
    assert got == {a.task_id, c.task_id}
    assert_empty_fetch(fetch(stubs))


def test_idempotency_key_under_concurrency(stubs):
    with ThreadPoolExecutor(16) as pool:
        ids = set(pool.map(lambda _: create(stubs, idempotency_key="same").task_id, range(32)))
    assert len(ids) == 1
    assert fetch(stubs).task.task_id in ids
    assert_empty_fetch(fetch(stubs))


def test_unknown_task_is_not_found_everywhere(stubs):
    missing = "task_doesnotexist000000000000"
    assert rpc_error(stubs.tasks.GetTask, pb.GetTaskRequest(task_id=missing)).code() == SC.NOT_FOUND
    assert rpc_error(stubs.tasks.CancelTask,
                     pb.CancelTaskRequest(task_id=missing)).code() == SC.NOT_FOUND
    assert rpc_error(stubs.consumer.UpdateStatus, pb.UpdateStatusRequest(
        task_id=missing, lease_id="lease", status=pb.TASK_STATUS_PROCESSING)).code() == SC.NOT_FOUND
    with pytest.raises(grpc.RpcError) as info:
        list(stubs.tasks.WatchTask(pb.WatchTaskRequest(task_id=missing), timeout=T))
    assert info.value.code() == SC.NOT_FOUND


# ---------------------------------------------------------------------------------------------
# FetchTask
# ---------------------------------------------------------------------------------------------


def test_fetch_on_empty_queue_answers_at_once(stubs):
    t0 = time.monotonic()
    resp = fetch(stubs, wait_ms=0)
    assert time.monotonic() - t0 < 1.0
    assert_empty_fetch(resp)


def test_fetch_delivers_task_with_lease(stubs):
    created = create(stubs)
    t0 = now_ms()
    resp = fetch(stubs)
    assert resp.task.task_id == created.task_id
    assert resp.task.status == pb.TASK_STATUS_PROCESSING
    assert resp.task.attempt == 1
    assert resp.task.params == created.params
    assert resp.lease_id != ""
    # default lease is 30 s
    assert t0 + 25_000 <= resp.lease_expires_at_ms <= now_ms() + 35_000, resp.lease_expires_at_ms
    stored = get(stubs, created.task_id)
    assert stored.status == pb.TASK_STATUS_PROCESSING
    assert stored.attempt == 1
    assert_empty_fetch(fetch(stubs))


def test_lease_ms_flag_sets_lease_length(server_factory):
    stubs = Stubs(server_factory("--lease-ms", "4000").channel())
    create(stubs)
    t0 = now_ms()
    resp = fetch(stubs)
    assert t0 + 3000 <= resp.lease_expires_at_ms <= now_ms() + 5000, resp.lease_expires_at_ms


def test_fetch_order_is_priority_then_age(stubs):
    low = create(stubs, priority=0)
    high1 = create(stubs, priority=10)
    mid = create(stubs, priority=5)
    high2 = create(stubs, priority=10)
    low2 = create(stubs, priority=0)
    order = [fetch(stubs).task.task_id for _ in range(5)]
    assert order == [high1.task_id, high2.task_id, mid.task_id, low.task_id, low2.task_id]
    assert_empty_fetch(fetch(stubs))


def test_fetch_filters_by_workflow(stubs):
    task = create(stubs)
    assert_empty_fetch(fetch(stubs, workflows=["no_such_workflow"]))
    assert fetch(stubs, workflows=["no_such_workflow", "face_swap"]).task.task_id == task.task_id


def test_long_poll_is_answered_when_a_task_arrives(stubs):
    fut = fetch_future(stubs, wait_ms=10_000)
    time.sleep(0.5)
    assert not fut.done(), "long-poll answered before any task existed"
    t0 = time.monotonic()
    task = create(stubs)
    resp = fut.result(timeout=T)
    assert time.monotonic() - t0 < 2.0, "long-poll not answered promptly"
    assert resp.task.task_id == task.task_id
    assert resp.task.attempt == 1
    assert resp.lease_id


def test_long_poll_times_out_empty(stubs):
    t0 = time.monotonic()
    resp = fetch(stubs, wait_ms=800)
    elapsed = time.monotonic() - t0
    assert_empty_fetch(resp)
    assert 0.6 <= elapsed < 5.0, elapsed


def test_waiting_consumers_are_served_first_come_first_served(stubs):
    futs = []
    for i in range(4):
        futs.append(fetch_future(stubs, wait_ms=20_000, consumer=f"waiter-{i}"))
        time.sleep(0.3)  # make arrival order unambiguous
    for i, fut in enumerate(futs):
        task = create(stubs)
        resp = fut.result(timeout=T)
        assert resp.task.task_id == task.task_id, f"waiter {i} should have been served"
        for later in futs[i + 1:]:
            assert not later.done(), "a later waiter was answered out of turn"


def test_cancelled_waiting_fetch_does_not_lose_the_task(stubs):
    fut = fetch_future(stubs, wait_ms=20_000)
    time.sleep(0.3)
    assert fut.cancel()
    time.sleep(0.3)  # let the RST_STREAM reach the server
    task = create(stubs)
    resp = fetch(stubs, wait_ms=2000)
    assert resp.task.task_id == task.task_id
    assert resp.task.attempt == 1, "an undelivered hand-out must not count as an attempt"


def test_fetch_whose_deadline_expired_does_not_lose_the_task(stubs):
    err = rpc_error(stubs.consumer.FetchTask, pb.FetchTaskRequest(wait_ms=20_000), timeout=0.5)
    assert err.code() == SC.DEADLINE_EXCEEDED
    time.sleep(0.2)
    task = create(stubs)
    assert fetch(stubs, wait_ms=2000).task.task_id == task.task_id


def test_no_task_lost_when_waiters_are_cancelled_while_tasks_arrive(server_factory):
    # Races cancellation against delivery. A response the server already wrote before the
    # RST_STREAM arrived is legitimately lost to the client, so such a task must come back when
    # its (short) lease expires; every task must eventually be seen by some consumer.
    srv = server_factory("--lease-ms", "1500", "--max-attempts", "10")
    stubs = Stubs(srv.channel())
    creator = Stubs(srv.channel())
    created, seen = set(), set()
    for _ in range(30):
        fut = fetch_future(stubs, wait_ms=5000)
        time.sleep(0.02)
        created.add(create(creator).task_id)
        if not fut.cancel():
            resp = fut.result(timeout=T)
            if resp.HasField("task"):
                seen.add(resp.task.task_id)
    deadline = time.monotonic() + 10
    while seen != created and time.monotonic() < deadline:
        resp = fetch(stubs, wait_ms=500)
        if resp.HasField("task"):
            seen.add(resp.task.task_id)
            update(stubs, resp.task.task_id, resp.lease_id, pb.TASK_STATUS_COMPLETED,
                   result=pb.TaskResult(output_url="https://example.com/out.jpg"))
    assert seen == created, f"lost tasks: {sorted(created - seen)}"


def test_many_concurrent_waiters_each_get_one_task(stubs):
    n = 40
    futs = [fetch_future(stubs, wait_ms=20_000, consumer=f"c{i}") for i in range(n)]
    time.sleep(0.5)
    ids = {create(stubs).task_id for _ in range(n)}
    got = [f.result(timeout=T).task.task_id for f in futs]
    assert sorted(got) == sorted(ids), "each task delivered exactly once"
    assert_empty_fetch(fetch(stubs))


# ---------------------------------------------------------------------------------------------
# UpdateStatus and leases
# ---------------------------------------------------------------------------------------------


def fetched(stubs: Stubs, **kw):
    task = create(stubs, **kw)
    resp = fetch(stubs, wait_ms=2000)
    assert resp.task.task_id == task.task_id
    return resp


def test_update_with_wrong_lease_is_failed_precondition(stubs):
    resp = fetched(stubs)
    for lease in ["not-the-lease", ""]:
        err = rpc_error(stubs.consumer.UpdateStatus, pb.UpdateStatusRequest(
            task_id=resp.task.task_id, lease_id=lease, status=pb.TASK_STATUS_COMPLETED))
        assert err.code() == SC.FAILED_PRECONDITION, (lease, err)
    assert get(stubs, resp.task.task_id).status == pb.TASK_STATUS_PROCESSING


def test_update_of_pending_task_is_failed_precondition(stubs):
    task = create(stubs)
    err = rpc_error(stubs.consumer.UpdateStatus, pb.UpdateStatusRequest(
        task_id=task.task_id, lease_id="made-up", status=pb.TASK_STATUS_PROCESSING))
    assert err.code() == SC.FAILED_PRECONDITION
    assert get(stubs, task.task_id).status == pb.TASK_STATUS_PENDING


def test_progress_update_is_stored(stubs):
    resp = fetched(stubs)
    before = get(stubs, resp.task.task_id)
    time.sleep(0.01)
    task = update(stubs, resp.task.task_id, resp.lease_id, pb.TASK_STATUS_PROCESSING,
                  progress=0.25, message="detecting faces")
    assert task.status == pb.TASK_STATUS_PROCESSING
    assert task.progress == pytest.approx(0.25)
    stored = get(stubs, resp.task.task_id)
    assert stored.progress == pytest.approx(0.25)
    assert stored.updated_at_ms >= before.updated_at_ms


def test_completed_is_terminal(stubs):
    resp = fetched(stubs)
    result = pb.TaskResult(output_url="https://cdn.example.com/out.jpg", job_id="job_1",
                           processing_time=12.5, storage_provider="gcs",
                           outputs={"gif_url": "https://cdn.example.com/out.gif"})
    done = update(stubs, resp.task.task_id, resp.lease_id, pb.TASK_STATUS_COMPLETED,
                  result=result)
    # The server adds output_providers, the typed form of storage_provider.
    result.output_providers["gif_url"] = "gcs"
    assert done.status == pb.TASK_STATUS_COMPLETED
    assert done.result == result
    for status in [pb.TASK_STATUS_PROCESSING, pb.TASK_STATUS_FAILED, pb.TASK_STATUS_COMPLETED]:
        err = rpc_error(stubs.consumer.UpdateStatus, pb.UpdateStatusRequest(
            task_id=resp.task.task_id, lease_id=resp.lease_id, status=status, error="late"))
        assert err.code() == SC.FAILED_PRECONDITION, status
    try:
        after_cancel = stubs.tasks.CancelTask(pb.CancelTaskRequest(task_id=resp.task.task_id),
                                              timeout=T)
        assert after_cancel.status == pb.TASK_STATUS_COMPLETED
    except grpc.RpcError as err:
        assert err.code() == SC.FAILED_PRECONDITION
    stored = get(stubs, resp.task.task_id)
    assert stored.status == pb.TASK_STATUS_COMPLETED
    assert stored.result == result
    assert_empty_fetch(fetch(stubs))


def test_failed_is_terminal(stubs):
    resp = fetched(stubs)
    failed = update(stubs, resp.task.task_id, resp.lease_id, pb.TASK_STATUS_FAILED,
                    error="facefusion: no face detected")
    assert failed.status == pb.TASK_STATUS_FAILED
    assert failed.error == "facefusion: no face detected"
    err = rpc_error(stubs.consumer.UpdateStatus, pb.UpdateStatusRequest(
        task_id=resp.task.task_id, lease_id=resp.lease_id, status=pb.TASK_STATUS_COMPLETED))
    assert err.code() == SC.FAILED_PRECONDITION
    stored = get(stubs, resp.task.task_id)
    assert stored.status == pb.TASK_STATUS_FAILED
    assert stored.error == "facefusion: no face detected"
    assert_empty_fetch(fetch(stubs))


def test_update_of_cancelled_task_is_aborted(stubs):
    resp = fetched(stubs)
    cancelled = stubs.tasks.CancelTask(pb.CancelTaskRequest(task_id=resp.task.task_id), timeout=T)
    assert cancelled.status == pb.TASK_STATUS_CANCELLED
    for status in [pb.TASK_STATUS_PROCESSING, pb.TASK_STATUS_COMPLETED]:
        err = rpc_error(stubs.consumer.UpdateStatus, pb.UpdateStatusRequest(
            task_id=resp.task.task_id, lease_id=resp.lease_id, status=status, progress=0.5))
        assert err.code() == SC.ABORTED, status
    assert get(stubs, resp.task.task_id).status == pb.TASK_STATUS_CANCELLED


def test_expired_lease_returns_task_to_queue(server_factory):
    stubs = Stubs(server_factory("--lease-ms", "600").channel())
    first = fetched(stubs)
    wait_for(lambda: get(stubs, first.task.task_id).status == pb.TASK_STATUS_PENDING, 5,
             what="lease expiry → PENDING")
    second = fetch(stubs, wait_ms=2000)
    assert second.task.task_id == first.task.task_id
    assert second.task.attempt == 2
    assert second.lease_id and second.lease_id != first.lease_id
    err = rpc_error(stubs.consumer.UpdateStatus, pb.UpdateStatusRequest(
        task_id=first.task.task_id, lease_id=first.lease_id, status=pb.TASK_STATUS_COMPLETED))
    assert err.code() == SC.FAILED_PRECONDITION, "the expired lease must no longer be valid"
    done = update(stubs, first.task.task_id, second.lease_id, pb.TASK_STATUS_COMPLETED,
                  result=pb.TaskResult(output_url="https://example.com/o.jpg"))
    assert done.status == pb.TASK_STATUS_COMPLETED


def test_requeued_task_goes_to_a_waiting_consumer(server_factory):
    stubs = Stubs(server_factory("--lease-ms", "800").channel())
    first = fetched(stubs)
    t0 = time.monotonic()
    resp = fetch(stubs, wait_ms=6000)
    assert resp.task.task_id == first.task.task_id
    assert resp.task.attempt == 2
    assert time.monotonic() - t0 < 4.0


def test_progress_extends_the_lease(server_factory):
    stubs = Stubs(server_factory("--lease-ms", "1500").channel())
    resp = fetched(stubs)
    start = time.monotonic()
    progress = 0.0
    while time.monotonic() - start < 4.0:  # well past the original expiry
        time.sleep(0.3)
        progress += 0.05
        task = update(stubs, resp.task.task_id, resp.lease_id, pb.TASK_STATUS_PROCESSING,
                      progress=progress)
        assert task.status == pb.TASK_STATUS_PROCESSING
        assert task.attempt == 1
    assert_empty_fetch(fetch(stubs))
    # Without further progress the lease runs out.
    wait_for(lambda: get(stubs, resp.task.task_id).status == pb.TASK_STATUS_PENDING, 6,
             what="lease expiry after progress stopped")
    done = fetch(stubs)
    assert done.task.attempt == 2


def test_max_attempts_default_is_three(server_factory):
    stubs = Stubs(server_factory("--lease-ms", "300").channel())
    task = create(stubs)
    for attempt in (1, 2, 3):
        resp = fetch(stubs, wait_ms=5000)
        assert resp.task.task_id == task.task_id
        assert resp.task.attempt == attempt
        wait_for(lambda: get(stubs, task.task_id).status != pb.TASK_STATUS_PROCESSING, 5,
                 what=f"lease expiry of attempt {attempt}")
    final = get(stubs, task.task_id)
    assert final.status == pb.TASK_STATUS_FAILED
    assert re.search(r"lease|attempt", final.error, re.I), final.error
    assert_empty_fetch(fetch(stubs, wait_ms=800))


def test_max_attempts_flag(server_factory):
    stubs = Stubs(server_factory("--lease-ms", "300", "--max-attempts", "1").channel())
    task = create(stubs)
    assert fetch(stubs).task.attempt == 1
    wait_for(lambda: get(stubs, task.task_id).status != pb.TASK_STATUS_PROCESSING, 5,
             what="lease expiry")
    final = get(stubs, task.task_id)
    assert final.status == pb.TASK_STATUS_FAILED
    assert re.search(r"lease|attempt", final.error, re.I), final.error


# ---------------------------------------------------------------------------------------------
# CancelTask
# ---------------------------------------------------------------------------------------------


def test_cancel_pending_task(stubs):
    task = create(stubs)
    cancelled = stubs.tasks.CancelTask(pb.CancelTaskRequest(task_id=task.task_id), timeout=T)
    assert cancelled.task_id == task.task_id
    assert cancelled.status == pb.TASK_STATUS_CANCELLED
    assert get(stubs, task.task_id).status == pb.TASK_STATUS_CANCELLED
    assert_empty_fetch(fetch(stubs))  # a cancelled task is never handed out


def test_cancel_processing_task(stubs):
    resp = fetched(stubs)
    cancelled = stubs.tasks.CancelTask(pb.CancelTaskRequest(task_id=resp.task.task_id), timeout=T)
    assert cancelled.status == pb.TASK_STATUS_CANCELLED
    assert get(stubs, resp.task.task_id).status == pb.TASK_STATUS_CANCELLED


def test_cancel_twice_stays_cancelled(stubs):
    task = create(stubs)
    stubs.tasks.CancelTask(pb.CancelTaskRequest(task_id=task.task_id), timeout=T)
    try:
        again = stubs.tasks.CancelTask(pb.CancelTaskRequest(task_id=task.task_id), timeout=T)
        assert again.status == pb.TASK_STATUS_CANCELLED
    except grpc.RpcError as err:
        assert err.code() == SC.FAILED_PRECONDITION
    assert get(stubs, task.task_id).status == pb.TASK_STATUS_CANCELLED


# ---------------------------------------------------------------------------------------------
# WatchTask
# ---------------------------------------------------------------------------------------------


class Watcher:
    """Reads a WatchTask stream on a thread so the test can wait for events with a timeout."""

    def __init__(self, stubs: Stubs, task_id: str, read: bool = True):
        self.call = stubs.tasks.WatchTask(pb.WatchTaskRequest(task_id=task_id), timeout=60)
        self.events: queue.Queue = queue.Queue()
        self.code = None
        self.details = None
        self.done = threading.Event()
        self.go = threading.Event()
        if read:
            self.go.set()
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self):
        try:
            self.go.wait()
            for ev in self.call:
                self.events.put(ev)
            self.code = SC.OK
        except grpc.RpcError as err:
            self.code, self.details = err.code(), err.details()
        finally:
            self.done.set()

    def next(self, timeout=5.0) -> pb.TaskEvent:
        try:
            return self.events.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"no watch event within {timeout}s (code={self.code})") from None

    def finish(self, timeout=5.0) -> list[pb.TaskEvent]:
        assert self.done.wait(timeout), "watch stream did not end"
        rest = []
        while not self.events.empty():
            rest.append(self.events.get_nowait())
        return rest


def test_watch_follows_a_task_to_completion(server):
    client, worker = Stubs(server.channel()), Stubs(server.channel())
    task = create(client)
    w = Watcher(client, task.task_id)
    e1 = w.next()
    assert e1.task.task_id == task.task_id
    assert e1.task.status == pb.TASK_STATUS_PENDING

    resp = fetch(worker)
    e2 = w.next()
    assert e2.task.status == pb.TASK_STATUS_PROCESSING
    assert e2.task.attempt == 1

    update(worker, task.task_id, resp.lease_id, pb.TASK_STATUS_PROCESSING, progress=0.5)
    e3 = w.next()
    assert e3.task.status == pb.TASK_STATUS_PROCESSING
    assert e3.task.progress == pytest.approx(0.5)

    result = pb.TaskResult(output_url="https://cdn.example.com/out.jpg")
    update(worker, task.task_id, resp.lease_id, pb.TASK_STATUS_COMPLETED, result=result)
    e4 = w.next()
    assert e4.task.status == pb.TASK_STATUS_COMPLETED
    assert e4.task.result.output_url == result.output_url

    assert w.finish() == [], "no events after the terminal one"
    assert w.code == SC.OK, (w.code, w.details)
    seqs = [e.sequence for e in (e1, e2, e3, e4)]
    assert all(a < b for a, b in zip(seqs, seqs[1:])), seqs


def test_watch_sees_cancellation_and_ends(server):
    client, other = Stubs(server.channel()), Stubs(server.channel())
    task = create(client)
    w = Watcher(client, task.task_id)
    assert w.next().task.status == pb.TASK_STATUS_PENDING
    other.tasks.CancelTask(pb.CancelTaskRequest(task_id=task.task_id), timeout=T)
    last = w.next()
    assert last.task.status == pb.TASK_STATUS_CANCELLED
    assert w.finish() == []
    assert w.code == SC.OK


def test_watch_on_terminal_task_yields_one_event(stubs):
    task = create(stubs)
    stubs.tasks.CancelTask(pb.CancelTaskRequest(task_id=task.task_id), timeout=T)
    events = list(stubs.tasks.WatchTask(pb.WatchTaskRequest(task_id=task.task_id), timeout=T))
    assert len(events) == 1
    assert events[0].task.status == pb.TASK_STATUS_CANCELLED
    assert events[0].task.task_id == task.task_id


def test_many_watchers_see_the_same_change(server):
    client = Stubs(server.channel())
    task = create(client)
    watchers = [Watcher(Stubs(server.channel()), task.task_id) for _ in range(8)]
    for w in watchers:
        assert w.next().task.status == pb.TASK_STATUS_PENDING
    client.tasks.CancelTask(pb.CancelTaskRequest(task_id=task.task_id), timeout=T)
    for w in watchers:
        assert w.next().task.status == pb.TASK_STATUS_CANCELLED
        w.finish()
        assert w.code == SC.OK


def test_slow_watcher_does_not_block_the_scheduler_or_other_watchers(server):
    client, worker = Stubs(server.channel()), Stubs(server.channel())
    task = create(client)
    slow = Watcher(Stubs(server.channel()), task.task_id, read=False)  # never reads, for now
    fast = Watcher(client, task.task_id)
    assert fast.next().task.status == pb.TASK_STATUS_PENDING
    resp = fetch(worker)
    n = 400
    t0 = time.monotonic()
    for i in range(n):
        update(worker, task.task_id, resp.lease_id, pb.TASK_STATUS_PROCESSING,
               progress=(i + 1) / (n + 1), message="x" * 200)
    update(worker, task.task_id, resp.lease_id, pb.TASK_STATUS_COMPLETED,
           result=pb.TaskResult(output_url="https://cdn.example.com/out.jpg"))
    assert time.monotonic() - t0 < 30, "updates slowed down by an idle watcher"
    fast_events = [fast.next()]
    fast_events += fast.finish(timeout=10)
    assert fast.code == SC.OK
    assert fast_events[-1].task.status == pb.TASK_STATUS_COMPLETED
    slow.go.set()
    slow_events = [slow.next(timeout=10)]
    slow_events += slow.finish(timeout=10)
    assert slow.code == SC.OK
    # Its first event may already be a later state (it subscribed asynchronously, and a
    # stalled watcher is coalesced to the latest state), but it must end on the terminal one.
    assert slow_events[-1].task.status == pb.TASK_STATUS_COMPLETED
    seqs = [e.sequence for e in slow_events]
    assert all(a < b for a, b in zip(seqs, seqs[1:])), "sequence must increase"


# ---------------------------------------------------------------------------------------------
# ProcessSync
# ---------------------------------------------------------------------------------------------


def test_process_sync_times_out_without_workers(stubs):
    t0 = time.monotonic()
    err = rpc_error(stubs.tasks.ProcessSync, pb.ProcessSyncRequest(params=params()), timeout=1.0)
    assert err.code() == SC.DEADLINE_EXCEEDED
    assert 0.8 <= time.monotonic() - t0 < 5.0


def test_process_sync_deadline_message_names_the_task(server, stubs):
    # grpcio's own timer races the server's answer, so read the server's status on a raw
    # stream that carries grpc-timeout but has no client-side deadline.
    h2c = RawH2(server.port)
    try:
        body = frame(pb.ProcessSyncRequest(params=params()).SerializeToString())
        t0 = time.monotonic()
        sid = h2c.request("/swapline.v1.TaskService/ProcessSync", body,
                          extra=[("grpc-timeout", "1S")])
        st = h2c.wait(sid, timeout=10)
        assert 0.8 <= time.monotonic() - t0 < 5.0
    finally:
        h2c.close()
    assert st.grpc_status == grpc.StatusCode.DEADLINE_EXCEEDED.value[0], st
    m = re.search(r"task_[0-9A-Za-z_-]+", st.grpc_message)
    assert m, f"message must name the task: {st.grpc_message!r}"
    assert get(stubs, m.group(0)).task_id == m.group(0)


def test_process_sync_rejects_bad_params(stubs):
    err = rpc_error(stubs.tasks.ProcessSync,
                    pb.ProcessSyncRequest(params=params(target_url="nope")))
    assert err.code() == SC.INVALID_ARGUMENT
    assert "target_url" in err.details()


def test_process_sync_answers_when_a_consumer_completes_the_task(server):
    client, worker = Stubs(server.channel()), Stubs(server.channel())
    create(client)  # an older, normal-priority task
    sync_params = params(source_url="https://example.com/sync-source.jpg")
    fut = client.tasks.ProcessSync.future(pb.ProcessSyncRequest(params=sync_params), timeout=20)
    time.sleep(0.5)  # let the sync task be queued
    resp = fetch(worker)
    # ProcessSync queues a high-priority task: it jumps the older one.
    assert resp.task.params.source_url == sync_params.source_url
    result = pb.TaskResult(output_url="https://cdn.example.com/sync.jpg", job_id="job_9",
                           processing_time=3.5)
    update(worker, resp.task.task_id, resp.lease_id, pb.TASK_STATUS_COMPLETED, result=result)
    answer = fut.result(timeout=10)
    assert answer.task_id == resp.task.task_id
    assert answer.output_path == result.output_url
    assert answer.job_id == "job_9"
