"""Access control (issue 10): per-role bearer tokens on every RPC and REST route, gRPC with
stock grpcio and REST with httpx over HTTP/1.1 and h2c; the open health check; the refusal to
serve a non-loopback address without tokens; the worker and the CLI with tokens."""

from __future__ import annotations

import os
import subprocess

import grpc
import httpx
import pytest

from support import ALLOW_LOCAL_URLS, BINARY, HOST, SwaplineServer, health_pb2, health_pb2_grpc, tasks_pb2 as pb, tasks_pb2_grpc

T = 10
CLIENT, OTHER_CLIENT, CONSUMER, ADMIN = "client-token-1", "client-token-2", "consumer-token-1", "admin-token-1"
TOKENS = f"client:{CLIENT},client:{OTHER_CLIENT},consumer:{CONSUMER},admin:{ADMIN}"
PARAMS = pb.FaceSwapParams(source_url="https://example.com/a.jpg", target_url="https://example.com/b.jpg")
LEGACY = {"source_url": "https://example.com/a.jpg", "target_url": "https://example.com/b.jpg"}


@pytest.fixture(scope="module")
def secured():
    # The simulator's sample URLs are on loopback, which only --allow-private-urls accepts.
    srv = SwaplineServer("--store", "memory", ALLOW_LOCAL_URLS, env={"SWAPLINE_AUTH_TOKENS": TOKENS}).start()
    yield srv
    srv.stop()


def md(token: str | None):
    return None if token is None else (("authorization", f"Bearer {token}"),)


def stubs(srv):
    ch = srv.channel()
    return tasks_pb2_grpc.TaskServiceStub(ch), tasks_pb2_grpc.ConsumerServiceStub(ch)


def code_of(call) -> grpc.StatusCode:
    try:
        result = call()
        if hasattr(result, "__iter__") and not hasattr(result, "ListFields"):
            list(result)
    except grpc.RpcError as error:
        return error.code()
    return grpc.StatusCode.OK


def grpc_calls(srv, task_id: str):
    """Every RPC of both services, as (name, role needed, call taking metadata)."""
    tasks, consumer = stubs(srv)
    return [
        ("CreateTask", "client", lambda m: tasks.CreateTask(pb.CreateTaskRequest(params=PARAMS), metadata=m, timeout=T)),
        ("ProcessSync", "client", lambda m: tasks.ProcessSync(pb.ProcessSyncRequest(params=PARAMS), metadata=m, timeout=0.5)),
        ("GetTask", "client", lambda m: tasks.GetTask(pb.GetTaskRequest(task_id=task_id), metadata=m, timeout=T)),
        ("CancelTask", "client", lambda m: tasks.CancelTask(pb.CancelTaskRequest(task_id="task_nothing"), metadata=m, timeout=T)),
        ("WatchTask", "client", lambda m: tasks.WatchTask(pb.WatchTaskRequest(task_id="task_nothing"), metadata=m, timeout=T)),
        ("FetchTask", "consumer", lambda m: consumer.FetchTask(pb.FetchTaskRequest(wait_ms=0, workflows=["nothing"]), metadata=m, timeout=T)),
        ("UpdateStatus", "consumer", lambda m: consumer.UpdateStatus(
            pb.UpdateStatusRequest(task_id="task_nothing", lease_id="l", status=pb.TASK_STATUS_PROCESSING), metadata=m, timeout=T)),
    ]


def created(srv, token=CLIENT) -> str:
    tasks, _ = stubs(srv)
    return tasks.CreateTask(pb.CreateTaskRequest(params=PARAMS), metadata=md(token), timeout=T).task_id


