"""The fast modes side by side (``zrealism bench --only fast``): the lab's 512 px still and 16-frame clip with two
ControlNets end to end in each speed mode (quality, bf16, few-step, fast); a 512 px still in fp32, under
CPU bf16 autocast and with bf16 weights (seconds per denoising step and the projected run, each in a fresh child
process over the full-size random-weight bundle, pixels compared against fp32 at the same seed); the tiny
autoencoder (TAESD) against the VAE for decoding and previews; the 48 / 16-frame peak memory with context windows
and the cost of switching them; and the temporal overhead against bare diffusers on the tiny bundle."""
from __future__ import annotations

import math
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


FAST_LORA_NAME = "lcm-random"
FAST_LORA_RANK = 64  # latent-consistency/lcm-lora-sdv1-5's rank
# Every Linear layer the real LCM-LoRA adapts in the UNet's attention blocks, feed-forwards and resnet time
# projections (it also adapts the 1x1 and 3x3 convolutions, which the kohya Linear writer does not cover).
FAST_LORA_TARGETS = ("to_q", "to_k", "to_v", "to_out.0", "ff.net.0.proj", "ff.net.2", "time_emb_proj")
E2E_STILL_MODES = ("quality", "bf16", "few-step", "fast")
CLIP_SIZE, CLIP_FRAMES = 256, 16
CLIP_QUALITY_STEPS = 2  # the quality clip's denoising steps measured; its full run is projected from them


