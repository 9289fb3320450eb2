"""Evaluation: how much of the source's structure, colour and texture an output kept, how well it followed the
control maps, and how stable a clip is. Works on any two images or any clip, independent of generation.

    from zrealism_lab.metrics import evaluate_pair, evaluate_clip
    report = evaluate_pair(source, output, mask=subject_mask)
    print(report.as_table()); report.to_dict()

Every metric is described once in ``METRICS`` (name, direction, range, unit, meaning, guide bands).
"""
from __future__ import annotations

from .adherence import (
    AdherenceRequest,
    control_adherence,
    depth_adherence,
    keypoints_from_pose_map,
    pose_adherence,
)
from .colour import colour_moments, delta_e2000, rgb_to_lab
from .image import edge_f1, laplacian_variance, shannon_entropy, ssim
from .pair import evaluate_pair
from .registry import METRICS, Band, MetricSpec, metric_names
from .report import Metric, MetricReport
from .temporal import evaluate_clip

__all__ = [
    "METRICS",
    "AdherenceRequest",
    "Band",
    "Metric",
    "MetricReport",
    "MetricSpec",
    "colour_moments",
    "control_adherence",
    "delta_e2000",
    "depth_adherence",
    "edge_f1",
    "evaluate_clip",
    "evaluate_pair",
    "keypoints_from_pose_map",
    "laplacian_variance",
    "metric_names",
    "pose_adherence",
    "rgb_to_lab",
    "shannon_entropy",
    "ssim",
]
