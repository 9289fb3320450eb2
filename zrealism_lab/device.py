"""Device, dtype and memory policy: CUDA fp16, MPS, CPU fp32 (bf16 autocast or bf16 weights where the processor
computes bf16 natively); offload and slicing for small GPUs; which decoder draws previews and clips."""
from __future__ import annotations

import contextlib
import functools
from contextvars import ContextVar
from dataclasses import dataclass, asdict
from pathlib import Path
from typing import Any, Iterator

from .errors import SettingsError

OFFLOAD_MODES = ("auto", "none", "model", "sequential")
DEVICES = ("auto", "cuda", "mps", "cpu")
AUTOCAST_MODES = ("off", "bf16", "auto")  # auto: bf16 on a CPU with native bf16, else off
PREVIEW_MODES = ("auto", "taesd", "linear")  # auto: the tiny autoencoder when the model set has one
_DTYPE_NAMES = {"bf16": "bfloat16", "fp16": "float16", "fp32": "float32", "bfloat16": "bfloat16",
                "float16": "float16", "float32": "float32"}


@dataclass(frozen=True)
class HardwarePlan:
    """What the engine does on this machine; recorded in every run record."""

    device: str
    dtype: str  # "float16" or "float32"
    offload: str  # none | model | sequential
    vae_slicing: bool
    vae_tiling: bool
    attention_slicing: bool
    decode_chunk: int  # frames decoded at once in temporal runs
    total_memory_gb: float | None
    reason: str
    autocast: str | None = None  # "bfloat16": the UNet and ControlNets run under torch.autocast; None: off
    bf16_native: str | None = None  # the CPU feature that computes bf16 natively (avx512_bf16, amx), if any
    preview: str = "auto"  # auto | taesd | linear: what draws the live previews
    fast_decode: bool = False  # clips decoded by the tiny autoencoder (TAESD) instead of the VAE

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def torch_dtype(self):
        import torch

        return getattr(torch, self.dtype)

    def autocast_context(self) -> Any:
        """torch.autocast for this plan, or a context that does nothing when autocast is off."""
        import contextlib

        import torch

        if self.autocast is None:
            return contextlib.nullcontext()
        return torch.autocast(torch.device(self.device).type, dtype=getattr(torch, self.autocast))


def apply_autocast(module: Any, plan: HardwarePlan) -> Any:
    """Run ``module``'s forward under the plan's autocast (once: a second call changes nothing). Wrapping the module
    rather than a call site covers every pipeline built over it: stills, clips, hires and face passes, bare calls.
    The engine wraps the denoising models (UNet, motion UNet, ControlNets), where the time goes; the VAE and the
    text encoder keep the weights' dtype, so an fp32 decode keeps the final pixels' precision."""
    # A run's speed mode may ask for bf16 autocast on a plain CPU engine; offloaded engines (GPU plans) keep
    # accelerate's hooks alone on the forward.
    per_run = plan.device == "cpu" and plan.offload == "none"
    if getattr(module, "zrealism_autocast_wrapped", False) or (plan.autocast is None and not per_run):
        return module
    forward = module.forward

    @functools.wraps(forward)
    def autocast_forward(*args: Any, **kwargs: Any) -> Any:
        dtype = plan.autocast or RUN_AUTOCAST.get()  # the engine's plan, else the running run's speed mode
        if dtype is None:
            return forward(*args, **kwargs)
        import torch

        with torch.autocast(torch.device(plan.device).type, dtype=getattr(torch, dtype)):
            return forward(*args, **kwargs)

    module.forward = autocast_forward
    module.zrealism_autocast = plan.autocast
    module.zrealism_autocast_wrapped = True
    return module


# A run's own autocast (speed="bf16"/"fast"), set around one run in its thread: the engine's modules stay the same
# objects, so switching speed modes between runs loads nothing.
RUN_AUTOCAST: ContextVar[str | None] = ContextVar("zrealism_run_autocast", default=None)


@contextlib.contextmanager
def run_autocast(dtype: str | None) -> Iterator[None]:
    token = RUN_AUTOCAST.set(dtype)
    try:
        yield
    finally:
        RUN_AUTOCAST.reset(token)


@functools.lru_cache(maxsize=1)
def cpu_bf16_support() -> str | None:
    """The CPU feature that computes bf16 natively (AMX or AVX512-BF16 on x86, BF16 on Arm), or None. Without it
    torch emulates bf16 and runs slower than fp32."""
    import torch

    probes = (("amx", "_is_amx_tile_supported"), ("avx512_bf16", "_is_avx512_bf16_supported"))
    for name, probe in probes:
        check = getattr(torch.cpu, probe, None)
        try:
            if check is not None and check():
                return name
        except RuntimeError:
            pass
    flags = cpuinfo_flags()
    for flag in ("amx_bf16", "avx512_bf16", "bf16"):
        if flag in flags:
            return flag
    return None


