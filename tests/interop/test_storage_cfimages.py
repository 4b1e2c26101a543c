"""Cloudflare Images result storage against a local stand-in for Cloudflare's API written for
these tests (FakeCloudflareImages): it checks the bearer token and the multipart body like the
real `accounts/{account}/images/v1` endpoint, answers in Cloudflare's JSON envelope, serves the
delivery URLs of the images it holds and deletes them on DELETE."""

from __future__ import annotations

import io
import urllib.error
import zlib
import json
import re
import signal
import subprocess
import threading
import time
import urllib.request
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from PIL import Image

from support import ALLOW_LOCAL_URLS, BINARY, tasks_pb2, tasks_pb2_grpc
from test_worker import Simulator, params, simulator_factory, storage_dir, wait_terminal  # noqa: F401

ACCOUNT = "0123456789abcdef0123456789abcdef"
TOKEN = "cf-test-token"
ACCOUNT_HASH = "Vi7wi5KSItxGFsWRG2Us6Q"
VARIANTS = ("public", "thumbnail")


def read_body(handler: BaseHTTPRequestHandler) -> bytes:
    """The request body, whether sent with a Content-Length or chunked."""
    if handler.headers.get("Transfer-Encoding", "").lower() == "chunked":
        body = b""
        while True:
            size = int(handler.rfile.readline().split(b";")[0], 16)
            chunk = handler.rfile.read(size + 2)[:size]
            if size == 0:
                return body
            body += chunk
    return handler.rfile.read(int(handler.headers.get("Content-Length", "0")))


class FakeCloudflareImages:
    """Cloudflare's Images API on 127.0.0.1: `POST /client/v4/accounts/{ACCOUNT}/images/v1`
    (one multipart part named `file`, with a filename and a content type), `DELETE .../{id}`,
    and the delivery URLs `/delivery/{ACCOUNT_HASH}/{id}/{variant}`."""

    def __init__(self) -> None:
        self.images: dict[str, tuple[bytes, str, str]] = {}  # id → (bytes, content type, filename)
        self.problems: list[str] = []
        self.lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def answer(self, status: int, document: dict | None = None, body: bytes = b"", content_type: str = "application/json"):
                if document is not None:
                    body = json.dumps(document).encode()
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def refuse(self, status: int, code: int, message: str):
                self.answer(status, {"result": None, "success": False, "errors": [{"code": code, "message": message}],
                                     "messages": []})

            def authorized(self) -> bool:
                if self.headers.get("Authorization") == f"Bearer {TOKEN}":
                    return True
                self.refuse(403, 10000, "Authentication error")
                return False

            def do_POST(self):
                body = read_body(self)
                if self.path != f"/client/v4/accounts/{ACCOUNT}/images/v1":
                    return self.refuse(404, 7003, "Could not route to " + self.path)
                if not self.authorized():
                    return
                try:
                    data, content_type, filename = fake.parse_upload(self.headers.get("Content-Type", ""), body)
                except ValueError as error:
                    with fake.lock:
                        fake.problems.append(str(error))
                    return self.refuse(400, 5400, f"Bad request: {error}")
                image_id = str(uuid.uuid4())
                with fake.lock:
                    fake.images[image_id] = (data, content_type, filename)
                host = self.headers["Host"]
                self.answer(200, {"result": {
                    "id": image_id, "filename": filename, "uploaded": "2026-12-04T22:00:00.000Z", "requireSignedURLs": False,
                    "variants": [f"http://{host}/delivery/{ACCOUNT_HASH}/{image_id}/{variant}" for variant in VARIANTS]},
                    "success": True, "errors": [], "messages": []})

            def do_DELETE(self):
                read_body(self)
                match = re.fullmatch(rf"/client/v4/accounts/{ACCOUNT}/images/v1/([0-9a-f-]+)", self.path)
                if not match:
                    return self.refuse(404, 7003, "Could not route to " + self.path)
                if not self.authorized():
                    return
                with fake.lock:
                    found = fake.images.pop(match[1], None)
                if found is None:
                    return self.refuse(404, 5404, "Image not found")
                self.answer(200, {"result": {}, "success": True, "errors": [], "messages": []})

            def do_GET(self):
                match = re.fullmatch(rf"/delivery/{ACCOUNT_HASH}/([0-9a-f-]+)/([a-z]+)", self.path)
                with fake.lock:
                    found = fake.images.get(match[1]) if match and match[2] in VARIANTS else None
                if found is None:
                    return self.answer(404, body=b"not found", content_type="text/plain")
                self.answer(200, body=found[0], content_type=found[1])

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.api_base = f"http://127.0.0.1:{self.server.server_port}/client/v4"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @staticmethod
    def parse_upload(content_type: str, body: bytes) -> tuple[bytes, str, str]:
        """The file of a multipart/form-data body holding exactly one part, `file`."""
        match = re.fullmatch(r"multipart/form-data; boundary=(\S+)", content_type)
        if not match:
            raise ValueError(f"not multipart/form-data: {content_type!r}")
        delimiter = b"--" + match[1].encode()
        if not body.startswith(delimiter + b"\r\n") or not body.endswith(b"\r\n" + delimiter + b"--\r\n"):
            raise ValueError("body is not framed by the boundary")
        parts = body[len(delimiter) + 2:-(len(delimiter) + 6)].split(b"\r\n" + delimiter + b"\r\n")
        if len(parts) != 1:
            raise ValueError(f"{len(parts)} parts instead of one")
        head, _, data = parts[0].partition(b"\r\n\r\n")
        fields = dict(line.split(": ", 1) for line in head.decode().split("\r\n"))
        disposition = re.fullmatch(r'form-data; name="file"; filename="([^"]+)"', fields.get("Content-Disposition", ""))
        if not disposition or not fields.get("Content-Type", "").startswith("image/"):
            raise ValueError(f"unexpected part headers {fields}")
        return data, fields["Content-Type"], disposition[1]

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def cloudflare():
    fake = FakeCloudflareImages()
    yield fake
    fake.stop()


