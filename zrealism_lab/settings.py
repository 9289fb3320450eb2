"""Settings objects for static runs, validated against one table of specs before any model loads."""
from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from typing import Any, Mapping

from .errors import SettingsError
from .spec import Spec

CONTROL_KINDS = ("depth", "openpose", "canny", "lineart_anime")
CONTROLS_SYNTAX = ("KIND, KIND=SCALE or KIND=SCALE:START:END with numbers; a detector method may follow the kind "
                   "(KIND:METHOD=SCALE), and a map image of your own may end the unit (KIND=SCALE@PATH or KIND@PATH)")

DEFAULT_PROMPT = ("raw photo, photorealistic portrait of a real person, live action film still, natural skin texture, "
                  "detailed eyes, realistic hair, cinematic lighting")
DEFAULT_NEGATIVE_PROMPT = ("anime, cartoon, drawing, illustration, painting, 3d render, cgi, doll, plastic skin, "
                           "deformed, extra limbs, blurry, lowres, watermark, text")


def _scheduler_names() -> list[str]:
    from .schedulers import SCHEDULERS

    return SCHEDULERS.names()


def _colour_methods() -> list[str]:
    from .colour import COLOUR_METHODS

    return COLOUR_METHODS.names()


def _speeds() -> tuple[str, ...]:
    from .speed import SPEEDS

    return SPEEDS


def _control_kinds() -> list[str]:
    return list(CONTROL_KINDS)


# "auto" (the analysis decides) and source.background.KINDS, spelled out here: importing the analysis would make a
# cycle through control/ (tests/test_lab_source.py keeps the two lists equal).
BACKGROUND_KINDS = ("auto", "transparent", "dark", "light", "flat", "scenic")


def _background_kinds() -> list[str]:
    return list(BACKGROUND_KINDS)


SPECS: dict[str, Spec] = {s.name: s for s in [
    Spec("prompt", str, "what the photo should show"),
    Spec("negative_prompt", str, "what to steer away from"),
    Spec("steps", int, "denoising steps before strength is applied (img2img runs steps x strength of them)", 1, 150, step=1),
    Spec("cfg", float, "classifier-free guidance scale", 0.0, 30.0, step=0.5),
    Spec("strength", float, "img2img denoising strength: 0 keeps the source, 1 ignores it", 0.01, 1.0, step=0.01),
    Spec("scheduler", str, "sampler", choices=_scheduler_names),
    Spec("size", int, "output long side in pixels (both sides are made multiples of 8)", 64, 2048, step=8),
    Spec("seed", int, "random seed (drawn on a CPU generator, so it means the same picture on any machine)", 0, 2**32 - 1),
    Spec("colour_method", str, "colour anchoring method against the source", choices=_colour_methods),
    Spec("colour_strength", float, "colour anchoring strength", 0.0, 1.0, step=0.05),
    Spec("colour_mask", bool, "restrict colour anchoring statistics to the subject"),
    Spec("profile", str, "character profile name or alias", optional=True),
    Spec("detect_resolution", int, "long side at which control maps are detected", 64, 2048, step=8),
    Spec("safety_checker", bool, "run the safety checker (needs its weights)"),
    Spec("transparent_backdrop", str, "backdrop for transparent sources: auto, white, black, grey or #rrggbb"),
    Spec("background_kind", str, "the source's background kind: auto (the analysis decides) or one of the kinds, "
                                 "when the analysis got it wrong", choices=_background_kinds),
    Spec("keep_dark_backdrop", bool, "keep dark backdrops dark instead of lifting them"),
    Spec("lighting_hints", bool, "add prompt lighting hints that follow the background kind"),
    Spec("mask_controls", bool, "zero control maps outside the subject"),
    Spec("pose_policy", str, "what to do when no person is found for the pose unit", choices=lambda: ["drop", "keep"]),
    # Adapters (the `loras` and `embeddings` lists are checked by adapters.values; their files before any model loads)
    Spec("lora_fuse", bool, "fuse the LoRAs into the base weights for the run (faster steps, slower switching)"),
    Spec("ip_adapter", str, "IP-Adapter: ip-adapter_sd15, ip-adapter-plus_sd15, ip-adapter-plus-face_sd15 or a "
                            ".safetensors path (none: off)", optional=True),
    Spec("ip_adapter_scale", float, "IP-Adapter: how strongly the reference image steers (0: not at all)", 0.0, 2.0,
         step=0.05),
    Spec("ip_adapter_image", str, "IP-Adapter: reference image path (none: the prepared source)", optional=True),
    Spec("ip_adapter_start", float, "IP-Adapter: fraction of the steps at which it starts acting", 0.0, 1.0,
         step=0.05),
    Spec("ip_adapter_end", float, "IP-Adapter: fraction of the steps at which it stops acting", 0.0, 1.0, step=0.05),
    Spec("speed", str, "quality (the defaults), fast (few-step LoRA + bf16 autocast), or one lever alone: few-step "
                       "(LCM-LoRA, 4 LCM steps, guidance 1) or bf16 (CPU autocast where native)",
         choices=lambda: list(_speeds())),
]}
ADAPTER_FIELDS = ("loras", "lora_fuse", "embeddings", "ip_adapter", "ip_adapter_scale", "ip_adapter_image",
                  "ip_adapter_start", "ip_adapter_end")
