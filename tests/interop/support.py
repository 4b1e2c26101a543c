"""Shared plumbing for the interop suite: Python stubs generated from proto/ at import time,
a handle on a running `swapline serve` process, a minimal raw HTTP/2 client (hyper-h2) and
gRPC framing helpers.

Nothing here builds the server: tools/test.sh does that. The binary is
`$SWAPLINE_BIN` or `.build/debug/swapline`.
"""

from __future__ import annotations

import os
import re
import selectors
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Iterable, Sequence

ROOT = Path(__file__).resolve().parents[2]
PROTO_DIR = Path(os.environ.get("SWAPLINE_PROTO_DIR", ROOT / "proto"))
BINARY = Path(os.environ.get("SWAPLINE_BIN", ROOT / ".build" / "debug" / "swapline"))
HOST = "127.0.0.1"
LISTENING_RE = re.compile(r"^swapline listening on 127\.0\.0\.1:(\d+)$")
STARTUP_TIMEOUT_S = 30.0

# --------------------------------------------------------------------------------------------
# Stub generation
#
# Our protos live in packages `swapline.v1`, `grpc.health.v1` and `grpc.testing`. Generated
# Python for the latter two would be a top-level `grpc` package that shadows grpcio itself, so
# the tree is copied with the `grpc/` directory renamed to `grpcproto/` (imports rewritten to
# match). Only file paths change: proto package names, and so gRPC method paths, stay the same.
# Output goes to the system temp directory, never into the work tree.
# --------------------------------------------------------------------------------------------

_IMPORT_RE = re.compile(r'(import\s+(?:public\s+|weak\s+)?")grpc/')


def _generate_stubs() -> Path:
    import hashlib
    import importlib.resources

    import grpc_tools
    from grpc_tools import protoc  # noqa: PLC0415 - only needed here

    if not PROTO_DIR.is_dir() or not any(PROTO_DIR.rglob("*.proto")):
        raise RuntimeError(f"no .proto files under {PROTO_DIR}")
    sources = {}
    for path in sorted(PROTO_DIR.rglob("*.proto")):
        rel = path.relative_to(PROTO_DIR).as_posix()
        if rel.startswith("grpc/"):
            rel = "grpcproto/" + rel[len("grpc/"):]
        sources[rel] = _IMPORT_RE.sub(r"\1grpcproto/", path.read_text(encoding="utf-8"))
    # Keyed by the protos' content and the generator, so reruns reuse the output and a stale
    # copy is never picked up; built aside and renamed into place, so parallel workers agree.
    digest = hashlib.sha256(repr((sorted(sources.items()), getattr(grpc_tools, "__file__", ""),
                                  _generator_version())).encode()).hexdigest()[:16]
    out = Path(tempfile.gettempdir()) / f"swapline-interop-stubs-{digest}"
    if not (out / "ok").exists():
        work = Path(tempfile.mkdtemp(prefix="swapline-interop-stubs-build-"))
        try:
            src, gen = work / "src", work / "out"
            for rel, text in sources.items():
                (src / rel).parent.mkdir(parents=True, exist_ok=True)
                (src / rel).write_text(text, encoding="utf-8")
            gen.mkdir()
            well_known = str(importlib.resources.files("grpc_tools") / "_proto")
            args = ["grpc_tools.protoc", f"-I{src}", f"-I{well_known}", f"--python_out={gen}",
                    f"--grpc_python_out={gen}", *sources]
            if protoc.main(args) != 0:
                raise RuntimeError(f"protoc failed for {list(sources)}")
            (gen / "ok").write_text("ok")
            try:
                os.rename(gen, out)
            except OSError:
                if not (out / "ok").exists():  # lost the race to a broken copy: replace it
                    shutil.rmtree(out, ignore_errors=True)
                    os.rename(gen, out)
        finally:
            shutil.rmtree(work, ignore_errors=True)
    sys.path.insert(0, str(out))
    return out


