"""`swapline copy-store`: moving a queue from the embedded SQLite store to a shared PostgreSQL
database (docs/deploy.md), with the real binary on both sides and a real PostgreSQL."""

from __future__ import annotations

import signal
import subprocess

import services
from support import BINARY, Stubs, create_request, tasks_pb2 as pb

T = 10


def copy_store(source: str, target: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(BINARY), "copy-store", "--from", source, "--to", target, "--batch-size", "7"],
                          capture_output=True, text=True, timeout=120)


def test_a_queue_moves_from_sqlite_to_postgres_as_it_is(server_factory, postgres_db, tmp_path):
    data = tmp_path / "data"
    sqlite = server_factory("--data", str(data))
    stubs = Stubs(sqlite.channel())
    created = [stubs.tasks.CreateTask(create_request(idempotency_key=f"key-{i}" if i % 4 == 0 else "",
                                                     priority=i % 3), timeout=T) for i in range(20)]
    leased = stubs.consumer.FetchTask(pb.FetchTaskRequest(consumer_id="c1", wait_ms=0), timeout=T)
    stubs.consumer.UpdateStatus(pb.UpdateStatusRequest(
        task_id=leased.task.task_id, lease_id=leased.lease_id, status=pb.TASK_STATUS_COMPLETED,
        result=pb.TaskResult(output_url="https://cdn.example.com/out.jpg")), timeout=T)
    open_lease = stubs.consumer.FetchTask(pb.FetchTaskRequest(consumer_id="c2", wait_ms=0), timeout=T)
    stubs.tasks.CancelTask(pb.CancelTaskRequest(task_id=created[9].task_id), timeout=T)
    before = {t.task_id: stubs.tasks.GetTask(pb.GetTaskRequest(task_id=t.task_id), timeout=T) for t in created}
    # The copy refuses a data directory a server still uses.
    refused = copy_store(f"sqlite:{data}", postgres_db)
    assert refused.returncode != 0 and "in use" in refused.stderr.lower() + refused.stdout.lower(), refused
    sqlite.signal(signal.SIGTERM)
    assert sqlite.wait(15) == 0

    first = copy_store(f"sqlite:{data}", postgres_db)
    assert first.returncode == 0, first.stderr
    assert "copied 20 tasks" in first.stdout
    password = postgres_db.split(":")[2].split("@")[0]
    assert password not in first.stdout + first.stderr
    again = copy_store(f"sqlite:{data}", postgres_db)  # a second run changes nothing
    assert again.returncode == 0, again.stderr

    postgres = server_factory("--store", postgres_db)
    stubs = Stubs(postgres.channel())
    for task_id, task in before.items():
        assert stubs.tasks.GetTask(pb.GetTaskRequest(task_id=task_id), timeout=T) == task
    # The lease still holds, idempotency keys still name their tasks, the queue order stands.
    done = stubs.consumer.UpdateStatus(pb.UpdateStatusRequest(
        task_id=open_lease.task.task_id, lease_id=open_lease.lease_id, status=pb.TASK_STATUS_COMPLETED,
        result=pb.TaskResult(output_url="https://cdn.example.com/2.jpg")), timeout=T)
    assert done.status == pb.TASK_STATUS_COMPLETED
    again_created = stubs.tasks.CreateTask(create_request(idempotency_key="key-8"), timeout=T)
    assert again_created.task_id == created[8].task_id
    with services.connect(postgres_db) as conn:
        assert conn.execute("SELECT count(*) FROM swapline_tasks").fetchone()[0] == 20


def test_bad_store_names_are_refused_with_the_reason(tmp_path):
    bad = copy_store("mysql://a@h/d", f"sqlite:{tmp_path}/x")
    assert bad.returncode != 0 and "neither sqlite:DIR nor a postgres:// URL" in bad.stderr, bad.stderr
    unreachable = copy_store(f"sqlite:{tmp_path}/x", "postgres://nobody@127.0.0.1:1/none?sslmode=disable")
    assert unreachable.returncode != 0 and "postgres://nobody@127.0.0.1:1/none" in unreachable.stderr, unreachable.stderr
