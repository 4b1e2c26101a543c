"""`swapline engine` (the FaceFusion engine adapter) end to end: server + workers + adapter +
the stand-in tests/interop/fake_facefusion/facefusion.py, which parses its arguments like
FaceFusion 3.x (argparse: exit 2 on an unknown flag), logs them, prints tqdm progress and
writes an output. Refusals, crashes, the timeout and the queue are checked on the adapter's
HTTP API directly."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest

import support
from support import ALLOW_LOCAL_URLS, BINARY, ROOT, tasks_pb2, tasks_pb2_grpc
from test_worker import assert_stored_images, simulator_factory, storage_dir, wait_terminal  # noqa: F401 (fixtures)

FAKE_FACEFUSION = ROOT / "tests" / "interop" / "fake_facefusion"
SAMPLE_JPEG = None


class EngineAdapter:
    """`swapline engine` on a free loopback port over the stand-in FaceFusion."""

    def __init__(self, *flags: str):
        self.tmpdir = Path(tempfile.mkdtemp(prefix="swapline-engine-"))
        # The GIF and WebP renditions come from the real ffmpeg (tools/install-deps.sh installs it).
        ffmpeg = shutil.which("ffmpeg")
        if ffmpeg is None:
            raise RuntimeError("ffmpeg not found: tools/install-deps.sh installs it (Debian package ffmpeg)")
        self.log = self.tmpdir / "facefusion-runs.jsonl"
        self.mode = self.tmpdir / "mode"
        self.log.touch()
        env = dict(os.environ, FAKE_FACEFUSION_LOG=str(self.log), FAKE_FACEFUSION_MODE=str(self.mode))
        self.proc = subprocess.Popen(
            [str(BINARY), "engine", "--facefusion", str(FAKE_FACEFUSION), "--python", sys.executable, "--port", "0",
             "--work-dir", str(self.tmpdir / "work"), "--ffmpeg", str(ffmpeg), *flags],
            stdout=subprocess.PIPE, stderr=open(self.tmpdir / "stderr.log", "wb"), env=env, start_new_session=True)
        line = self.proc.stdout.readline().decode()
        match = re.search(r"swapline engine listening on 127\.0\.0\.1:(\d+)", line)
        if not match:
            self.stop()
            raise RuntimeError(f"engine did not start: {line!r} {self.stderr()}")
        self.url = f"http://127.0.0.1:{match.group(1)}"

    def set_mode(self, mode: str) -> None:
        self.mode.write_text(mode)

    def runs(self) -> list[list[str]]:
        """The arguments of every FaceFusion run so far."""
        return [entry["argv"] for entry in self.run_log()]

    def run_log(self) -> list[dict]:
        return [json.loads(line) for line in self.log.read_text().splitlines()]

    def stderr(self) -> str:
        return (self.tmpdir / "stderr.log").read_text(errors="replace")[-4000:]

    def get(self, path: str) -> tuple[int, dict, dict]:
        try:
            with urllib.request.urlopen(self.url + path, timeout=30) as response:
                return response.status, dict(response.headers), json.load(response)
        except urllib.error.HTTPError as error:
            return error.code, dict(error.headers), json.load(error)

    def process(self, job: dict, target: tuple[str, bytes], job_id: str | None = None,
                timeout: float = 60, deadline_ms: int | None = None) -> tuple[int, dict, dict]:
        content_type, body = process_form(job, target)
        headers = {"Content-Type": content_type}
        if job_id:
            headers["X-Swapline-Job-Id"] = job_id
        if deadline_ms is not None:
            headers["X-Swapline-Timeout-Ms"] = str(deadline_ms)
        request = urllib.request.Request(self.url + "/process", data=body, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                return response.status, dict(response.headers), json.load(response)
        except urllib.error.HTTPError as error:
            return error.code, dict(error.headers), json.load(error)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.proc.stdout.close()
        shutil.rmtree(self.tmpdir, ignore_errors=True)


def process_form(job: dict, target: tuple[str, bytes]) -> tuple[str, bytes]:
    """The Content-Type and multipart body of a `POST /process`."""
    boundary = "b" + uuid.uuid4().hex
    body = b""
    for name, filename, content_type, data in [
            ("job", None, "application/json", json.dumps(job).encode()),
            ("source", "source.jpg", "image/jpeg", sample_jpeg()),
            ("target", target[0], "application/octet-stream", target[1])]:
        disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename else "")
        body += (f"--{boundary}\r\nContent-Disposition: {disposition}\r\nContent-Type: {content_type}\r\n\r\n").encode()
        body += data + b"\r\n"
    body += f"--{boundary}--\r\n".encode()
    return f"multipart/form-data; boundary={boundary}", body


def sample_mp4() -> bytes:
    """One second of ffmpeg's test pattern, 64x48 at 5 frames a second, as an MP4."""
    with tempfile.TemporaryDirectory(prefix="swapline-mp4-") as directory:
        path = Path(directory) / "clip.mp4"
        subprocess.run(["ffmpeg", "-nostdin", "-loglevel", "error", "-f", "lavfi", "-i",
                        "testsrc=duration=1:size=64x48:rate=5", "-c:v", "mpeg4", str(path)], check=True, timeout=60)
        return path.read_bytes()


