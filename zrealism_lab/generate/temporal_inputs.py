"""What a temporal run is given, derived before any diffusion model runs: the input video (a still repeated, or an
input clip's sampled frames), a control map per frame, prompts, and the references colours are anchored to."""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Sequence

import numpy as np
from PIL import Image, ImageOps

from ..adapters.tags import split_lora_tags
from ..engine import Engine
from ..control.given import check_given_units, load_given
from ..errors import IntakeError
from ..progress import ProgressCallback, emit
from ..settings import MAX_CLIP_FRAMES, ControlUnit, TemporalSettings
from ..source.context import SourceContext, check_named_settings, detect_unit, understand_source, unit_method
from ..source.preparation import resize_mask

if TYPE_CHECKING:
    from ..source.video import Clip


@dataclass
class TemporalInputs:
    """What the pipeline is given, derived before any diffusion model runs."""

    mode: Literal["still", "clip"]
    frames: list[Image.Image]  # the input video at generation size (the still repeated, or the clip's frames)
    control_frames: dict[str, list[Image.Image]]  # kind -> one map per frame
    units: tuple[ControlUnit, ...]
    prompt: str
    negative_prompt: str
    references: list[Image.Image]  # what each frame's colours are anchored to (the fixed source)
    masks: list[np.ndarray] | None  # subject mask of each reference
    fps: float
    still: Image.Image | None = None
    context: SourceContext | None = None  # still mode
    clip: dict[str, Any] | None = None  # video.Clip.to_dict() (clip mode)
    still_run: str | None = None  # the static run folder whose still is animated (still mode from a StaticResult)
    control_records: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def size(self) -> tuple[int, int]:
        return self.frames[0].size


def fit_frame(image: Image.Image, size: tuple[int, int], fit: str = "resize") -> Image.Image:
    if image.size == size:
        return image
    if fit == "crop":
        return ImageOps.fit(image, size, Image.LANCZOS)
    return image.resize(size, Image.LANCZOS)


def _units_for(settings: TemporalSettings, default: Sequence[ControlUnit]) -> tuple[ControlUnit, ...]:
    return tuple(settings.controls) if settings.controls is not None else tuple(default)


def given_frames(unit: ControlUnit, engine: Engine, size: tuple[int, int], frames: int
                 ) -> tuple[list[Image.Image], dict[str, Any]]:
    """A unit's given map(s) for every frame (one image repeated, or a folder's maps in name order) and its record
    entry: the file or folder, its sha256, and the detector adherence would use (none made these maps)."""
    given = load_given(unit, size, frames)
    found = sum(1 for image in given.images if image.getbbox())
    return given.images, {"method": unit_method(unit, engine), "found_frames": found, "frames": frames,
                          "from": "the given map" + ("s" if given.record.get("maps") else ""), **given.record}


def inputs_from_static(result: Any, settings: TemporalSettings, engine: Engine) -> TemporalInputs:
    """Still mode from a StaticResult: its final still, its control maps (new kinds are detected on the still) and
    its prompts; colours stay anchored to the static run's fixed source."""
    from ..source.preparation import fit_size
    from ..prompts import join_fragments

    t = time.perf_counter()
    ctx = result.context
    still = result.image.convert("RGB")
    size = fit_size(still.width, still.height, settings.size)
    still = fit_frame(still, size)
    mask = None if ctx.prepared.mask is None else resize_mask(ctx.prepared.mask, size)
    _, units = check_named_settings(settings, engine, _units_for(settings, ctx.units))
    frames = settings.frames
    check_given_units(units, settings, frames)
    notes: list[str] = []
    maps: dict[str, Image.Image] = {}
    given: dict[str, list[Image.Image]] = {}
    records: dict[str, Any] = {}
    for unit in units:
        if unit.image is not None:
            given[unit.kind], records[unit.kind] = given_frames(unit, engine, size, frames)
        elif unit.kind in ctx.control_maps:
            cmap = ctx.control_maps[unit.kind]
            maps[unit.kind] = cmap.image.convert("RGB").resize(size, Image.BILINEAR)
            records[unit.kind] = {"method": cmap.method, "found": cmap.found, "from": "static run"}
        else:
            cmap = detect_unit(unit, still, engine, size=size, detect_resolution=settings.detect_resolution, mask=mask,
                               mask_to_subject=settings.mask_controls)
            notes += cmap.warnings
            maps[unit.kind] = cmap.image
            records[unit.kind] = {"method": cmap.method, "found": cmap.found, "from": "the still"}
    reference = ctx.prepared.image.convert("RGB")
    control_frames = {u.kind: given[u.kind] if u.kind in given else [maps[u.kind]] * frames for u in units}
    return TemporalInputs(
        "still", [still] * frames, control_frames, units,
        join_fragments([ctx.prompt, settings.motion_prompt]), ctx.negative_prompt, [fit_frame(reference, size)] * frames,
        [mask] * frames if mask is not None else None, float(settings.fps or 8), still=still, context=ctx,
        control_records=records, notes=notes, timings={"inputs": time.perf_counter() - t},
        still_run=str(result.run_dir) if result.run_dir is not None else None)