def _generator_version() -> str:
    try:
        from importlib.metadata import version

        return version("grpcio-tools") + "/" + version("protobuf")
    except Exception:  # noqa: BLE001
        return "?"


GENERATED_DIR = _generate_stubs()

from swapline.v1 import tasks_pb2, tasks_pb2_grpc  # noqa: E402
from grpcproto.health.v1 import health_pb2, health_pb2_grpc  # noqa: E402

try:  # the interop protos may be absent while the server is being written
    from grpcproto.testing import empty_pb2, messages_pb2, test_pb2_grpc  # noqa: E402
except ImportError:  # pragma: no cover - reported by the tests that need them
    empty_pb2 = messages_pb2 = test_pb2_grpc = None

import grpc  # noqa: E402

CHANNEL_OPTIONS = [
    # Never route loopback test traffic through a proxy from the environment.
    ("grpc.enable_http_proxy", 0),
    # One connection per channel object, not shared behind our back between channels.
    ("grpc.use_local_subchannel_pool", 1),
]

# --------------------------------------------------------------------------------------------
# The server process
# --------------------------------------------------------------------------------------------

_ACTIVE: list["SwaplineServer"] = []


class SwaplineServer:
    """One `swapline serve` child on a free loopback port. Unless the flags name a `--data`
    directory (tests of restarts do), its task database lives in the server's own temp
    directory and goes with it."""

    def __init__(self, *flags: str, env: dict[str, str] | None = None):
        self.flags = list(flags)
        self.extra_env = dict(env or {})
        self.proc: subprocess.Popen | None = None
        self.port: int | None = None
        self.tmpdir = Path(tempfile.mkdtemp(prefix="swapline-interop-"))
        self.stderr_path = self.tmpdir / "stderr.log"
        self._stderr = None
        self._stdout_lines: list[str] = []
        self._channels: list[grpc.Channel] = []
        self.stopped_by_test = False

    # -- lifecycle -----------------------------------------------------------------------------
    def start(self) -> "SwaplineServer":
        if not BINARY.is_file() or not os.access(BINARY, os.X_OK):
            raise RuntimeError(
                f"swapline binary not found at {BINARY}; run `swift build` or set SWAPLINE_BIN")
        data = [] if "--data" in self.flags else ["--data", str(self.tmpdir / "data")]
        argv = [str(BINARY), "serve", "--host", HOST, "--port", "0", *data, *self.flags]
        self._stderr = open(self.stderr_path, "wb")
        env = dict(os.environ)
        env.update(self.extra_env)
        self.proc = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=self._stderr,
            cwd=self.tmpdir, env=env, start_new_session=True)
        _ACTIVE.append(self)
        try:
            self.port = self._await_listening_line()
        except BaseException:
            self.stop()
            raise
        threading.Thread(target=self._drain_stdout, daemon=True).start()
        return self

    def _await_listening_line(self) -> int:
        assert self.proc and self.proc.stdout
        sel = selectors.DefaultSelector()
        sel.register(self.proc.stdout, selectors.EVENT_READ)
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        buf = b""
        try:
            while time.monotonic() < deadline:
                if not sel.select(timeout=max(0.0, deadline - time.monotonic())):
                    break
                chunk = os.read(self.proc.stdout.fileno(), 4096)
                if not chunk:
                    raise RuntimeError(
                        f"swapline exited (code {self.proc.wait(5)}) before listening; "
                        f"stderr:\n{self.stderr_tail()}")
                buf += chunk
                while b"\n" in buf:
                    line, buf = buf.split(b"\n", 1)
                    text = line.decode("utf-8", "replace").rstrip("\r")
                    self._stdout_lines.append(text)
                    m = LISTENING_RE.match(text)
                    if m:
                        return int(m.group(1))
        finally:
            sel.close()
        raise RuntimeError(
            f"no 'swapline listening on {HOST}:PORT' line within {STARTUP_TIMEOUT_S}s; "
            f"stdout={self._stdout_lines!r}; stderr:\n{self.stderr_tail()}")

    def _drain_stdout(self) -> None:
        # Keep the pipe from filling if the server ever prints more.
        try:
            assert self.proc and self.proc.stdout
            for line in self.proc.stdout:
                self._stdout_lines.append(line.decode("utf-8", "replace").rstrip())
        except (ValueError, OSError):
            pass

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def signal(self, sig: int) -> None:
        assert self.proc
        self.stopped_by_test = True
        self.proc.send_signal(sig)

    def wait(self, timeout: float) -> int:
        assert self.proc
        return self.proc.wait(timeout=timeout)

    def stop(self, timeout: float = 15.0) -> int | None:
        for ch in self._channels:
            try:
                ch.close()
            except Exception:  # noqa: BLE001 - best effort
                pass
        self._channels.clear()
        code = None
        if self.proc is not None:
            if self.proc.poll() is None:
                try:
                    self.proc.send_signal(signal.SIGTERM)
                    code = self.proc.wait(timeout=timeout)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    code = self.proc.wait(timeout=10)
            else:
                code = self.proc.returncode
            if self.proc.stdout:
                try:
                    self.proc.stdout.close()
                except OSError:
                    pass
        if self._stderr:
            self._stderr.close()
            self._stderr = None
        if self in _ACTIVE:
            _ACTIVE.remove(self)
        shutil.rmtree(self.tmpdir, ignore_errors=True)
        return code

    # -- helpers -------------------------------------------------------------------------------
    @property
    def address(self) -> str:
        return f"{HOST}:{self.port}"

    def channel(self, options: Sequence[tuple] = ()) -> grpc.Channel:
        ch = grpc.insecure_channel(self.address, options=[*CHANNEL_OPTIONS, *options])
        self._channels.append(ch)
        return ch

    def stderr_tail(self, limit: int = 6000) -> str:
        try:
            data = self.stderr_path.read_bytes()
        except OSError:
            return "<no stderr>"
        return data[-limit:].decode("utf-8", "replace")


