"""Structured logs (--log-format text|json on serve, worker and engine): one task run through
a server and a separate worker on the FaceFusion simulator; every line about the task carries
its task_id, and the server logs each state change once."""

from __future__ import annotations

import json
import subprocess

import pytest

from support import ALLOW_LOCAL_URLS, BINARY, tasks_pb2, tasks_pb2_grpc, wait_for
from test_worker import params, simulator_factory, storage_dir, wait_terminal, worker_factory, worker_flags  # noqa: F401 - fixtures

WORKER_STARTED = "swapline worker started"


def run_one_task(server, sim, logs) -> str:
    """Creates a task, waits until it completed and until `logs()` shows its COMPLETED state
    change; returns the task id."""
    stub = tasks_pb2_grpc.TaskServiceStub(server.channel())
    task_id = stub.CreateTask(tasks_pb2.CreateTaskRequest(params=params(sim)), timeout=10).task_id
    done = wait_terminal(stub, task_id)
    assert done.status == tasks_pb2.TASK_STATUS_COMPLETED, done.error
    wait_for(lambda: "COMPLETED" in logs(), timeout=30, what="the COMPLETED state change in the log")
    return task_id


def json_lines(text: str) -> list[dict]:
    lines = [json.loads(line) for line in text.splitlines() if line and not line.startswith(WORKER_STARTED)]
    for line in lines:
        assert {"ts", "level", "label", "message", "source", "metadata"} <= line.keys(), line
        assert isinstance(line["metadata"], dict)
    return lines


def test_json_lines_carry_the_task_metadata(server_factory, simulator_factory, storage_dir, worker_factory):
    sim = simulator_factory()
    server = server_factory("--store", "memory", "--log-format", "json", ALLOW_LOCAL_URLS)
    worker = worker_factory(server.port, *worker_flags(sim, storage_dir, "--log-format", "json"))
    task_id = run_one_task(server, sim, lambda: server.stderr_path.read_text())
    wait_for(lambda: "task completed" in worker.log_path.read_text(), timeout=30, what="the worker's completion line")
    worker.stop(keep_log=True)
    server_lines = json_lines(server.stderr_path.read_text())
    worker_lines = json_lines(worker.log_path.read_text())

    for line in server_lines + worker_lines:
        if task_id in json.dumps(line):
            assert line["metadata"].get("task_id") == task_id, line

    changes = [line for line in server_lines if line["metadata"].get("task_id") == task_id and "state" in line["metadata"]]
    assert [line["metadata"]["state"] for line in changes] == ["PENDING", "PROCESSING", "COMPLETED"]
    assert all(line["level"] == "info" for line in changes)
    processing = changes[1]["metadata"]
    assert processing["attempt"] == "1" and processing["consumer_id"]
    assert processing["lease_id"].startswith("lease_") and len(processing["lease_id"]) == 12

    about_task = [line for line in worker_lines if line["metadata"].get("task_id") == task_id]
    assert [line["message"] for line in about_task if line["message"].startswith("task ")] == ["task started", "task completed"]
    for line in about_task:
        metadata = line["metadata"]
        assert metadata["lease_id"] == processing["lease_id"] and metadata["consumer_id"] == processing["consumer_id"]
        assert metadata["attempt"] == "1"


def test_text_lines_show_the_metadata_as_key_value(server_factory, simulator_factory, storage_dir):
    sim = simulator_factory()
    server = server_factory("--store", "memory", "--workers", "1", *worker_flags(sim, storage_dir))
    task_id = run_one_task(server, sim, lambda: server.stderr_path.read_text())
    lines = server.stderr_path.read_text().splitlines()
    about_task = [line for line in lines if task_id in line]
    assert about_task and all(f"task_id={task_id}" in line for line in about_task)
    for state in ("PENDING", "PROCESSING", "COMPLETED"):
        assert sum(f"state={state}" in line for line in about_task) == 1, (state, about_task)
    assert any("task completed" in line and "outputs=3" in line for line in about_task)
    assert "/outputs/" not in "\n".join(lines)  # a local-storage URL is a bearer secret


@pytest.mark.parametrize("command", ["serve", "worker", "engine"])
def test_an_unknown_log_format_is_refused(command):
    run = subprocess.run([str(BINARY), command, "--log-format", "xml"], capture_output=True, text=True, timeout=30)
    assert run.returncode != 0
    assert "--log-format" in run.stderr and "xml" in run.stderr
