"""AnimateDiff features the temporal engine composes, kept apart from the run as diffusers keeps FreeNoise and
FreeInit in their own mixin modules: the linear-beta schedule, frame-chunked ControlNets, FreeNoise context windows
with window-sized split inference, FreeInit, and a chunked VAE decode that reports progress and honours cancel."""
from __future__ import annotations

import functools
import math
import time
import weakref
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
    """FreeNoise context windows exactly when the clip is longer than one window; returns whether they are on.

    diffusers' enable/disable_free_noise build a new transformer block for every motion transformer block and copy
    its weights into it (each way: +1.4 GiB and about 2 s at full size). Here each block's FreeNoise twin is built
    once, empty, over the very same tensors, and switching swaps the two in the motion modules' lists; diffusers'
    enable_free_noise then finds FreeNoise blocks already in place and only sets their window properties."""
    long_clip = frames > settings.context_length
    if long_clip:
        swap_free_noise_blocks(pipe.unet, on=True)
        pipe.enable_free_noise(context_length=settings.context_length, context_stride=settings.context_stride)
    elif getattr(pipe, "free_noise_enabled", False) or _has_free_noise_blocks(pipe.unet):
        swap_free_noise_blocks(pipe.unet, on=False)
        pipe._free_noise_context_length = None
    return long_clip


# Each plain motion transformer block and its FreeNoise twin, both ways; weak keys, so a freed pipeline frees both.
_TWINS: "weakref.WeakKeyDictionary[Any, Any]" = weakref.WeakKeyDictionary()


def swap_free_noise_blocks(unet: Any, on: bool) -> int:
    """Put every motion transformer block's FreeNoise twin (``on``) or its plain block back in place; returns how
    many entries changed. The twins hold the plain blocks' own submodules and tensors: nothing is copied."""
    from diffusers.models.attention import FreeNoiseTransformerBlock

    changed = 0
    for block in motion_blocks(unet):
        for motion_module in block.motion_modules:
            blocks = motion_module.transformer_blocks
            for i, current in enumerate(blocks):
                if isinstance(current, FreeNoiseTransformerBlock) == on:
                    continue
                twin = _TWINS.get(current)
                if twin is None:  # first switch (or a FreeNoise block diffusers built itself)
                    twin = _twin(current, plain=not on)
                    _TWINS[current], _TWINS[twin] = twin, current
                _adopt(twin, current)  # again on every switch: a submodule replaced since (a LoRA) is followed
                blocks[i] = twin
                changed += 1
    return changed


def _has_free_noise_blocks(unet: Any) -> bool:
    from diffusers.models.attention import FreeNoiseTransformerBlock

    return any(isinstance(b, FreeNoiseTransformerBlock) for block in motion_blocks(unet)
               for motion_module in block.motion_modules for b in motion_module.transformer_blocks)


def _twin(block: Any, plain: bool) -> Any:
    """The other class of transformer block with the same arguments as diffusers' own conversion, built on the meta
    device (nothing allocated), then given ``block``'s own submodules."""
    from accelerate import init_empty_weights
    from diffusers.models.attention import BasicTransformerBlock, FreeNoiseTransformerBlock

    kwargs = {name: getattr(block, name) for name in (
        "dim", "num_attention_heads", "attention_head_dim", "dropout", "cross_attention_dim", "activation_fn",
        "attention_bias", "only_cross_attention", "double_self_attention", "positional_embeddings",
        "num_positional_embeddings")}
    with init_empty_weights(include_buffers=True):
        if plain:
            twin = BasicTransformerBlock(**kwargs)
        else:  # window properties are set by enable_free_noise right after the swap
            twin = FreeNoiseTransformerBlock(**kwargs, context_length=16, context_stride=4)
    _adopt(twin, block)
    twin.set_chunk_feed_forward(block._chunk_size, block._chunk_dim)
    twin.train(block.training)
    return twin


def _adopt(twin: Any, block: Any) -> None:
    """Give ``twin`` ``block``'s own child modules (attention, norms, feed-forward) and direct tensors: both classes
    have the same children, so the twin computes with the very same weights, and a LoRA that wraps a layer inside
    a child is seen by both."""
    if set(twin._modules) != set(block._modules) or set(twin._parameters) != set(block._parameters):
        raise RuntimeError(f"{type(twin).__name__} and {type(block).__name__} differ in their submodules")
    twin._modules.update(block._modules)
    twin._parameters.update(block._parameters)
    twin._buffers.update(block._buffers)


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


# The tiny autoencoder that decodes a pipeline's clips instead of its VAE (the plan's fast_decode), set by the engine.
_FAST_DECODERS: "weakref.WeakKeyDictionary[Any, Any]" = weakref.WeakKeyDictionary()


def set_fast_decoder(pipe: Any, decoder: Any | None) -> None:
    if decoder is None:
        _FAST_DECODERS.pop(pipe, None)
    else:
        _FAST_DECODERS[pipe] = decoder


def fast_decoder(pipe: Any) -> Any | None:
    return _FAST_DECODERS.get(pipe)


def decode_video_latents(pipe: Any, latents: Any, chunk: int, on_step: ProgressCallback | None = None,
                         cancel: CancelToken | None = None) -> list[Image.Image]:
    """VAE-decode (B, C, F, H, W) latents ``chunk`` frames at a time, reporting stage "decode" after each chunk.
    The same arithmetic as the pipeline's own decode_latents, so frames match the pipeline's PIL output. With a
    fast decoder set for the pipeline, its tiny autoencoder decodes instead (TAESD reads the latents unscaled)."""
    import torch

    fast = fast_decoder(pipe)
    vae = pipe.vae if fast is None else fast
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
            part = flat[first:first + chunk]
            decoded = vae.decode(part.to(dtype=vae.dtype) if fast is None else
                                 part.to(device=vae.device, dtype=vae.dtype)).sample
        images += pipe.video_processor.postprocess(decoded.float(), output_type="pil")
        emit(on_step, "decode", index + 1, total, start)
    pipe.maybe_free_model_hooks()
    return images
