"""The engine contract's deadline and the engine's send timeout: `X-Swapline-Timeout-Ms` drops
a job still queued and kills a run still going when it passes (workers send their
--engine-timeout-ms), and a client that stops reading an output is closed at
--send-timeout-ms. Against `swapline engine` over the stand-in FaceFusion of
test_engine_adapter.py."""

from __future__ import annotations

import json
import os
import socket
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

import support
from support import ALLOW_LOCAL_URLS, tasks_pb2, tasks_pb2_grpc
from test_engine_adapter import (JOB, StartedJobs, engine_factory, process_form, read_until_closed,  # noqa: F401
                                 sample_jpeg, wait_gone)
from test_worker import simulator_factory, storage_dir  # noqa: F401 (fixtures)


def test_a_job_queued_past_its_clients_deadline_is_dropped(engine_factory):
    engine = engine_factory("--slots", "1", "--queue-limit", "2")
    engine.set_mode("slow")  # 4 s
    running = StartedJobs(engine, 1)
    support.wait_for(lambda: engine.get("/health")[2]["running"] == 1, 20, what="the first job running")
    status, _, body = engine.process(JOB, ("target.jpg", sample_jpeg()), job_id="late-1", deadline_ms=1000)
    assert status == 504 and "passed while the job was queued" in body["error"], body
    assert engine.get("/jobs/late-1")[2]["state"] == "failed"
    assert [answer[0] for answer in running.wait()] == [200]
    time.sleep(1)  # the freed slot had time to start anything left queued
    assert len(engine.runs()) == 1


def test_a_run_past_its_clients_deadline_is_killed_with_its_process_group(engine_factory):
    engine = engine_factory()  # the job timeout (100 s) is far away
    engine.set_mode("hang")
    started = time.monotonic()
    status, _, body = engine.process(JOB, ("target.jpg", sample_jpeg()), job_id="hang-2", deadline_ms=3000)
    assert status == 504 and "client's deadline" in body["error"], body
    assert time.monotonic() - started < 60
    wait_gone(int(Path(str(engine.log) + ".child").read_text()))
    assert engine.get("/jobs/hang-2")[2]["state"] == "failed"


@pytest.mark.parametrize("value", ["0", "-5", "soon", "2592000001"])
def test_a_deadline_out_of_range_is_refused(engine_factory, value):
    engine = engine_factory()
    content_type, body = process_form(JOB, ("target.jpg", sample_jpeg()))
    request = urllib.request.Request(engine.url + "/process", data=body, method="POST",
                                     headers={"Content-Type": content_type, "X-Swapline-Timeout-Ms": value})
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=30)
    assert refused.value.code == 400 and "X-Swapline-Timeout-Ms".lower() in json.load(refused.value)["error"].lower()
    assert engine.runs() == []


def test_a_client_that_stops_reading_an_output_is_closed_at_the_send_timeout(engine_factory):
    """A 24 MB output (a copy of a video target), far more than the socket buffers hold: the
    client reads the head and stops; after --send-timeout-ms without progress the engine
    closes the connection, so the rest of the file never arrives."""
    engine = engine_factory("--send-timeout-ms", "1000")
    video = b"\x00\x00\x00\x18ftypmp42" + os.urandom(24 * 1024 * 1024)
    status, _, body = engine.process({"model": "inswapper_128_fp16", "resolution": "1920x1080"}, ("target.mp4", video))
    assert status == 200, body
    path = urllib.parse.urlsplit(body["output_path"]).path
    host, port = engine.url.removeprefix("http://").split(":")
    with socket.socket() as stalled:
        stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        stalled.settimeout(30)
        stalled.connect((host, int(port)))
        stalled.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n".encode())
        received = stalled.recv(4096)
        assert received.startswith(b"HTTP/1.1 200"), received[:200]
        time.sleep(5)  # no reading: the engine's send stalls
        try:
            received += read_until_closed(stalled)
        except ConnectionResetError:
            pass
    assert len(received) < len(video), "the engine closed the stalled download"
    # A client that reads gets the whole file.
    with urllib.request.urlopen(body["output_path"], timeout=60) as response:
        assert response.read() == video


def test_a_worker_bounds_its_job_with_its_engine_timeout(server_factory, simulator_factory, engine_factory, storage_dir):
    """The worker sends its --engine-timeout-ms: a hung run is killed once the worker has
    given up on it, not at the engine's job timeout (100 s)."""
    sim = simulator_factory()
    engine = engine_factory()
    engine.set_mode("hang")
    server = server_factory("--store", "memory", "--workers", "1", "--engine", engine.url, "--storage",
                            f"local:{storage_dir}", "--health-interval-ms", "200", "--engine-timeout-ms", "3000",
                            ALLOW_LOCAL_URLS)
    stub = tasks_pb2_grpc.TaskServiceStub(server.channel())
    params = tasks_pb2.FaceSwapParams(source_url=sim.sample("source.jpg"), target_url=sim.sample("target.jpg"))
    stub.CreateTask(tasks_pb2.CreateTaskRequest(params=params), timeout=10)
    child_file = Path(str(engine.log) + ".child")
    support.wait_for(lambda: child_file.exists() and child_file.read_text(), 20, what="the hung run started")
    wait_gone(int(child_file.read_text()))  # within 10 s
