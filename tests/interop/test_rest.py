"""The REST compatibility shim against the real binary: the legacy FastAPI routes over HTTP/1.1
and HTTP/2 (prior knowledge), with httpx and with curl; their JSON byte for byte; the errors;
server-sent events; tasks crossing between REST and gRPC; the OpenAPI document, validated and
fuzzed with schemathesis."""

from __future__ import annotations

import json
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from support import HOST, ROOT, Stubs, create_request, tasks_pb2 as pb

T = 10
# DESIGN.md §1: what the original service's clients send.
LEGACY_BODY = {"source_url": "https://example.com/face.jpg", "target_url": "https://example.com/photo.jpg",
               "resolution": "1024x1024", "model": "inswapper_128_fp16"}
TASK_KEYS = ["taskId", "workflow", "environment", "target_port", "params", "status", "source_channel",
             "created_at", "updated_at", "progress", "attempt", "priority", "error", "result"]
ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d$")
OPENAPI_FILE = ROOT / "docs" / "openapi.json"


def base(server) -> str:
    return f"http://{HOST}:{server.port}"


@pytest.fixture(params=["http1", "http2"])
def http(request, server):
    """An httpx client speaking HTTP/1.1, or HTTP/2 with prior knowledge."""
    h2 = request.param == "http2"
    with httpx.Client(base_url=base(server), http1=not h2, http2=h2, timeout=T, trust_env=False) as client:
        client.protocol = "HTTP/2" if h2 else "HTTP/1.1"
        yield client


def checked(response: httpx.Response, client) -> httpx.Response:
    assert response.http_version == client.protocol, response.http_version
    return response


def create(http, body=None) -> str:
    r = checked(http.post("/api/face-swap/create-task", json=body or LEGACY_BODY), http)
    assert r.status_code == 200, r.text
    return r.json()["task_id"]


def fetch(http, **params) -> httpx.Response:
    return checked(http.get("/api/comm/task/fetch", params=params), http)


def update(http, body) -> httpx.Response:
    return checked(http.post("/api/comm/task/update", json=body), http)


def assert_unified(task: dict) -> None:
    assert list(task)[:len(TASK_KEYS)] == TASK_KEYS, list(task)
    assert list(task["params"]["input_data"]["wf_json"])[:4] == ["source_url", "target_url", "resolution", "model"]
    assert ISO.match(task["created_at"]) and ISO.match(task["updated_at"]), task


# ---------------------------------------------------------------------------------------------
# Every route over HTTP/1.1 and HTTP/2, with httpx
# ---------------------------------------------------------------------------------------------


def test_create_task_answers_the_legacy_bytes(http):
    r = checked(http.post("/api/face-swap/create-task", json=LEGACY_BODY), http)
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/json"
    # FastAPI's JSONResponse: compact separators, keys in model order.
    assert re.fullmatch(rb'\{"task_id":"task_[0-9A-Za-z]{26}","status":"PENDING"\}', r.content), r.content


def test_get_task_is_the_unified_format(http, server):
    task_id = create(http)
    r = checked(http.get(f"/api/face-swap/task/{task_id}"), http)
    assert r.status_code == 200
    task = r.json()
    assert_unified(task)
    assert task["taskId"] == task_id
    assert task["workflow"] == task["environment"] == "face_swap"
    assert task["target_port"] == server.port
    assert task["source_channel"] == f"http://{HOST}:{server.port}"
    assert task["params"]["input_data"]["wf_json"] == LEGACY_BODY
    assert task["status"] == "PENDING"
    assert (task["progress"], task["attempt"], task["error"], task["result"]) == (0.0, 0, None, None)
    # Compact, like FastAPI.
    assert b", " not in r.content and b": " not in r.content


def test_cancel_task(http):
    task_id = create(http)
    r = checked(http.post(f"/api/face-swap/task/{task_id}/cancel"), http)
    assert r.status_code == 200
    assert r.json()["status"] == "CANCELLED"
    # A finished task is returned unchanged.
    again = checked(http.post(f"/api/face-swap/task/{task_id}/cancel"), http)
    assert again.status_code == 200 and again.json() == r.json()


