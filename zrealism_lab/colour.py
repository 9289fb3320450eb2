"""Colour anchoring: pull a generated image's colours back towards the fixed source image.

Diffusion drifts colours a little at every pass; anchoring every frame or still against the one
fixed source (never a previous output) stops that drift from compounding. All colour science is
scikit-image's (CIELAB conversion, histogram matching, CIEDE2000).
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
from PIL import Image

from .errors import SettingsError
from .registry import Registry
from .source.preparation import resize_mask

# A colour method maps (output Lab pixels, source Lab pixels) -> corrected output Lab pixels.
# Both arrays are (N, 3) float: only the subject's pixels when a mask is given.
ColourMethod = Callable[[np.ndarray, np.ndarray], np.ndarray]

COLOUR_METHODS: Registry[ColourMethod] = Registry("colour method")

DEFAULT_METHOD = "lab-histogram"
DEFAULT_STRENGTH = 0.6


@COLOUR_METHODS.register("lab-histogram")
def _lab_histogram(output_lab: np.ndarray, source_lab: np.ndarray) -> np.ndarray:
    """Match the a*/b* histograms to the source; keep the output's own L* (its lighting and
    photographic contrast are what the generation added, only the chroma should follow the source)."""
    from skimage.exposure import match_histograms

    corrected = output_lab.copy()
    for channel in (1, 2):
        # On unsigned integers match_histograms counts with bincount instead of sorting floats
        # (20x faster); 1/16 of a unit is far below a visible colour difference.
        out_q = _quantise_chroma(output_lab[:, channel])
        src_q = _quantise_chroma(source_lab[:, channel])
        matched = match_histograms(out_q, src_q)
        corrected[:, channel] = matched / _CHROMA_STEPS - _CHROMA_OFFSET
    return corrected


_CHROMA_STEPS = 16.0
_CHROMA_OFFSET = 160.0  # a*/b* of sRGB colours stay within about [-128, 128]


def _quantise_chroma(values: np.ndarray) -> np.ndarray:
    scaled = np.round((values + _CHROMA_OFFSET) * _CHROMA_STEPS)
    return np.clip(scaled, 0, 2 * _CHROMA_OFFSET * _CHROMA_STEPS).astype(np.uint16)


@COLOUR_METHODS.register("reinhard")
def _reinhard(output_lab: np.ndarray, source_lab: np.ndarray) -> np.ndarray:
    """Reinhard et al. (2001) colour transfer: match each channel's mean and standard deviation.
    Three lines of arithmetic on statistics; no library offers it on masked pixels."""
    out_mean, out_std = output_lab.mean(axis=0), output_lab.std(axis=0)
    src_mean, src_std = source_lab.mean(axis=0), source_lab.std(axis=0)
    scale = src_std / np.maximum(out_std, 1e-6)
    return (output_lab - out_mean) * scale + src_mean


@COLOUR_METHODS.register("none")
def _none(output_lab: np.ndarray, source_lab: np.ndarray) -> np.ndarray:
    return output_lab


@dataclass
class AnchorResult:
    """An anchored image and how far its subject's colours are from the source before/after
    (mean CIEDE2000 over the subject; about 1 is a just-noticeable difference)."""

    image: Image.Image
    method: str
    strength: float
    delta_e_before: float
    delta_e_after: float

    def to_dict(self) -> dict:
        return {
            "method": self.method,
            "strength": self.strength,
            "delta_e_before": self.delta_e_before,
            "delta_e_after": self.delta_e_after,
        }


def available_methods() -> list[str]:
    return COLOUR_METHODS.names()


def _validate(method: str, strength: float) -> None:
    COLOUR_METHODS.get(method)  # raises SettingsError listing the names
    if isinstance(strength, bool) or not isinstance(strength, (int, float)) or not 0.0 <= float(strength) <= 1.0:
        raise SettingsError("colour strength", strength, "a number from 0 to 1",
                            "0 keeps the output unchanged, 1 applies the full correction.")


def _check_mask(mask: np.ndarray | None, size: tuple[int, int], name: str) -> np.ndarray | None:
    if mask is None:
        return None
    mask = np.asarray(mask)
    width, height = size
    if mask.ndim != 2 or mask.shape != (height, width):
        raise SettingsError(name, f"array of shape {mask.shape}", f"a 2-D mask of shape {(height, width)}",
                            "Pass the subject mask that belongs to this image.")
    return mask.astype(bool)


def _to_lab(image: Image.Image) -> np.ndarray:
    from skimage.color import rgb2lab

    # float32 halves the work of the conversion; the precision is far below a visible difference.
    return rgb2lab(np.asarray(image, dtype=np.float32) / 255.0).astype(np.float32)


def _mean_delta_e(lab_a: np.ndarray, lab_b: np.ndarray) -> float:
    from skimage.color import deltaE_ciede2000

    return float(np.mean(deltaE_ciede2000(lab_a, lab_b)))


class _PreparedSource:
    """The source converted once to CIELAB at the output size, so clip frames share the work."""

    def __init__(self, source: Image.Image, size: tuple[int, int], mask: np.ndarray | None) -> None:
        source = source.convert("RGB")
        mask = _check_mask(mask, source.size, "source mask")
        if source.size != size:
            source = source.resize(size, Image.BICUBIC)
        self.size = size
        self.lab = _to_lab(source)
        self.mask = resize_mask(mask, size) if mask is not None else None


# Mean colour difference is estimated on a regular grid of at most this many pixels: CIEDE2000 is
# the costliest step, and the mean over a quarter of a 512 px image differs by a few thousandths.
_MAX_MEASURED_PIXELS = 65536


def _measure_grid(mask: np.ndarray | None, shape: tuple[int, int]) -> np.ndarray:
    height, width = shape
    stride = max(1, int(np.ceil(np.sqrt(height * width / _MAX_MEASURED_PIXELS))))
    grid = np.zeros(shape, dtype=bool)
    grid[::stride, ::stride] = True
    if mask is not None:
        grid &= mask
        if not grid.any():  # a subject thinner than the grid: measure all its pixels
            grid = mask
    return grid


def _anchor_one(output: Image.Image, prepared: _PreparedSource, method: str, strength: float,
                mask_output: np.ndarray | None) -> AnchorResult:
    from skimage.color import lab2rgb, rgb2lab

    output = output.convert("RGB")
    out_mask = _check_mask(mask_output, output.size, "output mask")
    if out_mask is None:
        out_mask = prepared.mask
    source_mask = prepared.mask if prepared.mask is not None else out_mask

    if (out_mask is not None and not out_mask.any()) or (source_mask is not None and not source_mask.any()):
        warnings.warn("colour anchoring: the subject mask is empty, using the whole image instead", UserWarning,
                      stacklevel=3)
        out_mask = source_mask = None
    # Colour difference is measured pixel against pixel, so only where both images show the subject.
    compare = None
    if out_mask is not None and source_mask is not None:
        both = out_mask & source_mask
        compare = both if both.any() else out_mask
    measured = _measure_grid(compare, out_mask.shape if out_mask is not None else prepared.lab.shape[:2])

    out_rgb = np.asarray(output)
    out_lab = _to_lab(output)
    source_measured = prepared.lab[measured]
    delta_before = _mean_delta_e(out_lab[measured], source_measured)
    if strength == 0 or method == "none":
        # Exact identity: no colour-space round trip that could move a pixel by one level.
        return AnchorResult(output.copy(), method, float(strength), delta_before, delta_before)

    # float32 throughout: skimage's colour conversions run several times slower on float64 (N, 3) arrays.
    if out_mask is not None:
        src_pixels = prepared.lab[source_mask]
        out_pixels = out_lab[out_mask]
    else:
        src_pixels = prepared.lab.reshape(-1, 3)
        out_pixels = out_lab.reshape(-1, 3)
    corrected = COLOUR_METHODS.get(method)(out_pixels, src_pixels).astype(np.float32)
    blended = out_pixels + np.float32(strength) * (corrected - out_pixels)

    with warnings.catch_warnings():
        # Corrected colours can fall just outside sRGB; clipping them is the intended behaviour.
        warnings.simplefilter("ignore", UserWarning)
        new_rgb = np.clip(lab2rgb(blended) * 255.0 + 0.5, 0, 255).astype(np.uint8)
    # Only the subject is converted back; outside it the output stays exactly as generated.
    if out_mask is not None:
        rgb = out_rgb.copy()
        rgb[out_mask] = new_rgb
    else:
        rgb = new_rgb.reshape(out_rgb.shape)
    after_lab = rgb2lab(rgb[measured].astype(np.float32) / 255.0)
    delta_after = _mean_delta_e(after_lab, source_measured)
    return AnchorResult(Image.fromarray(rgb, "RGB"), method, float(strength), delta_before, delta_after)


def anchor_colours(output: Image.Image, source: Image.Image, method: str = DEFAULT_METHOD,
                   strength: float = DEFAULT_STRENGTH, mask: np.ndarray | None = None,
                   mask_output: np.ndarray | None = None) -> AnchorResult:
    """Pull ``output``'s colours towards the fixed ``source``.

    ``mask`` is the source's subject mask (statistics of the source come from it); ``mask_output``
    is the output's, defaulting to ``mask`` resized. With a mask only the subject is corrected.
    ``strength`` blends the correction: 0 returns the output unchanged, 1 the full correction.
    """
    _validate(method, strength)
    prepared = _PreparedSource(source, output.size, mask)
    return _anchor_one(output, prepared, method, strength, mask_output)


def anchor_frames(frames: Sequence[Image.Image], source: Image.Image, method: str = DEFAULT_METHOD,
                  strength: float = DEFAULT_STRENGTH, mask: np.ndarray | None = None,
                  mask_output: np.ndarray | Sequence[np.ndarray] | None = None) -> list[AnchorResult]:
    """Anchor every frame of a clip against the same source (never against the previous frame,
    which would let drift accumulate). ``mask_output`` is one mask for all frames or one per frame."""
    _validate(method, strength)
    frames = list(frames)
    if isinstance(mask_output, np.ndarray) or mask_output is None:
        frame_masks = [mask_output] * len(frames)
    else:
        frame_masks = list(mask_output)
        if len(frame_masks) != len(frames):
            raise SettingsError("output masks", f"{len(frame_masks)} masks", f"one mask per frame ({len(frames)})")
    prepared: dict[tuple[int, int], _PreparedSource] = {}
    results = []
    for frame, frame_mask in zip(frames, frame_masks):
        if frame.size not in prepared:
            prepared[frame.size] = _PreparedSource(source, frame.size, mask)
        results.append(_anchor_one(frame, prepared[frame.size], method, strength, frame_mask))
    return results
