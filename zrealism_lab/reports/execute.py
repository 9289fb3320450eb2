"""Report notebooks: execute a parameterised notebook with papermill on this Python's own kernel, then keep the
executed notebook and a self-contained HTML export in the run folder, next to record.json.

The HTML opens with no network: pictures are embedded as base64 PNG by the notebook itself, and every script the
template would load from a CDN (require.js, MathJax, mermaid) is removed, since the reports need none of them.
"""
from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Mapping

from ..files import atomic_write_text
from ..errors import SettingsError, ZRealismError

REPORTS = {"static": "static_report.ipynb", "temporal": "temporal_report.ipynb", "walkthrough": "walkthrough.ipynb",
           "sweep": "sweep_report.ipynb"}
KERNEL_NAME = "python3"
EXECUTED_NAME = "report.ipynb"


class ReportError(ZRealismError):
    """A report notebook stopped with an error; the message names the cell and the error it raised."""

    def __init__(self, message: str, notebook: Path | None = None) -> None:
        super().__init__(message)
        self.notebook = notebook


@dataclass
class ReportResult:
    kind: str
    run_dir: Path | None  # the run folder the notebook published (None for notebooks that make no run)
    notebook: Path  # the executed notebook
    html: Path
    seconds: float


def notebooks_dir() -> Path:
    """Where the report notebooks are: $ZREALISM_NOTEBOOKS, else the ones shipped in the package (the repository's
    top-level notebooks/ folder is a link to them, so there is one copy of each)."""
    configured = os.environ.get("ZREALISM_NOTEBOOKS")
    return Path(configured).expanduser() if configured else Path(__file__).resolve().parent / "notebooks"


def notebook_path(kind: str) -> Path:
    if kind not in REPORTS:
        raise SettingsError("report", kind, "one of " + ", ".join(REPORTS))
    path = notebooks_dir() / REPORTS[kind]
    if not path.is_file():
        raise ReportError(f"the {kind} report notebook is not at {path}. Point ZREALISM_NOTEBOOKS at the folder that "
                          f"holds {REPORTS[kind]} (the repository's notebooks/ folder).")
    return path


def parse_value(text: str) -> Any:
    """A -p value: JSON when it parses (8, 0.5, true, null, ["depth"]), else the text itself."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def notebook_parameters(path: str | os.PathLike) -> dict[str, Any]:
    """The names and defaults of a notebook's `parameters` cell."""
    import papermill

    return {name: info.get("default") for name, info in papermill.inspect_notebook(str(path)).items()}


@contextlib.contextmanager
def this_python_kernel() -> Iterator[str]:
    """A `python3` kernelspec that runs this very interpreter, first on JUPYTER_PATH while the block runs.

    A user-level `python3` kernelspec may point at another Python without the lab installed; a temporary spec wins
    over it and needs no install step. The name stays `python3`, so the executed notebook opens anywhere."""
    with tempfile.TemporaryDirectory(prefix="zrealism-kernel-") as root:
        spec_dir = Path(root) / "kernels" / KERNEL_NAME
        spec_dir.mkdir(parents=True)
        spec = {"argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
                "display_name": "Python 3 (ipykernel)", "language": "python", "metadata": {"debugger": True}}
        (spec_dir / "kernel.json").write_text(json.dumps(spec))
        previous = os.environ.get("JUPYTER_PATH")
        os.environ["JUPYTER_PATH"] = root + (os.pathsep + previous if previous else "")
        try:
            yield KERNEL_NAME
        finally:
            if previous is None:
                os.environ.pop("JUPYTER_PATH", None)
            else:
                os.environ["JUPYTER_PATH"] = previous


