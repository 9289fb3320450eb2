"""Temporal runs: a still (or the source) or an input clip -> a short live-action clip with AnimateDiff.

Still -> clip: the still is repeated as the input video of diffusers' AnimateDiff video-to-video ControlNet pipeline,
with the still's control maps on every frame, so every frame stays anchored to that one image while the motion
module and a motion prompt add movement. Clip -> clip: the input clip's frames are the video and each frame gets its
own control maps. Clips longer than the motion module's window run through FreeNoise context windows; the spatial
layers and the ControlNets then work through the frames in window-sized chunks, so memory follows the window, not
the clip length. The pipeline's motion UNet shares its weights with the static engine (see ``sharing``).
"""
from __future__ import annotations

import functools
import math
import os
import time
import warnings
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np
from PIL import Image, ImageOps

from .engine import BASE_PARTS, Engine, get_engine
from .errors import CancelledError, IntakeError, SettingsError
from .progress import CancelToken, ProgressCallback, StepReporter, emit
from .settings import DEFAULT_NEGATIVE_PROMPT, DEFAULT_PROMPT, SPECS, ControlUnit, SettingsMixin, StaticSettings
from .spec import Spec

DEFAULT_MOTION_PROMPT = "subtle natural motion, gentle breathing, blinking, hair moving slightly in the breeze"
# The samplers AnimateDiff is used with in practice (its own inference configs use DDIM).
TEMPORAL_SCHEDULERS = ("ddim", "euler", "euler-a", "dpmpp-2m-karras")
# AnimateDiff's motion modules were trained on SD's betas spaced *linearly*; its documented inference setup is DDIM
# with these values (and clip_sample off, which the "ddim" scheduler choice already sets).
ANIMATEDIFF_SCHEDULE: dict[str, Any] = {"beta_schedule": "linear", "timestep_spacing": "linspace", "steps_offset": 1}
FREE_NOISE_SPATIAL_SPLIT = 256  # pixels of the latent grid per chunk in the motion modules (diffusers' default)
CLIP_FITS = ("resize", "crop")


def _shared(name: str) -> Spec:
    return SPECS[name]


TEMPORAL_SPECS: dict[str, Spec] = {s.name: s for s in [
    _shared("prompt"),
    _shared("negative_prompt"),
    Spec("motion_prompt", str, "how things move; appended to the prompt"),
    Spec("frames", int, "frames of a still -> clip run (clip -> clip runs take theirs from the clip)", 8, 64, step=1),
    Spec("fps", int, "playback rate of the written clip (none: 8 for stills, the input's rate for clips)", 1, 60,
         optional=True, step=1),
    _shared("steps"),
    _shared("cfg"),
    Spec("strength", float, "how far each frame may move from its input frame: 0 keeps it, 1 ignores it",
         0.05, 1.0, step=0.01),
    _shared("seed"),
    Spec("scheduler", str, "sampler (AnimateDiff's linear beta schedule is applied to each)",
         choices=lambda: list(TEMPORAL_SCHEDULERS)),
    Spec("size", int, "output long side in pixels", 64, 1024, multiple_of=8, step=8),
    Spec("context_length", int, "frames the motion module sees at once (FreeNoise window for longer clips)", 8, 32,
         step=1),
    Spec("context_stride", int, "frames between FreeNoise windows", 1, 16, step=1),
    Spec("free_init", bool, "FreeInit: re-noise low frequencies between passes for steadier motion (costs passes)"),
    Spec("free_init_iters", int, "FreeInit passes", 2, 5, step=1),
    _shared("colour_method"),
    _shared("colour_strength"),
    _shared("colour_mask"),
    _shared("profile"),
    _shared("detect_resolution"),
    _shared("transparent_backdrop"),
    _shared("keep_dark_backdrop"),
    _shared("lighting_hints"),
    _shared("mask_controls"),
    _shared("pose_policy"),
    Spec("every", int, "clip -> clip: keep every n-th input frame", 1, 100, step=1),
    Spec("max_frames", int, "clip -> clip: at most this many frames (none: up to 64)", 2, 64, optional=True, step=1),
    Spec("clip_fit", str, "clip -> clip: 'resize' keeps the whole frame (sides rounded to multiples of 8), "
                          "'crop' keeps the exact aspect by trimming the edges", choices=lambda: list(CLIP_FITS)),
    Spec("decode_chunk", int, "frames decoded by the VAE at once (none: the hardware plan's)", 1, 64, optional=True,
         step=1),
]}
MAX_CLIP_FRAMES = int(TEMPORAL_SPECS["frames"].maximum)


