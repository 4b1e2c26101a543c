"""Deleting stored result files: `--result-lifetime` deletes the files of COMPLETED tasks while
the tasks stay (local storage and S3 on moto), and a deletion that fails is retried with backoff
from a record in the task database, which a restart keeps."""

from __future__ import annotations

import http.client
import http.server
import signal
import subprocess
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

import httpx
import pytest

from support import BINARY, ALLOW_LOCAL_URLS, tasks_pb2, tasks_pb2_grpc
from test_storage_s3 import BUCKET, PREFIX, credentials, moto, run_task  # noqa: F401
from test_worker import simulator_factory, storage_dir  # noqa: F401


class FlakyS3:
    """A pass-through proxy in front of moto that answers DELETE with 500 while `failing`.
    Requests are forwarded with their own Host header, so moto checks the signature the
    client made for the proxy's address."""

    def __init__(self, upstream_port: int) -> None:
        self.failing = False
        self.deletes_refused = 0
        self.deletes_passed = 0
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:
                pass

            def forward(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0) or 0))
                if self.command == "DELETE":
                    if proxy.failing:
                        proxy.deletes_refused += 1
                        answer = b"<Error><Code>InternalError</Code><Message>flaky</Message></Error>"
                        self.send_response(500)
                        self.send_header("Content-Length", str(len(answer)))
                        self.end_headers()
                        self.wfile.write(answer)
                        return
                    proxy.deletes_passed += 1
                upstream = http.client.HTTPConnection("127.0.0.1", upstream_port, timeout=30)
                upstream.request(self.command, self.path, body=body, headers=dict(self.headers))
                response = upstream.getresponse()
                data = response.read()
                self.send_response(response.status)
                for name, value in response.getheaders():
                    if name.lower() not in ("content-length", "transfer-encoding", "connection", "server", "date"):
                        self.send_header(name, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                upstream.close()

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = forward

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def flaky_s3(moto):
    proxy = FlakyS3(moto.port)
    yield proxy
    proxy.stop()


def wait_until(condition, timeout: float = 45) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.2)
    return True


def keys_of(task: tasks_pb2.Task) -> set[str]:
    return {urllib.parse.urlsplit(url).path[len(f"/{BUCKET}/"):] for url in task.result.outputs.values()}


def still_completed(server, task: tasks_pb2.Task) -> None:
    """The task is kept with its URLs; `files_expired_at_ms` says when its files were queued
    for deletion by the lifetime (gRPC and REST)."""
    stub = tasks_pb2_grpc.TaskServiceStub(server.channel())
    kept = stub.GetTask(tasks_pb2.GetTaskRequest(task_id=task.task_id), timeout=10)
    assert kept.status == tasks_pb2.TASK_STATUS_COMPLETED
    assert kept.result.outputs == task.result.outputs, "the task keeps its URLs"
    assert task.result.files_expired_at_ms == 0
    rest = httpx.get(f"http://{server.address}/api/face-swap/task/{task.task_id}", timeout=10).json()["result"]
    assert kept.result.files_expired_at_ms >= task.updated_at_ms + 1000, (kept.result, task.updated_at_ms)
    assert rest["files_expired_at_ms"] == kept.result.files_expired_at_ms


def test_the_lifetime_deletes_local_files_and_keeps_the_task(server_factory, simulator_factory, storage_dir):
    sim = simulator_factory()
    server = server_factory("--workers", "1", "--engine", sim.url, "--health-interval-ms", "200", ALLOW_LOCAL_URLS,
                            "--storage", f"local:{storage_dir}", "--result-lifetime", "2s")
    task = run_task(server, sim)
    assert task.status == tasks_pb2.TASK_STATUS_COMPLETED, task.error
    assert task.result.storage_provider == "local"
    (storage_dir / "unrelated").mkdir()
    assert wait_until(lambda: not (storage_dir / task.task_id).exists()), server.stderr_tail()
    assert (storage_dir / "unrelated").is_dir()
    still_completed(server, task)
    with pytest.raises(urllib.error.HTTPError) as gone:
        urllib.request.urlopen(task.result.outputs["jpg"], timeout=10)
    assert gone.value.code == 404


def test_the_lifetime_deletes_s3_objects_and_keeps_the_task(server_factory, simulator_factory, moto, credentials):
    sim = simulator_factory()
    server = server_factory("--workers", "1", "--engine", sim.url, "--health-interval-ms", "200", ALLOW_LOCAL_URLS,
                            "--storage", f"s3://{BUCKET}/{PREFIX}", "--s3-endpoint", moto.url, "--s3-path-style",
                            "--result-lifetime", "3s")
    task = run_task(server, sim)
    assert task.status == tasks_pb2.TASK_STATUS_COMPLETED, task.error
    ours = keys_of(task)
    assert len(ours) == 3 and ours <= set(moto.keys())
    moto.s3.put_object(Bucket=BUCKET, Key=f"{PREFIX}/unrelated/lifetime.txt", Body=b"not a task's")
    assert wait_until(lambda: not ours & set(moto.keys())), server.stderr_tail()
    assert f"{PREFIX}/unrelated/lifetime.txt" in moto.keys()
    still_completed(server, task)