@contextlib.contextmanager
def interruptible_kernel(kernel_name: str, grace: float = 60.0) -> Iterator[Any]:
    """A kernel manager this process owns, so that Ctrl-C or SIGTERM here reaches the run inside the notebook: the
    kernel is interrupted (the run ends within its step and writes a 'cancelled' record), given ``grace`` seconds to
    finish the cell, then shut down. papermill's own kernel would be killed at once, leaving a run without a record."""
    import asyncio

    from jupyter_client.manager import AsyncKernelManager

    km = AsyncKernelManager(kernel_name=kernel_name)
    try:
        yield km
    except KeyboardInterrupt:  # SIGTERM arrives as cli.common.Terminated, a KeyboardInterrupt
        asyncio.run(_interrupt_and_wait(km, grace))
        raise
    finally:
        asyncio.run(_shutdown(km))


async def _interrupt_and_wait(km: Any, grace: float) -> None:
    if not (km.has_kernel and await km.is_alive()):
        return
    await km.interrupt_kernel()
    client = km.client()
    client.start_channels()
    try:  # the kernel answers a new request only once the interrupted cell has finished
        await client.execute("", silent=True, reply=True, timeout=grace)
    except Exception:  # noqa: BLE001 - a kernel that does not answer in time is shut down all the same
        pass
    finally:
        client.stop_channels()


async def _shutdown(km: Any) -> None:
    if km.has_kernel:
        await km.shutdown_kernel(now=False)  # also removes its connection file


def run_report(kind: str, parameters: Mapping[str, Any] | None = None, out_dir: str | os.PathLike = "reports", *,
               progress: bool = True, notebook: str | os.PathLike | None = None,
               show_code: bool = False) -> ReportResult:
    """Execute report ``kind`` ('static', 'temporal' or 'walkthrough') with papermill and export it to HTML.

    Unknown parameter names are refused before the kernel starts. The executed notebook and the HTML land in the
    run folder the notebook publishes (or in ``out_dir`` for notebooks that make no run). The HTML shows the
    cells' outputs only; ``show_code=True`` shows their code too (the executed notebook always has it)."""
    import papermill
    from papermill.exceptions import PapermillExecutionError

    if not isinstance(kind, str) or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_-]*", kind):
        # the kind names the written notebook files, so it must not carry a path
        raise SettingsError("report", kind, "a report name of letters, digits, '-' and '_' (" + ", ".join(REPORTS) + ")")
    source = Path(notebook) if notebook is not None else notebook_path(kind)
    out = Path(out_dir).expanduser().resolve()
    out.mkdir(parents=True, exist_ok=True)
    params = _check_parameters(source, dict(parameters or {}), out)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    executed = out / f".{kind}-report-{stamp}-{secrets.token_hex(3)}.ipynb"
    start = time.perf_counter()
    try:
        with this_python_kernel() as kernel, interruptible_kernel(kernel) as km:
            papermill.execute_notebook(str(source), str(executed), parameters=params, kernel_name=kernel,
                                       progress_bar=progress, cwd=str(out), km=km)
    except PapermillExecutionError as exc:
        failed = out / f"failed-{kind}-report-{stamp}.ipynb"
        if executed.exists():
            shutil.move(executed, failed)
        raise ReportError(f"the {kind} report stopped in cell {_cell_number(failed, exc)}: {exc.ename}: {exc.evalue}\n"
                          f"The executed notebook, with the error, is {failed}.", failed) from exc
    except BaseException:
        executed.unlink(missing_ok=True)
        raise
    seconds = time.perf_counter() - start
    run_dir = published_run_dir(executed)
    target = run_dir if run_dir is not None else out
    final = target / (EXECUTED_NAME if run_dir is not None else f"{kind}-report-{stamp}.ipynb")
    shutil.move(executed, final)
    html_path = export_html(final, final.with_suffix(".html"), show_code=show_code)
    return ReportResult(kind, run_dir, final, html_path, seconds)