@dataclass(frozen=True)
class TemporalSettings(SettingsMixin):
    """Everything that decides a temporal run. Defaults follow AnimateDiff practice (16 frames, DDIM)."""

    prompt: str = DEFAULT_PROMPT
    negative_prompt: str = DEFAULT_NEGATIVE_PROMPT
    motion_prompt: str = DEFAULT_MOTION_PROMPT
    frames: int = 16
    fps: int | None = None
    steps: int = 25
    cfg: float = 7.5
    strength: float = 0.6
    seed: int = 0
    scheduler: str = "ddim"
    size: int = 512
    controls: tuple[ControlUnit, ...] | None = None  # None: the still's units (or the model set's defaults)
    context_length: int = 16
    context_stride: int = 4
    free_init: bool = False
    free_init_iters: int = 3
    colour_method: str = "lab-histogram"
    colour_strength: float = 0.6
    colour_mask: bool = True
    profile: str | None = None
    detect_resolution: int = 512
    transparent_backdrop: str = "auto"
    keep_dark_backdrop: bool = True
    lighting_hints: bool = True
    mask_controls: bool = False
    pose_policy: str = "drop"
    every: int = 1
    max_frames: int | None = None
    clip_fit: str = "resize"
    decode_chunk: int | None = None

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
        if self.free_init:
            passes = denoise_steps(self.steps, self.strength, self.free_init_iters)
            if min(passes) < 1:  # a pass of 0 steps would decode FreeInit's re-noised latents: pure noise
                raise SettingsError("steps", self.steps, f"enough steps that each FreeInit pass denoises at least once "
                                    f"(with strength {self.strength:g} and {self.free_init_iters} passes they run "
                                    f"{passes} steps)", "Raise steps or strength, or lower free_init_iters.")
        return self

    def static_settings(self) -> StaticSettings:
        """The still-image settings that source understanding (intake, preparation, control maps) reads."""
        return StaticSettings(
            prompt=self.prompt, negative_prompt=self.negative_prompt, steps=self.steps, cfg=self.cfg,
            strength=self.strength, size=self.size, seed=self.seed, controls=self.controls,
            colour_method=self.colour_method, colour_strength=self.colour_strength, colour_mask=self.colour_mask,
            profile=self.profile, detect_resolution=self.detect_resolution,
            transparent_backdrop=self.transparent_backdrop, keep_dark_backdrop=self.keep_dark_backdrop,
            lighting_hints=self.lighting_hints, mask_controls=self.mask_controls, pose_policy=self.pose_policy)



@dataclass
class TemporalInputs:
    """What the pipeline is given, derived before any diffusion model runs."""

    mode: str  # "still" or "clip"
    frames: list[Image.Image]  # the input video at generation size (the still repeated, or the clip's frames)
    control_frames: dict[str, list[Image.Image]]  # kind -> one map per frame
    units: tuple[ControlUnit, ...]
    prompt: str
    negative_prompt: str
    references: list[Image.Image]  # what each frame's colours are anchored to (the fixed source)
    masks: list[np.ndarray] | None  # subject mask of each reference
    fps: float
    still: Image.Image | None = None
    context: Any = None  # static.SourceContext (still mode)
    clip: dict[str, Any] | None = None  # video.Clip.to_dict() (clip mode)
    still_run: str | None = None  # the static run folder whose still is animated (still mode from a StaticResult)
    control_records: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def size(self) -> tuple[int, int]:
        return self.frames[0].size


@dataclass
class TemporalResult:
    frames: list[Image.Image]  # final frames (after colour anchoring)
    raw_frames: list[Image.Image]  # straight out of the VAE
    fps: float
    inputs: TemporalInputs
    settings: TemporalSettings
    colour: list[Any] | None  # colour.AnchorResult per frame, None when anchoring was unavailable
    metrics: Any  # metrics report of evaluate_clip, or None
    status: str
    generation: dict[str, Any]  # what actually ran: steps, windows, chunks, scheduler
    timings: dict[str, float]
    warnings: list[str]
    engine: dict[str, Any]
    run_dir: Path | None = None
    record: dict[str, Any] = field(default_factory=dict)

    @property
    def mode(self) -> str:
        return self.inputs.mode

    @property
    def size(self) -> tuple[int, int]:
        return self.frames[0].size

    @property
    def control_images(self) -> dict[str, Image.Image]:
        return {kind: maps[0] for kind, maps in self.inputs.control_frames.items()}


# ------------------------------------------------------------------------------------------------ pipeline


