"""Lab against bare diffusers on the same loaded components: the inputs both get, and the overhead rows.

The lab's *generation path* is a run's wall time minus the stages bare diffusers does not do at all (intake,
background analysis, preparation, control-map detection, colour anchoring, metrics). It is timed against one bare
diffusers pipeline call with the lab's own prepared image, control maps and prompts, the same scheduler and seed,
so the ratio is the price of the lab's plumbing and the two outputs can be compared pixel by pixel.
"""
from __future__ import annotations

import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from .measure import Samples, interleaved
from .table import Row, format_list, format_value, load_average, row

SOURCE_STAGES = ("intake", "background", "prepare", "controls")  # what bare diffusers does not do


# ------------------------------------------------------------------------------------------------ inputs


def source_image(size: int) -> Any:
    """The bundled transparent sample character, at ``size`` px (the lab's intake and preparation run on it)."""
    from PIL import Image

    from ..source.samples import load_sample

    image = load_sample("transparent")
    return image if image.size == (size, size) else image.resize((size, size), Image.LANCZOS)


def static_settings(size: int, steps: int = 8, strength: float = 0.5, controls: Any = None, **extra: Any) -> Any:
    from ..settings import StaticSettings

    return StaticSettings(size=size, steps=steps, strength=strength, detect_resolution=size, seed=0,
                          controls=controls, **extra)


def temporal_settings(size: int, frames: int = 8, steps: int = 8, strength: float = 0.5, controls: Any = None,
                      **extra: Any) -> Any:
    from ..settings import TemporalSettings

    return TemporalSettings(size=size, frames=frames, steps=steps, strength=strength, detect_resolution=size,
                            seed=0, scheduler="ddim", controls=controls, **extra)


def max_pixel_difference(a: Sequence[Any], b: Sequence[Any]) -> int:
    """Largest difference of any 8-bit channel between two lists of images (the same outputs give 0; a decode
    that divides where diffusers multiplies by the reciprocal gives 1)."""
    if len(a) != len(b):
        return 255
    return max(int(np.abs(np.asarray(x.convert("RGB"), np.int16) - np.asarray(y.convert("RGB"), np.int16)).max())
               for x, y in zip(a, b))


def stage_note(timings: dict[str, float]) -> str:
    """A lab run's stage seconds, in pipeline order, for a row's note."""
    keys = [k for k in (*SOURCE_STAGES, "load", "generate", "decode", "colour", "metrics") if k in timings]
    return ", ".join(f"{k} {format_value(timings[k])}" for k in keys)


def _pixels_note(difference: int) -> str:
    return "same pixels" if difference == 0 else f"pixels differ by at most {difference}/255"


def _generation_seconds(wall: float, timings: dict[str, float]) -> float:
    """A lab run's wall time minus the stages bare diffusers does not do."""
    skipped = sum(timings.get(k, 0.0) for k in (*SOURCE_STAGES, "colour", "metrics"))
    return wall - skipped


def _median_timings(runs: Sequence[Any]) -> dict[str, float]:
    return {k: statistics.median(r.timings.get(k, 0.0) for r in runs) for k in runs[-1].timings}


def _denoise(settings: Any) -> int:
    return max(1, int(settings.steps * settings.strength))


# ------------------------------------------------------------------------------------------------ static


def static_overhead_inputs(engine: Any, size: int, controls: Any = None, *, steps: int = 8, strength: float = 0.5
                           ) -> tuple[Any, dict[str, Any], Any, tuple[str, ...]]:
    """The engine's static pipeline, a bare call's arguments (the lab's own prepared image, control maps and
    prompts at ``size``), the settings and the control kinds."""
    from ..generate.static import pipeline_arguments
    from ..prompts import prepare_prompts
    from ..source.context import understand_source

    settings = static_settings(size, steps=steps, strength=strength, controls=controls)
    ctx = understand_source(source_image(size), settings, engine)
    kinds = tuple(u.kind for u in ctx.units)
    pipe = engine.static_pipeline(kinds)
    call = pipeline_arguments(ctx, settings, prepare_prompts(pipe, ctx.prompt, ctx.negative_prompt).pipeline_kwargs())
    return pipe, call, settings, kinds