@pytest.fixture
def token_file(tmp_path) -> Path:
    path = tmp_path / "cf-token"
    path.write_text(TOKEN + "\n")
    return path


def cf_flags(cloudflare: FakeCloudflareImages, token_file: Path, *extra: str) -> list[str]:
    return ["--storage", f"cfimages:{ACCOUNT}", "--cf-images-api-base", cloudflare.api_base,
            "--cf-images-token-file", str(token_file), "--cf-images-retry-base-ms", "20", *extra]


def serve(server_factory, engine_url: str, *storage_flags: str):
    return server_factory("--store", "memory", "--workers", "1", "--engine", engine_url, "--health-interval-ms", "200",
                          ALLOW_LOCAL_URLS, *storage_flags)


def run_task(server, sim: Simulator) -> tasks_pb2.Task:
    stub = tasks_pb2_grpc.TaskServiceStub(server.channel())
    created = stub.CreateTask(tasks_pb2.CreateTaskRequest(workflow="face_swap", params=params(sim)), timeout=10)
    return wait_terminal(stub, created.task_id, timeout=90)


def download(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.read()


def test_outputs_go_to_cloudflare_images_and_the_delivery_urls_serve_the_exact_bytes(
        server_factory, simulator_factory, storage_dir, cloudflare, token_file):
    sim = simulator_factory()
    server = serve(server_factory, sim.url, *cf_flags(cloudflare, token_file), "--storage", f"local:{storage_dir}")
    task = run_task(server, sim)
    assert task.status == tasks_pb2.TASK_STATUS_COMPLETED, task.error
    assert task.result.storage_provider == "cfimages"
    assert set(task.result.outputs) == {"jpg", "gif", "webp"}
    assert dict(task.result.output_providers) == {"jpg": "cfimages", "gif": "cfimages", "webp": "cfimages"}
    assert task.result.output_url == task.result.outputs["jpg"]
    for ext, url in task.result.outputs.items():
        assert re.fullmatch(rf"http://127\.0\.0\.1:\d+/delivery/{ACCOUNT_HASH}/[0-9a-f-]+/public", url), url
        engine_file = Path(sim.tmpdir) / task.result.job_id / f"result.{ext}"
        assert download(url) == engine_file.read_bytes()
    assert sorted(filename for _, _, filename in cloudflare.images.values()) == \
        sorted(f"{task.task_id}.{ext}" for ext in ("jpg", "gif", "webp"))
    assert not cloudflare.problems
    assert not any(storage_dir.iterdir()), "nothing went to local storage"


def test_a_wrong_token_fails_the_task_with_cloudflares_error(server_factory, simulator_factory, cloudflare, tmp_path):
    wrong = tmp_path / "wrong-token"
    wrong.write_text("not-the-token")
    sim = simulator_factory()
    server = serve(server_factory, sim.url, *cf_flags(cloudflare, wrong))
    task = run_task(server, sim)
    assert task.status == tasks_pb2.TASK_STATUS_FAILED
    # Stage, provider, HTTP status and Cloudflare's error code and message; a 403 is not retried.
    assert "upload: cfimages: upload: HTTP 403 Cloudflare error 10000: Authentication error after 1 try" in task.error, task.error
    assert "not-the-token" not in task.error
    assert not cloudflare.images


class StubEngine:
    """An engine whose outputs are files chosen by the test: `result.jpg` as output_path, and
    gif_url / webp_url pointing at the other files (their extensions give their formats)."""

    def __init__(self, files: dict[str, bytes], gif: str, webp: str) -> None:
        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def answer(self, status: int, body: bytes, content_type: str = "application/json"):
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self):
                if self.path == "/health":
                    return self.answer(200, b'{"status": "ok"}')
                name = self.path.removeprefix("/outputs/")
                if name in files:
                    return self.answer(200, files[name], "application/octet-stream")
                self.answer(404, b'{"status": "error", "error": "not found"}')

            def do_POST(self):
                read_body(self)
                base = f"http://{self.headers['Host']}/outputs"
                self.answer(200, json.dumps({
                    "status": "success", "output_path": f"{base}/result.jpg", "processing_time": 0.1, "job_id": "job_stub",
                    "metadata": {"gif_url": f"{base}/{gif}", "webp_url": f"{base}/{webp}"}}).encode())

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def image_bytes(pil_format: str, size=(64, 48)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, (200, 120, 40)).save(buffer, pil_format)
    return buffer.getvalue()


