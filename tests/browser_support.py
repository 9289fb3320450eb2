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


# ----------------------------------------------------------------------------------------------- look and feel

# The WCAG contrast of an element's text against the first opaque background behind it, with both colours
# resolved by painting them on a canvas (so color-mix(), var() and alpha are all as the browser renders them).
CONTRAST_JS = """(el) => {
  const ctx = document.createElement('canvas').getContext('2d');
  const paint = (colours) => { ctx.clearRect(0, 0, 1, 1);
    for (const c of colours) { ctx.fillStyle = c; ctx.fillRect(0, 0, 1, 1); }
    return Array.from(ctx.getImageData(0, 0, 1, 1).data); };
  let node = el, bg = null;
  while (node && node.nodeType === 1) {
    const c = getComputedStyle(node).backgroundColor;
    if (paint([c])[3] === 255) { bg = c; break; }
    node = node.parentElement;
  }
  bg = bg || getComputedStyle(document.body).backgroundColor || 'white';
  const text = paint([bg, getComputedStyle(el).color]), back = paint([bg]);
  const lum = (rgb) => { const v = rgb.slice(0, 3).map(x => { x /= 255;
    return x <= 0.03928 ? x / 12.92 : Math.pow((x + 0.055) / 1.055, 2.4); });
    return 0.2126 * v[0] + 0.7152 * v[1] + 0.0722 * v[2]; };
  const a = lum(text), b = lum(back);
  return (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
}"""


def contrast(page: Any, selector: str) -> float:
    """The text contrast of the first element matching ``selector`` (WCAG AA asks 4.5 for normal text)."""
    return float(page.locator(selector).first.evaluate(CONTRAST_JS))


def set_theme(page: Any, name: str) -> None:
    """Settings > Theme > ``name`` ("JupyterLab Dark", "JupyterLab Light"), waiting until the page has it."""
    light = "false" if "Dark" in name else "true"
    page.click(".lm-MenuBar-itemLabel:text-is('Settings')")
    page.hover(".lm-Menu-itemLabel:text-is('Theme')")
    page.click(f".lm-Menu-itemLabel:text-is('{name}')")
    page.wait_for_selector(f"body[data-jp-theme-light='{light}']", state="attached", timeout=30_000)
    page.wait_for_timeout(500)  # the theme's stylesheet applies after the attribute changes


DROP_JS = """([selector, name, bytes, how]) => {
  const file = new File([new Uint8Array(bytes)], name, {type: 'image/png'});
  const data = new DataTransfer(); data.items.add(file);
  const target = document.querySelector(selector);
  const event = how === 'paste' ? new ClipboardEvent('paste', {clipboardData: data, bubbles: true, cancelable: true})
                                : new DragEvent('drop', {dataTransfer: data, bubbles: true, cancelable: true});
  target.dispatchEvent(event);
}"""


def drop_file(page: Any, selector: str, path: Path, how: str = "drop") -> None:
    """Drop (or paste) an image file onto ``selector`` as the browser would hand it over."""
    page.evaluate(DROP_JS, [selector, path.name, list(path.read_bytes()), how])


def box(page: Any, selector: str) -> tuple[float, float]:
    found = page.locator(selector).first.bounding_box()
    assert found is not None, f"{selector} is not on screen"
    return round(found["width"], 1), round(found["height"], 1)