def _check_parameters(notebook: Path, params: dict[str, Any], out: Path) -> dict[str, Any]:
    known = notebook_parameters(notebook)
    for name, value in params.items():
        if name not in known:
            raise SettingsError(name, value, "one of this report's parameters: " + ", ".join(known))
    if "out_dir" in known:
        params["out_dir"] = str(Path(params.get("out_dir") or out).expanduser().resolve())
    for name in ("image", "clip"):
        if isinstance(params.get(name), str) and params[name]:
            # The kernel runs in the output folder, so a relative path would point elsewhere there.
            params[name] = str(Path(params[name]).expanduser().resolve())
    return params


def _cell_number(path: Path, exc: Any) -> str:
    """The failed cell's position counted from 1 among code cells, with papermill's injected cell left out."""
    try:
        import nbformat

        cells = [c for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code"
                 and "injected-parameters" not in c.metadata.get("tags", [])]
        for number, cell in enumerate(cells, 1):
            if cell.source == exc.source:
                return f"{number} ({cell.source.splitlines()[0][:60]!r} ...)" if cell.source else str(number)
    except Exception:  # the position is a courtesy; the error itself is what matters
        pass
    return "?"


def published_run_dir(notebook: str | os.PathLike) -> Path | None:
    """The run folder a report notebook published with report_support.publish_run (the last one, if several)."""
    import nbformat

    from .notebook import RUN_MIME

    found = None
    for cell in nbformat.read(str(notebook), as_version=4).cells:
        for output in cell.get("outputs", []):
            data = output.get("data", {}).get(RUN_MIME)
            if data:
                found = Path(data["run_dir"] if isinstance(data, dict) else json.loads(data)["run_dir"])
    return found


_REMOTE_SCRIPT = re.compile(r"<script\b[^>]*\bsrc\s*=\s*['\"]?https?://[^>]*>\s*</script>", re.IGNORECASE)
_SCRIPT_BLOCK = re.compile(r"<script\b[^>]*>.*?</script>", re.IGNORECASE | re.DOTALL)
_REMOTE_LINK = re.compile(r"<link\b[^>]*\bhref\s*=\s*['\"]?https?://[^>]*>", re.IGNORECASE)


def offline_html(text: str) -> str:
    """Remove every script or stylesheet the page would fetch from the network: tags with a remote src/href, and
    inline scripts that import from a URL (the template's mermaid loader). The reports use none of them."""
    text = _REMOTE_SCRIPT.sub("", text)
    text = _REMOTE_LINK.sub("", text)
    return _SCRIPT_BLOCK.sub(lambda m: "" if re.search(r"https?://", m.group(0)) else m.group(0), text)


def once_each_warning(notebook: Any) -> Any:
    """The notebook with every repeated stderr text (a library's warning printed by several cells) kept only where
    it first appears; returns the same notebook node, changed in place."""
    seen: set[str] = set()
    for cell in notebook.cells:
        kept = []
        for output in cell.get("outputs", []):
            if output.get("output_type") == "stream" and output.get("name") == "stderr":
                text = output.get("text", "")
                text = "".join(text) if isinstance(text, list) else str(text)
                if text.strip() in seen:
                    continue
                seen.add(text.strip())
            kept.append(output)
        if "outputs" in cell:
            cell["outputs"] = kept
    return notebook


def export_html(notebook: str | os.PathLike, target: str | os.PathLike, *, show_code: bool = False) -> Path:
    """A self-contained HTML page of an executed notebook (lab template, images embedded, no network needed):
    outputs only unless ``show_code``, and each library warning once."""
    import nbformat
    from nbconvert import HTMLExporter

    exporter = HTMLExporter(template_name="lab", embed_images=True, exclude_input=not show_code,
                            exclude_input_prompt=not show_code, exclude_output_prompt=not show_code)
    body, _ = exporter.from_notebook_node(once_each_warning(nbformat.read(str(notebook), as_version=4)))
    target = Path(target)
    atomic_write_text(target, offline_html(body))  # never half a page, with the same mode as every other output
    return target
