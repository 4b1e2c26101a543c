"""Hostile message contents and long polls (docs/security.md, "Message contents and long
polls"): requests whose repeated and map fields would each become millions of Swift values,
more parked FetchTask calls and WatchTask streams than the caps allow, hostile flag values,
and an SQLite database whose writes fail because another process holds its lock.

Requests are built by hand (protobuf wire bytes, HTTP/2 frames through `RawH2`), never with
generated stubs, so nothing on the client side refuses or normalises them.
"""

from __future__ import annotations

import sqlite3
import subprocess
import time

import grpc
import httpx
import pytest

import support
from abuse import assert_normal_client_served, assert_rss_back, server_rss
from support import RawH2, Stubs, frame, health_pb2 as hpb

FETCH = "/swapline.v1.ConsumerService/FetchTask"
CREATE = "/swapline.v1.TaskService/CreateTask"
WATCH = "/swapline.v1.TaskService/WatchTask"
RESOURCE_EXHAUSTED = 8
INVALID_ARGUMENT = 3


def varint(value: int) -> bytes:
    out = bytearray()
    while value >= 0x80:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def field(number: int, payload: bytes) -> bytes:
    """A length-delimited (wire type 2) field."""
    return varint(number << 3 | 2) + varint(len(payload)) + payload


def fetch_request(wait_ms: int, empty_workflows: int = 0, workflows: tuple[str, ...] = ()) -> bytes:
    """FetchTaskRequest { repeated string workflows = 2; int32 wait_ms = 3 }."""
    return (field(2, b"") * empty_workflows + b"".join(field(2, w.encode()) for w in workflows)
            + varint(3 << 3) + varint(wait_ms))


def send_all(raw: RawH2, sid: int, data: bytes, timeout: float = 60.0) -> None:
    """Sends `data` and ends the stream, as fast as the server's flow-control windows allow."""
    deadline = time.monotonic() + timeout
    view = memoryview(data)
    while view:
        window = min(raw.conn.local_flow_control_window(sid), raw.conn.max_outbound_frame_size)
        if window <= 0:
            assert time.monotonic() < deadline, "the server stopped opening its window"
            raw.pump(0.5)
            if raw.streams[sid].finished:
                return  # refused before the whole request arrived: as good
            continue
        chunk, view = view[:window], view[window:]
        raw.conn.send_data(sid, bytes(chunk), end_stream=not view)
        raw.flush()


def warmed_up_baseline(server) -> int:
    for _ in range(3):
        assert_normal_client_served(server)
    return server_rss(server)


def test_parked_fetches_with_millions_of_empty_workflows_are_refused_at_once(server_factory):
    server = server_factory()
    baseline = warmed_up_baseline(server)
    # 1.8 million empty `workflows` entries: 3.6 MB, under the 4 MiB message limit.
    request = frame(fetch_request(wait_ms=30_000, empty_workflows=1_800_000))
    raw = RawH2(server.port, timeout=60)
    try:
        started = time.monotonic()
        sids = []
        for _ in range(10):
            sid = raw.start(FETCH)
            sids.append(sid)
            send_all(raw, sid, request)
        results = [raw.wait(sid, timeout=60) for sid in sids]
        elapsed = time.monotonic() - started
    finally:
        raw.close()
    for result in results:
        assert result.grpc_status == INVALID_ARGUMENT, result
        assert "swapline.v1.FetchTaskRequest carries more than 16384 fields; at most 16384 are allowed" in result.grpc_message, result
    # Refused, not parked: a parked poll would have waited the 30 s it asked for.
    assert elapsed < 25, f"ten refusals took {elapsed:.1f}s"
    assert_normal_client_served(server)
    # Refused by the wire walk before protobuf-c allocates anything for the entries (it used
    # to take ~45 MB of scratch per request), so what is left is the receive buffers: 16 MiB,
    # far below the 158 MiB that parked polls held before the limits.
    assert_rss_back(server, baseline, "10 fetches x 1.8M empty workflows", bound_mib=16)


