"""TLS on the server's one port (`serve --tls-cert/--tls-key`) with stock clients: grpcio with
root certificates, curl over HTTP/1.1 and HTTP/2, httpx, Python's ssl with each ALPN choice;
clients that do not trust the certificate are refused; bad certificate files stop the server at
start; the CLI, a separate `swapline worker` and in-process workers (`serve --workers`) verify
the server against `--ca-file` (or, in process, the server's own certificate).

A throwaway CA and server certificate (SANs 127.0.0.1 and localhost) are made with the openssl
CLI in a temp directory for the module."""

from __future__ import annotations

import json
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
from pathlib import Path

import grpc
import httpx
import pytest

import services
from support import ALLOW_LOCAL_URLS, BINARY, HOST, CHANNEL_OPTIONS, Stubs, create_request, tasks_pb2 as pb
from support import health_pb2
from test_worker import Simulator, params as sim_params, stored_path, wait_terminal

T = 10


def openssl(*args: str, cwd: Path) -> None:
    done = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, f"openssl {' '.join(args)}: {done.stderr}"


def make_ca(directory: Path, name: str) -> tuple[Path, Path]:
    """A self-signed CA: (certificate, key)."""
    cert, key = directory / f"{name}.pem", directory / f"{name}.key"
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
            "-keyout", str(key), "-out", str(cert), "-days", "30", "-subj", f"/CN=Swapline test {name}",
            "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign",
            cwd=directory)
    return cert, key


def make_server_cert(directory: Path, name: str, ca: tuple[Path, Path], san: str) -> tuple[Path, Path]:
    """A server certificate signed by `ca` for the subject alternative names `san`."""
    cert, key, csr, ext = (directory / f"{name}.pem", directory / f"{name}.key", directory / f"{name}.csr",
                           directory / f"{name}.ext")
    openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", str(key),
            "-out", str(csr), "-subj", f"/CN={name}", cwd=directory)
    ext.write_text(f"subjectAltName={san}\nbasicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\n"
                   "extendedKeyUsage=serverAuth\n")
    openssl("x509", "-req", "-in", str(csr), "-CA", str(ca[0]), "-CAkey", str(ca[1]), "-CAcreateserial",
            "-out", str(cert), "-days", "30", "-extfile", str(ext), cwd=directory)
    return cert, key


class Certificates:
    def __init__(self, directory: Path):
        self.dir = directory
        self.ca, ca_key = make_ca(directory, "ca")
        self.cert, self.key = make_server_cert(directory, "server", (self.ca, ca_key), "IP:127.0.0.1,DNS:localhost")
        # Another CA, and a certificate of it: what a client that trusts the wrong CA sees.
        self.other_ca, other_key = make_ca(directory, "other-ca")
        self.other_cert, self.other_key = make_server_cert(directory, "other", (self.other_ca, other_key),
                                                           "IP:127.0.0.1,DNS:localhost")
        # A certificate that names only a DNS name no resolver knows: in-process workers must
        # still reach and verify their own server (LocalEndpoint's connect-to).
        self.named_cert, self.named_key = make_server_cert(directory, "named", (self.ca, ca_key),
                                                           "DNS:swapline.invalid")

    def flags(self, cert: Path | None = None, key: Path | None = None) -> list[str]:
        return ["--tls-cert", str(cert or self.cert), "--tls-key", str(key or self.key)]


@pytest.fixture(scope="module")
def certs():
    if shutil.which("openssl") is None:
        pytest.fail("the openssl CLI is needed to make test certificates (Debian: openssl)", pytrace=False)
    directory = Path(tempfile.mkdtemp(prefix="swapline-tls-"))
    yield Certificates(directory)
    shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture
def tls_server(server_factory, certs):
    # Tests with workers send the simulator's loopback URLs, which only --allow-private-urls accepts.
    return server_factory("--store", "memory", *certs.flags(), ALLOW_LOCAL_URLS)


def secure_channel(port: int, root_certificates: bytes | None, target_host: str = HOST) -> grpc.Channel:
    credentials = grpc.ssl_channel_credentials(root_certificates=root_certificates)
    return grpc.secure_channel(f"{target_host}:{port}", credentials, options=CHANNEL_OPTIONS)


