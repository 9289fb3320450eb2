"""Preparation: turn an analysed source into the RGB image the generator starts from.

Transparent sources are composited onto a backdrop chosen to contrast with the subject's edges
(so the edge does not bleed into a backdrop of the same tone), dark backdrops stay dark, the image is
resized to the generation size, and prompt hints that match the backdrop are proposed.
"""
from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from PIL import Image

from .background import BackgroundAnalysis
from ..errors import SettingsError

NAMED_BACKDROPS: dict[str, tuple[int, int, int]] = {
    "white": (255, 255, 255),
    "black": (0, 0, 0),
    "grey": (128, 128, 128),
}
BACKDROP_ALLOWED = "auto, white, black, grey or a colour like #1a2b3c"
MIN_SIDE = 64

STUDIO_HINTS: tuple[str, ...] = ("clean studio backdrop", "soft even lighting")
DARK_HINTS: tuple[str, ...] = ("dark background", "low-key lighting", "rim light")
FLAT_HINTS: tuple[str, ...] = ("plain studio backdrop", "soft even lighting")
SCENIC_HINTS: tuple[str, ...] = ("detailed natural environment",)

# Edge luma (0..1) below which the subject's rim counts as dark, above which as light. Cel art has
# black outlines, so most sources fall on the dark side and get a white backdrop.
_DARK_EDGE_LUMA = 0.4
_LIGHT_EDGE_LUMA = 0.6
_DARK_BACKDROP_LUMA = 0.25


@dataclass
class PrepareSettings:
    transparent_backdrop: str = "auto"
    keep_dark_backdrop: bool = True
    lighting_hints: bool = True
    long_side: int = 512
    mask_controls: bool = False

    def __post_init__(self) -> None:
        parse_backdrop(self.transparent_backdrop)
        for name in ("keep_dark_backdrop", "lighting_hints", "mask_controls"):
            if not isinstance(getattr(self, name), (bool, np.bool_)):
                raise SettingsError(name, getattr(self, name), "True or False")
        if isinstance(self.long_side, bool) or not isinstance(self.long_side, (int, np.integer)):
            raise SettingsError("long_side", self.long_side, f"a whole number of pixels >= {MIN_SIDE}")
        if self.long_side < MIN_SIDE:
            raise SettingsError("long_side", self.long_side, f"a whole number of pixels >= {MIN_SIDE}")


@dataclass
class Prepared:
    """The generation input: ``image`` (RGB, ``size``), ``mask`` (bool (h, w), True = subject)."""

    image: Image.Image
    mask: np.ndarray
    size: tuple[int, int]
    prompt_hints: list[str] = field(default_factory=list)
    adaptations: dict[str, Any] = field(default_factory=dict)


def parse_backdrop(value: str) -> tuple[int, int, int] | None:
    """RGB of a backdrop setting; None for "auto". Raises SettingsError for anything else."""
    if not isinstance(value, str):
        raise SettingsError("transparent_backdrop", value, BACKDROP_ALLOWED)
    if value == "auto":
        return None
    if value in NAMED_BACKDROPS:
        return NAMED_BACKDROPS[value]
    if re.fullmatch(r"#[0-9a-fA-F]{6}", value):
        return tuple(int(value[i:i + 2], 16) for i in (1, 3, 5))  # type: ignore[return-value]
    raise SettingsError("transparent_backdrop", value, BACKDROP_ALLOWED)