def sample_jpeg() -> bytes:
    global SAMPLE_JPEG
    if SAMPLE_JPEG is None:
        import io

        from PIL import Image
        buffer = io.BytesIO()
        Image.new("RGB", (64, 48), (200, 120, 40)).save(buffer, "JPEG")
        SAMPLE_JPEG = buffer.getvalue()
    return SAMPLE_JPEG


@pytest.fixture
def engine_factory():
    started: list[EngineAdapter] = []

    def start(*flags: str) -> EngineAdapter:
        engine = EngineAdapter(*flags)
        started.append(engine)
        return engine

    yield start
    for engine in started:
        engine.stop()


def flag(run: list[str], name: str) -> str | None:
    return run[run.index(name) + 1] if name in run else None


def test_tasks_run_through_the_adapter_with_their_models_resolutions_and_options(
        server_factory, simulator_factory, engine_factory, storage_dir):
    sim = simulator_factory()
    engine = engine_factory()
    status, _, health = engine.get("/health")
    assert status == 200 and health["status"] == "ok" and health["facefusion_version"] == "3.1.1-fake", health
    assert health["renditions"] is True
    server = server_factory("--store", "memory", "--workers", "2", "--engine", engine.url, "--storage",
                            f"local:{storage_dir}", "--health-interval-ms", "200", "--retry-base-ms", "100",
                            ALLOW_LOCAL_URLS)
    stub = tasks_pb2_grpc.TaskServiceStub(server.channel())
    cases = [("inswapper_128", "256x256", {}),
             ("simswap_unofficial_512", "1024x1024", {"face_enhancer_model": "gfpgan_1.4", "face_enhancer_blend": "60"}),
             ("hyperswap_1a_256", "512x512", {"face_selector_mode": "one", "output_image_quality": "90"})]
    for model, resolution, options in cases:
        params = tasks_pb2.FaceSwapParams(source_url=sim.sample("source.jpg"), target_url=sim.sample("target.jpg"),
                                          model=model, resolution=resolution, options=options)
        task = stub.CreateTask(tasks_pb2.CreateTaskRequest(params=params), timeout=10)
        done = wait_terminal(stub, task.task_id)
        assert done.status == tasks_pb2.TASK_STATUS_COMPLETED, (done.error, engine.stderr())
        assert done.result.job_id.startswith(task.task_id + "-1-")  # the id the worker named the job with
        assert_stored_images(storage_dir, done)  # the JPEG and its GIF and WebP renditions
        run = engine.runs()[-1]
        assert run[:2] == ["headless-run", "-s"]
        assert flag(run, "--face-swapper-model") == model
        assert flag(run, "--face-swapper-pixel-boost") == resolution
        assert flag(run, "--log-level") == "info"
        # FaceFusion's job files and temporary frames stay in the job's own directory.
        job_directory = Path(flag(run, "-s")).parent
        assert job_directory.parent == engine.tmpdir / "work" / "jobs"
        assert (flag(run, "--jobs-path"), flag(run, "--temp-path")) == (str(job_directory / "jobs"), str(job_directory / "temp"))
        processors = run[run.index("--processors") + 1:run.index("--face-swapper-model")]
        assert processors == (["face_swapper", "face_enhancer"] if "face_enhancer_model" in options else ["face_swapper"])
        for option, value in options.items():
            assert flag(run, "--" + option.replace("_", "-")) == value
        # Inputs live in a per-job directory that is gone once the job is.
        assert not list((engine.tmpdir / "work" / "jobs").iterdir())
    assert len(engine.runs()) == len(cases)


