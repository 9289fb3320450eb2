"""Settings objects for static runs, validated against one table of specs before any model loads."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Mapping

from .errors import SettingsError
from .spec import Spec

CONTROL_KINDS = ("depth", "openpose", "canny", "lineart_anime")

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


def _control_kinds() -> list[str]:
    return list(CONTROL_KINDS)


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
    Spec("keep_dark_backdrop", bool, "keep dark backdrops dark instead of lifting them"),
    Spec("lighting_hints", bool, "add prompt lighting hints that follow the background kind"),
    Spec("mask_controls", bool, "zero control maps outside the subject"),
    Spec("pose_policy", str, "what to do when no person is found for the pose unit", choices=lambda: ["drop", "keep"]),
]}

UNIT_SPECS: dict[str, Spec] = {s.name: s for s in [
    Spec("kind", str, "control kind", choices=_control_kinds),
    Spec("scale", float, "ControlNet conditioning scale", 0.0, 2.0, step=0.05),
    Spec("start", float, "fraction of the steps at which this ControlNet starts guiding", 0.0, 1.0, step=0.05),
    Spec("end", float, "fraction of the steps at which this ControlNet stops guiding", 0.0, 1.0, step=0.05),
    Spec("method", str, "detector method for this control kind", optional=True),
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

    def validated(self) -> "ControlUnit":
        for spec in UNIT_SPECS.values():
            spec.check(getattr(self, spec.name))
        if self.end <= self.start:
            raise SettingsError(f"controls[{self.kind}].end", self.end,
                                f"a value greater than its start ({self.start:g})")
        if not isinstance(self.params, Mapping):
            raise SettingsError(f"controls[{self.kind}].params", self.params, "a mapping of detector parameters")
        return self

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["params"] = dict(self.params)
        return data


class SettingsMixin:
    """Copying, JSON round trips and unknown-key checks shared by the static and temporal settings."""

    controls: tuple[ControlUnit, ...] | None

    def replace(self, **changes: Any):
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        data = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        data["controls"] = None if self.controls is None else [u.to_dict() for u in self.controls]
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]):
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise SettingsError(unknown[0], data[unknown[0]], "one of the settings " + ", ".join(sorted(known)))
        values = dict(data)
        if values.get("controls") is not None:
            values["controls"] = tuple(control_unit_from(u) for u in values["controls"])
        return cls(**values)


@dataclass(frozen=True)
class StaticSettings(SettingsMixin):
    """Everything that decides a static (still image) run. Defaults are the documented ones."""

    prompt: str = DEFAULT_PROMPT
    negative_prompt: str = DEFAULT_NEGATIVE_PROMPT
    steps: int = 30
    cfg: float = 7.5
    strength: float = 0.70
    scheduler: str = "dpmpp-2m-karras"
    size: int = 512
    seed: int = 0
    controls: tuple[ControlUnit, ...] | None = None  # None: the model set's default units
    colour_method: str = "lab-histogram"
    colour_strength: float = 0.6
    colour_mask: bool = True
    profile: str | None = None
    detect_resolution: int = 512
    safety_checker: bool = False
    transparent_backdrop: str = "auto"
    keep_dark_backdrop: bool = True
    lighting_hints: bool = True
    mask_controls: bool = False
    pose_policy: str = "drop"

    def validated(self) -> "StaticSettings":
        """Check every field; return self so calls chain. Raises SettingsError naming the first bad setting."""
        for spec in SPECS.values():
            spec.check(getattr(self, spec.name))
        from .prompts import validate_prompt

        validate_prompt(self.prompt, "prompt")
        validate_prompt(self.negative_prompt, "negative_prompt")
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


def _check_backdrop(value: str) -> None:
    import re

    if value in ("auto", "white", "black", "grey") or re.fullmatch(r"#[0-9a-fA-F]{6}", value):
        return
    raise SettingsError("transparent_backdrop", value, "auto, white, black, grey or a colour like #1a2b3c")
