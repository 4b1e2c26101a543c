"""Load on the real server: many concurrent calls, many sequential calls on one connection, and
h2load hammering CreateTask, after which the server must still be correct."""

from __future__ import annotations

import re
import shutil
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import grpc
import pytest

from support import Stubs, create_request, frame, health_pb2 as hpb, params, tasks_pb2 as pb, without_history

SC = grpc.StatusCode


def test_100_concurrent_calls_on_one_channel(server):
    stubs = Stubs(server.channel())
    futs = [stubs.tasks.CreateTask.future(create_request(priority=i % 3), timeout=30)
            for i in range(100)]
    tasks = [f.result() for f in futs]
    ids = [t.task_id for t in tasks]
    assert len(set(ids)) == 100
    gets = [stubs.tasks.GetTask.future(pb.GetTaskRequest(task_id=i), timeout=30) for i in ids]
    assert [without_history(g.result()) for g in gets] == tasks


def test_100_concurrent_mixed_calls_across_channels(server):
    channels = [Stubs(server.channel()) for _ in range(10)]
    seed = channels[0].tasks.CreateTask(create_request(), timeout=10)
    channels[0].tasks.CancelTask(pb.CancelTaskRequest(task_id=seed.task_id), timeout=10)

    def one(i: int):
        s = channels[i % len(channels)]
        kind = i % 4
        if kind == 0:
            return s.tasks.CreateTask(create_request(), timeout=30).status == pb.TASK_STATUS_PENDING
        if kind == 1:
            return s.tasks.GetTask(pb.GetTaskRequest(task_id=seed.task_id), timeout=30).status \
                == pb.TASK_STATUS_CANCELLED
        if kind == 2:
            events = list(s.tasks.WatchTask(pb.WatchTaskRequest(task_id=seed.task_id), timeout=30))
            return [e.task.status for e in events] == [pb.TASK_STATUS_CANCELLED]
        return s.health.Check(hpb.HealthCheckRequest(), timeout=30).status \
            == hpb.HealthCheckResponse.SERVING

    with ThreadPoolExecutor(100) as pool:
        results = list(pool.map(one, range(100)))
    assert all(results), [i for i, ok in enumerate(results) if not ok]


def test_1000_sequential_calls_on_one_channel(server):
    stubs = Stubs(server.channel())
    t0 = time.monotonic()
    for i in range(500):
        task = stubs.tasks.CreateTask(create_request(priority=i % 5), timeout=10)
        assert without_history(stubs.tasks.GetTask(pb.GetTaskRequest(task_id=task.task_id), timeout=10)) == task
    assert time.monotonic() - t0 < 90


H2LOAD_SUMMARY = re.compile(
    r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, "
    r"(\d+) errored, (\d+) timeout")
H2LOAD_STATUS = re.compile(r"status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx")


def run_h2load(port: int, body_path, *args: str, timeout: float = 60) -> dict:
    h2load = shutil.which("h2load")
    if not h2load:
        pytest.fail("h2load not found (Debian package nghttp2-client); tools/test.sh installs it")
    cmd = [h2load, *args, "-d", str(body_path), "-H", "content-type: application/grpc",
           "-H", "te: trailers", f"http://127.0.0.1:{port}/swapline.v1.TaskService/CreateTask"]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    text = out.stdout + out.stderr
    m, s = H2LOAD_SUMMARY.search(text), H2LOAD_STATUS.search(text)
    assert out.returncode == 0 and m and s, f"h2load failed ({out.returncode}):\n{text}"
    total, started, done, succeeded, failed, errored, timed_out = map(int, m.groups())
    return {"total": total, "done": done, "succeeded": succeeded, "failed": failed,
            "errored": errored, "timeout": timed_out, "2xx": int(s.group(1)),
            "non2xx": int(s.group(2)) + int(s.group(3)) + int(s.group(4)), "text": text}


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_h2load_then_still_correct(server_factory, tmp_path):
    # A lease longer than the test, so draining the queue never sees a redelivery; h2load is
    # one client creating as fast as it can, beyond the default rate limit and queue length.
    server = server_factory("--lease-ms", "600000", "--create-rate", "0", "--max-queue-length", "0")
    stubs = Stubs(server.channel())
    bulk_url = "https://example.com/h2load-bulk.jpg"
    body = tmp_path / "create.bin"
    body.write_bytes(frame(create_request(params=params(source_url=bulk_url)).SerializeToString()))

    stats = run_h2load(server.port, body, "-D", "10", "-c", "4", "-m", "16", timeout=90)
    print(stats["text"])
    assert stats["failed"] == 0 and stats["errored"] == 0 and stats["timeout"] == 0, stats["text"]
    assert stats["non2xx"] == 0, stats["text"]
    assert stats["succeeded"] >= 1000, f"implausibly slow: {stats['succeeded']} in 10 s"
    assert server.alive()

    # Still correct afterwards.
    task = stubs.tasks.CreateTask(create_request(), timeout=10)
    assert without_history(stubs.tasks.GetTask(pb.GetTaskRequest(task_id=task.task_id), timeout=10)) == task
    assert stubs.health.Check(hpb.HealthCheckRequest(), timeout=10).status \
        == hpb.HealthCheckResponse.SERVING

    # A counted run at a higher priority than everything queued so far: exactly that many
    # tasks must exist, and they must come out of the queue before every older task.
    n = 4000
    marked_url = "https://example.com/h2load-counted.jpg"
    body.write_bytes(frame(create_request(params=params(source_url=marked_url),
                                          priority=100).SerializeToString()))
    counted = run_h2load(server.port, body, "-n", str(n), "-c", "4", "-m", "16", timeout=90)
    assert counted["succeeded"] == n and counted["non2xx"] == 0, counted["text"]

    marked: list[str] = []
    lock = threading.Lock()

    def drain():
        s = Stubs(server.channel())
        while True:
            resp = s.consumer.FetchTask(pb.FetchTaskRequest(consumer_id="drain"), timeout=10)
            if not resp.HasField("task") or resp.task.priority != 100:
                return
            assert resp.task.params.source_url == marked_url
            assert resp.task.status == pb.TASK_STATUS_PROCESSING and resp.task.attempt == 1
            with lock:
                marked.append(resp.task.task_id)

    with ThreadPoolExecutor(8) as pool:
        for f in [pool.submit(drain) for _ in range(8)]:
            f.result(timeout=120)
    assert len(set(marked)) == len(marked), "a task was handed out twice"
    assert len(marked) == n, f"h2load saw {n} successes but {len(marked)} tasks were queued"

    # The first h2load run's tasks are next, intact.
    resp = stubs.consumer.FetchTask(pb.FetchTaskRequest(), timeout=10)
    assert resp.task.params.source_url in (bulk_url, "https://example.com/source.jpg")
