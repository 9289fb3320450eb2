"""OpenPose maps (controlnet-aux OpenposeDetector: body, hands and face) with their body keypoints.

On anime art the detector often finds nobody. Such a map is all black; feeding it silently would steer the
pose ControlNet with nothing, so the map says ``found=False`` with a warning, and ``resolve_empty_pose``
applies the run's ``pose_policy``.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from ..errors import SettingsError
from .annotators import WEIGHTED_DEFAULTS, annotator_for, import_controlnet_aux
from .base import ControlMap, ControlProvider, DetectRequest, MethodResult, MethodSpec, register_provider

POSE_POLICIES = ("drop", "keep")

# OpenPose COCO-18 body order, as controlnet-aux's BodyResult.keypoints lists them.
BODY_KEYPOINT_NAMES = (
    "nose", "neck", "right_shoulder", "right_elbow", "right_wrist", "left_shoulder", "left_elbow", "left_wrist",
    "right_hip", "right_knee", "right_ankle", "left_hip", "left_knee", "left_ankle",
    "right_eye", "left_eye", "right_ear", "left_ear",
)

NO_PERSON_WARNING = ("openpose found no person in the image (common on anime art); the pose map is empty. "
                     "pose_policy 'drop' leaves the pose ControlNet out, 'keep' feeds the empty map.")


def pose_keypoints(poses: Sequence[Any], size: tuple[int, int]) -> np.ndarray:
    """Body keypoints of controlnet-aux PoseResults as pixel (x, y) at ``size``: 18 rows per person, NaN where
    a part was not found. controlnet-aux gives coordinates as fractions of the detection image, so they scale
    straight to any size with the same aspect ratio."""
    width, height = size
    rows = [
        (np.nan, np.nan) if point is None else (float(point.x) * width, float(point.y) * height)
        for pose in poses for point in pose.body.keypoints
    ]
    return np.asarray(rows, dtype=np.float32).reshape(-1, 2)


def resolve_empty_pose(control_map: ControlMap, policy: str | None = None) -> ControlMap | None:
    """Apply the empty-pose policy: None to drop an empty pose map, or the map with a warning to keep it.
    Maps that found a person, and maps of other kinds, come back unchanged. ``policy`` defaults to the
    ``pose_policy`` the map was detected with."""
    policy = control_map.params.get("pose_policy", "drop") if policy is None else policy
    if policy not in POSE_POLICIES:
        raise SettingsError("pose_policy", policy, "one of " + ", ".join(POSE_POLICIES))
    if control_map.kind != "openpose" or control_map.found:
        return control_map
    if policy == "drop":
        return None
    return control_map.with_warning("pose_policy 'keep': the empty (all-black) pose map is fed to the pose "
                                    "ControlNet, which then has no skeleton to follow.")


def _check(params: dict[str, Any]) -> None:
    if params["pose_policy"] not in POSE_POLICIES:
        raise SettingsError("openpose.pose_policy", params["pose_policy"], "one of " + ", ".join(POSE_POLICIES))
    if not (params["include_body"] or params["include_hand"] or params["include_face"]):
        raise SettingsError("openpose.include_body", False, "at least one of body, hand or face drawn")


def _run_openpose(request: DetectRequest) -> MethodResult:
    detector, record = annotator_for(request)
    params = request.params
    # One detection gives both the drawing and the keypoints (calling the detector would detect again).
    poses = detector.detect_poses(request.image, include_hand=params["include_hand"],
                                  include_face=params["include_face"])
    import_controlnet_aux()
    from controlnet_aux.open_pose import draw_poses

    width, height = request.size
    # Drawn straight at the output size so line widths are those ControlNet was trained with at that size.
    canvas = draw_poses(poses, height, width, draw_body=params["include_body"], draw_hand=params["include_hand"],
                        draw_face=params["include_face"])
    return MethodResult(canvas, found=bool(poses), keypoints=pose_keypoints(poses, request.size),
                        warnings=[] if poses else [NO_PERSON_WARNING], record={**record, "persons": len(poses)})


OPENPOSE = register_provider(ControlProvider(
    kind="openpose",
    label="Pose (OpenPose)",
    methods={
        "openpose": MethodSpec(
            "openpose", "OpenPose body + hands + face",
            "controlnet-aux OpenposeDetector (body_pose_model.pth, hand_pose_model.pth, facenet.pth).",
            needs_weights=True, run=_run_openpose,
            defaults={"include_body": True, "include_hand": True, "include_face": True, "pose_policy": "drop",
                      **WEIGHTED_DEFAULTS},
            check=_check),
    },
    default_method="openpose",
))