# The weight of one LoRA (sliders, sweep axes `lora:NAME`): the range adapters.values checks.
LORA_WEIGHT_SPEC = Spec("lora_weight", float, "LoRA weight (0: off, 1: as trained, negative: the opposite)", -4.0,
                        4.0, step=0.05)

HIRES_UPSCALERS = ("lanczos", "latent")
HIRES_CONTROL_MAPS = ("detect", "resize")
MAX_HIRES_SIDE = 2048
FACE_WORDS = "detailed face, natural skin texture, sharp detailed eyes, realistic facial features"

# Refinement passes of still runs: a hires fix (second img2img pass over the upscaled first result) and a face-detail
# pass (each face cropped, regenerated and pasted back through a feathered mask). Off unless asked for.
REFINE_SPECS: dict[str, Spec] = {s.name: s for s in [
    Spec("hires", float, "hires fix: upscale factor of a second img2img pass (none: off)", 1.0, 4.0, optional=True,
         step=0.05),
    Spec("hires_size", int, "hires fix: target long side instead of a factor (none: use hires)", 64, MAX_HIRES_SIDE,
         optional=True, multiple_of=8, step=8),
    Spec("hires_strength", float, "hires fix: denoising strength of the second pass (0: upscale only)", 0.0, 1.0,
         step=0.01),
    Spec("hires_steps", int, "hires fix: denoising steps before strength (none: the run's steps)", 1, 150,
         optional=True, step=1),
    Spec("hires_upscaler", str, "hires fix: 'lanczos' upscales the first image, 'latent' its latents",
         choices=lambda: list(HIRES_UPSCALERS)),
    Spec("hires_control_maps", str, "hires fix: 'detect' runs the detectors again at the new size, 'resize' "
                                    "resizes the first maps", choices=lambda: list(HIRES_CONTROL_MAPS)),
    Spec("face_detail", bool, "face detail: regenerate each face crop and paste it back"),
    Spec("face_prompt", str, "face detail: prompt of the face crops (none: the run's prompt plus face words)",
         optional=True),
    Spec("face_strength", float, "face detail: denoising strength of the face crops", 0.01, 1.0, step=0.01),
    Spec("face_steps", int, "face detail: denoising steps before strength (none: the run's steps)", 1, 150,
         optional=True, step=1),
    Spec("face_size", int, "face detail: side at which each square face crop is regenerated", 64, 1024,
         multiple_of=8, step=8),
    Spec("face_padding", float, "face detail: context around the face box, as a fraction of its long side", 0.0,
         2.0, step=0.05),
    Spec("face_feather", float, "face detail: width of the blend at the mask edge, as a fraction of its radius", 0.02,
         0.5, step=0.01),
    Spec("face_max", int, "face detail: at most this many faces, most confident first", 1, 16, step=1),
    Spec("face_min_size", int, "face detail: faces whose box is smaller than this (pixels, short side) are left",
         0, MAX_HIRES_SIDE, step=1),
    Spec("face_confidence", float, "face detail: detector confidence a face needs", 0.0, 1.0, step=0.05),
]}
SPECS.update(REFINE_SPECS)
# The face-detail settings clips take too (each face its own smoothed track, up to face_max).
CLIP_FACE_FIELDS = ("face_detail", "face_boxes", "face_prompt", "face_strength", "face_steps", "face_size",
                    "face_padding", "face_feather", "face_max", "face_min_size", "face_confidence")