def test_fetch_is_204_when_nothing_is_queued(http):
    r = fetch(http, wait_ms=0)
    assert r.status_code == 204
    assert r.content == b""


def test_fetch_long_polls_until_a_task_arrives(http, server):
    result = {}

    def poll():
        with httpx.Client(base_url=base(server), timeout=T, trust_env=False) as other:
            result["r"] = other.get("/api/comm/task/fetch", params={"wait_ms": 5000})

    thread = threading.Thread(target=poll)
    thread.start()
    time.sleep(0.3)
    task_id = create(http)
    thread.join(T)
    assert result["r"].status_code == 200 and result["r"].json()["taskId"] == task_id


def test_a_fetch_whose_client_left_loses_no_task(server):
    """The REST client of a long-poll goes away: its FetchTask is cancelled, so the next task
    goes to a consumer that is still there."""
    with socket.create_connection((HOST, server.port), timeout=T) as sock:
        sock.sendall(f"GET /api/comm/task/fetch?wait_ms=20000 HTTP/1.1\r\nHost: {HOST}\r\n\r\n".encode())
        time.sleep(0.3)
    time.sleep(0.2)
    with httpx.Client(base_url=base(server), timeout=T, trust_env=False) as client:
        task_id = create_plain(client)
        r = client.get("/api/comm/task/fetch", params={"wait_ms": 2000})
        assert r.status_code == 200 and r.json()["taskId"] == task_id and r.json()["attempt"] == 1


def test_fetch_and_update_to_completion(http):
    task_id = create(http)
    r = fetch(http, consumer_id="worker-1", workflow="face_swap", wait_ms=0)
    assert r.status_code == 200
    leased = r.json()
    assert_unified(leased)
    assert list(leased)[len(TASK_KEYS):] == ["lease_id", "lease_expires_at", "lease_expires_at_ms"]
    assert leased["taskId"] == task_id and leased["status"] == "PROCESSING" and leased["attempt"] == 1
    assert ISO.match(leased["lease_expires_at"]) and leased["lease_expires_at_ms"] > time.time() * 1000
    lease = leased["lease_id"]

    r = update(http, {"task_id": task_id, "lease_id": lease, "status": "PROCESSING", "progress": 0.3})
    assert r.status_code == 200 and r.json()["progress"] == 0.3
    result = {"output_url": "https://cdn.example.com/r.jpg", "processing_time": 12.5, "job_id": "job_1",
              "storage_provider": "gcs", "outputs": {"jpg": "https://cdn.example.com/r.jpg",
                                                     "gif": "https://cdn.example.com/r.gif"}}
    r = update(http, {"task_id": task_id, "lease_id": lease, "status": "COMPLETED", "result": result})
    assert r.status_code == 200
    done = r.json()
    assert done["status"] == "COMPLETED" and done["progress"] == 1.0
    # output_providers: the typed form of storage_provider, set by the server.
    assert done["result"] == {**result, "outputs": {"gif": "https://cdn.example.com/r.gif",
                                                    "jpg": "https://cdn.example.com/r.jpg"},
                              "output_providers": {"gif": "gcs", "jpg": "gcs"}}
    got = checked(http.get(f"/api/face-swap/task/{task_id}"), http).json()
    # GET adds the history after the keys every task answer has.
    assert [h["status"] for h in got.pop("history")] == ["PENDING", "PROCESSING", "COMPLETED"]
    assert got == done


def test_fetch_filters_by_workflow(http):
    create(http)
    assert fetch(http, workflow="other").status_code == 204
    assert fetch(http, workflow="other,face_swap").status_code == 200


def complete_next(stubs: Stubs, **result) -> pb.Task:
    leased = stubs.consumer.FetchTask(pb.FetchTaskRequest(consumer_id="grpc", wait_ms=5000), timeout=T)
    assert leased.HasField("task")
    return stubs.consumer.UpdateStatus(pb.UpdateStatusRequest(
        task_id=leased.task.task_id, lease_id=leased.lease_id, status=pb.TASK_STATUS_COMPLETED,
        result=pb.TaskResult(**result)), timeout=T)


