"""The README's first command, `tools/demo.sh`, run as a newcomer would (with the already built
binary, so the test does not rebuild): a face-swap task goes through the whole system."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

from PIL import Image

from support import BINARY, ROOT


def command_line(pid: str) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:  # gone meanwhile
        return ""


def test_the_demo_runs_a_task_end_to_end():
    demo_dir = Path(tempfile.mkdtemp(prefix="swapline-demo-"))
    try:
        env = dict(os.environ, SWAPLINE_BIN=str(BINARY), SWAPLINE_DEMO_DIR=str(demo_dir))
        run = subprocess.run([str(ROOT / "tools" / "demo.sh")], cwd=ROOT, env=env, capture_output=True,
                             text=True, timeout=600)
        assert run.returncode == 0, run.stdout + run.stderr
        assert re.search(r"^task_\w+ COMPLETED 100% attempt \d+$", run.stdout, re.M), run.stdout
        assert re.search(r"/outputs/task_\w+/[0-9a-f]{32}/result\.webp -> 200 image/webp", run.stdout), run.stdout
        match = re.search(r"DEMO OK: task (task_\w+) COMPLETED; results in (\S+)", run.stdout)
        assert match, run.stdout
        results = Path(match.group(2))
        assert results == demo_dir / "outputs" / match.group(1)
        for ext, pil_format in {"jpg": "JPEG", "gif": "GIF", "webp": "WEBP"}.items():
            stored = list(results.glob(f"*/result.{ext}"))  # under the file's unguessable key
            assert len(stored) == 1, stored
            with Image.open(stored[0]) as image:
                assert image.format == pil_format
        # The demo stops the simulator and the server it started.
        assert not [pid for pid in os.listdir("/proc") if pid.isdigit() and str(demo_dir) in command_line(pid)]
    finally:
        shutil.rmtree(demo_dir, ignore_errors=True)
