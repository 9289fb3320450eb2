"""Full-size SD1.5 components with random weights, built from the real checkpoints' configurations.

Speed and memory do not depend on the weights' values, so these stand in for the real checkpoints (which cannot be
downloaded here) in benchmarks: the SD1.5 UNet, VAE and CLIP ViT-L/14 text encoder, SD1.5 ControlNets and the
AnimateDiff v1-5-2 motion adapter. ``write_fullsize_bundle`` saves them in the same diffusers folder layout as real
weights (and as the tiny bundle), so the engine loads them through its ordinary loading code.

Building is fast: modules are constructed on the meta device (no allocation, no default initialisation, which costs
tens of seconds for 860 M parameters) and then given freshly drawn random tensors. ``empty=True`` stops at the meta
device, to count parameters without allocating anything.
"""
from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from ..files import atomic_write_json
from ..settings import ControlUnit
from .tiny import SCHEDULER_CONFIG as TINY_SCHEDULER_CONFIG

# The real checkpoints' config.json values (runwayml/stable-diffusion-v1-5 and its fine-tunes such as Realistic
# Vision, lllyasviel ControlNet v1.1 for SD1.5, guoyww/animatediff-motion-adapter-v1-5-2).
SD15_UNET_CONFIG: dict[str, Any] = {
    "sample_size": 64,
    "in_channels": 4,
    "out_channels": 4,
    "layers_per_block": 2,
    "block_out_channels": (320, 640, 1280, 1280),
    "down_block_types": ("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
    "up_block_types": ("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
    "cross_attention_dim": 768,
    "attention_head_dim": 8,
    "norm_num_groups": 32,
    "norm_eps": 1e-5,
    "act_fn": "silu",
    "center_input_sample": False,
    "downsample_padding": 1,
    "flip_sin_to_cos": True,
    "freq_shift": 0,
    "mid_block_scale_factor": 1,
}
SD15_VAE_CONFIG: dict[str, Any] = {
    "sample_size": 512,
    "in_channels": 3,
    "out_channels": 3,
    "latent_channels": 4,
    "layers_per_block": 2,
    "block_out_channels": (128, 256, 512, 512),
    "down_block_types": ("DownEncoderBlock2D",) * 4,
    "up_block_types": ("UpDecoderBlock2D",) * 4,
    "norm_num_groups": 32,
    "act_fn": "silu",
    "scaling_factor": 0.18215,
}
SD15_TEXT_ENCODER_CONFIG: dict[str, Any] = {  # openai/clip-vit-large-patch14's text tower, as SD1.5 ships it
    "vocab_size": 49408,
    "hidden_size": 768,
    "intermediate_size": 3072,
    "num_hidden_layers": 12,
    "num_attention_heads": 12,
    "max_position_embeddings": 77,
    "hidden_act": "quick_gelu",
    "layer_norm_eps": 1e-5,
    "projection_dim": 768,
    "bos_token_id": 0,
    "eos_token_id": 2,
    "pad_token_id": 1,
}
SD15_CONTROLNET_CONFIG: dict[str, Any] = {
    "in_channels": 4,
    "conditioning_channels": 3,
    "layers_per_block": 2,
    "block_out_channels": SD15_UNET_CONFIG["block_out_channels"],
    "down_block_types": SD15_UNET_CONFIG["down_block_types"],
    "cross_attention_dim": 768,
    "attention_head_dim": 8,
    "norm_num_groups": 32,
    "norm_eps": 1e-5,
    "act_fn": "silu",
    "downsample_padding": 1,
    "flip_sin_to_cos": True,
    "freq_shift": 0,
    "mid_block_scale_factor": 1,
    "conditioning_embedding_out_channels": (16, 32, 96, 256),
}
MOTION_ADAPTER_V152_CONFIG: dict[str, Any] = {  # its config also names geglu / no bias / no cross-attention: defaults
    "block_out_channels": (320, 640, 1280, 1280),
    "motion_layers_per_block": 2,
    "motion_mid_block_layers_per_block": 1,
    "motion_num_attention_heads": 8,
    "motion_norm_num_groups": 32,
    "motion_max_seq_length": 32,
    "use_motion_mid_block": True,
}
# SD1.5's scheduler/scheduler_config.json: the tiny bundle ships the very same one.
SD15_SCHEDULER_CONFIG: dict[str, Any] = dict(TINY_SCHEDULER_CONFIG)
# Published parameter counts of the real checkpoints (ControlNet and motion adapter rounded as usually quoted):
# the builders must match them (tests check to 0.5 %).
EXPECTED_PARAMETERS: dict[str, int] = {
    "unet": 859_520_964,
    "vae": 83_653_863,
    "text_encoder": 123_060_480,
    "controlnet": 361_300_000,
    "motion_adapter": 453_200_000,
}
ROLES = ("unet", "vae", "text_encoder", "controlnet", "motion_adapter")
# Control kinds whose detectors need no checkpoint, so full-size runs work offline.
FULLSIZE_CONTROLS: tuple[ControlUnit, ...] = (ControlUnit("depth", 0.75, method="inflate"), ControlUnit("canny", 0.5))
MARKER_NAME = "zrealism_fullsize.json"
FULLSIZE_VERSION = 1
_POOL_SIZE = 1 << 22  # random values drawn per component, then tiled over all its weights (see _fill_random)


# ------------------------------------------------------------------------------------------------ builders


def _constructor(role: str) -> Callable[[], Any]:
    import diffusers

    if role == "unet":
        return lambda: diffusers.UNet2DConditionModel(**SD15_UNET_CONFIG)
    if role == "vae":
        return lambda: diffusers.AutoencoderKL(**SD15_VAE_CONFIG)
    if role == "controlnet":
        return lambda: diffusers.ControlNetModel(**SD15_CONTROLNET_CONFIG)
    if role == "motion_adapter":
        return lambda: diffusers.MotionAdapter(**MOTION_ADAPTER_V152_CONFIG)
    if role == "text_encoder":
        from transformers import CLIPTextConfig, CLIPTextModel

        return lambda: CLIPTextModel(CLIPTextConfig(**SD15_TEXT_ENCODER_CONFIG))
    from ..errors import SettingsError

    raise SettingsError("role", role, "one of " + ", ".join(ROLES))


def build_component(role: str, *, empty: bool = False, seed: int = 0, dtype: Any = None) -> Any:
    """A full-size component (``role`` one of ROLES) in eval mode without gradients.

    ``empty``: leave every parameter on the meta device (for counting; nothing allocated). Otherwise parameters are
    drawn from N(0, 0.02) (norm scales 1, biases 0, so activations stay finite); buffers keep their real values
    (CLIP's position ids, the motion modules' sinusoidal tables).
    """
    import torch
    from accelerate import init_empty_weights

    with init_empty_weights(include_buffers=False):
        module = _constructor(role)()
    if not empty:
        _fill_random(module, seed, dtype or torch.float32)
    return module.eval().requires_grad_(False)


def _fill_random(module: Any, seed: int, dtype: Any) -> None:
    """Replace each meta parameter with a real random tensor. Written by hand rather than ``to_empty`` because
    ``to_empty`` would also wipe the buffers (index tables) that construction already filled correctly."""
    import torch

    # Drawing 860 M normal numbers costs ~10 s on two cores; tiling one drawn block costs a memory copy. The values'
    # periodicity changes neither compute nor memory.
    pool = torch.empty(_POOL_SIZE, dtype=dtype).normal_(0.0, 0.02, generator=torch.Generator().manual_seed(seed))
    offset = 0
    with torch.no_grad():
        for name, param in list(module.named_parameters()):
            owner_name, _, leaf = name.rpartition(".")
            owner = module.get_submodule(owner_name) if owner_name else module
            tensor = torch.empty(param.shape, dtype=dtype)
            if param.ndim >= 2:
                offset = _tile(tensor.view(-1), pool, offset)
            elif leaf == "weight" and "norm" in name:
                tensor.fill_(1.0)
            else:
                tensor.zero_()
            setattr(owner, leaf, torch.nn.Parameter(tensor, requires_grad=False))
        for name, buf in list(module.named_buffers()):
            if buf.is_floating_point() and buf.dtype != dtype:
                owner_name, _, leaf = name.rpartition(".")
                owner = module.get_submodule(owner_name) if owner_name else module
                owner._buffers[leaf] = buf.to(dtype)


def _tile(flat: Any, pool: Any, offset: int) -> int:
    """Fill ``flat`` with consecutive values of ``pool`` (wrapping), starting at ``offset``; return the next offset."""
    done, size = 0, pool.numel()
    while done < flat.numel():
        count = min(size - offset, flat.numel() - done)
        flat[done:done + count].copy_(pool[offset:offset + count])
        done += count
        offset = (offset + count) % size
    return offset


# One builder per role, by name: benchmarks/bench_sharing.py builds its scenarios' parts with them.
def build_unet(**kwargs: Any) -> Any:
    return build_component("unet", **kwargs)


def build_vae(**kwargs: Any) -> Any:
    return build_component("vae", **kwargs)


def build_text_encoder(**kwargs: Any) -> Any:
    return build_component("text_encoder", **kwargs)


def build_controlnet(**kwargs: Any) -> Any:
    return build_component("controlnet", **kwargs)


def build_motion_adapter(**kwargs: Any) -> Any:
    return build_component("motion_adapter", **kwargs)


def parameter_count(module: Any) -> int:
    """Parameters of a module (works on the meta device too)."""
    return sum(p.numel() for p in module.parameters())


def parameter_bytes(module: Any) -> int:
    return sum(t.numel() * t.element_size() for t in [*module.parameters(), *module.buffers()])


# ------------------------------------------------------------------------------------------------ on disk


def write_fullsize_bundle(out_dir: str | os.PathLike, *, control_kinds: Iterable[str] = ("depth", "canny"),
                          motion_adapter: bool = True, seed: int = 0,
                          on_component: Callable[[str, float], None] | None = None) -> Path:
    """Save full-size random components in the diffusers layout (``unet/``, ``vae/``, ``text_encoder/``,
    ``tokenizer/``, ``scheduler/``, ``controlnet/<kind>/``, ``motion_adapter/``) and return the folder.

    One component is built, saved and freed at a time, so the peak memory is one UNet (3.4 GB), not the ~9 GB of the
    whole set. A folder already holding the same set (its marker file says so) is returned untouched. The tokenizer is
    the tiny bundle's (its ids are far below CLIP's 49408), with CLIP's 77-token window.
    """
    import gc
    import time

    out = Path(out_dir).expanduser()
    kinds = tuple(control_kinds)
    wanted = {"version": FULLSIZE_VERSION, "seed": seed, "controlnets": list(kinds), "motion_adapter": motion_adapter}
    marker = out / MARKER_NAME
    if marker.is_file():
        try:
            if json.loads(marker.read_text(encoding="utf-8")) == wanted:
                return out
        except ValueError:
            pass
    out.mkdir(parents=True, exist_ok=True)
    _write_tokenizer(out / "tokenizer")
    atomic_write_json(out / "scheduler" / "scheduler_config.json", SD15_SCHEDULER_CONFIG)
    atomic_write_json(out / "model_index.json", _model_index())
    jobs: list[tuple[str, str, int]] = [("unet", "unet", seed), ("vae", "vae", seed + 1),
                                        ("text_encoder", "text_encoder", seed + 2)]
    jobs += [("controlnet", f"controlnet/{kind}", seed + 10 + i) for i, kind in enumerate(kinds)]
    if motion_adapter:
        jobs.append(("motion_adapter", "motion_adapter", seed + 3))
    for role, folder, component_seed in jobs:
        start = time.perf_counter()
        module = build_component(role, seed=component_seed)
        module.save_pretrained(out / folder, safe_serialization=True)
        del module
        gc.collect()
        if on_component is not None:
            on_component(folder, time.perf_counter() - start)
    atomic_write_json(marker, wanted)
    return out


def fullsize_modelset(folder: str | os.PathLike, control_kinds: Iterable[str] | None = None) -> Any:
    """A ModelSet of the local folders written by ``write_fullsize_bundle`` (every ControlNet found there unless
    ``control_kinds`` names some), with weightless default controls so runs need no annotator checkpoints."""
    from .modelset import ComponentRef, ModelSet

    root = Path(folder).expanduser()
    found = sorted(p.name for p in (root / "controlnet").iterdir() if (p / "config.json").is_file()) \
        if (root / "controlnet").is_dir() else []
    kinds = tuple(control_kinds) if control_kinds is not None else tuple(found)
    units = tuple(u for u in FULLSIZE_CONTROLS if u.kind in kinds)
    return ModelSet(
        name="fullsize-random",
        base=ComponentRef("base", "folder", str(root)),
        controlnets={k: ComponentRef(f"controlnet:{k}", "folder", str(root / "controlnet" / k)) for k in kinds},
        motion_adapter=(ComponentRef("motion_adapter", "folder", str(root / "motion_adapter"))
                        if (root / "motion_adapter" / "config.json").is_file() else None),
        scheduler="dpmpp-2m-karras",
        default_controls=units,
        random_weights=True,
    )


def _write_tokenizer(folder: Path) -> None:
    from .modelset import tiny_modelset

    tiny_tokenizer = Path(tiny_modelset().base.location) / "tokenizer"
    folder.mkdir(parents=True, exist_ok=True)
    for file in tiny_tokenizer.iterdir():
        if file.is_file():
            shutil.copyfile(file, folder / file.name)
    config_file = folder / "tokenizer_config.json"
    config = json.loads(config_file.read_text(encoding="utf-8"))
    config["model_max_length"] = SD15_TEXT_ENCODER_CONFIG["max_position_embeddings"]
    atomic_write_json(config_file, config)


def _model_index() -> dict[str, Any]:
    import diffusers

    return {
        "_class_name": "StableDiffusionPipeline",
        "_diffusers_version": diffusers.__version__,
        "feature_extractor": [None, None],
        "requires_safety_checker": False,
        "safety_checker": [None, None],
        "scheduler": ["diffusers", "PNDMScheduler"],
        "text_encoder": ["transformers", "CLIPTextModel"],
        "tokenizer": ["transformers", "CLIPTokenizer"],
        "unet": ["diffusers", "UNet2DConditionModel"],
        "vae": ["diffusers", "AutoencoderKL"],
    }
