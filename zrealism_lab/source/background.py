"""Background analysis: what kind of backdrop a source has, and which pixels are the subject.

Kinds: "transparent" (alpha), "dark", "light", "flat" (one plain colour) and "scenic" (a drawn or
photographed environment). The subject mask comes from alpha where there is alpha; from the
border-connected backdrop colour for plain backdrops; and from a best-effort GrabCut for scenic ones.
Photos and 3D renders also get MediaPipe's person segmentation where it is installed (see _PHOTO_MAX_PALETTE_SHARE);
``mask_source`` says which mask was used.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
from PIL import Image

from ..errors import MissingWeightsError

KINDS: tuple[str, ...] = ("transparent", "dark", "light", "flat", "scenic")

# Thresholds in CIELAB (L* 0..100, distances are CIE76 delta E). Chosen on cel-shaded art: outlines
# and skin are > 20 delta E from any plain backdrop, JPEG noise and soft gradients stay < 10.
_DARK_MAX_L = 25.0
_LIGHT_MIN_L = 88.0
_LIGHT_MAX_CHROMA = 20.0
_UNIFORM_DELTA_E = 12.0
_PLAIN_MIN_UNIFORM = 0.6  # share of the border in the backdrop colour for a plain backdrop
_PLAIN_MIN_SIDES = 3  # sides of the image whose median is the backdrop colour
_TRANSPARENT_MIN_FRACTION = 0.02
_TRANSPARENT_MIN_BORDER = 0.25
_ANALYSIS_LONG_SIDE = 1024  # larger sources are analysed downscaled; the mask is scaled back
_GRABCUT_LONG_SIDE = 192
_GRABCUT_ITERATIONS = 4
_MIN_COMPONENT_FRACTION = 0.0005  # subject specks smaller than this share of the image are noise

# Which sources get the person-segmentation model. Cel-shaded art is a few flat fills: at 5 bits per channel its
# 16 commonest colours cover most of the picture, while photos and 3D renders spread over thousands of shades.
# Measured on the whole image for scenic sources (the lab's scenic sample 0.72; skimage's astronaut 0.30, coffee
# 0.20, chelsea 0.19, rocket 0.45, matplotlib's Grace Hopper 0.44) and on the subject alone for plain backdrops,
# whose one colour would count for the art otherwise (the lab's samples 0.74-0.76, its screenshots 0.97; the
# astronaut cut out onto white 0.33, Grace Hopper's dark uniform 0.61). Below this share: a photo or render.
_PHOTO_MAX_PALETTE_SHARE = 0.66
_PALETTE_LONG_SIDE = 256
# The rule. Photo or render, and the model finds a person: on a scenic backdrop the person mask replaces GrabCut
# (whose centre-box seed misses most of a photographed person: astronaut 3 % of the image), on a plain backdrop it
# is joined to the colour mask (whose edges are exact; the model adds parts of the person in the backdrop colour).
# Drawings keep today's mask, which beats the model on the lab's samples (IoU with the cut-out 0.97-1.0 against
# 0.15-0.95): the model's mask replaces it only where today's failed (empty, under 1 % or over 97 % of the image).
_PERSON_THRESHOLD = 0.5  # selfie-segmentation probability
_PERSON_MIN_FRACTION = 0.01  # a smaller person mask means "no person found"
_PERSON_MIN_CONFIDENCE = 0.75  # mean probability inside the thresholded mask: a confident, crisp person
MASK_SOURCES = ("alpha", "backdrop colour", "grabcut", "person segmentation", "backdrop colour + person segmentation")


@dataclass
class BackgroundAnalysis:
    """Result of analyze_background. ``mask`` is a bool (H, W) array, True = subject."""

    kind: str
    confidence: float
    mask: np.ndarray
    backdrop_rgb: tuple[int, int, int] | None
    evidence: dict[str, float] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    mask_source: str = "backdrop colour"  # one of MASK_SOURCES: how ``mask`` was made

    @property
    def mask_fraction(self) -> float:
        return float(self.mask.mean()) if self.mask.size else 0.0

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe summary (the mask itself is left out; save mask_image() for that)."""
        return {
            "kind": self.kind,
            "confidence": round(float(self.confidence), 4),
            "backdrop_rgb": list(self.backdrop_rgb) if self.backdrop_rgb is not None else None,
            "mask_size": [int(self.mask.shape[1]), int(self.mask.shape[0])],
            "mask_fraction": round(self.mask_fraction, 4),
            "mask_source": self.mask_source,
            "evidence": {key: round(float(value), 4) for key, value in self.evidence.items()},
            "warnings": list(self.warnings),
        }

    def mask_image(self) -> Image.Image:
        """The subject mask as a black/white "L" image (white = subject)."""
        return Image.fromarray(self.mask.astype(np.uint8) * 255, mode="L")

    def overlay(self, image: Image.Image, colour: tuple[int, int, int] = (255, 0, 170), strength: float = 0.55
                ) -> Image.Image:
        """``image`` with the background tinted and the subject outline traced, for display."""
        import cv2

        height, width = self.mask.shape
        base = _flatten_for_display(image)
        if base.size != (width, height):
            base = base.resize((width, height), Image.Resampling.BILINEAR)
        pixels = np.asarray(base, dtype=np.float32)
        tint = np.asarray(colour, dtype=np.float32)
        background = ~self.mask
        pixels[background] = pixels[background] * (1.0 - strength) + tint * strength
        mask_u8 = self.mask.astype(np.uint8)
        edge = mask_u8.astype(bool) & ~cv2.erode(mask_u8, np.ones((3, 3), np.uint8)).astype(bool)
        pixels[edge] = (255.0, 230.0, 0.0)
        return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), mode="RGB")


