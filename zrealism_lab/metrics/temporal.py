"""Temporal metrics of a clip: flicker, flow-compensated warping error and subject colour stability,
optionally beside the same numbers on the reference (input) clip so that real motion is not punished."""
from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from ..errors import SettingsError
from .colour import delta_e2000, rgb_to_lab
from .inputs import ClipLike, clip_array
from .registry import TEMPORAL_BASE_NAMES, make_metric
from .report import MetricReport

# Forward-backward consistency test of Sundaram et al. (2010), as used by Lai et al.'s warping error:
# a pixel is trusted when |fw + bw(x + fw)|^2 < ALPHA1 (|fw|^2 + |bw(x + fw)|^2) + ALPHA2.
_ALPHA1, _ALPHA2 = 0.01, 0.5
_MIN_FLOW_SIDE = 16  # pixels; DIS needs at least 12
_QUARTER_FLOW_FROM = 256  # pixels (shorter side)
# Ratios of near-zero numbers say nothing; below these floors a value counts as "still".
_RATIO_FLOOR = {"flicker": 0.5, "warp_error": 0.5, "colour_jitter": 0.5, "colour_drift": 0.5}


def _frame_masks(mask: np.ndarray | None, clip: np.ndarray, what: str) -> np.ndarray | None:
    """(T, H, W) bool subject masks for ``clip`` from a (H, W) or (T, H, W) mask, resized if the clip differs."""
    import cv2

    if mask is None:
        return None
    mask = np.asarray(mask)
    mask = mask if mask.dtype == bool else mask != 0
    t, h, w = clip.shape[:3]
    if mask.ndim == 3 and mask.shape[0] != t:
        mask = mask.any(axis=0)  # another clip's per-frame masks: fall back to where the subject ever is
    if mask.ndim == 2:
        mask = np.broadcast_to(mask, (t,) + mask.shape)
    if mask.ndim != 3:
        raise SettingsError(what, f"mask of shape {mask.shape}", "a bool array (H, W) or (T, H, W)")
    if mask.shape[1:] != (h, w):
        mask = np.stack([cv2.resize(m.astype(np.uint8), (w, h), interpolation=cv2.INTER_NEAREST) > 0 for m in mask])
    return mask


def _flicker(clip: np.ndarray) -> list[float]:
    import cv2

    return [float(np.mean(cv2.mean(cv2.absdiff(clip[i - 1], clip[i]))[:3])) for i in range(1, len(clip))]


def _warp_errors(clip: np.ndarray) -> tuple[list[float], float]:
    """Per consecutive pair, the mean absolute RGB difference (0-255) between frame t-1 and frame t warped
    back onto it with DIS optical flow, over pixels that pass the forward-backward check and stay inside the
    frame; and the share of pixels that could be scored."""
    import cv2

    t, h, w = clip.shape[:3]
    grey = [cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY) for frame in clip]
    # DIS refuses frames under 12 px; tiny frames are mirrored out to a workable size and the flow cropped
    pad_y, pad_x = max(0, _MIN_FLOW_SIDE - h), max(0, _MIN_FLOW_SIDE - w)
    if pad_y or pad_x:
        grey = [cv2.copyMakeBorder(g, 0, pad_y, 0, pad_x, cv2.BORDER_REFLECT) for g in grey]
    grid_x, grid_y = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    local = threading.local()

    def pair(i: int) -> tuple[float, int]:
        if not hasattr(local, "dis"):  # a DIS object holds working buffers: one per thread, never shared
            local.dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
            if min(h, w) >= _QUARTER_FLOW_FROM:
                # patch search down to 1/4 resolution, then variational refinement: a third of the time of
                # MEDIUM's 1/2, warping errors within 0.05 levels of it on panning and zooming test clips
                local.dis.setFinestScale(2)
        # forward: where each pixel of frame t-1 went in frame t
        forward = np.ascontiguousarray(local.dis.calc(grey[i - 1], grey[i], None)[:h, :w])
        backward = np.ascontiguousarray(local.dis.calc(grey[i], grey[i - 1], None)[:h, :w])
        fx, fy = cv2.split(forward)
        map_x, map_y = grid_x + fx, grid_y + fy
        warped = cv2.remap(clip[i], map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        bx, by = cv2.split(cv2.remap(backward, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE))
        loop_x, loop_y = fx + bx, fy + by
        magnitude = fx * fx + fy * fy + bx * bx + by * by
        valid = (loop_x * loop_x + loop_y * loop_y) < _ALPHA1 * magnitude + _ALPHA2
        valid &= (map_x >= 0) & (map_x <= w - 1) & (map_y >= 0) & (map_y <= h - 1)
        count = int(np.count_nonzero(valid))
        if count == 0:
            return 0.0, 0  # nothing could be matched: no evidence of inconsistency to report
        difference = cv2.absdiff(clip[i - 1], warped)
        return float(np.mean(cv2.mean(difference, mask=valid.view(np.uint8))[:3])), count

    # Optical flow dominates the cost and OpenCV releases the GIL: pairs run side by side on all cores.
    with ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1)) as pool:
        results = list(pool.map(pair, range(1, t)))
    errors = [error for error, _ in results]
    valid_total = sum(count for _, count in results)
    return errors, valid_total / float((t - 1) * h * w)


