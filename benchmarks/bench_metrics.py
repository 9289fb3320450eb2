"""Timings of the evaluation engine: medians over repeats, against the targets.

    python benchmarks/bench_metrics.py [--repeats 7] [--clip-repeats 3] [--no-reference-libs]

Targets (2-core CPU): the static suite (no model-based adherence) on a 1024x1024 pair in at most 0.3 s;
the temporal suite on 16 frames of 512x512 in at most 3 s. Wall-clock times depend on what else the machine
is doing, so the load average is printed with the table, and "cpu" (process CPU time summed over threads)
shows the work itself.
"""
from __future__ import annotations

import argparse
import os
import statistics
import time
from typing import Callable

import numpy as np


def synthetic_pair(size: int = 1024, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A flat-shaded source (discs on a tinted background) and a blurred, noisy, slightly recoloured output."""
    import cv2

    rng = np.random.default_rng(seed)
    source = np.empty((size, size, 3), np.uint8)
    source[:] = rng.integers(30, 220, 3)
    for _ in range(60):
        centre = tuple(int(v) for v in rng.integers(0, size, 2))
        colour = tuple(int(v) for v in rng.integers(0, 256, 3))
        cv2.circle(source, centre, int(rng.integers(size // 50, size // 6)), colour, -1)
    output = cv2.GaussianBlur(source, (0, 0), 1.5).astype(np.int16)
    output += rng.integers(-12, 13, output.shape, dtype=np.int16)
    output[..., 0] += 6
    output = np.clip(output, 0, 255).astype(np.uint8)
    mask = np.zeros((size, size), bool)
    mask[size // 8: -size // 8, size // 6: -size // 6] = True
    return source, output, mask


def synthetic_clip(frames: int = 16, size: int = 512, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """A panning, zooming reference clip and a noisier, slightly flickering output of it."""
    import cv2

    rng = np.random.default_rng(seed)
    scene, _, _ = synthetic_pair(size + 128, seed)
    reference = []
    for t in range(frames):
        matrix = cv2.getRotationMatrix2D(((size + 128) / 2, (size + 128) / 2), 0.5 * t, 1.0 + 0.004 * t)
        matrix[:, 2] += (2.0 * t, 1.0 * t)
        reference.append(cv2.warpAffine(scene, matrix, (size + 128, size + 128))[64:64 + size, 64:64 + size])
    reference_clip = np.stack(reference)
    gains = 1.0 + 0.03 * rng.standard_normal(frames)[:, None, None, None]
    output = reference_clip.astype(np.float32) * gains + rng.normal(0, 4, reference_clip.shape)
    return np.clip(output, 0, 255).astype(np.uint8), reference_clip


def measure(function: Callable[[], object], repeats: int) -> tuple[float, float, float]:
    """(median wall time, best wall time, median CPU time of this process over all its threads)."""
    function()  # warm-up: imports, lookup tables, thread pools
    wall, cpu = [], []
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        function()
        wall.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    return statistics.median(wall), min(wall), statistics.median(cpu)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--clip-repeats", type=int, default=3)
    parser.add_argument("--no-reference-libs", action="store_true", help="skip the scikit-image comparison rows")
    args = parser.parse_args()

    import cv2
    from skimage import color, metrics

    from zrealism_lab.metrics import evaluate_clip, evaluate_pair
    from zrealism_lab.metrics.colour import colour_moments, delta_e2000, rgb_to_lab
    from zrealism_lab.metrics.image import canny_edges, edge_f1, laplacian_variance, shannon_entropy, ssim

    source, output, mask = synthetic_pair()
    grey_s = cv2.cvtColor(source, cv2.COLOR_RGB2GRAY)
    grey_o = cv2.cvtColor(output, cv2.COLOR_RGB2GRAY)
    lab_s, lab_o = rgb_to_lab(source), rgb_to_lab(output)
    clip, reference = synthetic_clip()

    rows: list[tuple[str, Callable[[], object], int, float | None]] = [
        ("evaluate_pair 1024x1024 (static suite)", lambda: evaluate_pair(source, output), args.repeats, 0.3),
        ("evaluate_pair 1024x1024 + subject mask", lambda: evaluate_pair(source, output, mask=mask), args.repeats, 0.3),
        ("  rgb_to_lab (one image)", lambda: rgb_to_lab(source), args.repeats, None),
        ("  delta_e2000 (per pixel)", lambda: delta_e2000(lab_s, lab_o), args.repeats, None),
        ("  colour_moments (one image)", lambda: colour_moments(source), args.repeats, None),
        ("  ssim (luma)", lambda: ssim(grey_s, grey_o), args.repeats, None),
        ("  canny x2 + edge_f1", lambda: edge_f1(canny_edges(grey_s), canny_edges(grey_o)), args.repeats, None),
        ("  laplacian_variance x2", lambda: (laplacian_variance(grey_s), laplacian_variance(grey_o)), args.repeats, None),
        ("  shannon_entropy x2", lambda: (shannon_entropy(grey_s), shannon_entropy(grey_o)), args.repeats, None),
    ]
    if not args.no_reference_libs:
        rows += [
            ("  [ref] skimage rgb2lab (one image)", lambda: color.rgb2lab(source), args.repeats, None),
            ("  [ref] skimage deltaE_ciede2000", lambda: color.deltaE_ciede2000(lab_s, lab_o), args.repeats, None),
            ("  [ref] skimage structural_similarity",
             lambda: metrics.structural_similarity(grey_s, grey_o, data_range=255), args.repeats, None),
        ]
    rows += [
        ("evaluate_clip 16x512x512", lambda: evaluate_clip(clip), args.clip_repeats, 3.0),
        ("evaluate_clip 16x512x512 + reference clip", lambda: evaluate_clip(clip, reference=reference),
         args.clip_repeats, 3.0),
    ]

    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"cpu cores: {os.cpu_count()}, opencv threads: {cv2.getNumThreads()}, load average (1 min): {load:.2f}")
    header = f"{'measurement':45s} {'median':>10s} {'min':>10s} {'cpu':>10s} {'target':>8s}  status"
    print(header)
    print("-" * len(header))
    for name, function, repeats, target in rows:
        median, best, cpu = measure(function, repeats)
        status = "" if target is None else ("ok" if median <= target else "OVER")
        target_text = "" if target is None else f"{target:.2f} s"
        print(f"{name:45s} {median * 1000:8.1f}ms {best * 1000:8.1f}ms {cpu * 1000:8.1f}ms {target_text:>8s}  {status}")


if __name__ == "__main__":
    main()
