"""Listing and statistics (issue 13): ListTasks pages through a queue that grows meanwhile,
its filters and their refusals, client isolation and the admin view, GetQueueStats after known
traffic, the REST routes with httpx and Task.history in GetTask; on SQLite and PostgreSQL."""

from __future__ import annotations

import threading
import time

import grpc
import httpx
import pytest

from support import ALLOW_LOCAL_URLS, HOST, SwaplineServer, tasks_pb2 as pb, tasks_pb2_grpc, wait_for

T = 30
ANN, BOB, CONSUMER, ADMIN = "client-token-ann", "client-token-bob", "consumer-token-1", "admin-token-1"
TOKENS = f"client:{ANN},client:{BOB},consumer:{CONSUMER},admin:{ADMIN}"
PARAMS = pb.FaceSwapParams(source_url="https://example.com/a.jpg", target_url="https://example.com/b.jpg")


def md(token: str):
    return (("authorization", f"Bearer {token}"),)


@pytest.fixture(params=["sqlite", "postgres"])
def srv(request):
    """A server with client, consumer and admin tokens, on a fresh SQLite or PostgreSQL store."""
    flags = [ALLOW_LOCAL_URLS]
    if request.param == "postgres":
        flags += ["--store", request.getfixturevalue("postgres_db")]
    server = SwaplineServer(*flags, env={"SWAPLINE_AUTH_TOKENS": TOKENS}).start()
    yield server
    server.stop()


class Client:
    def __init__(self, server: SwaplineServer, token: str):
        channel = server.channel()
        self.tasks = tasks_pb2_grpc.TaskServiceStub(channel)
        self.consumer = tasks_pb2_grpc.ConsumerServiceStub(channel)
        self.md = md(token)

    def create(self, **kw) -> pb.Task:
        return self.tasks.CreateTask(pb.CreateTaskRequest(params=PARAMS, **kw), metadata=self.md, timeout=T)

    def page(self, **kw) -> pb.ListTasksResponse:
        return self.tasks.ListTasks(pb.ListTasksRequest(**kw), metadata=self.md, timeout=T)

    def walk(self, after_first_page=lambda: None, **kw) -> list[str]:
        ids, token = [], ""
        while True:
            page = self.page(page_token=token, **kw)
            ids += [task.task_id for task in page.tasks]
            if not page.next_page_token:
                return ids
            if not token:
                after_first_page()
            token = page.next_page_token

    def stats(self, workflow: str = "") -> pb.QueueStats:
        return self.tasks.GetQueueStats(pb.GetQueueStatsRequest(workflow=workflow), metadata=self.md, timeout=T)

    def lease(self) -> pb.FetchTaskResponse:
        response = self.consumer.FetchTask(pb.FetchTaskRequest(consumer_id="worker-7", wait_ms=0), metadata=self.md, timeout=T)
        assert response.task.task_id
        return response

    def report(self, fetched: pb.FetchTaskResponse, **kw) -> pb.Task:
        request = pb.UpdateStatusRequest(task_id=fetched.task.task_id, lease_id=fetched.lease_id, **kw)
        return self.consumer.UpdateStatus(request, metadata=self.md, timeout=T)


def newest_first(tasks) -> list[str]:
    return [t.task_id for t in sorted(tasks, key=lambda t: (t.created_at_ms, t.task_id), reverse=True)]


def invalid(call) -> str:
    with pytest.raises(grpc.RpcError) as raised:
        call()
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT, raised.value
    return raised.value.details()


def test_pages_through_1000_tasks_without_duplicate_or_gap_while_tasks_arrive(srv):
    ann = Client(srv, ANN)
    created = [ann.create() for _ in range(1000)]
    stop = threading.Event()
    arrived: list[str] = []

    def keep_creating():
        writer = Client(srv, ANN)
        while not stop.is_set():
            arrived.append(writer.create().task_id)

    # The walk begins with its first page; tasks created from then on must not show up.
    thread = threading.Thread(target=keep_creating)
    try:
        walked = ann.walk(after_first_page=thread.start, page_size=37)
        wait_for(lambda: arrived, timeout=T, what="a task created while paging")
    finally:
        stop.set()
        if thread.is_alive():
            thread.join(timeout=T)
    assert arrived, "no task was created while paging"
    assert walked == newest_first(created)
    assert len(ann.walk(page_size=1000)) == 1000 + len(arrived)


