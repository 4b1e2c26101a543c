"""The web dashboard (`/ui`, issue 13) in headless Chromium driven by Selenium: the queue
figures change live as a fake consumer (grpcio) leases and completes tasks, the task list pages
and filters, a task page shows its history, live progress and result image (served by the
server's own `/outputs/`), the cancel button, and the token prompt on a server with tokens.
Plus the headers and the stats event stream with httpx over HTTP/1.1 and HTTP/2.

Screenshots of each page, desktop and 390x844, go to `$SWAPLINE_ARTIFACTS/dashboard` (default
tests/interop/artifacts/dashboard, gitignored); the run prints where."""

from __future__ import annotations

import io
import os
import shutil
import signal
import tempfile
from pathlib import Path

import grpc
import httpx
import pytest
from PIL import Image

from support import HOST, SwaplineServer, params, tasks_pb2 as pb, tasks_pb2_grpc, wait_for

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
T = 10
# Generous: Chromium on a busy 2-core machine.
UI_WAIT_S = 30
ADMIN, CLIENT, OTHER_CLIENT = "admin-token-ui", "client-token-ui", "client-token-other"
TOKENS = f"admin:{ADMIN},client:{CLIENT},client:{OTHER_CLIENT},consumer:consumer-token-ui"

ARTIFACTS = Path(os.environ.get("SWAPLINE_ARTIFACTS", Path(__file__).parent / "artifacts")) / "dashboard"


# ---------------------------------------------------------------------------------------------
# Fixtures: one Chromium for the module, a server per test
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.exists() or not CHROMEDRIVER.exists():
        pytest.skip(f"Chromium not installed ({CHROMIUM} and {CHROMEDRIVER}; tools/install-deps.sh installs them)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="swapline-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", f"--user-data-dir={profile}",
                 "--window-size=1280,900", "--disable-gpu", "--no-first-run"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    driver.set_page_load_timeout(UI_WAIT_S)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    print(f"\ndashboard screenshots: {ARTIFACTS}")
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture
def page(browser):
    """The browser with a fresh tab state: no token in sessionStorage, desktop size."""
    yield browser
    browser.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
    browser.get("about:blank")
    browser.delete_all_cookies()


def screenshot(driver, name: str) -> None:
    """Saves the page as `name`-desktop.png and, at a phone's 390x844, `name`-phone.png."""
    driver.save_screenshot(str(ARTIFACTS / f"{name}-desktop.png"))
    # Not `mobile`: a phone browser zooms out to fit a page that is too wide, which would hide
    # what the check below looks for.
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                           {"width": 390, "height": 844, "deviceScaleFactor": 2, "mobile": False})
    try:
        wait_for(lambda: driver.execute_script("return window.innerWidth") == 390, 5, what="phone viewport")
        # Nothing makes the page wider than the screen (wide tables scroll in their box).
        assert driver.execute_script("return document.documentElement.scrollWidth") <= 390
        driver.save_screenshot(str(ARTIFACTS / f"{name}-phone.png"))
    finally:
        driver.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})


def no_console_errors(driver) -> None:
    """No CSP violation or script error on the page."""
    errors = [e["message"] for e in driver.get_log("browser") if e["level"] == "SEVERE"]
    assert not errors, errors


def until(driver, predicate, what: str, timeout: float = UI_WAIT_S):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout, poll_frequency=0.1).until(lambda d: predicate(d), message=f"waiting for {what}")


def text(driver, css: str) -> str:
    return driver.execute_script("const e = document.querySelector(arguments[0]); return e ? e.textContent : null", css)


def stat(driver, workflow: str, status: str) -> str | None:
    return text(driver, f'#stats-body tr[data-workflow="{workflow}"] td[data-status="{status}"]')


def list_ids(driver) -> list[str]:
    return driver.execute_script("return [...document.querySelectorAll('#task-table tbody tr')].map(r => r.dataset.taskId)")


def md(token: str | None):
    return None if token is None else (("authorization", f"Bearer {token}"),)


