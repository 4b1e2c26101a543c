"""gRPC-over-HTTP/2 rules checked frame by frame with hyper-h2 over a plain loopback socket
(h2c, prior knowledge): the cases a well-behaved client like grpcio never produces."""

from __future__ import annotations

import gzip
import socket
import struct
import time

import grpc
import pytest

from support import (RawH2, Stubs, create_request, frame, messages_pb2, pct_decode, tasks_pb2 as pb,
                     unframe)

CREATE = "/swapline.v1.TaskService/CreateTask"
GET = "/swapline.v1.TaskService/GetTask"
FETCH = "/swapline.v1.ConsumerService/FetchTask"
WATCH = "/swapline.v1.TaskService/WatchTask"

OK, CANCELLED, UNKNOWN, INVALID_ARGUMENT, DEADLINE_EXCEEDED = 0, 1, 2, 3, 4
NOT_FOUND, RESOURCE_EXHAUSTED, UNIMPLEMENTED, INTERNAL = 5, 8, 12, 13
MiB = 1024 * 1024


@pytest.fixture
def h2c(server):
    conn = RawH2(server.port)
    yield conn
    conn.close()


def create_body(**kw) -> bytes:
    return frame(create_request(**kw).SerializeToString())


def assert_trailers_only(st, status: int):
    assert st.is_trailers_only(), f"expected a Trailers-Only response: {st!r}"
    h = st.headers
    assert h.get(":status") == "200", st
    assert h.get("content-type", "").startswith("application/grpc"), st
    assert h.get("grpc-status") == str(status), st
    assert st.ended and st.reset_code in (None, 0), st


def assert_no_task_queued(server):
    resp = Stubs(server.channel()).consumer.FetchTask(pb.FetchTaskRequest(wait_ms=0), timeout=10)
    assert not resp.HasField("task"), f"a failed call left a task behind: {resp.task}"


# ---------------------------------------------------------------------------------------------
# Response shape
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("content_type", ["application/grpc", "application/grpc+proto"])
def test_successful_unary_response_shape(h2c, content_type):
    st = h2c.wait(h2c.request(CREATE, create_body(), content_type=content_type))
    assert len(st.header_blocks) == 2, st
    headers, headers_end = st.header_blocks[0]
    trailers, trailers_end = st.header_blocks[1]
    h, t = dict(headers), dict(trailers)
    assert h[":status"] == "200"
    assert h["content-type"].startswith("application/grpc")
    assert not headers_end and "grpc-status" not in h
    assert t.get("grpc-status") == "0" and trailers_end
    msgs = unframe(st.data)
    assert len(msgs) == 1
    task = pb.Task.FromString(msgs[0])
    assert task.task_id.startswith("task_")
    assert task.status == pb.TASK_STATUS_PENDING


def test_handler_error_is_trailers_only(h2c):
    st = h2c.wait(h2c.request(GET, frame(pb.GetTaskRequest(task_id="task_nope").SerializeToString())))
    assert_trailers_only(st, NOT_FOUND)


def test_validation_error_is_trailers_only_with_message(h2c):
    body = create_body(params=pb.FaceSwapParams(source_url="nope", target_url="https://e.com/t"))
    st = h2c.wait(h2c.request(CREATE, body))
    assert_trailers_only(st, INVALID_ARGUMENT)
    assert "source_url" in st.grpc_message


def test_many_concurrent_streams_on_one_connection(h2c):
    sids = [h2c.request(CREATE, create_body()) for _ in range(50)]
    ids = set()
    for sid in sids:
        st = h2c.wait(sid)
        assert st.grpc_status == OK, st
        ids.add(pb.Task.FromString(unframe(st.data)[0]).task_id)
    assert len(ids) == 50


# ---------------------------------------------------------------------------------------------
# Content type, compression, size limits
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("content_type", ["application/json", "text/plain", None])
def test_non_grpc_content_type_is_http_415(h2c, server, content_type):
    st = h2c.wait(h2c.request(CREATE, create_body(), content_type=content_type))
    assert st.http_status == 415, st
    assert_no_task_queued(server)


