"""Full-size cost of the refinement passes: a still's hires fix (512 -> 1024 px, two ControlNets, VAE tiling) and
the face-detail pass per face (each crop regenerated at 512 px), measured in one fresh child process over the
random-weight bundle so that its peak resident memory is that run's own.

The child runs one ``run_static`` with both passes: a one-step first pass at 512 px, a one-step hires pass at 1024 px
and two faces of one step each. Step times come from the pipeline's ControlNet forward (start) and the lab's step
events (end), stage by stage, so the VAE encode and decode around the steps are not counted as step time."""
from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .table import GIB, Row, format_list, format_value, row

SECTION = "full size: refinement passes"
HIRES_FACTOR = 2.0
FIRST_SIZE = 512
FACES = 2  # two faces, so the per-face figure is an average over more than one crop
REFINE_KINDS = ("depth", "canny")  # the weightless detectors: no annotator checkpoints needed


class StageSteps:
    """Durations of the denoising steps of each stage ("denoise", "hires", "face"): a step starts at the first
    ControlNet forward after the previous step ended and ends at the lab's step event."""

    def __init__(self) -> None:
        self.steps: dict[str, list[float]] = {}
        self.started: float | None = None
        self.handle: Any = None

    def attach(self, pipe: Any) -> "StageSteps":
        module = getattr(pipe, "controlnet", None) or pipe.unet
        self.handle = module.register_forward_pre_hook(self.forward_starts)
        return self

    def detach(self) -> None:
        if self.handle is not None:
            self.handle.remove()
            self.handle = None

    def forward_starts(self, module: Any, args: Any) -> None:
        if self.started is None:
            self.started = time.perf_counter()

    def on_step(self, event: Any) -> None:
        if event.stage not in ("denoise", "hires", "face") or event.timestep is None:
            return
        if self.started is not None:
            self.steps.setdefault(event.stage, []).append(time.perf_counter() - self.started)
        self.started = None