# The hires-fix settings clips take (a factor only; the upscaler is Lanczos on the decoded frames).
CLIP_HIRES_FIELDS = ("hires", "hires_strength", "hires_steps", "hires_control_maps")
# Every frame of a clip goes through the second pass at once: its long side is capped lower than a still's.
MAX_CLIP_HIRES_SIDE = 1024


def _tuple_boxes(settings: Any) -> None:
    """JSON gives lists; settings stay hashable and comparable with tuples."""
    boxes = settings.face_boxes
    if isinstance(boxes, (list, tuple)):
        object.__setattr__(settings, "face_boxes", tuple(tuple(b) if isinstance(b, (list, tuple)) else b
                                                         for b in boxes))

UNIT_SPECS: dict[str, Spec] = {s.name: s for s in [
    Spec("kind", str, "control kind", choices=_control_kinds),
    Spec("scale", float, "ControlNet conditioning scale", 0.0, 2.0, step=0.05),
    Spec("start", float, "fraction of the steps at which this ControlNet starts guiding", 0.0, 1.0, step=0.05),
    Spec("end", float, "fraction of the steps at which this ControlNet stops guiding", 0.0, 1.0, step=0.05),
    Spec("method", str, "detector method for this control kind", optional=True),
    Spec("image", str, "a map of your own (clips: or a folder, one per frame) used instead of a detector's", optional=True),
]}


@dataclass(frozen=True)
class ControlUnit:
    """One ControlNet of the MultiControlNet: which map, how strongly and during which part of the schedule."""

    kind: str
    scale: float = 1.0
    start: float = 0.0
    end: float = 1.0
    method: str | None = None  # None: the provider's default method for this model set
    params: Mapping[str, Any] = field(default_factory=dict)  # detector parameters, e.g. canny low/high
    image: str | None = None  # a map of the user's own (a folder of one per frame for clips): no detector runs

    def __post_init__(self) -> None:  # a Path is kept as text: records and equality stay plain
        if isinstance(self.image, os.PathLike):
            object.__setattr__(self, "image", os.fspath(self.image))

    def validated(self) -> "ControlUnit":
        for spec in UNIT_SPECS.values():
            spec.check(getattr(self, spec.name))
        if self.end <= self.start:
            raise SettingsError(f"controls[{self.kind}].end", self.end,
                                f"a value greater than its start ({self.start:g})")
        if not isinstance(self.params, Mapping):
            raise SettingsError(f"controls[{self.kind}].params", self.params, "a mapping of detector parameters")
        if self.image is not None:
            from .control.given import check_given_image  # the file's header only: cheap, and before any model
            check_given_image(self)
        return self

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["params"] = dict(self.params)
        return {k: v for k, v in data.items() if k != "image" or v is not None}  # old records and job ids stay


