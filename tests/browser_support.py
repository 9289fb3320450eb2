"""A real JupyterLab server and headless Chromium (through Python Playwright) for the browser tests.

The server listens on 127.0.0.1 only, with a token and throw-away config, runtime, settings and workspace folders, and
with every outgoing feature (news, update checks) off. Chromium is the system's own, started with flags that keep it
off the network; Playwright never downloads a browser.
"""
from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def chromium_path() -> str | None:
    """The system Chromium (override with $ZREALISM_CHROMIUM), or None when it is not installed."""
    configured = os.environ.get("ZREALISM_CHROMIUM")
    if configured:
        return configured if Path(configured).is_file() else None
    for candidate in (shutil.which("chromium"), "/usr/bin/chromium"):
        if candidate and Path(candidate).is_file():
            return candidate
    return None


def artifacts_dir() -> Path:
    folder = Path(os.environ.get("ZREALISM_TEST_ARTIFACTS") or ROOT / "test-artifacts")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class JupyterLabServer:
    process: subprocess.Popen
    port: int
    token: str
    root_dir: Path
    log_path: Path

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def notebook_url(self, name: str) -> str:
        return f"{self.base_url}/lab/tree/{name}?reset&token={self.token}"

    def api(self, path: str, method: str = "GET", timeout: float = 5.0) -> Any:
        request = urllib.request.Request(f"{self.base_url}{path}", method=method,
                                         headers={"Authorization": f"token {self.token}"},
                                         data=b"" if method == "POST" else None)
        with urllib.request.urlopen(request, timeout=timeout) as response:
            body = response.read()
        return json.loads(body) if body else None

    def log_tail(self, chars: int = 4000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def shutdown(self, timeout: float = 15.0) -> None:
        """Stop through the server's own API (kernels included), then make sure the process is gone."""
        if self.process.poll() is None:
            try:
                self.api("/api/shutdown", method="POST")
            except (urllib.error.URLError, ConnectionError, OSError):
                pass
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.terminate()
                try:
                    self.process.wait(5)
                except subprocess.TimeoutExpired:
                    self.process.kill()
                    self.process.wait(5)


def _quiet_lab_settings(settings_dir: Path) -> None:
    """No news feed, no update check, no toasts over the widgets."""
    folder = settings_dir / "@jupyterlab" / "apputils-extension"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "notification.jupyterlab-settings").write_text(
        json.dumps({"fetchNews": "false", "checkForUpdates": False, "doNotDisturbMode": True}))


def start_jupyterlab(root_dir: Path, home: Path, extra_env: dict[str, str] | None = None,
                     timeout: float = 60.0) -> JupyterLabServer:
    """Start `jupyter lab` serving ``root_dir``; ``home`` holds its throw-away folders and its log."""
    port, token = free_port(), secrets.token_hex(16)
    folders = {name: home / name for name in ("config", "runtime", "settings", "workspaces", "data", "ipython")}
    for folder in folders.values():
        folder.mkdir(parents=True, exist_ok=True)
    _quiet_lab_settings(folders["settings"])
    env = dict(os.environ)
    env.update({
        "JUPYTER_CONFIG_DIR": str(folders["config"]),
        "JUPYTER_RUNTIME_DIR": str(folders["runtime"]),
        "JUPYTERLAB_SETTINGS_DIR": str(folders["settings"]),
        "JUPYTERLAB_WORKSPACES_DIR": str(folders["workspaces"]),
        "JUPYTER_DATA_DIR": str(folders["data"]),
        "IPYTHONDIR": str(folders["ipython"]),
        "JUPYTER_PLATFORM_DIRS": "1",
        "MPLBACKEND": "Agg",
        "PYTHONUNBUFFERED": "1",
    })
    env.update(extra_env or {})
    command = [sys.executable, "-m", "jupyter", "lab", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
               "--port-retries=0", f"--IdentityProvider.token={token}", "--ServerApp.allow_root=True",
               f"--ServerApp.root_dir={root_dir}", "--LabApp.news_url=None",
               "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
               "--LabApp.extension_manager=readonly", "--ServerApp.terminals_enabled=False"]
    log_path = home / "jupyterlab.log"
    log = open(log_path, "wb")  # noqa: SIM115 - stays open for the server's lifetime
    process = subprocess.Popen(command, cwd=root_dir, env=env, stdout=log, stderr=subprocess.STDOUT)
    server = JupyterLabServer(process, port, token, root_dir, log_path)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"jupyter lab exited with {process.returncode}:\n{server.log_tail()}")
        try:
            server.api("/api/status", timeout=2.0)
            return server
        except (urllib.error.URLError, ConnectionError, OSError):
            time.sleep(0.3)
    server.shutdown()
    raise RuntimeError(f"jupyter lab did not answer within {timeout:.0f} s:\n{server.log_tail()}")


def launch_chromium(playwright: Any, executable: str) -> Any:
    return playwright.chromium.launch(executable_path=executable, headless=True, args=CHROMIUM_ARGS)


# ----------------------------------------------------------------------------------------------- page helpers


def wait_kernel_idle(page: Any, timeout_ms: float = 60_000) -> None:
    """The notebook's kernel has started, connected and is idle: the status bar names the kernel and says Idle
    (the toolbar's indicator alone can say idle before the kernel's connection is ready)."""
    page.wait_for_selector(".jp-Notebook-ExecutionIndicator[data-status='idle']", timeout=timeout_ms)
    page.wait_for_selector(".jp-StatusBar-Item:has-text('Python 3 (ipykernel) | Idle')", timeout=timeout_ms)


def run_all_cells(page: Any, attempts: int = 3) -> None:
    """Run > Run All Cells, then make sure execution really started (retrying when the kernel was not ready)."""
    started = ".jp-CodeCell .jp-InputPrompt:text-matches('\\[(\\*|\\d+)\\]')"
    for attempt in range(attempts):
        page.click(".lm-MenuBar-itemLabel:text-is('Run')")
        page.click(".lm-Menu-itemLabel:text-is('Run All Cells')")
        try:
            page.wait_for_selector(started, timeout=10_000)
            return
        except Exception:  # noqa: BLE001 - playwright's TimeoutError: try again
            if attempt == attempts - 1:
                raise
            wait_kernel_idle(page)


def screenshot(page: Any, name: str) -> Path:
    path = artifacts_dir() / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path
