#!/usr/bin/env python3
"""ListTasks and GetQueueStats latency on a large SQLite or PostgreSQL store.

Starts `swapline serve` once on a fresh store (a --data directory, or with
BENCH_POSTGRES_URL a new database on that cluster) to create the schema, stops it, fills it with BENCH_TASKS tasks in one SQL statement (creation times one
millisecond apart; 90 % COMPLETED, 4 % FAILED, 2 % CANCELLED, 2 % PROCESSING, 2 % PENDING;
three owners; the triggers keep the counts as the server would), starts the server again
with client and admin tokens and times, over BENCH_REPEAT calls each: the first page
(50 tasks, admin), a page ten pages deep, a page of FAILED tasks, a client's first page, and
GetQueueStats as admin and as a client. Prints the median and the slowest call of each.

Not a test: the figures depend on the machine. Uses the interop suite's venv (grpcio):

    SWAPLINE_BIN=.build/release/swapline tests/.venv/bin/python tools/bench-list.py
    BENCH_TASKS=100000 SWAPLINE_BIN=.build/debug/swapline tests/.venv/bin/python tools/bench-list.py

    BENCH_POSTGRES_URL=postgres://…/swapline SWAPLINE_BIN=… tests/.venv/bin/python tools/bench-list.py

Environment: BENCH_TASKS [1000000], BENCH_REPEAT [20], BENCH_POSTGRES_URL (unset: SQLite),
SWAPLINE_BIN. The PostgreSQL database is dropped afterwards.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "interop"))

import services  # noqa: E402
from support import SwaplineServer, tasks_pb2 as pb, tasks_pb2_grpc  # noqa: E402

TASKS = int(os.environ.get("BENCH_TASKS", "1000000"))
POSTGRES = os.environ.get("BENCH_POSTGRES_URL")
REPEAT = int(os.environ.get("BENCH_REPEAT", "20"))
CLIENT, ADMIN = "bench-client-token", "bench-admin-token"
TOKENS = f"client:{CLIENT},admin:{ADMIN}"

# One statement: a recursive counter, each row a task in the layout of the tasks table.
FILL = """
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < :count)
INSERT INTO tasks (task_id, workflow, environment, target_port, source_url, target_url, resolution, model, options,
    state, source_channel, created_at, updated_at, progress, error, attempt, priority, idempotency_key, lease_id,
    lease_consumer, lease_expires_at, version, owner, history)
SELECT printf('task_bench%010d', i), 'face_swap', 'face_swap', 8000, 'https://example.com/a.jpg',
    'https://example.com/b.jpg', '1024x1024', 'inswapper_128_fp16', '{}', s.state, 'http://localhost:8000',
    :start + i, :start + i + 500, 0, CASE s.state WHEN 'FAILED' THEN 'engine: boom' ELSE '' END,
    CASE s.state WHEN 'PENDING' THEN 0 ELSE 1 END, 0, NULL,
    CASE s.state WHEN 'PROCESSING' THEN 'lease_' || i END, CASE s.state WHEN 'PROCESSING' THEN 'bench' END,
    CASE s.state WHEN 'PROCESSING' THEN :start + :count + 3600000 END, 2, o.owner, ''
FROM n
JOIN (SELECT CASE WHEN r < 90 THEN 'COMPLETED' WHEN r < 94 THEN 'FAILED' WHEN r < 96 THEN 'CANCELLED'
                  WHEN r < 98 THEN 'PROCESSING' ELSE 'PENDING' END AS state, r FROM
      (WITH RECURSIVE m(r) AS (SELECT 0 UNION ALL SELECT r + 1 FROM m WHERE r < 99) SELECT r FROM m)) s ON s.r = n.i % 100
JOIN (SELECT 0 AS k, :owner AS owner UNION ALL SELECT 1, 'sha256:other-a' UNION ALL SELECT 2, 'sha256:other-b') o ON o.k = n.i % 3
"""


# The same tasks in swapline_tasks (PostgreSQL), from generate_series.
FILL_POSTGRES = """
INSERT INTO swapline_tasks (task_id, workflow, environment, target_port, source_url, target_url, resolution, model,
    options, state, source_channel, created_at, updated_at, progress, error, attempt, priority, idempotency_key,
    lease_id, lease_consumer, lease_expires_at, version, owner, history)
SELECT 'task_bench' || lpad(i::text, 10, '0'), 'face_swap', 'face_swap', 8000, 'https://example.com/a.jpg',
    'https://example.com/b.jpg', '1024x1024', 'inswapper_128_fp16', '{}'::jsonb, s.state, 'http://localhost:8000',
    %(start)s + i, %(start)s + i + 500, 0, CASE s.state WHEN 'FAILED' THEN 'engine: boom' ELSE '' END,
    CASE s.state WHEN 'PENDING' THEN 0 ELSE 1 END, 0, NULL,
    CASE s.state WHEN 'PROCESSING' THEN 'lease_' || i END, CASE s.state WHEN 'PROCESSING' THEN 'bench' END,
    CASE s.state WHEN 'PROCESSING' THEN %(start)s + %(count)s + 3600000 END, 2,
    (ARRAY[%(owner)s, 'sha256:other-a', 'sha256:other-b'])[i %% 3 + 1], ''