def png_header(width: int, height: int) -> bytes:
    """The signature and IHDR chunk of a PNG claiming `width`x`height` (no pixel data follows)."""
    ihdr = b"IHDR" + width.to_bytes(4, "big") + height.to_bytes(4, "big") + bytes([8, 2, 0, 0, 0])
    return b"\x89PNG\r\n\x1a\n" + (13).to_bytes(4, "big") + ihdr + zlib.crc32(ihdr).to_bytes(4, "big")


def test_files_over_10_mb_or_100_megapixels_fall_back_to_the_next_backend(
        server_factory, simulator_factory, storage_dir, cloudflare, token_file):
    sim = simulator_factory()  # serves the task's source and target
    files = {
        "result.jpg": image_bytes("JPEG"),
        # A valid GIF followed by padding: 10.5 MB, over Cloudflare Images' 10 MB.
        "result.gif": image_bytes("GIF") + bytes(10_500_000),
        # 20000x20000: 400 megapixels.
        "huge.png": png_header(20_000, 20_000),
    }
    engine = StubEngine(files, gif="result.gif", webp="huge.png")
    try:
        server = serve(server_factory, engine.url, *cf_flags(cloudflare, token_file), "--storage", f"local:{storage_dir}")
        task = run_task(server, sim)
    finally:
        engine.stop()
    assert task.status == tasks_pb2.TASK_STATUS_COMPLETED, task.error
    assert task.result.storage_provider == "gif:local,jpg:cfimages,png:local"
    assert dict(task.result.output_providers) == {"gif": "local", "jpg": "cfimages", "png": "local"}
    rest = json.loads(download(f"http://127.0.0.1:{server.port}/api/face-swap/task/{task.task_id}"))
    assert rest["result"]["output_providers"] == {"gif": "local", "jpg": "cfimages", "png": "local"}
    assert rest["result"]["storage_provider"] == "gif:local,jpg:cfimages,png:local"
    assert set(task.result.outputs) == {"jpg", "gif", "png"}
    assert f"/delivery/{ACCOUNT_HASH}/" in task.result.outputs["jpg"]
    assert download(task.result.outputs["jpg"]) == files["result.jpg"]
    for ext, name in (("gif", "result.gif"), ("png", "huge.png")):
        assert f"/outputs/{task.task_id}/" in task.result.outputs[ext]
        assert download(task.result.outputs[ext]) == files[name]
    # Only the JPEG ever reached Cloudflare: the others were refused before any upload.
    assert [content_type for _, content_type, _ in cloudflare.images.values()] == ["image/jpeg"]
    assert not cloudflare.problems