def _flatten_for_display(image: Image.Image) -> Image.Image:
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        checker = Image.new("RGBA", rgba.size, (200, 200, 200, 255))
        return Image.alpha_composite(checker, rgba).convert("RGB")
    return image.convert("RGB")


def _as_pil(image: Any) -> Image.Image:
    # A SourceImage from intake is accepted as it is, so callers need not unwrap it.
    inner = getattr(image, "image", None)
    if isinstance(inner, Image.Image):
        return inner
    if not isinstance(image, Image.Image):
        raise TypeError(f"analyze_background needs a PIL.Image.Image, got {type(image).__name__}")
    return image


def _border(array: np.ndarray, width: int) -> np.ndarray:
    """Pixels of the ring ``width`` pixels wide along the image edge, shape (N, channels)."""
    top, bottom = array[:width], array[-width:]
    left, right = array[width:-width, :width], array[width:-width, -width:]
    channels = array.shape[2] if array.ndim == 3 else 1
    return np.concatenate([part.reshape(-1, channels) for part in (top, bottom, left, right)])


def _border_sides(array: np.ndarray, width: int) -> list[np.ndarray]:
    channels = array.shape[2]
    return [array[:width].reshape(-1, channels), array[-width:].reshape(-1, channels),
            array[:, :width].reshape(-1, channels), array[:, -width:].reshape(-1, channels)]


def _border_mask(shape: tuple[int, int], width: int) -> np.ndarray:
    ring = np.zeros(shape, dtype=bool)
    ring[:width], ring[-width:], ring[:, :width], ring[:, -width:] = True, True, True, True
    return ring


def _to_lab(rgb: np.ndarray) -> np.ndarray:
    import cv2

    # OpenCV's float conversion agrees with skimage.color.rgb2lab (D65) within 0.5 delta E and is far faster,
    # which keeps the whole analysis inside its time budget on 512 px sources.
    return cv2.cvtColor(rgb.astype(np.float32) / 255.0, cv2.COLOR_RGB2LAB)


