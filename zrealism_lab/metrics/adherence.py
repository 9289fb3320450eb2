"""Control adherence (cycle consistency, as in ControlNet++): re-run a control provider on the output and
score the result against the map that was fed to the generator.

``depth_adherence`` and ``pose_adherence`` work on plain arrays so they are testable without weights;
``control_adherence`` runs providers found through a lookup callable, so this module never imports the
control package itself.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping

import numpy as np
from PIL import Image

from ..errors import MissingWeightsError, SettingsError
from .image import edge_f1, ssim
from .registry import make_metric
from .report import MetricReport

Provider = Callable[[Image.Image], Any]
ProviderLookup = Callable[[str], "Provider | None"]

# The body-keypoint colours of the OpenPose renderer that ControlNet pose maps are drawn with
# (controlnet_aux.open_pose.util.draw_bodypose), in the 18-keypoint COCO order. Limbs are drawn at 60 %
# of these colours, so every keypoint colour (each has a 255 channel) is at least 102 levels from any limb.
OPENPOSE_COLOURS = np.array([
    [255, 0, 0], [255, 85, 0], [255, 170, 0], [255, 255, 0], [170, 255, 0], [85, 255, 0], [0, 255, 0],
    [0, 255, 85], [0, 255, 170], [0, 255, 255], [0, 170, 255], [0, 85, 255], [0, 0, 255], [85, 0, 255],
    [170, 0, 255], [255, 0, 255], [255, 0, 170], [255, 0, 85]], dtype=np.int16)
N_BODY_KEYPOINTS = len(OPENPOSE_COLOURS)
_COLOUR_TOLERANCE = 40  # per channel: absorbs resampling blur, stays far from the limb colours
_MIN_BLOB_PIXELS = 2
DEFAULT_POSE_TOLERANCE = 0.05  # share of the map's longer side, as PCK@0.05


@dataclass(frozen=True)
class AdherenceRequest:
    """What ``evaluate_pair(..., adherence=...)`` needs to measure adherence on the output."""

    fed_maps: Mapping[str, Any]
    provider_lookup: ProviderLookup
    pose_tolerance: float = DEFAULT_POSE_TOLERANCE


# ---------------------------------------------------------------------------------------------- depth
def _depth_array(depth: Any, what: str) -> np.ndarray:
    if isinstance(depth, Image.Image):
        depth = np.asarray(depth.convert("L"), dtype=np.float64)
    array = np.asarray(depth, dtype=np.float64)
    if array.ndim == 3:
        array = array.mean(axis=2)
    if array.ndim != 2 or array.size == 0:
        raise SettingsError(what, f"array of shape {np.shape(depth)}", "a depth map of shape (H, W) or (H, W, 3)")
    return np.nan_to_num(array)


def depth_adherence(fed_map: Any, detected_map: Any) -> dict[str, float]:
    """{"depth_rmse", "depth_spearman"} between the depth map fed in and the one detected on the output.

    Monocular depth is relative, so the detected map is first fitted to the fed one by least-squares scale
    and shift; the RMSE is in units of the fed map's depth range (0-1). Spearman compares only the
    near-to-far ordering. A detected map of another size is resized to the fed map's size.
    """
    import cv2
    from scipy.stats import spearmanr

    fed = _depth_array(fed_map, "fed_map")
    detected = _depth_array(detected_map, "detected_map")
    if detected.shape != fed.shape:
        detected = cv2.resize(detected, (fed.shape[1], fed.shape[0]), interpolation=cv2.INTER_LINEAR)
    low, high = fed.min(), fed.max()
    fed = (fed - low) / (high - low) if high > low else np.zeros_like(fed)
    f, d = fed.ravel(), detected.ravel()
    d_centred = d - d.mean()
    spread = float((d_centred * d_centred).sum())
    scale = float((d_centred * (f - f.mean())).sum()) / spread if spread > 0 else 0.0
    residual = f - (f.mean() + scale * d_centred)
    rmse = float(np.sqrt((residual * residual).mean()))
    fed_flat, detected_flat = np.ptp(f) == 0, np.ptp(d) == 0
    if fed_flat or detected_flat:
        # rank correlation is undefined for a constant map: two flat maps agree, one flat map carries no order
        rho = 1.0 if fed_flat and detected_flat else 0.0
    else:
        rho = float(spearmanr(f, d).statistic)
    return {"depth_rmse": rmse, "depth_spearman": rho}


# ----------------------------------------------------------------------------------------------- pose
def _keypoint_table(keypoints: Any) -> np.ndarray:
    """(N, 3) rows of (keypoint index, x, y) for the keypoints that are present.

    Accepts (K, 2|3) for one person or (P, K, 2|3) for several; a keypoint is absent when a coordinate is
    NaN or negative or its third column (confidence) is 0 or less. None or an empty array = nothing found.
    """
    if keypoints is None:
        return np.zeros((0, 3))
    array = np.asarray(keypoints, dtype=np.float64)
    if array.size == 0:
        return np.zeros((0, 3))
    if array.ndim == 2:
        array = array[None]
    if array.ndim != 3 or array.shape[2] not in (2, 3):
        raise SettingsError("keypoints", f"array of shape {np.shape(keypoints)}",
                            "shape (K, 2), (K, 3), (P, K, 2) or (P, K, 3)")
    xy = array[..., :2]
    present = np.isfinite(xy).all(axis=2) & (xy >= 0).all(axis=2)
    if array.shape[2] == 3:
        present &= np.nan_to_num(array[..., 2]) > 0
    person, index = np.nonzero(present)
    return np.column_stack([index, xy[person, index, 0], xy[person, index, 1]])


def pose_adherence(fed_keypoints: Any, detected_keypoints: Any, tolerance: float) -> dict[str, float]:
    """{"pose_pck", "pose_keypoints_fed", "pose_keypoints_missing"}.

    A fed keypoint is re-found when a detected keypoint of the same type lies within ``tolerance`` (same
    units as the keypoints). Matching is one-to-one per keypoint type, nearest pairs first, so several
    people need no identity matching. Fed keypoints with no detected keypoint of their type at all (the
    detector failed on them) are counted in ``pose_keypoints_missing`` and as misses in ``pose_pck``.
    With no fed keypoints there is nothing to re-find and ``pose_pck`` is 0.
    """
    if not tolerance > 0:
        raise SettingsError("tolerance", tolerance, "a positive distance in the keypoints' units")
    fed = _keypoint_table(fed_keypoints)
    detected = _keypoint_table(detected_keypoints)
    refound = missing = 0
    for kind in np.unique(fed[:, 0]):
        fed_xy = fed[fed[:, 0] == kind, 1:]
        detected_xy = detected[detected[:, 0] == kind, 1:]
        if len(detected_xy) == 0:
            missing += len(fed_xy)
            continue
        if len(detected_xy) < len(fed_xy):
            missing += len(fed_xy) - len(detected_xy)
        distances = np.linalg.norm(fed_xy[:, None, :] - detected_xy[None, :, :], axis=2)
        used_fed, used_detected = set(), set()
        for flat in np.argsort(distances, axis=None):
            i, j = np.unravel_index(flat, distances.shape)
            if distances[i, j] > tolerance:
                break
            if i in used_fed or j in used_detected:
                continue
            used_fed.add(i)
            used_detected.add(j)
            refound += 1
    n_fed = len(fed)
    return {
        "pose_pck": refound / n_fed if n_fed else 0.0,
        "pose_keypoints_fed": float(n_fed),
        "pose_keypoints_missing": float(missing),
    }


def pose_found_share(values: Mapping[str, float]) -> float:
    """Share of the fed keypoints the detector found on the output at all, at any distance (1 - missing / fed),
    from ``pose_adherence``'s values; 0 when nothing was fed."""
    fed = values["pose_keypoints_fed"]
    return (fed - values["pose_keypoints_missing"]) / fed if fed else 0.0