class SettingsMixin:
    """Copying, JSON round trips and unknown-key checks shared by the static and temporal settings."""

    controls: tuple[ControlUnit, ...] | None

    @classmethod
    def coerce(cls, value: Any):
        """Settings from what a caller passed: None (the defaults), these settings, or a mapping of them."""
        if value is None:
            return cls()
        if isinstance(value, cls):
            return value
        if isinstance(value, Mapping):
            return cls.from_dict(value)
        raise SettingsError("settings", type(value).__name__, f"a {cls.__name__}, a dict of its fields, or None",
                            f"Build them with {cls.__name__}(steps=20, ...) or pass a dict with the same names.")

    def replace(self, **changes: Any):
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        data = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        data["controls"] = None if self.controls is None else [u.to_dict() for u in self.controls]
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]):
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted((key for key in data if key not in known), key=str)
        if unknown:
            raise SettingsError(str(unknown[0]), data[unknown[0]], "one of the settings " + ", ".join(sorted(known)))
        values = dict(data)
        if isinstance(values.get("controls"), str):  # "depth,canny" as on the command line
            values["controls"] = parse_controls(values["controls"])
        if values.get("controls") is not None:
            values["controls"] = tuple(control_unit_from(u) for u in values["controls"])
        return cls(**values)


@dataclass(frozen=True)
class SourceSettings(SettingsMixin):
    """The settings static and temporal runs share: the source stage (intake, preparation, prompts, control maps),
    the denoising basics and colour anchoring. Each run's settings extend this table instead of copying it."""

    prompt: str = DEFAULT_PROMPT
    negative_prompt: str = DEFAULT_NEGATIVE_PROMPT
    steps: int = 30
    cfg: float = 7.5
    strength: float = 0.70
    size: int = 512
    seed: int = 0
    controls: tuple[ControlUnit, ...] | None = None  # None: the model set's default units
    colour_method: str = "lab-histogram"
    colour_strength: float = 0.6
    colour_mask: bool = True
    profile: str | None = None
    detect_resolution: int = 512
    transparent_backdrop: str = "auto"
    background_kind: str = "auto"  # auto: the background analysis decides; else that kind, as the user says
    keep_dark_backdrop: bool = True
    lighting_hints: bool = True
    mask_controls: bool = False
    pose_policy: str = "drop"
    # The face-detail pass, for stills and clips alike (a clip tracks one face, so a clip takes one box).
    face_detail: bool = False
    face_boxes: tuple[tuple[int, int, int, int], ...] | None = None  # output pixels; None: the face detector's
    face_prompt: str | None = None
    face_strength: float = 0.4
    face_steps: int | None = None
    face_size: int = 512
    face_padding: float = 0.4
    face_feather: float = 0.3
    face_min_size: int = 16
    face_confidence: float = 0.5
    # Adapters: LoRAs (name, weight) also come from <lora:NAME:W> tags in the prompt; embeddings by name or path.
    loras: tuple[tuple[str, float], ...] = ()
    lora_fuse: bool = False
    embeddings: tuple[str, ...] = ()
    ip_adapter: str | None = None
    ip_adapter_scale: float = 0.6
    ip_adapter_image: str | None = None
    ip_adapter_start: float = 0.0
    ip_adapter_end: float = 1.0
    speed: str = "quality"  # see speed.py: what fast / few-step / bf16 change

    def __post_init__(self) -> None:
        from .adapters.values import normalize_loras, normalize_names

        _tuple_boxes(self)
        object.__setattr__(self, "loras", normalize_loras(self.loras))
        object.__setattr__(self, "embeddings", normalize_names(self.embeddings))

    def _check_adapters(self) -> None:
        """Shapes and syntax of the adapter settings (the files are found and read later, still before any model)."""
        from .adapters.tags import split_lora_tags
        from .adapters.values import check_loras, check_names

        check_loras(self.loras)
        check_names(self.embeddings, "embeddings")
        _, tagged = split_lora_tags(self.prompt)
        both = sorted({name for name, _ in tagged} & {name for name, _ in self.loras})
        if both:
            raise SettingsError("loras", both[0], "a LoRA named either in the prompt or in loras, not both",
                                "Give it one weight: remove its <lora:...> tag or its loras entry.")
        if "<lora:" in self.negative_prompt.lower():
            raise SettingsError("negative_prompt", self.negative_prompt[:60], "text without <lora:...> tags",
                                "LoRA tags select LoRAs in the prompt only (as in A1111).")
        if self.ip_adapter_end <= self.ip_adapter_start:
            raise SettingsError("ip_adapter_end", self.ip_adapter_end,
                                f"a value greater than ip_adapter_start ({self.ip_adapter_start:g})")