@functools.lru_cache(maxsize=None)
def frame_chunked_multicontrolnet() -> type:
    """A MultiControlNetModel subclass that runs its ControlNets on at most ``frame_chunk`` frames at a time.

    The AnimateDiff pipelines call the ControlNets on every frame of the clip in one batch, which makes their
    activation memory grow with the clip length; chunking keeps it at one window's worth and gives the same result.
    Built on first use so that diffusers is imported lazily."""
    import torch
    from diffusers.models.controlnets.multicontrolnet import MultiControlNetModel

    class _Chunked(MultiControlNetModel):
        frame_chunk: int | None = None

        def forward(self, sample, timestep, encoder_hidden_states, controlnet_cond, conditioning_scale, *args,
                    **kwargs):
            chunk = self.frame_chunk
            if not chunk or sample.shape[0] <= chunk or args or kwargs.get("attention_mask") is not None:
                return super().forward(sample, timestep, encoder_hidden_states, controlnet_cond, conditioning_scale,
                                       *args, **kwargs)
            return_dict = kwargs.pop("return_dict", True)
            downs, mids = [], []
            for start in range(0, sample.shape[0], chunk):
                part = slice(start, start + chunk)
                down, mid = super().forward(sample[part], timestep, encoder_hidden_states[part],
                                            [c[part] for c in controlnet_cond], conditioning_scale,
                                            return_dict=False, **kwargs)
                downs.append(down)
                mids.append(mid)
            down = [torch.cat(parts) for parts in zip(*downs)]
            mid = torch.cat(mids)
            if not return_dict:
                return down, mid
            from diffusers.models.controlnets.controlnet import ControlNetOutput

            return ControlNetOutput(down_block_res_samples=down, mid_block_res_sample=mid)

    _Chunked.__name__ = _Chunked.__qualname__ = "FrameChunkedMultiControlNet"
    return _Chunked


def temporal_pipeline(engine: Engine, control_kinds: Sequence[str]) -> Any:
    """An AnimateDiff video-to-video pipeline (with a MultiControlNet when there are control kinds) over the engine's
    shared components; its motion UNet shares the static UNet's and the adapter's tensors. Cached on the engine."""
    import diffusers

    from .sharing import motion_unet_for

    kinds = tuple(control_kinds)
    key = ("temporal", kinds)
    if key in engine._pipelines:
        return engine._pipelines[key]
    engine.preflight(engine.roles_for(kinds, temporal=True))
    parts = {name: engine.component(name) for name in BASE_PARTS}
    if engine.plan.offload == "sequential":  # a static pipeline may have offloaded the UNet the motion UNet shares
        from .engine import release_offload

        release_offload([parts["unet"], engine.component("motion_adapter")])
    parts["unet"] = motion_unet_for(engine)
    adapter = engine.component("motion_adapter")
    scheduler = diffusers.DDIMScheduler.from_config({**engine.scheduler_config(), **ANIMATEDIFF_SCHEDULE},
                                                    clip_sample=False)
    if kinds:
        controlnet = frame_chunked_multicontrolnet()([engine.component(f"controlnet:{k}") for k in kinds])
        pipe = diffusers.AnimateDiffVideoToVideoControlNetPipeline(**parts, motion_adapter=adapter,
                                                                   controlnet=controlnet, scheduler=scheduler)
    else:
        pipe = diffusers.AnimateDiffVideoToVideoPipeline(**parts, motion_adapter=adapter, scheduler=scheduler)
    engine._apply_plan(pipe)
    pipe.set_progress_bar_config(disable=True)
    engine._pipelines[key] = pipe
    return pipe


def _motion_blocks(unet: Any) -> list[Any]:
    return [b for b in [*unet.down_blocks, unet.mid_block, *unet.up_blocks] if hasattr(b, "motion_modules")]


def _set_free_noise(pipe: Any, frames: int, settings: TemporalSettings) -> bool:
    """FreeNoise context windows exactly when the clip is longer than one window; returns whether they are on."""
    long_clip = frames > settings.context_length
    if long_clip:
        pipe.enable_free_noise(context_length=settings.context_length, context_stride=settings.context_stride)
    elif getattr(pipe, "free_noise_enabled", False):
        # diffusers' disable_free_noise also visits a mid block without motion modules (v1-5-3 adapters) and fails
        for block in _motion_blocks(pipe.unet):
            pipe._disable_free_noise_in_block(block)
        pipe._free_noise_context_length = None
    return long_clip


@contextmanager
def _window_chunking(pipe: Any, enabled: bool, window: int) -> Iterator[None]:
    """For long clips, run the spatial layers and ControlNets on window-sized chunks of frames, then restore the
    plain modules (they live only in the motion UNet's own lists, so the static UNet never sees the wrappers)."""
    if not enabled:
        yield
        return
    controlnet = getattr(pipe, "controlnet", None)
    pipe.enable_free_noise_split_inference(spatial_split_size=FREE_NOISE_SPATIAL_SPLIT, temporal_split_size=window)
    if controlnet is not None and hasattr(controlnet, "frame_chunk"):
        controlnet.frame_chunk = window
    try:
        yield
    finally:
        if controlnet is not None and hasattr(controlnet, "frame_chunk"):
            controlnet.frame_chunk = None
        _unwrap_split_inference(pipe.unet)


