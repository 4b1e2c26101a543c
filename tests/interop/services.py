"""The outside services the interop suite runs Swapline with: throwaway PostgreSQL clusters and
databases, and a real load balancer (HAProxy or nginx) built from the configs in deploy/.

Everything listens on 127.0.0.1 only, on free ports, and every start has a stop that removes
its processes and files (conftest.py's fixtures call them). See tools/pg-test-cluster.sh.
"""

from __future__ import annotations

import csv
import io
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Sequence
from urllib.parse import urlsplit, urlunsplit

from support import HOST, ROOT

PG_CLUSTER_SCRIPT = ROOT / "tools" / "pg-test-cluster.sh"
HAPROXY_TEMPLATE = ROOT / "deploy" / "haproxy.cfg"
NGINX_TEMPLATE = ROOT / "deploy" / "nginx.conf"
HAPROXY_BIN = os.environ.get("SWAPLINE_HAPROXY", shutil.which("haproxy") or "/usr/sbin/haproxy")
NGINX_BIN = os.environ.get("SWAPLINE_NGINX", shutil.which("nginx") or "/usr/sbin/nginx")
START_TIMEOUT_S = 20.0


def free_port() -> int:
    """A port free right now on 127.0.0.1 (a later bind can still lose a race; callers retry)."""
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def accepts(port: int, host: str = HOST) -> bool:
    try:
        socket.create_connection((host, port), timeout=1).close()
        return True
    except OSError:
        return False


# --------------------------------------------------------------------------------------------
# PostgreSQL
# --------------------------------------------------------------------------------------------


class PostgresCluster:
    """A cluster of its own (tools/pg-test-cluster.sh), for tests that stop and restart
    PostgreSQL under a running server: the cluster tools/test.sh shares must stay up."""

    def __init__(self) -> None:
        parent = Path(tempfile.mkdtemp(prefix="swapline-pg-"))
        os.chmod(parent, 0o755)  # the `postgres` user (when we are root) must reach the cluster
        self._parent = parent
        self.dir = parent / "cluster"
        self.url: str | None = None

    def _run(self, command: str) -> str:
        done = subprocess.run([str(PG_CLUSTER_SCRIPT), command, str(self.dir)], stdin=subprocess.DEVNULL,
                              capture_output=True, text=True, timeout=120)
        if done.returncode != 0:
            raise RuntimeError(f"pg-test-cluster.sh {command} failed ({done.returncode}):\n"
                               f"{done.stderr[-3000:]}")
        return done.stdout.strip()

    def start(self) -> "PostgresCluster":
        try:
            self.url = self._run("start").splitlines()[-1]
        except BaseException:
            self.stop()
            raise
        return self

    def pause(self) -> None:
        """Stops the server (fast shutdown: open connections are closed); data stays."""
        self._run("pause")

    def resume(self) -> None:
        """Starts it again on the same port, with the same data."""
        self._run("resume")

    def accepting(self) -> bool:
        return subprocess.run([str(PG_CLUSTER_SCRIPT), "status", str(self.dir)],
                              capture_output=True, timeout=30).returncode == 0

    def log_tail(self, limit: int = 4000) -> str:
        try:
            return (self.dir / "postgres.log").read_text(errors="replace")[-limit:]
        except OSError:
            return "<no log>"

    def stop(self) -> None:
        try:
            if self.dir.exists():
                self._run("stop")
        finally:
            shutil.rmtree(self._parent, ignore_errors=True)


def database_url(url: str, database: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "/" + database, parts.query, parts.fragment))


def connect(url: str, **kw):
    """A psycopg connection in autocommit mode (CREATE/DROP DATABASE need it)."""
    import psycopg

    return psycopg.connect(url, autocommit=True, connect_timeout=10, **kw)


_DB_NAME = re.compile(r"^[a-z_][a-z0-9_]*$")


def create_database(url: str, prefix: str = "swapline_test") -> str:
    """Creates an empty database on the cluster of `url` (owned by its user) and returns its
    URL. template0, so nothing added to template1 leaks in."""
    name = f"{prefix}_{secrets.token_hex(6)}"
    assert _DB_NAME.match(name), name
    with connect(url) as conn:
        conn.execute(f'CREATE DATABASE "{name}" TEMPLATE template0')
    return database_url(url, name)


def drop_database(url: str) -> None:
    """Drops the database of `url`, disconnecting whoever still uses it (a server under test
    may hold a pool open). Connects to the cluster's maintenance database to do it."""
    name = urlsplit(url).path.lstrip("/")
    assert _DB_NAME.match(name), name
    with connect(database_url(url, "postgres")) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# --------------------------------------------------------------------------------------------
# Load balancers
# --------------------------------------------------------------------------------------------


def _backend_port(backend) -> int:
    return int(backend if isinstance(backend, int) else backend.port)


