"""Full-size cost of LoRAs: two random rank-32 LoRAs in kohya's format over the real SD1.5 UNet and text encoder
(attention and feed-forward projections, as kohya-ss trains them), applied through the lab's own adapter code in
one fresh child process. Measured: loading each LoRA, switching LoRA sets and weights (no base weight is read
again), fusing and unfusing, the memory each LoRA adds, and a UNet step (256 px, CFG batch 2) without a LoRA,
with one or two unfused and with one fused."""
from __future__ import annotations

import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .table import GIB, Row, format_list, row

SECTION = "full size: LoRA"
RANK = 32
UNET_TARGETS = ("to_q", "to_k", "to_v", "to_out.0", "ff.net.0.proj", "ff.net.2")
TEXT_TARGETS = ("q_proj", "k_proj", "v_proj", "out_proj", "fc1", "fc2")
STEP_LATENT = 32  # 256 px
STEP_REPEATS = 6  # UNet forwards vary by ~10 % on a shared CPU: the median of six


def child_adapters(bundle: Path, params: dict[str, Any]) -> dict[str, Any]:
    """In a fresh process: the full-size static parts, two LoRA files written next to nothing else, then each
    lever timed through ``EngineAdapters.apply``."""
    import torch
    from safetensors.torch import save_file

    from ..adapters.plan import resolve_adapters
    from ..engine.engine import Engine
    from ..models.fullsize import fullsize_modelset
    from ..models.modelset import tiny_modelset
    from ..models.tiny_adapters import kohya_from_pairs, lora_pairs, text_encoder_pairs
    from ..settings import StaticSettings
    from .measure import page_in, rss_bytes

    torch.set_grad_enabled(False)
    rank = int(params.get("rank", RANK))
    # params["tiny"]: the same measurement over the tiny bundle, so a test runs this code in seconds
    models = tiny_modelset() if params.get("tiny") else fullsize_modelset(bundle, ())
    engine = Engine(models, device="cpu", offload="none")
    engine.static_pipeline(())
    unet, text_encoder = engine.component("unet"), engine.component("text_encoder")
    page_in([unet, text_encoder, engine.component("vae")])
    out: dict[str, Any] = {"rank": rank, "rss_loaded": rss_bytes()}
    with tempfile.TemporaryDirectory(prefix="zrealism-bench-lora-") as folder:
        files = {}
        for index, name in enumerate(("lora-a", "lora-b")):
            generator = torch.Generator().manual_seed(index)
            pairs = lora_pairs(unet, UNET_TARGETS, generator, rank) | text_encoder_pairs(
                text_encoder, TEXT_TARGETS, generator, rank)
            files[name] = Path(folder) / f"{name}.safetensors"
            save_file({k: v.contiguous() for k, v in kohya_from_pairs(pairs, rank).items()}, str(files[name]))
        out["file_mib"] = files["lora-a"].stat().st_size / 2**20

        def apply(loras: str, fuse: bool = False) -> tuple[float, int]:
            settings = StaticSettings(loras=",".join(f"{files[n.split(':')[0]]}:{n.split(':')[1]}"
                                                     for n in loras.split(",")) if loras else (), lora_fuse=fuse)
            plan = resolve_adapters(settings, engine.models)
            before = rss_bytes()
            start = time.perf_counter()
            engine.adapters.apply(plan)
            return time.perf_counter() - start, rss_bytes() - before

        out["step_none"] = _unet_steps(unet, text_encoder)
        out["load_a"], out["added_a"] = apply("lora-a:1")
        out["lora_bytes"] = _lora_bytes(unet) + _lora_bytes(text_encoder)
        out["step_one"] = _unet_steps(unet, text_encoder)
        out["load_b"], out["added_b"] = apply("lora-a:1,lora-b:1")
        out["step_two"] = _unet_steps(unet, text_encoder)
        out["switch_set"], _ = apply("lora-b:1")
        out["switch_weights"], _ = apply("lora-b:0.5")
        out["fuse"], _ = apply("lora-a:1", fuse=True)
        out["step_fused"] = _unet_steps(unet, text_encoder)
        out["unfuse"], _ = apply("lora-a:1")
        out["off"], _ = apply("")
        out["step_off"] = _unet_steps(unet, text_encoder)
        out["lora_loads"] = engine.adapters.lora_loads
        out["components_loaded"] = engine.loaded_roles()
    return out


