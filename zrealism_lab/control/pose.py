"""OpenPose-format pose maps (body, hands and face) with their body keypoints, from two detectors: controlnet-aux's
OpenposeDetector (checkpoints from lllyasviel/Annotators, several people) and MediaPipe Holistic (models bundled in
the mediapipe wheel, so it runs offline; one person). Both are drawn by controlnet-aux's OpenPose renderer.

On anime art the detectors often find nobody. Such a map is all black; feeding it silently would steer the
pose ControlNet with nothing, so the map says ``found=False`` with a warning, and ``resolve_empty_pose``
applies the run's ``pose_policy``.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from ..errors import SettingsError
from .annotators import WEIGHTED_DEFAULTS, annotator_for, import_controlnet_aux
from .base import ControlMap, ControlProvider, DetectRequest, MethodResult, MethodSpec, register_provider
from .mediapipe_runtime import MEDIAPIPE_INSTALL, mediapipe_available
from .pose_mediapipe import pose_results as mediapipe_pose_results

if TYPE_CHECKING:
    from PIL import Image

    from ..metrics import MetricReport

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


def _check_mediapipe(params: dict[str, Any]) -> None:
    _check(params)
    if not 0.0 <= params["min_visibility"] <= 1.0:
        raise SettingsError("openpose.mediapipe.min_visibility", params["min_visibility"], "a number from 0 to 1")


def _drawn(poses: list[Any], request: DetectRequest, record: dict[str, Any]) -> MethodResult:
    """The OpenPose map and body keypoints of controlnet-aux PoseResults, for both methods."""
    import_controlnet_aux()
    from controlnet_aux.open_pose import draw_poses

    params = request.params
    width, height = request.size
    # Drawn straight at the output size so line widths are those ControlNet was trained with at that size.
    canvas = draw_poses(poses, height, width, draw_body=params["include_body"], draw_hand=params["include_hand"],
                        draw_face=params["include_face"])
    found = any(point is not None for pose in poses for point in pose.body.keypoints)
    warning = NO_PERSON_WARNING.replace("openpose", request.method, 1)
    return MethodResult(canvas, found=found, keypoints=pose_keypoints(poses, request.size),
                        warnings=[] if found else [warning], record={**record, "persons": len(poses)})


def _run_openpose(request: DetectRequest) -> MethodResult:
    detector, record = annotator_for(request)
    params = request.params
    # One detection gives both the drawing and the keypoints (calling the detector would detect again).
    poses = detector.detect_poses(request.image, include_hand=params["include_hand"],
                                  include_face=params["include_face"])
    return _drawn(poses, request, record)


def _mediapipe_missing() -> str | None:
    return None if mediapipe_available() else f"needs the mediapipe package: {MEDIAPIPE_INSTALL}"


def _run_mediapipe(request: DetectRequest) -> MethodResult:
    poses = mediapipe_pose_results(request.image, min_visibility=request.params["min_visibility"])
    return _drawn(poses, request, {"detector": "mediapipe holistic"})


def pose_adherence_of(fed: ControlMap, output: "Image.Image", *, tolerance: float | None = None) -> "MetricReport":
    """Re-detect the pose on ``output`` with the method, parameters and detection resolution ``fed`` was made
    with, and score its keypoints against ``fed``'s: pose_pck within ``tolerance`` of the long side (default
    metrics.adherence.DEFAULT_POSE_TOLERANCE, PCK@0.05), keypoints missed, and in the notes the share found."""
    from ..metrics.adherence import DEFAULT_POSE_TOLERANCE, control_adherence

    if fed.kind != "openpose" or fed.keypoints is None:
        raise SettingsError("fed", f"a {fed.kind} map", "an openpose ControlMap with keypoints")
    spec = OPENPOSE.method(fed.method)
    params = {name: fed.params[name] for name in spec.defaults if name in fed.params}
    scale = np.array([output.width / fed.size[0], output.height / fed.size[1]])  # fed keypoints in output pixels

    def detect(image: "Image.Image") -> np.ndarray | None:
        return OPENPOSE.detect(image, size=image.size, detect_resolution=fed.params["detect_resolution"],
                               method=fed.method, **params).keypoints

    return control_adherence(output, {"openpose": fed.keypoints * scale}, lambda kind: detect,
                             pose_tolerance=DEFAULT_POSE_TOLERANCE if tolerance is None else tolerance)


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
        "mediapipe": MethodSpec(
            "mediapipe", "MediaPipe body + hands + face (offline)",
            "MediaPipe Holistic (BlazePose 33 landmarks mapped to the 18 OpenPose keypoints, hands, face mesh) with "
            "the models bundled in the mediapipe wheel: no checkpoint to fetch; one person per image.",
            needs_weights=False, run=_run_mediapipe,
            defaults={"include_body": True, "include_hand": True, "include_face": True, "pose_policy": "drop",
                      "min_visibility": 0.5},
            check=_check_mediapipe, missing=_mediapipe_missing),
    },
    # Checkpoint users keep OpenPose; model sets without annotator weights choose "mediapipe" (models.modelset).
    default_method="openpose",
))