def test_process_answers_a_face_swap_response(http, server):
    stubs = Stubs(server.channel())
    worker = threading.Thread(target=complete_next, args=(stubs,), kwargs=dict(
        output_url="http://localhost:8000/outputs/result.jpg", processing_time=12.5, job_id="job_12345",
        storage_provider="gcs", outputs={"jpg": "http://localhost:8000/outputs/result.jpg",
                                         "gif": "https://cdn/x.gif", "webp": "https://cdn/x.webp"}))
    worker.start()
    r = checked(http.post("/api/face-swap/process", json=LEGACY_BODY), http)
    worker.join(T)
    assert r.status_code == 200, r.text
    body = r.json()
    assert list(body) == ["status", "output_path", "processing_time", "job_id", "metadata", "task_id"]
    assert body["status"] == "success"
    assert body["output_path"] == "http://localhost:8000/outputs/result.jpg"
    assert body["processing_time"] == 12.5 and body["job_id"] == "job_12345"
    assert body["metadata"] == {"gif_url": "https://cdn/x.gif", "webp_url": "https://cdn/x.webp",
                                "storage_url": "http://localhost:8000/outputs/result.jpg",
                                "storage_provider": "gcs"}
    assert list(body["metadata"]) == ["gif_url", "webp_url", "storage_url", "storage_provider"]


def test_health(http):
    r = checked(http.get("/health"), http)
    assert r.status_code == 200
    assert r.json() == {"status": "ok", "serving_status": "SERVING"}


def test_openapi_json_is_the_committed_document(http):
    r = checked(http.get("/openapi.json"), http)
    assert r.status_code == 200 and r.headers["content-type"] == "application/json"
    assert r.content == OPENAPI_FILE.read_bytes()


# ---------------------------------------------------------------------------------------------
# Server-sent events
# ---------------------------------------------------------------------------------------------


def read_events(response: httpx.Response, out: list) -> None:
    data = None
    for line in response.iter_lines():
        if line.startswith("data: "):
            data = json.loads(line[len("data: "):])
        elif line == "" and data is not None:
            out.append(data)
            data = None


def test_events_follow_the_task_until_it_ends(http, server):
    task_id = create(http)
    events: list = []
    # Its own connection: httpx's HTTP/2 connections are not for several threads at once.
    h2 = http.protocol == "HTTP/2"
    with httpx.Client(base_url=base(server), http1=not h2, http2=h2, timeout=T, trust_env=False) as watcher, \
            watcher.stream("GET", f"/api/face-swap/task/{task_id}/events") as r:
        assert r.http_version == http.protocol
        assert r.status_code == 200
        assert r.headers["content-type"] == "text/event-stream"
        reader = threading.Thread(target=read_events, args=(r, events))
        reader.start()
        assert _wait(lambda: len(events) == 1), events
        lease = fetch(http).json()["lease_id"]
        # Each change arrives as it happens, before the next one is made.
        assert _wait(lambda: len(events) == 2), events
        assert update(http, {"task_id": task_id, "lease_id": lease, "status": "PROCESSING",
                             "progress": 0.5}).status_code == 200
        assert _wait(lambda: len(events) == 3), events
        assert update(http, {"task_id": task_id, "lease_id": lease, "status": "FAILED",
                             "error": "FaceFusion is down"}).status_code == 200
        reader.join(T)
        assert not reader.is_alive(), "the stream did not end after the terminal state"
    assert [e["status"] for e in events] == ["PENDING", "PROCESSING", "PROCESSING", "FAILED"]
    assert events[2]["progress"] == 0.5
    assert events[-1]["error"] == "FaceFusion is down"
    for event in events:
        assert_unified(event)


def _wait(predicate, timeout=T) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return False


def test_events_of_a_finished_task_are_one_event(http):
    task_id = create(http)
    checked(http.post(f"/api/face-swap/task/{task_id}/cancel"), http)
    r = checked(http.get(f"/api/face-swap/task/{task_id}/events"), http)
    assert r.status_code == 200
    assert re.fullmatch(r"id: \d+\ndata: \{.*\"status\":\"CANCELLED\".*\}\n\n", r.text, re.S), r.text