def test_a_failed_deletion_is_retried_later_and_after_a_restart(server_factory, simulator_factory, moto, credentials,
                                                               flaky_s3, tmp_path):
    """The task's objects go up through the proxy; retention then purges the task while the
    proxy answers every DELETE with 500: each file is tried again (after 200 ms, 400 ms, …),
    the server stops with the deletions pending, and the next server on the same data
    directory deletes them once the store answers again."""
    sim = simulator_factory()
    data = tmp_path / "data"
    storage = ["--storage", f"s3://{BUCKET}/{PREFIX}", "--s3-endpoint", flaky_s3.url, "--s3-path-style",
               "--s3-max-attempts", "1"]
    first = server_factory("--data", str(data), "--workers", "1", "--engine", sim.url, "--health-interval-ms", "200",
                           ALLOW_LOCAL_URLS, *storage)
    task = run_task(first, sim)
    assert task.status == tasks_pb2.TASK_STATUS_COMPLETED, task.error
    ours = keys_of(task)
    assert len(ours) == 3 and ours <= set(moto.keys())
    first.signal(signal.SIGTERM)
    assert first.wait(30) == 0
    time.sleep(1)  # older than the retention below

    flaky_s3.failing = True
    second = server_factory("--data", str(data), "--retention-hours", "0.0001", *storage,
                            "--result-delete-retry-base-ms", "200")
    # Three files, each refused at least twice: retried, not dropped.
    assert wait_until(lambda: flaky_s3.deletes_refused >= 6), second.stderr_tail()
    second.signal(signal.SIGTERM)
    assert second.wait(30) == 0
    assert ours <= set(moto.keys()) and flaky_s3.deletes_passed == 0
    assert "could not delete a result file of " + task.task_id in second.stderr_tail(100000)

    flaky_s3.failing = False
    third = server_factory("--data", str(data), *storage)
    assert wait_until(lambda: not ours & set(moto.keys())), third.stderr_tail()
    assert flaky_s3.deletes_passed == 3


def test_a_deletion_that_keeps_failing_is_given_up_with_an_error(server_factory, moto, credentials, flaky_s3, tmp_path,
                                                                 simulator_factory):
    sim = simulator_factory()
    storage = ["--storage", f"s3://{BUCKET}/{PREFIX}", "--s3-endpoint", flaky_s3.url, "--s3-path-style",
               "--s3-max-attempts", "1"]
    server = server_factory("--workers", "1", "--engine", sim.url, "--health-interval-ms", "200", ALLOW_LOCAL_URLS,
                            *storage, "--result-lifetime", "1s", "--result-delete-attempts", "2",
                            "--result-delete-retry-base-ms", "100")
    flaky_s3.failing = True
    task = run_task(server, sim)
    assert task.status == tasks_pb2.TASK_STATUS_COMPLETED, task.error
    assert wait_until(lambda: "gave up deleting a result file of " + task.task_id in server.stderr_tail(100000)), \
        server.stderr_tail()
    refused = flaky_s3.deletes_refused
    assert refused == 6, "two tries per file"
    time.sleep(3)
    assert flaky_s3.deletes_refused == refused, "no try after giving up"
    still_completed(server, task)


@pytest.mark.parametrize("flags, message", [
    (["--result-lifetime", "0s"], "--result-lifetime must be a number and a unit (s, m, h or d) from 1s to 100 years"),
    (["--result-lifetime", "12"], "got '12'"),
    (["--result-lifetime", "1w"], "got '1w'"),
    (["--result-lifetime", "101000d"], "got '101000d'"),
    (["--result-delete-attempts", "0"], "--result-delete-attempts must be between 1 and 100"),
    (["--result-delete-retry-base-ms", "0"], "--result-delete-retry-base-ms must be between 1 and"),
])
def test_result_file_flags_out_of_range_are_refused_at_start(flags, message, tmp_path):
    done = subprocess.run([str(BINARY), "serve", "--port", "0", "--data", str(tmp_path), *flags],
                          capture_output=True, timeout=30)
    assert done.returncode != 0 and message in done.stderr.decode(), done.stderr.decode()


def test_servers_sharing_postgresql_delete_each_file_once(server_factory, simulator_factory, moto, credentials,
                                                          flaky_s3, postgres_db):
    """Two servers on one PostgreSQL queue both sweep: each expired file is deleted by one of
    them, once."""
    sim = simulator_factory()
    shared = ["--store", postgres_db, "--storage", f"s3://{BUCKET}/{PREFIX}", "--s3-endpoint", flaky_s3.url,
              "--s3-path-style", "--result-lifetime", "2s"]
    first = server_factory(*shared, "--workers", "1", "--engine", sim.url, "--health-interval-ms", "200",
                           ALLOW_LOCAL_URLS)
    server_factory(*shared)
    task = run_task(first, sim)
    assert task.status == tasks_pb2.TASK_STATUS_COMPLETED, task.error
    ours = keys_of(task)
    assert wait_until(lambda: not ours & set(moto.keys())), first.stderr_tail()
    time.sleep(5)  # several more sweeps of both servers
    assert flaky_s3.deletes_passed == 3
    still_completed(first, task)
