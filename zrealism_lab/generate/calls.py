"""Arguments of the diffusers pipeline calls that static and temporal runs share."""
from __future__ import annotations

from typing import Any, Sequence

from ..settings import ControlUnit


def control_arguments(units: Sequence[ControlUnit]) -> dict[str, Any]:
    """How strongly and during which part of the schedule each ControlNet of the MultiControlNet guides."""
    return {"controlnet_conditioning_scale": [u.scale for u in units],
            "control_guidance_start": [u.start for u in units],
            "control_guidance_end": [u.end for u in units]}