def lab_against_bare(lab_run: Callable[[], Any], bare_pipe: Any, bare_call: dict[str, Any],
                     fresh_generator: Callable[[], Any], repeats: int) -> tuple[list[float], list[Any], list[float], Any]:
    """Interleave a whole lab run and the bare pipeline call (ABAB..., so load spikes hit both), timing each; the
    bare call gets a fresh scheduler and seeded generator outside its timing. Returns (lab seconds, lab results,
    bare seconds, the last bare output), the warm-up round dropped."""
    lab_walls: list[float] = []
    lab_runs: list[Any] = []
    bare_walls: list[float] = []
    bare_outputs: list[Any] = []

    def lab() -> None:
        start = time.perf_counter()
        lab_runs.append(lab_run())
        lab_walls.append(time.perf_counter() - start)

    def bare() -> None:
        generator = fresh_generator()
        start = time.perf_counter()
        bare_outputs[:] = [bare_pipe(**bare_call, generator=generator)]
        bare_walls.append(time.perf_counter() - start)

    interleaved({"lab": lab, "bare": bare}, repeats)
    return lab_walls[1:], lab_runs[1:], bare_walls[1:], bare_outputs[0]


def comparison_rows(section: str, label: str, lab_walls: list[float], runs: list[Any], bare_walls: list[float],
                    difference: int) -> list[Row]:
    """The lab's generation path over the bare call (the headline ratio), the bare call, and the whole lab run."""
    generation = Samples([_generation_seconds(w, r.timings) for w, r in zip(lab_walls, runs)])
    bare_s = Samples(bare_walls)
    # Each interleaved pair's own ratio: a real overhead shows in every pair, a load spike in one or two.
    pairs = [g / b for g, b in zip(generation.values, bare_s.values)]
    return [
        row(section, f"{label}: lab generation path / bare diffusers", generation.median / bare_s.median, "x",
            "<= 1.05", f"lab {generation.text()}; bare {bare_s.text()}; pair ratios {format_list(pairs)}; "
                       f"{_pixels_note(difference)}"),
        row(section, f"{label}: bare diffusers call", bare_s.median, "s"),
        row(section, f"{label}: lab run, evaluate=False", Samples(lab_walls).median, "s",
            note=stage_note(_median_timings(runs))),
    ]