def test_an_unknown_option_fails_the_task_before_any_run(server_factory, simulator_factory, engine_factory, storage_dir):
    sim = simulator_factory()
    engine = engine_factory()
    server = server_factory("--store", "memory", "--workers", "1", "--engine", engine.url, "--storage",
                            f"local:{storage_dir}", "--health-interval-ms", "200", ALLOW_LOCAL_URLS)
    stub = tasks_pb2_grpc.TaskServiceStub(server.channel())
    params = tasks_pb2.FaceSwapParams(source_url=sim.sample("source.jpg"), target_url=sim.sample("target.jpg"),
                                      options={"nsfw_filter": "off"})
    done = wait_terminal(stub, stub.CreateTask(tasks_pb2.CreateTaskRequest(params=params), timeout=10).task_id)
    assert done.status == tasks_pb2.TASK_STATUS_FAILED
    assert "HTTP 400" in done.error, done.error
    assert engine.runs() == []


@pytest.mark.parametrize("job, reason", [
    ({"model": "inswapper_512", "resolution": "512x512"}, "is not a FaceFusion face-swapper model"),
    ({"model": "inswapper_128", "resolution": "0x512"}, "is impossible"),
    ({"model": "inswapper_128", "resolution": "512 by 512"}, "is not WIDTHxHEIGHT"),
    ({"model": "inswapper_128", "resolution": "512x512", "face_enhancer_blend": "200"}, "from 0 to 100"),
    ({"model": "inswapper_128", "resolution": "512x512", "execution_providers": "cuda"}, "option 'execution_providers'"),
])
def test_impossible_jobs_are_refused_before_any_process_starts(engine_factory, job, reason):
    engine = engine_factory()
    status, _, body = engine.process(job, ("target.jpg", sample_jpeg()))
    assert status == 400 and body["status"] == "error" and reason in body["error"], body
    assert engine.runs() == []


def test_a_resolution_outside_the_pixel_boosts_is_the_output_resolution(engine_factory):
    engine = engine_factory()
    status, _, body = engine.process({"model": "inswapper_128", "resolution": "320x200"}, ("target.png", sample_jpeg()))
    assert status == 200, body
    run = engine.runs()[-1]
    assert flag(run, "--output-image-resolution") == "320x200" and "--face-swapper-pixel-boost" not in run
    assert body["output_path"].startswith(engine.url + "/outputs/") and body["output_path"].endswith("/result.jpg")
    with urllib.request.urlopen(body["output_path"], timeout=10) as response:
        from PIL import Image
        import io
        assert Image.open(io.BytesIO(response.read())).size == (320, 200)


def test_a_video_target_keeps_its_container(engine_factory):
    engine = engine_factory()
    video = b"\x00\x00\x00\x18ftypmp42" + os.urandom(2000)
    status, _, body = engine.process({"model": "inswapper_128_fp16", "resolution": "1920x1080"}, ("target.mp4", video))
    assert status == 200, body
    assert flag(engine.runs()[-1], "--output-video-resolution") == "1920x1080"
    assert body["output_path"].endswith("/result.mp4")
    assert body["metadata"] == {}  # ffmpeg reads no video in these bytes: no renditions, still a success
    with urllib.request.urlopen(body["output_path"], timeout=10) as response:
        assert response.read() == video


@pytest.mark.parametrize("mode, options, status, exit_code, log_line", [
    ("crash", {}, 500, 1, "CUDA out of memory"),          # a processing failure: retried by workers
    ("precheck", {}, 400, 2, "model download failed"),    # a failed pre-check
    # A value the adapter knows from later 3.x releases, refused by the (early 3.x) parser.
    ("ok", {"face_detector_model": "yunet"}, 400, 2, "invalid choice: 'yunet'"),
])
def test_facefusion_exit_codes_map_to_statuses_with_the_log_tail(engine_factory, mode, options, status, exit_code, log_line):
    engine = engine_factory()
    engine.set_mode(mode)
    job = {"model": "inswapper_128", "resolution": "512x512", **options}
    answer, _, body = engine.process(job, ("target.jpg", sample_jpeg()))
    assert answer == status, body
    assert f"exit code {exit_code}" in body["error"] and log_line in body["error"], body