def pose_agreement_note(values: Mapping[str, float], tolerance: float, size: tuple[int, int]) -> str:
    """One line stating the PCK threshold and the share found, for reports (``tolerance``: share of the long side)."""
    fed = int(values["pose_keypoints_fed"])
    found = fed - int(values["pose_keypoints_missing"])
    return (f"pose adherence: PCK@{tolerance:g} = {values['pose_pck']:.2f} (a fed keypoint counts when the detector "
            f"finds it again within {tolerance * max(size):.1f} px, {tolerance:.0%} of the {max(size)} px long side); "
            f"{found} of {fed} fed keypoints found at all ({pose_found_share(values):.0%})")


def keypoints_from_pose_map(pose_map: Any) -> np.ndarray:
    """(P, 18, 3) keypoints (x, y in pixels, confidence 1 or 0) read back from a rendered OpenPose map.

    Each body keypoint is a filled disc in its own colour, so the centroid of each blob of that colour is a
    keypoint. Which person a blob belongs to is not recoverable from colour alone; rows are filled in blob
    order, which ``pose_adherence`` does not depend on. Hand keypoints are drawn in the left knee's blue,
    so maps with hands drawn confuse that one keypoint.
    """
    import cv2

    if isinstance(pose_map, Image.Image):
        pose_map = pose_map.convert("RGB")
    rgb = np.asarray(pose_map)
    if rgb.ndim != 3 or rgb.shape[2] < 3:
        raise SettingsError("pose_map", f"array of shape {rgb.shape}", "an RGB pose map (H, W, 3)")
    rgb = rgb[..., :3].astype(np.int16)
    found: list[list[tuple[float, float]]] = []
    for colour in OPENPOSE_COLOURS:
        close = (np.abs(rgb - colour) <= _COLOUR_TOLERANCE).all(axis=2).astype(np.uint8)
        count, _, stats, centroids = cv2.connectedComponentsWithStats(close, connectivity=8)
        found.append([tuple(centroids[i]) for i in range(1, count) if stats[i, cv2.CC_STAT_AREA] >= _MIN_BLOB_PIXELS])
    people = max((len(blobs) for blobs in found), default=0)
    keypoints = np.zeros((people, N_BODY_KEYPOINTS, 3))
    for k, blobs in enumerate(found):
        for p, (x, y) in enumerate(blobs):
            keypoints[p, k] = (x, y, 1.0)
    return keypoints