def test_retention_deletes_the_images(server_factory, simulator_factory, cloudflare, token_file, tmp_path):
    """A task completes into Cloudflare Images; its server restarted (same data directory and
    storage flags) with a retention shorter than the task's age deletes its images, only those."""
    sim = simulator_factory()
    data = tmp_path / "data"
    first = server_factory("--data", str(data), "--workers", "1", "--engine", sim.url, "--health-interval-ms", "200",
                           ALLOW_LOCAL_URLS, *cf_flags(cloudflare, token_file))
    task = run_task(first, sim)
    assert task.status == tasks_pb2.TASK_STATUS_COMPLETED, task.error
    ours = {url.split("/")[-2] for url in task.result.outputs.values()}
    assert len(ours) == 3 and ours == set(cloudflare.images)
    cloudflare.images["00000000-0000-0000-0000-000000000000"] = (b"unrelated", "image/png", "keep.png")
    first.signal(signal.SIGTERM)
    assert first.wait(30) == 0
    time.sleep(1)  # older than the retention below

    second = server_factory("--data", str(data), "--retention-hours", "0.0001", *cf_flags(cloudflare, token_file))
    deadline = time.monotonic() + 30
    while ours & set(cloudflare.images) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not ours & set(cloudflare.images), second.stderr_tail()
    assert set(cloudflare.images) == {"00000000-0000-0000-0000-000000000000"}
    for url in task.result.outputs.values():
        with pytest.raises(urllib.error.HTTPError):
            download(url)


def test_cloudflare_images_settings_are_checked_at_start(tmp_path):
    for flags, message in [
        (["--storage", "cfimages:123"], "the account id being 32 hex digits"),
        (["--storage", "cfimages:123", "--storage", "local:/tmp/x"], "the account id being 32 hex digits"),
        (["--storage", f"cfimages:{ACCOUNT}"], "no API token (set CLOUDFLARE_API_TOKEN or --cf-images-token-file)"),
        (["--storage", f"cfimages:{ACCOUNT}", "--cf-images-token-file", str(tmp_path / "missing")], "cannot read the token file"),
        (["--cf-images-api-base", "ftp://x"], "--cf-images-api-base must be an http:// or https:// URL"),
        (["--cf-images-variant", "a/b"], "--cf-images-variant must be a variant name"),
        (["--cf-images-max-attempts", "0"], "--cf-images-max-attempts must be between 1 and 20"),
    ]:
        # The token from the environment when the test is not about its absence.
        env = {"PATH": "/usr/bin:/bin"} if "token" in message else {"PATH": "/usr/bin:/bin", "CLOUDFLARE_API_TOKEN": TOKEN}
        done = subprocess.run([str(BINARY), "worker", "--engine", "http://127.0.0.1:1", *flags], capture_output=True,
                              timeout=30, env=env)
        assert done.returncode != 0 and message in done.stderr.decode(), (flags, done.stderr.decode())