def face_boxes(size: int, count: int = FACES) -> tuple[tuple[int, int, int, int], ...]:
    """``count`` face-sized boxes (a sixth of the side) side by side in the top half of a ``size`` px output."""
    side = size // 6
    gap = size // (count + 1)
    return tuple((gap * (i + 1) - side // 2, size // 6, gap * (i + 1) + side // 2, size // 6 + side)
                 for i in range(count))


def refine_settings(first_size: int = FIRST_SIZE, factor: float = HIRES_FACTOR, faces: int = FACES) -> Any:
    """The measured run's settings: one first-pass step, one hires step, one step per face at 512 px."""
    from ..models.fullsize import FULLSIZE_CONTROLS
    from ..settings import StaticSettings

    final = round(first_size * factor)
    return StaticSettings(size=first_size, steps=2, strength=0.5, detect_resolution=first_size, seed=0,
                          controls=FULLSIZE_CONTROLS, hires=factor, hires_steps=2, hires_strength=0.5,
                          face_detail=True, face_boxes=face_boxes(final, faces), face_size=512, face_steps=2,
                          face_strength=0.5)


def child_refine(bundle: Path, params: dict[str, Any]) -> dict[str, Any]:
    """In a fresh process: load the static parts, then one run with both passes; peak RSS, stage seconds, step
    times, and one tiled VAE decode at the output size."""
    import dataclasses

    import torch

    from ..engine.engine import Engine
    from ..generate import face_detail, hires  # noqa: F401 - imported before the clock starts, not inside a pass
    from ..generate.static import run_static
    from ..models.fullsize import fullsize_modelset
    from .measure import PeakPoller, memory_breakdown, page_in, peak_rss_bytes, reset_peak_rss
    from .overhead import source_image

    torch.set_grad_enabled(False)
    first_size = int(params.get("size", FIRST_SIZE))
    settings = refine_settings(first_size, float(params.get("factor", HIRES_FACTOR)), int(params.get("faces", FACES)))
    engine = Engine(fullsize_modelset(bundle, REFINE_KINDS), device="cpu", offload="none")
    # Tiling from the plan (as on a small GPU): the 1024 px pass encodes and decodes in 512 px tiles.
    engine.plan = dataclasses.replace(engine.plan, vae_tiling=True)
    start = time.perf_counter()
    pipe = engine.static_pipeline(REFINE_KINDS)
    roles = ("unet", "vae", "text_encoder", *[f"controlnet:{k}" for k in REFINE_KINDS])
    page_in([engine.component(role) for role in roles])
    out: dict[str, Any] = {"load": time.perf_counter() - start, "rss_loaded": memory_breakdown()["rss"]}
    clock = StageSteps().attach(pipe)
    image = source_image(first_size)
    start, cpu_start = time.perf_counter(), time.process_time()
    if reset_peak_rss():
        result = run_static(image, settings, engine=engine, evaluate=False, on_step=clock.on_step)
        out["peak"] = peak_rss_bytes()
    else:
        with PeakPoller() as poller:
            result = run_static(image, settings, engine=engine, evaluate=False, on_step=clock.on_step)
        out["peak"] = poller.peak
    clock.detach()
    out["seconds"], out["cpu_seconds"] = time.perf_counter() - start, time.process_time() - cpu_start
    out["timings"] = dict(result.timings)
    out["steps"] = clock.steps
    out["size"] = list(result.image.size)
    out["hires"] = result.hires.to_dict()
    out["faces"] = sum(f.refined for f in result.faces.faces)
    out["decode"] = _decode_cost(pipe, result.image.size)
    return out


def _decode_cost(pipe: Any, size: tuple[int, int]) -> dict[str, Any]:
    """Seconds of one tiled VAE decode at ``size`` (the part of the hires pass after its steps). The decode in
    one piece is not run: at 1024 px it needs several GiB more, which a shared 24 GiB machine may not have."""
    import torch

    latents = torch.randn(1, 4, size[1] // 8, size[0] // 8, generator=torch.Generator().manual_seed(0))
    vae = pipe.vae
    vae.enable_tiling()
    start = time.perf_counter()
    vae.decode(latents / vae.config.scaling_factor)
    return {"tiled": {"seconds": time.perf_counter() - start}}


def refine_rows(folder: Path, on_line: Callable[[str], None]) -> list[Row]:
    """The rows of one ``refine`` child over the full-size bundle in ``folder`` (written first if it is not there)."""
    from ..models.fullsize import MARKER_NAME
    from .fullsize import run_child

    if not (Path(folder) / MARKER_NAME).is_file():
        on_line(f"  writing full-size random weights to {folder} ...")
        run_child("write", Path(folder), {})
    on_line(f"  hires {FIRST_SIZE} -> {round(FIRST_SIZE * HIRES_FACTOR)} px and {FACES} faces at 512 px "
            "(fresh process) ...")
    point = run_child("refine", folder, {"size": FIRST_SIZE, "factor": HIRES_FACTOR, "faces": FACES})
    return rows_from(point)


def rows_from(point: dict[str, Any]) -> list[Row]:
    """Rows from a ``child_refine`` result."""
    timings, steps, hires = point["timings"], point["steps"], point["hires"]
    size = "x".join(str(v) for v in point["size"])
    first = "x".join(str(v) for v in hires["first_size"])
    hires_steps = steps.get("hires", [])
    face_steps = steps.get("face", [])
    faces = max(1, point["faces"])
    decode = point["decode"]
    rows = [
        row(SECTION, f"peak RSS, still {first} -> {size} hires + {point['faces']} faces, 2 ControlNets, VAE tiling",
            point["peak"] / GIB, "GiB",
            note=f"after loading {point['rss_loaded'] / GIB:.2f} GiB: the passes add "
                 f"{(point['peak'] - point['rss_loaded']) / GIB:.2f} GiB; whole run {format_value(point['seconds'])} s "
                 f"wall, {format_value(point.get('cpu_seconds'))} s of CPU time ({_stages(point['timings'])})"),
        row(SECTION, f"hires pass {first} -> {size} (upscale, control maps, encode, "
                     f"{hires['denoise_steps']} steps, tiled decode)", timings.get("hires"), "s",
            note=f"VAE tiling {'on' if hires['vae_tiling'] else 'off'}; control maps {hires['control_maps']}"),
        row(SECTION, f"hires pass at {size}, 2 ControlNets, CFG: seconds per denoising step",
            sum(hires_steps) / len(hires_steps) if hires_steps else None, "s/step",
            note=f"steps {format_list(hires_steps)} s; first pass at {first}: {format_list(steps.get('denoise', []))}"
                 " s/step"),
        row(SECTION, "face pass per face (crop regenerated at 512 px, 1 step, pasted back)",
            timings.get("face_detail", 0.0) / faces, "s/face",
            note=f"{point['faces']} faces in {format_value(timings.get('face_detail'))} s; face steps "
                 f"{format_list(face_steps)} s"),
        row(SECTION, f"VAE decode at {size}, tiled (512 px tiles)", decode["tiled"]["seconds"], "s"),
    ]
    return rows


def _stages(timings: dict[str, float]) -> str:
    return ", ".join(f"{name} {format_value(timings[name])} s" for name in ("generate", "hires", "face_detail")
                     if name in timings)
