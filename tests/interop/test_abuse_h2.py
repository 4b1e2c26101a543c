"""Hostile and slow HTTP/2 clients (docs/security.md, "Connections and HTTP/2"): raw h2,
hyperframe and socket clients break the protocol's rules or its spirit, and after each case a
normal grpcio client must be served and the server's RSS come back within the stated bound.

The servers run with short timeouts (flags below) so that each case ends in seconds; the
waits are generous multiples of them for a slow shared machine.
"""

from __future__ import annotations

import socket
import struct
import time

import grpc
import h2.config
import h2.connection
import h2.settings
import hpack
import pytest
from hyperframe.frame import (ContinuationFrame, DataFrame, HeadersFrame, PingFrame,
                              SettingsFrame)

import support
from abuse import assert_normal_client_served, assert_rss_back, server_rss
from support import HOST, RawH2, Stubs

# Timeouts short enough for tests; the watchdog checks every quarter of the shortest.
SHORT_TIMEOUTS = ("--preface-timeout-ms", "1000", "--header-timeout-ms", "1000",
                  "--body-timeout-ms", "1000", "--send-timeout-ms", "2000")
# How long a case waits for the server to act on a 1-2 s timeout.
SLACK_S = 8.0
# RSS allowance after a case. Every case here holds well under a MiB once it is over (they
# measured +0.1 to +0.8 MiB); 16 MiB leaves room for glibc keeping freed memory, and is half
# of what one connection could pin if the 32 MiB output bound did not hold.
RSS_BOUND_MIB = 16

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
CREATE_TASK = "/swapline.v1.TaskService/CreateTask"
WATCH_TASK = "/swapline.v1.TaskService/WatchTask"
GET_TASK = "/swapline.v1.TaskService/GetTask"


@pytest.fixture
def server(server_factory):
    srv = server_factory(*SHORT_TIMEOUTS)
    assert_normal_client_served(srv)  # warm-up before the baseline
    srv.baseline = server_rss(srv)
    return srv


def framed(message) -> bytes:
    body = message.SerializeToString()
    return struct.pack(">BI", 0, len(body)) + body


def raw_connection(port: int) -> socket.socket:
    """A socket that has sent the preface and an empty SETTINGS frame."""
    sock = socket.create_connection((HOST, port), timeout=10)
    sock.sendall(PREFACE + SettingsFrame(0).serialize())
    return sock


def request_headers(path: str, extra=()) -> list[tuple[str, str]]:
    return [(":method", "POST"), (":scheme", "http"), (":path", path), (":authority", HOST),
            ("content-type", "application/grpc"), ("te", "trailers"), *extra]


