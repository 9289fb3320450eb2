"""Anime line-art maps (white lines on black) for the SD1.5 lineart_anime ControlNet."""
from __future__ import annotations

import warnings
from typing import Any

from ..errors import SettingsError
from .annotators import WEIGHTED_DEFAULTS, annotator_for, import_controlnet_aux
from .base import ControlProvider, DetectRequest, MethodResult, MethodSpec, register_provider


def _run_anime(request: DetectRequest) -> MethodResult:
    detector, record = annotator_for(request)
    height, width = request.image.shape[:2]
    # Sides are multiples of 64 already (see detect_multiple), so controlnet-aux's own resize is a no-op.
    lines = detector(request.image, detect_resolution=min(height, width), image_resolution=min(height, width),
                     output_type="np")
    return MethodResult(lines, record=record)


def _check_edges(params: dict[str, Any]) -> None:
    if not 0.5 <= params["gaussian_sigma"] <= 32:
        raise SettingsError("lineart_anime.edges.gaussian_sigma", params["gaussian_sigma"], "a number from 0.5 to 32")
    if not 0 <= params["intensity_threshold"] <= 255:
        raise SettingsError("lineart_anime.edges.intensity_threshold", params["intensity_threshold"],
                            "an integer from 0 to 255")


def _run_edges(request: DetectRequest) -> MethodResult:
    aux = import_controlnet_aux()
    height, width = request.image.shape[:2]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # its median of an empty selection on line-less images
        lines = aux.LineartStandardDetector()(
            request.image, guassian_sigma=request.params["gaussian_sigma"],  # (sic) controlnet-aux's spelling
            intensity_threshold=request.params["intensity_threshold"], detect_resolution=min(height, width),
            output_type="np")
    return MethodResult(lines)


LINEART_ANIME = register_provider(ControlProvider(
    kind="lineart_anime",
    label="Anime line art",
    methods={
        "anime": MethodSpec(
            "anime", "Anime line-art model", "controlnet-aux LineartAnimeDetector (netG.pth).",
            needs_weights=True, run=_run_anime, defaults=dict(WEIGHTED_DEFAULTS), detect_multiple=64),
        "edges": MethodSpec(
            "edges", "Dark-line extraction (no model; approximation)",
            "controlnet-aux LineartStandardDetector: marks pixels darker than their blurred surroundings. "
            "An approximation of the anime model's line art, not a substitute: it also picks up dark shading "
            "and texture, and misses lines the model would infer.",
            needs_weights=False, run=_run_edges, defaults={"gaussian_sigma": 6.0, "intensity_threshold": 8},
            check=_check_edges, detect_multiple=64),
    },
    default_method="anime",
))
