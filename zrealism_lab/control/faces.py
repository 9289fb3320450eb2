"""Face detection (boxes, landmarks, confidence) behind a registry, for face-detail passes and face metrics.

``detect_faces(image)`` runs a registered detector; the one registered here is MediaPipe's BlazeFace, whose
models ship in the mediapipe wheel (offline). Coordinates are pixels of the image passed in.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

import numpy as np
from PIL import Image

from ..errors import SettingsError
from ..registry import Registry
from .mediapipe_runtime import solution

# BlazeFace's six landmarks, in its output order; left and right are the person's.
BLAZEFACE_LANDMARKS = ("right_eye", "left_eye", "nose_tip", "mouth_centre", "right_ear_tragion", "left_ear_tragion")
# "short": faces within about 2 m of the camera (portraits, busts); "full": up to about 5 m (full-body shots).
BLAZEFACE_MODELS = {"short": 0, "full": 1}


@dataclass(frozen=True)
class Face:
    """One detected face: ``box`` (x0, y0, x1, y1) in pixels, clipped to the image; ``landmarks`` name -> (x, y)."""

    box: tuple[float, float, float, float]
    score: float
    landmarks: Mapping[str, tuple[float, float]] = field(default_factory=dict)

    @property
    def size(self) -> tuple[float, float]:
        return self.box[2] - self.box[0], self.box[3] - self.box[1]

    @property
    def centre(self) -> tuple[float, float]:
        return (self.box[0] + self.box[2]) / 2, (self.box[1] + self.box[3]) / 2

    def to_dict(self) -> dict[str, Any]:
        return {"box": [round(v, 2) for v in self.box], "score": round(self.score, 4),
                "landmarks": {name: [round(x, 2), round(y, 2)] for name, (x, y) in self.landmarks.items()}}


@dataclass(frozen=True, eq=False)  # identity equality: it holds a function
class FaceDetector:
    """A registered face detector: ``detect(rgb uint8 (H, W, 3), params) -> list[Face]``."""

    name: str
    label: str
    description: str
    needs_weights: bool
    detect: Callable[[np.ndarray, dict[str, Any]], list[Face]]
    defaults: Mapping[str, Any] = field(default_factory=dict)


FACE_DETECTORS: Registry[FaceDetector] = Registry("face detector")


def detect_faces(image: Image.Image | np.ndarray, *, method: str = "mediapipe", min_confidence: float = 0.5,
                 **params: Any) -> list[Face]:
    """Faces in ``image`` (PIL image or uint8 RGB array), most confident first, each scoring ``min_confidence`` or
    more. ``params`` are the detector's own (for "mediapipe": ``model`` "short" or "full")."""
    detector = FACE_DETECTORS.get(method)
    if not 0.0 <= min_confidence <= 1.0:
        raise SettingsError("min_confidence", min_confidence, "a number from 0 to 1")
    unknown = sorted(set(params) - set(detector.defaults))
    if unknown:
        raise SettingsError(f"face detector {method} parameter", unknown[0], "one of " + ", ".join(detector.defaults))
    rgb = np.asarray(image.convert("RGB")) if isinstance(image, Image.Image) else np.asarray(image)
    if rgb.ndim != 3 or rgb.shape[2] < 3 or rgb.dtype != np.uint8:
        raise SettingsError("image", f"array of shape {rgb.shape} ({rgb.dtype})", "a PIL image or uint8 RGB (H, W, 3)")
    faces = detector.detect(np.ascontiguousarray(rgb[..., :3]), {**detector.defaults, **params})
    return sorted((f for f in faces if f.score >= min_confidence), key=lambda f: -f.score)


def _blazeface(rgb: np.ndarray, params: dict[str, Any]) -> list[Face]:
    model = params["model"]
    if model not in BLAZEFACE_MODELS:
        raise SettingsError("face detector mediapipe model", model, "one of " + ", ".join(BLAZEFACE_MODELS))
    height, width = rgb.shape[:2]

    def make(solutions: Any) -> Any:
        # Built with no threshold of its own: detect_faces applies min_confidence, so one graph serves every value.
        return solutions.face_detection.FaceDetection(model_selection=BLAZEFACE_MODELS[model],
                                                      min_detection_confidence=0.0)

    with solution(("face_detection", model), "the mediapipe face detector", make) as graph:
        detections = graph.process(rgb).detections or []
    faces = []
    for detection in detections:
        box = detection.location_data.relative_bounding_box
        x0, y0 = max(0.0, box.xmin * width), max(0.0, box.ymin * height)
        x1, y1 = min(float(width), (box.xmin + box.width) * width), min(float(height), (box.ymin + box.height) * height)
        points = {name: (float(p.x * width), float(p.y * height))
                  for name, p in zip(BLAZEFACE_LANDMARKS, detection.location_data.relative_keypoints)}
        faces.append(Face((float(x0), float(y0), float(x1), float(y1)), float(detection.score[0]), points))
    return faces


FACE_DETECTORS.register("mediapipe", FaceDetector(
    "mediapipe", "MediaPipe BlazeFace (offline)",
    "BlazeFace short- or full-range model bundled in the mediapipe wheel: box, six landmarks and a score per face.",
    needs_weights=False, detect=_blazeface, defaults={"model": "short"}))