def curl(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["curl", "-sS", "--noproxy", "*", "--max-time", str(T), *args],
                          capture_output=True, text=True, timeout=T + 5)


# --------------------------------------------------------------------------------------------
# gRPC with grpcio
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("target_host", [HOST, "localhost"])
def test_grpcio_with_the_ca_calls_every_kind_of_rpc(tls_server, certs, target_host):
    with secure_channel(tls_server.port, certs.ca.read_bytes(), target_host) as channel:
        stubs = Stubs(channel)
        assert stubs.health.Check(health_pb2.HealthCheckRequest(), timeout=T).status == \
            health_pb2.HealthCheckResponse.SERVING
        task = stubs.tasks.CreateTask(create_request(), timeout=T)
        assert task.status == pb.TASK_STATUS_PENDING
        # A task created over TLS names the server's https origin.
        assert task.source_channel == f"https://{HOST}:{tls_server.port}"
        assert stubs.tasks.GetTask(pb.GetTaskRequest(task_id=task.task_id), timeout=T).task_id == task.task_id
        events = stubs.tasks.WatchTask(pb.WatchTaskRequest(task_id=task.task_id), timeout=T)
        first = next(events)
        assert first.task.status == pb.TASK_STATUS_PENDING
        cancelled = stubs.tasks.CancelTask(pb.CancelTaskRequest(task_id=task.task_id), timeout=T)
        assert cancelled.status == pb.TASK_STATUS_CANCELLED
        assert [e.task.status for e in events][-1] == pb.TASK_STATUS_CANCELLED
        with pytest.raises(grpc.RpcError) as missing:
            stubs.tasks.GetTask(pb.GetTaskRequest(task_id="task_missing"), timeout=T)
        assert missing.value.code() == grpc.StatusCode.NOT_FOUND


def test_many_calls_share_one_tls_connection(tls_server, certs):
    with secure_channel(tls_server.port, certs.ca.read_bytes()) as channel:
        stubs = Stubs(channel)
        futures = [stubs.tasks.CreateTask.future(create_request(), timeout=T) for _ in range(200)]
        ids = {f.result().task_id for f in futures}
    assert len(ids) == 200


@pytest.mark.parametrize("trust", ["system", "other-ca"])
def test_grpcio_that_does_not_trust_the_certificate_is_refused(tls_server, certs, trust):
    roots = None if trust == "system" else certs.other_ca.read_bytes()
    with secure_channel(tls_server.port, roots) as channel:
        with pytest.raises(grpc.RpcError) as refused:
            Stubs(channel).tasks.CreateTask(create_request(), timeout=T)
    assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
    # The server stays up and goes on serving clients that trust it.
    with secure_channel(tls_server.port, certs.ca.read_bytes()) as channel:
        assert Stubs(channel).tasks.CreateTask(create_request(), timeout=T).task_id


def test_a_cleartext_client_gets_nothing_from_a_tls_port(tls_server):
    with pytest.raises(grpc.RpcError) as refused:
        Stubs(tls_server.channel()).tasks.CreateTask(create_request(), timeout=T)
    assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
    assert curl("--http1.1", f"http://{HOST}:{tls_server.port}/health").returncode != 0


def test_a_handshake_not_completed_in_time_is_closed(server_factory, certs):
    """A client that connects to a TLS port and never sends its ClientHello is closed after
    --tls-handshake-timeout-ms, and the port serves the next client."""
    srv = server_factory("--store", "memory", *certs.flags(), "--tls-handshake-timeout-ms", "500")
    with socket.create_connection((HOST, srv.port), timeout=10) as silent:
        started = time.monotonic()
        assert silent.recv(1) == b""  # closed by the server, nothing sent
        elapsed = time.monotonic() - started
    assert 0.3 < elapsed < 8, f"closed after {elapsed:.1f}s"
    with tls_socket(srv.port, certs.ca, ["h2"]) as tls:
        assert tls.selected_alpn_protocol() == "h2"


def test_without_tls_flags_the_port_stays_cleartext(server, certs):
    assert Stubs(server.channel()).health.Check(health_pb2.HealthCheckRequest(), timeout=T).status == \
        health_pb2.HealthCheckResponse.SERVING
    with secure_channel(server.port, certs.ca.read_bytes()) as channel:
        with pytest.raises(grpc.RpcError) as refused:
            Stubs(channel).health.Check(health_pb2.HealthCheckRequest(), timeout=T)
    assert refused.value.code() == grpc.StatusCode.UNAVAILABLE