def static_overhead_rows(engine: Any, size: int, repeats: int, section: str = "overhead (tiny)",
                         controls: Any = None) -> list[Row]:
    """Lab static generation path against a bare StableDiffusionControlNetImg2ImgPipeline call on the same
    components, inputs and seed; then whole lab runs (evaluate=False, and with metrics and the record)."""
    import torch

    from ..generate.static import run_static
    from ..schedulers import make_scheduler

    pipe, call, settings, kinds = static_overhead_inputs(engine, size, controls)
    image = source_image(size)

    def fresh_generator() -> Any:
        pipe.scheduler = make_scheduler(settings.scheduler, engine.scheduler_config(), seed=settings.seed)
        return torch.Generator("cpu").manual_seed(settings.seed)

    lab_walls, runs, bare_walls, output = lab_against_bare(
        lambda: run_static(image, settings, engine=engine, evaluate=False), pipe, call, fresh_generator, repeats)
    bare_images = output.images
    difference = max_pixel_difference([runs[-1].raw], bare_images)
    label = f"static {size} px, {len(kinds)} ControlNets, {_denoise(settings)} steps"
    rows = comparison_rows(section, label, lab_walls, runs, bare_walls, difference)
    with tempfile.TemporaryDirectory(prefix="zrealism-bench-") as folder:
        full: list[Any] = []

        def full_run() -> None:
            full.append(run_static(image, settings, engine=engine, evaluate=True, out_dir=folder))

        samples = interleaved({"full": full_run}, max(1, repeats // 2 + 1), warmup=0)["full"]
    rows.append(row(section, f"{label}: full lab run (metrics + run record)", samples.median, "s",
                    note=stage_note(_median_timings(full))))
    return rows


def thread_rows(engine: Any, threads: int, repeats: int, size: int = 64) -> list[Row]:
    """The same bare tiny call with torch's default thread count and with one thread. On a machine whose cores are
    busy with other work, every multi-threaded operator waits at its barrier for a descheduled worker; the tiny
    bundle's thousands of small operators then run many times slower than on one thread."""
    import torch

    from ..schedulers import make_scheduler

    previous = torch.get_num_threads()
    pipe, call, settings, _ = static_overhead_inputs(engine, size)

    def bare() -> None:
        pipe.scheduler = make_scheduler(settings.scheduler, engine.scheduler_config(), seed=0)
        pipe(**call, generator=torch.Generator("cpu").manual_seed(0))

    def with_threads(n: int) -> Callable[[], None]:
        def run() -> None:
            torch.set_num_threads(n)
            bare()
        return run

    try:
        samples = interleaved({"default": with_threads(threads), "one": with_threads(1)}, repeats)
    finally:
        torch.set_num_threads(previous)
    return [row("overhead (tiny)", f"bare tiny static {size} px: {threads} threads / 1 thread",
                samples["default"].median / samples["one"].median, "x",
                note=f"{threads} threads {samples['default'].text()}; 1 thread {samples['one'].text()}; "
                     f"load average {load_average()}")]


# ------------------------------------------------------------------------------------------------ temporal


def bare_animatediff_pipeline(lab_pipe: Any, scheduler: Any) -> Any:
    """diffusers' own AnimateDiff video-to-video (ControlNet) pipeline over the lab pipeline's components, with
    diffusers' plain MultiControlNetModel."""
    import diffusers

    parts = dict(vae=lab_pipe.vae, text_encoder=lab_pipe.text_encoder, tokenizer=lab_pipe.tokenizer,
                 unet=lab_pipe.unet, motion_adapter=lab_pipe.motion_adapter, scheduler=scheduler)
    controlnet = getattr(lab_pipe, "controlnet", None)
    if controlnet is None:
        pipe = diffusers.AnimateDiffVideoToVideoPipeline(**parts)
    else:
        from diffusers.models.controlnets.multicontrolnet import MultiControlNetModel

        nets = list(getattr(controlnet, "nets", [controlnet]))
        pipe = diffusers.AnimateDiffVideoToVideoControlNetPipeline(**parts, controlnet=MultiControlNetModel(nets))
    pipe.set_progress_bar_config(disable=True)
    return pipe


def temporal_overhead_inputs(engine: Any, size: int, frames: int = 8, controls: Any = None, *, steps: int = 8,
                             strength: float = 0.5) -> tuple[Any, dict[str, Any], Any, dict[str, Any]]:
    """A bare diffusers AnimateDiff pipeline over the lab pipeline's components, its call's arguments (the lab's
    own input frames, per-frame control maps and prompts), the settings and the scheduler config."""
    from ..engine.animatediff import ANIMATEDIFF_SCHEDULE
    from ..generate.temporal_inputs import inputs_from_source
    from ..prompts import prepare_prompts
    from ..schedulers import make_scheduler

    settings = temporal_settings(size, frames=frames, steps=steps, strength=strength, controls=controls)
    inputs = inputs_from_source(source_image(size), settings, engine)
    kinds = tuple(u.kind for u in inputs.units)
    scheduler_config = {**engine.scheduler_config(), **ANIMATEDIFF_SCHEDULE}
    bare_pipe = bare_animatediff_pipeline(engine.temporal_pipeline(kinds),
                                          make_scheduler(settings.scheduler, scheduler_config))
    width, height = inputs.size
    call: dict[str, Any] = dict(video=inputs.frames, height=height, width=width,
                                num_inference_steps=settings.steps, strength=settings.strength,
                                guidance_scale=settings.cfg, output_type="pil",
                                decode_chunk_size=settings.decode_chunk or engine.plan.decode_chunk,
                                **prepare_prompts(bare_pipe, inputs.prompt, inputs.negative_prompt).pipeline_kwargs())
    if kinds:
        call.update(conditioning_frames=[inputs.control_frames[k] for k in kinds],
                    controlnet_conditioning_scale=[u.scale for u in inputs.units],
                    control_guidance_start=[u.start for u in inputs.units],
                    control_guidance_end=[u.end for u in inputs.units])
    return bare_pipe, call, settings, scheduler_config


def temporal_overhead_rows(engine: Any, size: int, repeats: int, frames: int = 8,
                           section: str = "overhead (tiny)", controls: Any = None) -> list[Row]:
    """Lab temporal generation path against a bare AnimateDiffVideoToVideoControlNetPipeline call on the same
    components, inputs and seed; then whole lab runs."""
    import torch

    from ..generate.temporal import run_temporal
    from ..schedulers import make_scheduler

    bare_pipe, call, settings, scheduler_config = temporal_overhead_inputs(engine, size, frames, controls)
    image = source_image(size)

    def fresh_generator() -> Any:
        bare_pipe.scheduler = make_scheduler(settings.scheduler, scheduler_config, seed=settings.seed)
        return torch.Generator("cpu").manual_seed(settings.seed)

    lab_walls, runs, bare_walls, output = lab_against_bare(
        lambda: run_temporal(image, settings, engine=engine, evaluate=False), bare_pipe, call, fresh_generator,
        repeats)
    bare_frames = output.frames[0]
    difference = max_pixel_difference(runs[-1].raw_frames, bare_frames)
    controlnets = len(call.get("conditioning_frames") or ())
    label = f"temporal {size} px, {frames} frames, {controlnets} ControlNets, {_denoise(settings)} steps"
    rows = comparison_rows(section, label, lab_walls, runs, bare_walls, difference)
    full = [run_temporal(image, settings, engine=engine, evaluate=True) for _ in range(max(1, repeats // 2))]
    timings = _median_timings(full)
    rows.append(row(section, f"{label}: lab run with metrics", timings["total"], "s", note=stage_note(timings)))
    return rows