SOURCE_FIELDS = tuple(f.name for f in dataclasses.fields(SourceSettings))


@dataclass(frozen=True)
class StaticSettings(SourceSettings):
    """Everything that decides a static (still image) run. Defaults are the documented ones."""

    scheduler: str = "dpmpp-2m-karras"
    safety_checker: bool = False
    hires: float | None = None
    hires_size: int | None = None
    hires_strength: float = 0.35
    hires_steps: int | None = None
    hires_upscaler: str = "lanczos"
    hires_control_maps: str = "detect"
    face_max: int = 4

    @property
    def hires_on(self) -> bool:
        return self.hires is not None or self.hires_size is not None

    def validated(self) -> "StaticSettings":
        """Check every field; return self so calls chain. Raises SettingsError naming the first bad setting."""
        for spec in SPECS.values():
            spec.check(getattr(self, spec.name))
        from .prompts import validate_prompt

        validate_prompt(self.prompt, "prompt")
        validate_prompt(self.negative_prompt, "negative_prompt")
        if self.face_prompt is not None:
            validate_prompt(self.face_prompt, "face_prompt")
        self._check_refinements()
        self._check_adapters()
        if self.controls is not None:
            if not isinstance(self.controls, (tuple, list)):
                raise SettingsError("controls", self.controls, "a list of ControlUnit")
            for unit in self.controls:
                if not isinstance(unit, ControlUnit):
                    raise SettingsError("controls", unit, "ControlUnit objects (control_unit_from() converts "
                                                          "names and dicts)")
                unit.validated()
            kinds = [unit.kind for unit in self.controls]
            if len(set(kinds)) != len(kinds):
                raise SettingsError("controls", kinds, "each control kind at most once")
        _check_backdrop(self.transparent_backdrop)
        if int(self.steps * self.strength) < 1:  # img2img runs steps x strength steps; zero would crash diffusers
            raise SettingsError("strength", self.strength, f"at least {1 / self.steps:.3g} with steps={self.steps}",
                                "img2img runs steps x strength denoising steps: raise steps or strength.")
        return self

    def _check_refinements(self) -> None:
        """The hires and face-detail settings that depend on each other, checked before any model loads."""
        if self.hires is not None and self.hires_size is not None:
            raise SettingsError("hires_size", self.hires_size, "none when hires (a factor) is set",
                                "Give the hires pass a factor (hires) or a target long side (hires_size), not both.")
        if self.hires is not None and round(self.size * self.hires) > MAX_HIRES_SIDE:
            raise SettingsError("hires", self.hires, f"at most {MAX_HIRES_SIDE / self.size:.3g} with size={self.size}",
                                f"The hires pass makes outputs of at most {MAX_HIRES_SIDE} px on the long side.")
        if self.hires_size is not None and self.hires_size < self.size:
            raise SettingsError("hires_size", self.hires_size, f"at least size ({self.size})")
        hires_steps = self.hires_steps or self.steps  # steps x strength cross-checks only for a pass that runs
        if self.hires_on and 0 < self.hires_strength and int(hires_steps * self.hires_strength) < 1:
            raise SettingsError("hires_strength", self.hires_strength,
                                f"0 (upscale only) or at least {1 / hires_steps:.3g} with {hires_steps} steps")
        face_steps = self.face_steps or self.steps
        if self.face_detail and int(face_steps * self.face_strength) < 1:
            raise SettingsError("face_strength", self.face_strength, f"at least {1 / face_steps:.3g} with "
                                f"{face_steps} steps", "img2img runs steps x strength denoising steps.")
        if self.face_boxes is not None:
            if not isinstance(self.face_boxes, tuple):
                raise SettingsError("face_boxes", self.face_boxes, "a list of boxes [x0, y0, x1, y1] in output pixels")
            for box in self.face_boxes:
                check_box(box)


