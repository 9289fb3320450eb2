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
