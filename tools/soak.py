"""Soak test of issue 11: normal gRPC clients keep working while hostile clients attack.

Starts one `swapline serve` (the binary of $SWAPLINE_BIN) on a free loopback port, runs normal
traffic (stock grpcio clients doing CreateTask + GetTask in a loop) for a quiet phase, then the
same traffic for an equal phase while every abuse case below runs in parallel, and prints for
each phase the normal clients' call count, error count and latency percentiles, plus the
server's RSS. Exits non-zero when a normal call failed during either phase or the server died.

Abuse run in parallel (each in its own thread, looping until the phase ends):
  slowloris-h2     connections that send half an HTTP/2 preface and then nothing
  slowloris-http1  connections that send a request head one byte per second
  stalled-body     HTTP/2 streams whose request body never finishes
  rapid-reset      HEADERS + RST_STREAM for thousands of streams
  non-reader       WatchTask and GetTask streams on a connection with a zero window that
                   never reads
  ping-flood       PING and SETTINGS frames from a peer that never reads
  big-decode       CreateTask requests with a 3 MiB `options` map of empty entries
  conn-churn       connections opened and closed as fast as possible
  create-flood     CreateTask as fast as one client can (the per-client quotas answer it)

The server checks tokens: every normal client and the abusers (one token between them) are
`client`s with tokens of their own, so per-client quotas keep apart what they would share
per address on loopback.

Usage: tools/soak.sh [--seconds N] [--clients N]   (see tools/soak.sh)
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import socket
import statistics
import struct
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "interop"))

import grpc  # noqa: E402

import abuse  # noqa: E402
import support  # noqa: E402
from support import HOST, Stubs, SwaplineServer  # noqa: E402

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


def frame(ftype: int, flags: int, sid: int, payload: bytes = b"") -> bytes:
    return struct.pack(">I", len(payload))[1:] + bytes([ftype, flags]) + struct.pack(">I", sid) + payload


def settings(pairs: dict[int, int]) -> bytes:
    return frame(4, 0, 0, b"".join(struct.pack(">HI", k, v) for k, v in pairs.items()))


ABUSER_TOKEN = "soak-abuser-" + secrets.token_hex(16)


def headers_block(path: str, end_stream: bool, sid: int) -> bytes:
    import hpack

    block = hpack.Encoder().encode([
        (":method", "POST"), (":scheme", "http"), (":path", path), (":authority", HOST),
        ("content-type", "application/grpc"), ("te", "trailers"),
        ("authorization", f"Bearer {ABUSER_TOKEN}")])
    return frame(1, 0x4 | (0x1 if end_stream else 0), sid, block)


def grpc_frame(message: bytes) -> bytes:
    return struct.pack(">BI", 0, len(message)) + message


class Phase:
    """Normal traffic for one phase: latencies and errors of every call."""

    def __init__(self) -> None:
        self.latencies: list[float] = []
        self.errors: list[str] = []
        self.lock = threading.Lock()

    def record(self, seconds: float | None, error: str | None = None) -> None:
        with self.lock:
            if error is not None:
                self.errors.append(error)
            else:
                self.latencies.append(seconds or 0.0)

    def summary(self, name: str) -> str:
        lat = sorted(self.latencies)
        if not lat:
            return f"{name}: no successful calls, {len(self.errors)} errors"

        def pct(p: float) -> float:
            return lat[min(len(lat) - 1, int(p * len(lat)))] * 1000

        return (f"{name}: {len(lat)} calls, {len(self.errors)} errors, "
                f"p50 {pct(0.50):.1f} ms, p99 {pct(0.99):.1f} ms, max {lat[-1] * 1000:.1f} ms, "
                f"mean {statistics.fmean(lat) * 1000:.1f} ms")


def normal_client(server: SwaplineServer, token: str, rate: float, phase: Phase, stop: threading.Event) -> None:
    """CreateTask + GetTask `rate` times a second: a client within the server's quotas."""
    channel = grpc.insecure_channel(server.address, options=support.CHANNEL_OPTIONS)
    stubs = Stubs(channel)
    auth = [("authorization", f"Bearer {token}")]
    next_call = time.monotonic()
    try:
        while not stop.wait(max(0.0, next_call - time.monotonic())):
            next_call += 1 / rate
            started = time.monotonic()
            try:
                created = stubs.tasks.CreateTask(support.create_request(), timeout=10, metadata=auth)
                stubs.tasks.GetTask(
                    support.tasks_pb2.GetTaskRequest(task_id=created.task_id), timeout=10, metadata=auth)
                phase.record(time.monotonic() - started)
            except grpc.RpcError as error:
                phase.record(None, f"{error.code().name}: {error.details()}")
            except Exception as error:  # noqa: BLE001 - every failure of a normal call counts
                phase.record(None, f"{type(error).__name__}: {error}")
    finally:
        channel.close()