def closed_within(sock: socket.socket, seconds: float) -> bool:
    """Reads (and drops) whatever arrives until EOF or reset; False if still open after."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        sock.settimeout(max(0.05, deadline - time.monotonic()))
        try:
            if not sock.recv(1 << 20):
                return True
        except socket.timeout:
            return False
        except (ConnectionResetError, BrokenPipeError):
            return True
    return False


def send_ignoring_reset(sock: socket.socket, data: bytes) -> bool:
    """Sends `data`; False when the server has already closed the connection."""
    try:
        sock.sendall(data)
        return True
    except (ConnectionResetError, BrokenPipeError):
        return False


def assert_connection_serves_on(client: RawH2) -> None:
    """The abused connection itself still answers a call."""
    again = client.request(CREATE_TASK, framed(support.create_request()))
    assert client.wait(again).grpc_status == 0


def check_served(server, label: str) -> None:
    assert_normal_client_served(server)
    assert_rss_back(server, server.baseline, label, bound_mib=RSS_BOUND_MIB)


def created_task_id(server) -> str:
    channel = server.channel()
    return support.Stubs(channel).tasks.CreateTask(support.create_request(), timeout=5).task_id


def test_slowloris_preface(server):
    socks = [socket.create_connection((HOST, server.port), timeout=10) for _ in range(50)]
    for sock in socks:
        sock.sendall(PREFACE[:10])  # part of the preface, then nothing
    assert all(closed_within(sock, SLACK_S) for sock in socks)
    for sock in socks:
        sock.close()
    check_served(server, "slowloris on the preface")


def test_slowloris_header_block(server):
    sock = raw_connection(server.port)
    block = hpack.Encoder().encode(request_headers(CREATE_TASK))
    headers = HeadersFrame(1, block[:5])  # no END_HEADERS, and no CONTINUATION follows
    sock.sendall(headers.serialize())
    assert closed_within(sock, SLACK_S)
    sock.close()
    check_served(server, "slowloris on a header block")


def test_slowloris_request_body(server):
    client = RawH2(server.port)
    sid = client.start(CREATE_TASK)
    client.send(sid, framed(support.create_request())[:8])  # part of the message, then nothing
    result = client.wait(sid, timeout=SLACK_S)
    assert result.grpc_status == 4  # DEADLINE_EXCEEDED, saying why
    assert "stalled" in result.trailers.get("grpc-message", "")
    assert_connection_serves_on(client)
    client.close()
    check_served(server, "slowloris on a request body")


def test_padded_request_body_beyond_the_windows_is_answered(server):
    # The windows reopen as the handler takes the bytes, padding included: 3 MiB in padded
    # frames through 1 MiB windows does not stall.
    client = RawH2(server.port)
    sid = client.start(CREATE_TASK)
    body = struct.pack(">BI", 0, 3 << 20) + b"\x00" * (3 << 20)
    view = memoryview(body)
    while view:
        while client.conn.local_flow_control_window(sid) < 16 * 1024:
            assert client.pump(SLACK_S), "the request stalled: a window was not reopened"
        chunk, view = view[:10_000], view[10_000:]
        client.conn.send_data(sid, bytes(chunk), end_stream=not view, pad_length=200)
        client.flush()
    result = client.wait(sid, timeout=SLACK_S)
    assert result.grpc_status == 3  # INVALID_ARGUMENT: the zeros are no CreateTaskRequest
    client.close()
    check_served(server, "3 MiB request body in padded frames")


def test_window_zero_reader_is_closed(server):
    client = RawH2(server.port, settings={h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 0},
                   auto_window=False)
    sid = client.request(CREATE_TASK, framed(support.create_request()))
    assert client.wait_until(lambda: client.closed or client.goaway is not None, timeout=SLACK_S)
    assert client.streams[sid].data == b""  # the response body never had a window
    client.close()
    check_served(server, "reader with window 0")


def test_non_reading_client_with_many_streams_and_a_watch(server):
    task_id = created_task_id(server)
    cfg = h2.config.H2Configuration(client_side=True, header_encoding="utf-8")
    conn = h2.connection.H2Connection(config=cfg)
    conn.initiate_connection()
    # Window 0 as well: every response waits in the server, not in the kernel's buffers.
    conn.update_settings({h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 0})
    sock = socket.create_connection((HOST, server.port), timeout=10)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    watch = support.tasks_pb2.WatchTaskRequest(task_id=task_id)
    get = support.tasks_pb2.GetTaskRequest(task_id=task_id)
    for index in range(200):
        sid = conn.get_next_available_stream_id()
        conn.send_headers(sid, request_headers(WATCH_TASK if index == 0 else GET_TASK))
        conn.send_data(sid, framed(watch if index == 0 else get), end_stream=True)
    sock.sendall(conn.data_to_send())  # and never read
    time.sleep(4 * 2.0)  # past the send timeout
    check_served(server, "non-reading client with 200 streams and a WatchTask")
    assert closed_within(sock, SLACK_S), "the non-reading connection was kept open"
    sock.close()


def test_rapid_reset_of_thousands_of_streams(server):
    client = RawH2(server.port)
    for _ in range(5000):
        sid = client.start(GET_TASK)
        client.conn.reset_stream(sid, error_code=8)
        if sid % 200 == 1:
            try:
                client.flush()
            except (ConnectionResetError, BrokenPipeError):
                break
    try:
        client.flush()
    except (ConnectionResetError, BrokenPipeError):
        pass
    # nghttp2's rapid-reset limit (1000, then 33/s) ends the connection with GOAWAY.
    assert client.wait_until(lambda: client.closed or client.goaway is not None, timeout=SLACK_S)
    client.sock.close()
    check_served(server, "rapid reset of 5000 streams")


@pytest.mark.parametrize("frame", ["settings", "ping"])
def test_control_frame_flood_from_a_reading_peer(server, frame):
    sock = raw_connection(server.port)
    one = (SettingsFrame(0, settings={0x3: 100}) if frame == "settings"
           else PingFrame(0, opaque_data=b"12345678")).serialize()
    for _ in range(50):
        if not send_ignoring_reset(sock, one * 2000):
            break
        sock.setblocking(False)
        try:
            while sock.recv(1 << 20):  # reads every ACK that has arrived
                pass
        except (BlockingIOError, ConnectionResetError):
            pass
        sock.setblocking(True)
    sock.close()
    check_served(server, f"{frame} flood, 100,000 frames, reading peer")


@pytest.mark.parametrize("frame", ["settings", "ping"])
def test_control_frame_flood_from_a_non_reading_peer(server, frame):
    sock = raw_connection(server.port)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    one = (SettingsFrame(0, settings={0x3: 100}) if frame == "settings"
           else PingFrame(0, opaque_data=b"12345678")).serialize()
    sent = 0
    sock.settimeout(SLACK_S)
    for _ in range(100):
        try:
            if not send_ignoring_reset(sock, one * 2000):
                break
        except socket.timeout:
            break  # the server stopped reading: it is closing or has stopped us
        sent += 2000
    print(f"[flood] {frame}: {sent} frames sent before the server stopped taking them")
    # Unanswered ACKs past 1000 make nghttp2 fail the session; otherwise the send timeout.
    assert closed_within(sock, SLACK_S + 4)
    sock.close()
    check_served(server, f"{frame} flood from a non-reading peer")


def test_continuation_flood(server):
    sock = raw_connection(server.port)
    block = hpack.Encoder().encode(request_headers(CREATE_TASK))
    frames = [HeadersFrame(1, block).serialize()]
    filler = b"\x82" * 1000  # `:method: GET`, again and again
    for _ in range(1000):
        frames.append(ContinuationFrame(1, filler).serialize())
    send_ignoring_reset(sock, b"".join(frames))
    assert closed_within(sock, SLACK_S)
    sock.close()
    check_served(server, "CONTINUATION flood")


def test_header_field_over_64_kib(server):
    client = RawH2(server.port)
    sid = client.start(CREATE_TASK, extra=[("x-huge", "a" * (70 * 1024))])
    client.send(sid, framed(support.create_request()), end_stream=True)
    client.wait_until(lambda: client.streams[sid].reset_code is not None, timeout=SLACK_S)
    assert client.streams[sid].reset_code == 2  # INTERNAL_ERROR: over the header list limit
    assert_connection_serves_on(client)
    client.close()
    check_served(server, "a 70 KiB header field")


def test_empty_data_frame_flood(server):
    sock = raw_connection(server.port)
    block = hpack.Encoder().encode(request_headers(CREATE_TASK))
    sock.sendall(HeadersFrame(1, block, flags=["END_HEADERS"]).serialize())
    empty = DataFrame(1, b"").serialize()
    for _ in range(50):
        if not send_ignoring_reset(sock, empty * 2000):  # 100,000 in all
            break
    assert closed_within(sock, SLACK_S)
    sock.close()
    check_served(server, "100,000 empty DATA frames")


def test_connection_flood_past_the_limit(server_factory):
    server = server_factory(*SHORT_TIMEOUTS, "--max-connections", "20")
    assert_normal_client_served(server)
    baseline = server_rss(server)
    existing = RawH2(server.port)
    first = existing.request(CREATE_TASK, framed(support.create_request()))
    assert existing.wait(first).grpc_status == 0
    flood = []
    for _ in range(300):
        try:
            flood.append(raw_connection(server.port))
        except OSError:
            pass
    time.sleep(0.5)
    refused = sum(1 for sock in flood if closed_within(sock, 0.2))
    print(f"[connections] {refused} of {len(flood)} flooding connections refused")
    assert refused >= len(flood) - 19
    # The connection that was there before is still served.
    again = existing.request(CREATE_TASK, framed(support.create_request()))
    assert existing.wait(again).grpc_status == 0
    for sock in flood:
        sock.close()
    existing.close()
    time.sleep(0.5)  # the closed connections leave the count
    assert_normal_client_served(server)
    assert_rss_back(server, baseline, "connection flood past --max-connections 20",
                    bound_mib=RSS_BOUND_MIB)


def test_the_server_maximum_ends_a_unary_call_that_has_no_deadline(server_factory):
    """grpcio without a timeout sends no grpc-timeout: a FetchTask long poll of 20 s ends at
    --max-unary-deadline-ms (checked once a second on the call's event loop)."""
    server = server_factory("--max-unary-deadline-ms", "1000", "--max-wait-ms", "30000")
    stubs = Stubs(server.channel())
    started = time.monotonic()
    with pytest.raises(grpc.RpcError) as ended:
        stubs.consumer.FetchTask(support.tasks_pb2.FetchTaskRequest(consumer_id="c", wait_ms=20_000))
    elapsed = time.monotonic() - started
    assert ended.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED, ended.value
    assert 0.9 < elapsed < 6, f"ended after {elapsed:.1f}s"
