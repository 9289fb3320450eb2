"""Hires fix for stills: a second img2img pass over the upscaled first result, as in A1111.

The first image (Lanczos) or its latents (``latent``) are upscaled to the new size and denoised again with their own
strength and steps, guided by the run's control maps at the new size (detected again, or resized). VAE tiling is
switched on for the pass when the size needs it and restored afterwards."""
from __future__ import annotations

import contextlib
import dataclasses
import time
import warnings
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Iterator

from PIL import Image

from ..errors import CancelledError
from ..progress import CancelToken, ProgressCallback, StepReporter
from ..settings import StaticSettings, TemporalSettings
from .calls import control_arguments

if TYPE_CHECKING:
    from ..engine import Engine
    from ..source.context import SourceContext

# Above this long side the VAE decodes in tiles: a 2048 px decode in one piece needs several GiB for activations.
TILING_LONG_SIDE = 1024


def hires_size(settings: StaticSettings | TemporalSettings, first_size: tuple[int, int]) -> tuple[int, int]:
    """The second pass's (width, height): the first size scaled by ``hires`` or to ``hires_size`` on the long side
    (stills only), keeping the aspect, both sides multiples of 8 (the VAE's scale factor)."""
    width, height = first_size
    target = getattr(settings, "hires_size", None)
    long_side = target if target is not None else round(max(first_size) * settings.hires)
    scale = long_side / max(width, height)
    return max(8, round(width * scale / 8) * 8), max(8, round(height * scale / 8) * 8)


def hires_denoise_steps(settings: StaticSettings) -> int:
    """Denoising steps the second pass runs (0: upscale only)."""
    return int((settings.hires_steps or settings.steps) * settings.hires_strength)


@dataclass
class HiresResult:
    """What the hires pass made: the raw second-pass image, the first pass it started from and how it ran."""

    image: Image.Image
    first: Image.Image
    control_maps: dict[str, Image.Image]
    upscaler: str
    strength: float
    steps: int
    denoise_steps: int
    control_source: str  # "detect" or "resize" (and "resize" for maps whose detector found nothing)
    vae_tiling: bool
    seconds: float
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"first_size": list(self.first.size), "size": list(self.image.size), "upscaler": self.upscaler,
                "strength": self.strength, "steps": self.steps, "denoise_steps": self.denoise_steps,
                "control_maps": self.control_source, "vae_tiling": self.vae_tiling,
                "seconds": round(self.seconds, 4), "notes": list(self.notes)}


@contextlib.contextmanager
def vae_tiling(vae: Any, on: bool) -> Iterator[bool]:
    """Switch tiled VAE encode/decode on for a block and put the previous state back after it."""
    before = bool(getattr(vae, "use_tiling", False))
    if on and not before and hasattr(vae, "enable_tiling"):
        vae.enable_tiling()
    try:
        yield on or before
    finally:
        if not before and getattr(vae, "use_tiling", False) and hasattr(vae, "disable_tiling"):
            vae.disable_tiling()


def decode_latents(pipe: Any, latents: Any) -> Image.Image:
    """Latents (1, 4, h, w) -> PIL image, exactly as the pipeline decodes its own output."""
    import torch

    with torch.no_grad():
        decoded = pipe.vae.decode(latents.to(pipe.vae.dtype) / pipe.vae.config.scaling_factor, return_dict=False)[0]
    return pipe.image_processor.postprocess(decoded, output_type="pil", do_denormalize=[True])[0]


