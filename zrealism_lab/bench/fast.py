"""The fast modes side by side (``zrealism bench --only fast``): a 512 px still with two ControlNets in fp32, under
CPU bf16 autocast and with bf16 weights (seconds per denoising step and the projected run, each in a fresh child
process over the full-size random-weight bundle, pixels compared against fp32 at the same seed); the tiny
autoencoder (TAESD) against the VAE for decoding and previews; the 48 / 16-frame peak memory with context windows
and the cost of switching them; and the temporal overhead against bare diffusers on the tiny bundle."""
from __future__ import annotations

import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .measure import StepClock, memory_breakdown, page_in, time_calls
from .overhead import max_pixel_difference, source_image, static_settings, stage_note, temporal_settings
from .table import GIB, Row, failed_row, format_list, format_value, row

SECTION = "fast modes"
FAST_KINDS = ("depth", "canny")  # the weightless detectors: no annotator checkpoints needed
MODES: dict[str, dict[str, str]] = {"fp32": {}, "bf16 autocast": {"autocast": "bf16"},
                                    "bf16 weights": {"dtype": "bf16"}}
STILL_SIZE = 512
STILL_STEPS = 2  # enough for a per-step time; the projection uses the lab's default run
DEFAULT_DENOISE_STEPS = 21  # 30 steps at strength 0.7, the lab's defaults


def _engine(bundle: Path, **plan: Any) -> Any:
    from ..engine.engine import Engine
    from ..models.fullsize import fullsize_modelset

    return Engine(fullsize_modelset(bundle, FAST_KINDS), device="cpu", offload="none", **plan)


# ------------------------------------------------------------------------------------------------ child tasks


def child_fast_still(bundle: Path, params: dict[str, Any]) -> dict[str, Any]:
    """One mode's 512 px still (``params["mode"]``): load, page in, run, step times; the raw image to a PNG."""
    import torch

    from ..generate.static import run_static
    from ..models.fullsize import FULLSIZE_CONTROLS, parameter_bytes

    torch.set_grad_enabled(False)
    engine = _engine(bundle, **MODES[params["mode"]])
    start = time.perf_counter()
    pipe = engine.static_pipeline(FAST_KINDS)
    modules = [engine.component(r) for r in ("unet", "vae", "text_encoder", *[f"controlnet:{k}" for k in FAST_KINDS])]
    page_in(modules)
    out: dict[str, Any] = {"load": time.perf_counter() - start, "weights": sum(parameter_bytes(m) for m in modules)}
    settings = static_settings(params["size"], steps=params["steps"], strength=1.0, controls=FULLSIZE_CONTROLS)
    clock = StepClock().attach(pipe)
    start = time.perf_counter()
    result = run_static(source_image(params["size"]), settings, engine=engine, evaluate=False, on_step=clock.on_step)
    clock.detach()
    out.update(seconds=time.perf_counter() - start, timings=result.timings, steps=clock.steps, step=clock.median(),
               rss=memory_breakdown()["rss"], hardware=result.engine["hardware"])
    result.raw.save(params["image"])
    return out


def child_fast_toggle(bundle: Path, params: dict[str, Any]) -> dict[str, Any]:
    """Context windows on and off twice on the full-size temporal pipeline: seconds, memory left behind, and
    whether every motion parameter kept its storage."""
    import torch

    from ..engine.animatediff import set_free_noise

    torch.set_grad_enabled(False)
    engine = _engine(bundle)
    pipe = engine.temporal_pipeline(FAST_KINDS)
    page_in([engine.component("unet"), engine.component("motion_adapter")])
    settings = temporal_settings(128, frames=16, context_length=16, context_stride=4)
    pointers = {name: p.data_ptr() for name, p in pipe.unet.named_parameters()}
    before = memory_breakdown()
    times: dict[str, list[float]] = {"on": [], "off": []}
    for _ in range(2):
        for name, frames in (("on", 48), ("off", 16)):
            start = time.perf_counter()
            set_free_noise(pipe, frames, settings)
            times[name].append(time.perf_counter() - start)
    after = memory_breakdown()
    same = pointers == {name: p.data_ptr() for name, p in pipe.unet.named_parameters()}
    return {**times, "anon_added": after.get("anon", after["rss"]) - before.get("anon", before["rss"]),
            "same_storage": same}


# ------------------------------------------------------------------------------------------------ rows


def fast_mode_rows(bundle: Path, on_line: Callable[[str], None], *, tiny_engine: Any = None, repeats: int = 5,
                   clip_frames: tuple[int, ...] = (16, 48)) -> list[Row]:
    """Every fast-mode row; each part fails on its own rows only."""
    from .fullsize import clip_rows, run_child

    rows: list[Row] = []
    on_line(f"  writing (or reusing) the full-size random weights in {bundle} ...")
    run_child("write", bundle, {})
    for part, make in (("512 px still: fp32 / bf16", lambda: _still_rows(bundle, on_line)),
                       ("TAESD / VAE", _decoder_rows),
                       ("context windows", lambda: _toggle_rows(bundle, on_line)),
                       ("clip memory", lambda: clip_rows(bundle, clip_frames, on_line, section=SECTION)),
                       ("temporal overhead", lambda: _overhead_rows(tiny_engine, repeats, on_line))):
        try:
            rows += make()
        except Exception as exc:  # noqa: BLE001 - one failed part must not lose the others
            rows.append(failed_row(SECTION, part, exc))
    return rows


