"""Checks before Run, made whenever a setting changes: the preset's weights, each enabled unit's detector files
and packages, and the output size for this source. A blocking problem disables Run with its reason, so nobody
learns after 25 s of loading that a checkpoint is missing. Touches no network and loads no model."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence

from ..errors import MissingWeightsError, SettingsError


@dataclass(frozen=True)
class Problem:
    where: str  # "model", "unit:<kind>" or "size"
    text: str
    blocking: bool = True


def model_problems(preset: str, kinds: Sequence[str]) -> list[Problem]:
    """The components a still with these control kinds loads (base, VAE, their ControlNets), where they are missing.
    The tiny bundle is the lab's own: the first Run builds it."""
    from ..models.loading import locate
    from ..models.modelset import resolve_modelset

    if preset == "tiny":
        return []
    try:
        modelset = resolve_modelset(preset)
    except Exception as exc:  # noqa: BLE001 - an unreadable model folder: say so instead of a traceback
        return [Problem("model", f"the model set '{preset}' cannot be read: {exc}")]
    wanted = {"base", "vae", *(f"controlnet:{kind}" for kind in kinds)}
    missing = [status for status in (locate(ref) for ref in modelset.components() if ref.role in wanted)
               if not status.present]
    if not missing:
        return []
    roles = ", ".join(status.role for status in missing)
    how = (f"download them with `zrealism models download {preset}` on a machine with internet access"
           if preset == "realistic-vision" else "point the components at local files")
    return [Problem("model", f"weights missing on this machine: {roles}. On the Model tab: {how}, or pick the "
                             "'tiny' preset to try the lab offline.")]


def unit_problems(kind: str, label: str, method: str, annotator_folder: str | None) -> list[Problem]:
    """What one enabled unit's detector lacks here: a package, or checkpoint files (offline or not in a folder)."""
    from ..control import CONTROL_PROVIDERS
    from ..control.annotators import ANNOTATORS, locate_annotator

    provider = CONTROL_PROVIDERS.get(kind)
    spec = provider.methods.get(method)
    if spec is None:
        return [Problem(f"unit:{kind}", f"{label}: unknown detector '{method}'")]
    offline = [name for name, other in provider.methods.items() if not other.needs_weights and other.missing is None]
    instead = f" Switch to '{provider.methods[offline[0]].label}', which needs no files." if offline else ""
    lacking = spec.missing() if spec.missing is not None else None
    if lacking:
        return [Problem(f"unit:{kind}", f"{label}: {lacking}.{instead}")]
    if not spec.needs_weights or (kind, method) not in ANNOTATORS:
        return []
    try:
        where = locate_annotator(kind, method, annotator_folder)
    except MissingWeightsError:
        files = ", ".join(ANNOTATORS[(kind, method)].files)
        return [Problem(f"unit:{kind}", f"{label}: the detector needs {files}, not found on this machine.{instead} "
                                        "Or put the files in a folder and set ZREALISM_ANNOTATOR_DIR to it.")]
    if not where.local_files_only:
        return [Problem(f"unit:{kind}", f"{label}: its detector files are not on this machine yet; Run downloads "
                                        f"them from {where.source} first.", blocking=False)]
    return []


def min_size_for(width: int, height: int) -> int:
    """The smallest size (long side, a multiple of 8) at which this source's short side stays at 64 px."""
    from ..source.preparation import MIN_SIDE

    long_side, short_side = max(width, height), min(width, height)
    size = max(MIN_SIDE, math.ceil(MIN_SIDE * long_side / short_side / 8) * 8)
    while True:
        if short_side * size // long_side // 8 * 8 >= MIN_SIDE:
            return size
        size += 8


def size_problems(size: Any, source_size: tuple[int, int] | None) -> list[Problem]:
    """The output size this source gets at ``size``; a too-extreme aspect for that size blocks."""
    from ..source.preparation import fit_size

    if source_size is None or isinstance(size, bool) or not isinstance(size, int) or size < 64:
        return []
    width, height = source_size
    try:
        fit_size(int(width), int(height), size)
    except SettingsError:
        return [Problem("size", f"this {width}×{height} source is too narrow for size {size}: its short side would "
                                f"be {min(width, height) * (size // 8 * 8) // max(width, height)} px, below 64 px. "
                                "Raise size "
                                f"(long side) to at least {min_size_for(width, height)}.")]
    return []


def blocking(problems: Sequence[Problem]) -> list[Problem]:
    return [p for p in problems if p.blocking]


__all__ = ["Problem", "blocking", "min_size_for", "model_problems", "size_problems", "unit_problems"]