def inputs_from_source(source: Any, settings: TemporalSettings, engine: Engine) -> TemporalInputs:
    """Still mode from an image or path: the prepared source is the still, with its own control maps."""
    from ..prompts import join_fragments

    frames = settings.frames
    ctx = understand_source(source, settings.static_settings(), engine, size=settings.size, map_frames=frames)
    still = ctx.prepared.image.convert("RGB")
    control_frames = {k: [m.image.convert("RGB")] * frames for k, m in ctx.control_maps.items()}
    records = {k: {"method": m.method, "found": m.found, "from": "the source"} for k, m in ctx.control_maps.items()}
    for unit in ctx.units:
        if unit.image is not None:  # the context holds a folder's first map; the clip takes one per frame
            control_frames[unit.kind], records[unit.kind] = given_frames(unit, engine, ctx.prepared.size, frames)
    return TemporalInputs(
        "still", [still] * frames, control_frames,
        ctx.units, join_fragments([ctx.prompt, settings.motion_prompt]), ctx.negative_prompt, [still] * frames,
        [ctx.prepared.mask] * frames, float(settings.fps or 8), still=still, context=ctx,
        control_records=records, notes=list(ctx.warnings), timings=dict(ctx.timings))


@dataclass
class SampledClip:
    """A clip already decoded and sampled by ``sample_clip`` (so that it is not sampled twice)."""

    clip: Clip
    seconds: float  # time spent decoding it


def sample_clip(clip: Any, settings: TemporalSettings) -> Any:
    """Decode (a path) or sample (a ``video.Clip``) the input clip with ``every`` and ``max_frames``; at least two
    frames must remain. Run before any run folder exists, so a bad clip leaves nothing behind."""
    from ..source.video import Clip, read_clip

    limit = settings.max_frames or MAX_CLIP_FRAMES
    if isinstance(clip, Clip):
        decoded = Clip(clip.frames[::settings.every][:limit], clip.fps / settings.every, clip.path, clip.format,
                       clip.source_fps, len(clip.frames), settings.every * clip.every, list(clip.notes))
    else:
        decoded = read_clip(clip, every=settings.every, max_frames=limit)
    if len(decoded.frames) < 2:
        raise IntakeError(f"the clip gives {len(decoded.frames)} frame after sampling every {settings.every}: "
                          "a clip -> clip run needs at least 2; lower 'every' or use a still -> clip run")
    return decoded


def inputs_from_clip(clip: Any, settings: TemporalSettings, engine: Engine,
                     on_step: ProgressCallback | None = None) -> TemporalInputs:
    """Clip mode: sampled, resized input frames, each with its own subject mask and control maps."""
    from ..source.background import analyze_background
    from ..source.preparation import fit_size
    from ..prompts import build_negative_prompt, build_prompt, join_fragments

    timings: dict[str, float] = {}
    t = time.perf_counter()
    decoded = clip.clip if isinstance(clip, SampledClip) else sample_clip(clip, settings)
    timings["intake"] = clip.seconds if isinstance(clip, SampledClip) else time.perf_counter() - t

    profile, units = check_named_settings(settings, engine, _units_for(settings, engine.models.default_controls))
    check_given_units(units, settings, len(decoded.frames))

    t = time.perf_counter()
    first = decoded.frames[0]
    size = fit_size(first.width, first.height, settings.size)
    frames = [fit_frame(f.convert("RGB"), size, settings.clip_fit) for f in decoded.frames]
    masks = [analyze_background(f).mask for f in frames]
    timings["prepare"] = time.perf_counter() - t

    t = time.perf_counter()
    notes = list(decoded.notes)
    maps: dict[str, list[Image.Image]] = {}
    records: dict[str, Any] = {}
    kept = []
    start = time.perf_counter()
    total = len(units) * len(frames)
    for u_index, unit in enumerate(units):
        if unit.image is not None:  # the user's maps: no detector runs, none is dropped
            maps[unit.kind], records[unit.kind] = given_frames(unit, engine, size, len(frames))
            kept.append(unit)
            emit(on_step, "controls", (u_index + 1) * len(frames), total, start)
            continue
        detected = []
        for f_index, (frame, mask) in enumerate(zip(frames, masks)):
            detected.append(detect_unit(unit, frame, engine, size=size, detect_resolution=settings.detect_resolution,
                                        mask=mask, mask_to_subject=settings.mask_controls))
            emit(on_step, "controls", u_index * len(frames) + f_index + 1, total, start)
        found = sum(1 for c in detected if c.found)
        if unit.kind == "openpose" and found == 0 and settings.pose_policy == "drop":
            notes.append("openpose unit dropped: no person was found in any frame (pose_policy='drop').")
            continue
        if found < len(detected):
            notes.append(f"the {unit.kind} map is empty in {len(detected) - found} of {len(detected)} frames.")
        maps[unit.kind] = [c.image.convert("RGB") for c in detected]
        records[unit.kind] = {"method": detected[0].method, "found_frames": found, "frames": len(detected),
                              "from": "each input frame"}
        kept.append(unit)
    timings["controls"] = time.perf_counter() - t
    prompt = join_fragments([build_prompt(split_lora_tags(settings.prompt)[0], [], profile), settings.motion_prompt])
    negative = build_negative_prompt(settings.negative_prompt, profile)
    fps = float(settings.fps) if settings.fps else min(60.0, max(1.0, decoded.fps))
    return TemporalInputs("clip", frames, maps, tuple(kept), prompt, negative, frames, masks, fps,
                          clip=decoded.to_dict(), control_records=records, notes=notes, timings=timings)