def test_compressed_message_with_unsupported_encoding_is_unimplemented(h2c, server):
    message = gzip.compress(create_request().SerializeToString())
    st = h2c.wait(h2c.request(CREATE, frame(message, compressed=True),
                              extra=[("grpc-encoding", "gzip")]))
    assert st.grpc_status == UNIMPLEMENTED, st
    assert_no_task_queued(server)


def test_compressed_flag_without_encoding_is_refused(h2c, server):
    st = h2c.wait(h2c.request(CREATE, frame(create_request().SerializeToString(), compressed=True)))
    assert st.grpc_status in (UNIMPLEMENTED, INTERNAL), st
    assert_no_task_queued(server)


def test_identity_encoding_is_accepted(h2c):
    st = h2c.wait(h2c.request(CREATE, create_body(), extra=[("grpc-encoding", "identity")]))
    assert st.grpc_status == OK, st


@pytest.mark.parametrize("declared", [5 * MiB, 4 * MiB + 1], ids=["5MiB", "4MiB+1"])
def test_oversized_declared_length_is_refused_from_the_prefix(h2c, declared):
    sid = h2c.start(CREATE)
    # Only the 5-byte prefix: the server must refuse without waiting for the body.
    h2c.send(sid, struct.pack(">BI", 0, declared))
    t0 = time.monotonic()
    st = h2c.wait(sid, timeout=5)
    assert time.monotonic() - t0 < 5
    assert st.grpc_status == RESOURCE_EXHAUSTED, st
    # The connection stays usable.
    ok = h2c.wait(h2c.request(CREATE, create_body()))
    assert ok.grpc_status == OK, ok


# ---------------------------------------------------------------------------------------------
# Unary cardinality, malformed input, routing
# ---------------------------------------------------------------------------------------------


def test_unary_with_zero_messages_is_unimplemented(h2c):
    st = h2c.wait(h2c.request(CREATE, None))
    assert st.grpc_status == UNIMPLEMENTED, st


def test_unary_with_empty_data_frame_is_unimplemented(h2c):
    st = h2c.wait(h2c.request(CREATE, b""))
    assert st.grpc_status == UNIMPLEMENTED, st


def test_unary_with_two_messages_in_one_frame_is_unimplemented(h2c, server):
    st = h2c.wait(h2c.request(CREATE, create_body() + create_body()))
    assert st.grpc_status == UNIMPLEMENTED, st
    assert_no_task_queued(server)


def test_unary_with_two_messages_in_two_frames_is_unimplemented(h2c, server):
    sid = h2c.start(CREATE)
    h2c.send(sid, create_body())
    time.sleep(0.2)
    h2c.send(sid, create_body(), end_stream=True)
    st = h2c.wait(sid)
    assert st.grpc_status == UNIMPLEMENTED, st
    assert_no_task_queued(server)


@pytest.mark.parametrize("garbage", [b"\xff\xff\xff\xff\xff", b"\x0a\x05ab", b"\x08",
                                     b"\x12\x80\x80\x80\x80\x10"],
                         ids=["bad-tag", "short-bytes", "short-varint", "huge-length"])
def test_malformed_protobuf_is_an_error_not_a_crash(h2c, garbage):
    st = h2c.wait(h2c.request(CREATE, frame(garbage)))
    assert st.grpc_status in (INVALID_ARGUMENT, INTERNAL), st
    ok = h2c.wait(h2c.request(CREATE, create_body()))
    assert ok.grpc_status == OK, ok


def test_truncated_message_is_an_error(h2c):
    st = h2c.wait(h2c.request(CREATE, struct.pack(">BI", 0, 10) + b"abc"))
    assert st.grpc_status not in (None, OK), st


@pytest.mark.parametrize("path", ["/swapline.v1.TaskService/NoSuchMethod",
                                  "/swapline.v1.NoSuchService/CreateTask",
                                  "/no.such.Service/Call", "/grpc.testing.TestService/EmptyCall"])
