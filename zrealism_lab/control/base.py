"""The control-map registry: one provider per ControlNet kind, each with one or more detector methods.

Every provider shares one ``detect`` signature and one geometry: detection runs on a copy of the image whose
long side is ``detect_resolution``, and the map comes back as an RGB image of exactly the generation ``size``.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

import numpy as np
from PIL import Image

from ..errors import MissingWeightsError, SettingsError
from ..registry import Registry
from ..source.preparation import resize_mask

# Bounds of the detection long side. Detectors of controlnet-aux work on sides rounded to multiples of 64.
MIN_DETECT_RESOLUTION = 64
MAX_DETECT_RESOLUTION = 4096


@dataclass
class ControlMap:
    """A conditioning image for one ControlNet, plus what the detector found and how it was made.

    ``keypoints`` (openpose only): float array (N, 2) of body keypoint pixel coordinates (x, y) at ``size``,
    18 rows per person in OpenPose COCO order (see ``pose.BODY_KEYPOINT_NAMES``), NaN where a part was not
    found; an empty (0, 2) array when no person was found. None for other kinds.
    """

    kind: str
    method: str
    image: Image.Image
    found: bool
    keypoints: np.ndarray | None = None
    warnings: list[str] = field(default_factory=list)
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def size(self) -> tuple[int, int]:
        return self.image.size

    def with_warning(self, message: str) -> "ControlMap":
        return dataclasses.replace(self, warnings=[*self.warnings, message])


@dataclass
class DetectRequest:
    """What a method gets: the image at detection resolution, the mask at the same resolution, the output size."""

    kind: str
    method: str
    image: np.ndarray  # uint8 RGB (h, w, 3) at detection resolution
    mask: np.ndarray | None  # bool (h, w) at detection resolution
    size: tuple[int, int]  # output (w, h)
    params: dict[str, Any]  # method parameters, defaults filled in and checked
    annotator_dir: str | None


@dataclass
class MethodResult:
    """What a method returns. ``array`` may be at any resolution; it is resized to the output size."""

    array: np.ndarray  # uint8 (h, w) or (h, w, 3)
    found: bool | None = None  # None: "the map is not blank"
    keypoints: np.ndarray | None = None
    warnings: list[str] = field(default_factory=list)
    zero_outside_mask: bool = False  # the method's map is defined as zero off the subject
    record: dict[str, Any] = field(default_factory=dict)  # extra JSON-safe facts for the run record


@dataclass(frozen=True, eq=False)  # identity equality: its fields hold dicts and functions
class MethodSpec:
    """One way of making a map of a kind. ``defaults`` lists every parameter the method accepts."""

    name: str
    label: str
    description: str
    needs_weights: bool
    run: Callable[[DetectRequest], MethodResult]
    defaults: Mapping[str, Any] = field(default_factory=dict)
    check: Callable[[dict[str, Any]], None] | None = None  # range/choice checks beyond the types
    detect_multiple: int = 1  # detection sides are rounded to this multiple (64 for controlnet-aux detectors)
    reads_image: bool = True  # False for maps made from the subject mask alone: re-detecting them measures nothing
    missing: Callable[[], str | None] | None = None  # what the method lacks here (a package), None when it can run


@dataclass(frozen=True, eq=False)  # identity equality: its fields hold dicts and functions
class ControlProvider:
    """The detectors for one ControlNet kind."""

    kind: str
    label: str
    methods: Mapping[str, MethodSpec]
    default_method: str

    def method(self, name: str | None = None) -> MethodSpec:
        name = self.default_method if name is None else name
        try:
            return self.methods[name]
        except (KeyError, TypeError):
            raise SettingsError(f"{self.kind} method", name, "one of " + ", ".join(self.methods),
                                hint=_weightless_hint(self)) from None

    def needs_weights(self, method: str | None = None) -> bool:
        return self.method(method).needs_weights

    def detect(self, image: Image.Image, *, size: tuple[int, int], detect_resolution: int = 512,
               mask: np.ndarray | None = None, mask_to_subject: bool = False, method: str | None = None,
               annotator_dir: str | None = None, **params: Any) -> ControlMap:
        """Make this kind's map of ``image`` at ``size`` (w, h). Every argument is checked before any model loads."""
        spec = self.method(method)
        size = _check_size(size)
        _check_detect_resolution(detect_resolution)
        if not isinstance(image, Image.Image):
            raise SettingsError("image", type(image).__name__, "a PIL.Image.Image")
        mask = _check_mask(mask, image.size)
        if mask_to_subject and mask is None:
            raise SettingsError("mask_to_subject", True, "False when no subject mask is given",
                                hint="Pass mask= (the subject mask from background analysis).")
        values = _merge_params(self.kind, spec, params)

        detect_size = detection_size(image.size, detect_resolution, spec.detect_multiple)
        rgb = np.asarray(image.convert("RGB").resize(detect_size, Image.LANCZOS))
        detect_mask = None if mask is None else resize_mask(mask, detect_size)
        request = DetectRequest(self.kind, spec.name, rgb, detect_mask, size, values,
                                None if annotator_dir is None else str(annotator_dir))
        try:
            result = spec.run(request)
        except MissingWeightsError as error:
            hint = _weightless_hint(self, exclude=spec.name)
            if not hint:
                raise
            raise MissingWeightsError(f"{error}\n{hint}") from error

        keep = None if mask is None or not (mask_to_subject or result.zero_outside_mask) else resize_mask(mask, size)
        out = _output_image(result.array, size, keep)
        found = bool(np.asarray(out).any()) if result.found is None else result.found
        warnings = list(result.warnings)
        if not found and result.found is None:
            warnings.append(f"the {self.kind} map ({spec.name}) is blank: the ControlNet would get an empty map.")
        record = {"kind": self.kind, "method": spec.name, "size": list(size),
                  "detect_resolution": int(detect_resolution), "detect_size": list(detect_size),
                  "mask_to_subject": bool(mask_to_subject), **values, **result.record}
        return ControlMap(self.kind, spec.name, out, found, result.keypoints, warnings, record)