def _unwrap_split_inference(unet: Any) -> None:
    from diffusers.pipelines.free_noise_utils import SplitInferenceModule

    def plain(module: Any) -> Any:
        while isinstance(module, SplitInferenceModule):
            module = module.module
        return module

    for block in [*unet.down_blocks, unet.mid_block, *unet.up_blocks]:
        for name in ("attentions", "resnets", "downsamplers", "upsamplers"):
            modules = getattr(block, name, None)
            for i in range(len(modules or [])):
                modules[i] = plain(modules[i])
        for motion_module in getattr(block, "motion_modules", None) or []:
            motion_module.proj_in = plain(motion_module.proj_in)
            motion_module.proj_out = plain(motion_module.proj_out)
            for i in range(len(motion_module.transformer_blocks)):
                motion_module.transformer_blocks[i] = plain(motion_module.transformer_blocks[i])


def _set_free_init(pipe: Any, settings: TemporalSettings) -> None:
    if settings.free_init:
        pipe.enable_free_init(num_iters=settings.free_init_iters, use_fast_sampling=False)
    elif getattr(pipe, "free_init_enabled", False):
        pipe.disable_free_init()


def denoise_steps(steps: int, strength: float, free_init_iters: int = 1) -> list[int]:
    """Denoising steps the video-to-video pipeline runs in each pass. diffusers applies strength again to the
    already shortened schedule at every FreeInit pass, so each pass is shorter than the one before."""
    counts, n = [], min(int(steps * strength), steps)
    if free_init_iters <= 1:
        return [n]
    for _ in range(free_init_iters):
        n = min(int(n * strength), n)
        counts.append(n)
    return counts


class _RunningCount:
    """Numbers the steps of all FreeInit passes consecutively before handing them to the StepReporter."""

    def __init__(self, reporter: StepReporter) -> None:
        self.reporter, self.count = reporter, 0

    def __call__(self, pipe: Any, step_index: int, timestep: Any, kwargs: dict[str, Any]) -> dict[str, Any]:
        out = self.reporter(pipe, self.count, timestep, kwargs)
        self.count += 1
        return out


def decode_video_latents(pipe: Any, latents: Any, chunk: int, on_step: ProgressCallback | None = None,
                         cancel: CancelToken | None = None) -> list[Image.Image]:
    """VAE-decode (B, C, F, H, W) latents ``chunk`` frames at a time, reporting stage "decode" after each chunk.
    The same arithmetic as the pipeline's own decode_latents, so frames match the pipeline's PIL output."""
    import torch

    vae = pipe.vae
    latents = latents / vae.config.scaling_factor
    batch, channels, frames, height, width = latents.shape
    flat = latents.permute(0, 2, 1, 3, 4).reshape(batch * frames, channels, height, width)
    total = math.ceil(flat.shape[0] / chunk)
    start = time.perf_counter()
    images: list[Image.Image] = []
    for index, first in enumerate(range(0, flat.shape[0], chunk)):
        if cancel is not None and cancel.cancelled:
            raise CancelledError(f"cancelled while decoding, after {index} of {total} chunks")
        with torch.no_grad():
            decoded = vae.decode(flat[first:first + chunk].to(dtype=vae.dtype)).sample
        images += pipe.video_processor.postprocess(decoded.float(), output_type="pil")
        emit(on_step, "decode", index + 1, total, start)
    pipe.maybe_free_model_hooks()
    return images


# ------------------------------------------------------------------------------------------------ inputs


def _fit(image: Image.Image, size: tuple[int, int], fit: str = "resize") -> Image.Image:
    if image.size == size:
        return image
    if fit == "crop":
        return ImageOps.fit(image, size, Image.LANCZOS)
    return image.resize(size, Image.LANCZOS)


def _resize_mask(mask: np.ndarray | None, size: tuple[int, int]) -> np.ndarray | None:
    if mask is None or mask.shape == (size[1], size[0]):
        return mask
    return np.asarray(Image.fromarray(mask.astype(np.uint8) * 255).resize(size, Image.NEAREST)) > 127


def _annotator_dir(engine: Engine) -> str | None:
    from .static import _annotator_dir as static_annotator_dir

    return static_annotator_dir(engine)


def _units_for(settings: TemporalSettings, default: Sequence[ControlUnit]) -> tuple[ControlUnit, ...]:
    return tuple(settings.controls) if settings.controls is not None else tuple(default)