def test_unknown_method_or_service_is_unimplemented(h2c, path):
    # grpc.testing is only served with --enable-interop-testing
    st = h2c.wait(h2c.request(path, frame(b"")))
    assert_trailers_only(st, UNIMPLEMENTED)


# ---------------------------------------------------------------------------------------------
# Deadlines and cancellation
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("timeout,seconds", [("300m", 0.3), ("300000u", 0.3),
                                             ("99999999n", 0.1), ("1S", 1.0)])
def test_grpc_timeout_ends_a_long_poll_with_deadline_exceeded(h2c, timeout, seconds):
    # TimeoutValue is at most 8 digits (PROTOCOL-HTTP2.md).
    body = frame(pb.FetchTaskRequest(wait_ms=20_000).SerializeToString())
    t0 = time.monotonic()
    st = h2c.wait(h2c.request(FETCH, body, extra=[("grpc-timeout", timeout)]), timeout=10)
    elapsed = time.monotonic() - t0
    assert st.grpc_status == DEADLINE_EXCEEDED, st
    assert seconds * 0.8 <= elapsed < seconds + 3.0, elapsed


def test_long_grpc_timeout_does_not_fire_early(h2c):
    body = frame(pb.FetchTaskRequest(wait_ms=600).SerializeToString())
    st = h2c.wait(h2c.request(FETCH, body, extra=[("grpc-timeout", "1M")]), timeout=10)
    assert st.grpc_status == OK, st
    resp = pb.FetchTaskResponse.FromString(unframe(st.data)[0])
    assert not resp.HasField("task")


def test_rst_stream_cancels_a_long_poll_and_the_task_is_not_lost(h2c, server):
    sid = h2c.request(FETCH, frame(pb.FetchTaskRequest(wait_ms=20_000).SerializeToString()))
    time.sleep(0.3)
    h2c.reset(sid)
    time.sleep(0.3)
    stubs = Stubs(server.channel())
    task = stubs.tasks.CreateTask(create_request(), timeout=10)
    resp = stubs.consumer.FetchTask(pb.FetchTaskRequest(wait_ms=2000), timeout=10)
    assert resp.task.task_id == task.task_id
    assert resp.task.attempt == 1


def test_rst_in_the_same_batch_as_the_task_arrival_does_not_lose_it(h2c, server):
    # The CreateTask that wakes the long-poll and the RST_STREAM that cancels it arrive in one
    # TCP write, so the hand-out is decided and cancelled before anything is written back.
    stubs = Stubs(server.channel())
    for _ in range(10):
        fetch_sid = h2c.request(FETCH, frame(pb.FetchTaskRequest(wait_ms=20_000).SerializeToString()))
        time.sleep(0.2)
        create_sid = h2c.start(CREATE)
        h2c.send(create_sid, create_body(), end_stream=True, flush=False)
        h2c.conn.reset_stream(fetch_sid, error_code=8)
        h2c.flush()
        created = h2c.wait(create_sid)
        assert created.grpc_status == OK, created
        task_id = pb.Task.FromString(unframe(created.data)[0]).task_id
        # Give any frames the server wrote for the cancelled stream time to arrive.
        h2c.wait_until(lambda: False, timeout=0.2)
        written = [f for f in h2c.frames_on(fetch_sid) if f[0] in (0x0, 0x1)]  # DATA, HEADERS
        resp = stubs.consumer.FetchTask(pb.FetchTaskRequest(wait_ms=3000), timeout=10)
        if written:
            continue  # the response was written before the RST was read: delivered, not lost
        assert resp.task.task_id == task_id, (
            "task handed to a stream cancelled before its response was written is lost: "
            f"status {pb.TaskStatus.Name(stubs.tasks.GetTask(pb.GetTaskRequest(task_id=task_id), timeout=10).status)}")


