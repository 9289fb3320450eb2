"""One uniform step event for every run (static denoising, temporal denoising, decoding), in the spirit of
k-diffusion's callback dict, plus a cheap latent preview and cooperative cancellation."""
from __future__ import annotations

import sys
import threading
import time
import weakref
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
from PIL import Image

# A linear map from SD1.x's 4 latent channels to RGB (the approximation ComfyUI and A1111 use for previews).
# A VAE decode of a full-size latent costs seconds on a CPU; this costs well under a millisecond.
SD15_LATENT_RGB = np.array([
    [0.3512, 0.2297, 0.3227],
    [0.3250, 0.4974, 0.2350],
    [-0.2829, 0.1762, 0.2721],
    [-0.2120, -0.2616, -0.7177],
], dtype=np.float32)


@dataclass(frozen=True)
class StepEvent:
    stage: str  # "denoise", "decode", "load", "controls", ...
    step: int  # 1-based steps done in this stage
    total: int
    timestep: float | None
    elapsed: float  # seconds since the stage started
    eta: float | None  # seconds left in this stage
    preview: Image.Image | None = None

    @property
    def fraction(self) -> float:
        return self.step / self.total if self.total else 1.0


ProgressCallback = Callable[[StepEvent], None]


def latent_preview(latents: Any) -> Image.Image:
    """RGB preview of the first latent (B,4,H,W) or video latent (B,4,F,H,W: the middle frame)."""
    array = latents.detach().float().cpu().numpy() if hasattr(latents, "detach") else np.asarray(latents)
    sample = array[0]
    if sample.ndim == 4:  # (C, F, H, W)
        sample = sample[:, sample.shape[1] // 2]
    rgb = np.tensordot(sample[:4].transpose(1, 2, 0), SD15_LATENT_RGB, axes=1)
    rgb = np.clip((rgb + 1.0) * 127.5, 0, 255).astype(np.uint8)
    return Image.fromarray(rgb, "RGB")


def taesd_preview(latents: Any, decoder: Any) -> Image.Image:
    """A full-size preview that looks like the picture: the first latent (or the middle frame of a video latent)
    decoded by a tiny autoencoder (TAESD works on the UNet's latents as they are; a few ms at 512 px)."""
    import torch

    sample = latents[:1]
    if sample.ndim == 5:  # (B, C, F, H, W)
        sample = sample[:, :, sample.shape[2] // 2]
    parameter = next(decoder.parameters())
    with torch.no_grad():
        image = decoder.decode(sample.to(device=parameter.device, dtype=parameter.dtype)).sample[0]
    array = ((image.float().clamp(-1, 1) + 1) * 127.5).round().byte().permute(1, 2, 0).cpu().numpy()
    return Image.fromarray(array, "RGB")


# The tiny autoencoder that draws a pipeline's previews, set by the engine when its plan says so; weak keys, so a
# freed pipeline leaves nothing behind. Pipelines without one get the linear preview.
_PREVIEW_DECODERS: "weakref.WeakKeyDictionary[Any, Any]" = weakref.WeakKeyDictionary()


def set_preview_decoder(pipe: Any, decoder: Any | None) -> None:
    if decoder is None:
        _PREVIEW_DECODERS.pop(pipe, None)
    else:
        _PREVIEW_DECODERS[pipe] = decoder


def preview_decoder(pipe: Any) -> Any | None:
    try:
        return _PREVIEW_DECODERS.get(pipe)
    except TypeError:  # not weak-referenceable (a test double): no decoder
        return None


def preview_image(pipe: Any, latents: Any) -> Image.Image:
    """The step preview for ``pipe``'s latents: its tiny autoencoder when it has one, else the linear projection."""
    decoder = preview_decoder(pipe)
    return latent_preview(latents) if decoder is None else taesd_preview(latents, decoder)


@dataclass
class CancelToken:
    """Set from any thread (a widget's Cancel button); checked by the step callback between denoising steps."""

    _event: threading.Event = field(default_factory=threading.Event)

    def cancel(self) -> None:
        self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()


class StepReporter:
    """Turns diffusers' callback_on_step_end into StepEvents, previews every `preview_every` steps, and interrupts
    the pipeline when the cancel token is set (diffusers checks `pipe._interrupt` at the start of each step)."""

    def __init__(self, total: int, on_step: ProgressCallback | None, cancel: CancelToken | None,
                 preview_every: int = 0, stage: str = "denoise") -> None:
        self.total, self.on_step, self.cancel = total, on_step, cancel
        self.preview_every, self.stage = preview_every, stage
        self.start = time.perf_counter()
        self.done = 0
        self.interrupted = False
        self.hooks: list[Callable[[int], None]] = []  # called with the step index after each step (IP-Adapter scale)

    def __call__(self, pipe: Any, step_index: int, timestep: Any, kwargs: dict[str, Any]) -> dict[str, Any]:
        self.done = step_index + 1
        if self.on_step is not None:
            elapsed = time.perf_counter() - self.start
            eta = elapsed / self.done * (self.total - self.done) if self.done else None
            preview = None
            if self.preview_every and "latents" in kwargs and (self.done % self.preview_every == 0 or self.done == self.total):
                preview = preview_image(pipe, kwargs["latents"])
            self.on_step(StepEvent(self.stage, self.done, self.total, float(timestep), elapsed, eta, preview))
        for hook in self.hooks:
            hook(step_index)
        if self.cancel is not None and self.cancel.cancelled:
            pipe._interrupt = True
            self.interrupted = True
        return {}


def emit(on_step: ProgressCallback | None, stage: str, step: int, total: int, start: float) -> None:
    """Report a non-denoising stage (loading, decoding) in the same event shape."""
    if on_step is not None:
        elapsed = time.perf_counter() - start
        eta = elapsed / step * (total - step) if step else None
        on_step(StepEvent(stage, step, total, None, elapsed, eta))


class TqdmProgress:
    """A tqdm bar per stage, fed by the uniform step events."""

    def __init__(self, disable: bool = False) -> None:
        self.disable, self.bar, self.stage = disable, None, None

    def __call__(self, event: Any) -> None:
        from tqdm.auto import tqdm

        if self.disable or event.stage == "load" or (event.step == 0 and event.total == 1):
            return  # loading, and the one-shot stage markers after denoising (decode, colour, ...), get no bar
        if self.bar is None or self.stage != event.stage:
            self.close()
            self.bar = tqdm(total=event.total, desc=event.stage, unit="step", file=sys.stderr)
            self.stage = event.stage
        self.bar.n = event.step
        self.bar.refresh()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def quiet_libraries() -> None:
    """Silence the libraries' own progress bars and advice (diffusers, transformers, the hub), for --quiet runs and
    report notebooks: the lab reports its own progress, and their warnings are not the user's to act on."""
    import huggingface_hub.utils
    from diffusers.utils import logging as diffusers_logging
    from transformers.utils import logging as transformers_logging

    for library in (diffusers_logging, transformers_logging):
        library.set_verbosity_error()
        library.disable_progress_bar()
    huggingface_hub.utils.disable_progress_bars()