def check_box(box: Any, size: tuple[int, int] | None = None) -> tuple[int, int, int, int]:
    """A face box (x0, y0, x1, y1) of whole pixels with x0 < x1 and y0 < y1, inside an image of ``size`` if given."""
    allowed = "a box [x0, y0, x1, y1] of whole pixels with x0 < x1 and y0 < y1"
    if (not isinstance(box, (tuple, list)) or len(box) != 4
            or not all(isinstance(v, int) and not isinstance(v, bool) for v in box)):
        raise SettingsError("face_boxes", box, allowed)
    x0, y0, x1, y1 = box
    if x0 < 0 or y0 < 0 or x1 <= x0 or y1 <= y0:
        raise SettingsError("face_boxes", box, allowed)
    if size is not None and (x1 > size[0] or y1 > size[1]):
        raise SettingsError("face_boxes", box, f"a box inside the {size[0]}x{size[1]} output",
                            "Face boxes are in pixels of the final output (after the hires pass).")
    return x0, y0, x1, y1


def parse_box(text: str) -> tuple[int, int, int, int]:
    """'X0,Y0,X1,Y1' as on the command line."""
    try:
        values = tuple(int(v) for v in text.split(","))
    except ValueError:
        raise SettingsError("face_boxes", text, "X0,Y0,X1,Y1 in whole pixels") from None
    return check_box(values)


def control_unit_from(value: Any) -> ControlUnit:
    """Accept a ControlUnit, a dict, or a bare kind name."""
    if isinstance(value, ControlUnit):
        return value
    if isinstance(value, str):
        return ControlUnit(kind=value)
    if isinstance(value, Mapping):
        allowed = {f.name for f in dataclasses.fields(ControlUnit)}
        unknown = sorted(set(value) - allowed)
        if unknown:
            raise SettingsError(f"controls.{unknown[0]}", value[unknown[0]], "fields " + ", ".join(sorted(allowed)))
        return ControlUnit(**value)
    raise SettingsError("controls", value, "a ControlUnit, a mapping or a control kind name")


def parse_controls(text: str) -> list[ControlUnit]:
    """Units as on the command line and in sweep specs: 'depth,canny', 'depth=0.8,openpose=0.6:0.0:0.8' (scale[:start:
    end]), 'openpose:mediapipe=0.7' (a detector method after the kind), and a map of your own after '@' instead of a
    detector's: 'openpose=0.8@skeleton.png', 'depth@map.png', 'openpose=0.8:0:0.8@map.png' (the path runs to the next
    comma; clips also take a folder of one map per frame)."""
    units: list[ControlUnit] = []
    if text.strip().lower() in ("", "none"):
        return units
    for item in text.split(","):
        spec, at, image = item.partition("@")
        head, _, rest = spec.strip().partition("=")
        kind, _, method = head.partition(":")
        values: dict[str, Any] = {"kind": kind.strip(), **({"image": image.strip()} if at else {})}
        if not values["kind"] or (at and not image.strip()):
            raise SettingsError("controls", item, CONTROLS_SYNTAX)
        if method.strip():
            values["method"] = method.strip()
        if rest or spec.strip().endswith("="):
            parts = rest.split(":")
            try:
                numbers = [float(p) for p in parts]
            except ValueError:
                raise SettingsError("controls", item, CONTROLS_SYNTAX) from None
            if len(numbers) not in (1, 3):
                raise SettingsError("controls", item, CONTROLS_SYNTAX)
            values["scale"] = numbers[0]
            if len(numbers) == 3:
                values["start"], values["end"] = numbers[1], numbers[2]
        units.append(ControlUnit(**values))
    return units