def write_fast_lora(bundle: Path, folder: Path | None = None) -> Path:
    """A random rank-64 LoRA in kohya's layout over the bundle's UNet, standing in for LCM-LoRA (its values do not
    change the cost of a step); written once into ``folder`` (default ``bundle/loras``)."""
    import diffusers
    import torch
    from accelerate import init_empty_weights
    from safetensors.torch import save_file

    from ..models.tiny_adapters import kohya_from_pairs, lora_pairs

    path = Path(folder or Path(bundle) / "loras") / f"{FAST_LORA_NAME}.safetensors"
    if path.is_file():
        return path
    with init_empty_weights():  # shapes only: nothing allocated
        unet = diffusers.UNet2DConditionModel.from_config(diffusers.UNet2DConditionModel.load_config(
            Path(bundle) / "unet"))
    pairs = lora_pairs(unet, FAST_LORA_TARGETS, torch.Generator().manual_seed(7), FAST_LORA_RANK)
    tensors = {k: v.contiguous() for k, v in kohya_from_pairs(pairs, FAST_LORA_RANK).items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial")
    save_file(tensors, str(partial))
    partial.replace(path)
    return path


def write_taesd(folder: Path) -> Path:
    """madebyollin/taesd's architecture with its default random initialisation, saved once in ``folder/taesd``."""
    from diffusers import AutoencoderTiny

    out = Path(folder) / "taesd"
    if not (out / "config.json").is_file():
        AutoencoderTiny().save_pretrained(out, safe_serialization=True)
    return out


def _fast_engine(bundle: Path, extras_dir: str | None = None, **plan: Any) -> Any:
    """The full-size engine with the few-step LoRA and the tiny autoencoder written into ``extras_dir`` (default:
    ``bundle/loras`` and ``bundle/taesd``)."""
    import dataclasses

    from ..engine.engine import Engine
    from ..models.fullsize import fullsize_modelset
    from ..models.modelset import ComponentRef

    lora = write_fast_lora(bundle, Path(extras_dir) if extras_dir else None)
    taesd = write_taesd(Path(extras_dir) if extras_dir else Path(bundle))
    models = dataclasses.replace(fullsize_modelset(bundle, FAST_KINDS), fast_lora=str(lora),
                                 preview_vae=ComponentRef("preview_vae", "folder", str(taesd)))
    return Engine(models, device="cpu", offload="none", **plan)


def child_fast_run(bundle: Path, params: dict[str, Any]) -> dict[str, Any]:
    """One whole lab run at the lab's default settings in one speed mode (``params["speed"]``): a 512 px still
    (``kind`` "still") or a 16-frame 256 px clip ("clip"), with two ControlNets and metrics, timed end to end
    after loading. ``steps`` caps the denoising steps (the run is projected from them)."""
    import torch

    from ..generate.static import run_static
    from ..generate.temporal import run_temporal
    from ..models.fullsize import FULLSIZE_CONTROLS, parameter_bytes
    from ..settings import StaticSettings, TemporalSettings

    torch.set_grad_enabled(False)
    clip = params["kind"] == "clip"
    engine = _fast_engine(bundle, params.get("extras_dir"), fast_decode=bool(params.get("fast_decode")))
    start = time.perf_counter()
    pipe = engine.temporal_pipeline(FAST_KINDS) if clip else engine.static_pipeline(FAST_KINDS)
    roles = ("unet", "vae", "text_encoder", *[f"controlnet:{k}" for k in FAST_KINDS],
             *(("motion_adapter",) if clip else ()))
    modules = [engine.component(r) for r in roles]
    page_in(modules)
    out: dict[str, Any] = {"load": time.perf_counter() - start, "weights": sum(parameter_bytes(m) for m in modules)}
    extra = {"steps": params["steps"]} if params.get("steps") else {}
    if clip:
        settings = TemporalSettings(size=CLIP_SIZE, frames=CLIP_FRAMES, seed=0, controls=FULLSIZE_CONTROLS,
                                    speed=params["speed"], **extra)
    else:
        settings = StaticSettings(size=STILL_SIZE, seed=0, controls=FULLSIZE_CONTROLS, speed=params["speed"],
                                  **extra)
    image = source_image(CLIP_SIZE if clip else STILL_SIZE)
    clock = StepClock().attach(pipe)
    start = time.perf_counter()
    if clip:
        result = run_temporal(image, settings, engine=engine, evaluate=True, on_step=clock.on_step)
    else:
        result = run_static(image, settings, engine=engine, evaluate=True, on_step=clock.on_step)
    out["seconds"] = time.perf_counter() - start
    clock.detach()
    out.update(timings=result.timings, steps=clock.steps, step=clock.median(), rss=memory_breakdown()["rss"],
               hardware=result.engine["hardware"], autocast=result.speed.get("autocast"),
               ran={k: getattr(result.settings, k) for k in ("steps", "strength", "cfg", "scheduler", "speed")})
    (result.frames[0] if clip else result.raw).save(params["image"])
    return out


# ------------------------------------------------------------------------------------------------ rows


def fast_mode_rows(bundle: Path, on_line: Callable[[str], None], *, tiny_engine: Any = None, repeats: int = 5,
                   clip_frames: tuple[int, ...] = (16, 48)) -> list[Row]:
    """Every fast-mode row; each part fails on its own rows only."""
    from .fullsize import clip_rows, run_child

    rows: list[Row] = []
    on_line(f"  writing (or reusing) the full-size random weights in {bundle} ...")
    run_child("write", bundle, {})
    for part, make in (("512 px still end to end: quality / fast", lambda: end_to_end_still_rows(bundle, on_line)),
                       ("16-frame clip end to end: quality / fast", lambda: end_to_end_clip_rows(bundle, on_line)),
                       ("512 px still: fp32 / bf16", lambda: _still_rows(bundle, on_line)),
                       ("TAESD / VAE", _decoder_rows),
                       ("context windows", lambda: _toggle_rows(bundle, on_line)),
                       ("clip memory", lambda: clip_rows(bundle, clip_frames, on_line, section=SECTION)),
                       ("overhead", lambda: _overhead_rows(tiny_engine, repeats, on_line))):
        try:
            rows += make()
        except Exception as exc:  # noqa: BLE001 - one failed part must not lose the others
            rows.append(failed_row(SECTION, part, exc))
    return rows


def _run_note(result: dict[str, Any]) -> str:
    ran = result["ran"]
    return (f"{len(result['steps'])} denoising steps ({ran['steps']} x strength {ran['strength']:g}, "
            f"{ran['scheduler']}, CFG {ran['cfg']:g}) at {format_value(result['step'])} s/step; autocast "
            f"{result.get('autocast') or 'off'}; loading before the run {format_value(result['load'])} s; "
            f"{stage_note(result['timings'])}")


def end_to_end_still_rows(bundle: Path, on_line: Callable[[str], None], modes: tuple[str, ...] = E2E_STILL_MODES,
                          steps: int | None = None, extras_dir: str | None = None) -> list[Row]:
    """The 512 px still with two ControlNets and metrics at the lab's defaults, each speed mode in a fresh
    process: seconds from the call to the result (loading done before). ``steps`` caps each run (tests)."""
    from .fullsize import run_child

    results: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="zrealism-fast-") as folder:
        for mode in modes:
            on_line(f"  512 px still, 2 ControlNets, speed {mode}, end to end (fresh process) ...")
            results[mode] = run_child("fast-run", bundle, {"kind": "still", "speed": mode, "steps": steps,
                                                           "extras_dir": extras_dir,
                                                           "image": str(Path(folder) / f"{mode}.png")})
    rows = [row(SECTION, f"512 px still, 2 ControlNets, end to end: speed {mode}", result["seconds"], "s",
                note=_run_note(result)) for mode, result in results.items()]
    base = results.get("quality")
    for mode, result in results.items():
        if base is not None and mode != "quality":
            rows.append(row(SECTION, f"512 px still end to end: {mode} / quality", result["seconds"] / base["seconds"],
                            "x", "<= 0.125" if mode == "fast" else "< 1",
                            f"{format_value(result['seconds'])} s against {format_value(base['seconds'])} s"))
    return rows