CONTROL_PROVIDERS: Registry[ControlProvider] = Registry("control kind")


def register_provider(provider: ControlProvider) -> ControlProvider:
    if provider.default_method not in provider.methods:
        raise KeyError(f"default method {provider.default_method!r} of {provider.kind!r} is not one of its methods")
    return CONTROL_PROVIDERS.register(provider.kind, provider)


def list_kinds() -> list[str]:
    return CONTROL_PROVIDERS.names()


def available_methods(kind: str, *, weightless_only: bool = False) -> list[str]:
    """Method names of ``kind`` (default first); ``weightless_only`` keeps those that need no checkpoint."""
    provider = CONTROL_PROVIDERS.get(kind)
    names = [provider.default_method] + [n for n in provider.methods if n != provider.default_method]
    return [n for n in names if not (weightless_only and provider.methods[n].needs_weights)]


def detect_control(kind: str, image: Image.Image, *, size: tuple[int, int], **kwargs: Any) -> ControlMap:
    """Shortcut for ``CONTROL_PROVIDERS.get(kind).detect(image, size=size, ...)``."""
    return CONTROL_PROVIDERS.get(kind).detect(image, size=size, **kwargs)


# ------------------------------------------------------------------------------------------------ geometry


def detection_size(image_size: tuple[int, int], detect_resolution: int, multiple: int = 1) -> tuple[int, int]:
    """(w, h) whose long side is ``detect_resolution``, aspect kept, sides rounded to ``multiple`` (at least one)."""
    width, height = image_size
    scale = detect_resolution / max(width, height)

    def side(value: int) -> int:
        return max(multiple, int(round(value * scale / multiple)) * multiple)

    return side(width), side(height)