def test_huge_options_maps_and_long_strings_are_refused_naming_the_limit(server_factory):
    server = server_factory()
    baseline = warmed_up_baseline(server)
    entry = field(5, field(1, b"") + field(2, b""))
    params = field(1, support.SOURCE.encode()) + field(2, support.TARGET.encode()) + entry * 500_000
    raw = RawH2(server.port, timeout=60)
    try:
        sid = raw.start(CREATE)
        send_all(raw, sid, frame(field(2, params)))
        huge_map = raw.wait(sid, timeout=60)
        sid = raw.start(CREATE)
        send_all(raw, sid, frame(field(2, field(1, b"https://example.com/" + b"a" * 5000))))
        long_url = raw.wait(sid, timeout=30)
    finally:
        raw.close()
    assert huge_map.grpc_status == INVALID_ARGUMENT
    assert "swapline.v1.CreateTaskRequest carries more than 16384 fields; at most 16384 are allowed" in huge_map.grpc_message
    assert long_url.grpc_status == INVALID_ARGUMENT
    assert "params.source_url is 5020 bytes long; at most 4096 are allowed" in long_url.grpc_message

    # The REST shim applies the same limits, as FastAPI-style 422s, and bounds JSON containers.
    options = {f"k{i}": "v" for i in range(65)}
    body = {"source_url": support.SOURCE, "target_url": support.TARGET, "options": options}
    with httpx.Client(base_url=f"http://{server.address}", timeout=30, trust_env=False) as http:
        refused = http.post("/api/face-swap/create-task", json=body)
        assert refused.status_code == 422, refused.text
        assert refused.json()["detail"][0]["type"] == "too_long"
        many_items = http.post("/api/face-swap/create-task", content=b"[" + b"0," * 200_000 + b"0]",
                               headers={"content-type": "application/json"})
        assert many_items.status_code == 422, many_items.text
        workflows = ",".join(["face_swap"] * 33)
        too_many = http.get(f"/api/comm/task/fetch?wait_ms=0&workflow={workflows}")
        assert too_many.status_code == 422, too_many.text
    assert_normal_client_served(server)
    assert_rss_back(server, baseline, "500k-entry options map", bound_mib=32)


def park_fetches(raw: RawH2, count: int) -> list[int]:
    sids = []
    for _ in range(count):
        sid = raw.start(FETCH)
        raw.send(sid, frame(fetch_request(wait_ms=30_000)), end_stream=True)
        sids.append(sid)
    return sids


def test_parked_fetches_are_capped_per_connection_and_in_total(server_factory):
    server = server_factory("--max-parked-fetches-per-connection", "4", "--max-parked-fetches", "6",
                            "--max-wait-ms", "30000")
    first, second = RawH2(server.port), RawH2(server.port)
    try:
        first_sids = park_fetches(first, 5)
        refused = first.wait(first_sids[-1], timeout=15)
        assert refused.grpc_status == RESOURCE_EXHAUSTED, refused
        assert "limit per connection" in refused.grpc_message
        second_sids = park_fetches(second, 3)
        refused = second.wait(second_sids[-1], timeout=15)
        assert refused.grpc_status == RESOURCE_EXHAUSTED, refused
        assert "the server has 6" in refused.grpc_message
        # The admitted ones are still parked.
        first.pump(0.5)
        assert not any(first.streams[sid].finished for sid in first_sids[:4])
        # REST says the same as 429 with Retry-After.
        with httpx.Client(base_url=f"http://{server.address}", timeout=15, trust_env=False) as http:
            answer = http.get("/api/comm/task/fetch?wait_ms=0")
            assert answer.status_code == 429, answer.text
            assert answer.headers["retry-after"] == "1"
        # Everything else is still served.
        assert_normal_client_served(server)
        # Resetting parked polls frees their places (once the server has read the resets,
        # which may come after a poll on the other connection: retried until admitted).
        for sid in first_sids[:2]:
            first.reset(sid)

        def parks_again() -> bool:
            sid = park_fetches(second, 1)[0]
            second.pump(1.0)
            result = second.streams[sid]
            # Admitted: still parked, or already answered with the task the normal client
            # created (status 0) when it was the first poll waiting.
            assert not result.finished or result.grpc_status in (RESOURCE_EXHAUSTED, 0), result
            return not result.finished or result.grpc_status == 0

        support.wait_for(parks_again, timeout=15, interval=0.2, what="a poll admitted after the resets")
    finally:
        first.close()
        second.close()
    # Closing the connections frees the rest: a normal consumer polls again.
    stubs = Stubs(server.channel())
    support.wait_for(lambda: _fetch_answers(stubs), timeout=15, what="a FetchTask admitted again")


def _fetch_answers(stubs: Stubs) -> bool:
    try:
        stubs.consumer.FetchTask(support.tasks_pb2.FetchTaskRequest(wait_ms=0), timeout=5)
        return True
    except grpc.RpcError as error:
        assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, error
        return False