def test_slow_reader_gets_coalesced_watch_events(server):
    # A watcher whose stream window is 0 cannot receive anything; the scheduler must not wait
    # for it, and when it finally reads it gets the latest state rather than a backlog.
    import h2.settings

    slow = RawH2(server.port, settings={h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 0},
                 auto_window=False)
    try:
        stubs = Stubs(server.channel())
        task = stubs.tasks.CreateTask(create_request(), timeout=10)
        sid = slow.request(WATCH, frame(pb.WatchTaskRequest(task_id=task.task_id).SerializeToString()))
        slow.wait_until(lambda: slow.streams[sid].header_blocks, timeout=2)
        resp = stubs.consumer.FetchTask(pb.FetchTaskRequest(), timeout=10)
        n = 1000
        t0 = time.monotonic()
        for i in range(n):
            stubs.consumer.UpdateStatus(pb.UpdateStatusRequest(
                task_id=task.task_id, lease_id=resp.lease_id, status=pb.TASK_STATUS_PROCESSING,
                progress=(i + 1) / (n + 1)), timeout=10)
        stubs.consumer.UpdateStatus(pb.UpdateStatusRequest(
            task_id=task.task_id, lease_id=resp.lease_id, status=pb.TASK_STATUS_COMPLETED,
            result=pb.TaskResult(output_url="https://e.com/o.jpg")), timeout=10)
        assert time.monotonic() - t0 < 60
        # Now open the windows and read everything.
        slow.auto_window = True
        slow.conn.increment_flow_control_window(8 * MiB)
        slow.conn.increment_flow_control_window(8 * MiB, stream_id=sid)
        slow.flush()
        st = slow.wait(sid, timeout=10)
    finally:
        slow.close()
    assert st.grpc_status == OK, st
    events = [pb.TaskEvent.FromString(m) for m in unframe(st.data)]
    assert events, st
    assert events[-1].task.status == pb.TASK_STATUS_COMPLETED
    seqs = [e.sequence for e in events]
    assert all(a < b for a, b in zip(seqs, seqs[1:])), seqs
    assert len(events) < n // 2, f"{len(events)} events buffered for a stalled watcher"


def test_garbage_after_preface_closes_only_that_connection(server):
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=5)
    try:
        sock.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00\x00\x04\xff\x00\x00\x00\x00\x00garb" * 4)
        deadline = time.monotonic() + 5
        closed = False
        while time.monotonic() < deadline:
            try:
                if not sock.recv(65536):
                    closed = True
                    break
            except socket.timeout:
                continue
            except ConnectionResetError:
                closed = True
                break
        assert closed, "server kept a connection with a broken frame stream open"
    finally:
        sock.close()
    stubs = Stubs(server.channel())
    assert stubs.tasks.CreateTask(create_request(), timeout=10).task_id.startswith("task_")


# ---------------------------------------------------------------------------------------------
# grpc-message percent-encoding (needs the interop TestService to choose the message)
# ---------------------------------------------------------------------------------------------

SPECIAL = "\t\ntest with whitespace\r\nand Unicode BMP ☺ and non-BMP 😈\t\n"


@pytest.mark.parametrize("message", [SPECIAL, "100% done, 50%25 left"], ids=["special", "percent"])
def test_grpc_message_is_percent_encoded(interop_server, message):
    if messages_pb2 is None:
        pytest.fail("proto/grpc/testing/messages.proto is missing")
    conn = RawH2(interop_server.port)
    try:
        req = messages_pb2.SimpleRequest(
            response_status=messages_pb2.EchoStatus(code=UNKNOWN, message=message))
        st = conn.wait(conn.request("/grpc.testing.TestService/UnaryCall",
                                    frame(req.SerializeToString())))
    finally:
        conn.close()
    assert st.grpc_status == UNKNOWN, st
    raw = st.trailers.get("grpc-message")
    assert raw is not None, st
    assert all(0x20 <= ord(c) <= 0x7E for c in raw), f"unencoded bytes in {raw!r}"
    i = raw.find("%")
    while i != -1:  # every '%' starts an escape
        assert len(raw) >= i + 3 and all(c in "0123456789abcdefABCDEF" for c in raw[i + 1:i + 3]), raw
        i = raw.find("%", i + 3)
    assert pct_decode(raw) == message