def inputs_from_static(result: Any, settings: TemporalSettings, engine: Engine) -> TemporalInputs:
    """Still mode from a StaticResult: its final still, its control maps (new kinds are detected on the still) and
    its prompts; colours stay anchored to the static run's fixed source."""
    from .preparation import fit_size
    from .prompts import join_fragments

    t = time.perf_counter()
    ctx = result.context
    still = result.image.convert("RGB")
    size = fit_size(still.width, still.height, settings.size)
    still = _fit(still, size)
    mask = _resize_mask(ctx.prepared.mask, size)
    units = _units_for(settings, ctx.units)
    notes: list[str] = []
    maps: dict[str, Image.Image] = {}
    records: dict[str, Any] = {}
    for unit in units:
        engine.models.controlnet(unit.kind)
        if unit.kind in ctx.control_maps:
            cmap = ctx.control_maps[unit.kind]
            maps[unit.kind] = cmap.image.convert("RGB").resize(size, Image.BILINEAR)
            records[unit.kind] = {"method": cmap.method, "found": cmap.found, "from": "static run"}
        else:
            cmap = _detect(unit, still, size, settings, engine, mask)
            notes += cmap.warnings
            maps[unit.kind] = cmap.image
            records[unit.kind] = {"method": cmap.method, "found": cmap.found, "from": "the still"}
    frames = settings.frames
    reference = ctx.prepared.image.convert("RGB")
    return TemporalInputs(
        "still", [still] * frames, {k: [m] * frames for k, m in maps.items()}, units,
        join_fragments([ctx.prompt, settings.motion_prompt]), ctx.negative_prompt, [_fit(reference, size)] * frames,
        [mask] * frames if mask is not None else None, float(settings.fps or 8), still=still, context=ctx,
        control_records=records, notes=notes, timings={"inputs": time.perf_counter() - t},
        still_run=str(result.run_dir) if result.run_dir is not None else None)


def inputs_from_source(source: Any, settings: TemporalSettings, engine: Engine) -> TemporalInputs:
    """Still mode from an image or path: the prepared source is the still, with its own control maps."""
    from .prompts import join_fragments
    from .static import understand_source

    ctx = understand_source(source, settings.static_settings(), engine, size=settings.size)
    still = ctx.prepared.image.convert("RGB")
    frames = settings.frames
    return TemporalInputs(
        "still", [still] * frames, {k: [m.image.convert("RGB")] * frames for k, m in ctx.control_maps.items()},
        ctx.units, join_fragments([ctx.prompt, settings.motion_prompt]), ctx.negative_prompt, [still] * frames,
        [ctx.prepared.mask] * frames, float(settings.fps or 8), still=still, context=ctx,
        control_records={k: {"method": m.method, "found": m.found, "from": "the source"}
                         for k, m in ctx.control_maps.items()},
        notes=list(ctx.warnings), timings=dict(ctx.timings))


def _detect(unit: ControlUnit, image: Image.Image, size: tuple[int, int], settings: TemporalSettings,
            engine: Engine, mask: np.ndarray | None) -> Any:
    from .control import CONTROL_PROVIDERS

    return CONTROL_PROVIDERS.get(unit.kind).detect(
        image, size=size, detect_resolution=settings.detect_resolution, mask=mask,
        mask_to_subject=settings.mask_controls and mask is not None,
        method=engine.models.control_method(unit.kind, unit.method),
        annotator_dir=_annotator_dir(engine), **dict(unit.params))


@dataclass
class _SampledClip:
    """A clip already decoded and sampled by ``sample_clip`` (so that it is not sampled twice)."""

    clip: Any  # video.Clip
    seconds: float  # time spent decoding it


def sample_clip(clip: Any, settings: TemporalSettings) -> Any:
    """Decode (a path) or sample (a ``video.Clip``) the input clip with ``every`` and ``max_frames``; at least two
    frames must remain. Run before any run folder exists, so a bad clip leaves nothing behind."""
    from .video import Clip, read_clip

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
    from .background import analyze_background
    from .preparation import fit_size
    from .profiles import find_profile, get_profile
    from .prompts import build_negative_prompt, build_prompt, join_fragments

    timings: dict[str, float] = {}
    t = time.perf_counter()
    decoded = clip.clip if isinstance(clip, _SampledClip) else sample_clip(clip, settings)
    timings["intake"] = clip.seconds if isinstance(clip, _SampledClip) else time.perf_counter() - t

    profile = None
    if settings.profile:
        profile = find_profile(settings.profile) or get_profile(settings.profile)
    units = _units_for(settings, engine.models.default_controls)
    for unit in units:
        engine.models.controlnet(unit.kind)

    t = time.perf_counter()
    first = decoded.frames[0]
    size = fit_size(first.width, first.height, settings.size)
    frames = [_fit(f.convert("RGB"), size, settings.clip_fit) for f in decoded.frames]
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
        detected = []
        for f_index, (frame, mask) in enumerate(zip(frames, masks)):
            detected.append(_detect(unit, frame, size, settings, engine, mask))
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
    prompt = join_fragments([build_prompt(settings.prompt, [], profile), settings.motion_prompt])
    negative = build_negative_prompt(settings.negative_prompt, profile)
    fps = float(settings.fps) if settings.fps else min(60.0, max(1.0, decoded.fps))
    return TemporalInputs("clip", frames, maps, tuple(kept), prompt, negative, frames, masks, fps,
                          clip=decoded.to_dict(), control_records=records, notes=notes, timings=timings)


