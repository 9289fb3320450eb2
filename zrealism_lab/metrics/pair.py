"""An output against its source: edges, structure, colour and texture in one report, plus control adherence when
asked for. The twin of ``temporal.evaluate_clip`` for stills."""
from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from ..errors import SettingsError
from .adherence import AdherenceRequest, control_adherence
from .colour import delta_e2000, lab_moments, moment_distances, rgb_to_lab
from .image import (EDGE_TOLERANCE, ENTROPY_FLOOR, balance_ratio, canny_edges, edge_f1, laplacian_variance,
                    shannon_entropy, ssim)
from .inputs import ImageLike, align_pair, bool_mask, luminance, rgb_array
from .registry import make_metric
from .report import MetricReport

if TYPE_CHECKING:  # pragma: no cover
    from concurrent.futures import Executor


def colour_metrics(source_lab: np.ndarray, output_lab: np.ndarray, mask: np.ndarray | None,
                    pool: "Executor | None" = None) -> dict[str, float]:
    if mask is not None:
        source_pixels, output_pixels = source_lab[mask], output_lab[mask]
    else:
        source_pixels, output_pixels = source_lab.reshape(-1, 3), output_lab.reshape(-1, 3)
    # CIEDE2000 is the costliest step: half of it goes to the pool while this thread does the other half
    half = source_pixels.shape[0] // 2 if pool is not None else 0
    first_half = pool.submit(delta_e2000, source_pixels[:half], output_pixels[:half]) if half else None
    source_moments = lab_moments(source_lab, mask)
    output_moments = lab_moments(output_lab, mask)
    total = float(delta_e2000(source_pixels[half:], output_pixels[half:]).sum(dtype=np.float64))
    if first_half is not None:
        total += float(first_half.result().sum(dtype=np.float64))
    distances = moment_distances(source_moments, output_moments)
    values = {
        "delta_e2000_mean": total / max(1, source_pixels.shape[0]),
        "lab_mean_distance": distances["mean"],
        "lab_std_distance": distances["std"],
        "lab_skew_distance": distances["skew"],
    }
    values.update({f"{key}_source": value for key, value in source_moments.items()})
    values.update({f"{key}_output": value for key, value in output_moments.items()})
    return values


def structure_metrics(source_gray: np.ndarray, output_gray: np.ndarray, tolerance: int) -> dict[str, float]:
    lap_source = laplacian_variance(source_gray)
    lap_output = laplacian_variance(output_gray)
    entropy_source = shannon_entropy(source_gray)
    entropy_output = shannon_entropy(output_gray)
    if max(entropy_source, entropy_output) < ENTROPY_FLOOR:
        entropy_ratio = 1.0
    else:
        entropy_ratio = entropy_output / max(entropy_source, ENTROPY_FLOOR)
    return {
        "laplacian_var_source": lap_source,
        "laplacian_var_output": lap_output,
        "laplacian_ratio": balance_ratio(lap_source, lap_output),
        "edge_f1": edge_f1(canny_edges(source_gray), canny_edges(output_gray), tolerance),
        "ssim_luma": ssim(source_gray, output_gray),
        "entropy_source": entropy_source,
        "entropy_output": entropy_output,
        "entropy_ratio": entropy_ratio,
    }


_PAIR_ORDER = (
    "laplacian_ratio", "edge_f1", "ssim_luma", "delta_e2000_mean", "lab_mean_distance", "lab_std_distance",
    "lab_skew_distance", "entropy_ratio", "laplacian_var_source", "laplacian_var_output",
    "entropy_source", "entropy_output",
)


def evaluate_pair(source: ImageLike, output: ImageLike, mask: np.ndarray | None = None,
                  adherence: "MetricReport | AdherenceRequest | None" = None, *,
                  edge_tolerance: int = EDGE_TOLERANCE) -> MetricReport:
    """Compare a generated ``output`` with its ``source`` image.

    ``mask`` (bool, source size, True = subject) restricts the colour metrics to the subject. Images of
    different sizes are compared at ``report.common_size`` (see ``inputs.plan_common_size``).
    ``adherence`` is an optional control-adherence result to include: a MetricReport from
    ``control_adherence`` or an ``AdherenceRequest`` (fed maps + provider lookup) to run now on ``output``.
    """
    from concurrent.futures import ThreadPoolExecutor

    source_rgb = rgb_array(source, "source")
    output_rgb = rgb_array(output, "output")
    notes: list[str] = []
    subject = None
    if mask is not None:
        subject = bool_mask(mask, source_rgb.shape[:2])
    source_rgb, output_rgb, subject, alignment = align_pair(source_rgb, output_rgb, subject)
    if alignment.note:
        notes.append(alignment.note)
    if subject is not None and not subject.any():
        notes.append("the subject mask is empty; colour metrics use the whole image")
        subject = None

    # Two threads share the work: NumPy and OpenCV release the GIL, so both cores stay busy.
    with ThreadPoolExecutor(max_workers=2) as pool:
        structure = pool.submit(structure_metrics, luminance(source_rgb), luminance(output_rgb), edge_tolerance)
        output_lab_future = pool.submit(rgb_to_lab, output_rgb)
        source_lab = rgb_to_lab(source_rgb)
        values = colour_metrics(source_lab, output_lab_future.result(), subject, pool)
        values.update(structure.result())

    ordered = list(_PAIR_ORDER) + [name for name in values if name not in _PAIR_ORDER]
    report = MetricReport(kind="pair", values=[make_metric(name, values[name]) for name in ordered],
                          common_size=alignment.size, notes=notes)
    if adherence is not None:
        report.extend(_adherence_report(adherence, output))
    for metric in report.values:
        if not math.isfinite(metric.value):  # a bug, not a user error: every path above is defined
            raise ArithmeticError(f"metric {metric.name} is not finite ({metric.value})")
    return report


def _adherence_report(adherence: object, output: ImageLike) -> MetricReport:
    if isinstance(adherence, MetricReport):
        return adherence
    if isinstance(adherence, AdherenceRequest):
        image = output if isinstance(output, Image.Image) else Image.fromarray(rgb_array(output, "output"))
        return control_adherence(image.convert("RGB"), adherence.fed_maps, adherence.provider_lookup,
                                 pose_tolerance=adherence.pose_tolerance)
    raise SettingsError("adherence", type(adherence).__name__,
                        "None, a MetricReport from control_adherence, or an AdherenceRequest")