def _luma(rgb: np.ndarray) -> np.ndarray:
    return (rgb[..., 0] * 0.2126 + rgb[..., 1] * 0.7152 + rgb[..., 2] * 0.0722) / 255.0


def _dominant_colour(lab: np.ndarray) -> np.ndarray:
    """The most common colour among ``lab`` pixels (N, 3): densest coarse bin, refined by a median.
    A plain median would drift towards the subject where the subject touches the border."""
    bins = np.floor(lab / np.array([8.0, 8.0, 8.0], dtype=np.float32)).astype(np.int32)
    keys, inverse, counts = np.unique(bins, axis=0, return_inverse=True, return_counts=True)
    densest = lab[inverse.reshape(-1) == int(np.argmax(counts))]
    centre = np.median(densest, axis=0)
    near = lab[np.linalg.norm(lab - centre, axis=1) < _UNIFORM_DELTA_E]
    return np.median(near, axis=0) if len(near) else centre


def _lab_to_rgb_tuple(lab_colour: np.ndarray) -> tuple[int, int, int]:
    import cv2

    rgb = cv2.cvtColor(lab_colour.reshape(1, 1, 3).astype(np.float32), cv2.COLOR_LAB2RGB)[0, 0]
    return tuple(int(round(float(np.clip(c, 0.0, 1.0)) * 255)) for c in rgb)  # type: ignore[return-value]


def _remove_specks(mask: np.ndarray) -> np.ndarray:
    import cv2

    count, labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    if count <= 1:
        return mask
    min_area = max(4, int(_MIN_COMPONENT_FRACTION * mask.size))
    keep = np.zeros(count, dtype=bool)
    keep[1:] = stats[1:, cv2.CC_STAT_AREA] >= min_area
    if not keep.any():  # everything is small: keep the largest rather than nothing
        keep[1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))] = True
    return keep[labels]


def _border_connected(region: np.ndarray, ring: int) -> np.ndarray:
    """The parts of bool ``region`` that are connected to the image border."""
    import cv2

    _, labels = cv2.connectedComponents(region.astype(np.uint8), connectivity=4)
    border_labels = np.unique(labels[_border_mask(labels.shape, ring) & region])
    return np.isin(labels, border_labels[border_labels > 0])


def _plain_backdrop_mask(lab: np.ndarray, backdrop: np.ndarray, tolerance: float, ring: int) -> np.ndarray:
    """Subject = everything except backdrop-coloured regions connected to the image border.
    Backdrop-coloured areas enclosed by the subject (a white shirt on a white backdrop) stay subject."""
    import cv2

    backdrop_like = np.linalg.norm(lab - backdrop, axis=2) < tolerance
    background = _border_connected(backdrop_like, ring)
    # On a dark backdrop the black cel outlines match the backdrop colour and would cut the subject
    # into pieces along every line: an opening drops such thin lines from the background.
    size = max(3, int(round(0.012 * min(lab.shape[:2]))) | 1)
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (size, size))
    opened = cv2.morphologyEx(background.astype(np.uint8), cv2.MORPH_OPEN, kernel).astype(bool)
    return _remove_specks(~_border_connected(opened, ring))


def _grow(mask: np.ndarray, fraction: float) -> np.ndarray:
    """Dilate by ``fraction`` of the short side. On dark backdrops the subject's black outline has the
    backdrop's colour, so the colour mask stops just inside it; growing it takes the outline back in."""
    import cv2

    radius = max(1, round(fraction * min(mask.shape)))
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
    return cv2.dilate(mask.astype(np.uint8), kernel).astype(bool)


def _fill_small_holes(mask: np.ndarray, max_fraction: float) -> np.ndarray:
    import cv2

    count, labels, stats, _ = cv2.connectedComponentsWithStats((~mask).astype(np.uint8), connectivity=4)
    touches_border = np.zeros(count, dtype=bool)
    touches_border[np.unique(labels[_border_mask(mask.shape, 1)])] = True
    small = stats[:, cv2.CC_STAT_AREA] < max_fraction * mask.size
    fill = small & ~touches_border
    fill[0] = False  # label 0 is the subject itself
    return mask | fill[labels]