# ------------------------------------------------------------------------------------------------ run


def _engine_for(source: Any, models: Any, device: str, offload: str) -> Engine:
    """The engine that made a StaticResult (same model set, same device choice: nothing is loaded again)."""
    from .static import StaticResult

    if isinstance(source, StaticResult) and source.engine.get("models"):
        from .models.modelset import ModelSet

        models = ModelSet.from_dict(source.engine["models"])
    return get_engine(models, device=device, offload=offload)


def _check_named_settings(settings: TemporalSettings, source: Any, engine: Engine) -> None:
    """Profile name and control kinds, checked before a run folder exists (as for stills)."""
    from .static import StaticResult, check_named_settings

    static_settings = settings.static_settings()
    if isinstance(source, StaticResult) and settings.controls is None:
        static_settings = static_settings.replace(controls=tuple(source.context.units))
    check_named_settings(static_settings, engine)


def _colour_anchor(raw: list[Image.Image], inputs: TemporalInputs, settings: TemporalSettings,
                   notes: list[str]) -> tuple[list[Image.Image], list[Any] | None]:
    try:
        from .colour import anchor_colours, anchor_frames
    except ImportError as exc:
        notes.append(f"colour anchoring skipped: zrealism_lab.colour is unavailable ({exc}).")
        return list(raw), None
    masks = inputs.masks if settings.colour_mask else None
    if inputs.mode == "still":  # one fixed source for every frame: prepared once, shared by all frames
        results = anchor_frames(raw, inputs.references[0], method=settings.colour_method,
                                strength=settings.colour_strength, mask=masks[0] if masks else None)
    else:  # each frame against its own input frame (never the previous output, so drift cannot build up)
        results = [anchor_colours(frame, reference, method=settings.colour_method, strength=settings.colour_strength,
                                  mask=masks[i] if masks else None)
                   for i, (frame, reference) in enumerate(zip(raw, inputs.references))]
    return [r.image for r in results], results


def _evaluate(frames: list[Image.Image], inputs: TemporalInputs, notes: list[str]) -> Any:
    try:
        from .metrics import evaluate_clip
    except ImportError as exc:
        notes.append(f"temporal metrics skipped: zrealism_lab.metrics.evaluate_clip is unavailable ({exc}).")
        return None
    mask = None
    if inputs.masks:
        mask = inputs.masks[0] if inputs.mode == "still" else np.stack(inputs.masks)
    # In clip -> clip runs the input clip is the reference: its own flicker is what the output should not exceed.
    return evaluate_clip(frames, reference=inputs.frames if inputs.mode == "clip" else None, mask=mask)