# --------------------------------------------------------------------------------------------
# REST with curl and httpx
# --------------------------------------------------------------------------------------------

BODY = json.dumps({"source_url": "https://example.com/face.jpg", "target_url": "https://example.com/photo.jpg"})


@pytest.mark.parametrize("version,expected", [("--http1.1", "1.1"), ("--http2", "2")])
def test_curl_rest_over_tls(tls_server, certs, version, expected):
    url = f"https://{HOST}:{tls_server.port}"
    health = curl(version, "--cacert", str(certs.ca), "-w", "\n%{http_code} %{http_version}", url + "/health")
    assert health.returncode == 0, health.stderr
    body, status = health.stdout.rsplit("\n", 1)
    assert status == f"200 {expected}"
    assert json.loads(body)["status"] == "ok"

    created = curl(version, "--cacert", str(certs.ca), "-H", "content-type: application/json", "-d", BODY,
                   "-w", "\n%{http_code} %{http_version}", url + "/api/face-swap/create-task")
    assert created.returncode == 0, created.stderr
    body, status = created.stdout.rsplit("\n", 1)
    assert status == f"200 {expected}"
    task_id = json.loads(body)["task_id"]

    cancelled = curl(version, "--cacert", str(certs.ca), "-X", "POST", url + f"/api/face-swap/task/{task_id}/cancel")
    assert json.loads(cancelled.stdout)["status"] == "CANCELLED"
    # Server-sent events over TLS: the finished task's state, then the stream ends.
    events = curl(version, "--cacert", str(certs.ca), url + f"/api/face-swap/task/{task_id}/events")
    assert events.returncode == 0, events.stderr
    assert '"status":"CANCELLED"' in events.stdout.replace(" ", "")


def test_curl_without_the_ca_is_refused_with_exit_code_60(tls_server, certs):
    refused = curl(f"https://{HOST}:{tls_server.port}/health")
    assert refused.returncode == 60, (refused.returncode, refused.stderr)
    wrong = curl("--cacert", str(certs.other_ca), f"https://{HOST}:{tls_server.port}/health")
    assert wrong.returncode == 60, (wrong.returncode, wrong.stderr)


@pytest.mark.parametrize("http2", [False, True])
def test_httpx_rest_over_tls_with_grpc_on_the_same_connection_kind(tls_server, certs, http2):
    with httpx.Client(verify=ssl.create_default_context(cafile=str(certs.ca)), http2=http2, http1=not http2, trust_env=False, timeout=T) as client:
        response = client.post(f"https://localhost:{tls_server.port}/api/face-swap/create-task", content=BODY,
                               headers={"content-type": "application/json"})
        assert response.status_code == 200
        assert response.http_version == ("HTTP/2" if http2 else "HTTP/1.1")
        task_id = response.json()["task_id"]
        got = client.get(f"https://localhost:{tls_server.port}/api/face-swap/task/{task_id}")
        assert got.json()["taskId"] == task_id
    # The REST task is the gRPC task.
    with secure_channel(tls_server.port, certs.ca.read_bytes()) as channel:
        assert Stubs(channel).tasks.GetTask(pb.GetTaskRequest(task_id=task_id), timeout=T).task_id == task_id


# --------------------------------------------------------------------------------------------
# ALPN: what each client offers decides the protocol
# --------------------------------------------------------------------------------------------


def tls_socket(port: int, ca: Path, alpn: list[str] | None) -> ssl.SSLSocket:
    context = ssl.create_default_context(cafile=str(ca))
    if alpn is not None:
        context.set_alpn_protocols(alpn)
    raw = socket.create_connection((HOST, port), timeout=T)
    return context.wrap_socket(raw, server_hostname=HOST)


def read_until_closed_or(sock: ssl.SSLSocket, marker: bytes) -> bytes:
    data = b""
    while marker not in data:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    return data


@pytest.mark.parametrize("offered,chosen", [(["h2", "http/1.1"], "h2"), (["http/1.1", "h2"], "h2"),
                                            (["http/1.1"], "http/1.1"), (["h2"], "h2"), (None, None)])