def active_servers() -> list[SwaplineServer]:
    return list(_ACTIVE)


# --------------------------------------------------------------------------------------------
# Stubs bundle
# --------------------------------------------------------------------------------------------


class Stubs:
    def __init__(self, channel: grpc.Channel):
        self.channel = channel
        self.tasks = tasks_pb2_grpc.TaskServiceStub(channel)
        self.consumer = tasks_pb2_grpc.ConsumerServiceStub(channel)
        self.health = health_pb2_grpc.HealthStub(channel)


# --------------------------------------------------------------------------------------------
# gRPC framing and a raw HTTP/2 client
# --------------------------------------------------------------------------------------------


def frame(message: bytes, compressed: bool = False) -> bytes:
    return struct.pack(">BI", 1 if compressed else 0, len(message)) + message


def unframe(data: bytes) -> list[bytes]:
    """Splits a response body into messages; raises on a compressed or truncated message."""
    out, i = [], 0
    while i < len(data):
        if len(data) - i < 5:
            raise AssertionError(f"truncated gRPC prefix: {data[i:]!r}")
        flag, length = struct.unpack(">BI", data[i:i + 5])
        if flag != 0:
            raise AssertionError(f"unexpected compressed flag {flag} in response")
        if len(data) - i - 5 < length:
            raise AssertionError("truncated gRPC message")
        out.append(data[i + 5:i + 5 + length])
        i += 5 + length
    return out


def pct_decode(value: str) -> str:
    raw = bytearray()
    i = 0
    b = value.encode("ascii")
    while i < len(b):
        if b[i] == 0x25 and i + 2 < len(b) and re.fullmatch(rb"[0-9A-Fa-f]{2}", b[i + 1:i + 3]):
            raw.append(int(b[i + 1:i + 3], 16))
            i += 3
        else:
            raw.append(b[i])
            i += 1
    return raw.decode("utf-8")