FROM generate_series(1, %(count)s) AS i,
LATERAL (SELECT CASE WHEN i %% 100 < 90 THEN 'COMPLETED' WHEN i %% 100 < 94 THEN 'FAILED'
                     WHEN i %% 100 < 96 THEN 'CANCELLED' WHEN i %% 100 < 98 THEN 'PROCESSING' ELSE 'PENDING' END AS state) s
"""


def fill(store: str, data: Path, task_id: str) -> None:
    start = int(time.time() * 1000) - TASKS - 120_000
    began = time.monotonic()
    if POSTGRES:
        with services.connect(store) as database:
            owner = database.execute("SELECT owner FROM swapline_tasks WHERE task_id = %s", (task_id,)).fetchone()[0]
            database.execute(FILL_POSTGRES, {"count": TASKS, "start": start, "owner": owner})
            # The fill's triggers appended a count change per task; a serving store folds them
            # every second. Fold them here and vacuum, as autovacuum would, so that the timed calls
            # see the steady state rather than a million dead rows.
            database.execute("""
                WITH moved AS (DELETE FROM swapline_task_count_changes RETURNING owner, workflow, state, delta)
                INSERT INTO swapline_task_count_changes
                    SELECT owner, workflow, state, sum(delta) FROM moved GROUP BY owner, workflow, state
                """)
            database.execute("VACUUM ANALYZE swapline_task_count_changes")
            database.execute("ANALYZE swapline_tasks")
    else:
        database = sqlite3.connect(data / "tasks.db")
        owner = database.execute("SELECT owner FROM tasks WHERE task_id = ?", (task_id,)).fetchone()[0]
        with database:
            database.execute(FILL, {"count": TASKS, "start": start, "owner": owner})
        database.close()
    print(f"filled {TASKS} tasks in {time.monotonic() - began:.1f} s", flush=True)


def timed(call) -> tuple[float, float]:
    seconds = []
    for _ in range(REPEAT):
        began = time.perf_counter()
        call()
        seconds.append(time.perf_counter() - began)
    return statistics.median(seconds) * 1000, max(seconds) * 1000


def main() -> None:
    data = Path(tempfile.mkdtemp(prefix="swapline-bench-list-"))
    store = services.create_database(POSTGRES, prefix="swapline_bench") if POSTGRES else ""
    try:
        run(data, store)
    finally:
        shutil.rmtree(data, ignore_errors=True)
        if store:
            services.drop_database(store)


def run(data: Path, store: str) -> None:
    flags = ["--data", str(data)] + (["--store", store] if store else [])
    first = SwaplineServer(*flags, env={"SWAPLINE_AUTH_TOKENS": TOKENS}).start()
    try:
        # The owner the server stores for the client token: read back from a created task.
        created = tasks_pb2_grpc.TaskServiceStub(first.channel()).CreateTask(
            pb.CreateTaskRequest(params=pb.FaceSwapParams(source_url="https://example.com/a.jpg", target_url="https://example.com/b.jpg")),
            metadata=(("authorization", f"Bearer {CLIENT}"),), timeout=30)
    finally:
        first.stop()
    fill(store, data, created.task_id)

    server = SwaplineServer(*flags, env={"SWAPLINE_AUTH_TOKENS": TOKENS}).start()
    try:
        stub = tasks_pb2_grpc.TaskServiceStub(server.channel())
        admin = (("authorization", f"Bearer {ADMIN}"),)
        client = (("authorization", f"Bearer {CLIENT}"),)
        token = ""
        for _ in range(10):
            token = stub.ListTasks(pb.ListTasksRequest(page_token=token), metadata=admin, timeout=60).next_page_token
        cases = [
            ("ListTasks first page (admin)", lambda: stub.ListTasks(pb.ListTasksRequest(), metadata=admin, timeout=60)),
            ("ListTasks 11th page (admin)", lambda: stub.ListTasks(pb.ListTasksRequest(page_token=token), metadata=admin, timeout=60)),
            ("ListTasks FAILED only (admin)", lambda: stub.ListTasks(
                pb.ListTasksRequest(statuses=[pb.TASK_STATUS_FAILED]), metadata=admin, timeout=60)),
            ("ListTasks first page (client)", lambda: stub.ListTasks(pb.ListTasksRequest(), metadata=client, timeout=60)),
            ("GetQueueStats (admin)", lambda: stub.GetQueueStats(pb.GetQueueStatsRequest(), metadata=admin, timeout=60)),
            ("GetQueueStats (client)", lambda: stub.GetQueueStats(pb.GetQueueStatsRequest(), metadata=client, timeout=60)),
        ]
        print(f"{TASKS} tasks stored ({'PostgreSQL' if store else 'SQLite'}); {REPEAT} calls each (ms):")
        for name, call in cases:
            median, slowest = timed(call)
            print(f"  {name:32} median {median:8.2f}   max {slowest:8.2f}")
        stats = stub.GetQueueStats(pb.GetQueueStatsRequest(), metadata=admin, timeout=60)
        print(f"  counts: {sum(c.count for c in stats.counts)} tasks, {stats.active_leases} leased")
    finally:
        server.stop()

if __name__ == "__main__":
    main()
