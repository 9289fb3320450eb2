"""Hires fix for clips, as AnimateDiff users run it: the decoded first-pass frames upscaled (Lanczos), then a second
AnimateDiff video-to-video pass over them at the new size with its own strength and steps and the clip's seed,
guided by the control maps at the new size (resized, or detected again on the upscaled input frames). The bigger
frames are encoded and decoded by the VAE in tiles and in smaller chunks; colour anchoring follows in ``temporal``.
FreeInit stays off in this pass: re-noising the low frequencies would undo the upscaled first pass it refines."""
from __future__ import annotations

import dataclasses
import time
import warnings
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from PIL import Image

from ..engine.animatediff import ANIMATEDIFF_SCHEDULE, decode_video_latents, window_chunking
from ..errors import CancelledError
from ..progress import CancelToken, ProgressCallback, StepReporter
from ..settings import TemporalSettings
from .calls import control_arguments
from .hires import hires_size, vae_tiling

if TYPE_CHECKING:
    from ..engine import Engine
    from .temporal_inputs import TemporalInputs

# Every frame of the clip is encoded and decoded: above this long side the VAE works in tiles.
CLIP_TILING_LONG_SIDE = 512


@dataclass
class ClipHiresResult:
    """What the clip's hires pass made: the raw second-pass frames, the first-pass frames and how it ran."""

    frames: list[Image.Image]
    first: list[Image.Image]
    control_frames: dict[str, list[Image.Image]]  # kind -> one map per frame, at the new size
    strength: float
    steps: int
    denoise_steps: int
    control_source: str  # "resize", "detect" or "detect+resize" (frames whose detector found nothing)
    vae_tiling: bool
    decode_chunk: int
    seconds: float
    notes: list[str] = field(default_factory=list)

    @property
    def size(self) -> tuple[int, int]:
        return self.frames[0].size

    def to_dict(self) -> dict[str, Any]:
        return {"first_size": list(self.first[0].size), "size": list(self.size), "frames": len(self.frames),
                "upscaler": "lanczos", "strength": self.strength, "steps": self.steps,
                "denoise_steps": self.denoise_steps, "control_maps": self.control_source,
                "vae_tiling": self.vae_tiling, "decode_chunk": self.decode_chunk, "free_init": False,
                "seconds": round(self.seconds, 4), "notes": list(self.notes)}


def clip_hires_size(settings: TemporalSettings, first_size: tuple[int, int]) -> tuple[int, int]:
    """The second pass's frame (width, height): the first size scaled by ``hires``, multiples of 8."""
    return hires_size(settings, first_size)


def hires_decode_chunk(decode_chunk: int, first_size: tuple[int, int], size: tuple[int, int]) -> int:
    """Frames the VAE handles at once at ``size``: the first pass's chunk shrunk by the growth in pixels, so a
    chunk's activations stay about as large as in the first pass."""
    growth = (size[0] * size[1]) / (first_size[0] * first_size[1])
    return max(1, int(decode_chunk / growth))