class LoadBalancer:
    """HAProxy or nginx on free loopback ports in front of `backends` (ports or
    SwaplineServer objects), configured by the file in deploy/ with only its addresses
    changed.

    `grpc_address` is where gRPC (h2c) goes, `rest_url` where REST over HTTP/1.1 goes: one
    port for HAProxy, two for nginx (nginx 1.22 cannot serve h2c and HTTP/1.1 on one port)."""

    def __init__(self, kind: str, backends: Sequence) -> None:
        if kind not in ("haproxy", "nginx"):
            raise ValueError(f"unknown load balancer {kind!r}")
        if not backends:
            raise ValueError("a load balancer needs at least one backend")
        self.kind = kind
        self.backends = [_backend_port(b) for b in backends]
        self.tmpdir = Path(tempfile.mkdtemp(prefix=f"swapline-{kind}-"))
        self.proc: subprocess.Popen | None = None
        self.grpc_port = 0
        self.rest_port = 0
        self._log_path = self.tmpdir / "output.log"
        self._log = None

    # -- addresses ------------------------------------------------------------------------------
    @property
    def grpc_address(self) -> str:
        return f"{HOST}:{self.grpc_port}"

    @property
    def rest_url(self) -> str:
        return f"http://{HOST}:{self.rest_port}"

    @property
    def h2_rest_url(self) -> str | None:
        """Where REST over HTTP/2 (prior knowledge) goes, or None: nginx's h2c port only
        passes gRPC."""
        return f"http://{HOST}:{self.grpc_port}" if self.kind == "haproxy" else None

    # -- lifecycle ------------------------------------------------------------------------------
    def start(self) -> "LoadBalancer":
        last_error = ""
        for _ in range(3):  # a free port can be taken before the balancer binds it
            self.grpc_port = free_port()
            self.rest_port = self.grpc_port if self.kind == "haproxy" else free_port()
            argv = self._configure()
            self._log = open(self._log_path, "ab")
            self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=self._log,
                                         stderr=subprocess.STDOUT, cwd=self.tmpdir,
                                         start_new_session=True)
            try:
                self._await_ready()
                return self
            except RuntimeError as exc:
                last_error = str(exc)
                self._terminate()
                if "ddress already in use" not in last_error and "cannot bind" not in last_error:
                    break
        self.stop()
        raise RuntimeError(last_error)

    def _await_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.kind} exited with {self.proc.returncode}:\n{self.log_tail()}")
            if accepts(self.grpc_port) and accepts(self.rest_port) and self._backends_up():
                return
            time.sleep(0.05)
        raise RuntimeError(f"{self.kind} not ready within {START_TIMEOUT_S}s "
                           f"(servers: {self.server_states() if self.kind == 'haproxy' else '-'}):\n"
                           f"{self.log_tail()}")

    def _backends_up(self) -> bool:
        # nginx has no active checks: it is ready once it listens.
        if self.kind == "nginx":
            return True
        states = self.server_states()
        return len(states) == len(self.backends) and all(
            s["status"] == "UP" and s["check_status"] == "L7OK" for s in states.values())

    def _terminate(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)  # the master and its workers
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
            except ProcessLookupError:
                self.proc.wait(timeout=10)
        if self._log:
            self._log.close()
            self._log = None
        self.proc = None

    def stop(self) -> None:
        self._terminate()
        shutil.rmtree(self.tmpdir, ignore_errors=True)

    def log_tail(self, limit: int = 4000) -> str:
        try:
            text = self._log_path.read_text(errors="replace")
        except OSError:
            text = ""
        if self.kind == "nginx":
            try:
                text += (self.tmpdir / "error.log").read_text(errors="replace")
            except OSError:
                pass
        return text[-limit:] or "<no output>"

    # -- HAProxy's runtime API ------------------------------------------------------------------
    def admin(self, command: str) -> str:
        """One command on HAProxy's stats socket (`show stat`, `disable server b/s`, ...)."""
        assert self.kind == "haproxy", "only HAProxy has a runtime API"
        with socket.socket(socket.AF_UNIX) as s:
            s.settimeout(5)
            s.connect(str(self.tmpdir / "admin.sock"))
            s.sendall(command.encode() + b"\n")
            chunks = []
            while chunk := s.recv(65536):
                chunks.append(chunk)
        return b"".join(chunks).decode()

    def server_states(self) -> dict[str, dict[str, str]]:
        """HAProxy's view of each backend server: status (UP, DOWN, ...), check_status
        (L7OK, L4CON, ...), stot (requests sent to it), and the rest of `show stat`."""
        try:
            text = self.admin("show stat")
        except OSError:
            return {}
        rows = csv.DictReader(io.StringIO(text.lstrip("# ")))
        return {row["svname"]: row for row in rows
                if row.get("svname") not in ("FRONTEND", "BACKEND", None)
                and row.get("pxname") == "swapline_servers"}

    def wait_for_status(self, server: str, status: str, timeout: float = 15.0) -> float:
        """Waits until HAProxy reports `server` (swapline1, swapline2, ... in the order of the
        backends) as `status` (UP, DOWN, ...); returns the seconds it took."""
        t0 = time.monotonic()
        while True:
            state = self.server_states().get(server, {})
            if state.get("status") == status:
                return time.monotonic() - t0
            if time.monotonic() - t0 > timeout:
                raise AssertionError(f"{server} not {status} after {timeout}s: {state}")
            time.sleep(0.1)

    # -- configuration --------------------------------------------------------------------------
    def _configure(self) -> list[str]:
        if self.kind == "haproxy":
            path = self.tmpdir / "haproxy.cfg"
            path.write_text(render_haproxy(HAPROXY_TEMPLATE.read_text(), self.grpc_port, self.backends,
                                           self.tmpdir / "admin.sock"))
            check = subprocess.run([HAPROXY_BIN, "-c", "-q", "-f", str(path)], capture_output=True, text=True)
            if check.returncode != 0:
                raise RuntimeError(f"haproxy rejects the rendered config:\n{check.stdout}{check.stderr}")
            return [HAPROXY_BIN, "-db", "-f", str(path)]
        site = self.tmpdir / "swapline.conf"
        site.write_text(render_nginx_site(NGINX_TEMPLATE.read_text(), self.grpc_port, self.rest_port,
                                          self.backends))
        main = self.tmpdir / "nginx.conf"
        main.write_text(_nginx_main(self.tmpdir, site))
        return [NGINX_BIN, "-c", str(main), "-p", str(self.tmpdir) + "/"]


