"""`zrealism bench`: measured speed and memory of the lab, side by side with bare diffusers.

    zrealism bench --quick                 # tiny-bundle overhead rows, metrics and hot paths (about 2 minutes)
    zrealism bench --json out.json         # + full-size SD1.5 rows with random weights (10-15 minutes, ~12 GB RAM)
    zrealism bench --gpu                   # + fp16 512 px GPU rows and the 6 GiB low-memory mode (CUDA only)

Every figure is a median over repeated runs in one process, lab and bare diffusers interleaved (ABAB...) so that a
load spike from other programs hits both alike. Memory figures of the full-size models come from fresh child
processes, one per point, so that one measurement never inherits another's heap. The load average is recorded
with the table: rerun on a quiet machine for numbers to quote.

What "overhead" compares: the *generation path* of a lab run, which is the run's wall time minus the stages that
bare diffusers does not do at all (intake, background analysis, preparation, control-map detection, colour
anchoring, metrics), against one bare diffusers pipeline call on the same loaded components, the same inputs
(the lab's prepared image and control maps), the same prompts, scheduler and seed. So the ratio is the price of the
lab's plumbing around the pipeline (settings checks, pipeline lookup, prompt preparation, step events, chunked
decoding), and the two outputs are compared pixel by pixel. Whole lab runs (evaluate=False, and with metrics
and the run record) are reported on their own rows with their stage breakdown.
"""
from __future__ import annotations

import argparse
import contextlib
import gc
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

GIB = 2 ** 30
NO_GPU = "not yet measured (no GPU)"
CONTROL_KINDS = ("depth", "canny")  # weightless detectors: runs need no annotator checkpoints
SOURCE_STAGES = ("intake", "background", "prepare", "controls")  # what bare diffusers does not do
HEAVY_MODULES = ("torch", "diffusers", "transformers", "cv2", "skimage", "scipy", "controlnet_aux", "matplotlib",
                 "ipywidgets")
GPU_LOW_MEMORY_GIB = 6.0
THREADS_ENV = "ZREALISM_BENCH_THREADS"


# ------------------------------------------------------------------------------------------------ rows and table


@dataclass
class Row:
    """One measured figure: what, value, unit, target and whether it was met."""

    section: str
    what: str
    value: float | str | None
    unit: str = ""
    target: str = ""  # e.g. "<= 1.05"
    met: bool | None = None
    note: str = ""
    status: str = "measured"  # or NO_GPU, "skipped: ...", "failed: ..."

    def value_text(self) -> str:
        if self.status != "measured":
            return self.status
        return format_value(self.value)

    def met_text(self) -> str:
        return "" if self.met is None else ("yes" if self.met else "NO")


@dataclass
class BenchReport:
    machine: dict[str, Any]
    rows: list[Row] = field(default_factory=list)
    mode: str = "quick"
    seconds: float = 0.0

    def add(self, rows: Row | Sequence[Row]) -> None:
        self.rows.extend([rows] if isinstance(rows, Row) else rows)

    def to_markdown(self) -> str:
        m = self.machine
        lines = [
            f"Machine: {m.get('cpu')}, {m.get('cores')} cores, {m.get('memory_gib')} GiB RAM; torch {m.get('torch')} "
            f"({m.get('torch_threads')} threads), diffusers {m.get('diffusers')}, Python {m.get('python')}"
            + (f"; GPU {m['gpu']}" if m.get("gpu") else "; no GPU"),
            (f"Load average (1 min) at start {m.get('load_start')}, at end {m.get('load_end')}; "
             f"bench mode {self.mode}, {self.seconds:.0f} s in all."),
            "",
            "| section | what | value | unit | target | met? | note |",
            "|---|---|---|---|---|---|---|",
        ]
        for row in self.rows:
            cells = [row.section, row.what, row.value_text(), row.unit, row.target, row.met_text(), row.note]
            lines.append("| " + " | ".join(str(c).replace("|", "/") for c in cells) + " |")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {"machine": self.machine, "mode": self.mode, "seconds": round(self.seconds, 2),
                "rows": [asdict(r) for r in self.rows]}


def format_value(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (int, float)):
        v = float(value)
        if v == 0:
            return "0"
        if abs(v) >= 100:
            return f"{v:.0f}"
        if abs(v) >= 1:
            return f"{v:.3g}" if abs(v) < 10 else f"{v:.1f}"
        return f"{v:.3g}"
    return str(value)


def target_met(value: float | None, target: str) -> bool | None:
    """Check ``value`` against a target written as "<= 1.05", "< 1", ">= 2", "== 0" or "yes" (true)."""
    if target == "yes" and isinstance(value, bool):
        return value
    match = re.fullmatch(r"\s*(<=|<|>=|>|==)\s*([-+0-9.eE]+)\s*", target or "")
    if value is None or match is None or not isinstance(value, (int, float)):
        return None
    op, limit = match.group(1), float(match.group(2))
    return {"<=": value <= limit, "<": value < limit, ">=": value >= limit, ">": value > limit,
            "==": value == limit}[op]


def row(section: str, what: str, value: Any, unit: str = "", target: str = "", note: str = "") -> Row:
    return Row(section, what, value, unit, target, target_met(value, target) if target else None, note)


def failed_row(section: str, what: str, exc: BaseException) -> Row:
    text = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"[:160]
    return Row(section, what, None, status="failed: " + text)


# ------------------------------------------------------------------------------------------------ machine


def machine_info() -> dict[str, Any]:
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    info: dict[str, Any] = {
        "cpu": cpu, "cores": os.cpu_count(), "torch": torch.__version__, "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(), "platform": platform.platform(), "load_start": _load(),
    }
    try:
        import diffusers

        info["diffusers"] = diffusers.__version__
    except ImportError:
        info["diffusers"] = None
    try:
        import psutil

        info["memory_gib"] = round(psutil.virtual_memory().total / GIB, 1)
    except ImportError:
        info["memory_gib"] = None
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        info["gpu"] = f"{props.name} ({props.total_memory / GIB:.0f} GiB)"
    return info


def _load() -> float | None:
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:
        return None


# ------------------------------------------------------------------------------------------------ timing helpers


@dataclass
class Samples:
    values: list[float]

    @property
    def median(self) -> float:
        return statistics.median(self.values)

    @property
    def best(self) -> float:
        return min(self.values)

    def text(self, unit: str = "s") -> str:
        return f"median {format_value(self.median)} {unit}, best {format_value(self.best)} {unit}, n={len(self.values)}"


def interleaved(functions: dict[str, Callable[[], Any]], repeats: int, warmup: int = 1) -> dict[str, Samples]:
    """Time each function ``repeats`` times, alternating between them (A B A B ...), after ``warmup`` untimed
    rounds. Returns each function's wall-clock samples."""
    for _ in range(warmup):
        for function in functions.values():
            function()
    samples: dict[str, list[float]] = {name: [] for name in functions}
    for _ in range(repeats):
        for name, function in functions.items():
            start = time.perf_counter()
            function()
            samples[name].append(time.perf_counter() - start)
    return {name: Samples(values) for name, values in samples.items()}