def test_filters_narrow_the_listing_and_bad_ones_are_refused(srv):
    ann = Client(srv, ANN)
    first = ann.create(idempotency_key="order-1")
    second = ann.create()
    third = ann.create()
    ann.tasks.CancelTask(pb.CancelTaskRequest(task_id=second.task_id), metadata=ann.md, timeout=T)
    fetched = Client(srv, CONSUMER).lease()  # the oldest: first
    Client(srv, CONSUMER).report(fetched, status=pb.TASK_STATUS_FAILED, error="engine: boom")

    assert ann.walk(statuses=[pb.TASK_STATUS_PENDING]) == [third.task_id]
    assert ann.walk(statuses=[pb.TASK_STATUS_FAILED, pb.TASK_STATUS_CANCELLED], page_size=1) == [second.task_id, first.task_id]
    assert ann.walk(idempotency_key="order-1") == [first.task_id]
    assert ann.walk(workflow="face_swap") == [third.task_id, second.task_id, first.task_id]
    assert ann.walk(workflow="other") == []
    assert ann.walk(created_after_ms=second.created_at_ms, created_before_ms=third.created_at_ms + 1) == newest_first([second, third])

    assert "page_size" in invalid(lambda: ann.page(page_size=1001))
    assert "statuses[0]" in invalid(lambda: ann.page(statuses=[pb.TASK_STATUS_UNSPECIFIED]))
    assert "created_after_ms" in invalid(lambda: ann.page(created_after_ms=5, created_before_ms=5))
    assert "page_token" in invalid(lambda: ann.page(page_token="not-a-token"))
    token = ann.page(page_size=1).next_page_token
    assert "other filters" in invalid(lambda: ann.page(page_size=1, page_token=token, workflow="face_swap"))
    assert len(ann.page(page_size=1, page_token=token).tasks) == 1


def test_a_client_sees_its_own_tasks_and_an_admin_all(srv):
    ann, bob, admin = Client(srv, ANN), Client(srv, BOB), Client(srv, ADMIN)
    anns = [ann.create() for _ in range(3)]
    bobs = [bob.create() for _ in range(2)]
    assert ann.walk(page_size=2) == newest_first(anns)
    assert bob.walk() == newest_first(bobs)
    assert admin.walk(page_size=2) == newest_first(anns + bobs)
    # A key of another client matches nothing of it.
    ann.create(idempotency_key="shared")
    assert bob.walk(idempotency_key="shared") == []

    def pending(stats) -> int:
        return sum(c.count for c in stats.counts if c.status == pb.TASK_STATUS_PENDING)

    assert pending(ann.stats()) == 4 and pending(bob.stats()) == 2 and pending(admin.stats()) == 6
    # A token of another role may not list.
    with pytest.raises(grpc.RpcError) as raised:
        Client(srv, CONSUMER).page()
    assert raised.value.code() == grpc.StatusCode.PERMISSION_DENIED


def test_stats_after_known_traffic(srv):
    ann, consumer, admin = Client(srv, ANN), Client(srv, CONSUMER), Client(srv, ADMIN)
    tasks = [ann.create() for _ in range(6)]
    ann.tasks.CancelTask(pb.CancelTaskRequest(task_id=tasks[5].task_id), metadata=ann.md, timeout=T)
    done, failed, leased = consumer.lease(), consumer.lease(), consumer.lease()
    consumer.report(done, status=pb.TASK_STATUS_COMPLETED, result=pb.TaskResult(output_url="https://example.com/out.jpg"))
    consumer.report(failed, status=pb.TASK_STATUS_FAILED, error="engine: boom")
    time.sleep(0.05)

    stats = admin.stats()
    counts = {(c.workflow, c.status): c.count for c in stats.counts}
    assert counts == {
        ("face_swap", pb.TASK_STATUS_PENDING): 2, ("face_swap", pb.TASK_STATUS_PROCESSING): 1,
        ("face_swap", pb.TASK_STATUS_COMPLETED): 1, ("face_swap", pb.TASK_STATUS_FAILED): 1,
        ("face_swap", pb.TASK_STATUS_CANCELLED): 1,
    }
    assert stats.active_leases == 1
    assert stats.finished_last_minute == 3 and stats.failed_last_minute == 1
    assert stats.failure_share_last_minute == pytest.approx(1 / 3)
    assert stats.oldest_pending_age_ms >= stats.generated_at_ms - tasks[3].created_at_ms > 0
    assert list(admin.stats(workflow="other").counts) == []
    assert leased.task.task_id == tasks[2].task_id

    # A consumer parked in FetchTask is counted for admins only.
    ann.tasks.CancelTask(pb.CancelTaskRequest(task_id=tasks[3].task_id), metadata=ann.md, timeout=T)
    ann.tasks.CancelTask(pb.CancelTaskRequest(task_id=tasks[4].task_id), metadata=ann.md, timeout=T)
    parked = consumer.consumer.FetchTask.future(pb.FetchTaskRequest(consumer_id="waiting", wait_ms=20_000), metadata=consumer.md, timeout=T)
    try:
        wait_for(lambda: admin.stats().waiting_consumers == 1, timeout=15, what="the parked fetch to be counted")
        assert ann.stats().waiting_consumers == 0
    finally:
        arrival = ann.create()
        assert parked.result(timeout=T).task.task_id == arrival.task_id