def _subject_colours(clip: np.ndarray, masks: np.ndarray | None) -> np.ndarray:
    """(T, 3) mean L*a*b* colour of the subject in each frame (the whole frame where its mask is empty)."""
    t, h, w = clip.shape[:3]
    lab = rgb_to_lab(clip.reshape(t * h, w, 3)).reshape(t, h * w, 3)
    means = np.empty((t, 3), dtype=np.float64)
    for i in range(t):
        chosen = None if masks is None else masks[i].reshape(-1)
        if chosen is not None and chosen.any():
            means[i] = lab[i][chosen].mean(axis=0, dtype=np.float64)
        else:
            means[i] = lab[i].mean(axis=0, dtype=np.float64)
    return means


def _clip_measures(clip: np.ndarray, masks: np.ndarray | None) -> tuple[dict[str, float], dict[str, list[float]]]:
    flicker = _flicker(clip)
    warp, valid_fraction = _warp_errors(clip)
    colours = _subject_colours(clip, masks)
    jitter = delta_e2000(colours[:-1], colours[1:]).astype(np.float64)
    drift = delta_e2000(np.broadcast_to(colours[0], colours[1:].shape), colours[1:]).astype(np.float64)
    values = {
        "flicker": float(np.mean(flicker)),
        "warp_error": float(np.mean(warp)),
        "colour_jitter": float(jitter.mean()),
        "colour_drift": float(drift.max()),
        "warp_valid_fraction": float(valid_fraction),
    }
    series = {"flicker": flicker, "warp_error": warp, "colour_jitter": jitter.tolist(), "colour_drift": drift.tolist()}
    return values, series


def stability_ratio(output_value: float, reference_value: float, floor: float) -> float:
    """output / reference, with both held above ``floor`` so still reference clips give finite ratios."""
    if output_value <= floor and reference_value <= floor:
        return 1.0
    return output_value / max(reference_value, floor)


def evaluate_clip(frames: ClipLike, reference: ClipLike | None = None, mask: np.ndarray | None = None) -> MetricReport:
    """Temporal metrics of ``frames`` (a list of PIL images or a (T, H, W, 3) uint8 array).

    ``mask`` (bool (H, W) or (T, H, W), True = subject) restricts the colour-stability metrics. With a
    ``reference`` clip (the input clip) the same metrics are measured on it and reported beside the
    output's as ``*_reference``, with ``*_ratio`` = output / reference.
    ``report.series`` holds the per-pair curves (pair i compares frame i with frame i+1).
    """
    clip = clip_array(frames, "frames")
    masks = _frame_masks(mask, clip, "mask")
    report = MetricReport(kind="clip")
    if masks is not None and not masks.reshape(len(masks), -1).any(axis=1).all():
        report.notes.append("the subject mask is empty in some frames; those frames use the whole frame")
    values, series = _clip_measures(clip, masks)
    report.series.update(series)
    names = list(TEMPORAL_BASE_NAMES) + ["warp_valid_fraction"]
    if reference is not None:
        reference_clip = clip_array(reference, "reference")
        reference_values, reference_series = _clip_measures(
            reference_clip, _frame_masks(mask, reference_clip, "mask"))
        for name in TEMPORAL_BASE_NAMES:
            values[f"{name}_reference"] = reference_values[name]
            values[f"{name}_ratio"] = stability_ratio(values[name], reference_values[name], _RATIO_FLOOR[name])
            names += [f"{name}_reference", f"{name}_ratio"]
        report.series.update({f"{name}_reference": curve for name, curve in reference_series.items()})
        if len(reference_clip) != len(clip):
            report.notes.append(f"the reference has {len(reference_clip)} frames and the output {len(clip)}; "
                                "their averages are compared")
    report.values = [make_metric(name, values[name]) for name in names]
    return report