def time_calls(function: Callable[[], Any], number: int, repeats: int = 5) -> Samples:
    """Per-call seconds of a fast function: ``repeats`` batches of ``number`` calls each."""
    function()
    values = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(number):
            function()
        values.append((time.perf_counter() - start) / number)
    return Samples(values)


class StepClock:
    """Times denoising steps, as a lab ``on_step`` callback or a diffusers ``callback_on_step_end``.

    A step ends at the callback; it starts at the first forward call of the pipeline's ControlNet (or UNet) after
    the previous step ended (``attach``), so even a one-step run gives one clean step time, without the prompt
    encoding, VAE encode or decode around it. ``sync`` (torch.cuda.synchronize) makes GPU timestamps mean finished
    work rather than queued kernels."""

    def __init__(self, sync: Callable[[], None] | None = None) -> None:
        self.sync = sync
        self.times: list[float] = []  # end of each step
        self.steps: list[float] = []  # duration of each step (with ``attach``)
        self._started: float | None = None
        self._handles: list[Any] = []

    def attach(self, pipe: Any) -> StepClock:
        module = getattr(pipe, "controlnet", None) or pipe.unet
        self._handles.append(module.register_forward_pre_hook(self._pre_forward))
        return self

    def detach(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()

    def _now(self) -> float:
        if self.sync is not None:
            self.sync()
        return time.perf_counter()

    def _pre_forward(self, module: Any, args: Any) -> None:
        if self._started is None:
            self._started = self._now()

    def on_step(self, event: Any) -> None:
        if event.stage == "denoise":
            self._mark()

    def callback(self, pipe: Any, step_index: int, timestep: Any, kwargs: dict[str, Any]) -> dict[str, Any]:
        self._mark()
        return {}

    def _mark(self) -> None:
        now = self._now()
        if self._started is not None:
            self.steps.append(now - self._started)
        self._started = None
        self.times.append(now)

    def median(self) -> float | None:
        return statistics.median(self.steps) if self.steps else None


# ------------------------------------------------------------------------------------------------ memory helpers


def rss_bytes() -> int:
    import psutil

    gc.collect()
    return psutil.Process().memory_info().rss


def reset_peak_rss() -> bool:
    """Reset the kernel's peak-RSS counter of this process (VmHWM). False where the kernel refuses."""
    try:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")
        return True
    except OSError:
        return False


def peak_rss_bytes() -> int:
    """Peak resident memory of this process since start (or since ``reset_peak_rss``)."""
    try:
        status = Path("/proc/self/status").read_text()
        return int(re.search(r"VmHWM:\s+(\d+)\s+kB", status).group(1)) * 1024
    except (OSError, AttributeError):
        import resource

        scale = 1 if sys.platform == "darwin" else 1024  # ru_maxrss: bytes on macOS, KiB on Linux
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale


class PeakPoller:
    """Peak RSS by polling (where /proc/self/clear_refs is unavailable): a thread samples every few ms."""

    def __init__(self, interval: float = 0.005) -> None:
        import threading

        self.interval, self.peak = interval, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        import psutil

        process = psutil.Process()
        while not self._stop.is_set():
            self.peak = max(self.peak, process.memory_info().rss)
            self._stop.wait(self.interval)

    def __enter__(self) -> PeakPoller:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


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
    from ..generate.temporal import TemporalSettings

    return TemporalSettings(size=size, frames=frames, steps=steps, strength=strength, detect_resolution=size,
                            seed=0, scheduler="ddim", controls=controls, **extra)


def max_pixel_difference(a: Sequence[Any], b: Sequence[Any]) -> int:
    """Largest difference of any 8-bit channel between two lists of images (the same outputs give 0; a decode
    that divides where diffusers multiplies by the reciprocal gives 1)."""
    if len(a) != len(b):
        return 255
    return max(int(np.abs(np.asarray(x.convert("RGB"), np.int16) - np.asarray(y.convert("RGB"), np.int16)).max())
               for x, y in zip(a, b))


def _pixels_note(difference: int) -> str:
    return "same pixels" if difference == 0 else f"pixels differ by at most {difference}/255"


def _generation_seconds(wall: float, timings: dict[str, float]) -> float:
    """A lab run's wall time minus the stages bare diffusers does not do."""
    skipped = sum(timings.get(k, 0.0) for k in (*SOURCE_STAGES, "colour", "metrics"))
    return wall - skipped


def _stage_note(timings: dict[str, float]) -> str:
    keys = [k for k in (*SOURCE_STAGES, "load", "generate", "decode", "colour", "metrics") if k in timings]
    return ", ".join(f"{k} {format_value(timings[k])}" for k in keys)


# ------------------------------------------------------------------------------------------------ static overhead


def static_overhead_rows(engine: Any, size: int, repeats: int, section: str = "overhead (tiny)",
                         controls: Any = None) -> list[Row]:
    """Lab static generation path against a bare StableDiffusionControlNetImg2ImgPipeline call on the same
    components, inputs and seed; then whole lab runs (evaluate=False, and with metrics and the record)."""
    import torch

    from ..schedulers import make_scheduler
    from ..generate.static import run_static

    pipe, call, settings, kinds = static_overhead_inputs(engine, size, controls)
    image = source_image(size)
    lab_runs: list[Any] = []
    lab_walls: list[float] = []
    bare_walls: list[float] = []
    bare_images: list[Any] = []

    def lab() -> None:
        start = time.perf_counter()
        result = run_static(image, settings, engine=engine, evaluate=False)
        lab_walls.append(time.perf_counter() - start)
        lab_runs.append(result)

    def bare() -> None:
        pipe.scheduler = make_scheduler(settings.scheduler, engine.scheduler_config(), seed=settings.seed)
        generator = torch.Generator("cpu").manual_seed(settings.seed)
        start = time.perf_counter()
        output = pipe(**call, generator=generator)
        bare_walls.append(time.perf_counter() - start)
        bare_images[:] = output.images

    interleaved({"lab": lab, "bare": bare}, repeats)
    lab_walls, bare_walls = lab_walls[1:], bare_walls[1:]  # drop the warm-up round
    runs = lab_runs[1:]
    generation = Samples([_generation_seconds(w, r.timings) for w, r in zip(lab_walls, runs)])
    bare_s = Samples(bare_walls)
    difference = max_pixel_difference([runs[-1].raw], bare_images)
    timings = {k: statistics.median(r.timings.get(k, 0.0) for r in runs) for k in runs[-1].timings}
    label = f"static {size} px, {len(kinds)} ControlNets, {_denoise(settings)} steps"
    rows = [
        row(section, f"{label}: lab generation path / bare diffusers", generation.median / bare_s.median, "x",
            "<= 1.05", f"lab {generation.text()}; bare {bare_s.text()}; {_pixels_note(difference)}"),
        row(section, f"{label}: bare diffusers call", bare_s.median, "s"),
        row(section, f"{label}: lab run, evaluate=False", Samples(lab_walls).median, "s", note=_stage_note(timings)),
    ]
    with tempfile.TemporaryDirectory(prefix="zrealism-bench-") as folder:
        full: list[Any] = []

        def full_run() -> None:
            full.append(run_static(image, settings, engine=engine, evaluate=True, out_dir=folder))

        samples = interleaved({"full": full_run}, max(1, repeats // 2 + 1), warmup=0)["full"]
    timings = {k: statistics.median(r.timings.get(k, 0.0) for r in full) for k in full[-1].timings}
    rows.append(row(section, f"{label}: full lab run (metrics + run record)", samples.median, "s",
                    note=_stage_note(timings)))
    return rows


def _denoise(settings: Any) -> int:
    return max(1, int(settings.steps * settings.strength))


# ------------------------------------------------------------------------------------------------ temporal overhead


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
    from ..prompts import prepare_prompts
    from ..schedulers import make_scheduler
    from ..engine.animatediff import ANIMATEDIFF_SCHEDULE
    from ..generate.temporal import inputs_from_source

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

    from ..schedulers import make_scheduler
    from ..generate.temporal import run_temporal

    bare_pipe, call, settings, scheduler_config = temporal_overhead_inputs(engine, size, frames, controls)
    image = source_image(size)
    lab_runs: list[Any] = []
    lab_walls: list[float] = []
    bare_walls: list[float] = []
    bare_frames: list[Any] = []

    def lab() -> None:
        start = time.perf_counter()
        result = run_temporal(image, settings, engine=engine, evaluate=False)
        lab_walls.append(time.perf_counter() - start)
        lab_runs.append(result)

    def bare() -> None:
        bare_pipe.scheduler = make_scheduler(settings.scheduler, scheduler_config, seed=settings.seed)
        generator = torch.Generator("cpu").manual_seed(settings.seed)
        start = time.perf_counter()
        output = bare_pipe(**call, generator=generator)
        bare_walls.append(time.perf_counter() - start)
        bare_frames[:] = output.frames[0]

    interleaved({"lab": lab, "bare": bare}, repeats)
    lab_walls, bare_walls, runs = lab_walls[1:], bare_walls[1:], lab_runs[1:]  # drop the warm-up round
    generation = Samples([_generation_seconds(w, r.timings) for w, r in zip(lab_walls, runs)])
    bare_s = Samples(bare_walls)
    difference = max_pixel_difference(runs[-1].raw_frames, bare_frames)
    timings = {k: statistics.median(r.timings.get(k, 0.0) for r in runs) for k in runs[-1].timings}
    controlnets = len(call.get("conditioning_frames") or ())
    label = f"temporal {size} px, {frames} frames, {controlnets} ControlNets, {_denoise(settings)} steps"
    rows = [
        row(section, f"{label}: lab generation path / bare diffusers", generation.median / bare_s.median, "x",
            "<= 1.05", f"lab {generation.text()}; bare {bare_s.text()}; {_pixels_note(difference)}"),
        row(section, f"{label}: bare diffusers call", bare_s.median, "s"),
        row(section, f"{label}: lab run, evaluate=False", Samples(lab_walls).median, "s", note=_stage_note(timings)),
    ]
    full = [run_temporal(image, settings, engine=engine, evaluate=True) for _ in range(max(1, repeats // 2))]
    timings = {k: statistics.median(r.timings.get(k, 0.0) for r in full) for k in full[-1].timings}
    rows.append(row(section, f"{label}: lab run with metrics", timings["total"], "s", note=_stage_note(timings)))
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
                     f"load average {_load()}")]


def static_overhead_inputs(engine: Any, size: int, controls: Any = None, *, steps: int = 8, strength: float = 0.5
                           ) -> tuple[Any, dict[str, Any], Any, tuple[str, ...]]:
    """The engine's static pipeline, a bare call's arguments (the lab's own prepared image, control maps and
    prompts at ``size``), the settings and the control kinds."""
    from ..prompts import prepare_prompts
    from ..generate.static import pipeline_arguments, understand_source

    settings = static_settings(size, steps=steps, strength=strength, controls=controls)
    ctx = understand_source(source_image(size), settings, engine)
    kinds = tuple(u.kind for u in ctx.units)
    pipe = engine.static_pipeline(kinds)
    call = pipeline_arguments(ctx, settings, prepare_prompts(pipe, ctx.prompt, ctx.negative_prompt).pipeline_kwargs())
    return pipe, call, settings, kinds


def temporal_available() -> bool:
    try:
        import zrealism_lab.temporal  # noqa: F401
    except ImportError:
        return False
    return True


# ------------------------------------------------------------------------------------------------ metrics


def metrics_rows(repeats: int) -> list[Row]:
    """The evaluation engine on a 1024x1024 pair and a 16-frame 512x512 clip (targets: 0.3 s and 3 s)."""
    from PIL import Image, ImageFilter

    from ..metrics import evaluate_clip, evaluate_pair

    section = "metrics"
    source = source_image(1024).convert("RGB")
    rng = np.random.default_rng(0)
    blurred = np.asarray(source.filter(ImageFilter.GaussianBlur(1.5)), dtype=np.int16)
    output = Image.fromarray(np.clip(blurred + rng.integers(-12, 13, blurred.shape), 0, 255).astype(np.uint8))
    mask = np.zeros((1024, 1024), bool)
    mask[128:-128, 170:-170] = True
    rows = []
    try:
        pair = interleaved({"pair": lambda: evaluate_pair(source, output, mask=mask)}, repeats)["pair"]
        rows.append(row(section, "evaluate_pair 1024x1024 (with mask)", pair.median, "s", "<= 0.3", pair.text()))
    except Exception as exc:  # noqa: BLE001 - one failed section must not lose the others
        rows.append(failed_row(section, "evaluate_pair 1024x1024", exc))
    base = np.asarray(source_image(640).convert("RGB"))
    clip = np.stack([np.clip(base[8 + t: 520 + t, 8 + 2 * t: 520 + 2 * t].astype(np.int16)
                             + rng.integers(-6, 7, (512, 512, 3)), 0, 255).astype(np.uint8) for t in range(16)])
    try:
        clip_s = interleaved({"clip": lambda: evaluate_clip(clip)}, max(2, repeats // 2))["clip"]
        rows.append(row(section, "evaluate_clip 16 x 512x512", clip_s.median, "s", "<= 3", clip_s.text()))
    except Exception as exc:  # noqa: BLE001 - one failed section must not lose the others
        rows.append(failed_row(section, "evaluate_clip 16 x 512x512", exc))
    return rows


# ------------------------------------------------------------------------------------------------ hot paths


def hot_path_rows() -> list[Row]:
    """Per-step callback cost, latent previews, and what importing the package and the CLI pulls in."""
    import torch

    from ..progress import StepEvent, StepReporter, latent_preview

    section = "hot paths"
    rows = []
    still = torch.randn(1, 4, 64, 64)
    video = torch.randn(1, 4, 16, 64, 64)
    preview = time_calls(lambda: latent_preview(still), 200)
    rows.append(row(section, "latent_preview, 64x64 latent (512 px image)", preview.median * 1e3, "ms", "< 1",
                    preview.text("s")))
    preview_video = time_calls(lambda: latent_preview(video), 100)
    rows.append(row(section, "latent_preview, 16-frame 64x64 video latent", preview_video.median * 1e3, "ms", "< 1",
                    preview_video.text("s")))
    events: list[StepEvent] = []
    reporter = StepReporter(10 ** 9, events.append, None, preview_every=0)
    kwargs = {"latents": still}
    call = time_calls(lambda: reporter(None, 0, 999, kwargs), 2000)
    rows.append(row(section, "StepReporter per step (event, no preview)", call.median * 1e6, "us", "<= 100",
                    call.text("s")))
    events.clear()
    reporter = StepReporter(10 ** 9, events.append, None, preview_every=5)
    call = time_calls(lambda: reporter(None, 3, 999, kwargs), 500)  # step 4 of every 5: no preview drawn
    rows.append(row(section, "StepReporter per step, preview every 5 (average)", call.median * 1e6, "us", "<= 300",
                    call.text("s")))
    for what, code in (("import zrealism_lab", "import zrealism_lab"),
                       ("zrealism CLI parser (all subcommands)",
                        "from zrealism_lab.cli import build_parser; build_parser()")):
        try:
            seconds, heavy = _import_probe(code)
            rows.append(row(section, f"{what}: heavy modules imported", len(heavy), "", "== 0",
                            ", ".join(heavy) or "none"))
            rows.append(row(section, f"{what}: seconds in a fresh interpreter", seconds, "s"))
        except Exception as exc:  # noqa: BLE001 - one failed section must not lose the others
            rows.append(failed_row(section, what, exc))
    return rows


def _import_probe(code: str) -> tuple[float, list[str]]:
    script = ("import sys, time, json\nstart = time.perf_counter()\n" + code + "\n"
              "print(json.dumps([time.perf_counter() - start, sorted(m for m in " + repr(HEAVY_MODULES)
              + " if m in sys.modules)]))")
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=300)
    seconds, heavy = json.loads(proc.stdout.strip().splitlines()[-1])
    return float(seconds), list(heavy)


# ------------------------------------------------------------------------------------------------ full size


def fullsize_rows(bundle: Path | None, clip_frames: Sequence[int], on_line: Callable[[str], None]) -> list[Row]:
    """Full-size SD1.5 rows from child processes over a bundle of random weights written once."""
    section = "full size (random weights)"
    rows: list[Row] = []
    with _bundle_folder(bundle) as folder:
        on_line(f"  writing full-size random weights to {folder} ...")
        written = run_child("write", folder, {})
        rows.append(row(section, "write the full-size bundle (build + save, once)", written["seconds"], "s",
                        note=f"{written['gib']:.1f} GiB on disk"
                             + ("; already there (--fullsize-dir), nothing written" if written.get("reused") else "")))

        on_line("  static engine: load, switch to temporal, memory, seconds per step ...")
        static = run_child("static", folder, {"size": 256, "steps": 4, "strength": 0.5})
        rows += [
            row(section, "load static parts from a safetensors folder (engine path)", static["load_static"], "s",
                note="UNet, VAE, text encoder, 2 ControlNets: from_pretrained "
                     f"{format_value(static['load_static_lazy'])} s (weights stay memory-mapped) + paging every "
                     f"weight in {format_value(static['page_in_static'])} s from a warm page cache"),
            row(section, "load + page in motion adapter v1-5-2", static["load_adapter"], "s"),
            row(section, "static -> temporal switch (first: builds the shared motion UNet)", static["switch"], "s",
                "< 1", f"components loaded during the switch: {static['loaded_during_switch'] or 'none'}; "
                       f"bytes read by read() (imports): {static['switch_read_bytes']}"),
            row(section, "static <-> temporal switch again (cached pipelines)", static["switch_again"] * 1e3, "ms"),
            row(section, "resident memory: static (RSS)", static["rss_static"] / GIB, "GiB",
                note=f"weights {static['static_weight_bytes'] / GIB:.2f} GiB; {_memory_note(static['mem_static'])}"),
            row(section, "resident memory: static + temporal (RSS)", static["rss_both"] / GIB, "GiB",
                f"<= {(static['rss_static'] + static['motion_bytes']) * 1.10 / GIB:.2f}",
                f"target = (static + motion modules {static['motion_bytes'] / GIB:.2f} GiB) x 1.1; "
                f"{_memory_note(static['mem_both'])}"),
            row(section, "static 256 px, 2 ControlNets, CFG: seconds per denoising step", static["step"], "s/step",
                note=f"lab run_static; steps {_fmt_list(static['steps'])} s; whole run "
                     f"{format_value(static['seconds'])} s ({_stage_note(static['timings'])})"),
        ]
        if static.get("unet_forward"):
            forward = static["unet_forward"]
            rows.append(row(section, "UNet forward 256 px batch 2: channels_last / default", forward["ratio"], "x",
                            note=f"default {_fmt_list(forward['default'])} s, channels_last "
                                 f"{_fmt_list(forward['channels_last'])} s; attention processor "
                                 f"{forward['attention']}"))

        on_line("  temporal engine alone: load, memory, 8-frame seconds per step ...")
        temporal = run_child("temporal", folder, {"size": 256, "frames": 8, "steps": 2, "strength": 0.5})
        rows += [
            row(section, "load temporal parts (engine path, fresh process)", temporal["load"], "s"),
            row(section, "resident memory: temporal only (RSS)", temporal["rss_temporal"] / GIB, "GiB",
                note=_memory_note(temporal["mem_temporal"])),
            row(section, "8-frame clip 256 px, 2 ControlNets, CFG: seconds per denoising step", temporal["step"],
                "s/step", note=f"lab run_temporal; steps {_fmt_list(temporal['steps'])} s; whole run "
                               f"{format_value(temporal['seconds'])} s ({_stage_note(temporal['timings'])})"),
        ]
        if temporal.get("free_noise"):
            cost = temporal["free_noise"]
            rows.append(row(section, "context windows on (clip longer than one window), then off again",
                            cost["on"] + cost["off"], "s", "< 1",
                            f"on {format_value(cost['on'])} s, off {format_value(cost['off'])} s; anonymous memory "
                            f"left behind {cost['anon_added'] / GIB:.2f} GiB"
                            + ("; diffusers' enable/disable_free_noise rebuild every motion transformer block and "
                               "copy its weights" if cost["on"] + cost["off"] >= 1 else "")))
        peaks: dict[int, dict[str, Any]] = {}
        for frames in clip_frames:
            on_line(f"  clip length {frames} frames at 128 px (fresh process) ...")
            try:
                peaks[frames] = point = run_child("clip", folder, {"frames": frames, "size": 128})
                rows.append(row(section, f"peak RSS, {frames} frames 128 px, one step", point["peak"] / GIB, "GiB",
                                note=f"after loading {point['rss_loaded'] / GIB:.2f} GiB, generation adds "
                                     f"{(point['peak'] - point['rss_loaded']) / GIB:.2f} GiB; "
                                     f"{format_value(point['seconds'])} s ({_stage_note(point['timings'])}); "
                                     f"context windows: {point['windows']}"))
            except Exception as exc:  # noqa: BLE001 - one failed section must not lose the others
                rows.append(failed_row(section, f"peak RSS, {frames} frames", exc))
        if len(peaks) >= 2:
            low, high = min(peaks), max(peaks)
            rows.append(row(section, f"peak RSS {high} frames / {low} frames", peaks[high]["peak"] / peaks[low]["peak"],
                            "x", "<= 1.2", "context windows (FreeNoise) + window-sized chunks"))
    return rows


def _memory_note(memory: dict[str, int]) -> str:
    if "anon" not in memory:
        return ""
    return f"anonymous {memory['anon'] / GIB:.2f} GiB, file-backed (mapped weights) {memory['file'] / GIB:.2f} GiB"


def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def _fmt_list(values: Sequence[float]) -> str:
    return "[" + ", ".join(format_value(v) for v in values) + "]"


# ------------------------------------------------------------------------------------------------ GPU


def gpu_rows(bundle: Path | None, on_line: Callable[[str], None]) -> list[Row]:
    """fp16 512 px rows against bare diffusers, and the 6 GiB low-memory mode; "not yet measured" without CUDA."""
    import torch

    section = "GPU"
    if not torch.cuda.is_available():
        return [Row(section, name, None, status=NO_GPU) for name in gpu_row_names()]
    rows: list[Row] = []
    with _bundle_folder(bundle) as folder:
        run_child("write", folder, {})
        on_line("  GPU: fp16 512 px static and 16-frame clip, lab and bare diffusers ...")
        try:
            fast = run_child("gpu", folder, {})
            for kind, label in GPU_LABELS.items():
                lab, bare = fast[kind]["lab"], fast[kind]["bare"]
                rows += [
                    row(section, f"{label}: lab s/step", lab["step"], "s/step",
                        note=f"steps {_fmt_list(lab['steps'])}"),
                    row(section, f"{label}: bare diffusers s/step", bare["step"], "s/step",
                        note=f"steps {_fmt_list(bare['steps'])}"),
                    row(section, f"{label}: lab / bare s/step", _ratio(lab["step"], bare["step"]), "x", "<= 1.05"),
                    row(section, f"{label}: lab peak GPU memory", lab["peak"] / GIB, "GiB"),
                    row(section, f"{label}: bare peak GPU memory", bare["peak"] / GIB, "GiB"),
                ]
        except Exception as exc:  # noqa: BLE001 - one failed section must not lose the others
            rows.append(failed_row(section, "fp16 512 px static and clip", exc))
        on_line(f"  GPU: low-memory mode under a {GPU_LOW_MEMORY_GIB:g} GiB cap ...")
        try:
            low = run_child("gpu-lowmem", folder, {"cap_gib": GPU_LOW_MEMORY_GIB})
            for offload, result in low["modes"].items():
                for kind, label in LOW_MEMORY_LABELS.items():
                    item = result[kind]
                    rows.append(row(section, f"{label}, offload {offload}: completes", item["ok"], "", "yes",
                                    note=(f"{format_value(item.get('seconds'))} s, peak "
                                          f"{format_value(item.get('peak', 0) / GIB)} GiB"
                                          if item["ok"] else item.get("error", ""))))
            rows.append(row(section, LOW_MEMORY_SEARCH["still"], low["largest_still"], "px",
                            note=f"offload model; tried {low['still_sizes']}"))
            rows.append(row(section, LOW_MEMORY_SEARCH["clip"], low["most_frames"], "frames",
                            note=f"offload model; tried {low['frame_counts']}"))
        except Exception as exc:  # noqa: BLE001 - one failed section must not lose the others
            rows.append(failed_row(section, "low-memory mode", exc))
    return rows


GPU_LABELS = {"static": "fp16 still 512 px, 2 ControlNets, 20 steps", "clip": "fp16 16-frame clip 512 px, 20 steps"}
LOW_MEMORY_LABELS = {"still": f"{GPU_LOW_MEMORY_GIB:g} GiB cap: 512 px still",
                     "clip": f"{GPU_LOW_MEMORY_GIB:g} GiB cap: 16-frame 512 px clip"}
LOW_MEMORY_SEARCH = {"still": f"{GPU_LOW_MEMORY_GIB:g} GiB cap: largest still (long side)",
                     "clip": f"{GPU_LOW_MEMORY_GIB:g} GiB cap: most frames at 512 px"}


def gpu_row_names() -> list[str]:
    names = [f"{label}: {what}" for label in GPU_LABELS.values()
             for what in ("lab s/step", "bare diffusers s/step", "lab / bare s/step", "lab peak GPU memory",
                          "bare peak GPU memory")]
    names += [f"{label}, offload {offload}: completes" for offload in ("model", "sequential")
              for label in LOW_MEMORY_LABELS.values()]
    return names + list(LOW_MEMORY_SEARCH.values())


@contextlib.contextmanager
def _bundle_folder(bundle: Path | None) -> Iterator[Path]:
    """``bundle`` as it is, or a temporary folder removed afterwards (the ~8 GiB of full-size weights)."""
    if bundle is not None:
        yield Path(bundle)
        return
    folder = Path(tempfile.mkdtemp(prefix="zrealism-fullsize-"))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


# ------------------------------------------------------------------------------------------------ child processes


def run_child(task: str, bundle: Path, params: dict[str, Any], timeout: float = 3600) -> dict[str, Any]:
    """Run one measurement in a fresh interpreter (``python -m zrealism_lab.bench --child TASK``)."""
    with tempfile.TemporaryDirectory(prefix="zrealism-bench-child-") as folder:
        result_file = Path(folder) / "result.json"
        command = [sys.executable, "-m", "zrealism_lab.bench", "--child", task, "--bundle", str(bundle),
                   "--params", json.dumps(params), "--result", str(result_file)]
        proc = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)
        if proc.returncode != 0 or not result_file.is_file():
            tail = (proc.stderr or proc.stdout or "").strip().splitlines()[-3:]
            raise RuntimeError(f"child {task} failed (exit {proc.returncode}): {' | '.join(tail)}")
        return json.loads(result_file.read_text(encoding="utf-8"))


def _fullsize_engine(bundle: Path, **engine_kwargs: Any) -> Any:
    from ..engine.engine import Engine
    from ..models.fullsize import fullsize_modelset

    return Engine(fullsize_modelset(bundle, CONTROL_KINDS), **engine_kwargs)


def _child_write(bundle: Path, params: dict[str, Any]) -> dict[str, Any]:
    from ..models.fullsize import MARKER_NAME, write_fullsize_bundle

    reused = (bundle / MARKER_NAME).is_file()
    start = time.perf_counter()
    write_fullsize_bundle(bundle, control_kinds=CONTROL_KINDS)
    size = sum(f.stat().st_size for f in bundle.rglob("*") if f.is_file())
    return {"seconds": time.perf_counter() - start, "gib": size / GIB, "reused": reused}


def _read_chars() -> int:
    try:
        import psutil

        return int(getattr(psutil.Process().io_counters(), "read_chars", 0))
    except (ImportError, AttributeError, OSError):
        return 0


def page_in(modules: Sequence[Any]) -> float:
    """Read one value per 4 KiB page of every weight; returns the seconds it took.

    diffusers maps safetensors files into memory and reads a weight only when it is first used, so right after
    ``from_pretrained`` neither the load time nor the resident memory is the real one. Touching every page makes
    both honest (the pages come from the page cache when the files were just written, from disk otherwise)."""
    import torch

    start = time.perf_counter()
    with torch.no_grad():
        for module in modules:
            for tensor in [*module.parameters(), *module.buffers()]:
                if tensor.numel() and tensor.device.type == "cpu":
                    tensor.reshape(-1)[::1024].sum()
    return time.perf_counter() - start


def memory_breakdown() -> dict[str, int]:
    """Resident memory of this process: total, anonymous (heap, copies) and file-backed (mapped weights)."""
    values = {"rss": rss_bytes()}
    try:
        status = Path("/proc/self/status").read_text()
        for key, name in (("RssAnon", "anon"), ("RssFile", "file")):
            values[name] = int(re.search(key + r":\s+(\d+)\s+kB", status).group(1)) * 1024
    except (OSError, AttributeError):
        pass
    return values


def _modules(engine: Any, roles: Sequence[str]) -> list[Any]:
    return [engine.component(role) for role in roles if role != "tokenizer"]


STATIC_ROLES = ("unet", "vae", "text_encoder", *[f"controlnet:{k}" for k in CONTROL_KINDS])


def _child_static(bundle: Path, params: dict[str, Any]) -> dict[str, Any]:
    import torch

    from ..models.fullsize import FULLSIZE_CONTROLS, parameter_bytes
    from ..generate.static import run_static

    torch.set_grad_enabled(False)
    out: dict[str, Any] = {}
    engine = _fullsize_engine(bundle, device="cpu", offload="none")
    start = time.perf_counter()
    engine.static_pipeline(CONTROL_KINDS)
    out["load_static_lazy"] = time.perf_counter() - start
    out["page_in_static"] = page_in(_modules(engine, STATIC_ROLES))
    out["load_static"] = out["load_static_lazy"] + out["page_in_static"]
    out["mem_static"] = memory_breakdown()
    out["rss_static"] = out["mem_static"]["rss"]
    out["static_weight_bytes"] = sum(parameter_bytes(m) for m in _modules(engine, STATIC_ROLES))
    start = time.perf_counter()
    adapter = engine.component("motion_adapter")
    page_in([adapter])
    out["load_adapter"] = time.perf_counter() - start
    out["motion_bytes"] = parameter_bytes(adapter)
    loaded = set(engine.load_seconds)
    read_before = _read_chars()
    start = time.perf_counter()
    engine.temporal_pipeline(CONTROL_KINDS)
    out["switch"] = time.perf_counter() - start
    out["switch_read_bytes"] = _read_chars() - read_before
    out["loaded_during_switch"] = sorted(set(engine.load_seconds) - loaded)
    start = time.perf_counter()
    engine.static_pipeline(CONTROL_KINDS)
    engine.temporal_pipeline(CONTROL_KINDS)
    out["switch_again"] = (time.perf_counter() - start) / 2
    out["mem_both"] = memory_breakdown()
    out["rss_both"] = out["mem_both"]["rss"]
    out["load_seconds"] = dict(engine.load_seconds)

    clock = StepClock().attach(engine.static_pipeline(CONTROL_KINDS))
    settings = static_settings(params["size"], steps=params["steps"], strength=params["strength"],
                               controls=FULLSIZE_CONTROLS)
    start = time.perf_counter()
    result = run_static(source_image(params["size"]), settings, engine=engine, evaluate=False,
                        on_step=clock.on_step)
    clock.detach()
    out["seconds"] = time.perf_counter() - start
    out["timings"] = result.timings
    out["steps"], out["step"] = clock.steps, clock.median()
    if params.get("layout_probe", True):
        out["unet_forward"] = _unet_layout_probe(engine.component("unet"), params["size"] // 8)
    return out


def _unet_layout_probe(unet: Any, latent: int, repeats: int = 2) -> dict[str, Any]:
    """Batch-2 UNet forwards in the default memory layout and in channels_last, alternating (convolution-heavy
    models are sometimes faster in channels_last); the attention processor shows whether SDPA is in use."""
    import torch

    context = torch.randn(2, 77, unet.config.cross_attention_dim)
    timestep = torch.tensor([500, 500])
    samples = {"default": torch.randn(2, 4, latent, latent)}
    samples["channels_last"] = samples["default"].to(memory_format=torch.channels_last)
    layouts = {"default": torch.contiguous_format, "channels_last": torch.channels_last}
    times: dict[str, list[float]] = {name: [] for name in layouts}
    for index in range(repeats + 1):  # the first round warms both layouts up
        for name, layout in layouts.items():
            unet.to(memory_format=layout)
            start = time.perf_counter()
            unet(samples[name], timestep, encoder_hidden_states=context)
            if index:
                times[name].append(time.perf_counter() - start)
    unet.to(memory_format=torch.contiguous_format)
    processors = {type(p).__name__ for p in unet.attn_processors.values()}
    return {**times, "ratio": statistics.median(times["channels_last"]) / statistics.median(times["default"]),
            "attention": ", ".join(sorted(processors))}


def _child_temporal(bundle: Path, params: dict[str, Any]) -> dict[str, Any]:
    import torch

    from ..models.fullsize import FULLSIZE_CONTROLS
    from ..generate.temporal import run_temporal

    torch.set_grad_enabled(False)
    out: dict[str, Any] = {}
    engine = _fullsize_engine(bundle, device="cpu", offload="none")
    start = time.perf_counter()
    engine.temporal_pipeline(CONTROL_KINDS)
    page_in(_modules(engine, (*STATIC_ROLES, "motion_adapter")))
    out["load"] = time.perf_counter() - start
    out["mem_temporal"] = memory_breakdown()
    out["rss_temporal"] = out["mem_temporal"]["rss"]
    clock = StepClock().attach(engine.temporal_pipeline(CONTROL_KINDS))
    settings = temporal_settings(params["size"], frames=params["frames"], steps=params["steps"],
                                 strength=params["strength"], controls=FULLSIZE_CONTROLS)
    start = time.perf_counter()
    result = run_temporal(source_image(params["size"]), settings, engine=engine, evaluate=False,
                          on_step=clock.on_step)
    clock.detach()
    out["seconds"] = time.perf_counter() - start
    out["timings"] = result.timings
    out["steps"], out["step"] = clock.steps, clock.median()
    out["free_noise"] = _free_noise_toggle_cost(engine.temporal_pipeline(CONTROL_KINDS), settings)
    return out


def _free_noise_toggle_cost(pipe: Any, settings: Any) -> dict[str, Any] | None:
    """What the lab's switch to context windows costs (a clip longer than one window after a short one), and the
    switch back: seconds and the anonymous memory it leaves behind."""
    from ..generate import temporal

    toggle = getattr(temporal, "_set_free_noise", None)
    if toggle is None:
        return None
    before = memory_breakdown()
    start = time.perf_counter()
    toggle(pipe, settings.context_length + 8, settings)
    on = time.perf_counter() - start
    start = time.perf_counter()
    toggle(pipe, settings.frames, settings)
    off = time.perf_counter() - start
    after = memory_breakdown()
    return {"on": on, "off": off, "anon_added": after.get("anon", after["rss"]) - before.get("anon", before["rss"])}


def _child_clip(bundle: Path, params: dict[str, Any]) -> dict[str, Any]:
    import torch

    from ..models.fullsize import FULLSIZE_CONTROLS
    from ..generate.temporal import run_temporal

    torch.set_grad_enabled(False)
    engine = _fullsize_engine(bundle, device="cpu", offload="none")
    engine.temporal_pipeline(CONTROL_KINDS)
    page_in(_modules(engine, (*STATIC_ROLES, "motion_adapter")))
    out: dict[str, Any] = {"rss_loaded": rss_bytes()}
    settings = temporal_settings(params["size"], frames=params["frames"], steps=2, strength=0.5,
                                 controls=FULLSIZE_CONTROLS, context_length=16, context_stride=4)
    image = source_image(params["size"])
    start = time.perf_counter()
    if reset_peak_rss():
        result = run_temporal(image, settings, engine=engine, evaluate=False)
        out["peak"] = peak_rss_bytes()
    else:
        with PeakPoller() as poller:
            result = run_temporal(image, settings, engine=engine, evaluate=False)
        out["peak"] = poller.peak
    out["seconds"] = time.perf_counter() - start
    out["timings"] = result.timings
    windows = result.generation.get("context_windows")
    out["windows"] = "none (one window)" if not windows else \
        f"length {windows['context_length']}, stride {windows['context_stride']}"
    return out


def _child_gpu(bundle: Path, params: dict[str, Any]) -> dict[str, Any]:
    """fp16 512 px, 20 steps, two ControlNets: lab and bare diffusers, seconds per step and peak memory."""
    import torch

    from ..models.fullsize import FULLSIZE_CONTROLS
    from ..schedulers import make_scheduler
    from ..generate.static import run_static
    from ..generate.temporal import run_temporal

    torch.set_grad_enabled(False)
    engine = _fullsize_engine(bundle, device="cuda", offload="none", dtype="float16")
    sync = torch.cuda.synchronize

    def measure(pipe: Any, run: Callable[[StepClock], Any]) -> dict[str, Any]:
        clock = StepClock(sync=sync).attach(pipe)
        sync()
        torch.cuda.reset_peak_memory_stats()
        try:
            run(clock)
            sync()
        finally:
            clock.detach()
        return {"step": clock.median(), "steps": clock.steps, "peak": torch.cuda.max_memory_allocated()}

    image = source_image(512)
    pipe, call, settings, kinds = static_overhead_inputs(engine, 512, FULLSIZE_CONTROLS, steps=20, strength=1.0)
    run_static(image, settings.replace(steps=2), engine=engine, evaluate=False)  # warm-up: kernels, allocator

    def bare_static(clock: StepClock) -> None:
        pipe.scheduler = make_scheduler(settings.scheduler, engine.scheduler_config(), seed=0)
        pipe(**call, generator=torch.Generator("cpu").manual_seed(0), callback_on_step_end=clock.callback)

    out: dict[str, Any] = {"static": {
        "lab": measure(pipe, lambda c: run_static(image, settings, engine=engine, evaluate=False,
                                                  on_step=c.on_step)),
        "bare": measure(pipe, bare_static),
    }}

    bare_pipe, clip_call, clip_settings, config = temporal_overhead_inputs(
        engine, 512, 16, FULLSIZE_CONTROLS, steps=20, strength=1.0)
    lab_pipe = engine.temporal_pipeline(kinds)
    run_temporal(image, clip_settings.replace(steps=2), engine=engine, evaluate=False)

    def bare_clip(clock: StepClock) -> None:
        bare_pipe.scheduler = make_scheduler(clip_settings.scheduler, config, seed=0)
        bare_pipe(**clip_call, generator=torch.Generator("cpu").manual_seed(0), callback_on_step_end=clock.callback)

    out["clip"] = {
        "lab": measure(lab_pipe, lambda c: run_temporal(image, clip_settings, engine=engine, evaluate=False,
                                                        on_step=c.on_step)),
        "bare": measure(bare_pipe, bare_clip),
    }
    return out


def _child_gpu_lowmem(bundle: Path, params: dict[str, Any]) -> dict[str, Any]:
    """Under a per-process cap of ``cap_gib``: does a 512 px still and a 16-frame 512 px clip complete with model
    and with sequential offload, VAE slicing + tiling and attention slicing; then the largest sizes that fit."""
    import dataclasses
    import functools

    import torch

    from ..models.fullsize import FULLSIZE_CONTROLS
    from ..generate.static import run_static
    from ..generate.temporal import run_temporal

    torch.set_grad_enabled(False)
    total = torch.cuda.get_device_properties(0).total_memory
    torch.cuda.set_per_process_memory_fraction(min(1.0, params["cap_gib"] * GIB / total))
    image = source_image(512)

    def engine_for(offload: str) -> Any:
        engine = _fullsize_engine(bundle, device="cuda", offload=offload, dtype="float16")
        # The plan picks slicing from the card's size; under an artificial cap the card looks big, so set it here.
        engine.plan = dataclasses.replace(engine.plan, vae_slicing=True, vae_tiling=True, attention_slicing=True,
                                          decode_chunk=2)
        return engine

    def attempt(run: Callable[[], Any]) -> dict[str, Any]:
        gc.collect()
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
        start = time.perf_counter()
        error = None
        try:
            run()
            torch.cuda.synchronize()
        except Exception as exc:  # only out-of-memory is an answer; anything else is re-raised
            if not _is_out_of_memory(exc):
                raise
            error = str(exc).splitlines()[0][:160]
        # the exception (and its frames' tensors) is gone here, so the cache can really be emptied
        gc.collect()
        torch.cuda.empty_cache()
        if error is not None:
            return {"ok": False, "error": error}
        return {"ok": True, "seconds": time.perf_counter() - start, "peak": torch.cuda.max_memory_allocated()}

    still = static_settings(512, steps=8, strength=0.5, controls=FULLSIZE_CONTROLS)
    clip = temporal_settings(512, frames=16, steps=8, strength=0.5, controls=FULLSIZE_CONTROLS)
    out: dict[str, Any] = {"modes": {}}
    for offload in ("model", "sequential"):
        engine = engine_for(offload)
        out["modes"][offload] = {
            "still": attempt(functools.partial(run_static, image, still, engine=engine, evaluate=False)),
            "clip": attempt(functools.partial(run_temporal, image, clip, engine=engine, evaluate=False)),
        }
        del engine
    engine = engine_for("model")
    out["still_sizes"], out["largest_still"] = [], None
    for size in (512, 640, 768, 1024, 1280, 1536, 2048):
        out["still_sizes"].append(size)
        settings = still.replace(size=size, detect_resolution=512, steps=4)
        if not attempt(functools.partial(run_static, source_image(size), settings, engine=engine,
                                         evaluate=False))["ok"]:
            break
        out["largest_still"] = size
    out["frame_counts"], out["most_frames"] = [], None
    for frames in (16, 24, 32, 48, 64):
        out["frame_counts"].append(frames)
        settings = clip.replace(frames=frames, steps=4)
        if not attempt(functools.partial(run_temporal, image, settings, engine=engine, evaluate=False))["ok"]:
            break
        out["most_frames"] = frames
    return out


def _is_out_of_memory(exc: BaseException) -> bool:
    import torch

    if isinstance(exc, torch.cuda.OutOfMemoryError):
        return True
    text = str(exc).lower()
    return isinstance(exc, RuntimeError) and ("out of memory" in text or "alloc_failed" in text)


CHILD_TASKS: dict[str, Callable[[Path, dict[str, Any]], dict[str, Any]]] = {
    "write": _child_write, "static": _child_static, "temporal": _child_temporal, "clip": _child_clip,
    "gpu": _child_gpu, "gpu-lowmem": _child_gpu_lowmem,
}


def _json_default(value: Any) -> Any:
    if isinstance(value, (np.integer, np.floating)):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    return repr(value)


def child_main(argv: Sequence[str] | None = None) -> int:
    import warnings

    parser = argparse.ArgumentParser(prog="python -m zrealism_lab.bench")
    parser.add_argument("--child", required=True, choices=sorted(CHILD_TASKS))
    parser.add_argument("--bundle", required=True)
    parser.add_argument("--params", default="{}")
    parser.add_argument("--result", required=True)
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore")
    if os.environ.get(THREADS_ENV):
        import torch

        torch.set_num_threads(int(os.environ[THREADS_ENV]))
    result = CHILD_TASKS[args.child](Path(args.bundle), json.loads(args.params))
    Path(args.result).write_text(json.dumps(result, default=_json_default), encoding="utf-8")
    return 0


# ------------------------------------------------------------------------------------------------ the bench


def run_bench(*, quick: bool = False, repeats: int | None = None, sizes: Sequence[int] = (64, 256),
              gpu: bool = False, fullsize_dir: str | os.PathLike | None = None,
              clip_frames: Sequence[int] = (16, 32, 48), temporal: bool = True, threads: int | None = None,
              on_line: Callable[[str], None] = print) -> BenchReport:
    """Measure and return the report. ``quick``: tiny-bundle overhead rows, metrics and hot paths only.
    ``threads``: torch's intra-op threads here and in the child processes (default: torch's own choice)."""
    import warnings

    import torch

    from ..engine.engine import get_engine

    started = time.perf_counter()
    repeats = repeats or (3 if quick else 5)
    default_threads = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
        os.environ[THREADS_ENV] = str(threads)  # read by the child processes
    report = BenchReport(machine_info(), mode="quick" if quick else "full")
    torch.set_grad_enabled(False)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore")
        on_line("tiny bundle: lab against bare diffusers ...")
        engine = get_engine("tiny", device="cpu", offload="none")
        for size in sizes:
            try:
                report.add(static_overhead_rows(engine, size, repeats))
            except Exception as exc:  # noqa: BLE001 - one failed section must not lose the others
                report.add(failed_row("overhead (tiny)", f"static {size} px", exc))
        if temporal and temporal_available():
            for size in sizes:
                try:
                    report.add(temporal_overhead_rows(engine, size, repeats))
                except Exception as exc:  # noqa: BLE001 - one failed section must not lose the others
                    report.add(failed_row("overhead (tiny)", f"temporal {size} px", exc))
        else:
            report.add(Row("overhead (tiny)", "temporal", None, status="skipped: zrealism_lab.temporal unavailable"))
        try:
            report.add(thread_rows(engine, default_threads, repeats))
        except Exception as exc:  # noqa: BLE001 - one failed section must not lose the others
            report.add(failed_row("overhead (tiny)", "threads", exc))
        on_line("metrics engine ...")
        report.add(metrics_rows(repeats))
        on_line("hot paths ...")
        report.add(hot_path_rows())
        cuda = torch.cuda.is_available()
        needs_bundle = not quick or (gpu and cuda)
        bundle = Path(fullsize_dir) if fullsize_dir else None
        with _bundle_folder(bundle) if needs_bundle else contextlib.nullcontext(None) as folder:
            if not quick:
                on_line("full-size SD1.5 with random weights (child processes) ...")
                try:
                    report.add(fullsize_rows(folder, clip_frames, on_line))
                except Exception as exc:  # noqa: BLE001 - one failed section must not lose the others
                    report.add(failed_row("full size (random weights)", "full-size rows", exc))
            if cuda and not gpu:
                report.add(Row("GPU", "fp16 512 px rows and low-memory mode", None, status="skipped: pass --gpu"))
            else:
                on_line("GPU ..." if cuda else "GPU: none here")
                report.add(gpu_rows(folder, on_line))
    report.machine["load_end"] = _load()
    report.seconds = time.perf_counter() - started
    return report


if __name__ == "__main__":
    sys.exit(child_main())
