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

# Component configurations of the real checkpoints (runwayml SD1.5 / Realistic Vision, lllyasviel ControlNet v1.1,
# guoyww/animatediff-motion-adapter-v1-5-2), as their config.json files give them.
SD15_UNET: dict[str, Any] = {
    "sample_size": 64, "in_channels": 4, "out_channels": 4, "layers_per_block": 2,
    "block_out_channels": (320, 640, 1280, 1280),
    "down_block_types": ("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
    "up_block_types": ("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
    "cross_attention_dim": 768, "attention_head_dim": 8, "norm_num_groups": 32,
}
SD15_CONTROLNET: dict[str, Any] = {
    "in_channels": 4, "conditioning_channels": 3, "layers_per_block": 2,
    "block_out_channels": (320, 640, 1280, 1280),
    "down_block_types": SD15_UNET["down_block_types"], "cross_attention_dim": 768, "attention_head_dim": 8,
    "norm_num_groups": 32, "conditioning_embedding_out_channels": (16, 32, 96, 256),
}
SD15_VAE: dict[str, Any] = {
    "sample_size": 512, "in_channels": 3, "out_channels": 3, "latent_channels": 4, "layers_per_block": 2,
    "block_out_channels": (128, 256, 512, 512), "down_block_types": ("DownEncoderBlock2D",) * 4,
    "up_block_types": ("UpDecoderBlock2D",) * 4, "norm_num_groups": 32, "scaling_factor": 0.18215,
}
SD15_TEXT_ENCODER: dict[str, Any] = {
    "vocab_size": 49408, "hidden_size": 768, "intermediate_size": 3072, "num_hidden_layers": 12,
    "num_attention_heads": 12, "max_position_embeddings": 77, "hidden_act": "quick_gelu", "projection_dim": 768,
}
MOTION_ADAPTER_V152: dict[str, Any] = {
    "block_out_channels": (320, 640, 1280, 1280), "motion_layers_per_block": 2,
    "motion_mid_block_layers_per_block": 1, "motion_num_attention_heads": 8, "motion_norm_num_groups": 32,
    "motion_max_seq_length": 32, "use_motion_mid_block": True,
}
SCENARIOS = ("static", "ours", "diffusers")


def _rss() -> int:
    import psutil

    gc.collect()
    return psutil.Process().memory_info().rss


def _random(make) -> Any:
    """Build a module without the slow default initialisation, then write random values into every weight (so
    every page is really resident, as after loading a checkpoint)."""
    import torch
    from accelerate import init_empty_weights

    with init_empty_weights():
        module = make()
    module = module.to_empty(device="cpu")
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for param in module.parameters():
            param.normal_(0.0, 0.02, generator=generator)
    return module.eval().requires_grad_(False)


def _static_parts() -> dict[str, Any]:
    import diffusers
    from transformers import CLIPTextConfig, CLIPTextModel

    return {
        "unet": _random(lambda: diffusers.UNet2DConditionModel(**SD15_UNET)),
        "vae": _random(lambda: diffusers.AutoencoderKL(**SD15_VAE)),
        "text_encoder": _random(lambda: CLIPTextModel(CLIPTextConfig(**SD15_TEXT_ENCODER))),
        "controlnets": [_random(lambda: diffusers.ControlNetModel(**SD15_CONTROLNET)) for _ in range(2)],
    }


def _bytes(module: Any) -> int:
    return sum(t.numel() * t.element_size() for t in [*module.parameters(), *module.buffers()])


def run_scenario(name: str) -> dict[str, Any]:
    import diffusers
    import torch
    from diffusers.models.controlnets.multicontrolnet import MultiControlNetModel

    torch.set_grad_enabled(False)
    out: dict[str, Any] = {"scenario": name, "rss_start": _rss()}
    parts = _static_parts()
    scheduler = diffusers.DDIMScheduler(beta_schedule="linear", clip_sample=False, steps_offset=1)
    static = diffusers.StableDiffusionControlNetImg2ImgPipeline(
        vae=parts["vae"], text_encoder=parts["text_encoder"], tokenizer=None, unet=parts["unet"],
        controlnet=MultiControlNetModel(parts["controlnets"]), scheduler=scheduler, safety_checker=None,
        feature_extractor=None, requires_safety_checker=False)
    out["rss_static"] = _rss()
    out["static_weight_bytes"] = sum(_bytes(m) for m in (parts["unet"], parts["vae"], parts["text_encoder"],
                                                        *parts["controlnets"]))
    if name == "static":
        return out

    adapter = _random(lambda: diffusers.MotionAdapter(**MOTION_ADAPTER_V152))
    out["motion_bytes"] = _bytes(adapter)
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
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump({"summary": summary, "scenarios": results}, handle, indent=2)
    return 0 if summary["ours_within_target"] and summary["switch_within_target"] else 1


if __name__ == "__main__":
    sys.exit(main())