def run_temporal(source: Any = None, settings: TemporalSettings | None = None, *, clip: Any = None,
                 engine: Engine | None = None, models: Any = "realistic-vision",
                 out_dir: str | os.PathLike | None = None,
                 on_step: ProgressCallback | None = None, cancel: CancelToken | None = None, preview_every: int = 5,
                 evaluate: bool = True, device: str = "auto", offload: str = "auto") -> TemporalResult:
    """Animate a still or transform a clip.

    ``source``: a StaticResult (its final still, control maps and prompts are used, on the same engine), an image or
    an image path (its prepared source is animated). ``clip``: an MP4/MOV/WebM/GIF/WebP file, a folder of frames or a
    ``video.Clip`` for a clip -> clip run. Give one of the two. Bad settings or inputs raise before any model loads.
    """
    import torch

    from .intake import validate_image_path
    from .records import RunWriter
    from .video import Clip, validate_clip_path

    settings = (settings or TemporalSettings()).validated()
    if (source is None) == (clip is None):
        raise SettingsError("source/clip", "both" if source is not None else "neither",
                            "exactly one: a still (StaticResult, image or image path) or an input clip")
    if isinstance(source, (str, os.PathLike)):
        validate_image_path(source)
    if clip is not None and not isinstance(clip, Clip):
        validate_clip_path(clip)
    if clip is not None:  # decoded now: a damaged clip fails before any run folder exists
        t = time.perf_counter()
        clip = _SampledClip(sample_clip(clip, settings), time.perf_counter() - t)
    engine = engine or _engine_for(source, models, device, offload)
    _check_named_settings(settings, source, engine)
    writer = RunWriter.create(out_dir, "temporal") if out_dir is not None else None
    total_start = time.perf_counter()
    try:
        from .static import StaticResult

        if clip is not None:
            inputs = inputs_from_clip(clip, settings, engine, on_step)
        elif isinstance(source, StaticResult):
            inputs = inputs_from_static(source, settings, engine)
        else:
            inputs = inputs_from_source(source, settings, engine)
        timings = dict(inputs.timings)
        notes = list(inputs.notes)
        kinds = tuple(u.kind for u in inputs.units)
        n_frames = len(inputs.frames)

        t = time.perf_counter()
        emit(on_step, "load", 0, 1, t)
        pipe = temporal_pipeline(engine, kinds)
        emit(on_step, "load", 1, 1, t)
        timings["load"] = time.perf_counter() - t
        adapter_window = int(pipe.motion_adapter.config.motion_max_seq_length)
        if min(n_frames, settings.context_length) > adapter_window:
            raise SettingsError("context_length", settings.context_length,
                                f"at most {adapter_window}, the longest clip this motion adapter was trained on")

        from .prompts import prepare_prompts
        from .schedulers import make_scheduler

        pipe.scheduler = make_scheduler(settings.scheduler, {**engine.scheduler_config(), **ANIMATEDIFF_SCHEDULE},
                                        seed=settings.seed)
        long_clip = _set_free_noise(pipe, n_frames, settings)
        _set_free_init(pipe, settings)
        prompts = prepare_prompts(pipe, inputs.prompt, inputs.negative_prompt)
        notes += prompts.warnings
        prompt_kwargs = prompts.pipeline_kwargs()
        if long_clip and "prompt_embeds" in prompt_kwargs and prompt_kwargs["prompt_embeds"] is not None:
            # diffusers' FreeNoise encodes the prompt itself and refuses ready-made embeddings
            notes.append("prompt weighting / long-prompt chunking is not available with context windows: "
                         "the plain prompt text is used.")
            prompt_kwargs = {"prompt": prompts.prompt, "negative_prompt": prompts.negative_prompt}
        passes = denoise_steps(settings.steps, settings.strength, settings.free_init_iters if settings.free_init else 1)
        reporter = StepReporter(max(1, sum(passes)), on_step, cancel, preview_every)
        decode_chunk = settings.decode_chunk or engine.plan.decode_chunk
        width, height = inputs.size
        call: dict[str, Any] = dict(
            video=inputs.frames, height=height, width=width, num_inference_steps=settings.steps,
            strength=settings.strength, guidance_scale=settings.cfg,
            generator=torch.Generator("cpu").manual_seed(settings.seed), output_type="latent",
            callback_on_step_end=_RunningCount(reporter), callback_on_step_end_tensor_inputs=["latents"],
            decode_chunk_size=decode_chunk, **prompt_kwargs)
        if kinds:
            call.update(conditioning_frames=[inputs.control_frames[k] for k in kinds],
                        controlnet_conditioning_scale=[u.scale for u in inputs.units],
                        control_guidance_start=[u.start for u in inputs.units],
                        control_guidance_end=[u.end for u in inputs.units])

        t = time.perf_counter()
        with engine.busy, warnings.catch_warnings(), _window_chunking(pipe, long_clip, settings.context_length):
            warnings.filterwarnings("ignore", category=FutureWarning)
            latents = pipe(**call).frames
            timings["generate"] = time.perf_counter() - t
            if reporter.interrupted:
                raise CancelledError(f"cancelled after {reporter.done} of {reporter.total} denoising steps")
            t = time.perf_counter()
            raw = decode_video_latents(pipe, latents, decode_chunk, on_step, cancel)
            timings["decode"] = time.perf_counter() - t

        t = time.perf_counter()
        frames, colour = _colour_anchor(raw, inputs, settings, notes)
        timings["colour"] = time.perf_counter() - t
        metrics = None
        if evaluate:
            t = time.perf_counter()
            metrics = _evaluate(frames, inputs, notes)
            timings["metrics"] = time.perf_counter() - t
        timings["total"] = time.perf_counter() - total_start
        generation = {
            "mode": inputs.mode, "frames": n_frames, "size": list(inputs.size), "fps": inputs.fps,
            "denoise_steps": passes, "decode_chunk": decode_chunk, "control_kinds": list(kinds),
            "scheduler": {"name": settings.scheduler, "class": type(pipe.scheduler).__name__,
                          **{k: pipe.scheduler.config.get(k) for k in ("beta_schedule", "timestep_spacing",
                                                                         "steps_offset", "clip_sample")}},
            "context_windows": ({"context_length": settings.context_length, "context_stride": settings.context_stride,
                                 "spatial_split": FREE_NOISE_SPATIAL_SPLIT, "frame_chunk": settings.context_length}
                                if long_clip else None),
            "free_init": {"iterations": settings.free_init_iters} if settings.free_init else None,
            "motion_adapter_window": adapter_window, "offload": engine.plan.offload,
        }
        result = TemporalResult(frames, raw, inputs.fps, inputs, settings, colour, metrics, "completed", generation,
                                timings, notes, engine.describe())
        if writer is not None:
            write_temporal(writer, result, engine)
            result.run_dir = writer.folder
            result.record = writer.record
        return result
    except BaseException as exc:
        if writer is not None:
            writer.fail(exc, settings=settings, engine=engine)
        raise