class Queue:
    """Creates tasks and plays the consumer (FetchTask, UpdateStatus) over grpcio."""

    def __init__(self, srv: SwaplineServer, token: str | None = None, consumer_token: str | None = None):
        channel = srv.channel()
        self.tasks = tasks_pb2_grpc.TaskServiceStub(channel)
        self.consumer = tasks_pb2_grpc.ConsumerServiceStub(channel)
        self.md = md(token)
        self.consumer_md = md(consumer_token)

    def create(self, workflow: str = "") -> str:
        return self.tasks.CreateTask(pb.CreateTaskRequest(params=params(), workflow=workflow), timeout=T, metadata=self.md).task_id

    def lease(self) -> pb.FetchTaskResponse:
        leased = self.consumer.FetchTask(pb.FetchTaskRequest(consumer_id="ui-test", wait_ms=5000), timeout=T,
                                         metadata=self.consumer_md)
        assert leased.task.task_id
        return leased

    def report(self, leased, status, **fields) -> pb.Task:
        return self.consumer.UpdateStatus(
            pb.UpdateStatusRequest(task_id=leased.task.task_id, lease_id=leased.lease_id, status=status, **fields),
            timeout=T, metadata=self.consumer_md)

    def complete(self, leased, url: str = "https://example.com/out.jpg") -> pb.Task:
        return self.report(leased, pb.TASK_STATUS_COMPLETED, progress=1.0,
                           result=pb.TaskResult(output_url=url, outputs={"png": url}, processing_time=1.5))


def result_image(srv: SwaplineServer) -> str:
    """A PNG in the server's local storage directory; its URL on the server."""
    directory = srv.tmpdir / "data" / "outputs" / "task_ui" / "k3y"
    directory.mkdir(parents=True, exist_ok=True)
    png = io.BytesIO()
    Image.new("RGB", (64, 48), (200, 60, 30)).save(png, "PNG")
    (directory / "result.png").write_bytes(png.getvalue())
    return f"http://{HOST}:{srv.port}/outputs/task_ui/k3y/result.png"


# ---------------------------------------------------------------------------------------------
# Headers and the stats stream, without a browser
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("http2", [False, True])
def test_files_carry_security_headers_and_revalidate(server_factory, http2):
    srv = server_factory("--store", "memory")
    base = f"http://{HOST}:{srv.port}"
    with httpx.Client(http1=not http2, http2=http2, timeout=T, trust_env=False) as client:
        shell = client.get(f"{base}/ui")
        assert shell.status_code == 200 and shell.headers["content-type"] == "text/html; charset=utf-8"
        assert shell.headers["content-security-policy"].startswith("default-src 'self';")
        assert "img-src 'self' https: http:" in shell.headers["content-security-policy"]
        assert shell.headers["x-content-type-options"] == "nosniff"
        assert shell.headers["x-frame-options"] == "DENY"
        assert shell.headers["cache-control"] == "no-cache"
        for path in ("/ui/", "/ui/task/task_01ABC"):
            same = client.get(f"{base}{path}")
            assert same.status_code == 200 and same.content == shell.content and same.headers["etag"] == shell.headers["etag"]
        script = client.get(f"{base}/ui/app.js")
        assert script.headers["content-type"] == "text/javascript; charset=utf-8" and b"readEvents" in script.content
        assert client.get(f"{base}/ui/app.css").headers["content-type"] == "text/css; charset=utf-8"
        cached = client.get(f"{base}/ui/app.js", headers={"if-none-match": script.headers["etag"]})
        assert cached.status_code == 304 and cached.content == b"" and cached.headers["etag"] == script.headers["etag"]
        assert client.get(f"{base}/ui/missing.js").status_code == 404
        assert client.post(f"{base}/ui/").status_code == 405


@pytest.mark.parametrize("http2", [False, True])
def test_stats_events_stream_the_figures_and_follow_changes(server_factory, http2):
    srv = server_factory("--store", "memory")
    queue = Queue(srv)
    queue.create()
    with httpx.Client(http1=not http2, http2=http2, timeout=T, trust_env=False) as client:
        with client.stream("GET", f"http://{HOST}:{srv.port}/api/face-swap/stats/events") as events:
            assert events.status_code == 200 and events.headers["content-type"] == "text/event-stream"
            lines = events.iter_lines()
            first = next(line for line in lines if line.startswith("data: "))
            assert '"status":"PENDING","count":1' in first
            queue.create()
            second = next(line for line in lines if line.startswith("data: "))
            assert '"status":"PENDING","count":2' in second


