"""End to end with real processes: `swapline serve` (with in-process workers, or a separate
`swapline worker`), the FaceFusion simulator (tools/facefusion-sim) and local storage, all on
loopback. Fault tests turn the simulator's knobs at run time through its POST /admin."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from PIL import Image

import support
from support import ALLOW_LOCAL_URLS, BINARY, ROOT, tasks_pb2, tasks_pb2_grpc

SIMULATOR = ROOT / "tools" / "facefusion-sim"


class Simulator:
    """tools/facefusion-sim on a free loopback port, with its knobs reachable over /admin."""

    def __init__(self, *flags: str):
        self.tmpdir = Path(tempfile.mkdtemp(prefix="swapline-sim-"))
        self.proc = subprocess.Popen(
            [sys.executable, str(SIMULATOR), "--port", "0", "--output-dir", str(self.tmpdir), *flags],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, start_new_session=True)
        line = self.proc.stdout.readline().decode()
        match = re.search(r"listening on 127\.0\.0\.1:(\d+)", line)
        if not match:
            self.stop()
            raise RuntimeError(f"simulator did not start: {line!r}")
        self.url = f"http://127.0.0.1:{match.group(1)}"

    def admin(self, **knobs) -> dict:
        request = urllib.request.Request(
            self.url + "/admin", data=json.dumps(knobs).encode() if knobs else None,
            headers={"Content-Type": "application/json"}, method="POST" if knobs else "GET")
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.load(response)

    def counter(self, name: str) -> int:
        return self.admin()["counters"][name]

    def sample(self, name: str) -> str:
        return f"{self.url}/samples/{name}"

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)
        self.proc.stdout.close()
        shutil.rmtree(self.tmpdir, ignore_errors=True)


class WorkerProcess:
    """A separate `swapline worker` process. Its stdout and stderr go to a log file
    (`log_tail()`), removed by `stop()` unless `keep_log` asks to read it afterwards."""

    def __init__(self, server_port: int, *flags: str):
        self.dir = Path(tempfile.mkdtemp(prefix="swapline-worker-"))
        self.log_path = self.dir / "worker.log"
        self._log = open(self.log_path, "wb")
        self.flags = flags
        self.proc = subprocess.Popen(
            [str(BINARY), "worker", "--server", f"http://127.0.0.1:{server_port}", *flags],
            stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 30
        while "swapline worker started" not in self.log_tail():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                tail = self.log_tail()
                self.stop()
                raise RuntimeError(f"swapline worker did not start:\n{tail}")
            time.sleep(0.05)

    def log_tail(self, limit: int = 4000) -> str:
        try:
            return self.log_path.read_bytes()[-limit:].decode("utf-8", "replace")
        except OSError:
            return ""

    def stop(self, sig: int = signal.SIGTERM, keep_log: bool = False) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self._log.close()
        if not keep_log:
            self.remove()

    def remove(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def simulator_factory():
    started: list[Simulator] = []

    def start(*flags: str) -> Simulator:
        sim = Simulator(*flags)
        started.append(sim)
        return sim

    yield start
    for sim in started:
        sim.stop()


@pytest.fixture
def storage_dir():
    path = Path(tempfile.mkdtemp(prefix="swapline-storage-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def worker_factory():
    started: list[WorkerProcess] = []

    def start(server_port: int, *flags: str) -> WorkerProcess:
        worker = WorkerProcess(server_port, *flags)
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.stop()


def worker_flags(sim: Simulator, storage: Path, *extra: str) -> list[str]:
    return ["--engine", sim.url, "--storage", f"local:{storage}", "--health-interval-ms", "200",
            "--retry-base-ms", "100", ALLOW_LOCAL_URLS, *extra]


def serve_with_workers(server_factory, sim, storage, *extra):
    return server_factory("--store", "memory", "--workers", "2", *worker_flags(sim, storage, *extra))


def params(sim: Simulator, resolution: str = "512x512") -> tasks_pb2.FaceSwapParams:
    return tasks_pb2.FaceSwapParams(source_url=sim.sample("source.jpg"), target_url=sim.sample("target.jpg"),
                                    resolution=resolution)


def wait_terminal(stub, task_id: str, timeout: float = 60) -> tasks_pb2.Task:
    terminal = {tasks_pb2.TASK_STATUS_COMPLETED, tasks_pb2.TASK_STATUS_FAILED, tasks_pb2.TASK_STATUS_CANCELLED}
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        task = stub.GetTask(tasks_pb2.GetTaskRequest(task_id=task_id), timeout=10)
        if task.status in terminal:
            return task
        time.sleep(0.1)
    raise AssertionError(f"task {task_id} not finished in {timeout}s: {task}")


OUTPUT_URL = re.compile(r"/outputs/(task_[0-9A-Z]+)/([0-9a-f]{32})/result\.(jpg|gif|webp)$")


def stored_path(storage: Path, url: str) -> Path:
    """The file behind a local-storage URL: /outputs/{task_id}/{unguessable key}/result.{ext}."""
    match = OUTPUT_URL.search(url)
    assert match, f"not a local-storage URL with an unguessable key: {url}"
    return storage / match[1] / match[2] / f"result.{match[3]}"


def assert_stored_images(storage: Path, task: tasks_pb2.Task, serve_outputs: bool = True) -> None:
    expected = {"jpg": "JPEG", "gif": "GIF", "webp": "WEBP"}
    assert set(task.result.outputs) == set(expected)
    for ext, pil_format in expected.items():
        path = stored_path(storage, task.result.outputs[ext])
        assert f"/outputs/{task.task_id}/" in task.result.outputs[ext] and path.suffix == f".{ext}"
        if serve_outputs:  # the server publishes local storage at /outputs/
            url = task.result.outputs[ext]
            with urllib.request.urlopen(url, timeout=10) as response:
                assert response.headers["Content-Type"] == {"jpg": "image/jpeg", "gif": "image/gif", "webp": "image/webp"}[ext]
                assert response.read() == path.read_bytes()
            # Knowing the task id is not enough: without the key the file is not found.
            guessed = url.replace(f"/{path.parent.name}/", "/")
            with pytest.raises(urllib.error.HTTPError) as refused:
                urllib.request.urlopen(guessed, timeout=10)
            assert refused.value.code == 404
        with Image.open(path) as image:
            assert image.format == pil_format
            image.verify()


def test_tasks_complete_and_store_valid_images_of_each_format(server_factory, simulator_factory, storage_dir):
    sim = simulator_factory()
    server = serve_with_workers(server_factory, sim, storage_dir)
    stub = tasks_pb2_grpc.TaskServiceStub(server.channel())
    created = [stub.CreateTask(tasks_pb2.CreateTaskRequest(params=params(sim)), timeout=10) for _ in range(3)]
    for task in created:
        done = wait_terminal(stub, task.task_id)
        assert done.status == tasks_pb2.TASK_STATUS_COMPLETED, done.error
        assert done.progress == pytest.approx(1.0)
        assert done.result.storage_provider == "local"
        assert done.result.job_id.startswith("job_")
        assert done.result.processing_time > 0
        assert done.result.output_url == done.result.outputs["jpg"]
        assert_stored_images(storage_dir, done)
        with Image.open(stored_path(storage_dir, done.result.outputs["jpg"])) as image:
            assert image.size == (512, 512)


def test_process_sync_returns_the_full_response(server_factory, simulator_factory, storage_dir):
    sim = simulator_factory()
    server = serve_with_workers(server_factory, sim, storage_dir)
    stub = tasks_pb2_grpc.TaskServiceStub(server.channel())
    response = stub.ProcessSync(tasks_pb2.ProcessSyncRequest(params=params(sim)), timeout=60)
    assert response.status == "success"
    assert f"/outputs/{response.task_id}/" in response.output_path and OUTPUT_URL.search(response.output_path)
    assert response.job_id.startswith("job_")
    assert response.processing_time > 0
    assert response.metadata["storage_provider"] == "local"
    assert response.metadata["storage_url"] == response.output_path
    assert response.metadata["gif_url"].endswith("result.gif")
    assert response.metadata["webp_url"].endswith("result.webp")


def run_one_task(server_factory, simulator_factory, storage_dir, sim_flags, worker_extra=()):
    """Runs one task against a simulator started with `sim_flags`; returns (finished task, sim)."""
    sim = simulator_factory(*sim_flags)
    server = serve_with_workers(server_factory, sim, storage_dir, *worker_extra)
    stub = tasks_pb2_grpc.TaskServiceStub(server.channel())
    task = stub.CreateTask(tasks_pb2.CreateTaskRequest(params=params(sim)), timeout=10)
    return wait_terminal(stub, task.task_id), sim


def test_a_5xx_that_heals_within_three_tries_completes(server_factory, simulator_factory, storage_dir):
    done, sim = run_one_task(server_factory, simulator_factory, storage_dir, ("--fail-next", "2", "--fail-status", "503"))
    assert done.status == tasks_pb2.TASK_STATUS_COMPLETED, done.error
    assert sim.counter("process_requests") == 3
    assert done.attempt == 1  # retried inside one lease, not redelivered


def test_a_5xx_that_does_not_heal_fails_naming_the_stage(server_factory, simulator_factory, storage_dir):
    done, sim = run_one_task(server_factory, simulator_factory, storage_dir, ("--fail-next", "100", "--fail-status", "500"))
    assert done.status == tasks_pb2.TASK_STATUS_FAILED
    assert done.error.startswith("facefusion: ")
    assert "500" in done.error
    assert sim.counter("process_requests") == 3


def test_a_client_error_is_not_retried(server_factory, simulator_factory, storage_dir):
    done, sim = run_one_task(server_factory, simulator_factory, storage_dir, ("--fail-next", "1", "--fail-status", "422"))
    assert done.status == tasks_pb2.TASK_STATUS_FAILED
    assert "422" in done.error
    assert sim.counter("process_requests") == 1


def test_429_honours_retry_after(server_factory, simulator_factory, storage_dir):
    started = time.monotonic()
    done, sim = run_one_task(server_factory, simulator_factory, storage_dir,
                             ("--fail-next", "1", "--fail-status", "429", "--retry-after", "2"))
    assert done.status == tasks_pb2.TASK_STATUS_COMPLETED, done.error
    assert sim.counter("process_requests") == 2
    assert time.monotonic() - started >= 2  # not the 100 ms backoff


def test_a_hang_hits_the_timeout_and_is_retried(server_factory, simulator_factory, storage_dir):
    started = time.monotonic()
    done, sim = run_one_task(server_factory, simulator_factory, storage_dir, ("--hang-next", "1", "--hang-seconds", "30"),
                             ("--engine-timeout-ms", "1500"))
    assert done.status == tasks_pb2.TASK_STATUS_COMPLETED, done.error
    assert sim.counter("process_requests") == 2
    assert time.monotonic() - started < 20


def test_an_unhealthy_engine_gets_no_work_until_it_recovers(server_factory, simulator_factory, storage_dir):
    sim = simulator_factory("--unhealthy")
    server = serve_with_workers(server_factory, sim, storage_dir)
    stub = tasks_pb2_grpc.TaskServiceStub(server.channel())
    task = stub.CreateTask(tasks_pb2.CreateTaskRequest(params=params(sim)), timeout=10)
    time.sleep(2)
    assert stub.GetTask(tasks_pb2.GetTaskRequest(task_id=task.task_id), timeout=10).status == tasks_pb2.TASK_STATUS_PENDING
    assert sim.counter("process_requests") == 0
    assert sim.counter("health_requests") > 0
    sim.admin(healthy=True)
    done = wait_terminal(stub, task.task_id)
    assert done.status == tasks_pb2.TASK_STATUS_COMPLETED, done.error


def test_a_worker_killed_mid_task_leaves_it_to_another_after_the_lease(
        server_factory, simulator_factory, storage_dir, worker_factory):
    sim = simulator_factory("--latency-ms", "4000")
    server = server_factory("--store", "memory", "--lease-ms", "1500", ALLOW_LOCAL_URLS)
    stub = tasks_pb2_grpc.TaskServiceStub(server.channel())
    doomed = worker_factory(server.port, *worker_flags(sim, storage_dir))
    task = stub.CreateTask(tasks_pb2.CreateTaskRequest(params=params(sim)), timeout=10)
    deadline = time.monotonic() + 20
    while sim.counter("in_flight") == 0:
        assert time.monotonic() < deadline, "the first worker never called the engine"
        time.sleep(0.05)
    doomed.stop(signal.SIGKILL)
    sim.admin(latency_ms=0)
    worker_factory(server.port, *worker_flags(sim, storage_dir))
    done = wait_terminal(stub, task.task_id)
    assert done.status == tasks_pb2.TASK_STATUS_COMPLETED, done.error
    assert done.attempt == 2
    assert_stored_images(storage_dir, done, serve_outputs=False)  # this server has another storage dir


def test_sigterm_hands_unfinished_work_back(server_factory, simulator_factory, storage_dir, worker_factory):
    sim = simulator_factory("--latency-ms", "10000")
    server = server_factory("--store", "memory", "--lease-ms", "60000", ALLOW_LOCAL_URLS)
    stub = tasks_pb2_grpc.TaskServiceStub(server.channel())
    worker = worker_factory(server.port, *worker_flags(sim, storage_dir, "--drain-timeout-ms", "500"))
    task = stub.CreateTask(tasks_pb2.CreateTaskRequest(params=params(sim)), timeout=10)
    deadline = time.monotonic() + 20
    while sim.counter("in_flight") == 0:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    worker.stop(signal.SIGTERM)
    assert worker.proc.returncode == 0
    # Handed back at once, not left for the 60 s lease to expire.
    back = stub.GetTask(tasks_pb2.GetTaskRequest(task_id=task.task_id), timeout=10)
    assert back.status == tasks_pb2.TASK_STATUS_PENDING


def test_outputs_are_read_from_the_engine_output_dir_when_local(server_factory, simulator_factory, storage_dir):
    sim = simulator_factory()
    server = serve_with_workers(server_factory, sim, storage_dir, "--engine-output-dir", str(sim.tmpdir))
    stub = tasks_pb2_grpc.TaskServiceStub(server.channel())
    task = stub.CreateTask(tasks_pb2.CreateTaskRequest(params=params(sim)), timeout=10)
    done = wait_terminal(stub, task.task_id)
    assert done.status == tasks_pb2.TASK_STATUS_COMPLETED, done.error
    assert_stored_images(storage_dir, done)
    assert sim.counter("output_requests") == 0  # read from disk, not downloaded


def test_work_goes_only_to_the_healthy_engine(server_factory, simulator_factory, storage_dir):
    healthy, sick = simulator_factory(), simulator_factory("--unhealthy")
    server = server_factory("--store", "memory", "--workers", "2", "--engine", sick.url,
                            *worker_flags(healthy, storage_dir))
    stub = tasks_pb2_grpc.TaskServiceStub(server.channel())
    created = [stub.CreateTask(tasks_pb2.CreateTaskRequest(params=params(healthy)), timeout=10) for _ in range(4)]
    for task in created:
        assert wait_terminal(stub, task.task_id).status == tasks_pb2.TASK_STATUS_COMPLETED
    assert healthy.counter("process_requests") == 4
    assert sick.counter("process_requests") == 0


def test_a_cancelled_task_is_abandoned_at_once(server_factory, simulator_factory, storage_dir):
    sim = simulator_factory("--latency-ms", "8000")
    # The default 30 s lease: the worker's 2 s heartbeat hears ABORTED.
    server = serve_with_workers(server_factory, sim, storage_dir)
    stub = tasks_pb2_grpc.TaskServiceStub(server.channel())
    task = stub.CreateTask(tasks_pb2.CreateTaskRequest(params=params(sim)), timeout=10)
    deadline = time.monotonic() + 20
    while sim.counter("in_flight") == 0:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    stub.CancelTask(tasks_pb2.CancelTaskRequest(task_id=task.task_id), timeout=10)
    deadline = time.monotonic() + 5
    while "abandoning it" not in server.stderr_tail():
        assert time.monotonic() < deadline, server.stderr_tail()
        time.sleep(0.1)
    time.sleep(1)
    assert stub.GetTask(tasks_pb2.GetTaskRequest(task_id=task.task_id), timeout=10).status == tasks_pb2.TASK_STATUS_CANCELLED
    assert not (storage_dir / task.task_id).exists()


def test_the_cli_client_commands(server_factory, simulator_factory, storage_dir):
    sim = simulator_factory()
    server = serve_with_workers(server_factory, sim, storage_dir)
    base = [str(BINARY)]
    connect = ["--server", f"http://127.0.0.1:{server.port}"]
    inputs = ["--source", sim.sample("source.jpg"), "--target", sim.sample("target.jpg"), "--resolution", "256x256"]
    processed = subprocess.run([*base, "process", *connect, *inputs], capture_output=True, text=True, timeout=60)
    assert processed.returncode == 0, processed.stderr
    task_id = re.match(r"task (task_\w+): success http://\S+/result\.jpg", processed.stdout).group(1)
    assert "  storage_provider: local" in processed.stdout
    got = subprocess.run([*base, "get", *connect, task_id], capture_output=True, text=True, timeout=30)
    assert f"task {task_id}: COMPLETED, attempt 1" in got.stdout
    missing = subprocess.run([*base, "cancel", *connect, "task_missing"], capture_output=True, text=True, timeout=30)
    assert missing.returncode != 0
    assert "NOT_FOUND" in missing.stderr
