"""The image primitives the metrics are made of: Laplacian variance, Canny edges and their F1, SSIM, entropy."""
from __future__ import annotations

import numpy as np

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