def test_watches_are_capped_per_connection_and_in_total(server_factory):
    server = server_factory("--max-watches-per-connection", "2", "--max-watches", "3")
    stubs = Stubs(server.channel())
    task = stubs.tasks.CreateTask(support.create_request(), timeout=10)
    request = frame(field(1, task.task_id.encode()))
    first, second = RawH2(server.port), RawH2(server.port)
    try:
        sids = [first.request(WATCH, request) for _ in range(3)]
        refused = first.wait(sids[-1], timeout=15)
        assert refused.grpc_status == RESOURCE_EXHAUSTED, refused
        assert "WatchTask streams" in refused.grpc_message
        assert first.wait_until(lambda: all(first.streams[s].data for s in sids[:2]), timeout=15)
        assert not any(first.streams[s].finished for s in sids[:2])
        admitted = second.request(WATCH, request)
        over_total = second.request(WATCH, request)
        refused = second.wait(over_total, timeout=15)
        assert refused.grpc_status == RESOURCE_EXHAUSTED, refused
        assert "the server has 3" in refused.grpc_message
        assert not second.streams[admitted].finished
        assert_normal_client_served(server)
    finally:
        first.close()
        second.close()


def test_hostile_flag_values_are_refused_at_start_with_a_message():
    cases = [
        (["serve", "--threads", "99999999999"], "--threads must be between 1 and 1024"),
        (["serve", "--retention-hours", "nan"], "--retention-hours must be above 0"),
        (["serve", "--retention-hours", "1e300"], "--retention-hours must be above 0"),
        (["serve", "--lease-ms", "9223372036854775807"], "--lease-ms must be between 1 and 2592000000"),
        (["serve", "--max-message-bytes", "9223372036854775807"], "--max-message-bytes must be between"),
        (["serve", "--max-watches", "0"], "--max-watches must be between 1 and 1000000"),
        (["worker", "--engine", "http://127.0.0.1:1", "--engine-timeout-ms", "9223372036854775807"],
         "--engine-timeout-ms must be between"),
        (["worker", "--engine", "http://127.0.0.1:1", "--concurrency", "99999999999"], "--concurrency must be between"),
        (["process", "--source", "a", "--target", "b", "--timeout", "99999999999999"], "--timeout must be between"),
    ]
    for argv, message in cases:
        done = subprocess.run([str(support.BINARY), *argv], capture_output=True, text=True, timeout=30)
        assert done.returncode not in (0, -4, -5, -6, -11), (argv, done.returncode, done.stderr)  # no trap
        assert message in done.stderr, (argv, done.stderr)


def test_health_is_not_serving_while_another_process_holds_the_sqlite_lock(server_factory):
    server = server_factory()
    health = Stubs(server.channel()).health
    database = server.tmpdir / "data" / "tasks.db"

    def status() -> int:
        return health.Check(hpb.HealthCheckRequest(service=""), timeout=10).status

    assert status() == hpb.HealthCheckResponse.SERVING
    intruder = sqlite3.connect(database, isolation_level=None, timeout=30)
    try:
        intruder.execute("BEGIN EXCLUSIVE")
        # Writes fail after the 5 s busy timeout; the lease sweep's transaction finds out
        # even with no client writing.
        support.wait_for(lambda: status() == hpb.HealthCheckResponse.NOT_SERVING, timeout=30,
                         interval=0.5, what="NOT_SERVING while the database is locked")
        with httpx.Client(base_url=f"http://{server.address}", timeout=30, trust_env=False) as http:
            assert http.get("/health").status_code == 503
        try:
            Stubs(server.channel()).tasks.CreateTask(support.create_request(), timeout=20)
            raise AssertionError("a write succeeded while the database was locked")
        except grpc.RpcError as error:
            assert error.code() == grpc.StatusCode.UNAVAILABLE, error
            assert "database is locked" in error.details(), error.details()
    finally:
        intruder.execute("ROLLBACK")
        intruder.close()
    support.wait_for(lambda: status() == hpb.HealthCheckResponse.SERVING, timeout=30, interval=0.5,
                     what="SERVING again once the lock is released")
    assert_normal_client_served(server)


def test_interop_payload_sizes_are_clamped(server_factory):
    if support.messages_pb2 is None:
        pytest.skip("grpc.testing stubs not generated")
    server = server_factory("--enable-interop-testing")
    baseline = warmed_up_baseline(server)
    channel = server.channel([("grpc.max_receive_message_length", 64 * 1024 * 1024)])
    stub = support.test_pb2_grpc.TestServiceStub(channel)
    # Int32.max would be a 2 GiB allocation; the server sends its 4 MiB maximum instead.
    answer = stub.UnaryCall(support.messages_pb2.SimpleRequest(response_size=2**31 - 1), timeout=30)
    assert len(answer.payload.body) == 4 * 1024 * 1024
    assert_normal_client_served(server)
    assert_rss_back(server, baseline, "interop response_size Int32.max", bound_mib=32)