def test_a_hung_run_is_killed_with_its_process_group_at_the_timeout(engine_factory):
    engine = engine_factory("--job-timeout-ms", "8000")  # generous: progress must show first
    engine.set_mode("hang")
    result = {}
    caller = threading.Thread(target=lambda: result.update(answer=engine.process(
        {"model": "inswapper_128", "resolution": "512x512"}, ("target.jpg", sample_jpeg()), job_id="hang-1")))
    caller.start()
    # Progress is visible while it runs.
    support.wait_for(lambda: (engine.get("/jobs/hang-1")[2].get("progress") or {}).get("fraction") == 1.0, 20,
                     what="progress of the hung job")
    assert engine.get("/jobs/hang-1")[2]["state"] == "running"
    caller.join(60)
    status, _, body = result["answer"]
    assert status == 504 and "job timeout" in body["error"], body
    wait_gone(int(Path(str(engine.log) + ".child").read_text()))
    assert engine.get("/jobs/hang-1")[2]["state"] == "failed"


def test_stopping_the_engine_kills_its_runs(engine_factory):
    engine = engine_factory()
    engine.set_mode("hang")
    outcome = []

    def call() -> None:
        try:
            outcome.append(engine.process({"model": "inswapper_128", "resolution": "512x512"}, ("target.jpg", sample_jpeg())))
        except OSError:
            outcome.append("no answer")
    caller = threading.Thread(target=call)
    caller.start()
    child_file = Path(str(engine.log) + ".child")
    support.wait_for(lambda: child_file.exists() and child_file.read_text(), 20, what="the hung run started")
    engine.proc.terminate()
    assert engine.proc.wait(20) == 0
    caller.join(30)
    assert outcome == ["no answer"]  # the engine went away mid-run
    wait_gone(int(child_file.read_text()))


def wait_gone(pid: int) -> None:
    """Waits until `pid` (a run's child, in the run's process group) is dead."""
    def gone() -> bool:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        # A zombie waiting for its (killed) parent's reaper counts as gone.
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1].startswith("Z")
    support.wait_for(gone, 10, what=f"process {pid} killed with its group")


class StartedJobs:
    """`POST /process` calls running on threads of their own."""

    def __init__(self, engine: EngineAdapter, count: int):
        self.answers: list[tuple[int, dict, dict]] = []
        self.callers = [threading.Thread(target=lambda: self.answers.append(engine.process(
            {"model": "inswapper_128", "resolution": "512x512"}, ("target.jpg", sample_jpeg())))) for _ in range(count)]
        for caller in self.callers:
            caller.start()

    def wait(self) -> list[tuple[int, dict, dict]]:
        for caller in self.callers:
            caller.join(60)
        return self.answers


def test_each_slot_runs_on_its_own_device(engine_factory):
    engine = engine_factory("--slots", "2", "--slot-device", "0", "--slot-device", "1")
    engine.set_mode("slow")
    answers = StartedJobs(engine, 2)
    assert sorted(answer[0] for answer in answers.wait()) == [200, 200]
    assert sorted(entry["cuda_visible_devices"] for entry in engine.run_log()) == ["0", "1"]


def test_past_the_queue_the_adapter_answers_429_with_retry_after(engine_factory):
    engine = engine_factory("--slots", "1", "--queue-limit", "1", "--retry-after-seconds", "7")
    engine.set_mode("slow")
    answers = StartedJobs(engine, 2)
    support.wait_for(lambda: engine.get("/health")[2]["queued"] == 1, 20, what="one job running, one queued")
    status, headers, body = engine.get("/health")
    assert status == 503 and body["status"] == "busy" and body["running"] == 1, body
    status, headers, body = engine.process({"model": "inswapper_128", "resolution": "512x512"}, ("target.jpg", sample_jpeg()))
    assert status == 429 and headers["Retry-After"] == "7", (status, headers, body)
    assert sorted(answer[0] for answer in answers.wait()) == [200, 200]
    assert len(engine.runs()) == 2
    assert engine.get("/health")[0] == 200