def test_get_task_has_the_history_of_every_change_of_state(srv):
    ann, consumer = Client(srv, ANN), Client(srv, CONSUMER)
    task = ann.create()
    fetched = consumer.lease()
    consumer.report(fetched, status=pb.TASK_STATUS_PROCESSING, progress=0.5)
    consumer.report(fetched, status=pb.TASK_STATUS_FAILED, error="engine: boom")
    got = ann.tasks.GetTask(pb.GetTaskRequest(task_id=task.task_id), metadata=ann.md, timeout=T)
    assert [(h.status, h.attempt, h.note) for h in got.history] == [
        (pb.TASK_STATUS_PENDING, 0, "created"), (pb.TASK_STATUS_PROCESSING, 1, "leased by worker-7"),
        (pb.TASK_STATUS_FAILED, 1, "engine: boom"),
    ]
    assert got.history[0].at_ms == task.created_at_ms and got.history[-1].at_ms == got.updated_at_ms
    # Only GetTask carries it.
    assert not ann.page().tasks[0].history


def test_rest_routes_list_stats_and_history(srv):
    ann, admin = Client(srv, ANN), Client(srv, ADMIN)
    created = [ann.create() for _ in range(3)]
    ann.tasks.CancelTask(pb.CancelTaskRequest(task_id=created[0].task_id), metadata=ann.md, timeout=T)
    headers = {"authorization": f"Bearer {ANN}"}
    with httpx.Client(base_url=f"http://{HOST}:{srv.port}", headers=headers, timeout=T, trust_env=False) as http:
        first = http.get("/api/face-swap/tasks", params={"status": ["PENDING", "CANCELLED"], "page_size": 2})
        assert first.status_code == 200, first.text
        body = first.json()
        assert [t["taskId"] for t in body["tasks"]] == [created[2].task_id, created[1].task_id]
        assert body["tasks"][0]["status"] == "PENDING" and body["next_page_token"]
        rest = http.get("/api/face-swap/tasks", params={"status": "PENDING,CANCELLED", "page_size": 2,
                                                        "page_token": body["next_page_token"]}).json()
        assert [t["taskId"] for t in rest["tasks"]] == [created[0].task_id] and rest["next_page_token"] == ""

        stats = http.get("/api/face-swap/stats", params={"workflow": "face_swap"})
        assert stats.status_code == 200, stats.text
        figures = stats.json()
        assert {(c["status"], c["count"]) for c in figures["counts"]} == {("PENDING", 2), ("CANCELLED", 1)}
        assert figures["finished_last_minute"] == 1 and figures["waiting_consumers"] == 0

        task = http.get(f"/api/face-swap/task/{created[0].task_id}").json()
        assert list(task)[0] == "taskId" and list(task)[-1] == "history"
        assert [h["status"] for h in task["history"]] == ["PENDING", "CANCELLED"]
        assert set(task["history"][0]) == {"status", "at_ms", "attempt", "note"}

        bad = http.get("/api/face-swap/tasks", params={"status": "DONE"})
        assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == ["query", "status"]
        assert http.get("/api/face-swap/tasks", params={"page_size": "many"}).status_code == 422
        refused = http.get("/api/face-swap/tasks", params={"page_token": "zz"})
        assert refused.status_code == 400 and "page_token" in refused.json()["detail"]
        assert http.get("/api/face-swap/tasks", params={"page_size": 5000}).status_code == 400
    assert len(admin.walk()) == 3
