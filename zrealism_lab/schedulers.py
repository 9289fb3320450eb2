"""Scheduler registry: names users know from A1111/ComfyUI mapped to diffusers scheduler configurations."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .registry import Registry


@dataclass(frozen=True)
class SchedulerChoice:
    label: str
    class_name: str
    overrides: dict[str, Any] = field(default_factory=dict)
    seeded: bool = False  # takes a noise-sampler seed (SDE samplers) so a seed means the same picture


SCHEDULERS: Registry[SchedulerChoice] = Registry("scheduler")
SCHEDULERS.register("dpmpp-2m-karras", SchedulerChoice(
    "DPM++ 2M Karras", "DPMSolverMultistepScheduler",
    {"algorithm_type": "dpmsolver++", "solver_order": 2, "use_karras_sigmas": True}))
SCHEDULERS.register("dpmpp-sde-karras", SchedulerChoice(
    "DPM++ SDE Karras", "DPMSolverSDEScheduler", {"use_karras_sigmas": True}, seeded=True))
SCHEDULERS.register("euler-a", SchedulerChoice("Euler a", "EulerAncestralDiscreteScheduler"))
SCHEDULERS.register("euler", SchedulerChoice("Euler", "EulerDiscreteScheduler"))
SCHEDULERS.register("ddim", SchedulerChoice("DDIM", "DDIMScheduler", {"clip_sample": False}))
SCHEDULERS.register("unipc", SchedulerChoice("UniPC", "UniPCMultistepScheduler"))
# Few-step samplers, for the distilled LoRAs they were made with (LCM-LoRA; TCD; Hyper-SD and Lightning: trailing Euler)
SCHEDULERS.register("lcm", SchedulerChoice("LCM", "LCMScheduler"))
SCHEDULERS.register("tcd", SchedulerChoice("TCD", "TCDScheduler"))
SCHEDULERS.register("euler-trailing", SchedulerChoice("Euler (trailing)", "EulerDiscreteScheduler",
                                                      {"timestep_spacing": "trailing"}))


def make_scheduler(name: str, base_config: dict[str, Any], seed: int | None = None):
    """Build the named scheduler from the checkpoint's own scheduler config (betas, offsets) plus our overrides."""
    import diffusers

    choice = SCHEDULERS.get(name)
    cls = getattr(diffusers, choice.class_name)
    overrides = dict(choice.overrides)
    if choice.seeded and seed is not None:
        overrides["noise_sampler_seed"] = seed
    return cls.from_config(dict(base_config), **overrides)


def denoise_steps(steps: int, strength: float, free_init_iters: int = 1) -> list[int]:
    """Denoising steps the video-to-video pipeline runs in each pass. diffusers applies strength again to the
    already shortened schedule at every FreeInit pass, so each pass is shorter than the one before."""
    counts, n = [], min(int(steps * strength), steps)
    if free_init_iters <= 1:
        return [n]
    for _ in range(free_init_iters):
        n = min(int(n * strength), n)
        counts.append(n)
    return counts
