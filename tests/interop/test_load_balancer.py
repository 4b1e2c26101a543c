"""Swapline behind a real load balancer, configured by the files in deploy/ (docs/deploy.md):
HAProxy 2.6 and nginx 1.22 from Debian, with only their addresses changed.

The servers here use the in-memory store, so two of them do not share a queue: tests that
follow one task through several calls use one backend; with two, a test only checks where
each call went. Each call is balanced on its own (not each client connection)."""

from __future__ import annotations

import contextlib
import json
import queue
import signal
import threading
import time

import grpc
import httpx
import pytest

from support import ALLOW_LOCAL_URLS, CHANNEL_OPTIONS, Stubs, create_request, health_pb2, tasks_pb2 as pb

SC = grpc.StatusCode
T = 10
BALANCERS = ["haproxy", "nginx"]
LEGACY_BODY = {"source_url": "https://example.com/face.jpg", "target_url": "https://example.com/photo.jpg",
               "resolution": "1024x1024", "model": "inswapper_128_fp16"}


@pytest.fixture
def channels():
    """gRPC channels to load balancers, closed after the test."""
    opened: list[grpc.Channel] = []

    def open_channel(lb) -> Stubs:
        channel = grpc.insecure_channel(lb.grpc_address, options=CHANNEL_OPTIONS)
        opened.append(channel)
        return Stubs(channel)

    yield open_channel
    for channel in opened:
        channel.close()


def memory_server(server_factory, *flags):
    return server_factory("--store", "memory", *flags)


def read_events(response: httpx.Response, out: queue.Queue) -> None:
    """Puts each server-sent event's task JSON on `out`, then None when the stream ends."""
    data = None
    try:
        for line in response.iter_lines():
            if line.startswith("data: "):
                data = json.loads(line[len("data: "):])
            elif line == "" and data is not None:
                out.put(data)
                data = None
    except httpx.HTTPError as exc:
        out.put(exc)
    out.put(None)


# ---------------------------------------------------------------------------------------------
# gRPC
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", BALANCERS)
def test_grpc_calls_are_balanced_over_both_servers(kind, server_factory, load_balancer, channels):
    servers = [memory_server(server_factory), memory_server(server_factory)]
    lb = load_balancer(servers, kind=kind)
    stubs = channels(lb)

    assert stubs.health.Check(health_pb2.HealthCheckRequest(), timeout=T).status == \
        health_pb2.HealthCheckResponse.SERVING
    created = [stubs.tasks.CreateTask(create_request(), timeout=T).task_id for _ in range(20)]

    # Every task is on exactly one server, and both servers got some: one client connection's
    # calls were spread over the backends.
    direct = [Stubs(srv.channel()) for srv in servers]
    placed = [0, 0]
    for task_id in created:
        found = []
        for i, backend in enumerate(direct):
            try:
                backend.tasks.GetTask(pb.GetTaskRequest(task_id=task_id), timeout=T)
                found.append(i)
            except grpc.RpcError as err:
                assert err.code() == SC.NOT_FOUND, err
        assert len(found) == 1, (task_id, found)
        placed[found[0]] += 1
    assert all(placed), f"all calls went to one server: {placed}"

    # Statuses and messages in trailers pass through unchanged.
    with pytest.raises(grpc.RpcError) as info:
        stubs.tasks.GetTask(pb.GetTaskRequest(task_id="task_missing"), timeout=T)
    assert info.value.code() == SC.NOT_FOUND
    assert "task_missing" in info.value.details()


