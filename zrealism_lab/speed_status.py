"""What a speed mode means on this machine, for people: whether the few-step LoRA is here (found without any
download) and a sentence saying what the mode changes (the lab's speed field, `zrealism models check`). Apart from
``speed`` because it looks at the adapter files, which the settings must not import."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from .speed import FEW_STEP_CFG, FEW_STEP_DENOISE, FEW_STEP_SCHEDULER


def few_step_lora_location(models: Any) -> tuple[str | None, bool]:
    """Where the model set's few-step LoRA is (a path, or the hub cache's file) and whether it is on this machine,
    looked up without any download."""
    name = getattr(models, "fast_lora", None)
    if not name:
        return None, False
    path = Path(name).expanduser()
    if path.exists():
        return str(path), True
    if name.count("/") == 1 and not path.is_absolute():  # a hub id: its file in the hub cache, if fetched before
        from huggingface_hub import try_to_load_from_cache

        from .adapters.files import DIFFUSERS_LORA_FILE

        found = try_to_load_from_cache(name, DIFFUSERS_LORA_FILE)
        return (found, True) if isinstance(found, str) else (name, False)
    return name, False


def speed_note(mode: str, models: Any, device: str = "cpu") -> str:
    """What a speed mode changes, in a sentence for the lab (and whether its weights are here)."""
    if mode == "quality":
        return "quality: the settings as shown (no lever on)."
    parts = []
    if mode in ("fast", "few-step"):
        where, present = few_step_lora_location(models)
        if where is None:
            return f"{mode}: this model set names no few-step LoRA, so only quality or bf16 can run."
        parts.append(f"{FEW_STEP_DENOISE} {FEW_STEP_SCHEDULER.upper()} steps with the few-step LoRA, guidance "
                     f"{FEW_STEP_CFG:g} (steps, sampler and CFG above are overridden; the negative prompt has no "
                     f"effect)")
        if not present and getattr(models, "name", "") == "tiny":
            parts.append("the tiny few-step LoRA is built with the tiny bundle on the first run")
        elif not present and where.count("/") == 1 and not Path(where).is_absolute():
            parts.append(f"needs {where}: fetch it with `zrealism models download {models.name}` on a machine with "
                         "internet access")
        elif not present:
            parts.append(f"needs the file {where}, which is not there")
    if mode in ("fast", "bf16"):
        from .device import cpu_bf16_support

        native = cpu_bf16_support() if device == "cpu" else None
        parts.append(f"bf16 autocast for the UNet and ControlNets ({native})" if native else
                     "no bf16 here (the CPU has no native bf16, so it stays fp32)" if device == "cpu" else
                     f"bf16 autocast is a CPU lever (on {device} the weights' dtype is used)")
    return f"{mode}: " + "; ".join(parts) + "."