def _grabcut_mask(rgb: np.ndarray, ring: int) -> np.ndarray:
    """Best-effort subject mask for busy backgrounds: GrabCut seeded with the border as certain
    background and the centre as probable subject, run downscaled for speed."""
    import cv2

    height, width = rgb.shape[:2]
    scale = min(1.0, _GRABCUT_LONG_SIDE / max(height, width))
    small = cv2.resize(rgb, (max(8, round(width * scale)), max(8, round(height * scale))),
                       interpolation=cv2.INTER_AREA) if scale < 1.0 else rgb
    sh, sw = small.shape[:2]
    seeds = np.full((sh, sw), cv2.GC_PR_BGD, dtype=np.uint8)
    seeds[int(sh * 0.2):int(sh * 0.92), int(sw * 0.3):int(sw * 0.7)] = cv2.GC_PR_FGD
    seeds[_border_mask((sh, sw), max(1, round(ring * scale)))] = cv2.GC_BGD
    bgd_model, fgd_model = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
    try:
        cv2.setRNGSeed(0)  # GrabCut's GMM initialisation uses OpenCV's RNG; keep runs reproducible
        cv2.grabCut(np.ascontiguousarray(small[..., ::-1]), seeds, None, bgd_model, fgd_model,
                    _GRABCUT_ITERATIONS, cv2.GC_INIT_WITH_MASK)
    except cv2.error:
        return np.zeros((height, width), dtype=bool)
    subject = np.isin(seeds, (cv2.GC_FGD, cv2.GC_PR_FGD)).astype(np.float32)
    if scale < 1.0:
        subject = cv2.resize(subject, (width, height), interpolation=cv2.INTER_LINEAR)
    return _fill_small_holes(_keep_main_components(subject > 0.5), 0.01)


def _keep_main_components(mask: np.ndarray) -> np.ndarray:
    """GrabCut leaves scattered scenery blobs; keep the components at least a fifth of the largest."""
    import cv2

    count, labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    if count <= 2:
        return mask
    areas = stats[1:, cv2.CC_STAT_AREA]
    keep = np.zeros(count, dtype=bool)
    keep[1:] = areas >= 0.2 * areas.max()
    return keep[labels]


def _palette_share(rgb: np.ndarray, region: np.ndarray | None = None) -> float:
    """Share of the pixels (of bool ``region``, else all) in the 16 commonest colours at 5 bits per channel,
    on a <= 256 px copy."""
    import cv2

    height, width = rgb.shape[:2]
    scale = min(1.0, _PALETTE_LONG_SIDE / max(height, width))
    if scale < 1.0:
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        rgb = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
        if region is not None:
            region = cv2.resize(region.astype(np.uint8), size, interpolation=cv2.INTER_NEAREST).astype(bool)
    quantised = (rgb[..., :3] >> 3).astype(np.int32)
    keys = (quantised[..., 0] << 10) | (quantised[..., 1] << 5) | quantised[..., 2]
    keys = keys[region] if region is not None and region.any() else keys.ravel()
    counts = np.sort(np.bincount(keys, minlength=1 << 15))[::-1]
    return float(counts[:16].sum() / keys.size)


