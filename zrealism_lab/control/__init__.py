"""Control maps for the MultiControlNet: one registry of providers (depth, openpose, canny, lineart_anime),
each with detector methods that share one signature and return a ControlMap at the generation size."""
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
from .pose import BODY_KEYPOINT_NAMES, POSE_POLICIES, pose_keypoints, resolve_empty_pose

__all__ = [
    "ALLOW_PICKLE_ENV", "ANNOTATOR_DIR_ENV", "ANNOTATOR_REPO", "ANNOTATORS", "BODY_KEYPOINT_NAMES",
    "CONTROL_PROVIDERS", "ControlMap", "ControlProvider", "MethodSpec", "POSE_POLICIES", "available_methods",
    "clear_annotator_cache", "detect_control", "inflate_depth", "list_kinds", "load_annotator",
    "locate_annotator", "pose_keypoints", "resolve_empty_pose",
]