def _lora_bytes(module: Any) -> int:
    return sum(p.numel() * p.element_size() for n, p in module.named_parameters() if "lora_" in n)


def _unet_steps(unet: Any, text_encoder: Any) -> list[float]:
    """Seconds of UNet forwards at 256 px with CFG's batch of 2 (the first one warms up and is dropped)."""
    import torch

    generator = torch.Generator().manual_seed(0)
    latents = torch.randn(2, unet.config.in_channels, STEP_LATENT, STEP_LATENT, generator=generator)
    context = text_encoder(torch.zeros(2, text_encoder.config.max_position_embeddings, dtype=torch.long))[0]
    times = []
    for _ in range(STEP_REPEATS + 1):
        start = time.perf_counter()
        unet(latents, 500, encoder_hidden_states=context)
        times.append(time.perf_counter() - start)
    return times[1:]


def adapter_rows(folder: Path, on_line: Callable[[str], None]) -> list[Row]:
    """The rows of one ``adapters`` child over the full-size bundle in ``folder`` (written first if needed)."""
    from ..models.fullsize import MARKER_NAME
    from .fullsize import run_child

    if not (Path(folder) / MARKER_NAME).is_file():
        on_line(f"  writing full-size random weights to {folder} ...")
        run_child("write", Path(folder), {})
    on_line(f"  two rank-{RANK} LoRAs on the SD1.5 UNet and text encoder (fresh process) ...")
    return rows_from(run_child("adapters", folder, {"rank": RANK}))


def rows_from(point: dict[str, Any]) -> list[Row]:
    median = lambda xs: statistics.median(xs) if xs else None  # noqa: E731
    none, one, two, fused = (median(point[k]) for k in ("step_none", "step_one", "step_two", "step_fused"))
    ratio = lambda a: f"{a / none:.2f}x no LoRA" if a and none else ""  # noqa: E731
    rank = point["rank"]
    return [
        row(SECTION, f"load a rank-{rank} LoRA (kohya file {point['file_mib']:.0f} MiB, UNet + text encoder)",
            point["load_a"], "s", note=f"second LoRA {point['load_b']:.2f} s"),
        row(SECTION, "memory one LoRA adds (its own tensors / resident)", point["lora_bytes"] / GIB, "GiB",
            note=f"RSS +{point['added_a'] / GIB:.2f} GiB for the first, +{point['added_b'] / GIB:.2f} GiB for the "
                 f"second (base components loaded: {point['rss_loaded'] / GIB:.2f} GiB)"),
        row(SECTION, "switch LoRA set (both loaded -> one) / weights: set_adapters, no file read", point["switch_set"],
            "s", note=f"weights only {point['switch_weights']:.3f} s; LoRA files read in all: {point['lora_loads']} "
                      f"(2 LoRAs); components loaded once: {', '.join(point['components_loaded'])}"),
        row(SECTION, "fuse one LoRA into the base weights / unfuse", point["fuse"], "s",
            note=f"unfuse {point['unfuse']:.2f} s; all off {point['off']:.3f} s"),
        row(SECTION, "UNet step 256 px, CFG batch 2: no LoRA", none, "s/step",
            note=f"steps {format_list(point['step_none'])} s; after switching all off "
                 f"{format_list(point['step_off'])} s"),
        row(SECTION, "UNet step with one LoRA unfused / two unfused / one fused", one, "s/step",
            note=f"one unfused {ratio(one)}; two unfused {two:.2f} s ({ratio(two)}); one fused {fused:.2f} s "
                 f"({ratio(fused)})"),
    ]