@pytest.mark.parametrize("name", ["CreateTask", "ProcessSync", "GetTask", "CancelTask", "WatchTask", "FetchTask", "UpdateStatus"])
def test_grpc_every_rpc_needs_a_token_of_its_role(secured, name):
    task_id = created(secured)
    (_, role, call), = [c for c in grpc_calls(secured, task_id) if c[0] == name]
    assert code_of(lambda: call(None)) == grpc.StatusCode.UNAUTHENTICATED
    assert code_of(lambda: call(md("not-a-token"))) == grpc.StatusCode.UNAUTHENTICATED
    assert code_of(lambda: call((("authorization", "Basic " + CLIENT),))) == grpc.StatusCode.UNAUTHENTICATED
    other_role = CONSUMER if role == "client" else CLIENT
    assert code_of(lambda: call(md(other_role))) == grpc.StatusCode.PERMISSION_DENIED
    own = CLIENT if role == "client" else CONSUMER
    for token in (own, ADMIN):
        assert code_of(lambda: call(md(token))) not in (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED)


def test_grpc_health_stays_open(secured):
    health = health_pb2_grpc.HealthStub(secured.channel())
    assert health.Check(health_pb2.HealthCheckRequest(), timeout=T).status == health_pb2.HealthCheckResponse.SERVING


def test_grpc_refusals_say_why(secured):
    tasks, _ = stubs(secured)
    with pytest.raises(grpc.RpcError) as missing:
        tasks.GetTask(pb.GetTaskRequest(task_id="task_x"), timeout=T)
    assert "bearer token" in missing.value.details()
    with pytest.raises(grpc.RpcError) as denied:
        tasks.GetTask(pb.GetTaskRequest(task_id="task_x"), metadata=md(CONSUMER), timeout=T)
    assert "consumer token may not call swapline.v1.TaskService" in denied.value.details()
    assert CONSUMER not in secured.stderr_tail(100_000)


@pytest.fixture(params=["http1", "http2"])
def http(request, secured):
    h2 = request.param == "http2"
    with httpx.Client(base_url=f"http://{secured.address}", http1=not h2, http2=h2, timeout=T, trust_env=False) as client:
        yield client


def rest_routes(task_id: str):
    """Every REST route that calls a protected RPC: (method, path, body, role needed)."""
    return [
        ("POST", "/api/face-swap/create-task", LEGACY, "client"),
        ("POST", "/api/face-swap/process", LEGACY, "client"),
        ("GET", f"/api/face-swap/task/{task_id}", None, "client"),
        ("POST", "/api/face-swap/task/task_nothing/cancel", None, "client"),
        ("GET", "/api/face-swap/task/task_nothing/events", None, "client"),
        ("GET", "/api/comm/task/fetch?wait_ms=0&workflow=nothing", None, "consumer"),
        ("POST", "/api/comm/task/update", {"task_id": "task_nothing", "lease_id": "l", "status": "PROCESSING"}, "consumer"),
    ]


def send(http, method, path, body, token):
    headers = {} if token is None else {"authorization": f"Bearer {token}"}
    return http.request(method, path, json=body, headers=headers)


@pytest.mark.parametrize("index", range(7))
def test_rest_every_route_needs_a_token_of_its_role(secured, http, index):
    method, path, body, role = rest_routes(created(secured))[index]
    for token in (None, "not-a-token"):
        response = send(http, method, path, body, token)
        assert response.status_code == 401, response.text
        assert response.headers["www-authenticate"] == "Bearer"
        assert isinstance(response.json()["detail"], str)
    response = send(http, method, path, body, CONSUMER if role == "client" else CLIENT)
    assert response.status_code == 403 and isinstance(response.json()["detail"], str)
    own = CLIENT if role == "client" else CONSUMER
    if path.endswith("/process"):
        return  # it would wait for a worker; its refusals are what this test is about
    for token in (own, ADMIN):
        assert send(http, method, path, body, token).status_code not in (401, 403)


def test_rest_health_and_openapi_stay_open(http):
    assert http.get("/health").json() == {"status": "ok", "serving_status": "SERVING"}
    document = http.get("/openapi.json").json()
    assert document["components"]["securitySchemes"]["bearerAuth"] == {
        "type": "http", "scheme": "bearer", "description": document["components"]["securitySchemes"]["bearerAuth"]["description"]}