def _person_mask(rgb: np.ndarray) -> tuple[np.ndarray, float]:
    """The selfie-segmentation person mask, thresholded and cleaned, and its mean probability; empty where the
    pose detector finds nobody. The segmentation model also cuts out salient things that are not people (a cat,
    a cup), so only the segments the detected body lies in are kept."""
    import cv2

    from ..control.pose_mediapipe import MIN_VISIBILITY, detect_holistic
    from ..control.segmentation import person_probability

    body = detect_holistic(rgb)["body"]
    if body is None:
        return np.zeros(rgb.shape[:2], dtype=bool), 0.0
    probability = person_probability(rgb)
    mask = _fill_small_holes(_remove_specks(probability >= _PERSON_THRESHOLD), 0.01)
    _, labels = cv2.connectedComponents(mask.astype(np.uint8), connectivity=8)
    height, width = mask.shape
    seen = body[(body[:, 2] >= MIN_VISIBILITY) & (body[:, :2] >= 0).all(axis=1) & (body[:, :2] < 1).all(axis=1)]
    hit = np.unique(labels[(seen[:, 1] * height).astype(int), (seen[:, 0] * width).astype(int)])
    mask = np.isin(labels, hit[hit > 0])
    return mask, float(probability[mask].mean()) if mask.any() else 0.0


def _failed(mask: np.ndarray) -> bool:
    fraction = float(mask.mean()) if mask.size else 0.0
    return fraction < 0.01 or fraction > 0.97


def _with_person_mask(rgb: np.ndarray, today: Callable[[], np.ndarray], source: str, evidence: dict[str, float],
                      notes: list[str]) -> tuple[np.ndarray, str]:
    """Today's mask (made by ``today`` only when it is needed: GrabCut is the slow part), the person mask or both
    joined, by the rule stated at _PHOTO_MAX_PALETTE_SHARE."""
    from ..control import mediapipe_runtime

    mask = today() if source == "backdrop colour" else None  # cheap, and it marks the subject for the palette
    share = _palette_share(rgb, mask if mask is not None and not _failed(mask) else None)
    photo = share < _PHOTO_MAX_PALETTE_SHARE
    evidence["palette_share"], evidence["photo_like"] = share, float(photo)
    if not photo:
        mask = today() if mask is None else mask
        if not _failed(mask):
            return mask, source
    if not mediapipe_runtime.mediapipe_available():
        if photo and source == "grabcut":
            notes.append("this source looks like a photo or 3D render: the subject mask is GrabCut's best effort. "
                         f"Person segmentation gives a better one: {mediapipe_runtime.MEDIAPIPE_INSTALL}")
        return (today() if mask is None else mask), source
    try:
        person, confidence = _person_mask(rgb)
    except MissingWeightsError as error:  # installed but unusable (e.g. protobuf missing): today's mask, and why
        notes.append(str(error).replace("\n", " "))
        return (today() if mask is None else mask), source
    evidence["person_fraction"], evidence["person_confidence"] = float(person.mean()), confidence
    if person.mean() < _PERSON_MIN_FRACTION or confidence < _PERSON_MIN_CONFIDENCE:
        return (today() if mask is None else mask), source
    if photo and mask is not None:
        return mask | person, "backdrop colour + person segmentation"
    return person, "person segmentation"  # a photo on a scenic backdrop, or a drawing whose own mask failed


def _mask_warnings(mask: np.ndarray, kind: str) -> list[str]:
    fraction = float(mask.mean()) if mask.size else 0.0
    if not mask.any():
        return [f"subject mask is empty; no subject could be separated from the {kind} background. "
                "Check the source, or leave mask-based options (mask_controls) off for it."]
    if mask.all():
        return [f"subject mask covers the whole image; no {kind} background could be separated from the "
                "subject. Mask-based options (mask_controls) will have no effect."]
    if fraction < 0.01:
        return [f"subject mask covers only {fraction:.1%} of the image; the subject may have been missed."]
    if fraction > 0.97:
        return [f"subject mask covers {fraction:.1%} of the image; almost no background was found."]
    return []


def _downscaled(image: Image.Image) -> Image.Image:
    long_side = max(image.size)
    if long_side <= _ANALYSIS_LONG_SIDE:
        return image
    scale = _ANALYSIS_LONG_SIDE / long_side
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    return image.resize(size, Image.Resampling.BOX)


