"""MediaPipe Holistic (BlazePose's 33 body landmarks, 21 per hand, the 468-point face mesh) as controlnet-aux
OpenPose PoseResults: the 18-keypoint COCO body, OpenPose's 21-point hands and 70-point face. The pose provider
draws them with controlnet-aux's own OpenPose renderer, so the map has the limb colours and widths the OpenPose
ControlNet was trained on. BlazePose finds one person per image.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from .mediapipe_runtime import solution

# COCO-18 body keypoints in OpenPose order (pose.BODY_KEYPOINT_NAMES) from BlazePose landmark indices; BlazePose
# has no neck, so it is the shoulders' midpoint (None here). Left and right are the person's, in both.
COCO_FROM_BLAZEPOSE: tuple[int | None, ...] = (0, None, 12, 14, 16, 11, 13, 15, 24, 26, 28, 23, 25, 27, 5, 2, 8, 7)
_SHOULDERS = (11, 12)

# OpenPose's 68 face points (the dlib/iBUG layout: jaw, brows, nose, eyes, outer and inner lips, drawn from the
# image's left) from face-mesh indices; OpenPose adds the two pupils (68, 69), here the centres of the eye points.
FACE68_FROM_MESH: tuple[int, ...] = (
    127, 234, 93, 132, 58, 172, 136, 150, 152, 379, 365, 397, 288, 361, 323, 454, 356,  # jaw
    70, 63, 105, 66, 107, 336, 296, 334, 293, 300,  # brows
    168, 197, 5, 4, 98, 97, 2, 326, 327,  # nose bridge and base
    33, 160, 158, 133, 153, 144, 362, 385, 387, 263, 373, 380,  # eyes
    61, 40, 37, 0, 267, 270, 291, 321, 314, 17, 84, 91,  # outer lips
    78, 81, 13, 311, 308, 402, 14, 178,  # inner lips
)
_EYES = (slice(36, 42), slice(42, 48))

# BlazePose's lite and heavy landmark models are downloaded on first use; only the full one (1) is in the wheel.
MODEL_COMPLEXITY = 1
# On drawings BlazePose sometimes returns a skeleton collapsed into a blob (the lab's transparent sample: all 33
# points within 9 % of the image). A body whose visible landmarks span less than this share of the image's short
# side is taken as no person; people that small get little from a pose map anyway.
MIN_BODY_EXTENT = 0.15
MIN_VISIBILITY = 0.5


def _holistic(solutions: Any) -> Any:
    return solutions.holistic.Holistic(static_image_mode=True, model_complexity=MODEL_COMPLEXITY)


def detect_holistic(rgb: np.ndarray) -> dict[str, np.ndarray | None]:
    """Normalised landmarks of the one person MediaPipe Holistic finds in uint8 RGB ``rgb``: "body" (33, 3) as
    (x, y, visibility), "left_hand" / "right_hand" (21, 2), "face" (468, 2); None for parts not found."""
    with solution("holistic", "the mediapipe pose detector", _holistic) as graph:
        found = graph.process(np.ascontiguousarray(rgb[..., :3]))

    def points(landmarks: Any, visibility: bool = False) -> np.ndarray | None:
        if landmarks is None:
            return None
        rows = [(p.x, p.y, p.visibility) if visibility else (p.x, p.y) for p in landmarks.landmark]
        return np.asarray(rows, dtype=np.float64)

    body = points(found.pose_landmarks, visibility=True)
    if body is not None and not plausible_body(body, rgb.shape[:2]):
        return {"body": None, "left_hand": None, "right_hand": None, "face": None}
    return {"body": body, "left_hand": points(found.left_hand_landmarks),
            "right_hand": points(found.right_hand_landmarks), "face": points(found.face_landmarks)}


def plausible_body(body: np.ndarray, shape: tuple[int, int]) -> bool:
    """Whether BlazePose's (33, 3) landmarks look like a person: at least four visible inside the image, spanning
    at least MIN_BODY_EXTENT of the short side."""
    height, width = shape
    seen = body[(body[:, 2] >= MIN_VISIBILITY) & (body[:, :2] >= 0).all(axis=1) & (body[:, :2] <= 1).all(axis=1)]
    if len(seen) < 4:
        return False
    extent = max(np.ptp(seen[:, 0]) * width, np.ptp(seen[:, 1]) * height)
    return bool(extent >= MIN_BODY_EXTENT * min(height, width))


def _inside(x: float, y: float) -> bool:
    return 0.0 <= x <= 1.0 and 0.0 <= y <= 1.0


def coco_body(body: np.ndarray, min_visibility: float) -> list[tuple[float, float, float] | None]:
    """18 COCO keypoints (x, y, score) from BlazePose's 33 rows; None where the landmark is not visible enough or
    lies outside the image (BlazePose also guesses parts beyond the frame)."""
    def keep(index: int) -> tuple[float, float, float] | None:
        x, y, visibility = body[index]
        return (x, y, visibility) if visibility >= min_visibility and _inside(x, y) else None

    keypoints: list[tuple[float, float, float] | None] = []
    for index in COCO_FROM_BLAZEPOSE:
        if index is not None:
            keypoints.append(keep(index))
            continue
        shoulders = [keep(i) for i in _SHOULDERS]
        keypoints.append(None if None in shoulders else tuple(np.mean(shoulders, axis=0)))  # type: ignore[arg-type]
    return keypoints


def openpose_face(mesh: np.ndarray) -> np.ndarray:
    """OpenPose's 70 face points (x, y) from the 468-point face mesh."""
    face = mesh[list(FACE68_FROM_MESH), :2]
    pupils = [face[eye].mean(axis=0) for eye in _EYES]
    return np.vstack([face, pupils])


def pose_results(rgb: np.ndarray, *, min_visibility: float = MIN_VISIBILITY) -> list[Any]:
    """controlnet-aux PoseResults (0 or 1 person) for uint8 RGB ``rgb``, coordinates as fractions of the image."""
    from .annotators import import_controlnet_aux

    found = detect_holistic(rgb)
    if found["body"] is None:
        return []
    import_controlnet_aux()
    from controlnet_aux.open_pose import BodyResult, Keypoint, PoseResult

    body = [None if k is None else Keypoint(float(k[0]), float(k[1]), float(k[2]), i)
            for i, k in enumerate(coco_body(found["body"], min_visibility))]

    def keypoints(points: np.ndarray | None) -> list[Any] | None:
        # controlnet-aux's hand and face renderers take complete lists (no None) and skip points off the canvas.
        return None if points is None else [Keypoint(float(x), float(y)) for x, y in points[:, :2]]

    face = None if found["face"] is None else openpose_face(found["face"])
    parts = sum(k is not None for k in body)
    return [PoseResult(BodyResult(body, float(sum(k.score for k in body if k is not None)), parts),
                       keypoints(found["left_hand"]), keypoints(found["right_hand"]), keypoints(face))]