def test_alpn_prefers_h2_and_falls_back(tls_server, certs, offered, chosen):
    with tls_socket(tls_server.port, certs.ca, offered) as sock:
        assert sock.selected_alpn_protocol() == chosen
        assert sock.version() in ("TLSv1.2", "TLSv1.3")
        if chosen != "h2":
            sock.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
            reply = read_until_closed_or(sock, b"}")
            assert reply.startswith(b"HTTP/1.1 200 OK"), reply


def test_without_alpn_the_http2_preface_is_detected(tls_server, certs):
    import h2.config
    import h2.connection
    import h2.events

    with tls_socket(tls_server.port, certs.ca, None) as sock:
        assert sock.selected_alpn_protocol() is None
        conn = h2.connection.H2Connection(config=h2.config.H2Configuration(client_side=True, header_encoding="utf-8"))
        conn.initiate_connection()
        sid = conn.get_next_available_stream_id()
        conn.send_headers(sid, [(":method", "GET"), (":scheme", "https"), (":path", "/health"),
                                (":authority", HOST)], end_stream=True)
        sock.sendall(conn.data_to_send())
        status, ended = None, False
        deadline = time.monotonic() + T
        while not ended and time.monotonic() < deadline:
            data = sock.recv(65536)
            if not data:
                break
            for event in conn.receive_data(data):
                if isinstance(event, h2.events.ResponseReceived):
                    status = dict(event.headers)[":status"]
                elif isinstance(event, h2.events.StreamEnded):
                    ended = True
            sock.sendall(conn.data_to_send())
        assert (status, ended) == ("200", True)


def test_alpn_http1_with_the_http2_preface_is_served_http2(tls_server, certs):
    """HAProxy's health checks over TLS negotiate http/1.1 and then send the HTTP/2 preface
    when the server line says `proto h2`: served, not refused."""
    with tls_socket(tls_server.port, certs.ca, ["http/1.1"]) as sock:
        sock.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
        reply = sock.recv(9)
        assert reply[3] == 4, reply  # a SETTINGS frame


# --------------------------------------------------------------------------------------------
# Start-up refusals
# --------------------------------------------------------------------------------------------


def serve_fails(*flags: str) -> str:
    done = subprocess.run([str(BINARY), "serve", "--host", HOST, "--port", "0", "--store", "memory", *flags],
                          capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL)
    assert done.returncode != 0, done.stdout
    assert "listening" not in done.stdout
    return done.stderr


def test_bad_certificate_files_stop_the_server_with_the_reason(certs, tmp_path):
    missing = tmp_path / "missing.pem"
    assert f"cannot read {missing}: no such file" in serve_fails(*certs.flags(cert=missing))
    assert f"cannot read {missing}: no such file" in serve_fails(*certs.flags(key=missing))
    assert "does not belong to the first certificate" in serve_fails(*certs.flags(key=certs.other_key))
    assert "holds no PEM certificate" in serve_fails(*certs.flags(cert=certs.key))
    assert "holds no unencrypted PEM private key" in serve_fails(*certs.flags(key=certs.cert))
    empty = tmp_path / "empty.pem"
    empty.write_text("")
    assert "is empty" in serve_fails(*certs.flags(cert=empty))
    assert "--tls-cert and --tls-key go together" in serve_fails("--tls-cert", str(certs.cert))
    assert "--tls-cert and --tls-key go together" in serve_fails("--tls-key", str(certs.key))


def test_a_certificate_with_its_chain_is_served_whole(server_factory, certs, tmp_path):
    chain = tmp_path / "chain.pem"
    chain.write_bytes(certs.cert.read_bytes() + certs.ca.read_bytes())
    srv = server_factory("--store", "memory", *certs.flags(cert=chain))
    with tls_socket(srv.port, certs.ca, ["h2"]) as sock:
        assert sock.selected_alpn_protocol() == "h2"
    listed = subprocess.run(["openssl", "s_client", "-connect", f"{HOST}:{srv.port}", "-showcerts"],
                            input="", capture_output=True, text=True, timeout=T)
    assert listed.stdout.count("-----BEGIN CERTIFICATE-----") == 2, listed.stdout