def fit_size(width: int, height: int, long_side: int, multiple: int = 8) -> tuple[int, int]:
    """Generation size for a width x height source: the long side becomes ``long_side`` (floored to
    ``multiple``), the aspect ratio is kept as closely as flooring to ``multiple`` allows, and no
    side falls below 64 px (SettingsError for an aspect ratio too extreme for that)."""
    for name, value in (("width", width), ("height", height), ("long_side", long_side), ("multiple", multiple)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
            raise SettingsError(name, value, "a positive whole number of pixels")
    if long_side < MIN_SIDE:
        raise SettingsError("long_side", long_side, f"a whole number of pixels >= {MIN_SIDE}")
    longest, shortest = max(width, height), min(width, height)
    long_out = long_side // multiple * multiple
    # Integer arithmetic: float scaling can land a hair under a multiple (511.999...) and floor a step too far.
    short_out = shortest * long_out // longest // multiple * multiple
    if short_out < MIN_SIDE:
        limit = long_out / MIN_SIDE
        raise SettingsError(
            "aspect ratio", f"{width}x{height}", f"at most {limit:.1f}:1 at long_side={long_side}",
            f"The short side would be {shortest * long_out / longest:.0f} px, below {MIN_SIDE} px; "
            "crop the source or raise long_side.",
        )
    return (long_out, short_out) if width >= height else (short_out, long_out)


def _luma(rgb: np.ndarray) -> np.ndarray:
    return (rgb[..., 0] * 0.2126 + rgb[..., 1] * 0.7152 + rgb[..., 2] * 0.0722) / 255.0


def subject_edge_luma(rgb: np.ndarray, mask: np.ndarray) -> float | None:
    """Mean luma (0..1) of the subject's rim: the band of subject pixels just inside the mask edge."""
    import cv2

    if not mask.any() or mask.all():
        return None
    width = max(2, round(0.01 * max(mask.shape)))
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * width + 1, 2 * width + 1))
    eroded = cv2.erode(mask.astype(np.uint8), kernel).astype(bool)
    rim = mask & ~eroded
    if not rim.any():
        rim = mask
    return float(_luma(rgb[rim].astype(np.float32)).mean())


def choose_backdrop(setting: str, edge_luma: float | None) -> tuple[str, tuple[int, int, int]]:
    """(name, RGB) of the backdrop to composite onto. "auto" picks the one that contrasts with the
    subject's rim: white behind dark rims (cel outlines), black behind light rims, grey for mixed."""
    explicit = parse_backdrop(setting)
    if explicit is not None:
        return setting, explicit
    if edge_luma is None or edge_luma < _DARK_EDGE_LUMA:
        return "white", NAMED_BACKDROPS["white"]
    if edge_luma > _LIGHT_EDGE_LUMA:
        return "black", NAMED_BACKDROPS["black"]
    return "grey", NAMED_BACKDROPS["grey"]


def _composite(rgb: np.ndarray, weight: np.ndarray, backdrop: tuple[int, int, int]) -> np.ndarray:
    """Blend ``rgb`` over a solid backdrop with per-pixel subject weight 0..1."""
    w = weight.astype(np.float32)[..., None]
    out = rgb.astype(np.float32) * w + np.asarray(backdrop, np.float32) * (1.0 - w)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def _soft_mask(mask: np.ndarray) -> np.ndarray:
    """A slightly feathered weight from a hard mask, so a replaced backdrop meets the subject without a jagged seam."""
    import cv2

    return cv2.GaussianBlur(mask.astype(np.float32), (0, 0), sigmaX=max(0.6, 0.0015 * max(mask.shape)))


def _hints_for(kind: str, backdrop_rgb: tuple[int, int, int] | None, composited: bool) -> list[str]:
    """Hints follow the backdrop the generator will actually see (after any compositing)."""
    if kind == "scenic":
        return list(SCENIC_HINTS)
    if backdrop_rgb is not None and float(_luma(np.asarray(backdrop_rgb, np.float32))) < _DARK_BACKDROP_LUMA:
        return list(DARK_HINTS)
    if composited or kind == "light":
        return list(STUDIO_HINTS)
    return list(FLAT_HINTS)


def _hex(rgb: tuple[int, int, int]) -> str:
    return "#{:02x}{:02x}{:02x}".format(*rgb)


