"""The `swapline` client commands for people (issue 13): the real binary against a real server,
with a fake consumer (grpcio) moving tasks through PROCESSING to COMPLETED or FAILED. Output and
exit codes of each command, the `--json` shapes, SWAPLINE_SERVER / SWAPLINE_TOKEN, error lines,
`watch` both as plain lines through a pipe and as a redrawn line on a terminal (tmux), and the
`list` and `stats` tables."""

from __future__ import annotations

import json
import os
import queue
import shutil
import socket
import subprocess
import threading
import time

import httpx
import pytest

from support import (ALLOW_LOCAL_URLS, BINARY, SOURCE, TARGET, Stubs, SwaplineServer, create_request,
                     tasks_pb2 as pb, wait_for)

T = 30  # seconds: generous, the machine is shared
CLIENT, ADMIN = "cli-client-token", "cli-admin-token"


def cli(*args: str, env: dict[str, str] | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if k not in ("SWAPLINE_SERVER", "SWAPLINE_TOKEN")}
    return subprocess.run([str(BINARY), *args], capture_output=True, text=True, timeout=timeout,
                          env={**base, **(env or {})})


@pytest.fixture(scope="module")
def srv():
    server = SwaplineServer("--store", "memory").start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def stubs(srv) -> Stubs:
    return Stubs(srv.channel())


def url(server: SwaplineServer) -> list[str]:
    return ["--server", f"http://{server.address}"]


class Consumer:
    """Leases one task (`task_id`, or the next one queued) and reports on it, as a worker would."""

    def __init__(self, stubs: Stubs, task_id: str | None = None):
        self.stubs = stubs
        deadline = time.monotonic() + T
        while True:
            leased = stubs.consumer.FetchTask(pb.FetchTaskRequest(consumer_id="cli-test", wait_ms=2000), timeout=T)
            if leased.HasField("task") and task_id in (None, leased.task.task_id):
                break
            if leased.HasField("task"):  # another test's task: give it back as failed
                self._update(leased.task.task_id, leased.lease_id, pb.TASK_STATUS_FAILED, error="not this test's")
            assert time.monotonic() < deadline, f"task {task_id or '(any)'} was never leased"
        self.task_id, self.lease_id = leased.task.task_id, leased.lease_id

    def _update(self, task_id, lease_id, status, **kw) -> pb.Task:
        return self.stubs.consumer.UpdateStatus(
            pb.UpdateStatusRequest(task_id=task_id, lease_id=lease_id, status=status, **kw), timeout=T)

    def progress(self, value: float) -> pb.Task:
        return self._update(self.task_id, self.lease_id, pb.TASK_STATUS_PROCESSING, progress=value)

    def complete(self) -> pb.Task:
        result = pb.TaskResult(output_url="https://cdn.example.com/out.jpg",
                               outputs={"webp_url": "https://cdn.example.com/out.webp"}, processing_time=1.5,
                               job_id="job-1", storage_provider="s3")
        return self._update(self.task_id, self.lease_id, pb.TASK_STATUS_COMPLETED, result=result)

    def fail(self) -> pb.Task:
        return self._update(self.task_id, self.lease_id, pb.TASK_STATUS_FAILED, error="engine: no face found")


def create(stubs: Stubs) -> str:
    return stubs.tasks.CreateTask(create_request(), timeout=T).task_id


class Lines:
    """The stdout lines of a running command, read on a thread so a test can wait for each."""

    def __init__(self, proc: subprocess.Popen):
        self.proc, self.queue, self.seen = proc, queue.Queue(), []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stdout:
            self.queue.put(line.rstrip("\n"))
        self.queue.put(None)

    def wait_for(self, predicate) -> str:
        deadline = time.monotonic() + T
        while time.monotonic() < deadline:
            try:
                line = self.queue.get(timeout=max(0.1, deadline - time.monotonic()))
            except queue.Empty:
                break
            if line is None:
                break
            self.seen.append(line)
            if predicate(line):
                return line
        raise AssertionError(f"no such line; seen {self.seen!r}")

    def rest(self) -> list[str]:
        self.proc.wait(timeout=T)
        lines = []
        while (line := self.queue.get(timeout=T)) is not None:
            lines.append(line)
        return lines


