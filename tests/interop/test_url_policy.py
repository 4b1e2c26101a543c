"""The URL policy (SSRF protection, docs/security.md) against the real binary.

- The URL table (Tests/url-policy-cases.json, the same file the Swift unit tests read) over
  CreateTask and ProcessSync on gRPC and REST: every internal spelling and every malformed URL is
  INVALID_ARGUMENT / 400 naming the field; public URLs are accepted, and a public-looking name is
  accepted without any lookup.
- The same table over the real download path: a server that accepts local URLs
  (--allow-private-urls) and a separate `swapline worker` with the default policy, which refuses
  every local spelling at connect time; nothing reaches the server listening right there.
- A redirect chain served here, allowed for its first hops (--url-allow-host for this server's
  exact port), refused at the hop that turns inward (another loopback port, 169.254.169.254).
- A host name that resolves to loopback through the system resolver (an /etc/hosts entry seen
  only by the worker: it runs in a mount namespace of its own, the machine's file is untouched)
  is refused at connect time; an allow-listed name of the same file is fetched, directly, while
  the worker's environment names a proxy that does not exist.
- The engine's error text stays in the worker's log.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import grpc
import httpx
import pytest

from support import ALLOW_LOCAL_URLS, BINARY, HOST, ROOT, Stubs, tasks_pb2 as pb
from test_worker import Simulator, wait_terminal

T = 10
CASES = json.loads((ROOT / "Tests" / "url-policy-cases.json").read_text())
LOCAL = [case for case in CASES["refused"] if case["local"]]


def fill(template: str, port: int = 80) -> str:
    return template.replace("{port}", str(port)).replace("{long}", "a" * 2100)


def case_id(case) -> str:
    return case["form"]


# ---------------------------------------------------------------------------------------------
# CreateTask and ProcessSync, gRPC and REST
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def clients(module_server):
    stubs = Stubs(module_server.channel())
    with httpx.Client(base_url=f"http://{HOST}:{module_server.port}", timeout=T, trust_env=False) as http:
        yield stubs, http


def assert_refused_everywhere(clients, url: str) -> None:
    stubs, http = clients
    good = "https://example.com/target.jpg"
    for call, request in [
        (stubs.tasks.CreateTask, pb.CreateTaskRequest(params=pb.FaceSwapParams(source_url=url, target_url=good))),
        (stubs.tasks.ProcessSync, pb.ProcessSyncRequest(params=pb.FaceSwapParams(source_url=good, target_url=url))),
    ]:
        with pytest.raises(grpc.RpcError) as refused:
            call(request, timeout=T)
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        field = "params.source_url" if call == stubs.tasks.CreateTask else "params.target_url"
        assert refused.value.details().startswith(field + " "), refused.value.details()
    for route in ["/api/face-swap/create-task", "/api/face-swap/process"]:
        r = http.post(route, json={"source_url": url, "target_url": good})
        assert r.status_code == 400, (route, r.status_code, r.text)
        assert r.json()["detail"].startswith("params.source_url "), r.text


@pytest.mark.parametrize("case", CASES["refused"], ids=case_id)
def test_every_internal_spelling_is_refused_on_both_surfaces(clients, case):
    url = fill(case["url"], 8000)
    assert_refused_everywhere(clients, url)
    stubs, _ = clients
    with pytest.raises(grpc.RpcError) as refused:
        stubs.tasks.CreateTask(pb.CreateTaskRequest(params=pb.FaceSwapParams(
            source_url=url, target_url="https://example.com/t.jpg")), timeout=T)
    expected = "must not point to localhost" if case["means"] == "localhost" else "must not point to a private or special-purpose address"
    assert expected in refused.value.details()


@pytest.mark.parametrize("case", CASES["malformed"], ids=case_id)
def test_every_malformed_url_is_refused_on_both_surfaces(clients, case):
    assert_refused_everywhere(clients, fill(case["url"]))


@pytest.mark.parametrize("case", CASES["accepted"], ids=lambda case: case["url"])
def test_public_urls_are_accepted_as_sent(clients, case):
    stubs, http = clients
    task = stubs.tasks.CreateTask(pb.CreateTaskRequest(params=pb.FaceSwapParams(
        source_url=case["url"], target_url=case["url"])), timeout=T)
    assert task.params.source_url == case["url"]  # stored as the client wrote it
    r = http.post("/api/face-swap/create-task", json={"source_url": case["url"], "target_url": case["url"]})
    assert r.status_code == 200, r.text
    stubs.tasks.CancelTask(pb.CancelTaskRequest(task_id=task.task_id), timeout=T)
    stubs.tasks.CancelTask(pb.CancelTaskRequest(task_id=r.json()["task_id"]), timeout=T)


def test_a_name_that_resolves_nowhere_is_accepted_without_a_lookup(clients):
    """CreateTask does no DNS: a name under .invalid (which never resolves) is accepted."""
    stubs, _ = clients
    task = stubs.tasks.CreateTask(pb.CreateTaskRequest(params=pb.FaceSwapParams(
        source_url="https://images.swapline.invalid/a.jpg", target_url="https://example.com/t.jpg")), timeout=T)
    assert task.status == pb.TASK_STATUS_PENDING


def test_the_policy_is_logged_at_start(server_factory):
    strict = server_factory("--store", "memory")
    relaxed = server_factory("--store", "memory", ALLOW_LOCAL_URLS, "--url-deny-host", "10.0.0.0/8")
    assert "URL policy of CreateTask: public addresses only" in strict.stderr_tail()
    tail = relaxed.stderr_tail()
    assert "warning" in tail and "private and loopback addresses ALLOWED (--allow-private-urls)" in tail
    assert "denied: 10.0.0.0/8" in tail


def test_bad_host_patterns_stop_the_server_at_start():
    result = subprocess.run([str(BINARY), "serve", "--url-allow-host", "10.0.0.0/33"],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode != 0
    assert "10.0.0.0/33" in result.stderr and "prefix length" in result.stderr


def test_the_deny_list_refuses_what_the_allow_flags_let_through(server_factory):
    srv = server_factory("--store", "memory", ALLOW_LOCAL_URLS, "--url-deny-host", "169.254.0.0/16",
                         "--url-deny-host", "*.internal.example")
    stubs = Stubs(srv.channel())
    for url in ["http://2852039166/latest/meta-data/", "https://files.internal.example/a.jpg"]:
        with pytest.raises(grpc.RpcError) as refused:
            stubs.tasks.CreateTask(pb.CreateTaskRequest(params=pb.FaceSwapParams(
                source_url=url, target_url="https://example.com/t.jpg")), timeout=T)
        assert "names a host this service does not fetch from" in refused.value.details()
    stubs.tasks.CreateTask(pb.CreateTaskRequest(params=pb.FaceSwapParams(
        source_url="http://127.0.0.1:8000/a.jpg", target_url="https://example.com/t.jpg")), timeout=T)


# ---------------------------------------------------------------------------------------------
# The worker's download path
# ---------------------------------------------------------------------------------------------


class Worker:
    """A `swapline worker` whose log goes to a file; `prefix` runs it under another command."""

    def __init__(self, server_port: int, *flags: str, prefix: tuple[str, ...] = (), env: dict | None = None):
        self.dir = Path(tempfile.mkdtemp(prefix="swapline-url-worker-"))
        self.log_path = self.dir / "worker.log"
        log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            [*prefix, str(BINARY), "worker", "--server", f"http://{HOST}:{server_port}", "--health-interval-ms", "200",
             "--retry-base-ms", "50", *flags],
            stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        log.close()
        deadline = time.monotonic() + 30
        while "swapline worker started" not in self.log():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"worker did not start:\n{self.log()}")
            time.sleep(0.05)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def cleanup():
    stops = []
    yield stops.append
    for stop in reversed(stops):
        stop()


def start_sim(cleanup, *flags) -> Simulator:
    sim = Simulator(*flags)
    cleanup(sim.stop)
    return sim


def start_worker(cleanup, *args, **kwargs) -> Worker:
    worker = Worker(*args, **kwargs)
    cleanup(worker.stop)
    return worker


def test_the_worker_refuses_every_local_spelling_at_connect_time(server_factory, cleanup, tmp_path):
    """The server lets every local URL through (--allow-private-urls); the worker, with the
    default policy, refuses each one before connecting: the simulator serving those very paths
    on this machine never sees a request."""
    sim = start_sim(cleanup)
    port = int(sim.url.rsplit(":", 1)[1])
    srv = server_factory("--store", "memory", ALLOW_LOCAL_URLS)
    worker = start_worker(cleanup, srv.port, "--engine", sim.url, "--storage", f"local:{tmp_path}", "--concurrency", "4")
    stub = Stubs(srv.channel()).tasks
    created = {}
    for case in LOCAL:
        url = fill(case["url"], port).replace("/a.jpg", "/samples/source.jpg")
        created[case["form"]] = stub.CreateTask(pb.CreateTaskRequest(params=pb.FaceSwapParams(
            source_url=url, target_url=url)), timeout=T).task_id
    for form, task_id in created.items():
        done = wait_terminal(stub, task_id)
        assert done.status == pb.TASK_STATUS_FAILED, (form, done)
        assert done.error.startswith("input: params."), (form, done.error)
        assert re.search(r"must not point to (localhost|a private or special-purpose address)", done.error), (form, done.error)
    counters = sim.admin()["counters"]
    assert counters["sample_requests"] == 0 and counters["process_requests"] == 0, counters
    assert "failed: input: params." in worker.log()


class RedirectServer:
    """A loopback HTTP server that answers from a table of path -> (status, headers, body) and
    counts requests per path."""

    def __init__(self, routes: dict):
        self.routes = routes
        self.hits: list[str] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_GET(self):
                outer.hits.append(self.path)
                status, headers, body = outer.routes.get(self.path, (404, {}, b""))
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value.format(port=outer.port))
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer((HOST, 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def url(self, path: str) -> str:
        return f"http://{HOST}:{self.port}{path}"

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def sample_jpeg(sim: Simulator) -> bytes:
    with httpx.Client(trust_env=False) as client:
        return client.get(sim.sample("source.jpg")).content


def test_a_redirect_chain_is_refused_at_the_hop_that_turns_inward(server_factory, cleanup, tmp_path):
    sim = start_sim(cleanup)
    decoy = RedirectServer({})  # another port on loopback: must never be reached
    cleanup(decoy.stop)
    jpeg = sample_jpeg(sim)
    site = RedirectServer({
        "/a.jpg": (200, {"Content-Type": "image/jpeg"}, jpeg),
        "/start": (302, {"Location": "/hop"}, b""),
        "/hop": (301, {"Location": "http://127.0.0.1:{port}/a.jpg"}, b""),
        "/inward": (302, {"Location": "/inward-hop"}, b""),
        "/inward-hop": (307, {"Location": decoy.url("/secret.jpg")}, b""),
        "/metadata": (302, {"Location": "http://169.254.169.254/latest/meta-data/"}, b""),
        "/decimal": (308, {"Location": "http://2130706433:" + str(decoy.port) + "/x"}, b""),
    })
    cleanup(site.stop)
    srv = server_factory("--store", "memory", "--url-allow-host", f"127.0.0.1:{site.port}")
    # The engine is trusted and configured: it is not subject to the URL policy.
    start_worker(cleanup, srv.port, "--engine", sim.url, "--storage", f"local:{tmp_path}", "--concurrency", "3",
                 "--url-allow-host", f"127.0.0.1:{site.port}")
    stub = Stubs(srv.channel()).tasks

    def run(source_path: str) -> pb.Task:
        task = stub.CreateTask(pb.CreateTaskRequest(params=pb.FaceSwapParams(
            source_url=site.url(source_path), target_url=site.url("/a.jpg"), resolution="256x256")), timeout=T)
        return wait_terminal(stub, task.task_id)

    done = run("/start")
    assert done.status == pb.TASK_STATUS_COMPLETED, done.error
    for path, hop, why in [
        ("/inward", decoy.url("/secret.jpg"), "127.0.0.1 is loopback"),
        ("/metadata", "http://169.254.169.254/latest/meta-data/", "169.254.169.254 is link-local"),
        ("/decimal", f"http://2130706433:{decoy.port}/x", "127.0.0.1 is loopback"),
    ]:
        done = run(path)
        assert done.status == pb.TASK_STATUS_FAILED, (path, done)
        assert done.error.startswith(f"input: params.source_url redirects to {hop}, which must not point to"), done.error
        assert why in done.error, done.error
    assert decoy.hits == []
    assert {"/start", "/hop", "/inward", "/inward-hop", "/metadata", "/decimal"} <= set(site.hits)


def can_unshare_mounts() -> bool:
    if not shutil.which("unshare") or not shutil.which("mount"):
        return False
    probe = subprocess.run(["unshare", "--mount", "--propagation", "private", "true"], capture_output=True)
    return probe.returncode == 0


@pytest.mark.skipif(not can_unshare_mounts(), reason="needs `unshare --mount` (root or CAP_SYS_ADMIN)")
def test_a_name_resolving_to_loopback_is_refused_at_connect_time(server_factory, cleanup, tmp_path):
    """Real getaddrinfo: the worker runs in a mount namespace of its own whose /etc/hosts (a
    bind mount, invisible to the rest of the machine) maps two names to 127.0.0.1. The server,
    with the default policy, accepts both (they look public; CreateTask does no lookup). The
    worker refuses `inward.test` at connect time and fetches `trusted.test`, which its
    --url-allow-host names, from the address it resolved: pinned, not looked up again, and not
    through the proxy its environment names (which does not exist)."""
    sim = start_sim(cleanup)
    port = int(sim.url.rsplit(":", 1)[1])
    hosts = tmp_path / "hosts"
    hosts.write_text(Path("/etc/hosts").read_text() + "\n127.0.0.1 inward.test trusted.test\n")
    srv = server_factory("--store", "memory")
    env = dict(os.environ, http_proxy="http://127.0.0.1:9", HTTPS_PROXY="http://127.0.0.1:9",
               ALL_PROXY="http://127.0.0.1:9", all_proxy="http://127.0.0.1:9", no_proxy="127.0.0.1", NO_PROXY="127.0.0.1")
    prefix = ("unshare", "--mount", "--propagation", "private", "sh", "-c",
              f'mount --bind "{hosts}" /etc/hosts && exec "$0" "$@"')
    worker = start_worker(cleanup, srv.port, "--engine", sim.url, "--storage", f"local:{tmp_path / 'out'}",
                          "--url-allow-host", "trusted.test", prefix=prefix, env=env)
    assert subprocess.run(["getent", "hosts", "inward.test"], capture_output=True).returncode != 0, \
        "the machine's own /etc/hosts must not know the test names"
    stub = Stubs(srv.channel()).tasks

    def run(host: str) -> pb.Task:
        base = f"http://{host}:{port}/samples"
        task = stub.CreateTask(pb.CreateTaskRequest(params=pb.FaceSwapParams(
            source_url=f"{base}/source.jpg", target_url=f"{base}/target.jpg", resolution="256x256")), timeout=T)
        return wait_terminal(stub, task.task_id)

    refused = run("inward.test")
    assert refused.status == pb.TASK_STATUS_FAILED
    assert refused.error == ("input: params.source_url cannot be fetched: its host does not resolve to a public address"), refused.error
    assert "127.0.0.1" not in refused.error  # what the resolver said stays in the log
    assert sim.counter("sample_requests") == 0
    assert "inward.test resolves to 127.0.0.1, loopback" in worker.log()

    fetched = run("trusted.test")
    assert fetched.status == pb.TASK_STATUS_COMPLETED, fetched.error
    assert sim.counter("sample_requests") == 2


def test_the_engines_error_text_stays_in_the_log(server_factory, cleanup, tmp_path):
    sim = start_sim(cleanup, "--fail-next", "1", "--fail-status", "422")
    srv = server_factory("--store", "memory", "--workers", "1", "--engine", sim.url, "--storage", f"local:{tmp_path}",
                         "--url-allow-host", f"127.0.0.1:{sim.url.rsplit(':', 1)[1]}")
    stub = Stubs(srv.channel()).tasks
    task = stub.CreateTask(pb.CreateTaskRequest(params=pb.FaceSwapParams(
        source_url=sim.sample("source.jpg"), target_url=sim.sample("target.jpg"))), timeout=T)
    done = wait_terminal(stub, task.task_id)
    assert done.error == "facefusion: engine rejected the job with HTTP 422"
    deadline = time.monotonic() + 5
    while "simulated HTTP 422" not in srv.stderr_tail():
        assert time.monotonic() < deadline, srv.stderr_tail()
        time.sleep(0.1)