def cpuinfo_flags(path: str = "/proc/cpuinfo") -> set[str]:
    """The CPU's feature flags as Linux lists them (x86 "flags", Arm "Features"); empty elsewhere."""
    try:
        text = Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return set()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip().lower() in ("flags", "features"):
            return set(value.split())
    return set()


def resolve_device(preference: str = "auto") -> str:
    import torch

    if preference not in DEVICES:
        raise SettingsError("device", preference, "one of " + ", ".join(DEVICES))
    if preference == "auto":
        if torch.cuda.is_available():
            return "cuda"
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return "mps"
        return "cpu"
    if preference == "cuda" and not torch.cuda.is_available():
        raise SettingsError("device", preference, "a device present on this machine (no CUDA GPU was found)",
                            "Use device='auto' or 'cpu'.")
    if preference == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise SettingsError("device", preference, "a device present on this machine (MPS is not available)")
    return preference


def plan_hardware(device: str = "auto", offload: str = "auto", dtype: str | None = None, *,
                  autocast: str = "off", preview: str = "auto", fast_decode: bool = False) -> HardwarePlan:
    """Pick offload and slicing from the device and its memory; every choice can be overridden.

    ``dtype``: the weights' dtype (float16/fp16, bfloat16/bf16, float32/fp32; None: fp16 on GPUs, fp32 on CPU).
    ``autocast``: "bf16" runs the UNet and ControlNets under CPU bf16 autocast over fp32 weights; "auto" does so
    where the CPU computes bf16 natively; "off" (default) keeps fp32. ``preview`` and ``fast_decode``: see
    ``PREVIEW_MODES``; the engine checks them against its model set."""
    import torch

    if offload not in OFFLOAD_MODES:
        raise SettingsError("offload", offload, "one of " + ", ".join(OFFLOAD_MODES))
    if dtype is not None and dtype not in _DTYPE_NAMES:
        raise SettingsError("dtype", dtype, "float16 (fp16), bfloat16 (bf16), float32 (fp32) or none (automatic)")
    autocast = "bf16" if autocast == "bfloat16" else autocast
    if autocast not in AUTOCAST_MODES:
        raise SettingsError("autocast", autocast, "one of " + ", ".join(AUTOCAST_MODES))
    if preview not in PREVIEW_MODES:
        raise SettingsError("preview", preview, "one of " + ", ".join(PREVIEW_MODES))
    device = resolve_device(device)
    dtype = _DTYPE_NAMES.get(dtype) if dtype is not None else None
    native = cpu_bf16_support() if device == "cpu" else None
    if device == "cpu" and (dtype == "bfloat16" or autocast == "bf16") and native is None:
        what = "dtype" if dtype == "bfloat16" else "autocast"
        raise SettingsError(what, "bfloat16" if what == "dtype" else autocast,
                            "float32 on this CPU (it has no native bf16: no AMX, AVX512-BF16 or Arm BF16)",
                            "bf16 would be emulated here and run slower than fp32; leave it off, or use "
                            "autocast='auto', which turns bf16 on only where the processor computes it natively.")
    if autocast == "bf16" and device != "cpu":
        raise SettingsError("autocast", autocast, f"off on {device}",
                            "CPU autocast is for CPUs; on a GPU choose the weights' dtype (float16 or bfloat16).")
    total_gb: float | None = None
    if device == "cuda":
        total_gb = torch.cuda.get_device_properties(0).total_memory / 2**30
    chosen_dtype = dtype or ("float16" if device in ("cuda", "mps") else "float32")
    use_autocast = device == "cpu" and chosen_dtype == "float32" and (
        autocast == "bf16" or (autocast == "auto" and native is not None))
    if offload == "auto":
        if device != "cuda" or total_gb is None:
            offload, reason = "none", f"{device}: offload only helps CUDA GPUs"
        elif total_gb < 5:
            offload, reason = "sequential", f"{total_gb:.1f} GB GPU: sequential offload (slow, smallest memory)"
        elif total_gb < 10:
            offload, reason = "model", f"{total_gb:.1f} GB GPU: model offload keeps one component on the GPU at a time"
        else:
            offload, reason = "none", f"{total_gb:.1f} GB GPU: everything stays on the GPU"
    elif offload == "model" and device != "cuda":  # diffusers' model offload moves components to an accelerator
        raise SettingsError("offload", offload, f"none or sequential on {device}",
                            "Model offload swaps components onto a CUDA GPU; this machine runs on "
                            f"{device}, where everything already stays in main memory.")
    else:
        reason = f"offload {offload} chosen by the user"
    small = device == "cuda" and total_gb is not None and total_gb < 10
    return HardwarePlan(
        device=device, dtype=chosen_dtype, offload=offload,
        vae_slicing=small or device != "cuda", vae_tiling=small, attention_slicing=small,
        decode_chunk=4 if small else 16, total_memory_gb=None if total_gb is None else round(total_gb, 2), reason=reason,
        autocast="bfloat16" if use_autocast else None, bf16_native=native, preview=preview,
        fast_decode=bool(fast_decode),
    )