# --------------------------------------------------------------------------------------------
# The CLI, a separate worker, in-process workers
# --------------------------------------------------------------------------------------------


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(BINARY), *args], capture_output=True, text=True, timeout=60)


def test_cli_verifies_the_server_with_ca_file(tls_server, certs):
    server = ["--server", f"https://{HOST}:{tls_server.port}"]
    inputs = ["--source", "https://example.com/a.jpg", "--target", "https://example.com/b.jpg"]
    created = run_cli("create", *server, "--ca-file", str(certs.ca), *inputs)
    assert created.returncode == 0, created.stderr
    task_id = created.stdout.strip()
    got = run_cli("get", *server, "--ca-file", str(certs.ca), task_id)
    assert f"task {task_id}: PENDING" in got.stdout, got.stderr
    # Through the host name too, and trusting the server's own certificate directly.
    by_name = run_cli("cancel", "--server", f"https://localhost:{tls_server.port}", "--ca-file", str(certs.cert), task_id)
    assert f"task {task_id}: CANCELLED" in by_name.stdout, by_name.stderr

    untrusted = run_cli("get", *server, task_id)
    assert untrusted.returncode != 0
    assert "UNAVAILABLE" in untrusted.stderr and "certificate" in untrusted.stderr, untrusted.stderr
    wrong_ca = run_cli("get", *server, "--ca-file", str(certs.other_ca), task_id)
    assert wrong_ca.returncode != 0 and "UNAVAILABLE" in wrong_ca.stderr, wrong_ca.stderr
    cleartext = run_cli("get", "--server", f"http://{HOST}:{tls_server.port}", "--ca-file", str(certs.ca), task_id)
    assert cleartext.returncode != 0 and "--ca-file needs an https:// --server" in cleartext.stderr
    no_file = run_cli("get", *server, "--ca-file", str(certs.dir / "nope.pem"), task_id)
    assert no_file.returncode != 0 and "no such readable file" in no_file.stderr


@pytest.fixture
def simulator():
    sim = Simulator()
    yield sim
    sim.stop()


def download(url: str, ca: Path, *extra: str) -> bytes:
    done = subprocess.run(["curl", "-sS", "--fail", "--noproxy", "*", "--cacert", str(ca), *extra, url],
                          capture_output=True, timeout=T + 5)
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.mark.parametrize("cert_kind", ["ip", "dns-only"])
def test_in_process_workers_reach_their_own_tls_port(server_factory, certs, simulator, tmp_path, cert_kind):
    """With a certificate for 127.0.0.1 the workers call https://127.0.0.1:PORT; with one that
    names only swapline.invalid they call https://swapline.invalid:PORT, connected to
    127.0.0.1:PORT, and the outputs are published under that name."""
    cert, key = (certs.cert, certs.key) if cert_kind == "ip" else (certs.named_cert, certs.named_key)
    srv = server_factory("--store", "memory", *certs.flags(cert=cert, key=key), "--workers", "1", ALLOW_LOCAL_URLS,
                         "--engine", simulator.url, "--storage", f"local:{tmp_path}", "--health-interval-ms", "200")
    name = HOST if cert_kind == "ip" else "swapline.invalid"
    options = [] if cert_kind == "ip" else [("grpc.ssl_target_name_override", name)]
    credentials = grpc.ssl_channel_credentials(root_certificates=certs.ca.read_bytes())
    with grpc.secure_channel(f"{HOST}:{srv.port}", credentials, options=[*CHANNEL_OPTIONS, *options]) as channel:
        stub = Stubs(channel).tasks
        task = stub.CreateTask(pb.CreateTaskRequest(params=sim_params(simulator, "256x256")), timeout=T)
        done = wait_terminal(stub, task.task_id)
    assert done.status == pb.TASK_STATUS_COMPLETED, done.error
    output = done.result.outputs["jpg"]
    assert output.startswith(f"https://{name}:{srv.port}/outputs/{task.task_id}/")
    connect = [] if cert_kind == "ip" else ["--connect-to", f"{name}:{srv.port}:{HOST}:{srv.port}"]
    assert download(output, certs.ca, *connect) == stored_path(tmp_path, output).read_bytes()


