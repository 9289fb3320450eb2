"""Understanding the source before any diffusion model runs: intake, background analysis, preparation, prompts and
control maps. Static runs, temporal runs, the lab and the notebooks all start here.

It reads the model set (default units, detector methods, annotator folder) and never loads a model: an ``Engine`` may
be passed wherever a ``ModelSet`` is asked for, and only its ``models`` are read."""
from __future__ import annotations

import dataclasses
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from ..settings import ControlUnit, StaticSettings

if TYPE_CHECKING:
    import numpy as np
    from PIL import Image

    from ..control import ControlMap
    from ..models.modelset import ModelSet
    from ..profiles import Profile
    from .background import BackgroundAnalysis
    from .intake import SourceImage
    from .preparation import Prepared


@dataclass
class SourceContext:
    """Everything derived from the source before any model runs; shared by static and temporal runs."""

    source: SourceImage
    analysis: BackgroundAnalysis
    prepared: Prepared
    control_maps: dict[str, ControlMap]
    units: tuple[ControlUnit, ...]
    prompt: str
    negative_prompt: str
    warnings: list[str]
    timings: dict[str, float]


def modelset_of(models: Any) -> ModelSet:
    """The model set itself, or an engine's."""
    return getattr(models, "models", models)


def annotator_dir(models: Any) -> str | None:
    """The folder of detector checkpoints: the environment's choice, else the model set's, when it exists."""
    value = os.environ.get("ZREALISM_ANNOTATOR_DIR") or modelset_of(models).annotators
    return value if value and Path(value).expanduser().is_dir() else None


def profile_for(settings: Any) -> Profile | None:
    from ..profiles import get_profile

    return get_profile(settings.profile) if settings.profile else None


def resolve_units(settings: Any, models: Any, profile: Profile | None = None) -> tuple[ControlUnit, ...]:
    """The run's control units: the settings' own, else the model set's defaults scaled by the profile."""
    if settings.controls is not None:
        return tuple(settings.controls)
    units = modelset_of(models).default_controls
    if profile is not None and getattr(profile, "control_scales", None):
        units = tuple(dataclasses.replace(u, scale=profile.control_scales.get(u.kind, u.scale)) for u in units)
    return units


def check_named_settings(settings: Any, models: Any, units: Sequence[ControlUnit] | None = None
                         ) -> tuple[Profile | None, tuple[ControlUnit, ...]]:
    """The settings that name things (a profile, the control kinds of this model set), checked before a run folder
    is created: a typo must not leave a failed run behind. Returns the profile and the units."""
    profile = profile_for(settings)
    units = tuple(units) if units is not None else resolve_units(settings, models, profile)
    modelset = modelset_of(models)
    for unit in units:
        modelset.controlnet(unit.kind)  # unknown kind for this model set: clear error before any work
    return profile, units


def detect_unit(unit: ControlUnit, image: Image.Image, models: Any, *, size: tuple[int, int],
                detect_resolution: int, mask: np.ndarray | None = None, mask_to_subject: bool = False) -> ControlMap:
    """One control unit's map of an image, with the unit's method (or the model set's choice) and parameters."""
    from ..control import CONTROL_PROVIDERS

    modelset = modelset_of(models)
    return CONTROL_PROVIDERS.get(unit.kind).detect(
        image, size=size, detect_resolution=detect_resolution, mask=mask,
        mask_to_subject=mask_to_subject and mask is not None,
        method=modelset.control_method(unit.kind, unit.method), annotator_dir=annotator_dir(modelset),
        **dict(unit.params))


def unit_method(unit: ControlUnit, models: Any) -> str:
    """The detector method a unit uses (its own, the model set's or the provider's default), by name."""
    from ..control import CONTROL_PROVIDERS

    return CONTROL_PROVIDERS.get(unit.kind).method(modelset_of(models).control_method(unit.kind, unit.method)).name


def given_unit_map(unit: ControlUnit, models: Any, size: tuple[int, int]) -> ControlMap:
    """The map of a unit given its own (``unit.image``): no detector runs. Its method is the detector that measures
    the output's adherence to it; the map's params record the file and its sha256."""
    from ..control.given import given_control_map

    return given_control_map(unit, size, unit_method(unit, models))


def understand_source(source: Any, settings: StaticSettings, models: Any, *, size: int | None = None,
                      max_pixels: int | None = None, map_frames: int | None = None) -> SourceContext:
    """Intake, background analysis, preparation, prompts and control maps: no diffusion model is loaded here.
    Units given their own map (``image``) use it instead of a detector; ``map_frames`` (clips) is the frame count
    a folder of maps must match (the context then holds the first map)."""
    from ..control import resolve_empty_pose
    from ..control.given import check_given_units
    from ..adapters.tags import split_lora_tags
    from ..prompts import build_negative_prompt, build_prompt
    from .background import analyze_background, with_kind
    from .intake import load_image
    from .preparation import PrepareSettings, prepare

    timings: dict[str, float] = {}
    notes: list[str] = []
    t = time.perf_counter()
    loaded = load_image(source, max_pixels=max_pixels)
    timings["intake"] = time.perf_counter() - t

    profile, units = check_named_settings(settings, models)
    check_given_units(units, settings, map_frames)  # before any work: a wrong map must not cost the source stage

    t = time.perf_counter()
    analysis = with_kind(analyze_background(loaded.image), getattr(settings, "background_kind", "auto"), loaded.image)
    notes += list(analysis.warnings)
    timings["background"] = time.perf_counter() - t

    t = time.perf_counter()
    prep_settings = PrepareSettings(transparent_backdrop=settings.transparent_backdrop,
                                    keep_dark_backdrop=settings.keep_dark_backdrop,
                                    lighting_hints=settings.lighting_hints, long_side=size or settings.size,
                                    mask_controls=settings.mask_controls)
    prepared = prepare(loaded, analysis, prep_settings)
    # <lora:NAME:W> tags select LoRAs (adapters.plan) and are not text the model sees.
    prompt = build_prompt(split_lora_tags(settings.prompt)[0], list(prepared.prompt_hints), profile)
    negative = build_negative_prompt(settings.negative_prompt, profile)
    timings["prepare"] = time.perf_counter() - t

    t = time.perf_counter()
    maps: dict[str, Any] = {}
    kept_units = []
    for unit in units:
        if unit.image is not None:  # the user's own map, as given: not masked, never dropped as an empty pose
            cmap = given_unit_map(dataclasses.replace(unit, image=_first_map(unit)), models, prepared.size)
            notes += list(cmap.warnings)
            maps[unit.kind] = cmap
            kept_units.append(unit)
            continue
        cmap = detect_unit(unit, prepared.image, models, size=prepared.size,
                           detect_resolution=settings.detect_resolution, mask=prepared.mask,
                           mask_to_subject=settings.mask_controls)
        notes += list(cmap.warnings)
        if unit.kind == "openpose":
            cmap = resolve_empty_pose(cmap, settings.pose_policy)
            if cmap is None:
                notes.append("openpose unit dropped: no person was found in the source (pose_policy='drop').")
                continue
        maps[unit.kind] = cmap
        kept_units.append(unit)
    timings["controls"] = time.perf_counter() - t
    return SourceContext(loaded, analysis, prepared, maps, tuple(kept_units), prompt, negative, notes, timings)


def _first_map(unit: ControlUnit) -> str:
    """The unit's map for the source stage: the file, or a folder's first map (a clip's first frame)."""
    from ..control.given import map_files

    return str(map_files(unit)[0])