def end_to_end_clip_rows(bundle: Path, on_line: Callable[[str], None], steps: int | None = None,
                         extras_dir: str | None = None) -> list[Row]:
    """The 16-frame 256 px clip (still -> clip, two ControlNets, metrics): ``fast`` end to end, with the VAE and with
    the TAESD decode, against ``quality`` measured over CLIP_QUALITY_STEPS denoising steps and projected to its
    default run (a whole quality clip takes tens of minutes on two cores)."""
    from ..settings import TemporalSettings
    from .fullsize import run_child

    defaults = TemporalSettings()
    default_steps = max(1, int(defaults.steps * defaults.strength))
    quality_steps = steps or math.ceil(CLIP_QUALITY_STEPS / defaults.strength)
    runs = {"quality": {"speed": "quality", "steps": quality_steps}, "fast": {"speed": "fast", "steps": steps},
            "fast + TAESD decode": {"speed": "fast", "steps": steps, "fast_decode": True}}
    results: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="zrealism-fast-") as folder:
        for name, params in runs.items():
            on_line(f"  {CLIP_FRAMES}-frame {CLIP_SIZE} px clip, speed {name} (fresh process) ...")
            results[name] = run_child("fast-run", bundle, {"kind": "clip", **params, "extras_dir": extras_dir,
                                                           "image": str(Path(folder) / f"{len(results)}.png")})
    quality = results["quality"]
    outside = quality["seconds"] - sum(quality["steps"])
    projected = outside + quality["step"] * default_steps
    label = f"{CLIP_FRAMES}-frame {CLIP_SIZE} px clip, 2 ControlNets"
    rows = [row(SECTION, f"{label}: speed quality (projected to {default_steps} steps)", projected, "s",
                note=f"measured {format_value(quality['seconds'])} s over {len(quality['steps'])} steps; "
                     + _run_note(quality))]
    for name in ("fast", "fast + TAESD decode"):
        result = results[name]
        rows.append(row(SECTION, f"{label}, end to end: speed {name}", result["seconds"], "s",
                        note=_run_note(result)))
        rows.append(row(SECTION, f"{label}: {name} / quality", result["seconds"] / projected, "x",
                        note=f"{format_value(result['seconds'])} s against {format_value(projected)} s (projected)"))
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
    """The static and temporal 256 px overheads on the tiny bundle, interleaved lab / bare, with each pair's
    ratio."""
    from ..engine.engine import get_engine
    from .overhead import static_overhead_rows, temporal_overhead_rows

    on_line("  static and temporal overhead, tiny bundle, 256 px, interleaved ...")
    engine = engine or get_engine("tiny", device="cpu", offload="none")
    return (static_overhead_rows(engine, 256, repeats, section=SECTION)
            + temporal_overhead_rows(engine, 256, repeats, section=SECTION))
