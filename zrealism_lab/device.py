"""Device, dtype and memory policy: CUDA fp16, MPS, CPU fp32; offload and slicing for small GPUs."""
from __future__ import annotations

from dataclasses import dataclass, asdict
from typing import Any

from .errors import SettingsError

OFFLOAD_MODES = ("auto", "none", "model", "sequential")
DEVICES = ("auto", "cuda", "mps", "cpu")


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

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def torch_dtype(self):
        import torch

        return getattr(torch, self.dtype)


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


def plan_hardware(device: str = "auto", offload: str = "auto", dtype: str | None = None) -> HardwarePlan:
    """Pick offload and slicing from the device and its memory; every choice can be overridden."""
    import torch

    if offload not in OFFLOAD_MODES:
        raise SettingsError("offload", offload, "one of " + ", ".join(OFFLOAD_MODES))
    if dtype not in (None, "float16", "float32", "bfloat16"):
        raise SettingsError("dtype", dtype, "float16, bfloat16, float32 or none (automatic)")
    device = resolve_device(device)
    total_gb: float | None = None
    if device == "cuda":
        total_gb = torch.cuda.get_device_properties(0).total_memory / 2**30
    chosen_dtype = dtype or ("float16" if device in ("cuda", "mps") else "float32")
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
    )