def test_shutdown_ends_the_stats_streams_at_once(server_factory):
    """An open dashboard does not hold a graceful shutdown for its whole grace (60 s here)."""
    srv = server_factory("--store", "memory", "--shutdown-grace-ms", "60000")
    with httpx.Client(timeout=T, trust_env=False) as client:
        with client.stream("GET", f"http://{HOST}:{srv.port}/api/face-swap/stats/events") as events:
            lines = events.iter_lines()
            next(line for line in lines if line.startswith("data: "))
            srv.signal(signal.SIGTERM)
            assert [line for line in lines if line.startswith("data: ")] == []  # the stream ends
    assert srv.wait(timeout=30) == 0


# ---------------------------------------------------------------------------------------------
# In the browser
# ---------------------------------------------------------------------------------------------


def test_stats_change_live_as_tasks_are_created_and_completed(server_factory, page):
    srv = server_factory("--store", "memory")
    queue = Queue(srv)
    for _ in range(3):
        queue.create()
    page.get(f"http://{HOST}:{srv.port}/ui/")
    until(page, lambda d: stat(d, "face_swap", "PENDING") == "3", "3 PENDING in the figures")
    page.execute_script("window.notReloaded = true")

    fourth = queue.create()
    until(page, lambda d: stat(d, "face_swap", "PENDING") == "4", "a 4th PENDING task, live")
    until(page, lambda d: list_ids(d)[:1] == [fourth], "the list's first page, read again")
    leased = queue.lease()
    until(page, lambda d: stat(d, "face_swap", "PROCESSING") == "1" and stat(d, "face_swap", "PENDING") == "3",
          "the lease, live")
    queue.complete(leased)
    until(page, lambda d: stat(d, "face_swap", "COMPLETED") == "1" and stat(d, "face_swap", "PROCESSING") == "0",
          "the completion, live")
    assert stat(page, "face_swap", "ALL") == "4"
    assert page.execute_script("return window.notReloaded") is True
    assert text(page, "#connection") == "live"
    no_console_errors(page)
    screenshot(page, "queue")


def test_task_list_pages_and_filters(server_factory, page):
    srv = server_factory("--store", "memory")
    queue = Queue(srv)
    created = [queue.create() for _ in range(23)]
    completed = queue.complete(queue.lease()).task_id
    page.get(f"http://{HOST}:{srv.port}/ui/")
    newest_first = list(reversed(created))
    until(page, lambda d: list_ids(d) == newest_first[:20], "the first page, newest first")
    assert page.find_element("id", "prev-page").get_property("disabled")
    page.find_element("id", "next-page").click()
    until(page, lambda d: list_ids(d) == newest_first[20:], "the second page")
    assert page.find_element("id", "next-page").get_property("disabled")
    page.find_element("id", "prev-page").click()
    until(page, lambda d: list_ids(d) == newest_first[:20], "back to the first page")

    from selenium.webdriver.support.ui import Select

    Select(page.find_element("id", "filter-status")).select_by_value("COMPLETED")
    page.find_element("css selector", "#filters button[type=submit]").click()
    until(page, lambda d: list_ids(d) == [completed], "only the completed task")
    assert "status=COMPLETED" in page.current_url
    screenshot(page, "list-filtered")

    page.find_element("id", "filter-workflow").send_keys("no_such_workflow")
    page.find_element("css selector", "#filters button[type=submit]").click()
    until(page, lambda d: list_ids(d) == [] and not d.find_element("id", "list-empty").get_property("hidden"),
          "no task of another workflow")
    # A count in the figures links to the list with its filters.
    page.get(f"http://{HOST}:{srv.port}/ui/")
    until(page, lambda d: stat(d, "face_swap", "PENDING") == "22", "the figures")
    page.find_element("css selector", '#stats-body tr[data-workflow="face_swap"] td[data-status="PENDING"] a').click()
    until(page, lambda d: len(list_ids(d)) == 20 and completed not in list_ids(d), "the PENDING tasks")
    no_console_errors(page)