def test_workers_report_facefusions_progress_while_it_runs(server_factory, simulator_factory, engine_factory, storage_dir):
    sim = simulator_factory()
    engine = engine_factory()
    engine.set_mode("slow")
    server = server_factory("--store", "memory", "--workers", "1", "--engine", engine.url, "--storage",
                            f"local:{storage_dir}", "--health-interval-ms", "200", ALLOW_LOCAL_URLS)
    stub = tasks_pb2_grpc.TaskServiceStub(server.channel())
    params = tasks_pb2.FaceSwapParams(source_url=sim.sample("source.jpg"), target_url=sim.sample("target.jpg"))
    task_id = stub.CreateTask(tasks_pb2.CreateTaskRequest(params=params), timeout=10).task_id
    seen = set()

    def midway() -> bool:
        progress = stub.GetTask(tasks_pb2.GetTaskRequest(task_id=task_id), timeout=10).progress
        seen.add(round(progress, 3))
        return 0.1 < progress < 0.7  # between the facefusion (0.1) and download (0.7) stages
    support.wait_for(midway, 30, interval=0.2, what=f"a progress report from inside the FaceFusion run (saw {seen})")
    assert wait_terminal(stub, task_id).status == tasks_pb2.TASK_STATUS_COMPLETED


def test_malformed_requests_get_clear_errors_and_the_engine_serves_on(engine_factory):
    engine = engine_factory("--max-request-bytes", "100000")

    def post(body: bytes, content_type: str) -> tuple[int, dict]:
        request = urllib.request.Request(engine.url + "/process", data=body, headers={"Content-Type": content_type}, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status, json.load(response)
        except urllib.error.HTTPError as error:
            return error.code, json.load(error)

    assert post(b"{}", "application/json")[0] == 415
    status, body = post(b"--b\r\nContent-Disposition: form-data; name=\"job\"\r\n\r\n{}", "multipart/form-data; boundary=b")
    assert status == 400 and "closing boundary" in body["error"], body
    status, body = post(b"x" * 200_000, "multipart/form-data; boundary=b")
    assert status == 413 and "100000 bytes" in body["error"], body
    status, _, body = engine.process({"model": "inswapper_128", "resolution": "512x512"}, ("target.exe", b"MZ"))
    assert status == 400 and "image or video" in body["error"], body
    for path in ["/outputs/../../etc/passwd", "/outputs/job_1/../../x", "/outputs/job_1/result.jpg", "/jobs/nope"]:
        assert engine.get(path)[0] == 404, path
    assert engine.runs() == []
    status, _, body = engine.process({"model": "inswapper_128", "resolution": "512x512"}, ("target.jpg", sample_jpeg()))
    assert status == 200, body


JOB = {"model": "inswapper_128", "resolution": "512x512"}


def engine_socket(engine: EngineAdapter) -> socket.socket:
    host, port = engine.url.removeprefix("http://").split(":")
    return socket.create_connection((host, int(port)), timeout=30)


def process_request_head(engine: EngineAdapter, content_type: str, length: int, *extra: str) -> bytes:
    host = engine.url.removeprefix("http://")
    lines = [f"POST /process HTTP/1.1", f"Host: {host}", f"Content-Type: {content_type}", f"Content-Length: {length}", *extra]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def read_until_closed(connection: socket.socket) -> bytes:
    """Everything the engine sends until it closes the connection (a 30 s socket timeout fails)."""
    received = b""
    while chunk := connection.recv(65536):
        received += chunk
    return received


def test_slow_clients_are_closed_at_their_timeouts_while_a_normal_job_is_served(engine_factory):
    # Short timeouts through the flags; the waits below are generous for a loaded machine.
    engine = engine_factory("--header-timeout-ms", "1500", "--body-timeout-ms", "1500", "--idle-timeout-ms", "3000")
    stalled_head, stalled_body, silent = engine_socket(engine), engine_socket(engine), engine_socket(engine)
    started = time.monotonic()
    stalled_head.sendall(b"POST /process HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=b\r\n")
    stalled_body.sendall(process_request_head(engine, "multipart/form-data; boundary=b", 100_000) + b"--b\r\n")
    # While all three stall, a normal job is served.
    status, _, body = engine.process(JOB, ("target.jpg", sample_jpeg()))
    assert status == 200, body
    answer = read_until_closed(stalled_head)
    assert answer.startswith(b"HTTP/1.1 408") and b"request head not completed in time" in answer, answer
    answer = read_until_closed(stalled_body)
    assert answer.startswith(b"HTTP/1.1 408") and b"the request body stalled" in answer, answer
    assert read_until_closed(silent) == b""  # no request begun: closed without an answer
    assert time.monotonic() - started < 25  # within the timeouts (plus slack), not the 30 s socket timeout
    for connection in (stalled_head, stalled_body, silent):
        connection.close()
    assert len(engine.runs()) == 1


def test_a_client_expecting_100_continue_gets_it_before_sending_its_body(engine_factory):
    engine = engine_factory("--max-request-bytes", "100000")
    content_type, body = process_form(JOB, ("target.jpg", sample_jpeg()))
    with engine_socket(engine) as connection:
        connection.sendall(process_request_head(engine, content_type, len(body), "Expect: 100-continue"))
        assert connection.recv(65536).startswith(b"HTTP/1.1 100 Continue\r\n\r\n")
        connection.sendall(body)
        response = connection.recv(65536)
        assert response.startswith(b"HTTP/1.1 200"), response
    # Too large a body is refused on its head: the client need not send it.
    with engine_socket(engine) as connection:
        connection.sendall(process_request_head(engine, content_type, 200_000, "Expect: 100-continue"))
        answer = read_until_closed(connection)
        assert answer.startswith(b"HTTP/1.1 413") and b"100000 bytes" in answer, answer


def test_connections_past_the_limit_are_closed_at_once(engine_factory):
    engine = engine_factory("--max-connections", "3")
    held = [engine_socket(engine) for _ in range(3)]
    for connection in held:  # an answered request: the engine has accepted the connection
        connection.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        assert connection.recv(65536).startswith(b"HTTP/1.1 200")
    with engine_socket(engine) as refused:
        assert read_until_closed(refused) == b""
    for connection in held:
        connection.close()

    def served() -> bool:
        try:
            return engine.get("/health")[0] == 200
        except OSError:  # the closes not seen by the engine yet
            return False
    support.wait_for(served, 20, what="served again once connections closed")


def test_a_queued_job_whose_client_disconnected_never_starts(engine_factory):
    engine = engine_factory("--slots", "1", "--queue-limit", "2")
    engine.set_mode("slow")
    running = StartedJobs(engine, 1)
    support.wait_for(lambda: engine.get("/health")[2]["running"] == 1, 20, what="the first job running")
    content_type, body = process_form(JOB, ("target.jpg", sample_jpeg()))
    with engine_socket(engine) as gone:
        gone.sendall(process_request_head(engine, content_type, len(body), "X-Swapline-Job-Id: gone-1") + body)
        support.wait_for(lambda: engine.get("/health")[2]["queued"] == 1, 20, what="the second job queued")
    # Its client is gone: it leaves the queue at once, long before the running job ends.
    support.wait_for(lambda: engine.get("/jobs/gone-1")[2]["state"] == "failed", 20, what="the abandoned job dropped")
    status, _, job = engine.get("/jobs/gone-1")
    assert "disconnected" in job["error"] and engine.get("/health")[2]["queued"] == 0, job
    assert [answer[0] for answer in running.wait()] == [200]
    time.sleep(1)  # the freed slot had time to start anything left queued
    assert len(engine.runs()) == 1 and not any("gone-1" in flag(run, "-s") for run in engine.runs())


def test_a_video_task_stores_its_video_as_the_main_output(server_factory, simulator_factory, engine_factory, storage_dir):
    """The worker files the engine's main output under its own extension and points output_url
    at it, not at one of its renditions."""
    import http.server

    sim = simulator_factory()
    engine = engine_factory()
    # A real MP4 made by ffmpeg: FaceFusion's stand-in copies a video target through, and ffmpeg
    # makes its GIF and WebP renditions.
    video = sample_mp4()

    class Target(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "video/mp4")
            self.send_header("Content-Length", str(len(video)))
            self.end_headers()
            self.wfile.write(video)

        def log_message(self, *args) -> None:
            pass
    target_server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Target)
    threading.Thread(target=target_server.serve_forever, daemon=True).start()
    try:
        server = server_factory("--store", "memory", "--workers", "1", "--engine", engine.url, "--storage",
                                f"local:{storage_dir}", "--health-interval-ms", "200", ALLOW_LOCAL_URLS)
        stub = tasks_pb2_grpc.TaskServiceStub(server.channel())
        params = tasks_pb2.FaceSwapParams(source_url=sim.sample("source.jpg"),
                                          target_url=f"http://127.0.0.1:{target_server.server_port}/clip.mp4")
        done = wait_terminal(stub, stub.CreateTask(tasks_pb2.CreateTaskRequest(params=params), timeout=10).task_id)
    finally:
        target_server.shutdown()
    assert done.status == tasks_pb2.TASK_STATUS_COMPLETED, (done.error, engine.stderr())
    assert set(done.result.outputs) == {"mp4", "gif", "webp"}, done.result.outputs
    assert done.result.output_url == done.result.outputs["mp4"] and done.result.output_url.endswith("/result.mp4")
    with urllib.request.urlopen(done.result.output_url, timeout=10) as response:
        assert response.headers["Content-Type"] == "video/mp4" and response.read() == video


