"""Static metrics between a source image and a generated output: edges, structure, colour and texture."""
from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from .colour import delta_e2000, lab_moments, moment_distances, rgb_to_lab
from .inputs import ImageLike, align_pair, bool_mask, luminance, rgb_array
from .registry import make_metric
from .report import MetricReport

if TYPE_CHECKING:  # pragma: no cover
    from concurrent.futures import Executor

    from .adherence import AdherenceRequest

CANNY_LOW, CANNY_HIGH = 100, 200  # the thresholds ControlNet's canny preprocessor uses by default
EDGE_TOLERANCE = 2  # pixels an edge may move and still count as kept
SSIM_WINDOW = 7  # skimage's default window
ENTROPY_FLOOR = 0.01  # bits; keeps the ratio finite when the source is flat


def laplacian_variance(gray: np.ndarray) -> float:
    """Variance of the 64-bit Laplacian (negative responses must not be clipped as with uint8 output)."""
    import cv2

    return float(cv2.Laplacian(gray, cv2.CV_64F).var())


def balance_ratio(a: float, b: float) -> float:
    """min/max of two non-negative numbers; 1 when both are zero (equally flat)."""
    high = max(a, b)
    return 1.0 if high <= 0.0 else min(a, b) / high


def canny_edges(gray: np.ndarray) -> np.ndarray:
    import cv2

    return cv2.Canny(gray, CANNY_LOW, CANNY_HIGH) > 0


def edge_f1(reference_edges: np.ndarray, candidate_edges: np.ndarray, tolerance: int = EDGE_TOLERANCE) -> float:
    """F1 of two binary edge maps where an edge pixel counts as matched if the other map has one within
    ``tolerance`` pixels (a disc). Both empty -> 1 (they agree there is nothing); one empty -> 0."""
    import cv2

    reference_edges = np.asarray(reference_edges, dtype=bool)
    candidate_edges = np.asarray(candidate_edges, dtype=bool)
    n_ref, n_cand = int(reference_edges.sum()), int(candidate_edges.sum())
    if n_ref == 0 and n_cand == 0:
        return 1.0
    if n_ref == 0 or n_cand == 0:
        return 0.0
    size = 2 * int(tolerance) + 1
    disc = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (size, size))
    near_ref = cv2.dilate(reference_edges.view(np.uint8), disc) > 0
    near_cand = cv2.dilate(candidate_edges.view(np.uint8), disc) > 0
    precision = np.count_nonzero(candidate_edges & near_ref) / n_cand
    recall = np.count_nonzero(reference_edges & near_cand) / n_ref
    return 0.0 if precision + recall == 0 else float(2 * precision * recall / (precision + recall))


def ssim(gray_a: np.ndarray, gray_b: np.ndarray, data_range: float = 255.0) -> float:
    """Mean SSIM with skimage's defaults (7x7 uniform window, sample covariance, K1=0.01, K2=0.03, borders
    cropped), computed with OpenCV box filters in float32: within 1e-6 of
    skimage.metrics.structural_similarity at about a quarter of its time. Images smaller than the window are
    scored as one window."""
    import cv2

    c1 = (0.01 * data_range) ** 2
    c2 = (0.03 * data_range) ** 2
    if min(np.shape(gray_a)) < SSIM_WINDOW:
        x = np.asarray(gray_a, dtype=np.float64)
        y = np.asarray(gray_b, dtype=np.float64)
        mx, my = x.mean(), y.mean()
        n = x.size
        norm = n / (n - 1) if n > 1 else 1.0
        vx, vy = x.var() * norm, y.var() * norm
        vxy = ((x - mx) * (y - my)).mean() * norm
        return float((2 * mx * my + c1) * (2 * vxy + c2) / ((mx * mx + my * my + c1) * (vx + vy + c2)))
    x = np.asarray(gray_a, dtype=np.float32)
    y = np.asarray(gray_b, dtype=np.float32)
    cov_norm = np.float32(SSIM_WINDOW * SSIM_WINDOW / (SSIM_WINDOW * SSIM_WINDOW - 1))

    def box(img: np.ndarray) -> np.ndarray:
        return cv2.boxFilter(img, cv2.CV_32F, (SSIM_WINDOW, SSIM_WINDOW), normalize=True,
                             borderType=cv2.BORDER_REFLECT)

    ux, uy = box(x), box(y)
    uxx, uyy, uxy = box(x * x), box(y * y), box(x * y)
    vx = cov_norm * (uxx - ux * ux)
    vy = cov_norm * (uyy - uy * uy)
    vxy = cov_norm * (uxy - ux * uy)
    c1, c2 = np.float32(c1), np.float32(c2)
    s = ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux * ux + uy * uy + c1) * (vx + vy + c2))
    pad = (SSIM_WINDOW - 1) // 2
    return float(s[pad:-pad, pad:-pad].mean(dtype=np.float64))


def shannon_entropy(gray: np.ndarray) -> float:
    """Entropy in bits of an 8-bit image's histogram (skimage.measure.shannon_entropy on uint8, via bincount
    instead of a sort)."""
    counts = np.bincount(np.asarray(gray, dtype=np.uint8).ravel(), minlength=256)
    p = counts[counts > 0] / counts.sum()
    return float(-(p * np.log2(p)).sum()) + 0.0  # + 0.0 turns -0.0 into 0.0


def _colour_metrics(source_lab: np.ndarray, output_lab: np.ndarray, mask: np.ndarray | None,
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


def _structure_metrics(source_gray: np.ndarray, output_gray: np.ndarray, tolerance: int) -> dict[str, float]:
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
        structure = pool.submit(_structure_metrics, luminance(source_rgb), luminance(output_rgb), edge_tolerance)
        output_lab_future = pool.submit(rgb_to_lab, output_rgb)
        source_lab = rgb_to_lab(source_rgb)
        values = _colour_metrics(source_lab, output_lab_future.result(), subject, pool)
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
    from .adherence import AdherenceRequest, control_adherence

    if isinstance(adherence, MetricReport):
        return adherence
    if isinstance(adherence, AdherenceRequest):
        image = output if isinstance(output, Image.Image) else Image.fromarray(rgb_array(output, "output"))
        return control_adherence(image.convert("RGB"), adherence.fed_maps, adherence.provider_lookup,
                                 pose_tolerance=adherence.pose_tolerance)
    from ..errors import SettingsError

    raise SettingsError("adherence", type(adherence).__name__,
                        "None, a MetricReport from control_adherence, or an AdherenceRequest")
