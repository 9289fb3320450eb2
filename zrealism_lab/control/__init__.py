"""Control maps for the MultiControlNet: one registry of providers (depth, openpose, canny, lineart_anime),
each with detector methods that share one signature and return a ControlMap at the generation size. Also the
offline MediaPipe detectors the maps and the source stage share: faces (FACE_DETECTORS) and person segmentation."""
from __future__ import annotations

# Each module registers its provider; this order is the order in which widgets and the CLI list them.
from . import depth, pose, canny, lineart  # noqa: F401,I001
from .annotators import (
    ALLOW_PICKLE_ENV,
    ANNOTATOR_DIR_ENV,
    ANNOTATOR_REPO,
    ANNOTATORS,
    clear_annotator_cache,
    load_annotator,
    locate_annotator,
)
from .base import (
    CONTROL_PROVIDERS,
    ControlMap,
    ControlProvider,
    MethodSpec,
    available_methods,
    detect_control,
    list_kinds,
)
from .depth import inflate_depth
from .faces import FACE_DETECTORS, Face, detect_faces
from .mediapipe_runtime import MEDIAPIPE_INSTALL, MissingDetectorPackageError, mediapipe_available
from .pose import BODY_KEYPOINT_NAMES, POSE_POLICIES, pose_adherence_of, pose_keypoints, resolve_empty_pose
from .segmentation import person_probability

__all__ = [
    "ALLOW_PICKLE_ENV", "ANNOTATOR_DIR_ENV", "ANNOTATOR_REPO", "ANNOTATORS", "BODY_KEYPOINT_NAMES",
    "CONTROL_PROVIDERS", "ControlMap", "ControlProvider", "FACE_DETECTORS", "Face", "MEDIAPIPE_INSTALL",
    "MethodSpec", "MissingDetectorPackageError", "POSE_POLICIES", "available_methods", "clear_annotator_cache",
    "detect_control", "detect_faces", "inflate_depth", "list_kinds", "load_annotator", "locate_annotator",
    "mediapipe_available", "person_probability", "pose_adherence_of", "pose_keypoints", "resolve_empty_pose",
]
