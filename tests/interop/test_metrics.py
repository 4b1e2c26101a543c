"""Prometheus /metrics on the server's port and on a worker's --metrics-port: known traffic
produces exactly the counters and histogram counts it must, and both outputs parse with
prometheus_client's own parser."""

from __future__ import annotations

import ssl
import subprocess

import grpc
import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from services import free_port
from support import ALLOW_LOCAL_URLS, BINARY, Stubs, create_request, tasks_pb2 as pb, wait_for
# The TLS tests' certificates (a private CA and a server certificate for 127.0.0.1).
from test_tls import certs  # noqa: F401
# The worker tests' FaceFusion simulator, storage directory and worker process fixtures.
from test_worker import params as simulator_params
from test_worker import serve_with_workers, simulator_factory, storage_dir, wait_terminal, worker_factory, worker_flags  # noqa: F401

T = 10
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def scrape(url: str, http2: bool = False, verify: ssl.SSLContext | bool = True) -> dict[tuple, float]:
    """Every sample of `url` as {(name, sorted labels): value}, parsed by prometheus_client."""
    with httpx.Client(http1=not http2, http2=http2, verify=verify, trust_env=False, timeout=T) as client:
        response = client.get(url)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == CONTENT_TYPE
    assert response.http_version == ("HTTP/2" if http2 else "HTTP/1.1")
    samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples: dict, name: str, **labels) -> float | None:
    return samples.get((name, tuple(sorted(labels.items()))))


def scrape_until(url: str, expected: float, name: str, **labels) -> dict[tuple, float]:
    """The samples of `url` once `name{labels}` reads `expected`: task events and worker
    outcomes are counted just after the calls that caused them answered."""
    return wait_for(lambda: (s := scrape(url)) and value(s, name, **labels) == expected and s,
                    timeout=15, what=f"{name}{labels} == {expected} at {url}")


def complete_one_task(server, sim) -> pb.Task:
    """A task on the simulator's samples, run by the server's workers to COMPLETED."""
    stub = Stubs(server.channel()).tasks
    task = stub.CreateTask(pb.CreateTaskRequest(params=simulator_params(sim)), timeout=T)
    finished = wait_terminal(stub, task.task_id)
    assert finished.status == pb.TASK_STATUS_COMPLETED
    return finished


def test_server_metrics_count_known_traffic_exactly(server_factory):
    server = server_factory("--store", "sqlite")
    stubs = Stubs(server.channel())
    base = f"http://127.0.0.1:{server.port}"

    created = [stubs.tasks.CreateTask(create_request(), timeout=T) for _ in range(5)]
    with pytest.raises(grpc.RpcError) as refused:
        stubs.tasks.CreateTask(create_request(params=pb.FaceSwapParams(source_url="not a url")), timeout=T)
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert httpx.get(f"{base}/api/face-swap/task/{created[0].task_id}", timeout=T).status_code == 200
    # A fake consumer leases the oldest task and completes it; another task is cancelled.
    lease = stubs.consumer.FetchTask(pb.FetchTaskRequest(consumer_id="metrics-test"), timeout=T)
    assert lease.task.task_id == created[0].task_id
    stubs.consumer.UpdateStatus(pb.UpdateStatusRequest(
        task_id=lease.task.task_id, lease_id=lease.lease_id, status=pb.TASK_STATUS_COMPLETED,
        result=pb.TaskResult(output_url="https://example.com/out.jpg")), timeout=T)
    stubs.tasks.CancelTask(pb.CancelTaskRequest(task_id=created[1].task_id), timeout=T)

    # Task events come from the change feed, which may run just after the calls answered.
    samples = scrape_until(f"{base}/metrics", 1, "swapline_tasks_total", event="cancelled")

    rpc = "swapline_rpc_requests_total"
    assert value(samples, rpc, method="TaskService/CreateTask", code="OK") == 5
    assert value(samples, rpc, method="TaskService/CreateTask", code="INVALID_ARGUMENT") == 1
    assert value(samples, rpc, method="ConsumerService/FetchTask", code="OK") == 1
    assert value(samples, rpc, method="ConsumerService/UpdateStatus", code="OK") == 1
    assert value(samples, rpc, method="TaskService/CancelTask", code="OK") == 1
    # REST calls are counted by route, not again as RPCs.
    assert value(samples, rpc, method="TaskService/GetTask", code="OK") is None
    assert sum(v for (name, _), v in samples.items() if name == rpc) == 9
    assert value(samples, "swapline_rpc_duration_seconds_count", method="TaskService/CreateTask") == 6
    assert value(samples, "swapline_rpc_duration_seconds_count", method="TaskService/GetTask") == 0

    assert value(samples, "swapline_http_requests_total", route="get_task", status="200") == 1
    assert value(samples, "swapline_http_duration_seconds_count", route="get_task") == 1

    assert value(samples, "swapline_tasks_total", event="created") == 5
    assert value(samples, "swapline_tasks_total", event="completed") == 1
    assert value(samples, "swapline_tasks_total", event="cancelled") == 1
    assert value(samples, "swapline_tasks_total", event="failed") is None
    assert value(samples, "swapline_tasks_total", event="redelivered") is None
    assert value(samples, "swapline_task_queue_seconds_count") == 1
    assert value(samples, "swapline_task_processing_seconds_count") == 1

    # SQLite transactions: the 8 changes made, and the lease sweeps' (10 a second).
    commits = value(samples, "swapline_store_commit_duration_seconds_count")
    assert commits >= 1
    assert value(samples, "swapline_store_commit_operations_count") == commits
    assert value(samples, "swapline_store_commit_operations_sum") >= 8
    queue = "swapline_queue_tasks"
    assert value(samples, queue, workflow="face_swap", state="PENDING") == 3
    assert value(samples, queue, workflow="face_swap", state="COMPLETED") == 1
    assert value(samples, queue, workflow="face_swap", state="CANCELLED") == 1
    assert value(samples, queue, workflow="face_swap", state="PROCESSING") is None
    assert value(samples, "swapline_queue_oldest_pending_age_seconds") > 0
    assert value(samples, "swapline_open_connections") >= 1
    assert value(samples, "swapline_open_watches") == 0
    assert value(samples, "swapline_waiting_consumers") == 0

    # The scrape itself is a REST request, seen by the next one, here over h2c.
    again = scrape(f"{base}/metrics", http2=True)
    assert value(again, "swapline_http_requests_total", route="metrics", status="200") >= 1