@pytest.mark.slow
def test_streams_and_long_polls_outlast_quiet_periods(server_factory, load_balancer, channels):
    """Through HAProxy and nginx at once: a 25 s FetchTask long-poll (gRPC and REST) ends
    normally and empty, and WatchTask and SSE streams that were quiet for 25 s still deliver
    the next change. The balancers' timeouts must not cut them."""
    srv = memory_server(server_factory)
    lbs = [load_balancer([srv], kind=kind) for kind in BALANCERS]
    direct = Stubs(srv.channel())
    task = direct.tasks.CreateTask(create_request(), timeout=T)
    quiet_ms = 25_000
    results: queue.Queue = queue.Queue()

    def long_poll(name, call):
        t0 = time.monotonic()
        try:
            outcome = call()
        except Exception as exc:  # noqa: BLE001 - reported by the assertions below
            outcome = exc
        results.put((name, time.monotonic() - t0, outcome))

    def grpc_fetch(lb):
        stubs = channels(lb)
        # A workflow no task has: the queue stays empty for this consumer.
        request = pb.FetchTaskRequest(consumer_id=f"lb-{lb.kind}", workflows=["lb_quiet"], wait_ms=quiet_ms)
        long_poll(f"{lb.kind} gRPC FetchTask", lambda: stubs.consumer.FetchTask(
            request, timeout=quiet_ms / 1000 + 20).HasField("task"))

    def rest_fetch(lb):
        def fetch():
            with httpx.Client(base_url=lb.rest_url, timeout=quiet_ms / 1000 + 20, trust_env=False) as client:
                return client.get("/api/comm/task/fetch", params={
                    "consumer_id": f"lb-{lb.kind}", "workflow": "lb_quiet", "wait_ms": quiet_ms}).status_code
        long_poll(f"{lb.kind} REST fetch", fetch)

    watches = {}
    for lb in lbs:
        call = channels(lb).tasks.WatchTask(pb.WatchTaskRequest(task_id=task.task_id), timeout=quiet_ms / 1000 + 30)
        first = next(call)
        assert first.task.status == pb.TASK_STATUS_PENDING, (lb.kind, first)
        watches[lb.kind] = call

    sse_events = {}
    with contextlib.ExitStack() as streams:
        for lb in lbs:
            client = streams.enter_context(
                httpx.Client(base_url=lb.rest_url, timeout=quiet_ms / 1000 + 30, trust_env=False))
            response = streams.enter_context(client.stream("GET", f"/api/face-swap/task/{task.task_id}/events"))
            assert response.status_code == 200, (lb.kind, response.status_code)
            events: queue.Queue = queue.Queue()
            threading.Thread(target=read_events, args=(response, events), daemon=True).start()
            assert events.get(timeout=T)["status"] == "PENDING", lb.kind
            sse_events[lb.kind] = events

        pollers = [threading.Thread(target=f, args=(lb,), daemon=True) for lb in lbs for f in (grpc_fetch, rest_fetch)]
        for p in pollers:
            p.start()
        for p in pollers:
            p.join(quiet_ms / 1000 + 30)
        outcomes = [results.get_nowait() for _ in range(results.qsize())]
        assert len(outcomes) == 4, f"a long-poll failed or hung: {outcomes}"
        for name, elapsed, outcome in outcomes:
            assert elapsed >= quiet_ms / 1000 - 1, f"{name} ended early, after {elapsed:.1f}s"
            assert outcome in (False, 204), f"{name}: {outcome}"

        # Every stream has been quiet for 25 s; the next change still reaches all of them.
        direct.tasks.CancelTask(pb.CancelTaskRequest(task_id=task.task_id), timeout=T)
        for kind, call in watches.items():
            assert [e.task.status for e in call] == [pb.TASK_STATUS_CANCELLED], kind
            assert call.code() == SC.OK, (kind, call.code(), call.details())
        for kind, events in sse_events.items():
            assert events.get(timeout=T)["status"] == "CANCELLED", kind
            assert events.get(timeout=T) is None, f"{kind}: the event stream did not end"


# ---------------------------------------------------------------------------------------------
# REST and server-sent events
# ---------------------------------------------------------------------------------------------


def rest_routes(lb) -> list[tuple[str, str]]:
    """(HTTP version, base URL) of every way the balancer takes REST: HTTP/1.1, and HTTP/2
    with prior knowledge where it does (HAProxy's one port)."""
    routes = [("HTTP/1.1", lb.rest_url)]
    if lb.h2_rest_url:
        routes.append(("HTTP/2", lb.h2_rest_url))
    return routes


def http_client(version: str, url: str) -> httpx.Client:
    h2 = version == "HTTP/2"
    return httpx.Client(base_url=url, http1=not h2, http2=h2, timeout=T, trust_env=False)


@pytest.mark.parametrize("kind", BALANCERS)
def test_rest_and_server_sent_events(kind, server_factory, load_balancer, channels):
    srv = memory_server(server_factory)
    lb = load_balancer([srv], kind=kind)
    for version, url in rest_routes(lb):
        with http_client(version, url) as client:
            health = client.get("/health")
            assert health.status_code == 200 and health.json()["status"] == "ok"
            assert health.http_version == version

            r = client.post("/api/face-swap/create-task", json=LEGACY_BODY)
            assert r.status_code == 200, r.text
            task_id = r.json()["task_id"]
            assert r.json() == {"task_id": task_id, "status": "PENDING"}
            direct = httpx.get(f"http://127.0.0.1:{srv.port}/api/face-swap/task/{task_id}", timeout=T, trust_env=False)
            assert client.get(f"/api/face-swap/task/{task_id}").content == direct.content
            assert client.get("/api/face-swap/task/task_nope").status_code == 404

            # Each event arrives as it happens (nothing buffers the stream), and the stream
            # ends after the terminal state.
            events: queue.Queue = queue.Queue()
            with http_client(version, url) as watcher, watcher.stream("GET", f"/api/face-swap/task/{task_id}/events") as stream:
                assert stream.status_code == 200
                assert stream.headers["content-type"] == "text/event-stream"
                reader = threading.Thread(target=read_events, args=(stream, events), daemon=True)
                reader.start()
                assert events.get(timeout=T)["status"] == "PENDING"
                lease = client.get("/api/comm/task/fetch", params={"consumer_id": "lb", "wait_ms": 1000}).json()
                assert lease["taskId"] == task_id
                assert events.get(timeout=T)["status"] == "PROCESSING"
                update = client.post("/api/comm/task/update", json={
                    "task_id": task_id, "lease_id": lease["lease_id"], "status": "PROCESSING", "progress": 0.5})
                assert update.status_code == 200, update.text
                assert events.get(timeout=T)["progress"] == 0.5
                client.post(f"/api/face-swap/task/{task_id}/cancel")
                assert events.get(timeout=T)["status"] == "CANCELLED"
                assert events.get(timeout=T) is None
                reader.join(T)

    # A task created over gRPC through the balancer reads the same over REST through it.
    task = channels(lb).tasks.CreateTask(create_request(), timeout=T)
    with httpx.Client(base_url=lb.rest_url, timeout=T, trust_env=False) as client:
        assert client.get(f"/api/face-swap/task/{task.task_id}").json()["taskId"] == task.task_id