class StreamResult:
    """What one HTTP/2 stream received, frame-event by frame-event."""

    def __init__(self, stream_id: int):
        self.stream_id = stream_id
        self.header_blocks: list[tuple[list[tuple[str, str]], bool]] = []  # (headers, end_stream)
        self.data = b""
        self.data_frames = 0
        self.ended = False
        self.reset_code: int | None = None

    @property
    def headers(self) -> dict[str, str]:
        return dict(self.header_blocks[0][0]) if self.header_blocks else {}

    @property
    def trailers(self) -> dict[str, str]:
        # Trailers-Only: the single header block is also the trailers.
        return dict(self.header_blocks[-1][0]) if self.header_blocks else {}

    @property
    def grpc_status(self) -> int | None:
        v = self.trailers.get("grpc-status")
        return int(v) if v is not None else None

    @property
    def grpc_message(self) -> str:
        return pct_decode(self.trailers.get("grpc-message", ""))

    @property
    def http_status(self) -> int | None:
        v = self.headers.get(":status")
        return int(v) if v is not None else None

    @property
    def finished(self) -> bool:
        return self.ended or self.reset_code is not None

    def is_trailers_only(self) -> bool:
        return len(self.header_blocks) == 1 and self.header_blocks[0][1] and self.data_frames == 0

    def __repr__(self) -> str:
        return (f"StreamResult(id={self.stream_id}, headers={self.header_blocks!r}, "
                f"data={len(self.data)}B/{self.data_frames} frames, ended={self.ended}, "
                f"reset={self.reset_code})")