def _looks_like_keypoints(value: Any) -> bool:
    """A keypoint array: (18, 2|3) for one person, (people, 18, 2|3), or the detectors' people stacked as
    (18 x people, 2|3), none found being (0, 2|3). An image is (H, W) or (H, W, 3|4) with H, W > 3."""
    if not isinstance(value, np.ndarray) or value.ndim not in (2, 3) or value.shape[-1] not in (2, 3):
        return False
    if value.ndim == 3:
        return value.shape[-2] == N_BODY_KEYPOINTS
    return value.shape[0] % N_BODY_KEYPOINTS == 0


def _pose_keypoints(value: Any, size: tuple[int, int]) -> np.ndarray:
    """Keypoints in pixels of an image of ``size`` (width, height) from a map, an array or PoseResults."""
    if isinstance(value, Image.Image):
        keypoints = keypoints_from_pose_map(value)
        return _rescale(keypoints, value.size, size)
    if _looks_like_keypoints(value):
        keypoints = np.asarray(value, dtype=np.float64)
        if keypoints.ndim == 2 and keypoints.shape[0] != N_BODY_KEYPOINTS:  # people stacked, or nobody
            keypoints = keypoints.reshape(-1, N_BODY_KEYPOINTS, keypoints.shape[-1])
        return keypoints
    if isinstance(value, np.ndarray):
        keypoints = keypoints_from_pose_map(value)
        return _rescale(keypoints, (value.shape[1], value.shape[0]), size)
    if isinstance(value, (list, tuple)):  # controlnet_aux detect_poses(): PoseResult with normalised keypoints
        people = []
        for pose in value:
            body = getattr(getattr(pose, "body", None), "keypoints", None)
            if body is None:
                continue
            people.append([(kp.x * size[0], kp.y * size[1], 1.0) if kp is not None else (0.0, 0.0, 0.0)
                           for kp in body][:N_BODY_KEYPOINTS])
        return np.asarray(people, dtype=np.float64).reshape(len(people), -1, 3)
    raise SettingsError("pose", type(value).__name__, "a pose map image, a keypoint array or PoseResults")


def _rescale(keypoints: np.ndarray, from_size: tuple[int, int], to_size: tuple[int, int]) -> np.ndarray:
    if tuple(from_size) == tuple(to_size) or keypoints.size == 0:
        return keypoints
    scaled = keypoints.copy()
    scaled[..., 0] *= to_size[0] / from_size[0]
    scaled[..., 1] *= to_size[1] / from_size[1]
    return scaled