def test_a_server_off_loopback_without_tokens_refuses_to_start(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "SWAPLINE_AUTH_TOKENS"}
    run = subprocess.run([str(BINARY), "serve", "--host", "0.0.0.0", "--port", "0", "--store", "memory"],
                         capture_output=True, text=True, timeout=30, env=env, cwd=tmp_path)
    assert run.returncode != 0 and "--insecure" in run.stderr


def test_bad_token_lists_stop_the_server_without_echoing_the_token(tmp_path):
    tokens = tmp_path / "tokens"
    tokens.write_text("# comment\nclient good-token\nwizard secret-token-value\n")
    run = subprocess.run([str(BINARY), "serve", "--port", "0", "--store", "memory", "--auth-tokens-file", str(tokens)],
                         capture_output=True, text=True, timeout=30, cwd=tmp_path)
    assert run.returncode != 0 and "line 3" in run.stderr and "unknown role 'wizard'" in run.stderr
    assert "secret-token-value" not in run.stderr + run.stdout


def test_tokens_from_a_file(tmp_path):
    tokens = tmp_path / "tokens"
    tokens.write_text("client  file-client-token\n\n# workers\nconsumer\tfile-consumer-token\n")
    srv = SwaplineServer("--store", "memory", "--auth-tokens-file", str(tokens)).start()
    try:
        tasks, consumer = stubs(srv)
        assert tasks.CreateTask(pb.CreateTaskRequest(params=PARAMS), metadata=md("file-client-token"), timeout=T).task_id
        assert consumer.FetchTask(pb.FetchTaskRequest(wait_ms=0), metadata=md("file-consumer-token"), timeout=T).task.task_id
        assert code_of(lambda: tasks.GetTask(pb.GetTaskRequest(task_id="t"), metadata=md(CLIENT), timeout=T)) == \
            grpc.StatusCode.UNAUTHENTICATED
    finally:
        srv.stop()


def cli(*args, token=None, env_token=None):
    env = {k: v for k, v in os.environ.items() if k != "SWAPLINE_TOKEN"}
    if env_token:
        env["SWAPLINE_TOKEN"] = env_token
    argv = [str(BINARY), *args] + (["--token", token] if token else [])
    return subprocess.run(argv, capture_output=True, text=True, timeout=60, env=env)


def test_cli_sends_its_token(secured):
    server = f"http://{secured.address}"
    denied = cli("create", "--server", server, "--source", LEGACY["source_url"], "--target", LEGACY["target_url"])
    assert denied.returncode != 0 and "unauthenticated" in (denied.stderr + denied.stdout).lower()
    made = cli("create", "--server", server, "--source", LEGACY["source_url"], "--target", LEGACY["target_url"], token=CLIENT)
    assert made.returncode == 0, made.stderr
    task_id = made.stdout.strip()
    got = cli("get", "--server", server, task_id, env_token=CLIENT)
    assert got.returncode == 0 and task_id in got.stdout, got.stderr
    cancelled = cli("cancel", "--server", server, task_id, env_token=ADMIN)
    assert cancelled.returncode == 0 and "CANCELLED" in cancelled.stdout, cancelled.stderr


def wait_done(srv, task_id: str, token: str) -> pb.Task:
    tasks, _ = stubs(srv)
    last = None
    for event in tasks.WatchTask(pb.WatchTaskRequest(task_id=task_id), metadata=md(token), timeout=60):
        last = event.task
    return last


