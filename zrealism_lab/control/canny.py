"""Canny edge maps (OpenCV), the preprocessing the SD1.5 canny ControlNet was trained with."""
from __future__ import annotations

from typing import Any

from ..errors import SettingsError
from .base import ControlProvider, DetectRequest, MethodResult, MethodSpec, register_provider


def _check(params: dict[str, Any]) -> None:
    low, high = params["low_threshold"], params["high_threshold"]
    if not 0 <= low <= 1000:
        raise SettingsError("canny.low_threshold", low, "an integer from 0 to 1000")
    if not low <= high <= 1000:
        raise SettingsError("canny.high_threshold", high, f"an integer from low_threshold ({low}) to 1000")


def _run_opencv(request: DetectRequest) -> MethodResult:
    import cv2

    # On the RGB image, as controlnet-aux's CannyDetector does: edges between colours of equal brightness,
    # common in flat-shaded art, are kept.
    edges = cv2.Canny(request.image, request.params["low_threshold"], request.params["high_threshold"])
    return MethodResult(edges)


CANNY = register_provider(ControlProvider(
    kind="canny",
    label="Canny edges",
    methods={
        "opencv": MethodSpec(
            "opencv", "OpenCV Canny", "cv2.Canny with hysteresis thresholds low/high (lower: more edges).",
            needs_weights=False, run=_run_opencv, defaults={"low_threshold": 100, "high_threshold": 200},
            check=_check),
    },
    default_method="opencv",
))
