"""S3-compatible result storage against moto's server mode with signature checking on: the
worker signs with libcurl's SigV4, so a wrong secret is refused exactly as AWS would refuse it.
moto runs on loopback; its first three requests (creating an IAM user, its access key and an
allow-all policy) go unauthenticated (INITIAL_NO_AUTH_ACTION_COUNT), every later one is checked."""

from __future__ import annotations

import datetime
import io
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path
from unittest import mock

import boto3
import pytest
from botocore.config import Config
from PIL import Image

import services
from support import tasks_pb2, tasks_pb2_grpc
from support import ALLOW_LOCAL_URLS
from test_worker import Simulator, params, simulator_factory, storage_dir, wait_terminal  # noqa: F401

BUCKET = "results"
PREFIX = "swaps"
# Smaller than S3's 5 MiB so the simulator's outputs (tens of KiB) go up in several parts;
# moto is told to accept such parts (S3_UPLOAD_PART_MIN_SIZE).
PART_SIZE = 64 * 1024


class Moto:
    """moto's S3 server with authentication on, a bucket and an IAM user allowed to use it."""

    def __init__(self) -> None:
        self.port = services.free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = tempfile.NamedTemporaryFile(prefix="swapline-moto-", suffix=".log", delete=False)
        env = dict(os.environ, INITIAL_NO_AUTH_ACTION_COUNT="3", S3_UPLOAD_PART_MIN_SIZE=str(PART_SIZE))
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
            stdout=self.log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        deadline = time.monotonic() + 60
        while not services.accepts(self.port):
            assert self.proc.poll() is None and time.monotonic() < deadline, "moto did not start: " + Path(self.log.name).read_text()[-2000:]
            time.sleep(0.2)
        bootstrap = dict(endpoint_url=self.url, region_name="us-east-1", aws_access_key_id="bootstrap",
                         aws_secret_access_key="bootstrap")
        iam = boto3.client("iam", **bootstrap)
        iam.create_user(UserName="swapline")
        key = iam.create_access_key(UserName="swapline")["AccessKey"]
        iam.put_user_policy(UserName="swapline", PolicyName="results", PolicyDocument=json.dumps({
            "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}))
        self.key_id, self.secret = key["AccessKeyId"], key["SecretAccessKey"]
        self.s3 = boto3.client("s3", endpoint_url=self.url, region_name="us-east-1", aws_access_key_id=self.key_id,
                               aws_secret_access_key=self.secret, config=Config(s3={"addressing_style": "path"}))
        self.s3.create_bucket(Bucket=BUCKET)

    def unchecked_get(self, url: str) -> bytes:
        """GETs `url` with moto's authentication skipped for that one request (moto's
        /moto-api/reset-auth: the next N requests go unchecked), as moto fails every presigned
        request while authentication is on (`assert_outputs_in_bucket`). Nothing else talks to
        moto meanwhile: the tests of a file run one at a time."""
        # text/plain: a form content type would leave moto's view of the body empty.
        reset = urllib.request.Request(f"{self.url}/moto-api/reset-auth", data=b"1", method="POST",
                                       headers={"Content-Type": "text/plain"})
        with urllib.request.urlopen(reset, timeout=10):
            pass
        with urllib.request.urlopen(url, timeout=30) as response:
            return response.read()

    def keys(self) -> list[str]:
        return [item["Key"] for item in self.s3.list_objects_v2(Bucket=BUCKET).get("Contents", [])]

    def stop(self) -> None:
        self.proc.kill()
        self.proc.wait(10)
        self.log.close()
        os.unlink(self.log.name)


@pytest.fixture(scope="module")
def moto():
    server = Moto()
    yield server
    server.stop()


@pytest.fixture
def credentials(monkeypatch, moto):
    """The worker (in the server process) reads its keys from the environment it inherits."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", moto.key_id)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", moto.secret)
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    monkeypatch.delenv("AWS_PROFILE", raising=False)


def s3_flags(moto: Moto, *extra: str) -> list[str]:
    return ["--storage", f"s3://{BUCKET}/{PREFIX}", "--s3-endpoint", moto.url, "--s3-path-style", *extra]


def serve(server_factory, sim: Simulator, *storage_flags: str):
    """A server with two in-process workers storing through `storage_flags` alone."""
    return server_factory("--store", "memory", "--workers", "2", "--engine", sim.url, "--health-interval-ms", "200",
                          ALLOW_LOCAL_URLS, *storage_flags)


def run_task(server, sim, resolution: str = "512x512") -> tasks_pb2.Task:
    stub = tasks_pb2_grpc.TaskServiceStub(server.channel())
    created = stub.CreateTask(tasks_pb2.CreateTaskRequest(workflow="face_swap", params=params(sim, resolution)), timeout=10)
    return wait_terminal(stub, created.task_id, timeout=90)


S3_KEY = re.compile(rf"^{PREFIX}/(task_[0-9A-Z]+)/([0-9a-f]{{32}})/result\.(jpg|gif|webp)$")


def botocore_presigned(moto: Moto, key: str, signed_at: str, expires: int) -> str:
    """botocore's own presigned GET of `key`, signed at the `X-Amz-Date` `signed_at`."""
    moment = datetime.datetime.strptime(signed_at, "%Y%m%dT%H%M%SZ")
    client = boto3.client("s3", endpoint_url=moto.url, region_name="us-east-1", aws_access_key_id=moto.key_id,
                          aws_secret_access_key=moto.secret,
                          config=Config(signature_version="s3v4", s3={"addressing_style": "path"}))
    with mock.patch("botocore.auth.get_current_datetime", return_value=moment):
        return client.generate_presigned_url("get_object", Params={"Bucket": BUCKET, "Key": key}, ExpiresIn=expires)


def assert_outputs_in_bucket(moto: Moto, task: tasks_pb2.Task) -> None:
    """Every output URL is a presigned GET of an object under the prefix, signed exactly as
    botocore signs it; the URL downloads the object's exact bytes, a valid image of the
    format's content type.

    moto cannot check a presigned request while its authentication is on: its IAM check reads
    the `Authorization` header unconditionally (moto/iam/access_control.py, IAMRequestBase:
    `self._headers["Authorization"]`), so any query-string-signed request fails there with a
    KeyError, answered 500. So the signature is checked by comparing the URL with botocore's
    for the same key, time and expiry, and the download itself is let past moto's check alone
    (`unchecked_get`)."""
    expected = {"jpg": ("JPEG", "image/jpeg"), "gif": ("GIF", "image/gif"), "webp": ("WEBP", "image/webp")}
    assert set(task.result.outputs) == set(expected)
    assert task.result.output_url == task.result.outputs["jpg"]
    for ext, (pil_format, content_type) in expected.items():
        url = task.result.outputs[ext]
        parsed = urllib.parse.urlsplit(url)
        assert f"{parsed.scheme}://{parsed.netloc}" == moto.url and parsed.path.startswith(f"/{BUCKET}/")
        key = parsed.path[len(f"/{BUCKET}/"):]
        match = S3_KEY.match(key)
        assert match and match[1] == task.task_id and match[3] == ext, key
        query = urllib.parse.parse_qs(parsed.query)
        assert query["X-Amz-Expires"] == ["3600"]
        reference = urllib.parse.parse_qs(urllib.parse.urlsplit(
            botocore_presigned(moto, key, query["X-Amz-Date"][0], 3600)).query)
        assert query == reference, (query, reference)
        downloaded = moto.unchecked_get(url)
        stored = moto.s3.get_object(Bucket=BUCKET, Key=key)
        assert stored["ContentType"] == content_type
        body = stored["Body"].read()
        assert downloaded == body, f"{ext}: the presigned URL serves {len(downloaded)} bytes, the object has {len(body)}"
        with Image.open(io.BytesIO(body)) as image:
            assert image.format == pil_format
            image.verify()


def test_outputs_go_to_the_bucket_and_presigned_urls_download_them(server_factory, simulator_factory, storage_dir, moto,
                                                                   credentials):
    sim = simulator_factory()
    server = serve(server_factory, sim, *s3_flags(moto, "--s3-presign-seconds", "3600"), "--storage", f"local:{storage_dir}")
    task = run_task(server, sim)
    assert task.status == tasks_pb2.TASK_STATUS_COMPLETED, task.error
    assert task.result.storage_provider == "s3"
    assert_outputs_in_bucket(moto, task)
    assert not any(storage_dir.iterdir()), "nothing went to local storage"


def test_outputs_above_the_threshold_go_up_in_parallel_parts(server_factory, simulator_factory, storage_dir, moto,
                                                             credentials):
    sim = simulator_factory()
    server = serve(server_factory, sim, *s3_flags(
        moto, "--s3-presign-seconds", "3600", "--s3-multipart-threshold", "1024", "--s3-part-size", str(PART_SIZE),
        "--s3-parallel-parts", "3"))
    task = run_task(server, sim, resolution="1024x1024")
    assert task.status == tasks_pb2.TASK_STATUS_COMPLETED, task.error
    assert_outputs_in_bucket(moto, task)
    # A multipart object's ETag is "<md5 of the part MD5s>-<part count>"; at least one output
    # is larger than a part, so it went up in several.
    part_counts = []
    for url in task.result.outputs.values():
        key = urllib.parse.urlsplit(url).path[len(f"/{BUCKET}/"):]
        head = moto.s3.head_object(Bucket=BUCKET, Key=key)
        etag = head["ETag"].strip('"')
        assert "-" in etag, f"{key} was not a multipart upload: {etag}"
        part_counts.append(int(etag.rsplit("-", 1)[1]))
        assert int(etag.rsplit("-", 1)[1]) == -(-head["ContentLength"] // PART_SIZE)
    assert max(part_counts) > 1, part_counts
    # No upload was left open.
    assert not moto.s3.list_multipart_uploads(Bucket=BUCKET).get("Uploads")


def test_a_wrong_secret_fails_the_task_with_the_providers_error(server_factory, simulator_factory, storage_dir, moto,
                                                                 credentials, monkeypatch):
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-the-secret")
    sim = simulator_factory()
    before = set(moto.keys())
    server = serve(server_factory, sim, *s3_flags(moto, "--s3-retry-base-ms", "10"))
    task = run_task(server, sim)
    assert task.status == tasks_pb2.TASK_STATUS_FAILED
    # Stage, provider, HTTP status and the provider's error code; a 403 is not retried.
    assert "upload: s3: PUT of the object: HTTP 403 SignatureDoesNotMatch after 1 try" in task.error, task.error
    assert "not-the-secret" not in task.error
    assert set(moto.keys()) == before


def test_local_storage_takes_the_outputs_when_s3_is_down(server_factory, simulator_factory, storage_dir, moto,
                                                         credentials):
    down = f"http://127.0.0.1:{services.free_port()}"  # nothing listens there
    sim = simulator_factory()
    server = serve(server_factory, sim, "--storage", f"s3://{BUCKET}", "--s3-endpoint", down, "--s3-path-style",
                   "--s3-max-attempts", "2", "--s3-retry-base-ms", "50", "--storage", f"local:{storage_dir}")
    task = run_task(server, sim)
    assert task.status == tasks_pb2.TASK_STATUS_COMPLETED, task.error
    assert task.result.storage_provider == "local"
    for ext, url in task.result.outputs.items():
        assert f"/outputs/{task.task_id}/" in url and url.endswith(f"/result.{ext}")
        with urllib.request.urlopen(url, timeout=10) as response:
            assert len(response.read()) > 0


def test_every_backend_failing_names_each_one(server_factory, simulator_factory, storage_dir, moto, credentials):
    sim = simulator_factory()
    down = f"http://127.0.0.1:{services.free_port()}"
    server = serve(server_factory, sim, "--storage", f"s3://{BUCKET}", "--storage", f"s3://{BUCKET}/second",
                   "--s3-endpoint", down, "--s3-path-style", "--s3-max-attempts", "2", "--s3-retry-base-ms", "20")
    task = run_task(server, sim)
    assert task.status == tasks_pb2.TASK_STATUS_FAILED
    assert re.search(r"upload: s3,s3: s3: PUT of the object: could not connect to the endpoint after 2 tries; "
                     r"s3: PUT of the object: could not connect to the endpoint after 2 tries", task.error), task.error
    assert "127.0.0.1" not in task.error


def test_s3_flags_out_of_range_are_refused_at_start():
    from support import BINARY
    for flags, message in [
        (["--s3-presign-seconds", "604801"], "--s3-presign-seconds must be between 1 and 604800"),
        (["--s3-part-size", "1000"], "--s3-part-size must be between"),
        (["--s3-endpoint", "ftp://x"], "must be http:// or https:// URLs"),
    ]:
        done = subprocess.run([str(BINARY), "worker", "--engine", "http://127.0.0.1:1", *flags], capture_output=True, timeout=30)
        assert done.returncode != 0 and message in done.stderr.decode(), done.stderr.decode()
    env = {key: value for key, value in os.environ.items() if not key.startswith("AWS_")}
    env.update(AWS_SHARED_CREDENTIALS_FILE="/nonexistent/credentials", HOME="/nonexistent")
    done = subprocess.run([str(BINARY), "worker", "--engine", "http://127.0.0.1:1", "--storage", "s3://bucket"],
                          capture_output=True, timeout=30, env=env)
    assert done.returncode != 0 and "no shared credentials file at /nonexistent/credentials" in done.stderr.decode(), \
        done.stderr.decode()


def test_retention_deletes_the_stored_objects(server_factory, simulator_factory, storage_dir, moto, credentials, tmp_path):
    """A task completes into the bucket; a restart of its server (same data directory, same
    storage flags) with a retention shorter than the task's age purges the task at once and
    deletes its objects, and only those."""
    sim = simulator_factory()
    data = tmp_path / "data"
    first = server_factory("--data", str(data), "--workers", "1", "--engine", sim.url, "--health-interval-ms", "200",
                           ALLOW_LOCAL_URLS, *s3_flags(moto, "--s3-presign-seconds", "3600"))
    task = run_task(first, sim)
    assert task.status == tasks_pb2.TASK_STATUS_COMPLETED, task.error
    ours = {urllib.parse.urlsplit(url).path[len(f"/{BUCKET}/"):] for url in task.result.outputs.values()}
    assert len(ours) == 3 and ours <= set(moto.keys())
    moto.s3.put_object(Bucket=BUCKET, Key=f"{PREFIX}/unrelated/keep.txt", Body=b"not a task's")
    first.signal(signal.SIGTERM)
    assert first.wait(30) == 0
    time.sleep(1)  # older than the retention below

    second = server_factory("--data", str(data), "--retention-hours", "0.0001", *s3_flags(moto))
    deadline = time.monotonic() + 30
    while ours & set(moto.keys()) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not ours & set(moto.keys()), second.stderr_tail()
    assert f"{PREFIX}/unrelated/keep.txt" in moto.keys()
    stub = tasks_pb2_grpc.TaskServiceStub(second.channel())
    with pytest.raises(Exception) as gone:
        stub.GetTask(tasks_pb2.GetTaskRequest(task_id=task.task_id), timeout=10)
    assert "NOT_FOUND" in str(gone.value)


def test_retention_deletes_local_result_files(server_factory, simulator_factory, storage_dir, tmp_path):
    """The same for `local:` storage: the task's folder under the storage directory goes."""
    sim = simulator_factory()
    data = tmp_path / "data"
    flags = ["--data", str(data), "--storage", f"local:{storage_dir}"]
    first = server_factory(*flags, "--workers", "1", "--engine", sim.url, "--health-interval-ms", "200", ALLOW_LOCAL_URLS)
    task = run_task(first, sim)
    assert task.status == tasks_pb2.TASK_STATUS_COMPLETED, task.error
    assert task.result.storage_provider == "local" and (storage_dir / task.task_id).is_dir()
    (storage_dir / "unrelated").mkdir()
    first.signal(signal.SIGTERM)
    assert first.wait(30) == 0
    time.sleep(1)

    second = server_factory(*flags, "--retention-hours", "0.0001")
    deadline = time.monotonic() + 30
    while (storage_dir / task.task_id).exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not (storage_dir / task.task_id).exists(), second.stderr_tail()
    assert (storage_dir / "unrelated").is_dir()
