"""Parameter sweeps: a spec of base settings and axes, expanded into a manifest of fully specified jobs, run with
resume (one process, or split across devices with `accelerate launch -m zrealism_lab.sweep`), gathered into
results.json, a labelled contact sheet and a report notebook.

    from zrealism_lab.sweep import run_sweep
    result = run_sweep({"image": "sample:transparent", "preset": "tiny", "base": {"size": 64, "steps": 4},
                        "axes": {"strength": [0.5, 0.7], "controls.depth.scale": [0.5, 1.0]}}, "my-sweep")
"""
from __future__ import annotations

from .contact import draw_contact_sheet, sweep_contact_sheets, write_contact_sheets
from .figures import default_metrics, metric_figures
from .manifest import build_manifest, completed_run, read_manifest
from .report import run_sweep_report
from .results import best_by_metric, collect_rows, failures, load_results
from .runner import Processes, SweepResult, prepare_sweep, run_sweep
from .small import SmallSweep, run_small_sweep
from .spec import Axis, Job, SweepSpec, load_spec

__all__ = [
    "Axis", "Job", "Processes", "SmallSweep", "SweepResult", "SweepSpec", "best_by_metric", "build_manifest",
    "collect_rows", "completed_run", "default_metrics", "draw_contact_sheet", "failures", "load_results", "load_spec",
    "metric_figures", "prepare_sweep", "read_manifest", "run_small_sweep", "run_sweep", "run_sweep_report",
    "sweep_contact_sheets", "write_contact_sheets",
]
