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
    "run_static": "zrealism_lab.static",
    "Engine": "zrealism_lab.engine",
    "get_engine": "zrealism_lab.engine",
    "ModelSet": "zrealism_lab.models.modelset",
    "resolve_modelset": "zrealism_lab.models.modelset",
    "build_tiny_bundle": "zrealism_lab.models.tiny",
    "load_image": "zrealism_lab.intake",
    "analyze_background": "zrealism_lab.background",
    "anchor_colours": "zrealism_lab.colour",
    "evaluate_pair": "zrealism_lab.metrics",
    "evaluate_clip": "zrealism_lab.metrics",
    "CONTROL_PROVIDERS": "zrealism_lab.control",
    "load_sample": "zrealism_lab.samples",
    "sample_path": "zrealism_lab.samples",
    "TemporalSettings": "zrealism_lab.temporal",
    "run_temporal": "zrealism_lab.temporal",
    "rerun": "zrealism_lab.rerun",
    "Lab": "zrealism_lab.lab",
    "CancelToken": "zrealism_lab.progress",
    "StepEvent": "zrealism_lab.progress",
}

__all__ = sorted(_EXPORTS) + ["__version__"]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'zrealism_lab' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