def watch(*args: str) -> tuple[subprocess.Popen, Lines]:
    proc = subprocess.Popen([str(BINARY), "watch", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return proc, Lines(proc)


# --------------------------------------------------------------------------------------------
# create, get, cancel
# --------------------------------------------------------------------------------------------


def test_create_takes_every_option_and_get_and_cancel_print_the_task(srv, stubs):
    created = cli("create", *url(srv), "--source", SOURCE, "--target", TARGET, "--priority", "7",
                  "--idempotency-key", "cli-key-1", "--model", "inswapper_128", "--resolution", "512x512",
                  "--option", "face_enhancer_model=gfpgan_1.4", "--option", "output_video_quality=80")
    assert created.returncode == 0, created.stderr
    task_id = created.stdout.strip()
    task = stubs.tasks.GetTask(pb.GetTaskRequest(task_id=task_id), timeout=T)
    assert task.priority == 7
    assert (task.params.model, task.params.resolution) == ("inswapper_128", "512x512")
    assert dict(task.params.options) == {"face_enhancer_model": "gfpgan_1.4", "output_video_quality": "80"}
    again = cli("create", *url(srv), "--source", SOURCE, "--target", TARGET, "--idempotency-key", "cli-key-1")
    assert again.stdout.strip() == task_id, "the idempotency key was not sent"

    got = cli("get", *url(srv), task_id)
    assert got.returncode == 0, got.stderr
    assert got.stdout.startswith(f"task {task_id}: PENDING, attempt 0\n")
    assert "priority: 7" in got.stdout and "option face_enhancer_model: gfpgan_1.4" in got.stdout
    assert "\n  history:\n" in got.stdout and "  PENDING     attempt 0" in got.stdout, got.stdout

    cancelled = cli("cancel", *url(srv), task_id)
    assert cancelled.returncode == 0, cancelled.stderr
    assert cancelled.stdout.startswith(f"task {task_id}: CANCELLED")


def test_json_is_the_rest_shims_task_json(srv, stubs):
    created = cli("create", *url(srv), "--source", SOURCE, "--target", TARGET, "--priority", "3", "--json")
    assert created.returncode == 0, created.stderr
    task = json.loads(created.stdout)
    assert task["status"] == "PENDING" and task["priority"] == 3
    assert task["params"]["input_data"]["wf_json"]["source_url"] == SOURCE
    got = cli("get", *url(srv), task["taskId"], "--json")
    assert got.returncode == 0, got.stderr
    # The REST shim's answer for the same task: the same JSON.
    rest = httpx.get(f"http://{srv.address}/api/face-swap/task/{task['taskId']}", timeout=T)
    assert json.loads(got.stdout) == rest.json()
    cancelled = json.loads(cli("cancel", *url(srv), task["taskId"], "--json").stdout)
    assert cancelled["status"] == "CANCELLED" and cancelled["taskId"] == task["taskId"]


# --------------------------------------------------------------------------------------------
# Errors and exit codes
# --------------------------------------------------------------------------------------------


def test_a_failed_call_is_one_line_naming_the_grpc_status(srv, stubs):
    missing = cli("get", *url(srv), "task_nope")
    assert missing.returncode == 1
    assert missing.stderr.startswith("error: NOT_FOUND: ") and missing.stderr.count("\n") == 1, missing.stderr
    assert missing.stdout == ""

    gone = cli("cancel", *url(srv), "task_nope", "--json")
    assert gone.returncode == 1 and gone.stderr.startswith("error: NOT_FOUND: ") and gone.stdout == "", gone

    bad = cli("create", *url(srv), "--source", "ftp://example.com/a.jpg", "--target", TARGET)
    assert bad.returncode == 1 and bad.stderr.startswith("error: INVALID_ARGUMENT: "), bad.stderr
    assert bad.stderr.count("\n") == 1


def test_an_unreachable_server_is_one_line_and_exit_2():
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    refused = cli("get", "--server", f"http://127.0.0.1:{port}", "task_x")
    assert refused.returncode == 2, refused
    assert refused.stderr.startswith("error: UNAVAILABLE: ") and refused.stderr.count("\n") == 1, refused.stderr


def test_usage_errors_exit_64():
    for args in (["get", "--server", "ftp://h", "task_x"], ["create", "--source", SOURCE, "--target", TARGET, "--option", "novalue"]):
        result = cli(*args)
        assert result.returncode == 64, (args, result)


def test_every_client_command_has_examples_in_its_help():
    for command in ("create", "watch", "get", "cancel", "process", "list", "stats"):
        result = cli(command, "--help")
        assert result.returncode == 0
        assert "Examples:" in result.stdout and f"swapline {command} " in result.stdout, command
        for flag in ("--server", "--token", "--ca-file", "--json"):
            assert flag in result.stdout, (command, flag)


# --------------------------------------------------------------------------------------------
# SWAPLINE_SERVER and SWAPLINE_TOKEN
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def secured():
    server = SwaplineServer("--store", "memory", ALLOW_LOCAL_URLS,
                            env={"SWAPLINE_AUTH_TOKENS": f"client:{CLIENT},admin:{ADMIN}"}).start()
    yield server
    server.stop()


def test_server_and_token_come_from_the_environment_and_flags_win(secured):
    address = f"http://{secured.address}"
    made = cli("create", "--source", SOURCE, "--target", TARGET, env={"SWAPLINE_SERVER": address, "SWAPLINE_TOKEN": CLIENT})
    assert made.returncode == 0, made.stderr
    task_id = made.stdout.strip()
    # Flags win over the environment: a wrong server and token in it do not matter.
    got = cli("get", "--server", address, "--token", CLIENT, task_id,
              env={"SWAPLINE_SERVER": "http://127.0.0.1:1", "SWAPLINE_TOKEN": "wrong"})
    assert got.returncode == 0 and task_id in got.stdout, got.stderr
    wrong = cli("get", task_id, env={"SWAPLINE_SERVER": address, "SWAPLINE_TOKEN": "wrong"})
    assert wrong.returncode == 1 and wrong.stderr.startswith("error: UNAUTHENTICATED: "), wrong.stderr
    nobody = cli("get", "--server", address, task_id)
    assert nobody.returncode == 1 and nobody.stderr.startswith("error: UNAUTHENTICATED: "), nobody.stderr


# --------------------------------------------------------------------------------------------
# watch and create --watch
# --------------------------------------------------------------------------------------------


def test_watch_through_a_pipe_prints_a_line_per_event_and_the_result(srv, stubs):
    task_id = create(stubs)
    proc, lines = watch(*url(srv), task_id)
    try:
        lines.wait_for(lambda line: line == f"{task_id} PENDING 0% attempt 0")
        consumer = Consumer(stubs, task_id)
        lines.wait_for(lambda line: line.startswith(f"{task_id} PROCESSING ") and line.endswith(" attempt 1"))
        consumer.progress(0.5)
        lines.wait_for(lambda line: line == f"{task_id} PROCESSING 50% attempt 1")
        consumer.complete()
        rest = lines.rest()
        assert proc.returncode == 0, proc.stderr.read()
        assert rest[0] == f"{task_id} COMPLETED 100% attempt 1", rest
        assert f"task {task_id}: COMPLETED, attempt 1" in rest
        assert "  output_url: https://cdn.example.com/out.jpg" in rest
        assert "  webp_url: https://cdn.example.com/out.webp" in rest
        assert not any("\x1b" in line or "\r" in line for line in lines.seen + rest), "terminal codes in a pipe"
    finally:
        proc.kill()
        proc.wait()


def test_watch_json_is_one_object_per_event_and_failed_exits_3(srv, stubs):
    task_id = create(stubs)
    proc, lines = watch(*url(srv), task_id, "--json")
    try:
        first = json.loads(lines.wait_for(lambda line: True))
        assert first["taskId"] == task_id and first["status"] == "PENDING"
        consumer = Consumer(stubs, task_id)
        lines.wait_for(lambda line: json.loads(line)["status"] == "PROCESSING")
        consumer.fail()
        rest = [json.loads(line) for line in lines.rest()]
        assert proc.returncode == 3
        assert rest[-1]["status"] == "FAILED" and rest[-1]["error"] == "engine: no face found"
    finally:
        proc.kill()
        proc.wait()


def test_watch_of_a_cancelled_task_exits_4_and_of_an_unknown_task_1(srv, stubs):
    task_id = create(stubs)
    assert cli("cancel", *url(srv), task_id).returncode == 0
    cancelled = cli("watch", *url(srv), task_id)
    assert cancelled.returncode == 4
    assert cancelled.stdout.startswith(f"{task_id} CANCELLED 0% attempt 0\ntask {task_id}: CANCELLED")
    unknown = cli("watch", *url(srv), "task_nope")
    assert unknown.returncode == 1 and unknown.stderr.startswith("error: NOT_FOUND: "), unknown.stderr


def test_create_watch_prints_the_id_then_follows_the_task(srv, stubs):
    proc = subprocess.Popen([str(BINARY), "create", *url(srv), "--source", SOURCE, "--target", TARGET, "--watch"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines = Lines(proc)
    try:
        task_id = lines.wait_for(lambda line: line.startswith("task_"))
        lines.wait_for(lambda line: line == f"{task_id} PENDING 0% attempt 0")
        Consumer(stubs, task_id).complete()
        rest = lines.rest()
        assert proc.returncode == 0 and f"{task_id} COMPLETED 100% attempt 1" in rest, rest
    finally:
        proc.kill()
        proc.wait()


@pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")
def test_watch_on_a_terminal_redraws_one_line_and_keeps_the_final_state(srv, stubs, tmp_path):
    task_id = create(stubs)
    socket_name = f"swapline-cli-{os.getpid()}"
    tmux = ["tmux", "-L", socket_name]
    exit_file = tmp_path / "exit"
    command = f"{BINARY} watch --server http://{srv.address} {task_id}; echo $? > {exit_file}; sleep 600"
    subprocess.run([*tmux, "new-session", "-d", "-x", "120", "-y", "10", command], check=True, timeout=T)

    def pane() -> list[str]:  # the screen and its scrollback
        shown = subprocess.run([*tmux, "capture-pane", "-p", "-S", "-100"], capture_output=True, text=True, timeout=T).stdout
        return [line for line in shown.splitlines() if line.strip()]

    try:
        wait_for(lambda: any(line.startswith("PENDING     [") for line in pane()), T, 0.2, "the PENDING bar")
        consumer = Consumer(stubs, task_id)
        consumer.progress(0.5)
        wait_for(lambda: any(line.startswith("PROCESSING  [==========") and " 50%  attempt 1  elapsed " in line
                             for line in pane()), T, 0.2, "the PROCESSING bar at 50%")
        # Redrawn in place: one bar line on the screen, not one per event.
        assert len([line for line in pane() if "  attempt " in line]) == 1, pane()
        consumer.complete()
        wait_for(exit_file.exists, T, 0.2, "watch to exit")
        assert exit_file.read_text().strip() == "0"
        shown = pane()
        bars = [line for line in shown if "  attempt " in line]
        assert bars == [bars[0]] and bars[0].startswith("COMPLETED   [====================] 100%  attempt 1  elapsed "), shown
        assert shown.index(bars[0]) < shown.index(f"task {task_id}: COMPLETED, attempt 1"), shown
        assert "  output_url: https://cdn.example.com/out.jpg" in shown
    finally:
        subprocess.run([*tmux, "kill-server"], capture_output=True, timeout=T)


# --------------------------------------------------------------------------------------------
# process
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("outcome", ["completed", "failed"])
def test_process_prints_the_result_and_exits_3_when_it_failed(srv, stubs, outcome):
    proc = subprocess.Popen([str(BINARY), "process", *url(srv), "--source", SOURCE, "--target", TARGET, "--json"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        consumer = Consumer(stubs)
        consumer.complete() if outcome == "completed" else consumer.fail()
        out, err = proc.communicate(timeout=T)
        response = json.loads(out)
        assert response["task_id"] == consumer.task_id
        if outcome == "completed":
            assert proc.returncode == 0, err
            assert response["status"] == "success" and response["output_path"] == "https://cdn.example.com/out.jpg"
        else:
            assert proc.returncode == 3, err
            assert response["status"] != "success"
    finally:
        proc.kill()
        proc.wait()


# --------------------------------------------------------------------------------------------
# list and stats (each on a fresh server, so the counts are this test's)
# --------------------------------------------------------------------------------------------


def rows(table: str) -> list[list[str]]:
    lines = table.splitlines()
    assert lines[0].split() == ["ID", "STATUS", "WORKFLOW", "PROGRESS", "ATTEMPT", "CREATED", "UPDATED"], table
    return [line.split() for line in lines[1:] if line.startswith("task_")]


def test_list_filters_pages_and_prints_json(server_factory):
    server = server_factory("--store", "memory")
    stubs = Stubs(server.channel())
    ids = [stubs.tasks.CreateTask(create_request(idempotency_key=f"list-{n}"), timeout=T).task_id for n in range(5)]
    stubs.tasks.CancelTask(pb.CancelTaskRequest(task_id=ids[1]), timeout=T)

    listed = cli("list", *url(server))
    assert listed.returncode == 0, listed.stderr
    table = rows(listed.stdout)
    assert [row[0] for row in table] == ids[::-1], "not newest first"
    assert table[-1][1:5] == ["PENDING", "face_swap", "0%", "0"]
    assert "next page" not in listed.stdout

    def listed_ids(*args: str) -> list[str]:
        result = cli("list", *url(server), *args)
        assert result.returncode == 0, result.stderr
        return [row[0] for row in rows(result.stdout)]

    assert listed_ids("--status", "CANCELLED") == [ids[1]]
    assert listed_ids("--status", "pending", "--status", "cancelled") == ids[::-1]
    assert listed_ids("--idempotency-key", "list-3") == [ids[3]]
    assert listed_ids("--created-after", "2999-01-01T00:00:00Z") == []
    assert listed_ids("--created-before", "0") == ids[::-1]  # 0: no bound
    assert listed_ids("--workflow", "nothing") == []

    first = cli("list", *url(server), "--limit", "2")
    assert [row[0] for row in rows(first.stdout)] == ids[:2:-1]
    assert first.stdout.splitlines()[-1].startswith("next page: --page-token "), first.stdout
    token = first.stdout.splitlines()[-1].removeprefix("next page: --page-token ")
    assert listed_ids("--limit", "2", "--page-token", token) == [ids[2], ids[1]]
    assert listed_ids("--limit", "2", "--all") == ids[::-1]

    page = json.loads(cli("list", *url(server), "--limit", "2", "--json").stdout)
    assert [task["taskId"] for task in page["tasks"]] == ids[:2:-1] and page["next_page_token"] == token
    rest = httpx.get(f"http://{server.address}/api/face-swap/tasks", params={"page_size": 2}, timeout=T)
    assert page == rest.json(), "the CLI's JSON is not the REST shim's"
    everything = json.loads(cli("list", *url(server), "--limit", "2", "--all", "--json").stdout)
    assert [task["taskId"] for task in everything["tasks"]] == ids[::-1] and not everything["next_page_token"]

    for bad in (["--status", "DONE"], ["--created-after", "yesterday"], ["--limit", "0"], ["--all", "--page-token", "x"]):
        result = cli("list", *url(server), *bad)
        assert result.returncode == 64 and result.stderr, (bad, result)


def test_stats_prints_counts_by_workflow_and_state(server_factory):
    server = server_factory("--store", "memory")
    stubs = Stubs(server.channel())
    for _ in range(3):
        create(stubs)
    Consumer(stubs).complete()
    Consumer(stubs)  # leased: PROCESSING

    shown = cli("stats", *url(server))
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert lines[0].split() == ["WORKFLOW", "PENDING", "PROCESSING", "COMPLETED", "FAILED", "CANCELLED"]
    assert lines[1].split() == ["face_swap", "1", "1", "1", "0", "0"]
    assert "active leases: 1" in lines and "last minute: 1 finished, 0 failed (0%)" in lines

    stats = json.loads(cli("stats", *url(server), "--json").stdout)
    assert {"workflow": "face_swap", "status": "PENDING", "count": 1} in stats["counts"]
    assert stats["active_leases"] == 1 and stats["finished_last_minute"] == 1
    rest = httpx.get(f"http://{server.address}/api/face-swap/stats", timeout=T).json()
    assert rest.keys() == stats.keys(), "the CLI's JSON is not the REST shim's"


@pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")
def test_ctrl_c_ends_the_bar_line_and_exits_130(srv, stubs, tmp_path):
    task_id = create(stubs)
    tmux = ["tmux", "-L", f"swapline-cli-int-{os.getpid()}"]
    exit_file = tmp_path / "exit"
    command = f"{BINARY} watch --server http://{srv.address} {task_id}; echo after $? > {exit_file}; echo after; sleep 600"
    subprocess.run([*tmux, "new-session", "-d", "-x", "120", "-y", "10", command], check=True, timeout=T)
    try:
        def shown() -> list[str]:
            return subprocess.run([*tmux, "capture-pane", "-p"], capture_output=True, text=True, timeout=T).stdout.splitlines()
        wait_for(lambda: any(line.startswith("PENDING     [") for line in shown()), T, 0.2, "the PENDING bar")
        subprocess.run([*tmux, "send-keys", "C-c"], check=True, timeout=T)
        wait_for(exit_file.exists, T, 0.2, "watch to exit")
        assert exit_file.read_text().strip() == "after 130"
        lines = shown()
        bar = next(i for i, line in enumerate(lines) if line.startswith("PENDING     ["))
        assert lines[bar + 1] == "after", lines  # the bar line was ended
    finally:
        subprocess.run([*tmux, "kill-server"], capture_output=True, timeout=T)
        stubs.tasks.CancelTask(pb.CancelTaskRequest(task_id=task_id), timeout=T)
