"""The measurements that run in a fresh child process (``python -m zrealism_lab.bench --child TASK``), one per
figure, over the full-size random-weight bundle: a fresh process is the only honest way to measure resident memory
and load times, since a process never gives its heap back."""
from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ..files import atomic_write_json
from .measure import (PeakPoller, StepClock, memory_breakdown, page_in, peak_rss_bytes, read_chars, reset_peak_rss,
                      rss_bytes)
from .overhead import source_image, static_overhead_inputs, static_settings, temporal_overhead_inputs, temporal_settings
from .fast import child_fast_run, child_fast_still, child_fast_toggle
from .refine import child_refine
from .adapters import child_adapters
from .table import GIB

CONTROL_KINDS = ("depth", "canny")  # weightless detectors: runs need no annotator checkpoints
STATIC_ROLES = ("unet", "vae", "text_encoder", *[f"controlnet:{k}" for k in CONTROL_KINDS])
THREADS_ENV = "ZREALISM_BENCH_THREADS"  # torch's thread count, handed from the parent to every child


def _fullsize_engine(bundle: Path, **engine_kwargs: Any) -> Any:
    from ..engine.engine import Engine
    from ..models.fullsize import fullsize_modelset

    return Engine(fullsize_modelset(bundle, CONTROL_KINDS), **engine_kwargs)


def _modules(engine: Any, roles: Sequence[str]) -> list[Any]:
    return [engine.component(role) for role in roles if role != "tokenizer"]


# ------------------------------------------------------------------------------------------------ CPU tasks


def _child_write(bundle: Path, params: dict[str, Any]) -> dict[str, Any]:
    from ..models.fullsize import MARKER_NAME, write_fullsize_bundle

    reused = (bundle / MARKER_NAME).is_file()
    start = time.perf_counter()
    write_fullsize_bundle(bundle, control_kinds=CONTROL_KINDS)
    size = sum(f.stat().st_size for f in bundle.rglob("*") if f.is_file())
    return {"seconds": time.perf_counter() - start, "gib": size / GIB, "reused": reused}


def _child_static(bundle: Path, params: dict[str, Any]) -> dict[str, Any]:
    import torch

    from ..generate.static import run_static
    from ..models.fullsize import FULLSIZE_CONTROLS, parameter_bytes

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
    read_before = read_chars()
    start = time.perf_counter()
    engine.temporal_pipeline(CONTROL_KINDS)
    out["switch"] = time.perf_counter() - start
    out["switch_read_bytes"] = read_chars() - read_before
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

    from ..generate.temporal import run_temporal
    from ..models.fullsize import FULLSIZE_CONTROLS

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


def _free_noise_toggle_cost(pipe: Any, settings: Any) -> dict[str, Any]:
    """What the lab's switch to context windows costs (a clip longer than one window after a short one), and the
    switch back: seconds and the anonymous memory it leaves behind."""
    from ..engine.animatediff import set_free_noise

    before = memory_breakdown()
    start = time.perf_counter()
    set_free_noise(pipe, settings.context_length + 8, settings)
    on = time.perf_counter() - start
    start = time.perf_counter()
    set_free_noise(pipe, settings.frames, settings)
    off = time.perf_counter() - start
    after = memory_breakdown()
    return {"on": on, "off": off, "anon_added": after.get("anon", after["rss"]) - before.get("anon", before["rss"])}


def _child_clip(bundle: Path, params: dict[str, Any]) -> dict[str, Any]:
    import torch

    from ..generate.temporal import run_temporal
    from ..models.fullsize import FULLSIZE_CONTROLS

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


# ------------------------------------------------------------------------------------------------ GPU tasks


def _child_gpu(bundle: Path, params: dict[str, Any]) -> dict[str, Any]:
    """fp16 512 px, 20 steps, two ControlNets: lab and bare diffusers, seconds per step and peak memory."""
    import torch

    from ..generate.static import run_static
    from ..generate.temporal import run_temporal
    from ..models.fullsize import FULLSIZE_CONTROLS
    from ..schedulers import make_scheduler

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

    from ..generate.static import run_static
    from ..generate.temporal import run_temporal
    from ..models.fullsize import FULLSIZE_CONTROLS

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


# ------------------------------------------------------------------------------------------------ entry point


CHILD_TASKS: dict[str, Callable[[Path, dict[str, Any]], dict[str, Any]]] = {
    "write": _child_write, "static": _child_static, "temporal": _child_temporal, "clip": _child_clip,
    "gpu": _child_gpu, "gpu-lowmem": _child_gpu_lowmem, "refine": child_refine,
    "fast-still": child_fast_still, "fast-run": child_fast_run, "fast-toggle": child_fast_toggle,
    "adapters": child_adapters,
}


def child_main(argv: Sequence[str] | None = None) -> int:
    """Run one task of CHILD_TASKS and write its result as JSON where the parent (``run_child``) reads it."""
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
    atomic_write_json(args.result, result)
    return 0