def _map_frames(inputs: TemporalInputs, settings: TemporalSettings, engine: Engine, size: tuple[int, int]
                ) -> tuple[dict[str, list[Image.Image]], str, list[str]]:
    """Each unit's maps at ``size``. A still's repeated frame is handled once and repeated again."""
    import numpy as np

    from ..source.context import detect_unit

    maps: dict[str, list[Image.Image]] = {}
    notes: list[str] = []
    sources: set[str] = set()
    masks = inputs.masks or [None] * len(inputs.frames)
    for unit in inputs.units:
        done: dict[int, Image.Image] = {}  # id of the first-size map or frame -> its map at the new size
        frames_out = []
        missed = 0
        method = (inputs.control_records.get(unit.kind) or {}).get("method") or unit.method
        for index, cmap in enumerate(inputs.control_frames[unit.kind]):
            frame = inputs.frames[index]
            key = id(frame) if settings.hires_control_maps == "detect" else id(cmap)
            if key not in done:
                resized = cmap.resize(size, Image.BICUBIC)
                done[key] = resized
                if settings.hires_control_maps == "detect":
                    mask = masks[index]
                    if mask is not None:
                        mask = np.asarray(Image.fromarray(np.asarray(mask, dtype=np.uint8) * 255).resize(
                            size, Image.NEAREST)) > 127
                    found = detect_unit(dataclasses.replace(unit, method=method), frame.resize(size, Image.LANCZOS),
                                        engine, size=size, detect_resolution=max(size), mask=mask,
                                        mask_to_subject=settings.mask_controls)
                    if found.found:
                        done[key] = found.image.convert("RGB")
                        sources.add("detect")
                    else:
                        missed += 1
                        sources.add("resize")
                else:
                    sources.add("resize")
            frames_out.append(done[key])
        if missed:
            notes.append(f"hires: the {unit.kind} detector found nothing at {size[0]}x{size[1]} on {missed} "
                         "frame(s); their first maps were resized instead")
        maps[unit.kind] = frames_out
    return maps, "+".join(sorted(sources)) or settings.hires_control_maps, notes


def run_clip_hires(pipe: Any, inputs: TemporalInputs, settings: TemporalSettings, engine: Engine,
                   first: list[Image.Image], prompt_kwargs: dict[str, Any], *, long_clip: bool, decode_chunk: int,
                   on_step: ProgressCallback | None = None, cancel: CancelToken | None = None,
                   preview_every: int = 5) -> ClipHiresResult:
    """The second pass over ``first`` (the raw, decoded first-pass frames) on the temporal ``pipe``."""
    import torch

    from ..schedulers import make_scheduler

    start = time.perf_counter()
    size = clip_hires_size(settings, first[0].size)
    maps, control_source, notes = _map_frames(inputs, settings, engine, size)
    steps = settings.hires_steps or settings.steps
    denoise = int(steps * settings.hires_strength)
    chunk = hires_decode_chunk(decode_chunk, first[0].size, size)
    upscaled = [frame.resize(size, Image.LANCZOS) for frame in first]
    tiling = max(size) > CLIP_TILING_LONG_SIDE
    if denoise == 0:  # strength 0: the upscaled first pass itself
        return ClipHiresResult(upscaled, list(first), maps, settings.hires_strength, steps, 0, control_source,
                               False, chunk, time.perf_counter() - start, notes)
    pipe.scheduler = make_scheduler(settings.scheduler, {**engine.scheduler_config(), **ANIMATEDIFF_SCHEDULE},
                                    seed=settings.seed)
    if getattr(pipe, "free_init_enabled", False):
        pipe.disable_free_init()
    reporter = StepReporter(denoise, on_step, cancel, preview_every, stage="hires")
    call: dict[str, Any] = dict(
        video=upscaled, height=size[1], width=size[0], num_inference_steps=steps, strength=settings.hires_strength,
        guidance_scale=settings.cfg, generator=torch.Generator("cpu").manual_seed(settings.seed),
        output_type="latent", callback_on_step_end=reporter, callback_on_step_end_tensor_inputs=["latents"],
        decode_chunk_size=chunk, **prompt_kwargs, **engine.adapters.call_kwargs())
    if inputs.units:
        call.update(conditioning_frames=[maps[u.kind] for u in inputs.units], **control_arguments(inputs.units))
    with vae_tiling(pipe.vae, tiling) as tiled, engine.busy, warnings.catch_warnings(), \
            window_chunking(pipe, long_clip, settings.context_length):
        warnings.filterwarnings("ignore", category=FutureWarning)
        latents = pipe(**call, **engine.adapters.call_kwargs()).frames
        if reporter.interrupted:
            raise CancelledError(f"cancelled after {reporter.done} of {denoise} hires steps")
        frames = decode_video_latents(pipe, latents, chunk, on_step, cancel)
    return ClipHiresResult(frames, list(first), maps, settings.hires_strength, steps, denoise, control_source,
                           tiled, chunk, time.perf_counter() - start, notes)
