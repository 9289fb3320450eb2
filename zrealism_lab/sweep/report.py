"""The sweep report: the sweep_report notebook executed with papermill on a sweep folder and exported to
self-contained HTML, through the same machinery as the run reports (reports.run_report)."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any


def run_sweep_report(folder: str | os.PathLike, *, progress: bool = True) -> Any:
    """Execute the sweep report on ``folder``; the executed notebook and its HTML land in the sweep folder.
    Returns reports.ReportResult (notebook, html, seconds)."""
    from ..reports.execute import run_report

    folder = Path(folder).expanduser().resolve()
    return run_report("sweep", {"sweep_dir": str(folder)}, out_dir=folder, progress=progress)