def _still_rows(bundle: Path, on_line: Callable[[str], None]) -> list[Row]:
    from PIL import Image

    from .fullsize import run_child

    results: dict[str, dict[str, Any]] = {}
    images: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="zrealism-fast-") as folder:
        for mode in MODES:
            on_line(f"  512 px still, 2 ControlNets, {mode} (fresh process) ...")
            image = str(Path(folder) / f"{mode.replace(' ', '-')}.png")
            results[mode] = run_child("fast-still", bundle, {"mode": mode, "size": STILL_SIZE, "steps": STILL_STEPS,
                                                             "image": image})
            images[mode] = Image.open(image).convert("RGB")
    base = results["fp32"]
    rows = []
    for mode, result in results.items():
        step, timings = result["step"], result["timings"]
        outside = timings.get("generate", 0.0) - sum(result["steps"])  # prompt, VAE encode and decode
        projected = step * DEFAULT_DENOISE_STEPS + max(0.0, outside)
        note = (f"steps {format_list(result['steps'])} s; weights {result['weights'] / GIB:.2f} GiB, RSS "
                f"{result['rss'] / GIB:.2f} GiB; projected {DEFAULT_DENOISE_STEPS}-step run "
                f"{format_value(projected)} s (+ VAE encode/decode {format_value(outside)} s); {stage_note(timings)}")
        if mode != "fp32":
            note += (f"; {step / base['step']:.2f}x fp32's step; pixels differ from fp32 by at most "
                     f"{max_pixel_difference([images[mode]], [images['fp32']])}/255 (random weights)")
        rows.append(row(SECTION, f"512 px still, 2 ControlNets, CFG, {mode}: seconds per step", step, "s/step",
                        note=note))
    for mode in ("bf16 autocast", "bf16 weights"):
        rows.append(row(SECTION, f"512 px still step: {mode} / fp32", results[mode]["step"] / base["step"], "x",
                        "< 1", f"autocast {results[mode]['hardware'].get('autocast')}, weights "
                               f"{results[mode]['hardware']['dtype']}; CPU bf16: "
                               f"{results[mode]['hardware'].get('bf16_native')}"))
    return rows


def _decoder_rows() -> list[Row]:
    """Decode one 512 px latent with the full-size VAE and with TAESD (random weights, real architectures), and
    preview a 64x64 latent with TAESD and with the linear projection."""
    import torch
    from diffusers import AutoencoderTiny

    from ..models.fullsize import build_component
    from ..progress import latent_preview, taesd_preview

    torch.set_grad_enabled(False)
    vae = build_component("vae")
    taesd = AutoencoderTiny().eval().requires_grad_(False)  # madebyollin/taesd's configuration
    latent = torch.randn(1, 4, 64, 64, generator=torch.Generator().manual_seed(0))
    vae_s = time_calls(lambda: vae.decode(latent / vae.config.scaling_factor), 1, repeats=3)
    taesd_s = time_calls(lambda: taesd.decode(latent), 3, repeats=5)
    preview_s = time_calls(lambda: taesd_preview(latent, taesd), 3, repeats=5)
    linear_s = time_calls(lambda: latent_preview(latent), 50, repeats=5)
    del vae
    return [
        row(SECTION, "decode one 512 px frame: VAE (AutoencoderKL)", vae_s.median, "s", note=vae_s.text()),
        row(SECTION, "decode one 512 px frame: TAESD (AutoencoderTiny)", taesd_s.median * 1e3, "ms",
            note=f"{vae_s.median / taesd_s.median:.0f}x faster than the VAE; a 16-frame clip "
                 f"{format_value(16 * taesd_s.median)} s against {format_value(16 * vae_s.median)} s"),
        row(SECTION, "live preview of a 64x64 latent: TAESD", preview_s.median * 1e3, "ms",
            note=f"a 512 px picture; the linear projection takes {linear_s.median * 1e3:.3f} ms for a 64 px one"),
    ]


def _toggle_rows(bundle: Path, on_line: Callable[[str], None]) -> list[Row]:
    from .fullsize import run_child

    on_line("  context windows on / off on the full-size motion UNet (fresh process) ...")
    cost = run_child("fast-toggle", bundle, {})
    seconds = statistics.median(cost["on"]) + statistics.median(cost["off"])
    return [row(SECTION, "context windows on, then off again (full size)", seconds, "s", "< 1",
                f"on {format_list(cost['on'])} s, off {format_list(cost['off'])} s; anonymous memory left behind "
                f"{cost['anon_added'] / GIB:.2f} GiB; same parameter storage after switching: "
                f"{'yes' if cost['same_storage'] else 'NO'}")]


def _overhead_rows(engine: Any, repeats: int, on_line: Callable[[str], None]) -> list[Row]:
    """The temporal 256 px overhead on the tiny bundle, interleaved lab / bare, with each pair's ratio."""
    from ..engine.engine import get_engine
    from .overhead import temporal_overhead_rows

    on_line("  temporal overhead, tiny bundle, 256 px, interleaved ...")
    engine = engine or get_engine("tiny", device="cpu", offload="none")
    return temporal_overhead_rows(engine, 256, repeats, section=SECTION)
