"""Z-Realism Lab: 2D/anime character art -> photorealistic stills and clips, measured.

Heavy libraries (torch, diffusers, OpenCV ...) load on first use, so importing the package and painting the lab
are fast.
"""
from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "StaticSettings": "zrealism_lab.settings",
    "ControlUnit": "zrealism_lab.settings",
    "run_static": "zrealism_lab.generate.static",
    "run_static_batch": "zrealism_lab.generate.batch",
    "run_static_folder": "zrealism_lab.generate.batch",
    "run_temporal_batch": "zrealism_lab.generate.batch",
    "Engine": "zrealism_lab.engine",
    "get_engine": "zrealism_lab.engine",
    "ModelSet": "zrealism_lab.models.modelset",
    "resolve_modelset": "zrealism_lab.models.modelset",
    "build_tiny_bundle": "zrealism_lab.models.tiny",
    "load_image": "zrealism_lab.source.intake",
    "analyze_background": "zrealism_lab.source.background",
    "anchor_colours": "zrealism_lab.colour",
    "evaluate_pair": "zrealism_lab.metrics",
    "evaluate_clip": "zrealism_lab.metrics",
    "CONTROL_PROVIDERS": "zrealism_lab.control",
    "load_sample": "zrealism_lab.source.samples",
    "sample_path": "zrealism_lab.source.samples",
    "TemporalSettings": "zrealism_lab.settings",
    "understand_source": "zrealism_lab.source.context",
    "SourceContext": "zrealism_lab.source.context",
    "run_temporal": "zrealism_lab.generate.temporal",
    "rerun": "zrealism_lab.generate.rerun",
    "Lab": "zrealism_lab.lab",
    "CancelToken": "zrealism_lab.progress",
    "StepEvent": "zrealism_lab.progress",
    "png_bytes": "zrealism_lab.files",
    "read_settings": "zrealism_lab.infotext",
}
# Modules the notebooks use as a whole: `from zrealism_lab import report_support as rs`.
_MODULE_EXPORTS = {"report_support": "zrealism_lab.reports.notebook"}

from . import moved

moved.install()  # old module paths (zrealism_lab.static ...) keep working

__all__ = sorted([*_EXPORTS, *_MODULE_EXPORTS]) + ["__version__"]


def __getattr__(name: str) -> Any:
    if name in _MODULE_EXPORTS:
        value = importlib.import_module(_MODULE_EXPORTS[name])
    elif name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
    else:
        raise AttributeError(f"module 'zrealism_lab' has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