def test_metrics_is_open_without_a_token_and_refuses_other_methods(server_factory, tmp_path):
    tokens = tmp_path / "tokens"
    tokens.write_text("client metrics-test-client-token\n")
    server = server_factory("--auth-tokens-file", str(tokens))
    base = f"http://127.0.0.1:{server.port}"
    # The API needs the token; /metrics, like /health, does not.
    assert httpx.get(f"{base}/api/face-swap/task/nope", timeout=T).status_code == 401
    assert "swapline_open_connections" in {name for name, _ in scrape(f"{base}/metrics")}
    response = httpx.post(f"{base}/metrics", timeout=T)
    assert response.status_code == 405


@pytest.mark.parametrize("http2", [False, True])
def test_metrics_over_tls(server_factory, certs, http2):  # noqa: F811
    server = server_factory("--store", "memory", *certs.flags())
    trust = ssl.create_default_context(cafile=str(certs.ca))
    samples = scrape(f"https://localhost:{server.port}/metrics", http2=http2, verify=trust)
    assert value(samples, "swapline_open_connections") >= 1


def test_worker_metrics_port_reports_engines_engine_calls_uploads_and_tasks(
        server_factory, simulator_factory, worker_factory, storage_dir):  # noqa: F811
    sim = simulator_factory()
    server = server_factory("--store", "memory", ALLOW_LOCAL_URLS)
    port = free_port()
    worker_factory(server.port, *worker_flags(sim, storage_dir, "--metrics-port", str(port)))
    task = complete_one_task(server, sim)
    url = f"http://127.0.0.1:{port}/metrics"
    samples = scrape_until(url, 1, "swapline_worker_tasks_total", outcome="completed")
    assert value(samples, "swapline_worker_engine_healthy", engine=sim.url) == 1
    assert value(samples, "swapline_worker_engine_calls_total", engine=sim.url, outcome="ok") == 1
    assert value(samples, "swapline_worker_engine_call_duration_seconds_count", engine=sim.url) == 1
    outputs = len(task.result.outputs)
    assert value(samples, "swapline_worker_uploads_total", provider="local", outcome="ok") == outputs
    assert value(samples, "swapline_worker_upload_duration_seconds_count", provider="local") == outputs
    assert value(samples, "swapline_worker_upload_bytes_total", provider="local") > 0
    scrape(url, http2=True)  # h2c too
    assert httpx.get(f"http://127.0.0.1:{port}/other", timeout=T).status_code == 404


def test_in_process_workers_report_in_the_servers_metrics(server_factory, simulator_factory, storage_dir):  # noqa: F811
    sim = simulator_factory()
    server = serve_with_workers(server_factory, sim, storage_dir)
    complete_one_task(server, sim)
    samples = scrape_until(f"http://127.0.0.1:{server.port}/metrics", 1, "swapline_worker_tasks_total", outcome="completed")
    assert value(samples, "swapline_worker_engine_healthy", engine=sim.url) == 1
    assert value(samples, "swapline_tasks_total", event="completed") == 1


def test_worker_refuses_a_metrics_port_out_of_range():
    result = subprocess.run(
        [str(BINARY), "worker", "--engine", "http://127.0.0.1:1", "--metrics-port", "70000"],
        capture_output=True, text=True, timeout=30)
    assert result.returncode != 0
    assert "--metrics-port must be between 0 and 65535, got 70000" in result.stderr


def test_servers_sharing_postgresql_each_count_every_change_and_their_own_commits(server_factory, postgres_db):
    """The documented rule for a shared store: task events describe the whole queue on every
    server (aggregate with max), store commits are each server's own (sum)."""
    first = server_factory("--store", postgres_db)
    second = server_factory("--store", postgres_db)
    stubs = Stubs(first.channel())
    for _ in range(3):
        stubs.tasks.CreateTask(create_request(), timeout=T)
    for srv in (first, second):
        samples = scrape_until(f"http://127.0.0.1:{srv.port}/metrics", 3, "swapline_tasks_total", event="created")
        assert value(samples, "swapline_store_commit_duration_seconds_count") >= 1
    # The creating calls were the first server's alone.
    first_ops = value(scrape(f"http://127.0.0.1:{first.port}/metrics"), "swapline_store_commit_operations_sum")
    assert first_ops >= 3
    assert value(scrape(f"http://127.0.0.1:{second.port}/metrics"),
                 "swapline_rpc_requests_total", method="TaskService/CreateTask", code="OK") is None