# ------------------------------------------------------------------------------------------------ record


def write_temporal(writer: Any, result: TemporalResult, engine: Engine) -> dict[str, Any]:
    """Write the clip as MP4 and GIF, its frames as PNG, the inputs and record.json into the run folder."""
    import json

    from .records import RECORD_NAME, _json_default, a1111_parameters, atomic_write_json, sha256_file
    from .video import write_gif, write_mp4

    inputs = result.inputs
    folder = Path(writer.folder)
    videos: dict[str, Any] = {}

    def keep(name: str, info: dict[str, Any]) -> None:
        videos[name] = {**info, "path": name}  # relative, so the run folder can move
        writer.outputs[name] = sha256_file(folder / name)

    for name, frames in (("clip.mp4", result.frames), ("clip_raw.mp4", result.raw_frames)):
        keep(name, write_mp4(frames, folder / name, result.fps))
    keep("clip.gif", write_gif(result.frames, folder / "clip.gif", result.fps))
    settings_dict = result.settings.to_dict()
    settings_dict["controls"] = [u.to_dict() for u in inputs.units]
    text = {"parameters": a1111_parameters(inputs.prompt, inputs.negative_prompt, settings_dict, result.size),
            "zrealism": json.dumps({"settings": settings_dict, "models": engine.models.name}, default=_json_default)}
    for index, frame in enumerate(result.frames, start=1):
        writer.save_png(f"frames/frame_{index:04d}.png", frame, text if index == 1 else None)
    if inputs.still is not None:
        writer.save_png("still.png", inputs.still)
        for kind, maps in inputs.control_frames.items():
            writer.save_png(f"control_{kind}.png", maps[0])
    else:
        writer.save_png("input_first_frame.png", inputs.frames[0])
        for kind, maps in inputs.control_frames.items():
            keep(f"control_{kind}.mp4", write_mp4(maps, folder / f"control_{kind}.mp4", result.fps))

    record = writer._base_record(result.status, result.settings, engine)
    source: dict[str, Any] | None = None
    if inputs.context is not None:
        src = inputs.context.source
        source = {"path": src.path, "format": src.format, "mode": src.original_mode,
                  "size": list(src.original_size), "sha256": sha256_file(src.path) if src.path else None}
    clip_info = dict(inputs.clip) if inputs.clip else None
    if clip_info and clip_info.get("path") and Path(clip_info["path"]).is_file():
        clip_info["sha256"] = sha256_file(clip_info["path"])
    record.update({
        "mode": inputs.mode,
        "prompt": inputs.prompt,
        "negative_prompt": inputs.negative_prompt,
        "source": source,
        "still_run": inputs.still_run,
        "background": inputs.context.analysis.to_dict() if inputs.context is not None else None,
        "clip": clip_info,
        "units": [u.to_dict() for u in inputs.units],
        "controls": inputs.control_records,
        "generation": result.generation,
        "videos": videos,
        "colour": None if result.colour is None else {
            "method": result.settings.colour_method, "strength": result.settings.colour_strength,
            "reference": "the fixed source" if inputs.mode == "still" else "each input frame",
            "delta_e_before": [round(c.delta_e_before, 4) for c in result.colour],
            "delta_e_after": [round(c.delta_e_after, 4) for c in result.colour]},
        "metrics": result.metrics.to_dict() if hasattr(result.metrics, "to_dict") else result.metrics,
        "timings": {k: round(v, 4) for k, v in result.timings.items()},
        "warnings": list(result.warnings),
        "model_hashes": _model_hashes(engine, inputs.units),
        "outputs": dict(writer.outputs),
    })
    writer.record = record
    atomic_write_json(folder / RECORD_NAME, record)
    return record


def _model_hashes(engine: Engine, units: Sequence[ControlUnit]) -> dict[str, Any]:
    from .records import model_hashes

    return model_hashes(engine, engine.roles_for([u.kind for u in units], temporal=True))