def test_in_process_workers_need_a_certificate_they_can_verify(certs, simulator, tmp_path):
    ca_key = certs.dir / "ca.key"
    nameless, nameless_key = make_server_cert(certs.dir, "nameless", (certs.ca, ca_key), "email:ops@example.com")
    stderr = serve_fails(*certs.flags(cert=nameless, key=nameless_key), "--workers", "1", "--engine", simulator.url)
    assert "names neither 127.0.0.1 nor any DNS name or IP address" in stderr


def test_a_separate_worker_verifies_the_server_with_ca_file(server_factory, certs, simulator, tmp_path):
    tls_server = server_factory("--store", "memory", ALLOW_LOCAL_URLS, *certs.flags())
    url = f"https://{HOST}:{tls_server.port}"
    common = ["--engine", simulator.url, "--storage", f"local:{tmp_path}", "--health-interval-ms", "200", ALLOW_LOCAL_URLS]
    untrusting = subprocess.Popen([str(BINARY), "worker", "--server", url, *common],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    worker = None
    try:
        assert "swapline worker started" in untrusting.stdout.readline().decode()
        with secure_channel(tls_server.port, certs.ca.read_bytes()) as channel:
            stub = Stubs(channel).tasks
            task = stub.CreateTask(pb.CreateTaskRequest(params=sim_params(simulator, "256x256")), timeout=T)
            # A worker that cannot verify the server never gets the task.
            time.sleep(1.5)
            assert stub.GetTask(pb.GetTaskRequest(task_id=task.task_id), timeout=T).status == pb.TASK_STATUS_PENDING
            untrusting.terminate()
            untrusting.wait(20)
            assert b"certificate" in untrusting.stderr.read()

            worker = subprocess.Popen([str(BINARY), "worker", "--server", url, "--ca-file", str(certs.ca), *common],
                                      stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, start_new_session=True)
            assert "swapline worker started" in worker.stdout.readline().decode()
            done = wait_terminal(stub, task.task_id)
            assert done.status == pb.TASK_STATUS_COMPLETED, done.error
            assert done.result.outputs["jpg"].startswith(url + "/outputs/")
    finally:
        for proc in (untrusting, worker):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait(10)
            if proc is not None:
                for pipe in (proc.stdout, proc.stderr):
                    if pipe is not None:
                        pipe.close()


# --------------------------------------------------------------------------------------------
# HAProxy in front (docs/deploy.md): TLS ended at the balancer, or carried on to the servers
# --------------------------------------------------------------------------------------------


class TLSHAProxy(services.LoadBalancer):
    """deploy/haproxy.cfg as the other balancer tests render it, then changed as docs/deploy.md
    says: `ssl crt … alpn h2,http/1.1` on the bind and, when `backend_ca` is given (servers
    that serve TLS themselves), `ssl verify required ca-file … alpn h2 check-alpn http/1.1` on
    the servers instead of `proto h2` (HAProxy 2.6's HTTP/2 health checks over TLS time out,
    against nghttpd too)."""

    def __init__(self, backends, crt: Path, backend_ca: Path | None):
        super().__init__("haproxy", backends)
        self.crt, self.backend_ca = crt, backend_ca

    def _configure(self) -> list[str]:
        argv = super()._configure()
        path = self.tmpdir / "haproxy.cfg"
        lines = []
        for line in path.read_text().splitlines():
            words = line.split()
            if words[:1] == ["bind"]:
                line += f" ssl crt {self.crt} alpn h2,http/1.1"
            elif words[:1] == ["default-server"] and self.backend_ca is not None:
                line = line.replace(" proto h2", "")
            elif words[:1] == ["server"] and self.backend_ca is not None:
                line += f" ssl verify required ca-file {self.backend_ca} alpn h2 check-alpn http/1.1"
            lines.append(line)
        path.write_text("\n".join(lines) + "\n")
        check = subprocess.run([services.HAPROXY_BIN, "-c", "-q", "-f", str(path)], capture_output=True, text=True)
        if check.returncode != 0:
            raise RuntimeError(f"haproxy rejects the TLS config:\n{check.stdout}{check.stderr}")
        return argv


@pytest.mark.parametrize("backends", ["h2c", "tls"])
def test_haproxy_terminates_tls_in_front_of_cleartext_or_tls_servers(server_factory, certs, tmp_path, backends):
    flags = ["--store", "memory", *(certs.flags() if backends == "tls" else [])]
    servers = [server_factory(*flags), server_factory(*flags)]
    crt = tmp_path / "haproxy.pem"
    crt.write_bytes(certs.cert.read_bytes() + certs.key.read_bytes())
    lb = TLSHAProxy(servers, crt, certs.ca if backends == "tls" else None)
    try:
        lb.start()
        with secure_channel(lb.grpc_port, certs.ca.read_bytes()) as channel:
            stubs = Stubs(channel)
            # Each server keeps its own (memory) queue: calls that need no shared state.
            ids = {stubs.tasks.CreateTask(create_request(), timeout=T).task_id for _ in range(20)}
            assert len(ids) == 20
            watch = stubs.health.Watch(health_pb2.HealthCheckRequest(), timeout=T)
            assert next(watch).status == health_pb2.HealthCheckResponse.SERVING
            watch.cancel()
        for version in ("--http1.1", "--http2"):
            health = curl(version, "--cacert", str(certs.ca), f"https://{HOST}:{lb.grpc_port}/health")
            assert health.returncode == 0 and json.loads(health.stdout)["status"] == "ok", health.stderr
        # Both servers took calls, and HAProxy's checks reach them (over TLS when they serve it).
        states = lb.server_states()
        assert all(s["status"] == "UP" and int(s["stot"]) > 0 for s in states.values()), states
    finally:
        lb.stop()


# --------------------------------------------------------------------------------------------
# Graceful shutdown over TLS
# --------------------------------------------------------------------------------------------


def test_sigterm_drains_tls_connections_within_the_grace(server_factory, certs):
    """GOAWAY reaches TLS connections too: an idle one and one with an open watch are closed
    within --shutdown-grace-ms and the server exits 0."""
    srv = server_factory("--store", "memory", "--shutdown-grace-ms", "2000", *certs.flags())
    idle = secure_channel(srv.port, certs.ca.read_bytes())
    busy = secure_channel(srv.port, certs.ca.read_bytes())
    try:
        Stubs(idle).health.Check(health_pb2.HealthCheckRequest(), timeout=T)
        stubs = Stubs(busy)
        task = stubs.tasks.CreateTask(create_request(), timeout=T)
        watch = stubs.tasks.WatchTask(pb.WatchTaskRequest(task_id=task.task_id), timeout=60)
        assert next(watch).task.status == pb.TASK_STATUS_PENDING
        t0 = time.monotonic()
        srv.signal(signal.SIGTERM)
        assert srv.wait(timeout=2.0 + 8) == 0
        assert time.monotonic() - t0 < 2.0 + 3, "exceeded the shutdown grace"
        with pytest.raises(grpc.RpcError):
            for _ in watch:
                pass
    finally:
        idle.close()
        busy.close()


# --------------------------------------------------------------------------------------------
# TLS with access control: tokens travel encrypted, in-process workers still get in
# --------------------------------------------------------------------------------------------


def test_tokens_over_tls_with_in_process_workers(server_factory, certs, simulator, tmp_path):
    tokens = tmp_path / "tokens"
    tokens.write_text("client tls-client-token\n")
    srv = server_factory("--store", "memory", *certs.flags(), "--auth-tokens-file", str(tokens), ALLOW_LOCAL_URLS,
                         "--workers", "1", "--engine", simulator.url, "--storage", f"local:{tmp_path / 'out'}",
                         "--health-interval-ms", "200")
    with secure_channel(srv.port, certs.ca.read_bytes()) as channel:
        stub = Stubs(channel).tasks
        with pytest.raises(grpc.RpcError) as refused:
            stub.GetTask(pb.GetTaskRequest(task_id="task_x"), timeout=T)
        assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
    # The CLI with its token and the CA; the in-process worker (its own token, the server's
    # certificate) completes the task.
    server = ["--server", f"https://{HOST}:{srv.port}", "--ca-file", str(certs.ca), "--token", "tls-client-token"]
    inputs = ["--source", simulator.sample("source.jpg"), "--target", simulator.sample("target.jpg"),
              "--resolution", "256x256"]
    created = run_cli("create", *server, *inputs, "--watch")
    assert created.returncode == 0, created.stderr
    assert "COMPLETED" in created.stdout
