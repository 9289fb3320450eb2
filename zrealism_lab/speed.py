"""Speed modes: one setting that combines the measured levers (see the README's performance table).

``quality`` is the documented defaults. ``few-step`` loads the model set's few-step LoRA (LCM-LoRA for SD1.5) with
the LCM sampler, four denoising steps and guidance 1 (so the unconditional half of the batch is dropped).
``bf16`` runs the denoising models under bf16 autocast where the CPU computes bf16 natively (fp32 elsewhere).
``fast`` is both. A mode rewrites the settings it owns before the run starts, and the run records what it ran.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import SettingsError

SPEEDS = ("quality", "fast", "few-step", "bf16")
FEW_STEP_DENOISE = 4  # LCM-LoRA's sweet spot: 2-8 steps; 4 holds detail at 512 px
FEW_STEP_SCHEDULER = "lcm"
FEW_STEP_CFG = 1.0  # LCM is distilled with guidance folded in; above ~2 it burns the picture


@dataclass(frozen=True)
class SpeedPlan:
    mode: str
    few_step: bool
    bf16: bool  # asked for (it acts only where the CPU computes bf16 natively, see ``autocast``)
    autocast: str | None  # "bfloat16" when the run's denoising models run under autocast, else None
    changes: dict[str, Any]  # setting -> value the mode set
    notes: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def apply_speed(settings: Any, models: Any, device: str = "cpu") -> tuple[Any, SpeedPlan]:
    """The settings the mode runs with, and what it changed. ``quality`` changes nothing."""
    mode = settings.speed
    few_step, bf16 = mode in ("fast", "few-step"), mode in ("fast", "bf16")
    changes: dict[str, Any] = {}
    notes: list[str] = []
    if few_step:
        if not models.fast_lora:
            raise SettingsError("speed", mode, "quality or bf16 with this model set (it names no few-step LoRA)",
                                "Add one with ModelSet(fast_lora=...) (LCM-LoRA: latent-consistency/lcm-lora-sdv1-5).")
        loras = tuple(item for item in settings.loras if item[0] != models.fast_lora)
        changes = {"loras": (*loras, (models.fast_lora, 1.0)), "scheduler": FEW_STEP_SCHEDULER, "cfg": FEW_STEP_CFG,
                   "steps": max(FEW_STEP_DENOISE, math.ceil(FEW_STEP_DENOISE / settings.strength - 1e-9))}
        label = Path(models.fast_lora).name if Path(models.fast_lora).exists() else models.fast_lora
        notes.append(f"speed {mode}: {FEW_STEP_DENOISE} {FEW_STEP_SCHEDULER.upper()} steps with the few-step LoRA "
                     f"{label} at guidance {FEW_STEP_CFG:g} (the negative prompt has no effect at 1)")
    autocast = None
    if bf16:
        from .device import cpu_bf16_support

        if device != "cpu":
            notes.append(f"speed {mode}: bf16 autocast is a CPU lever; on {device} the weights' dtype is used")
        elif cpu_bf16_support() is None:
            notes.append(f"speed {mode}: this CPU has no native bf16, so the run stays fp32 (emulated bf16 is slower)")
        else:
            autocast = "bfloat16"
    effective = settings.replace(**changes).validated() if changes else settings
    return effective, SpeedPlan(mode, few_step, bf16, autocast, changes, tuple(notes))


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