def test_outputs_are_streamed_with_nosniff_and_never_through_a_symlink_out(engine_factory):
    engine = engine_factory()
    status, _, body = engine.process(JOB, ("target.jpg", sample_jpeg()))
    assert status == 200, body
    with urllib.request.urlopen(body["output_path"], timeout=10) as response:
        assert response.headers["X-Content-Type-Options"] == "nosniff" and response.headers["Content-Type"] == "image/jpeg"
        stored = response.read()
    output = engine.tmpdir / "work" / "outputs" / body["job_id"] / "result.jpg"
    assert stored == output.read_bytes()
    outside = engine.tmpdir / "secret.jpg"
    outside.write_bytes(b"not an output")
    output.unlink()
    output.symlink_to(outside)
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(body["output_path"], timeout=10)
    assert refused.value.code == 404


def test_a_200_mb_upload_is_spooled_to_disk_not_held_in_memory(engine_factory):
    """The engine's RSS (from /proc) rises by at most 64 MiB, sampled throughout a 200 MB upload
    and its job: the body goes to a file as it arrives and is split from there."""
    from abuse import rss_bytes

    engine = engine_factory("--max-request-bytes", str(300 * 1024 * 1024))
    assert engine.process(JOB, ("target.jpg", sample_jpeg()))[0] == 200  # warm-up
    baseline = rss_bytes(engine.proc.pid)
    peak = [baseline]
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.05):
            peak[0] = max(peak[0], rss_bytes(engine.proc.pid))
    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        boundary = "b" + uuid.uuid4().hex
        job_part, video_size, piece = json.dumps(JOB).encode(), 200 * 1024 * 1024, bytes(1024 * 1024)
        opening = (f'--{boundary}\r\nContent-Disposition: form-data; name="job"\r\n\r\n').encode() + job_part + (
            f'\r\n--{boundary}\r\nContent-Disposition: form-data; name="source"; filename="source.jpg"\r\n\r\n').encode() + (
            sample_jpeg() + f'\r\n--{boundary}\r\nContent-Disposition: form-data; name="target"; filename="target.mp4"\r\n\r\n'.encode())
        closing = f"\r\n--{boundary}--\r\n".encode()
        with engine_socket(engine) as connection:
            connection.settimeout(120)
            connection.sendall(process_request_head(engine, f"multipart/form-data; boundary={boundary}",
                                                    len(opening) + video_size + len(closing)) + opening)
            for _ in range(video_size // len(piece)):
                connection.sendall(piece)
            connection.sendall(closing)
            response = connection.recv(65536)
    finally:
        done.set()
        sampler.join()
    assert response.startswith(b"HTTP/1.1 200"), response[:500]
    growth_mib = (peak[0] - baseline) / (1024 * 1024)
    print(f"engine RSS growth during the 200 MB upload: {growth_mib:.1f} MiB")
    assert growth_mib < 64, f"the engine's RSS rose by {growth_mib:.0f} MiB during a 200 MB upload"
    assert not list((engine.tmpdir / "work" / "jobs").iterdir())  # the spooled body and its parts are gone