def render_haproxy(template: str, port: int, backends: Sequence[int], admin_socket: Path) -> str:
    """deploy/haproxy.cfg with its one `bind` on `port`, one `server` per backend and its
    stats socket at `admin_socket`; `user`/`group`/`chroot` are dropped unless we are root."""
    out: list[str] = []
    binds = servers = sockets = 0
    for line in template.splitlines():
        words = line.split()
        key = words[0] if words else ""
        if key == "bind":
            binds += 1
            out.append(f"    bind {HOST}:{port}")
        elif key == "server":
            servers += 1
            if servers == 1:
                out.extend(f"    server swapline{i + 1} {HOST}:{p}" for i, p in enumerate(backends))
        elif key == "stats" and words[1:2] == ["socket"]:
            sockets += 1
            out.append(f"    stats socket {admin_socket} {' '.join(words[3:])}")
        elif key in ("user", "group", "chroot") and os.geteuid() != 0:
            continue
        else:
            out.append(line)
    if (binds, sockets) != (1, 1) or servers == 0:
        raise ValueError(f"deploy/haproxy.cfg changed shape: {binds} bind, {sockets} stats socket, "
                         f"{servers} server lines (the test renderer expects 1, 1, >=1)")
    return "\n".join(out) + "\n"


_LISTEN = re.compile(r"^(\s*)listen\s+\S+?(\s+http2)?\s*;")
_UPSTREAM_SERVER = re.compile(r"^(\s*)server\s+\S+(.*);")


def render_nginx_site(template: str, grpc_port: int, rest_port: int, backends: Sequence[int]) -> str:
    """deploy/nginx.conf with its h2c `listen` on `grpc_port`, its HTTP/1.1 `listen` on
    `rest_port` and each upstream's `server` lines replaced by one per backend (keeping the
    parameters of the template's first one)."""
    out: list[str] = []
    listens = upstreams = 0
    in_upstream = replaced = False
    for line in template.splitlines():
        stripped = line.strip()
        if stripped.startswith("upstream "):
            in_upstream, replaced = True, False
            upstreams += 1
        elif in_upstream and stripped == "}":
            in_upstream = False
        if m := _LISTEN.match(line):
            listens += 1
            port = grpc_port if m.group(2) else rest_port
            out.append(f"{m.group(1)}listen {HOST}:{port}{m.group(2) or ''};")
        elif in_upstream and (m := _UPSTREAM_SERVER.match(line)):
            if not replaced:
                out.extend(f"{m.group(1)}server {HOST}:{p}{m.group(2)};" for p in backends)
                replaced = True
        else:
            out.append(line)
    if listens != 2 or upstreams == 0:
        raise ValueError(f"deploy/nginx.conf changed shape: {listens} listen lines, {upstreams} "
                         "upstreams (the test renderer expects 2 and >=1)")
    return "\n".join(out) + "\n"


def _nginx_main(tmpdir: Path, site: Path) -> str:
    """The test's own nginx.conf around the site file: foreground, files in tmpdir."""
    user = "user root;\n" if os.geteuid() == 0 else ""  # temp files in our 0700 tmpdir
    temp = "\n".join(f"    {kind}_temp_path {tmpdir / kind};"
                     for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    return f"""{user}daemon off;
worker_processes 1;
pid {tmpdir / 'nginx.pid'};
error_log {tmpdir / 'error.log'} info;
events {{ worker_connections 1024; }}
http {{
    access_log {tmpdir / 'access.log'};
{temp}
    include {site};
}}
"""
