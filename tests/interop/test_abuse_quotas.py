"""Quotas against clients that create too much (docs/security.md, "Quotas"): the per-client
rate of task creation, the open tasks of one client token, the queue's length and the longest
a task may stay PENDING. Each refusal is RESOURCE_EXHAUSTED over gRPC and 429 over REST, with
a retry hint where waiting helps; other clients go on being served.

Clients without a token are told apart by address: the REST "other client" connects from
127.0.0.2 (loopback, a different peer address) while the abusive client uses 127.0.0.1.
"""

from __future__ import annotations

import queue
import threading
import time

import grpc
import httpx
import pytest

from abuse import assert_normal_client_served, assert_rss_back, server_rss
from support import HOST, Stubs, create_request, tasks_pb2 as pb

T = 10
SC = grpc.StatusCode
LEGACY_BODY = {"source_url": "https://example.com/face.jpg", "target_url": "https://example.com/photo.jpg",
               "resolution": "1024x1024", "model": "inswapper_128_fp16"}
CLIENT, OTHER_CLIENT = "quota-client-1", "quota-client-2"
# Refused creates are answered without storing anything: a flood of them may not leave the
# server holding more than this.
RSS_BOUND_MIB = 32


def tokens_file(tmp_path) -> str:
    path = tmp_path / "tokens"
    path.write_text(f"client {CLIENT}\nclient {OTHER_CLIENT}\n")
    return str(path)


def md(token: str) -> list[tuple[str, str]]:
    return [("authorization", f"Bearer {token}")]


def rest(server, local_address: str = HOST, token: str | None = None) -> httpx.Client:
    headers = {"authorization": f"Bearer {token}"} if token else {}
    return httpx.Client(base_url=f"http://{HOST}:{server.port}", timeout=T, trust_env=False, headers=headers,
                        transport=httpx.HTTPTransport(local_address=local_address))


def create_until_refused(stubs: Stubs, limit: int, metadata=None) -> tuple[int, grpc.RpcError]:
    """Creates tasks until one is refused; returns how many were created and the refusal."""
    for created in range(limit):
        try:
            stubs.tasks.CreateTask(create_request(), metadata=metadata, timeout=T)
        except grpc.RpcError as error:
            return created, error
    raise AssertionError(f"{limit} creates and no refusal")


def trailer(error: grpc.RpcError, name: str) -> str | None:
    return dict(error.trailing_metadata() or ()).get(name)


def test_a_client_over_its_create_rate_is_told_when_to_retry_and_others_go_on(server_factory):
    # One token every 5 s: a slow machine refills little while the test runs.
    server = server_factory("--store", "memory", "--create-rate", "0.2", "--create-burst", "5")
    stubs = Stubs(server.channel())
    with rest(server, local_address="127.0.0.2") as warm:
        assert warm.post("/api/face-swap/create-task", json=LEGACY_BODY).status_code == 200
    baseline = server_rss(server)

    created, refusal = create_until_refused(stubs, 50)
    assert 5 <= created <= 7, created  # the burst, and what refilled meanwhile
    assert refusal.code() == SC.RESOURCE_EXHAUSTED, refusal
    seconds = trailer(refusal, "retry-after")
    assert seconds is not None and 1 <= int(seconds) <= 5, refusal.trailing_metadata()
    assert f"retry after {seconds} s" in refusal.details(), refusal.details()
    assert "address 127.0.0.1" in refusal.details(), refusal.details()

    # ProcessSync draws on the same bucket.
    with pytest.raises(grpc.RpcError) as sync:
        stubs.tasks.ProcessSync(pb.ProcessSyncRequest(params=create_request().params), timeout=T)
    assert sync.value.code() == SC.RESOURCE_EXHAUSTED

    # REST from the same address: 429 with Retry-After.
    with rest(server) as same:
        answer = same.post("/api/face-swap/create-task", json=LEGACY_BODY)
        assert answer.status_code == 429, answer.text
        assert 1 <= int(answer.headers["retry-after"]) <= 5, answer.headers
        assert "retry after" in answer.json()["detail"]
    # Another address has a bucket of its own.
    with rest(server, local_address="127.0.0.2") as other:
        assert other.post("/api/face-swap/create-task", json=LEGACY_BODY).status_code == 200

    # A flood of refused creates costs nothing lasting, and gets no more than the rate.
    started, passed = time.monotonic(), 0
    for _ in range(300):
        try:
            stubs.tasks.CreateTask(create_request(), timeout=T)
            passed += 1
        except grpc.RpcError as error:
            assert error.code() == SC.RESOURCE_EXHAUSTED, error
            refusal = error
    assert passed <= 1 + (time.monotonic() - started) * 0.2, passed
    # Waiting as told is enough.
    time.sleep(int(trailer(refusal, "retry-after")) + 0.5)
    assert_normal_client_served(server)
    assert_rss_back(server, baseline, "create-rate flood", bound_mib=RSS_BOUND_MIB)


def test_the_rate_limit_counts_per_token(server_factory, tmp_path):
    server = server_factory("--store", "memory", "--create-rate", "0.5", "--create-burst", "3",
                            "--auth-tokens-file", tokens_file(tmp_path))
    stubs = Stubs(server.channel())
    created, refusal = create_until_refused(stubs, 50, metadata=md(CLIENT))
    assert 3 <= created <= 5 and refusal.code() == SC.RESOURCE_EXHAUSTED, (created, refusal)
    assert trailer(refusal, "retry-after") is not None
    # The same address with another token is another client.
    stubs.tasks.CreateTask(create_request(), metadata=md(OTHER_CLIENT), timeout=T)
    with rest(server, token=CLIENT) as same:
        assert same.post("/api/face-swap/create-task", json=LEGACY_BODY).status_code == 429