def prepare(source: Any, analysis: BackgroundAnalysis, settings: PrepareSettings | None = None) -> Prepared:
    """Composite, resize and annotate ``source`` (a SourceImage or PIL image) for generation."""
    settings = settings or PrepareSettings()
    image = source.image if hasattr(source, "image") and isinstance(source.image, Image.Image) else source
    if not isinstance(image, Image.Image):
        raise TypeError(f"prepare needs a SourceImage or PIL.Image.Image, got {type(source).__name__}")
    mask = np.asarray(analysis.mask, dtype=bool)
    if mask.shape != (image.height, image.width):
        raise ValueError(f"background mask {mask.shape[::-1]} does not match the source size {image.size}; "
                         "analyse the same image that is prepared")

    has_alpha = image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info)
    rgba = np.asarray(image.convert("RGBA")) if has_alpha else None
    rgb = rgba[..., :3] if rgba is not None else np.asarray(image.convert("RGB"))
    edge_luma = subject_edge_luma(rgb, mask)
    adaptations: dict[str, Any] = {
        "background_kind": analysis.kind,
        "source_size": [image.width, image.height],
        "edge_luma": None if edge_luma is None else round(edge_luma, 4),
        "composited": False,
        "backdrop": None,
        "backdrop_rgb": list(analysis.backdrop_rgb) if analysis.backdrop_rgb is not None else None,
        "kept_dark_backdrop": False,
        "mask_controls": bool(settings.mask_controls),
    }
    final_backdrop: tuple[int, int, int] | None = analysis.backdrop_rgb

    if rgba is not None:
        # Any alpha at all is resolved here, whatever the analysis kind: the generator takes RGB.
        name, colour = choose_backdrop(settings.transparent_backdrop, edge_luma)
        rgb = _composite(rgb, rgba[..., 3].astype(np.float32) / 255.0, colour)
        final_backdrop = colour
        adaptations.update(composited=True, backdrop=name, backdrop_rgb=list(colour),
                           backdrop_choice=settings.transparent_backdrop)
    elif analysis.kind == "transparent" and mask.any():
        # Analysed with alpha but handed over flattened: the mask stands in for the alpha.
        name, colour = choose_backdrop(settings.transparent_backdrop, edge_luma)
        rgb = _composite(rgb, _soft_mask(mask), colour)
        final_backdrop = colour
        adaptations.update(composited=True, backdrop=name, backdrop_rgb=list(colour),
                           backdrop_choice=settings.transparent_backdrop)
    elif analysis.kind == "dark":
        if settings.keep_dark_backdrop:
            adaptations.update(kept_dark_backdrop=True, backdrop=_hex(analysis.backdrop_rgb or (0, 0, 0)))
        elif mask.any():
            # Lifting is asked for: replace the dark backdrop like a transparent one.
            name, colour = choose_backdrop(settings.transparent_backdrop, edge_luma)
            rgb = _composite(rgb, _soft_mask(mask), colour)
            final_backdrop = colour
            adaptations.update(composited=True, backdrop=name, backdrop_rgb=list(colour),
                               backdrop_choice=settings.transparent_backdrop, lifted_dark_backdrop=True)
    elif analysis.backdrop_rgb is not None:
        adaptations["backdrop"] = _hex(analysis.backdrop_rgb)

    width, height = fit_size(image.width, image.height, settings.long_side)
    resized = Image.fromarray(np.ascontiguousarray(rgb), mode="RGB")
    if resized.size != (width, height):
        resized = resized.resize((width, height), Image.Resampling.LANCZOS)
    # The mask is scaled as coverage and re-thresholded: nearest-neighbour would drop thin parts unevenly.
    mask_image = Image.fromarray(mask.astype(np.uint8) * 255, mode="L")
    if mask_image.size != (width, height):
        mask_image = mask_image.resize((width, height), Image.Resampling.BILINEAR)
    out_mask = np.asarray(mask_image) >= 128

    hints = _hints_for(analysis.kind, final_backdrop, adaptations["composited"]) if settings.lighting_hints else []
    adaptations.update(
        size=[width, height],
        resized=(width, height) != image.size,
        resample="lanczos",
        prompt_hints=list(hints),
        lighting_hints=bool(settings.lighting_hints),
        mask_fraction=round(float(out_mask.mean()), 4),
        settings=asdict(settings),
    )
    return Prepared(image=resized, mask=out_mask, size=(width, height), prompt_hints=hints, adaptations=adaptations)


def resize_mask(mask: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """A boolean mask at (w, h) ``size``, nearest-neighbour so it stays boolean."""
    if mask.shape == (size[1], size[0]):
        return mask
    return np.asarray(Image.fromarray(mask.astype(np.uint8) * 255).resize(size, Image.NEAREST)) > 127
