"""Every metric the lab reports, described once: name, direction, range, unit, meaning and guide bands.

Reports, sweeps, plots and widgets list metrics from ``METRICS`` so that a name means the same thing
everywhere. The compute code in ``image``, ``temporal`` and ``adherence`` only produces numbers keyed by
these names; ``make_metric`` attaches the description.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from ..registry import Registry
from .report import Metric

HIGHER = "higher"
LOWER = "lower"
NEUTRAL = "none"  # a descriptive value (e.g. the source's own statistics): neither end is better

INF = math.inf


@dataclass(frozen=True)
class Band:
    """A guide region of a metric's scale: rules of thumb for reading a value, not calibrated thresholds.
    The outermost bands of a metric also set the span a panel shows; they extend beyond it."""

    low: float
    high: float
    label: str  # "good", "fair" or "poor"


@dataclass(frozen=True)
class MetricSpec:
    name: str
    direction: str  # HIGHER, LOWER or NEUTRAL
    range: tuple[float, float]
    unit: str
    meaning: str
    group: str
    suite: str  # "pair", "clip" or "adherence"
    headline: bool = False  # shown by default in panels and widgets
    bands: tuple[Band, ...] = ()


METRICS: Registry[MetricSpec] = Registry("metric")


def _add(spec: MetricSpec) -> None:
    METRICS.register(spec.name, spec)


def _bands(*triples: tuple[float, float, str]) -> tuple[Band, ...]:
    return tuple(Band(lo, hi, label) for lo, hi, label in triples)


# Guide bands shared by the edge-F1 and SSIM-like metrics (pair and adherence alike).
F1_BANDS = _bands((0.0, 0.3, "poor"), (0.3, 0.6, "fair"), (0.6, 1.0, "good"))
SSIM_BANDS = _bands((-1.0, 0.4, "poor"), (0.4, 0.7, "fair"), (0.7, 1.0, "good"))


def make_metric(name: str, value: float) -> Metric:
    """A Metric carrying ``value`` and the registered description of ``name``."""
    spec = METRICS.get(name)
    return Metric(
        name=name,
        value=float(value),
        direction=spec.direction,
        range=spec.range,
        unit=spec.unit,
        meaning=spec.meaning,
        group=spec.group,
    )


def metric_names(suite: str | None = None, headline_only: bool = False) -> list[str]:
    """Registered metric names, optionally only one suite ("pair", "clip", "adherence") or the headline ones."""
    return [
        name
        for name, spec in METRICS.items()
        if (suite is None or spec.suite == suite) and (spec.headline or not headline_only)
    ]


# ---------------------------------------------------------------- image pair: structure and edges
_add(MetricSpec(
    "laplacian_var_source", NEUTRAL, (0.0, INF), "levels²",
    "Variance of the Laplacian of the source's luminance: how much fine edge energy it has.",
    "edges", "pair"))
_add(MetricSpec(
    "laplacian_var_output", NEUTRAL, (0.0, INF), "levels²",
    "Variance of the Laplacian of the output's luminance: how much fine edge energy it has.",
    "edges", "pair"))
_add(MetricSpec(
    "laplacian_ratio", HIGHER, (0.0, 1.0), "ratio",
    "min/max of the two Laplacian variances: 1 = same edge energy, near 0 = one image far blurrier or busier.",
    "edges", "pair", headline=True, bands=F1_BANDS))
_add(MetricSpec(
    "edge_f1", HIGHER, (0.0, 1.0), "F1",
    "Canny edges of output vs source matched within a few pixels: 1 = every edge kept, none invented.",
    "edges", "pair", headline=True, bands=F1_BANDS))
_add(MetricSpec(
    "ssim_luma", HIGHER, (-1.0, 1.0), "SSIM",
    "Structural similarity of the luminance channels (7x7 windows): 1 = same local structure.",
    "structure", "pair", headline=True,
    bands=SSIM_BANDS))

# ---------------------------------------------------------------- image pair: colour
_add(MetricSpec(
    "delta_e2000_mean", LOWER, (0.0, INF), "ΔE00",
    "Mean per-pixel CIEDE2000 colour difference over the subject: about 1 is just noticeable, above 10 a clear change.",
    "colour", "pair", headline=True, bands=_bands((0.0, 5.0, "good"), (5.0, 15.0, "fair"), (15.0, 30.0, "poor"))))
_add(MetricSpec(
    "lab_mean_distance", LOWER, (0.0, INF), "ΔE76",
    "Distance between the mean L*a*b* colours of the subject in source and output: overall colour cast.",
    "colour", "pair", headline=True, bands=_bands((0.0, 3.0, "good"), (3.0, 10.0, "fair"), (10.0, 25.0, "poor"))))
_add(MetricSpec(
    "lab_std_distance", LOWER, (0.0, INF), "L*a*b* units",
    "Distance between the per-channel standard deviations: change of contrast and colour spread.",
    "colour", "pair", bands=_bands((0.0, 3.0, "good"), (3.0, 10.0, "fair"), (10.0, 25.0, "poor"))))
_add(MetricSpec(
    "lab_skew_distance", LOWER, (0.0, INF), "skewness",
    "Distance between the per-channel skewness: change in the shape of the tone and colour distributions.",
    "colour", "pair", bands=_bands((0.0, 0.5, "good"), (0.5, 1.5, "fair"), (1.5, 5.0, "poor"))))

_CHANNEL_TEXT = {"L": "lightness L*", "a": "green-red a*", "b": "blue-yellow b*"}
_MOMENT_TEXT = {"mean": "mean", "std": "standard deviation", "skew": "skewness"}
_MOMENT_RANGE = {"L": (0.0, 100.0), "a": (-128.0, 127.0), "b": (-128.0, 127.0)}
for _side in ("source", "output"):
    for _channel, _channel_text in _CHANNEL_TEXT.items():
        for _moment, _moment_text in _MOMENT_TEXT.items():
            _range = _MOMENT_RANGE[_channel] if _moment == "mean" else ((0.0, INF) if _moment == "std" else (-INF, INF))
            _add(MetricSpec(
                f"{_channel}_{_moment}_{_side}", NEUTRAL, _range,
                "skewness" if _moment == "skew" else "L*a*b* units",
                f"{_moment_text.capitalize()} of {_channel_text} over the subject of the {_side}.",
                "colour moments", "pair"))

# ---------------------------------------------------------------- image pair: texture
_add(MetricSpec(
    "entropy_source", NEUTRAL, (0.0, 8.0), "bits",
    "Shannon entropy of the source's 8-bit luminance histogram: how many grey levels it really uses.",
    "texture", "pair"))
_add(MetricSpec(
    "entropy_output", NEUTRAL, (0.0, 8.0), "bits",
    "Shannon entropy of the output's 8-bit luminance histogram.",
    "texture", "pair"))
_add(MetricSpec(
    "entropy_ratio", NEUTRAL, (0.0, INF), "ratio",
    "Output entropy / source entropy: above 1 the output has richer tones (expected from flat art), below 1 it lost detail.",
    "texture", "pair", headline=True, bands=_bands((0.0, 0.8, "poor"), (0.8, 1.6, "good"), (1.6, 3.0, "fair"))))

# ---------------------------------------------------------------- control adherence
_add(MetricSpec(
    "depth_rmse", LOWER, (0.0, 1.0), "fraction of depth range",
    "RMSE between the fed depth map and the depth re-detected on the output, after best scale-and-shift alignment.",
    "adherence", "adherence", headline=True, bands=_bands((0.0, 0.08, "good"), (0.08, 0.2, "fair"), (0.2, 1.0, "poor"))))
_add(MetricSpec(
    "depth_spearman", HIGHER, (-1.0, 1.0), "rank correlation",
    "Spearman rank correlation of fed and re-detected depth: 1 = same near-to-far ordering.",
    "adherence", "adherence", headline=True, bands=_bands((-1.0, 0.5, "poor"), (0.5, 0.8, "fair"), (0.8, 1.0, "good"))))
_add(MetricSpec(
    "pose_pck", HIGHER, (0.0, 1.0), "share of keypoints",
    "Share of fed pose keypoints re-found on the output within the tolerance; keypoints the detector missed count as misses.",
    "adherence", "adherence", headline=True, bands=_bands((0.0, 0.5, "poor"), (0.5, 0.8, "fair"), (0.8, 1.0, "good"))))
_add(MetricSpec(
    "pose_keypoints_fed", NEUTRAL, (0.0, INF), "keypoints",
    "Number of pose keypoints present in the map that was fed to the generator.",
    "adherence", "adherence"))
_add(MetricSpec(
    "pose_keypoints_missing", LOWER, (0.0, INF), "keypoints",
    "Fed keypoints for which the detector returned nothing on the output (detector failures, counted as misses).",
    "adherence", "adherence"))
_add(MetricSpec(
    "canny_f1", HIGHER, (0.0, 1.0), "F1",
    "Fed canny map vs canny re-run on the output, edges matched within a few pixels.",
    "adherence", "adherence", headline=True, bands=F1_BANDS))
_add(MetricSpec(
    "lineart_ssim", HIGHER, (-1.0, 1.0), "SSIM",
    "SSIM between the fed line-art map and line art re-detected on the output.",
    "adherence", "adherence", headline=True, bands=SSIM_BANDS))

# ---------------------------------------------------------------- clips
_TEMPORAL = (
    ("flicker", (0.0, 255.0), "levels",
     "Mean absolute difference between consecutive frames (0-255): includes real motion, so read it beside the reference.",
     _bands((0.0, 4.0, "good"), (4.0, 12.0, "fair"), (12.0, 30.0, "poor"))),
    ("warp_error", (0.0, 255.0), "levels",
     "Mean absolute difference after warping each frame onto the previous one with optical flow, occlusions masked out.",
     _bands((0.0, 3.0, "good"), (3.0, 8.0, "fair"), (8.0, 20.0, "poor"))),
    ("colour_jitter", (0.0, INF), "ΔE00",
     "Mean CIEDE2000 difference between the subject's mean colour in consecutive frames.",
     _bands((0.0, 1.0, "good"), (1.0, 3.0, "fair"), (3.0, 10.0, "poor"))),
    ("colour_drift", (0.0, INF), "ΔE00",
     "Largest CIEDE2000 difference between the subject's mean colour in any frame and in the first frame.",
     _bands((0.0, 2.0, "good"), (2.0, 6.0, "fair"), (6.0, 15.0, "poor"))),
)
TEMPORAL_BASE_NAMES = tuple(entry[0] for entry in _TEMPORAL)

for _name, _range, _unit, _meaning, _band in _TEMPORAL:
    _add(MetricSpec(_name, LOWER, _range, _unit, _meaning, "temporal", "clip", headline=True, bands=_band))
    _add(MetricSpec(
        f"{_name}_reference", NEUTRAL, _range, _unit,
        f"The same as {_name}, measured on the reference (input) clip.", "temporal reference", "clip"))
    _add(MetricSpec(
        f"{_name}_ratio", LOWER, (0.0, INF), "ratio",
        f"{_name} of the output / of the reference: 1 = as stable as the input, above 1 = less stable.",
        "temporal reference", "clip", headline=True,
        bands=_bands((0.0, 1.2, "good"), (1.2, 2.0, "fair"), (2.0, 5.0, "poor"))))
_add(MetricSpec(
    "warp_valid_fraction", NEUTRAL, (0.0, 1.0), "share of pixels",
    "Share of pixels the warp error could score (the rest were occluded or left the frame).",
    "temporal", "clip"))