def test_open_tasks_of_one_client_are_capped(server_factory, tmp_path):
    server = server_factory("--store", "sqlite", "--max-open-tasks-per-client", "3",
                            "--auth-tokens-file", tokens_file(tmp_path))
    stubs = Stubs(server.channel())
    ids = [stubs.tasks.CreateTask(create_request(), metadata=md(CLIENT), timeout=T).task_id for _ in range(3)]
    baseline = server_rss(server)
    for _ in range(200):
        with pytest.raises(grpc.RpcError) as refused:
            stubs.tasks.CreateTask(create_request(), metadata=md(CLIENT), timeout=T)
        assert refused.value.code() == SC.RESOURCE_EXHAUSTED, refused.value
    assert "3 open" in refused.value.details() and CLIENT not in refused.value.details(), refused.value.details()
    with rest(server, token=CLIENT) as same:
        answer = same.post("/api/face-swap/create-task", json=LEGACY_BODY)
        assert answer.status_code == 429 and "open" in answer.json()["detail"], answer.text
    # Another client is not held back; a finished task makes room.
    stubs.tasks.CreateTask(create_request(), metadata=md(OTHER_CLIENT), timeout=T)
    stubs.tasks.CancelTask(pb.CancelTaskRequest(task_id=ids[0]), metadata=md(CLIENT), timeout=T)
    stubs.tasks.CreateTask(create_request(), metadata=md(CLIENT), timeout=T)
    assert_rss_back(server, baseline, "open-task cap", bound_mib=RSS_BOUND_MIB)


def test_a_full_queue_refuses_creates_until_workers_take_some(server_factory):
    server = server_factory("--store", "sqlite", "--max-queue-length", "5")
    stubs = Stubs(server.channel())
    for _ in range(5):
        stubs.tasks.CreateTask(create_request(), timeout=T)
    baseline = server_rss(server)
    for _ in range(200):
        created, refusal = create_until_refused(stubs, 1)
        assert created == 0 and refusal.code() == SC.RESOURCE_EXHAUSTED, refusal
    assert "queue is full" in refusal.details() and trailer(refusal, "retry-after") == "30", refusal
    with rest(server) as client:
        answer = client.post("/api/face-swap/create-task", json=LEGACY_BODY)
        assert answer.status_code == 429 and answer.headers["retry-after"] == "30", (answer.headers, answer.text)
    # A consumer takes two tasks: room for two more, one of them the normal client's.
    for _ in range(2):
        assert stubs.consumer.FetchTask(pb.FetchTaskRequest(consumer_id="w"), timeout=T).HasField("task")
    assert_normal_client_served(server)
    stubs.tasks.CreateTask(create_request(), timeout=T)
    with pytest.raises(grpc.RpcError):
        stubs.tasks.CreateTask(create_request(), timeout=T)
    assert_rss_back(server, baseline, "full queue", bound_mib=RSS_BOUND_MIB)


def test_a_task_pending_too_long_fails_and_its_watcher_sees_it(server_factory):
    server = server_factory("--store", "sqlite", "--max-pending-age-ms", "1500")
    stubs = Stubs(server.channel())
    task = stubs.tasks.CreateTask(create_request(), timeout=T)
    events: queue.Queue = queue.Queue()

    def watch():
        for event in stubs.tasks.WatchTask(pb.WatchTaskRequest(task_id=task.task_id), timeout=30):
            events.put(event)

    threading.Thread(target=watch, daemon=True).start()
    first = events.get(timeout=T)
    assert first.task.status == pb.TASK_STATUS_PENDING
    last = events.get(timeout=20)
    assert last.task.status == pb.TASK_STATUS_FAILED, last
    assert "stage queue" in last.task.error and "1500 ms" in last.task.error, last.task.error
    stored = stubs.tasks.GetTask(pb.GetTaskRequest(task_id=task.task_id), timeout=T)
    assert stored.status == pb.TASK_STATUS_FAILED
    # A task a consumer took in time is not touched.
    taken = stubs.tasks.CreateTask(create_request(), timeout=T)
    fetched = stubs.consumer.FetchTask(pb.FetchTaskRequest(consumer_id="w"), timeout=T)
    assert fetched.task.task_id == taken.task_id
    time.sleep(2.5)
    assert stubs.tasks.GetTask(pb.GetTaskRequest(task_id=taken.task_id), timeout=T).status \
        == pb.TASK_STATUS_PROCESSING
    assert_normal_client_served(server)


@pytest.mark.parametrize("flag,value", [
    ("--create-rate", "-1"), ("--create-rate", "nan"), ("--create-burst", "0"),
    ("--max-open-tasks-per-client", "-1"), ("--max-queue-length", "-5"), ("--max-pending-age-ms", "-1"),
])
def test_out_of_range_quota_flags_are_refused_at_start(flag, value):
    import subprocess

    from support import BINARY
    run = subprocess.run([str(BINARY), "serve", "--port", "0", "--store", "memory", flag, value],
                         capture_output=True, text=True, timeout=30)
    assert run.returncode != 0 and flag in run.stderr, (run.returncode, run.stderr)