class RawH2:
    """A blocking, single-threaded HTTP/2 client over a plain loopback socket (h2c, prior
    knowledge), for the protocol rules grpcio never lets us break."""

    def __init__(self, port: int, settings: dict | None = None, auto_window: bool = True,
                 timeout: float = 10.0):
        import h2.config
        import h2.connection

        self.sock = socket.create_connection((HOST, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        cfg = h2.config.H2Configuration(client_side=True, header_encoding="utf-8",
                                        validate_inbound_headers=False)
        self.conn = h2.connection.H2Connection(config=cfg)
        self.conn.initiate_connection()
        if settings:
            self.conn.update_settings(settings)
        self.auto_window = auto_window
        self.streams: dict[int, StreamResult] = {}
        self.goaway = None
        self.closed = False
        # (frame type, flags, stream id) of every frame received, in order; h2 hides frames
        # that arrive for a stream we have already reset, so this is the only record of them.
        self.frames: list[tuple[int, int, int]] = []
        self._inbuf = b""
        self.flush()

    def flush(self) -> None:
        data = self.conn.data_to_send()
        if data:
            self.sock.sendall(data)

    def start(self, path: str, *, content_type: str | None = "application/grpc",
              extra: Iterable[tuple[str, str]] = (), end_stream: bool = False) -> int:
        sid = self.conn.get_next_available_stream_id()
        headers = [(":method", "POST"), (":scheme", "http"), (":path", path),
                   (":authority", f"{HOST}")]
        if content_type is not None:
            headers.append(("content-type", content_type))
        headers.append(("te", "trailers"))
        headers.extend(extra)
        self.conn.send_headers(sid, headers, end_stream=end_stream)
        self.streams[sid] = StreamResult(sid)
        return sid

    def send(self, sid: int, data: bytes, end_stream: bool = False, flush: bool = True) -> None:
        # Split to the peer's max frame size; assumes the payloads fit the flow-control window.
        max_frame = self.conn.max_outbound_frame_size
        view = memoryview(data)
        if not data:
            self.conn.send_data(sid, b"", end_stream=end_stream)
        while view:
            chunk, view = view[:max_frame], view[max_frame:]
            self.conn.send_data(sid, bytes(chunk), end_stream=end_stream and not view)
        if flush:
            self.flush()

    def end(self, sid: int) -> None:
        self.conn.end_stream(sid)
        self.flush()

    def reset(self, sid: int, code: int = 8) -> None:  # 8 = CANCEL
        self.conn.reset_stream(sid, error_code=code)
        self.flush()

    def request(self, path: str, body: bytes | None, **kw) -> int:
        sid = self.start(path, end_stream=body is None, **kw)
        if body is not None:
            self.send(sid, body, end_stream=True)
        return sid

    def pump(self, timeout: float) -> bool:
        """Reads one batch of bytes and processes its events. False on timeout or EOF."""
        import h2.events

        self.sock.settimeout(max(timeout, 0.001))
        try:
            data = self.sock.recv(65536)
        except socket.timeout:
            return False
        except (ConnectionResetError, BrokenPipeError):
            data = b""
        if not data:
            self.closed = True
            return False
        self._log_frames(data)
        for ev in self.conn.receive_data(data):
            sid = getattr(ev, "stream_id", None)
            st = self.streams.get(sid) if sid else None
            if isinstance(ev, (h2.events.ResponseReceived, h2.events.TrailersReceived,
                               h2.events.InformationalResponseReceived)):
                if st is not None:
                    st.header_blocks.append((list(ev.headers), ev.stream_ended is not None))
            elif isinstance(ev, h2.events.DataReceived):
                if st is not None:
                    st.data += ev.data
                    st.data_frames += 1
                if self.auto_window and ev.flow_controlled_length:
                    self.conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
            elif isinstance(ev, h2.events.StreamEnded):
                if st is not None:
                    st.ended = True
            elif isinstance(ev, h2.events.StreamReset):
                if st is not None:
                    st.reset_code = int(ev.error_code)
            elif isinstance(ev, h2.events.ConnectionTerminated):
                self.goaway = ev
        self.flush()
        return True

    def _log_frames(self, data: bytes) -> None:
        self._inbuf += data
        while len(self._inbuf) >= 9:
            length = int.from_bytes(self._inbuf[0:3], "big")
            if len(self._inbuf) < 9 + length:
                break
            ftype, flags = self._inbuf[3], self._inbuf[4]
            sid = int.from_bytes(self._inbuf[5:9], "big") & 0x7FFFFFFF
            self.frames.append((ftype, flags, sid))
            self._inbuf = self._inbuf[9 + length:]

    def frames_on(self, sid: int) -> list[tuple[int, int, int]]:
        return [f for f in self.frames if f[2] == sid]

    def wait(self, sid: int, timeout: float = 10.0) -> StreamResult:
        deadline = time.monotonic() + timeout
        st = self.streams[sid]
        while not st.finished:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"stream {sid} not finished after {timeout}s: {st!r}")
            if not self.pump(remaining) and self.closed:
                raise ConnectionError(f"connection closed before stream {sid} finished: {st!r}")
        return st

    def wait_until(self, predicate, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while not predicate():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            if not self.pump(remaining) and self.closed:
                return predicate()
        return True

    def close(self) -> None:
        try:
            self.conn.close_connection()
            self.flush()
        except Exception:  # noqa: BLE001
            pass
        self.sock.close()


# --------------------------------------------------------------------------------------------
# Small helpers for tests
# --------------------------------------------------------------------------------------------

SOURCE = "https://example.com/source.jpg"
TARGET = "https://example.com/target.jpg"

# The FaceFusion simulator and every test server live on loopback, which the URL policy refuses
# by default (docs/security.md): servers that accept their URLs and workers that fetch them
# are started with this flag.
ALLOW_LOCAL_URLS = "--allow-private-urls"


def params(**kw) -> "tasks_pb2.FaceSwapParams":
    values = {"source_url": SOURCE, "target_url": TARGET}
    values.update(kw)
    return tasks_pb2.FaceSwapParams(**values)


def create_request(**kw) -> "tasks_pb2.CreateTaskRequest":
    p = kw.pop("params", None) or params()
    return tasks_pb2.CreateTaskRequest(params=p, **kw)


def without_history(task: "tasks_pb2.Task") -> "tasks_pb2.Task":
    """GetTask's answer as other calls answer it: `history` is filled by GetTask only."""
    task.ClearField("history")
    return task


def now_ms() -> int:
    return int(time.time() * 1000)


def wait_for(predicate, timeout: float, interval: float = 0.05, what: str = "condition"):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}; last={last!r}")
