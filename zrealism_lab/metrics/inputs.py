"""Turning what callers hand in (PIL images, arrays, frame lists, masks) into the uint8 arrays the metrics use,
and bringing two images of different sizes to one stated common size."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence, Union

import numpy as np
from PIL import Image

from ..errors import SettingsError

ImageLike = Union[Image.Image, np.ndarray]
ClipLike = Union[Sequence[ImageLike], np.ndarray]

# Aspect ratios closer than this are treated as equal: preparation rounds sizes to multiples of 8,
# which changes the aspect by a percent or so and is not worth cropping for.
ASPECT_TOLERANCE = 0.02


def rgb_array(image: ImageLike, what: str = "image") -> np.ndarray:
    """A contiguous (H, W, 3) uint8 RGB array. Grey arrays are repeated; float arrays must lie in [0, 1]."""
    if isinstance(image, Image.Image):
        if image.mode != "RGB":
            image = image.convert("RGB")
        return np.ascontiguousarray(np.asarray(image, dtype=np.uint8))
    if not isinstance(image, np.ndarray):
        raise SettingsError(what, type(image).__name__, "a PIL image or a numpy array (H, W, 3)")
    array = image
    if array.ndim == 2:
        array = np.repeat(array[:, :, None], 3, axis=2)
    if array.ndim != 3 or array.shape[2] not in (3, 4):
        raise SettingsError(what, f"array of shape {image.shape}", "shape (H, W), (H, W, 3) or (H, W, 4)")
    array = array[:, :, :3]
    if array.dtype != np.uint8:
        if np.issubdtype(array.dtype, np.floating):
            if array.size and (np.nanmin(array) < 0.0 or np.nanmax(array) > 1.0):
                raise SettingsError(what, f"float array in [{array.min():.3g}, {array.max():.3g}]",
                                    "uint8 values or floats in [0, 1]")
            array = np.round(np.nan_to_num(array) * 255.0).astype(np.uint8)
        else:
            raise SettingsError(what, f"array of dtype {array.dtype}", "uint8 values or floats in [0, 1]")
    if array.shape[0] < 1 or array.shape[1] < 1:
        raise SettingsError(what, f"array of shape {image.shape}", "an image at least 1x1 pixel")
    return np.ascontiguousarray(array)


def clip_array(frames: ClipLike, what: str = "clip") -> np.ndarray:
    """A (T, H, W, 3) uint8 array from a list of images or an array; every frame must have one size."""
    if isinstance(frames, np.ndarray) and frames.ndim == 4:
        stack = [rgb_array(frame, what) for frame in frames]
    elif isinstance(frames, (list, tuple)):
        stack = [rgb_array(frame, what) for frame in frames]
    else:
        raise SettingsError(what, type(frames).__name__, "a list of PIL images or a (T, H, W, 3) uint8 array")
    if len(stack) < 2:
        raise SettingsError(what, f"{len(stack)} frame(s)", "at least 2 frames",
                            "Temporal metrics compare consecutive frames.")
    sizes = {frame.shape for frame in stack}
    if len(sizes) > 1:
        raise SettingsError(what, f"frames of shapes {sorted(sizes)}", "frames that all have one size")
    return np.stack(stack)


def bool_mask(mask: np.ndarray | Image.Image, shape: tuple[int, int], what: str = "mask") -> np.ndarray:
    """A (H, W) bool mask checked against ``shape``; images count nonzero pixels as subject."""
    if isinstance(mask, Image.Image):
        mask = np.asarray(mask.convert("L")) > 0
    mask = np.asarray(mask)
    if mask.dtype != bool:
        mask = mask != 0
    if mask.ndim == 3:
        mask = mask.any(axis=2)
    if mask.shape != tuple(shape):
        raise SettingsError(what, f"mask of shape {mask.shape}", f"a bool array of shape {tuple(shape)}",
                            "The subject mask must have the size of the image it belongs to.")
    return mask


def luminance(rgb: np.ndarray) -> np.ndarray:
    """8-bit luma (ITU-R BT.601 weights, as OpenCV and PIL's 'L' mode use)."""
    import cv2

    return cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)


@dataclass(frozen=True)
class Alignment:
    size: tuple[int, int]  # (width, height) of the common size
    note: str | None  # what was done to reach it; None when the images already matched


def plan_common_size(source_size: tuple[int, int], output_size: tuple[int, int]) -> tuple[tuple[int, int] | None, tuple[int, int]]:
    """(crop box width/height for the output or None, common (width, height)).

    The common size keeps the source's aspect ratio and is never larger than either image, so nothing is
    upsampled to invent detail. An output with a clearly different aspect ratio is centre-cropped to the
    source's aspect first, because stretching it would itself change edges and structure.
    """
    sw, sh = source_size
    ow, oh = output_size
    crop = None
    source_aspect, output_aspect = sw / sh, ow / oh
    if abs(output_aspect / source_aspect - 1.0) > ASPECT_TOLERANCE:
        if output_aspect > source_aspect:
            crop = (max(1, round(oh * source_aspect)), oh)
        else:
            crop = (ow, max(1, round(ow / source_aspect)))
        ow, oh = crop
    scale = min(1.0, ow / sw, oh / sh)
    return crop, (max(1, round(sw * scale)), max(1, round(sh * scale)))


def _resize(array: np.ndarray, size: tuple[int, int], nearest: bool = False) -> np.ndarray:
    import cv2

    if (array.shape[1], array.shape[0]) == tuple(size):
        return array
    if nearest:
        interpolation = cv2.INTER_NEAREST
    elif size[0] <= array.shape[1] and size[1] <= array.shape[0]:
        interpolation = cv2.INTER_AREA  # averaging: no aliasing when shrinking
    else:
        interpolation = cv2.INTER_LINEAR
    return cv2.resize(array, tuple(size), interpolation=interpolation)


def _centre_crop(array: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    width, height = size
    top = (array.shape[0] - height) // 2
    left = (array.shape[1] - width) // 2
    return array[top:top + height, left:left + width]


def align_pair(source: np.ndarray, output: np.ndarray, mask: np.ndarray | None
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, Alignment]:
    """Bring source, output (and the source's mask) to one common size; say what was done."""
    source_size = (source.shape[1], source.shape[0])
    output_size = (output.shape[1], output.shape[0])
    if source_size == output_size:
        return source, output, mask, Alignment(source_size, None)
    crop, size = plan_common_size(source_size, output_size)
    if crop is not None:
        output = _centre_crop(output, crop)
    source = _resize(source, size)
    output = _resize(output, size)
    if mask is not None:
        mask = _resize(mask.astype(np.uint8), size, nearest=True).astype(bool)
    steps = "output centre-cropped to the source's aspect ratio, then resized" if crop else "resized"
    note = (f"source {source_size[0]}x{source_size[1]} and output {output_size[0]}x{output_size[1]} "
            f"compared at {size[0]}x{size[1]} ({steps})")
    return source, output, mask, Alignment(size, note)
