"""The interactive lab for JupyterLab: `Lab(preset="tiny", size=64, steps=6)` paints at once; models load on the
first Run. `state` (no widgets) holds the rules, `runner` the worker thread, `layout` and `widgets` the widgets,
`views` the HTML they show, `history` the runs on disk, and `app` the Lab that connects them."""
from __future__ import annotations

from typing import Any

__all__ = ["Lab"]


def __getattr__(name: str) -> Any:
    # ipywidgets is imported only when the Lab itself is asked for, so the state machine imports without it.
    if name == "Lab":
        from .app import Lab

        return Lab
    raise AttributeError(f"module 'zrealism_lab.lab' has no attribute {name!r}")