def _analyse_transparent(alpha: np.ndarray, rgb: np.ndarray, ring: int, evidence: dict[str, float]
                         ) -> tuple[float, np.ndarray]:
    mask = _remove_specks(alpha >= 128)
    opaque_border = _border(rgb, ring)[_border(alpha[..., None], ring)[:, 0] >= 128]
    if len(opaque_border):
        luma = _luma(opaque_border.astype(np.float32))
        evidence["border_luma_mean"], evidence["border_luma_std"] = float(luma.mean()), float(luma.std())
    confidence = 0.75 + 0.24 * min(1.0, evidence["border_transparent_fraction"] / 0.9)
    return confidence, mask


def analyze_background(image: Image.Image) -> BackgroundAnalysis:
    """Classify the background of ``image`` and separate the subject.

    Returns a BackgroundAnalysis whose mask has the size of ``image``; ``evidence`` holds the
    measurements the decision rests on, ``warnings`` anything the user should check."""
    import cv2

    source = _as_pil(image)
    full_size = source.size
    work = _downscaled(source)
    has_alpha_channel = work.mode in ("RGBA", "LA", "PA", "RGBa", "La") or (
        work.mode == "P" and "transparency" in work.info)
    rgba = np.asarray(work.convert("RGBA")) if has_alpha_channel else None
    rgb = np.ascontiguousarray(rgba[..., :3]) if rgba is not None else np.asarray(work.convert("RGB"))
    height, width = rgb.shape[:2]
    ring = max(1, min(round(0.02 * min(height, width)), min(height, width) // 2))  # border band width

    evidence: dict[str, float] = {}
    alpha = rgba[..., 3] if rgba is not None else np.full((height, width), 255, np.uint8)
    transparent = alpha < 128
    evidence["alpha_coverage"] = float(1.0 - transparent.mean())
    evidence["transparent_fraction"] = float(transparent.mean())
    evidence["border_transparent_fraction"] = float((_border(alpha[..., None], ring)[:, 0] < 128).mean())
    evidence["border_luma_mean"], evidence["border_luma_std"] = 0.0, 0.0
    evidence["border_colour_spread"], evidence["border_uniform_fraction"] = 0.0, 0.0

    backdrop_rgb: tuple[int, int, int] | None = None
    notes: list[str] = []
    if (evidence["transparent_fraction"] >= _TRANSPARENT_MIN_FRACTION
            or evidence["border_transparent_fraction"] >= _TRANSPARENT_MIN_BORDER):
        kind, mask_source = "transparent", "alpha"
        confidence, mask = _analyse_transparent(alpha, rgb, ring, evidence)
    else:
        lab = _to_lab(rgb)
        border_lab = _border(lab, ring)
        border_luma = _luma(_border(rgb, ring).astype(np.float32))
        backdrop = _dominant_colour(border_lab)
        distance = np.linalg.norm(border_lab - backdrop, axis=1)
        uniform = float((distance < _UNIFORM_DELTA_E).mean())
        sides = sum(
            float(np.linalg.norm(np.median(side, axis=0) - backdrop)) < _UNIFORM_DELTA_E
            for side in _border_sides(lab, ring)
        )
        lightness, chroma = float(backdrop[0]), float(np.hypot(backdrop[1], backdrop[2]))
        evidence.update(
            border_luma_mean=float(border_luma.mean()),
            border_luma_std=float(border_luma.std()),
            border_colour_spread=float(np.percentile(distance, 90)),
            border_uniform_fraction=uniform,
            border_sides_matching=float(sides),
            backdrop_lightness=lightness,
            backdrop_chroma=chroma,
        )
        if uniform >= _PLAIN_MIN_UNIFORM and sides >= _PLAIN_MIN_SIDES:
            if lightness < _DARK_MAX_L:
                kind, margin = "dark", min(1.0, (_DARK_MAX_L - lightness) / 10.0)
            elif lightness > _LIGHT_MIN_L and chroma < _LIGHT_MAX_CHROMA:
                kind = "light"
                margin = min(1.0, (lightness - _LIGHT_MIN_L) / 6.0, (_LIGHT_MAX_CHROMA - chroma) / 10.0)
            else:
                kind, margin = "flat", 1.0
            # Tolerance grows with the backdrop's own noise (JPEG, paper texture, soft gradients).
            spread_in_backdrop = float(np.percentile(distance[distance < _UNIFORM_DELTA_E], 95))
            tolerance = float(np.clip(2.5 * spread_in_backdrop, 10.0, 22.0))
            evidence["colour_tolerance"] = tolerance
            colour_mask = _plain_backdrop_mask(lab, backdrop, tolerance, ring)
            if kind == "dark":
                colour_mask = _grow(colour_mask, 0.008)
            today = lambda: colour_mask  # noqa: E731
            plainness = min(1.0, (uniform - 0.5) / 0.45)
            confidence = 0.5 + 0.49 * plainness * (0.6 + 0.4 * max(0.0, margin))
            backdrop_rgb = _lab_to_rgb_tuple(backdrop)
            mask_source = "backdrop colour"
        else:
            kind, mask_source = "scenic", "grabcut"
            today = lambda: _grabcut_mask(rgb, ring)  # noqa: E731
            busyness = min(1.0, max(0.0, (_PLAIN_MIN_UNIFORM - uniform) / 0.4))
            confidence = 0.4 + 0.3 * busyness
        mask, mask_source = _with_person_mask(rgb, today, mask_source, evidence, notes)

    if mask.shape != (full_size[1], full_size[0]):
        scaled = cv2.resize(mask.astype(np.float32), full_size, interpolation=cv2.INTER_LINEAR)
        mask = scaled > 0.5
    evidence["mask_fraction"] = float(mask.mean())
    return BackgroundAnalysis(
        kind=kind,
        confidence=float(np.clip(confidence, 0.0, 1.0)),
        mask=mask,
        backdrop_rgb=backdrop_rgb,
        evidence=evidence,
        warnings=_mask_warnings(mask, kind) + notes,
        mask_source=mask_source,
    )


_DEFAULT_BACKDROPS = {"dark": (0, 0, 0), "light": (255, 255, 255), "flat": (128, 128, 128)}


def with_kind(analysis: BackgroundAnalysis, kind: str, image: Any = None) -> BackgroundAnalysis:
    """The analysis with its kind set by the user (the ``background_kind`` setting); "auto" or the same kind keep it.

    The subject mask stays the analysis's; a plain kind takes its backdrop colour from the pixels outside the mask
    (of ``image``, when given), so "transparent" cuts the subject out and "scenic" keeps the backdrop as it is."""
    if kind == "auto" or kind == analysis.kind:
        return analysis
    if kind not in KINDS:
        from ..errors import SettingsError

        raise SettingsError("background_kind", kind, "auto or one of " + ", ".join(KINDS))
    backdrop: tuple[int, int, int] | None = None
    if kind in _DEFAULT_BACKDROPS:
        backdrop = _DEFAULT_BACKDROPS[kind]
        if image is not None:
            rgb = np.asarray(_flatten_for_display(_as_pil(image)))
            outside = ~analysis.mask if rgb.shape[:2] == analysis.mask.shape else None
            if outside is not None and outside.any():
                backdrop = tuple(int(v) for v in np.median(rgb[outside], axis=0))  # type: ignore[assignment]
    note = (f"background kind set to {kind} by the background_kind setting (the analysis said {analysis.kind}, "
            f"confidence {analysis.confidence:.2f})")
    evidence = dict(analysis.evidence, analysed_confidence=float(analysis.confidence))
    return BackgroundAnalysis(kind=kind, confidence=1.0, mask=analysis.mask, backdrop_rgb=backdrop,
                              evidence=evidence, warnings=[*analysis.warnings, note],
                              mask_source=analysis.mask_source)
