"""The refinement passes of a still run, in order: hires fix (``hires``), then face detail (``face_detail``).
Colour anchoring runs after the last of them, in ``static``."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from PIL import Image

from ..progress import CancelToken, ProgressCallback
from ..settings import StaticSettings, check_box

if TYPE_CHECKING:
    from ..engine import Engine
    from ..source.context import SourceContext
    from .face_detail import FaceDetailResult
    from .hires import HiresResult


def final_size(settings: StaticSettings, first_size: tuple[int, int]) -> tuple[int, int]:
    """The output's (width, height) after the passes."""
    if not settings.hires_on:
        return first_size
    from .hires import hires_size

    return hires_size(settings, first_size)


def check_refinements(settings: StaticSettings, first_size: tuple[int, int]) -> None:
    """What needs the prepared source's size (user face boxes inside the final output), checked before any model
    loads and before the run folder exists."""
    if settings.face_detail and settings.face_boxes:
        size = final_size(settings, first_size)
        for box in settings.face_boxes:
            check_box(box, size)


def wants_latents(settings: StaticSettings) -> bool:
    """The first pass must hand over its latents (the latent upscaler reads them, not the decoded image)."""
    return settings.hires_on and settings.hires_upscaler == "latent"


@dataclass
class Refined:
    image: Image.Image  # raw output of the last pass
    hires: HiresResult | None = None
    faces: FaceDetailResult | None = None
    timings: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def run_refinements(pipe: Any, context: SourceContext, settings: StaticSettings, engine: Engine,
                    first: Image.Image, prompt_kwargs: dict[str, Any], *, latents: Any = None,
                    on_step: ProgressCallback | None = None, cancel: CancelToken | None = None,
                    preview_every: int = 5) -> Refined:
    """Run the passes the settings ask for over the first pass's raw image (and latents)."""
    refined = Refined(first)
    maps = {kind: cmap.image for kind, cmap in context.control_maps.items()}
    if settings.hires_on:
        from .hires import run_hires

        refined.hires = run_hires(pipe, context, settings, engine, first, prompt_kwargs, latents=latents,
                                  on_step=on_step, cancel=cancel, preview_every=preview_every)
        refined.image, maps = refined.hires.image, refined.hires.control_maps
        refined.timings["hires"] = refined.hires.seconds
        refined.notes += refined.hires.notes
    if settings.face_detail:
        from .face_detail import refine_faces

        refined.faces = refine_faces(refined.image, settings, engine, prompt=context.prompt,
                                     negative_prompt=context.negative_prompt, units=context.units,
                                     control_maps=maps, on_step=on_step, cancel=cancel)
        refined.image = refined.faces.image
        refined.timings["face_detail"] = refined.faces.seconds
        refined.notes += refined.faces.notes
    return refined