# ---------------------------------------------------------------------------------------------
# Health checks and graceful drain
# ---------------------------------------------------------------------------------------------


def test_haproxy_health_checks_take_a_draining_server_out(server_factory, load_balancer, channels):
    """SIGTERM one of two servers while a client keeps calling through HAProxy: the health
    checks mark it DOWN within seconds, no call fails on the way (GOAWAY'd connections are
    not reused; refused connections are retried on the other server), and every later call
    goes to the server that is left."""
    leaving = memory_server(server_factory, "--shutdown-grace-ms", "3000")
    staying = memory_server(server_factory)
    lb = load_balancer([leaving, staying])
    assert {s["status"] for s in lb.server_states().values()} == {"UP"}
    stubs = channels(lb)
    failures: list = []
    done = threading.Event()
    calls = 0

    def call_in_a_loop():
        nonlocal calls
        while not done.is_set():
            try:
                stubs.tasks.CreateTask(create_request(), timeout=T)
                calls += 1
            except grpc.RpcError as err:
                failures.append((err.code(), err.details()))
            time.sleep(0.01)

    caller = threading.Thread(target=call_in_a_loop, daemon=True)
    caller.start()
    try:
        time.sleep(0.5)
        leaving.signal(signal.SIGTERM)
        marked_down_after = lb.wait_for_status("swapline1", "DOWN", timeout=10)
        assert leaving.wait(timeout=10) == 0
        before = int(lb.server_states()["swapline2"]["stot"])
        time.sleep(1.0)
    finally:
        done.set()
        caller.join(T)
    after = lb.server_states()
    assert failures == [], f"{len(failures)} of {calls + len(failures)} calls failed: {failures[:5]}"
    assert int(after["swapline2"]["stot"]) > before, "no calls after the drain"
    assert after["swapline1"]["status"] == "DOWN"
    assert marked_down_after < 6, f"marked DOWN only after {marked_down_after:.1f}s"


# ---------------------------------------------------------------------------------------------
# Workers
# ---------------------------------------------------------------------------------------------


def test_a_worker_behind_haproxy_completes_tasks(server_factory, load_balancer, tmp_path):
    """docs/deploy.md's worker: `swapline worker --server` the balancer, result URLs under the
    balancer's address (--public-url), served through it."""
    from test_worker import Simulator, WorkerProcess, assert_stored_images, params, wait_terminal

    storage = tmp_path / "outputs"
    srv = memory_server(server_factory, "--storage", f"local:{storage}", ALLOW_LOCAL_URLS)
    lb = load_balancer([srv])
    sim = Simulator()
    worker = None
    try:
        worker = WorkerProcess(lb.grpc_port, "--engine", sim.url, "--storage", f"local:{storage}",
                               "--public-url", lb.rest_url, "--concurrency", "2",
                               "--health-interval-ms", "200", "--retry-base-ms", "100", ALLOW_LOCAL_URLS)
        channel = grpc.insecure_channel(lb.grpc_address, options=CHANNEL_OPTIONS)
        try:
            stub = Stubs(channel).tasks
            created = [stub.CreateTask(pb.CreateTaskRequest(params=params(sim)), timeout=T) for _ in range(3)]
            for task in created:
                done = wait_terminal(stub, task.task_id)
                assert done.status == pb.TASK_STATUS_COMPLETED, done.error
                assert done.result.output_url.startswith(lb.rest_url + "/outputs/")
                assert_stored_images(storage, done)
        finally:
            channel.close()
    finally:
        if worker:
            worker.stop()
        sim.stop()