def _check_backdrop(value: str) -> None:
    import re

    if value in ("auto", "white", "black", "grey") or re.fullmatch(r"#[0-9a-fA-F]{6}", value):
        return
    raise SettingsError("transparent_backdrop", value, "auto, white, black, grey or a colour like #1a2b3c")


# ------------------------------------------------------------------------------------------------ temporal runs


def _shared_spec(name: str) -> Spec:
    return SPECS[name]


DEFAULT_MOTION_PROMPT = "subtle natural motion, gentle breathing, blinking, hair moving slightly in the breeze"
# The samplers AnimateDiff is used with in practice (its own inference configs use DDIM).
TEMPORAL_SCHEDULERS = ("ddim", "euler", "euler-a", "dpmpp-2m-karras", "lcm")
CLIP_FITS = ("resize", "crop")


TEMPORAL_SPECS: dict[str, Spec] = {s.name: s for s in [
    _shared_spec("prompt"),
    _shared_spec("negative_prompt"),
    Spec("motion_prompt", str, "how things move; appended to the prompt"),
    Spec("frames", int, "frames of a still -> clip run (clip -> clip runs take theirs from the clip)", 8, 64, step=1),
    Spec("fps", int, "playback rate of the written clip (none: 8 for stills, the input's rate for clips)", 1, 60,
         optional=True, step=1),
    _shared_spec("steps"),
    _shared_spec("cfg"),
    Spec("strength", float, "how far each frame may move from its input frame: 0 keeps it, 1 ignores it",
         0.05, 1.0, step=0.01),
    _shared_spec("seed"),
    Spec("scheduler", str, "sampler (AnimateDiff's linear beta schedule is applied to each)",
         choices=lambda: list(TEMPORAL_SCHEDULERS)),
    Spec("size", int, "output long side in pixels", 64, 1024, multiple_of=8, step=8),
    Spec("context_length", int, "frames the motion module sees at once (FreeNoise window for longer clips)", 8, 32,
         step=1),
    Spec("context_stride", int, "frames between FreeNoise windows", 1, 16, step=1),
    Spec("free_init", bool, "FreeInit: re-noise low frequencies between passes for steadier motion (costs passes)"),
    Spec("free_init_iters", int, "FreeInit passes", 2, 5, step=1),
    _shared_spec("colour_method"),
    _shared_spec("colour_strength"),
    _shared_spec("colour_mask"),
    _shared_spec("profile"),
    _shared_spec("detect_resolution"),
    _shared_spec("transparent_backdrop"),
    _shared_spec("background_kind"),
    _shared_spec("keep_dark_backdrop"),
    _shared_spec("lighting_hints"),
    _shared_spec("mask_controls"),
    _shared_spec("pose_policy"),
    *(SPECS[name] for name in ADAPTER_FIELDS if name in SPECS),
    _shared_spec("speed"),
    Spec("every", int, "clip -> clip: keep every n-th input frame", 1, 100, step=1),
    Spec("max_frames", int, "clip -> clip: at most this many frames (none: up to 64)", 2, 64, optional=True, step=1),
    Spec("clip_fit", str, "clip -> clip: 'resize' keeps the whole frame (sides rounded to multiples of 8), "
                          "'crop' keeps the exact aspect by trimming the edges", choices=lambda: list(CLIP_FITS)),
    Spec("decode_chunk", int, "frames decoded by the VAE at once (none: the hardware plan's)", 1, 64, optional=True,
         step=1),
    *(REFINE_SPECS[name] for name in CLIP_HIRES_FIELDS),
    *(REFINE_SPECS[name] for name in CLIP_FACE_FIELDS if name != "face_boxes"),
    Spec("face_smoothing", int, "face detail: frames over which the face box track is averaged", 1, 15, step=1),
]}
MAX_CLIP_FRAMES = int(TEMPORAL_SPECS["frames"].maximum)


