"""Memory and switch time of static + temporal on the full-size architectures (random weights, fp32, CPU).

Three scenarios, each in its own fresh process so that resident memory (psutil RSS) is not muddied by the others:

  static     SD1.5 UNet, VAE, CLIP text encoder and two ControlNets: a static ControlNet img2img pipeline ready
  ours       static + the v1-5-2 motion adapter + our temporal pipeline (motion UNet sharing every tensor)
  diffusers  static + the adapter + AnimateDiffVideoToVideoControlNetPipeline.from_pipe(static pipeline), which
             copies the UNet into a new motion UNet (UNetMotionModel.from_unet2d)

Weights are random and written once (compute and memory do not depend on their values). No download, no GPU.
Run:  python benchmarks/bench_sharing.py [--json results.json]   (needs about 15 GB of free memory)
"""
from __future__ import annotations

import argparse
import gc
import json
import subprocess
import sys
import time
from typing import Any

from zrealism_lab.files import atomic_write_json

SCENARIOS = ("static", "ours", "diffusers")


def _rss() -> int:
    import psutil

    gc.collect()
    return psutil.Process().memory_info().rss


def _static_parts() -> dict[str, Any]:
    """The SD1.5 parts with random weights, every page written (so resident, as after loading a checkpoint)."""
    from zrealism_lab.models.fullsize import build_controlnet, build_text_encoder, build_unet, build_vae

    return {
        "unet": build_unet(seed=0),
        "vae": build_vae(seed=1),
        "text_encoder": build_text_encoder(seed=2),
        "controlnets": [build_controlnet(seed=10 + i) for i in range(2)],
    }


def run_scenario(name: str) -> dict[str, Any]:
    import diffusers
    import torch
    from diffusers.models.controlnets.multicontrolnet import MultiControlNetModel

    from zrealism_lab.models.fullsize import build_motion_adapter, parameter_bytes

    torch.set_grad_enabled(False)
    out: dict[str, Any] = {"scenario": name, "rss_start": _rss()}
    parts = _static_parts()
    scheduler = diffusers.DDIMScheduler(beta_schedule="linear", clip_sample=False, steps_offset=1)
    static = diffusers.StableDiffusionControlNetImg2ImgPipeline(
        vae=parts["vae"], text_encoder=parts["text_encoder"], tokenizer=None, unet=parts["unet"],
        controlnet=MultiControlNetModel(parts["controlnets"]), scheduler=scheduler, safety_checker=None,
        feature_extractor=None, requires_safety_checker=False)
    out["rss_static"] = _rss()
    out["static_weight_bytes"] = sum(parameter_bytes(m) for m in (parts["unet"], parts["vae"], parts["text_encoder"],
                                                                *parts["controlnets"]))
    if name == "static":
        return out

    adapter = build_motion_adapter(seed=3)
    out["motion_bytes"] = parameter_bytes(adapter)
    out["rss_adapter_loaded"] = _rss()
    start = time.perf_counter()
    if name == "ours":
        from zrealism_lab.engine.sharing import build_shared_motion_unet, shared_storage

        unet = build_shared_motion_unet(parts["unet"], adapter)
        temporal = diffusers.AnimateDiffVideoToVideoControlNetPipeline(
            vae=parts["vae"], text_encoder=parts["text_encoder"], tokenizer=None, unet=unet, motion_adapter=adapter,
            controlnet=static.controlnet, scheduler=scheduler)
        out["shared_with_static_unet"] = shared_storage(temporal.unet, parts["unet"])
    else:
        temporal = diffusers.AnimateDiffVideoToVideoControlNetPipeline.from_pipe(static, motion_adapter=adapter)
        out["shared_with_static_unet"] = {"parameters": len(list(temporal.unet.parameters())), "shared": sum(
            1 for p in temporal.unet.parameters()
            if p.data_ptr() in {q.data_ptr() for q in parts["unet"].parameters()})}
    out["switch_seconds"] = time.perf_counter() - start
    out["rss_both"] = _rss()
    # static again: the static pipeline was never touched, so switching back is free
    start = time.perf_counter()
    assert static.unet is parts["unet"]
    out["switch_back_seconds"] = time.perf_counter() - start
    del temporal
    return out


def _child(name: str) -> dict[str, Any]:
    proc = subprocess.run([sys.executable, __file__, "--scenario", name], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"scenario {name} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def summarise(results: dict[str, dict[str, Any]]) -> dict[str, Any]:
    gib = 2 ** 30
    static = results["static"]["rss_static"]
    motion = results["ours"]["motion_bytes"]
    limit = (static + motion) * 1.10
    summary = {
        "static_rss_gib": static / gib,
        "motion_modules_gib": motion / gib,
        "ours_both_rss_gib": results["ours"]["rss_both"] / gib,
        "diffusers_both_rss_gib": results["diffusers"]["rss_both"] / gib,
        "ours_added_gib": (results["ours"]["rss_both"] - results["ours"]["rss_static"]) / gib,
        "diffusers_added_gib": (results["diffusers"]["rss_both"] - results["diffusers"]["rss_static"]) / gib,
        "target_gib": limit / gib,
        "ours_within_target": results["ours"]["rss_both"] <= limit,
        "ours_switch_seconds": results["ours"]["switch_seconds"],
        "diffusers_switch_seconds": results["diffusers"]["switch_seconds"],
        "switch_within_target": results["ours"]["switch_seconds"] < 1.0,
        "ours_shared_unet_parameters": results["ours"]["shared_with_static_unet"],
        "diffusers_shared_unet_parameters": results["diffusers"]["shared_with_static_unet"],
    }
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scenario", choices=SCENARIOS, help="run one scenario in this process and print JSON")
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args(argv)
    if args.scenario:
        print(json.dumps(run_scenario(args.scenario)))
        return 0
    results = {name: _child(name) for name in SCENARIOS}
    summary = summarise(results)
    for key, value in summary.items():
        print(f"{key:34s} {value:.3f}" if isinstance(value, float) else f"{key:34s} {value}")
    if args.json:
        atomic_write_json(args.json, {"summary": summary, "scenarios": results})
    return 0 if summary["ours_within_target"] and summary["switch_within_target"] else 1


if __name__ == "__main__":
    sys.exit(main())