def test_task_page_shows_history_progress_and_result(server_factory, page):
    srv = server_factory("--store", "memory", "--allow-private-urls")
    queue = Queue(srv)
    task_id = queue.create()
    leased = queue.lease()
    page.get(f"http://{HOST}:{srv.port}/ui/#/task/{task_id}")
    until(page, lambda d: text(d, "#task-status") == "PROCESSING", "the task's state")
    page.execute_script("window.notReloaded = true")

    queue.report(leased, pb.TASK_STATUS_PROCESSING, progress=0.5, message="swapping")
    until(page, lambda d: d.find_element("id", "task-progress").get_property("value") == 0.5, "live progress")
    queue.complete(leased, result_image(srv))
    until(page, lambda d: text(d, "#task-status") == "COMPLETED", "the completion, live")
    history = lambda d: d.execute_script(  # noqa: E731
        "return [...document.querySelectorAll('#task-history tbody tr')].map(r => r.cells[1].textContent)")
    until(page, lambda d: history(d) == ["PENDING", "PROCESSING", "COMPLETED"], "the history with every change")
    until(page, lambda d: d.execute_script(
        "const i = document.querySelector('#task-result img'); return i && i.complete && i.naturalWidth") == 64,
        "the result image, loaded")
    assert page.find_element("id", "cancel-task").get_property("hidden")
    assert page.execute_script("return window.notReloaded") is True
    assert "source.jpg" in text(page, "#task-params")
    no_console_errors(page)
    screenshot(page, "task-completed")

    # /ui/task/ID is the same page.
    page.get(f"http://{HOST}:{srv.port}/ui/task/{task_id}")
    until(page, lambda d: text(d, "#task-status") == "COMPLETED", "the task by path")


def test_cancel_button_cancels_the_task(server_factory, page):
    srv = server_factory("--store", "memory")
    queue = Queue(srv)
    task_id = queue.create()
    page.get(f"http://{HOST}:{srv.port}/ui/#/task/{task_id}")
    until(page, lambda d: text(d, "#task-status") == "PENDING", "the pending task")
    screenshot(page, "task-pending")
    page.find_element("id", "cancel-task").click()
    until(page, lambda d: text(d, "#task-status") == "CANCELLED", "the cancellation")
    assert queue.tasks.GetTask(pb.GetTaskRequest(task_id=task_id), timeout=T).status == pb.TASK_STATUS_CANCELLED
    until(page, lambda d: d.find_element("id", "cancel-task").get_property("hidden"), "the button gone")
    assert text(page, "#task-error") == ""
    no_console_errors(page)


def test_token_prompt_and_own_tasks_only(page):
    # server_factory takes flags only; the tokens come from the environment.
    srv = SwaplineServer("--store", "memory", env={"SWAPLINE_AUTH_TOKENS": TOKENS}).start()
    try:
        mine, theirs = Queue(srv, CLIENT), Queue(srv, OTHER_CLIENT)
        own = [mine.create(), mine.create()]
        theirs.create()
        page.get(f"http://{HOST}:{srv.port}/ui/")
        until(page, lambda d: d.find_element("id", "token-input").is_displayed(), "the token prompt")
        screenshot(page, "token-prompt")
        page.find_element("id", "token-input").send_keys("not-a-token\n")
        until(page, lambda d: d.find_element("id", "token-input").is_displayed() and "refused" in text(d, "#token-error"),
              "the prompt again, saying the token was refused")
        page.find_element("id", "token-input").send_keys(CLIENT + "\n")
        until(page, lambda d: stat(d, "face_swap", "PENDING") == "2", "the client's own tasks in the figures")
        until(page, lambda d: sorted(list_ids(d)) == sorted(own), "the client's own tasks in the list")
        assert page.execute_script("return sessionStorage.getItem('swapline.token')") == CLIENT
        # The admin token sees every task.
        page.execute_script("sessionStorage.setItem('swapline.token', arguments[0])", ADMIN)
        page.refresh()
        until(page, lambda d: stat(d, "face_swap", "PENDING") == "3", "every task for the admin")
        no_console_errors_but_401(page)
    finally:
        srv.stop()


def no_console_errors_but_401(driver) -> None:
    """Chromium logs each 401 answer (the prompt's trigger) as an error; nothing else may be."""
    errors = [e["message"] for e in driver.get_log("browser")
              if e["level"] == "SEVERE" and "401 (Unauthorized)" not in e["message"]]
    assert not errors, errors
