"""The interactive lab for JupyterLab: `Lab(preset="tiny", size=64, steps=6)` paints at once; models load on the
first Run. Without widgets: `state` (the rules), `runner` (the worker thread), `preflight` (checks before Run),
`disk_runs` (History from the run folders), `run_view` (a finished run's pictures and metrics). The widgets:
`layout` (run bar and tabs), `controls_tab` (one builder per section), `fields` and `widgets` (pieces),
`source_panel` (uploads, drop and paste, the override), `temporal_tab`. The HTML they show: `views`,
`status_views`, `compare`, `history`, with every colour from `theme`. `app` is the Lab that connects them."""
from __future__ import annotations

from typing import Any

__all__ = ["Lab"]


def __getattr__(name: str) -> Any:
    # ipywidgets is imported only when the Lab itself is asked for, so the state machine imports without it.
    if name == "Lab":
        from .app import Lab

        return Lab
    raise AttributeError(f"module 'zrealism_lab.lab' has no attribute {name!r}")