def test_events_of_an_unknown_task_are_404(http):
    r = checked(http.get("/api/face-swap/task/task_nope/events"), http)
    assert r.status_code == 404 and r.json() == {"detail": "task 'task_nope' does not exist"}


def test_closing_an_event_stream_stops_the_watch(server):
    """The client going away cancels the WatchTask behind the stream; the server stays healthy."""
    with httpx.Client(base_url=base(server), timeout=T, trust_env=False) as client:
        task_id = create_plain(client)
        for _ in range(20):
            with client.stream("GET", f"/api/face-swap/task/{task_id}/events") as r:
                assert r.status_code == 200
                next(r.iter_lines())
        assert client.get("/health").status_code == 200


def create_plain(client) -> str:
    return client.post("/api/face-swap/create-task", json=LEGACY_BODY).json()["task_id"]


# ---------------------------------------------------------------------------------------------
# REST and gRPC see the same tasks
# ---------------------------------------------------------------------------------------------


def test_task_created_over_rest_is_seen_over_grpc(http, server):
    task_id = create(http)
    stubs = Stubs(server.channel())
    task = stubs.tasks.GetTask(pb.GetTaskRequest(task_id=task_id), timeout=T)
    assert task.status == pb.TASK_STATUS_PENDING
    assert task.params.source_url == LEGACY_BODY["source_url"]
    assert task.params.model == LEGACY_BODY["model"]