def test_worker_and_in_process_workers_work_with_tokens(secured, tmp_path):
    from test_worker import Simulator, WorkerProcess

    sim = Simulator()
    try:
        worker = WorkerProcess(secured.port, "--engine", sim.url, "--storage", f"local:{tmp_path / 'out'}",
                               "--token", CONSUMER, ALLOW_LOCAL_URLS)
        try:
            task_id = created_with(secured, sim, CLIENT)
            assert wait_done(secured, task_id, CLIENT).status == pb.TASK_STATUS_COMPLETED
        finally:
            worker.stop()
        srv = SwaplineServer("--store", "memory", "--workers", "1", "--engine", sim.url, ALLOW_LOCAL_URLS,
                             env={"SWAPLINE_AUTH_TOKENS": f"client:{CLIENT}"}).start()
        try:
            task_id = created_with(srv, sim, CLIENT)
            assert wait_done(srv, task_id, CLIENT).status == pb.TASK_STATUS_COMPLETED
        finally:
            srv.stop()
    finally:
        sim.stop()


def created_with(srv, sim, token: str) -> str:
    tasks, _ = stubs(srv)
    params = pb.FaceSwapParams(source_url=sim.sample("source.jpg"), target_url=sim.sample("target.jpg"),
                               resolution="256x256")
    return tasks.CreateTask(pb.CreateTaskRequest(params=params), metadata=md(token), timeout=T).task_id


# --- tenancy: a task belongs to the client token that created it ----------------------------

def test_grpc_other_clients_get_not_found_like_a_missing_task(secured):
    tasks, _ = stubs(secured)
    task_id = created(secured, CLIENT)
    calls = {
        "GetTask": lambda m, t: tasks.GetTask(pb.GetTaskRequest(task_id=t), metadata=m, timeout=T),
        "CancelTask": lambda m, t: tasks.CancelTask(pb.CancelTaskRequest(task_id=t), metadata=m, timeout=T),
        "WatchTask": lambda m, t: list(tasks.WatchTask(pb.WatchTaskRequest(task_id=t), metadata=m, timeout=T)),
    }
    for name, call in calls.items():
        with pytest.raises(grpc.RpcError) as theirs:
            call(md(OTHER_CLIENT), task_id)
        with pytest.raises(grpc.RpcError) as missing:
            call(md(OTHER_CLIENT), "task_01AAAAAAAAAAAAAAAAAAAAAAAA")
        assert theirs.value.code() == missing.value.code() == grpc.StatusCode.NOT_FOUND, name
        assert theirs.value.details() == f"task '{task_id}' does not exist", name
    # Nothing happened to it, and its owner and an admin still see it.
    assert tasks.GetTask(pb.GetTaskRequest(task_id=task_id), metadata=md(CLIENT), timeout=T).status == pb.TASK_STATUS_PENDING
    assert tasks.GetTask(pb.GetTaskRequest(task_id=task_id), metadata=md(ADMIN), timeout=T).task_id == task_id


def test_rest_other_clients_get_404_like_a_missing_task(secured, http):
    task_id = http.post("/api/face-swap/create-task", json=LEGACY, headers={"authorization": f"Bearer {CLIENT}"}).json()["task_id"]
    other = {"authorization": f"Bearer {OTHER_CLIENT}"}
    for method, path in (("GET", f"/api/face-swap/task/{task_id}"), ("POST", f"/api/face-swap/task/{task_id}/cancel"),
                         ("GET", f"/api/face-swap/task/{task_id}/events")):
        response = http.request(method, path, headers=other)
        assert response.status_code == 404 and response.json() == {"detail": f"task '{task_id}' does not exist"}
    owner = http.get(f"/api/face-swap/task/{task_id}", headers={"authorization": f"Bearer {CLIENT}"})
    assert owner.status_code == 200 and owner.json()["status"] == "PENDING"


def test_idempotency_keys_are_per_client(secured):
    tasks, _ = stubs(secured)

    def create(token):
        request = pb.CreateTaskRequest(params=PARAMS, idempotency_key="order-42")
        return tasks.CreateTask(request, metadata=md(token), timeout=T).task_id

    mine, theirs = create(CLIENT), create(OTHER_CLIENT)
    assert mine != theirs
    assert create(CLIENT) == mine and create(OTHER_CLIENT) == theirs
