"""Person segmentation with MediaPipe's selfie-segmentation models (bundled in the mediapipe wheel, offline):
the probability that each pixel belongs to a person. Background analysis thresholds and cleans it into a mask."""
from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import SettingsError
from .mediapipe_runtime import solution

# "general" reads a 256x256 square; "landscape" a 144x256 one (made for wide video frames, faster).
SELFIE_MODELS = {"general": 0, "landscape": 1}


def person_probability(rgb: np.ndarray, *, model: str = "general") -> np.ndarray:
    """float32 (H, W) in [0, 1]: how likely each pixel of uint8 RGB ``rgb`` (H, W, 3) is part of a person."""
    if model not in SELFIE_MODELS:
        raise SettingsError("person segmentation model", model, "one of " + ", ".join(SELFIE_MODELS))
    rgb = np.asarray(rgb)
    if rgb.ndim != 3 or rgb.shape[2] < 3 or rgb.dtype != np.uint8:
        raise SettingsError("image", f"array of shape {rgb.shape} ({rgb.dtype})", "uint8 RGB (H, W, 3)")

    def make(solutions: Any) -> Any:
        return solutions.selfie_segmentation.SelfieSegmentation(model_selection=SELFIE_MODELS[model])

    with solution(("selfie_segmentation", model), "person segmentation", make) as graph:
        mask = graph.process(np.ascontiguousarray(rgb[..., :3])).segmentation_mask
    return np.clip(np.asarray(mask, dtype=np.float32), 0.0, 1.0)