def test_task_created_over_grpc_is_seen_over_rest(http, server):
    stubs = Stubs(server.channel())
    task = stubs.tasks.CreateTask(create_request(), timeout=T)
    r = checked(http.get(f"/api/face-swap/task/{task.task_id}"), http)
    assert r.status_code == 200
    body = r.json()
    assert body["taskId"] == task.task_id and body["status"] == "PENDING"
    assert body["created_at"] == time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(task.created_at_ms // 1000))
    # Leased over REST, completed over gRPC, seen over REST.
    leased = fetch(http).json()
    stubs.consumer.UpdateStatus(pb.UpdateStatusRequest(
        task_id=task.task_id, lease_id=leased["lease_id"], status=pb.TASK_STATUS_FAILED, error="boom"), timeout=T)
    assert checked(http.get(f"/api/face-swap/task/{task.task_id}"), http).json()["status"] == "FAILED"


def test_grpc_and_rest_share_one_http2_connection(server):
    """One HTTP/2 connection carries a REST request and a gRPC call, told apart by content type."""
    from support import RawH2, StreamResult, frame, unframe

    h2c = RawH2(server.port)
    try:
        grpc_sid = h2c.request("/swapline.v1.TaskService/CreateTask", frame(create_request().SerializeToString()))
        rest_sid = h2c.conn.get_next_available_stream_id()
        h2c.conn.send_headers(rest_sid, [(":method", "GET"), (":scheme", "http"), (":path", "/health"),
                                         (":authority", HOST)], end_stream=True)
        h2c.streams[rest_sid] = StreamResult(rest_sid)
        h2c.flush()
        rest = h2c.wait(rest_sid)
        assert rest.http_status == 200 and json.loads(rest.data) == {"status": "ok", "serving_status": "SERVING"}
        call = h2c.wait(grpc_sid)
        assert call.grpc_status == 0
        assert pb.Task.FromString(unframe(call.data)[0]).status == pb.TASK_STATUS_PENDING
    finally:
        h2c.close()


# ---------------------------------------------------------------------------------------------
# Errors: FastAPI's shape, grpc-gateway's statuses, never a 500 or a dropped connection
# ---------------------------------------------------------------------------------------------


def test_unknown_route_is_404(http):
    for path in ["/", "/api", "/api/face-swap/task/", "/api/face-swap/task/x/y", "/nope"]:
        r = checked(http.get(path), http)
        assert (r.status_code, r.json()) == (404, {"detail": "Not Found"}), path


def test_wrong_method_is_405_with_allow(http):
    r = checked(http.get("/api/face-swap/create-task"), http)
    assert (r.status_code, r.json()) == (405, {"detail": "Method Not Allowed"})
    assert r.headers["allow"] == "POST"
    r = checked(http.delete("/api/face-swap/task/task_1"), http)
    assert r.status_code == 405 and r.headers["allow"] == "GET"
    r = checked(http.head("/health"), http)
    assert r.status_code == 405 and r.content == b""
    # The connection is still fine.
    assert checked(http.get("/health"), http).status_code == 200


def test_wrong_content_type_is_415(http):
    r = checked(http.post("/api/face-swap/create-task", content=json.dumps(LEGACY_BODY),
                          headers={"content-type": "text/plain"}), http)
    assert r.status_code == 415 and "application/json" in r.json()["detail"]


def test_missing_content_type_is_415_unlike_fastapi(http):
    # FastAPI read such a body as JSON; a browser can send it cross-site without a preflight.
    r = checked(http.post("/api/face-swap/create-task", content=json.dumps(LEGACY_BODY).encode()), http)
    assert r.status_code == 415 and "application/json" in r.json()["detail"], r.text


def test_malformed_json_is_422(http):
    r = checked(http.post("/api/face-swap/create-task", content=b'{"source_url": ',
                          headers={"content-type": "application/json"}), http)
    assert r.status_code == 422
    [error] = r.json()["detail"]
    assert error["type"] == "json_invalid" and error["loc"] == ["body", 15] and error["msg"] == "JSON decode error"


def test_empty_body_is_422(http):
    r = checked(http.post("/api/face-swap/create-task", headers={"content-type": "application/json"}), http)
    assert r.status_code == 422
    assert r.json() == {"detail": [{"type": "missing", "loc": ["body"], "msg": "Field required", "input": None}]}


def test_schema_violations_are_422_with_every_field(http):
    r = checked(http.post("/api/face-swap/create-task", json={"source_url": 5, "priority": "high"}), http)
    assert r.status_code == 422
    detail = r.json()["detail"]
    assert {(d["type"], tuple(d["loc"])) for d in detail} == {
        ("string_type", ("body", "source_url")), ("missing", ("body", "target_url")),
        ("int_type", ("body", "priority"))}
    r = checked(http.post("/api/face-swap/create-task", json=[LEGACY_BODY]), http)
    assert r.status_code == 422 and r.json()["detail"][0]["type"] == "model_attributes_type"
    r = update(http, {"task_id": "t", "lease_id": "l", "status": "DONE"})
    assert r.status_code == 422 and r.json()["detail"][0]["type"] == "enum"


def test_invalid_argument_from_the_rpc_is_400(http):
    r = checked(http.post("/api/face-swap/create-task", json={**LEGACY_BODY, "source_url": "ftp://x/y"}), http)
    assert r.status_code == 400 and "source_url" in r.json()["detail"]
    r = checked(http.post("/api/face-swap/create-task", json={**LEGACY_BODY, "model": "nope"}), http)
    assert r.status_code == 400 and "model" in r.json()["detail"]
    r = checked(http.post("/api/face-swap/process", json={**LEGACY_BODY, "resolution": "3x3"}), http)
    assert r.status_code == 400 and "resolution" in r.json()["detail"]
    r = fetch(http, wait_ms=-1)
    assert r.status_code == 400 and "wait_ms" in r.json()["detail"]


def test_invalid_query_is_422(http):
    r = fetch(http, wait_ms="soon")
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["query", "wait_ms"]


def test_unknown_task_is_404(http):
    for r in [http.get("/api/face-swap/task/task_missing"), http.post("/api/face-swap/task/task_missing/cancel"),
              update(http, {"task_id": "task_missing", "lease_id": "l", "status": "PROCESSING"})]:
        assert checked(r, http).status_code == 404
        assert r.json() == {"detail": "task 'task_missing' does not exist"}


def test_wrong_lease_and_finished_task_are_409(http):
    task_id = create(http)
    lease = fetch(http).json()["lease_id"]
    r = update(http, {"task_id": task_id, "lease_id": "lease_other", "status": "PROCESSING"})
    assert r.status_code == 409
    checked(http.post(f"/api/face-swap/task/{task_id}/cancel"), http)
    r = update(http, {"task_id": task_id, "lease_id": lease, "status": "PROCESSING"})
    assert r.status_code == 409  # ABORTED: the task was cancelled, stop working on it
    assert "cancel" in r.json()["detail"]


def test_oversized_body_is_413(http):
    big = b'{"source_url": "' + b"a" * (1024 * 1024) + b'"}'
    r = checked(http.post("/api/face-swap/create-task", content=big, headers={"content-type": "application/json"}), http)
    assert r.status_code == 413
    # Streamed without a length (chunked on HTTP/1.1): refused once the limit is passed.
    r = checked(http.post("/api/face-swap/create-task", content=iter([big[:600_000], big[600_000:]]),
                          headers={"content-type": "application/json"}), http)
    assert r.status_code == 413
    assert checked(http.get("/health"), http).status_code == 200


def test_path_parameters_are_percent_decoded(http):
    r = checked(http.get("/api/face-swap/task/task%5F1"), http)
    assert r.status_code == 404 and r.json() == {"detail": "task 'task_1' does not exist"}


# ---------------------------------------------------------------------------------------------
# HTTP/1.1 framing: keep-alive, pipelining, chunked bodies, Expect: 100-continue, bad requests
# ---------------------------------------------------------------------------------------------


def raw_http1(port: int, payload: bytes) -> bytes:
    """Sends raw bytes and reads until the server closes the connection."""
    with socket.create_connection((HOST, port), timeout=T) as sock:
        sock.sendall(payload)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
        return data


def test_keep_alive_and_pipelining(server):
    one = f"GET /health HTTP/1.1\r\nHost: {HOST}\r\n\r\n".encode()
    body = json.dumps(LEGACY_BODY).encode()
    two = (f"POST /api/face-swap/create-task HTTP/1.1\r\nHost: {HOST}\r\nContent-Type: application/json\r\n"
           f"Content-Length: {len(body)}\r\n\r\n").encode() + body
    three = f"GET /nope HTTP/1.1\r\nHost: {HOST}\r\nConnection: close\r\n\r\n".encode()
    data = raw_http1(server.port, one + two + three)
    statuses = re.findall(rb"HTTP/1\.1 (\d{3})", data)
    assert statuses == [b"200", b"200", b"404"], data
    assert data.rstrip().endswith(b'{"detail":"Not Found"}')
    assert b"connection: close" in data.lower()


def test_chunked_request_body(server):
    body = json.dumps(LEGACY_BODY).encode()
    chunks = b"".join(b"%x\r\n%s\r\n" % (len(part), part) for part in (body[:10], body[10:])) + b"0\r\n\r\n"
    data = raw_http1(server.port, (f"POST /api/face-swap/create-task HTTP/1.1\r\nHost: {HOST}\r\n"
                                   "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n"
                                   "Connection: close\r\n\r\n").encode() + chunks)
    assert data.startswith(b"HTTP/1.1 200 OK\r\n"), data
    assert b'"status":"PENDING"' in data


def test_http_1_0_closes_after_the_response(server):
    data = raw_http1(server.port, b"GET /health HTTP/1.0\r\n\r\n")
    assert data.startswith(b"HTTP/1.0 200 OK\r\n") and data.endswith(b'{"status":"ok","serving_status":"SERVING"}')


def test_malformed_http1_request_is_400(server):
    data = raw_http1(server.port, b"GET /health HTTP/1.1\r\nBad Header\r\n\r\n")
    assert data.startswith(b"HTTP/1.1 400"), data


def test_a_prefix_of_the_http2_preface_then_http1(server):
    # "PRI" could start the HTTP/2 preface; the first differing byte decides.
    data = raw_http1(server.port, b"PRIX / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert data.startswith(b"HTTP/1.1 "), data


# ---------------------------------------------------------------------------------------------
# curl, HTTP/1.1 and HTTP/2 prior knowledge
# ---------------------------------------------------------------------------------------------


def curl(server, *args: str, http2: bool) -> tuple[int, dict, bytes]:
    cmd = ["curl", "-sS", "-i", "--noproxy", "*", "--max-time", str(T)]
    cmd.append("--http2-prior-knowledge" if http2 else "--http1.1")
    out = subprocess.run([*cmd, *args], capture_output=True, check=True, timeout=T + 5).stdout
    # Skip interim responses (100 Continue).
    while out.startswith(b"HTTP/1.1 100"):
        out = out.split(b"\r\n\r\n", 1)[1]
    head, _, body = out.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    assert lines[0].startswith("HTTP/2 " if http2 else "HTTP/1.1 "), lines[0]
    status = int(lines[0].split()[1])
    headers = {k.lower(): v for k, v in (line.split(": ", 1) for line in lines[1:])}
    return status, headers, body


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl not installed")
@pytest.mark.parametrize("http2", [False, True], ids=["http1", "http2"])
def test_every_route_with_curl(server, http2):
    url = base(server)
    json_header = ["-H", "Content-Type: application/json"]
    status, headers, body = curl(server, "-X", "POST", f"{url}/api/face-swap/create-task", *json_header,
                                 "-d", json.dumps(LEGACY_BODY), http2=http2)
    assert status == 200 and headers["content-type"] == "application/json"
    task_id = json.loads(body)["task_id"]
    status, _, body = curl(server, f"{url}/api/face-swap/task/{task_id}", http2=http2)
    assert status == 200 and json.loads(body)["taskId"] == task_id
    status, _, body = curl(server, f"{url}/api/comm/task/fetch?consumer_id=curl&wait_ms=100", http2=http2)
    assert status == 200
    lease = json.loads(body)["lease_id"]
    status, _, body = curl(server, f"{url}/api/comm/task/fetch?wait_ms=0", http2=http2)
    assert status == 204 and body == b""
    status, _, body = curl(server, "-X", "POST", f"{url}/api/comm/task/update", *json_header, "-d",
                           json.dumps({"task_id": task_id, "lease_id": lease, "status": "PROCESSING",
                                       "progress": 0.25}), http2=http2)
    assert status == 200 and json.loads(body)["progress"] == 0.25
    status, _, body = curl(server, "-X", "POST", f"{url}/api/face-swap/task/{task_id}/cancel", http2=http2)
    assert status == 200 and json.loads(body)["status"] == "CANCELLED"
    status, headers, body = curl(server, "-N", f"{url}/api/face-swap/task/{task_id}/events", http2=http2)
    assert status == 200 and headers["content-type"] == "text/event-stream"
    assert json.loads(body.split(b"data: ", 1)[1])["status"] == "CANCELLED"
    status, _, body = curl(server, f"{url}/health", http2=http2)
    assert status == 200 and json.loads(body)["status"] == "ok"
    status, _, body = curl(server, f"{url}/openapi.json", http2=http2)
    assert status == 200 and body == OPENAPI_FILE.read_bytes()
    status, _, body = curl(server, f"{url}/api/nope", http2=http2)
    assert status == 404 and json.loads(body) == {"detail": "Not Found"}
    status, _, _ = curl(server, "-X", "POST", f"{url}/api/face-swap/create-task", "-d", "a=b", http2=http2)
    assert status == 415  # curl -d sends application/x-www-form-urlencoded


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl not installed")
def test_curl_expect_100_continue(server, tmp_path):
    body = json.dumps(LEGACY_BODY)
    status, _, out = curl(server, "-X", "POST", f"{base(server)}/api/face-swap/create-task", "-H",
                          "Content-Type: application/json", "-H", "Expect: 100-continue", "-d", body, http2=False)
    assert status == 200 and json.loads(out)["status"] == "PENDING"
    # A body declared too large is refused before it is sent.
    big = tmp_path / "big.json"
    big.write_bytes(b"x" * (2 * 1024 * 1024))
    status, headers, _ = curl(server, "-X", "POST", f"{base(server)}/api/face-swap/create-task", "-H",
                              "Content-Type: application/json", "-H", "Expect: 100-continue", "--data-binary",
                              f"@{big}", http2=False)
    assert status == 413 and headers.get("connection") == "close"


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl not installed")
def test_curl_process_with_the_legacy_example(server):
    stubs = Stubs(server.channel())
    worker = threading.Thread(target=complete_next, args=(stubs,), kwargs=dict(
        output_url="https://cdn/r.jpg", processing_time=1.5, job_id="job_1", storage_provider="r2"))
    worker.start()
    status, _, body = curl(server, "-X", "POST", f"{base(server)}/api/face-swap/process", "-H",
                           "Content-Type: application/json", "-d", json.dumps(LEGACY_BODY), http2=True)
    worker.join(T)
    assert status == 200
    assert body.startswith(b'{"status":"success","output_path":"https://cdn/r.jpg","processing_time":1.5,'
                           b'"job_id":"job_1","metadata":{"storage_url":"https://cdn/r.jpg",'
                           b'"storage_provider":"r2"},"task_id":"task_'), body


# ---------------------------------------------------------------------------------------------
# Shutdown: /health turns 503
# ---------------------------------------------------------------------------------------------


def test_health_is_503_while_shutting_down(server_factory):
    srv = server_factory()
    with socket.create_connection((HOST, srv.port), timeout=T) as sock:
        # The head now, the body after shutdown has begun: the route runs once the request ends.
        sock.sendall(f"GET /health HTTP/1.1\r\nHost: {HOST}\r\nContent-Length: 2\r\n\r\n".encode())
        time.sleep(0.2)
        srv.signal(signal.SIGTERM)

        def refused() -> bool:
            try:
                socket.create_connection((HOST, srv.port), timeout=1).close()
                return False
            except ConnectionRefusedError:
                return True

        assert _wait(refused), "the listener did not close"
        sock.sendall(b"{}")
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 503 Service Unavailable\r\n"), data
    assert b"connection: close" in head.lower()
    assert json.loads(body) == {"status": "unavailable", "serving_status": "NOT_SERVING"}
    assert srv.wait(timeout=10) == 0


# ---------------------------------------------------------------------------------------------
# The OpenAPI document
# ---------------------------------------------------------------------------------------------


def test_openapi_document_validates():
    from openapi_spec_validator import validate

    spec = json.loads(OPENAPI_FILE.read_text())
    validate(spec)
    assert spec["openapi"].startswith("3.1")
    assert set(spec["paths"]) == {
        "/api/face-swap/create-task", "/api/face-swap/process", "/api/face-swap/task/{task_id}",
        "/api/face-swap/task/{task_id}/cancel", "/api/face-swap/task/{task_id}/events",
        "/api/face-swap/tasks", "/api/face-swap/stats",
        "/api/comm/task/fetch", "/api/comm/task/update", "/health", "/openapi.json"}


@pytest.mark.slow
def test_schemathesis_finds_no_server_error_or_schema_violation(server_factory):
    """A bounded property-based run against the live server (loopback only). /process waits for
    a worker for up to 120 s and the event stream of a live task runs until the task ends, so
    those two are fuzzed only with requests answered at once (invalid bodies, unknown tasks)."""
    srv = server_factory("--max-wait-ms", "50")
    st = Path(sys.executable).with_name("schemathesis")
    common = [str(st), "run", f"{base(srv)}/openapi.json", "--checks", "all", "--exclude-checks",
              "ignored_auth,object_level_authorization,positive_data_acceptance", "--request-timeout", "10",
              "--no-color", "--seed", "1", "--workers", "1"]
    runs = [
        ["--exclude-path", "/api/face-swap/process", "--exclude-path", "/api/face-swap/task/{task_id}/events",
         "--max-examples", "40"],
        ["--include-path", "/api/face-swap/task/{task_id}/events", "--phases", "coverage,fuzzing",
         "--max-examples", "20"],
        # Invalid bodies only: a valid one would wait for a worker.
        ["--include-path", "/api/face-swap/process", "--mode", "negative", "--phases", "coverage,fuzzing",
         "--max-examples", "20"],
    ]
    for extra in runs:
        # Run in the server's temp dir: schemathesis and hypothesis write their caches to cwd.
        proc = subprocess.run([*common, *extra], capture_output=True, text=True, timeout=110, cwd=srv.tmpdir,
                              env={"PATH": "/usr/bin:/bin", "NO_PROXY": "*", "HOME": str(srv.tmpdir)})
        assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-2000:]
        assert " passed" in proc.stdout