# -- abuse cases: each loops until `stop` is set and never raises ------------------------------

def connect(port: int) -> socket.socket | None:
    try:
        sock = socket.create_connection((HOST, port), timeout=5)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        return sock
    except OSError:
        return None


def slowloris_h2(port: int, stop: threading.Event) -> None:
    held: list[socket.socket] = []
    while not stop.is_set():
        if len(held) < 50 and (sock := connect(port)):
            try:
                sock.sendall(PREFACE[:10])
                held.append(sock)
            except OSError:
                sock.close()
        stop.wait(0.05)
    for sock in held:
        sock.close()


def slowloris_http1(port: int, stop: threading.Event) -> None:
    head = b"POST /api/face-swap/tasks HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 10\r\n"
    held: list[tuple[socket.socket, int]] = []
    while not stop.is_set():
        if len(held) < 50 and (sock := connect(port)):
            held.append((sock, 0))
        still = []
        for sock, sent in held:
            try:
                sock.sendall(head[sent:sent + 1] if sent < len(head) else b"x")
                still.append((sock, sent + 1))
            except OSError:
                sock.close()
        held = still
        stop.wait(1.0)
    for sock, _ in held:
        sock.close()


def h2_connection(port: int, window: int = 65535) -> socket.socket | None:
    sock = connect(port)
    if sock is None:
        return None
    try:
        sock.sendall(PREFACE + settings({4: window}))
    except OSError:
        sock.close()
        return None
    return sock


def on_fresh_h2_connections(port: int, stop: threading.Event, attack, window: int = 65535) -> None:
    """Runs `attack(sock, stop)` on one new HTTP/2 connection after another until `stop`;
    the server closing the connection on it ends that round, not the case."""
    while not stop.is_set():
        sock = h2_connection(port, window)
        if sock is None:
            stop.wait(0.1)
            continue
        try:
            attack(sock, stop)
        except OSError:
            pass
        sock.close()


def stalled_body(port: int, stop: threading.Event) -> None:
    def attack(sock: socket.socket, stop: threading.Event) -> None:
        for sid in range(1, 200, 2):
            sock.sendall(headers_block("/swapline.v1.TaskService/CreateTask", False, sid)
                         + frame(0, 0, sid, b"\x00\x00\x00"))
        stop.wait(5)

    on_fresh_h2_connections(port, stop, attack)


def rapid_reset(port: int, stop: threading.Event) -> None:
    batch = b"".join(
        headers_block("/swapline.v1.TaskService/GetTask", False, sid) + frame(3, 0, sid, struct.pack(">I", 8))
        for sid in range(1, 2 * 5000, 2))

    def attack(sock: socket.socket, stop: threading.Event) -> None:
        sock.sendall(batch)
        sock.settimeout(2)
        while sock.recv(65536):
            pass

    on_fresh_h2_connections(port, stop, attack)


def non_reader(port: int, stop: threading.Event) -> None:
    watch = support.tasks_pb2.WatchTaskRequest(task_id="0" * 26).SerializeToString()
    get = support.tasks_pb2.GetTaskRequest(task_id="0" * 26).SerializeToString()

    def attack(sock: socket.socket, stop: threading.Event) -> None:
        for sid in range(1, 400, 2):
            path, body = (("/swapline.v1.TaskService/WatchTask", watch) if sid % 4 == 1
                          else ("/swapline.v1.TaskService/GetTask", get))
            sock.sendall(headers_block(path, False, sid) + frame(0, 0x1, sid, grpc_frame(body)))
        stop.wait(10)

    on_fresh_h2_connections(port, stop, attack, window=0)


def ping_flood(port: int, stop: threading.Event) -> None:
    burst = b"".join(frame(6, 0, 0, struct.pack(">Q", i)) + settings({}) for i in range(2000))

    def attack(sock: socket.socket, stop: threading.Event) -> None:
        sock.settimeout(2)
        for _ in range(50):
            sock.sendall(burst)

    on_fresh_h2_connections(port, stop, attack)


def big_decode(port: int, stop: threading.Event) -> None:
    # FaceSwapParams.options is a map<string,string>: field 5 of CreateTaskRequest's params;
    # empty map entries cost 2 bytes each on the wire. Built by hand so no client-side limit
    # interferes; sent through hyper-h2 so the server's flow-control windows are honoured.
    params = support.params().SerializeToString()
    entries = b"\x2a\x00" * 1_500_000
    body = support.create_request().SerializeToString()
    payload = grpc_frame(body + b"\x12" + encode_varint(len(params) + len(entries)) + params + entries)
    while not stop.is_set():
        try:
            client = support.RawH2(port, timeout=5)
        except OSError:
            stop.wait(0.1)
            continue
        try:
            sid = client.start("/swapline.v1.TaskService/CreateTask",
                               extra=[("authorization", f"Bearer {ABUSER_TOKEN}")])
            sent = 0
            while sent < len(payload) and not client.closed:
                room = min(client.conn.local_flow_control_window(sid), client.conn.max_outbound_frame_size)
                if room == 0:
                    client.pump(1.0)
                    continue
                chunk = payload[sent:sent + room]
                sent += len(chunk)
                client.conn.send_data(sid, chunk, end_stream=sent == len(payload))
                client.flush()
            client.wait(sid, timeout=10)
        except Exception:  # noqa: BLE001 - a refusal or a closed connection ends the round
            pass
        client.close()
        stop.wait(0.2)