@dataclass(frozen=True)
class TemporalSettings(SourceSettings):
    """Everything that decides a temporal run. Defaults follow AnimateDiff practice (16 frames, DDIM)."""

    steps: int = 25
    strength: float = 0.6
    motion_prompt: str = DEFAULT_MOTION_PROMPT
    frames: int = 16
    fps: int | None = None
    scheduler: str = "ddim"
    context_length: int = 16
    context_stride: int = 4
    free_init: bool = False
    free_init_iters: int = 3
    every: int = 1
    max_frames: int | None = None
    clip_fit: str = "resize"
    decode_chunk: int | None = None
    hires: float | None = None
    hires_strength: float = 0.35
    hires_steps: int | None = None
    hires_control_maps: str = "resize"  # "detect" runs the detectors on every upscaled frame
    face_max: int = 4
    face_smoothing: int = 5

    @property
    def hires_on(self) -> bool:
        return self.hires is not None

    def validated(self) -> "TemporalSettings":
        """Check every field; return self. Raises SettingsError naming the first bad setting, before any model loads."""
        for spec in TEMPORAL_SPECS.values():
            spec.check(getattr(self, spec.name))
        if self.context_stride >= self.context_length:
            raise SettingsError("context_stride", self.context_stride,
                                f"fewer frames than context_length ({self.context_length}) so that windows overlap")
        if self.controls is not None and (not isinstance(self.controls, (tuple, list))
                                          or not all(isinstance(u, ControlUnit) for u in self.controls)):
            raise SettingsError("controls", self.controls, "a list of ControlUnit",
                                "Build units with ControlUnit(kind, scale) or settings.control_unit_from(value).")
        from .prompts import validate_prompt

        for name in ("prompt", "negative_prompt", "motion_prompt"):
            validate_prompt(getattr(self, name), name)
        self.static_settings().validated()  # controls, backdrop and the other shared settings, checked as for stills
        self._check_hires()
        if self.face_detail:
            if self.face_boxes is not None and len(self.face_boxes) > self.face_max:
                raise SettingsError("face_boxes", self.face_boxes, f"at most face_max ({self.face_max}) boxes, one "
                                    "per face (each is tracked through the clip)",
                                    "Raise face_max or give fewer boxes.")
            self.face_settings().validated()
        if self.free_init:
            from .schedulers import denoise_steps

            passes = denoise_steps(self.steps, self.strength, self.free_init_iters)
            if min(passes) < 1:  # a pass of 0 steps would decode FreeInit's re-noised latents: pure noise
                raise SettingsError("steps", self.steps, f"enough steps that each FreeInit pass denoises at least once "
                                    f"(with strength {self.strength:g} and {self.free_init_iters} passes they run "
                                    f"{passes} steps)", "Raise steps or strength, or lower free_init_iters.")
        return self

    def _check_hires(self) -> None:
        if not self.hires_on:
            return
        if round(self.size * self.hires) > MAX_CLIP_HIRES_SIDE:
            raise SettingsError("hires", self.hires, f"at most {MAX_CLIP_HIRES_SIDE / self.size:.3g} with "
                                f"size={self.size}", f"A clip's hires pass makes frames of at most "
                                f"{MAX_CLIP_HIRES_SIDE} px on the long side: lower hires or size.")
        steps = self.hires_steps or self.steps
        if 0 < self.hires_strength and int(steps * self.hires_strength) < 1:
            raise SettingsError("hires_strength", self.hires_strength,
                                f"0 (upscale only) or at least {1 / steps:.3g} with {steps} steps")

    def face_settings(self) -> StaticSettings:
        """The still-image settings each frame's face-detail pass runs with (the clip's seed on every frame)."""
        return self.static_settings().replace(scheduler=self.scheduler,
                                              **{name: getattr(self, name) for name in CLIP_FACE_FIELDS})

    def static_settings(self) -> StaticSettings:
        """The still-image settings that source understanding (intake, preparation, control maps) reads."""
        return StaticSettings(**{name: getattr(self, name) for name in SOURCE_FIELDS})
