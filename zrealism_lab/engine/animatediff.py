"""AnimateDiff features the temporal engine composes, kept apart from the run as diffusers keeps FreeNoise and
FreeInit in their own mixin modules: the linear-beta schedule, frame-chunked ControlNets, FreeNoise context windows
with window-sized split inference, FreeInit, and a chunked VAE decode that reports progress and honours cancel."""
from __future__ import annotations

import functools
import math
import time
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Iterator

from PIL import Image

from ..errors import CancelledError
from ..progress import CancelToken, ProgressCallback, emit

if TYPE_CHECKING:
    from ..settings import TemporalSettings

# AnimateDiff's motion modules were trained on SD's betas spaced *linearly*; its documented inference setup is DDIM
# with these values (and clip_sample off, which the "ddim" scheduler choice already sets).
ANIMATEDIFF_SCHEDULE: dict[str, Any] = {"beta_schedule": "linear", "timestep_spacing": "linspace", "steps_offset": 1}
FREE_NOISE_SPATIAL_SPLIT = 256  # pixels of the latent grid per chunk in the motion modules (diffusers' default)

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


def motion_blocks(unet: Any) -> list[Any]:
    return [b for b in [*unet.down_blocks, unet.mid_block, *unet.up_blocks] if hasattr(b, "motion_modules")]


def set_free_noise(pipe: Any, frames: int, settings: "TemporalSettings") -> bool:
    """FreeNoise context windows exactly when the clip is longer than one window; returns whether they are on."""
    long_clip = frames > settings.context_length
    if long_clip:
        pipe.enable_free_noise(context_length=settings.context_length, context_stride=settings.context_stride)
    elif getattr(pipe, "free_noise_enabled", False):
        # diffusers' disable_free_noise also visits a mid block without motion modules (v1-5-3 adapters) and fails
        for block in motion_blocks(pipe.unet):
            pipe._disable_free_noise_in_block(block)
        pipe._free_noise_context_length = None
    return long_clip


@contextmanager
def window_chunking(pipe: Any, enabled: bool, window: int) -> Iterator[None]:
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
        unwrap_split_inference(pipe.unet)


def unwrap_split_inference(unet: Any) -> None:
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


def set_free_init(pipe: Any, settings: "TemporalSettings") -> None:
    if settings.free_init:
        pipe.enable_free_init(num_iters=settings.free_init_iters, use_fast_sampling=False)
    elif getattr(pipe, "free_init_enabled", False):
        pipe.disable_free_init()


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