def encode_varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def conn_churn(port: int, stop: threading.Event) -> None:
    while not stop.is_set():
        sock = connect(port)
        if sock is not None:
            sock.close()


def create_flood(port: int, stop: threading.Event) -> None:
    channel = grpc.insecure_channel(f"{HOST}:{port}", options=support.CHANNEL_OPTIONS)
    stubs = Stubs(channel)
    auth = [("authorization", f"Bearer {ABUSER_TOKEN}")]
    while not stop.is_set():
        try:
            stubs.tasks.CreateTask(support.create_request(), timeout=5, metadata=auth)
        except grpc.RpcError:
            pass
    channel.close()


ABUSE = {
    "slowloris-h2": slowloris_h2, "slowloris-http1": slowloris_http1,
    "stalled-body": stalled_body, "rapid-reset": rapid_reset, "non-reader": non_reader,
    "ping-flood": ping_flood, "big-decode": big_decode, "conn-churn": conn_churn,
    "create-flood": create_flood,
}


def run_phase(server: SwaplineServer, seconds: float, tokens: list[str], rate: float,
              abuse_cases: list[str]) -> Phase:
    phase = Phase()
    stop = threading.Event()
    threads = [threading.Thread(target=normal_client, args=(server, token, rate, phase, stop), daemon=True)
               for token in tokens]
    threads += [threading.Thread(target=ABUSE[name], args=(server.port, stop), daemon=True)
                for name in abuse_cases]
    for thread in threads:
        thread.start()
    peak = 0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and server.alive():
        peak = max(peak, abuse.server_rss(server))
        time.sleep(0.25)
    stop.set()
    for thread in threads:
        thread.join(timeout=15)
    phase.peak_rss = peak  # type: ignore[attr-defined]
    return phase


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=30, help="length of each phase (default 30)")
    parser.add_argument("--clients", type=int, default=4, help="normal grpcio clients (default 4)")
    parser.add_argument("--rate", type=float, default=50,
                        help="CreateTask+GetTask per second of each normal client (default 50, "
                             "within the server's default create rate of 100/s per client)")
    parser.add_argument("--abuse", default=",".join(ABUSE), help="comma-separated abuse cases")
    parser.add_argument("serve_flags", nargs="*", help="extra flags for swapline serve")
    args = parser.parse_args()
    cases = [name for name in args.abuse.split(",") if name]
    unknown = [name for name in cases if name not in ABUSE]
    if unknown:
        parser.error(f"unknown abuse case(s): {', '.join(unknown)}; known: {', '.join(ABUSE)}")

    tokens = [f"soak-client-{n}-" + secrets.token_hex(16) for n in range(args.clients)]
    tokens_dir = tempfile.mkdtemp(prefix="swapline-soak-")
    tokens_file = os.path.join(tokens_dir, "tokens")
    with open(tokens_file, "w", encoding="ascii") as out:
        out.writelines(f"client {token}\n" for token in [*tokens, ABUSER_TOKEN])
    server = SwaplineServer("--store", "memory", "--auth-tokens-file", tokens_file, *args.serve_flags).start()
    try:
        baseline = abuse.server_rss(server)
        print(f"server {server.address}, pid {server.proc.pid}, RSS at start {baseline / 1048576:.1f} MiB")
        quiet = run_phase(server, args.seconds, tokens, args.rate, [])
        print(quiet.summary("quiet          "), f"peak RSS {quiet.peak_rss / 1048576:.1f} MiB")
        loud = run_phase(server, args.seconds, tokens, args.rate, cases)
        print(loud.summary("under abuse    "), f"peak RSS {loud.peak_rss / 1048576:.1f} MiB")
        print(f"abuse cases: {', '.join(cases)}")
        time.sleep(3)
        if not server.alive():
            print(f"FAIL: the server died; stderr:\n{server.stderr_tail()}")
            return 1
        after = abuse.server_rss(server)
        print(f"RSS 3 s after the abuse: {after / 1048576:.1f} MiB")
        errors = quiet.errors + loud.errors
        for error in sorted(set(errors))[:10]:
            print(f"  error: {error} (x{errors.count(error)})")
        if errors:
            print(f"FAIL: {len(errors)} normal call(s) failed")
            return 1
        print("OK: no normal call failed")
        return 0
    finally:
        server.stop()
        shutil.rmtree(tokens_dir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