# ----------------------------------------------------------------------------------- edges and lines
def _grey(value: Any, size: tuple[int, int] | None = None, binary: bool = False) -> np.ndarray:
    """A uint8 grey map, resized to ``size`` (nearest for binary edge maps so they stay binary)."""
    import cv2

    if isinstance(value, Image.Image):
        value = value.convert("L")
    array = np.asarray(value)
    if array.ndim == 3:
        array = array[..., :3].mean(axis=2)
    if array.dtype != np.uint8:
        array = np.nan_to_num(array.astype(np.float64))
        if array.size and array.max() <= 1.0:
            array = array * 255.0
        array = np.clip(np.round(array), 0, 255).astype(np.uint8)
    if size is not None and (array.shape[1], array.shape[0]) != tuple(size):
        interpolation = cv2.INTER_NEAREST if binary else cv2.INTER_LINEAR
        array = cv2.resize(array, tuple(size), interpolation=interpolation)
    return array


def _family(kind: str) -> str | None:
    lowered = kind.lower()
    for family in ("depth", "pose", "canny", "lineart"):
        if family in lowered:
            return family
    return None


def control_adherence(output_image: Image.Image, fed_maps: Mapping[str, Any], provider_lookup: ProviderLookup,
                      *, pose_tolerance: float = DEFAULT_POSE_TOLERANCE) -> MetricReport:
    """Re-run each control kind's provider on ``output_image`` and score it against the fed map.

    ``provider_lookup(kind)`` returns a callable image -> map (or None when that provider is unavailable).
    Kinds are recognised by name: "depth*", "*pose*", "canny*", "lineart*". Unavailable providers and
    missing weights are skipped with a note; a pose detector that fails or finds nobody counts every fed
    keypoint as missed. ``pose_tolerance`` is a share of the fed map's longer side.
    """
    report = MetricReport(kind="adherence")
    done: set[str] = set()
    for kind, fed in fed_maps.items():
        family = _family(kind)
        if family is None:
            report.notes.append(f"no adherence measure for control '{kind}'")
            continue
        if family in done:
            report.notes.append(f"control '{kind}' skipped: {family} adherence was already measured")
            continue
        provider = provider_lookup(kind)
        if provider is None:
            report.notes.append(f"no '{kind}' provider available; its adherence was not measured")
            continue
        fed_size = fed.size if isinstance(fed, Image.Image) else (output_image.width, output_image.height)
        try:
            detected = provider(output_image)
        except MissingWeightsError as error:
            report.notes.append(f"'{kind}' adherence not measured: {error}")
            continue
        except Exception as error:  # noqa: BLE001 - a failing pose detector is a result, not a crash
            if family != "pose":
                raise
            report.notes.append(f"the '{kind}' detector failed on the output ({error}); all keypoints count as missed")
            detected = None
        if detected is None and family != "pose":
            report.notes.append(f"the '{kind}' provider returned nothing for the output; its adherence was not measured")
            continue
        done.add(family)
        if family == "depth":
            values = depth_adherence(fed, detected)
        elif family == "pose":
            fed_keypoints = _pose_keypoints(fed, fed_size)
            found = None if detected is None else _pose_keypoints(detected, fed_size)
            values = pose_adherence(fed_keypoints, found, pose_tolerance * max(fed_size))
            if values["pose_keypoints_fed"] == 0:
                report.notes.append(f"the fed '{kind}' map has no keypoints; pose adherence is vacuous")
            else:
                report.notes.append(pose_agreement_note(values, pose_tolerance, fed_size))
        elif family == "canny":
            fed_grey = _grey(fed)
            size = (fed_grey.shape[1], fed_grey.shape[0])
            values = {"canny_f1": edge_f1(fed_grey > 127, _grey(detected, size, binary=True) > 127)}
        else:
            fed_grey = _grey(fed)
            size = (fed_grey.shape[1], fed_grey.shape[0])
            values = {"lineart_ssim": ssim(fed_grey, _grey(detected, size))}
        report.values.extend(make_metric(name, value) for name, value in values.items())
    return report