def upscale_latents(latents: Any, size: tuple[int, int], scale_factor: int = 8) -> Any:
    """Latents resized (bilinear, as A1111's "Latent" upscaler) to an image of ``size`` pixels."""
    import torch.nn.functional as F

    return F.interpolate(latents, size=(size[1] // scale_factor, size[0] // scale_factor), mode="bilinear",
                         align_corners=False)


def hires_control_maps(context: SourceContext, settings: StaticSettings, engine: Any, size: tuple[int, int]
                       ) -> tuple[dict[str, Image.Image], str, list[str]]:
    """The run's control maps at ``size``: its detectors run again on the source upscaled to it ("detect"), or the
    first maps resized ("resize"). A detector that finds nothing at the new size falls back to the resized map."""
    import numpy as np

    from ..source.context import detect_unit

    resized = {kind: cmap.image.resize(size, Image.BICUBIC) for kind, cmap in context.control_maps.items()}
    if settings.hires_control_maps == "resize" or not context.units:
        return resized, "resize", []
    source = context.prepared.image.resize(size, Image.LANCZOS)
    mask = context.prepared.mask
    if mask is not None:
        mask = np.asarray(Image.fromarray(np.asarray(mask, dtype=np.uint8) * 255).resize(size, Image.NEAREST)) > 127
    maps, notes, sources = {}, [], set()
    for unit in context.units:
        cmap = context.control_maps[unit.kind]
        found = detect_unit(dataclasses.replace(unit, method=cmap.method), source, engine, size=size,
                            detect_resolution=max(size), mask=mask, mask_to_subject=settings.mask_controls)
        if cmap.found and not found.found:
            notes.append(f"hires: the {unit.kind} detector found nothing at {size[0]}x{size[1]}; its first map "
                         "was resized instead")
            maps[unit.kind] = resized[unit.kind]
            sources.add("resize")
        else:
            maps[unit.kind] = found.image
            sources.add("detect")
    return maps, "+".join(sorted(sources)), notes


def run_hires(pipe: Any, context: SourceContext, settings: StaticSettings, engine: Engine, first: Image.Image,
              prompt_kwargs: dict[str, Any], *, latents: Any = None, on_step: ProgressCallback | None = None,
              cancel: CancelToken | None = None, preview_every: int = 5) -> HiresResult:
    """The second pass over ``first`` (the raw first-pass image; ``latents`` its latents for the latent upscaler)."""
    import torch

    from ..schedulers import make_scheduler

    start = time.perf_counter()
    size = hires_size(settings, first.size)
    maps, control_source, notes = hires_control_maps(context, settings, engine, size)
    steps = settings.hires_steps or settings.steps
    denoise = hires_denoise_steps(settings)
    latent = settings.hires_upscaler == "latent"
    if latent and latents is None:
        raise ValueError("the latent upscaler needs the first pass's latents")
    tiling = max(size) > TILING_LONG_SIDE
    with vae_tiling(pipe.vae, tiling) as tiled:
        init = upscale_latents(latents, size, pipe.vae_scale_factor) if latent else first.resize(size, Image.LANCZOS)
        if denoise == 0:  # strength 0: the upscaled first pass itself
            image = decode_latents(pipe, init) if latent else init
        else:
            pipe.scheduler = make_scheduler(settings.scheduler, engine.scheduler_config(), seed=settings.seed)
            reporter = StepReporter(denoise, on_step, cancel, preview_every, stage="hires")
            call: dict[str, Any] = dict(image=init, strength=settings.hires_strength, num_inference_steps=steps,
                                        guidance_scale=settings.cfg, output_type="pil", **prompt_kwargs,
                                        generator=torch.Generator("cpu").manual_seed(settings.seed),
                                        callback_on_step_end=reporter, callback_on_step_end_tensor_inputs=["latents"])
            if context.units:
                call.update(control_image=[maps[u.kind] for u in context.units], **control_arguments(context.units),
                            width=size[0], height=size[1])
            with engine.busy, warnings.catch_warnings():
                warnings.filterwarnings("ignore", category=FutureWarning)
                image = pipe(**call, **engine.adapters.call_kwargs()).images[0]
            if reporter.interrupted:
                raise CancelledError(f"cancelled after {reporter.done} of {denoise} hires steps")
    return HiresResult(image, first, maps, settings.hires_upscaler, settings.hires_strength, steps, denoise,
                       control_source, tiled, time.perf_counter() - start, notes)