def _output_image(array: np.ndarray, size: tuple[int, int], keep: np.ndarray | None) -> Image.Image:
    """A method's map as an RGB image at ``size``, zero where ``keep`` (bool at ``size``) is False."""
    array = np.asarray(array)
    if array.dtype != np.uint8:
        array = np.nan_to_num(array.astype(np.float32)).clip(0, 255).astype(np.uint8)
    if array.ndim == 2:
        array = np.repeat(array[:, :, None], 3, axis=2)
    image = Image.fromarray(np.ascontiguousarray(array[:, :, :3]))
    if image.size != size:
        image = image.resize(size, Image.BILINEAR)
    if keep is not None:
        masked = np.asarray(image).copy()
        masked[~keep] = 0
        image = Image.fromarray(masked)
    return image


# ------------------------------------------------------------------------------------------------ checks


def _weightless_hint(provider: ControlProvider, exclude: str | None = None) -> str:
    def described(name: str, spec: MethodSpec) -> str:
        lacking = spec.missing() if spec.missing is not None else None
        return f"{name} ({lacking})" if lacking else name

    weightless = [described(n, m) for n, m in provider.methods.items() if not m.needs_weights and n != exclude]
    return f"{provider.kind} methods that need no checkpoint: {', '.join(weightless)}." if weightless else ""


def _check_size(size: Any) -> tuple[int, int]:
    try:
        width, height = size
        ok = all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v > 0 for v in (width, height))
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise SettingsError("size", size, "a (width, height) pair of positive integers")
    return int(width), int(height)


def _check_detect_resolution(value: Any) -> None:
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or not (
            MIN_DETECT_RESOLUTION <= value <= MAX_DETECT_RESOLUTION):
        raise SettingsError("detect_resolution", value,
                            f"an integer from {MIN_DETECT_RESOLUTION} to {MAX_DETECT_RESOLUTION} (long side in pixels)")


def _check_mask(mask: Any, image_size: tuple[int, int]) -> np.ndarray | None:
    if mask is None:
        return None
    mask = np.asarray(mask)
    if mask.ndim != 2 or mask.size == 0:
        raise SettingsError("mask", f"array of shape {mask.shape}", "a 2-D (H, W) array, True = subject")
    # Any resolution is accepted as long as the mask covers the same picture (same aspect ratio).
    image_aspect = image_size[0] / image_size[1]
    mask_aspect = mask.shape[1] / mask.shape[0]
    if abs(mask_aspect / image_aspect - 1.0) > 0.02:
        raise SettingsError("mask", f"array of shape {mask.shape}",
                            f"a mask with the image's aspect ratio (image is {image_size[0]}x{image_size[1]})",
                            hint="Use the subject mask computed for this same image.")
    return mask.astype(bool)


def _merge_params(kind: str, spec: MethodSpec, params: Mapping[str, Any]) -> dict[str, Any]:
    unknown = sorted(set(params) - set(spec.defaults))
    if unknown:
        allowed = ", ".join(spec.defaults) or "none"
        raise SettingsError(f"{kind}.{spec.name} parameter", unknown[0], f"one of: {allowed}")
    values = {**spec.defaults, **params}
    for name, default in spec.defaults.items():
        # Converted to the default's plain Python type so the values are JSON-safe in run records.
        values[name] = _checked(f"{kind}.{spec.name}.{name}", values[name], default)
    if spec.check is not None:
        spec.check(values)
    return values


def _checked(name: str, value: Any, default: Any) -> Any:
    if isinstance(default, bool):
        if isinstance(value, (bool, np.bool_)):
            return bool(value)
        expected = "true or false"
    elif isinstance(default, int):
        if isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_)):
            return int(value)
        expected = "an integer"
    elif isinstance(default, float):
        if isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_)):
            return float(value)
        expected = "a number"
    elif isinstance(default, str):
        if isinstance(value, str):
            return value
        expected = "a string"
    else:
        return value
    raise SettingsError(name, value, expected)
