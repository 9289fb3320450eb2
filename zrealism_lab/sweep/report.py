"""The sweep report: notebooks/sweep_report.ipynb executed with papermill on a sweep folder and exported to
self-contained HTML, through the same machinery as the run reports (reports.run_report)."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

SWEEP_NOTEBOOK = "sweep_report.ipynb"


def sweep_report_notebook() -> Path:
    from ..reports import ReportError, notebooks_dir

    path = notebooks_dir() / SWEEP_NOTEBOOK
    if not path.is_file():
        raise ReportError(f"the sweep report notebook is not at {path}. Point ZREALISM_NOTEBOOKS at the folder that "
                          f"holds {SWEEP_NOTEBOOK} (the repository's notebooks/ folder).")
    return path


def run_sweep_report(folder: str | os.PathLike, *, progress: bool = True) -> Any:
    """Execute the sweep report on ``folder``; the executed notebook and its HTML land in the sweep folder.
    Returns reports.ReportResult (notebook, html, seconds)."""
    from ..reports import run_report

    folder = Path(folder).expanduser().resolve()
    return run_report("sweep", {"sweep_dir": str(folder)}, out_dir=folder, progress=progress,
                      notebook=sweep_report_notebook())
