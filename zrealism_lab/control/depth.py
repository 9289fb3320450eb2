"""Depth maps (near = bright, as the SD1.5 depth ControlNet expects): MiDaS, or a weightless "inflation" of
the subject mask so that offline runs still get a meaningful depth."""
from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import SettingsError
from .annotators import WEIGHTED_DEFAULTS, annotator_for
from .base import ControlProvider, DetectRequest, MethodResult, MethodSpec, register_provider


def _run_midas(request: DetectRequest) -> MethodResult:
    detector, record = annotator_for(request)
    height, width = request.image.shape[:2]
    # The detection image's sides are already multiples of 64, so controlnet-aux's own resize (short side to
    # ``detect_resolution``, sides rounded to 64) leaves it as it is.
    depth = detector(request.image, detect_resolution=min(height, width), image_resolution=min(height, width),
                     output_type="np")
    return MethodResult(depth, record=record)


def inflate_depth(mask: np.ndarray, *, floor: float = 0.2, smooth: float = 0.01) -> np.ndarray:
    """A depth map (float32 in [0, 1], 0 off the subject) from a subject mask alone.

    Each subject pixel's distance to the silhouette edge, d, becomes the height of a circle of radius R (the
    largest distance) at that distance from its rim, sqrt(1 - (1 - d/R)^2): the body bulges towards the camera
    like a rounded solid, thick parts most. ``floor`` lifts the whole subject off the background, as a real
    depth map of a cut-out figure does; ``smooth`` is the Gaussian blur sigma as a fraction of the long side,
    which softens the distance transform's ridges along the medial axis.
    """
    import cv2

    mask = np.asarray(mask, dtype=bool)
    distance = cv2.distanceTransform(mask.astype(np.uint8), cv2.DIST_L2, 5)
    radius = float(distance.max())
    if radius <= 0:
        return np.zeros(mask.shape, dtype=np.float32)
    t = distance / radius
    height = np.sqrt(np.clip(t * (2.0 - t), 0.0, 1.0)).astype(np.float32)
    sigma = smooth * max(mask.shape)
    if sigma > 0:
        height = cv2.GaussianBlur(height, (0, 0), sigma)
    depth = np.where(mask, floor + (1.0 - floor) * height, 0.0)
    return depth.astype(np.float32)


def _check_inflate(params: dict[str, Any]) -> None:
    if not 0.0 <= params["floor"] < 1.0:
        raise SettingsError("depth.inflate.floor", params["floor"], "a number from 0 up to (not including) 1")
    if not 0.0 <= params["smooth"] <= 0.2:
        raise SettingsError("depth.inflate.smooth", params["smooth"], "a number from 0 to 0.2 (share of long side)")


def _run_inflate(request: DetectRequest) -> MethodResult:
    if request.mask is None:
        raise SettingsError("mask", None, "a subject mask (H, W) bool array for depth method 'inflate'",
                            hint="It shapes the depth from the subject's silhouette; pass mask= from background "
                                 "analysis, or use depth method 'midas'.")
    warnings = [] if request.mask.any() else ["the subject mask is empty: the inflated depth map is all black."]
    depth = inflate_depth(request.mask, floor=request.params["floor"], smooth=request.params["smooth"])
    return MethodResult((depth * 255.0).round().astype(np.uint8), warnings=warnings, zero_outside_mask=True)


DEPTH = register_provider(ControlProvider(
    kind="depth",
    label="Depth",
    methods={
        "midas": MethodSpec(
            "midas", "MiDaS (DPT-Hybrid)", "controlnet-aux MidasDetector (dpt_hybrid-midas-501f0c75.pt).",
            needs_weights=True, run=_run_midas, defaults=dict(WEIGHTED_DEFAULTS), detect_multiple=64),
        "inflate": MethodSpec(
            "inflate", "Inflated subject mask (no model)",
            "Depth shaped from the subject mask alone (distance to the silhouette edge, rounded and smoothed): "
            "no detail inside the silhouette, but it works without any checkpoint.",
            needs_weights=False, run=_run_inflate, defaults={"floor": 0.2, "smooth": 0.01}, check=_check_inflate,
            reads_image=False),
    },
    default_method="midas",
))
