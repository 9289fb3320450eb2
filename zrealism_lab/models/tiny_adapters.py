"""Tiny adapter fixtures in the real file formats, built by the package next to the tiny bundle: a kohya/A1111 LoRA
(UNet and text encoder), a diffusers/peft LoRA folder, an A1111 textual-inversion embedding and an IP-Adapter
(``h94/IP-Adapter`` layout: ``models/ip-adapter_sd15.safetensors`` and ``models/image_encoder/``). Tests and the
offline demo load them through the same code as users' files, so their key layouts are the real ones.
"""
from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from ..files import atomic_write_json, sha256_file

TINY_ADAPTERS_VERSION = 2  # bump when a fixture's layout or content changes
MANIFEST = "zrealism_adapters.json"
KOHYA_LORA = "tiny-detail"  # loras/tiny-detail.safetensors, kohya key names, UNet + text encoder
DIFFUSERS_LORA = "tiny-style"  # loras/tiny-style/pytorch_lora_weights.safetensors, peft key names, UNet only
FAST_LORA = "tiny-lcm"  # loras/tiny-lcm/pytorch_lora_weights.safetensors: the few-step LoRA of the tiny preset
EMBEDDING = "tiny-neg"  # embeddings/tiny-neg.safetensors, A1111 layout (emb_params), two vectors
IP_ADAPTER_WEIGHTS = "ip-adapter_sd15.safetensors"
LORA_RANK = 4
UNET_TARGETS = ("to_q", "to_k", "to_v", "to_out.0")  # the attention projections kohya's SD1.5 LoRAs train
TEXT_TARGETS = ("q_proj", "k_proj", "v_proj", "out_proj")
IMAGE_ENCODER_CONFIG: dict[str, Any] = {  # a CLIP ViT in miniature (the real one is ViT-H/14 at 224 px)
    "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
    "image_size": 32, "patch_size": 8, "projection_dim": 32, "num_channels": 3,
}


def build_tiny_adapters(bundle: str | os.PathLike, out_dir: str | os.PathLike, *, seed: int = 0) -> Path:
    """Build the fixtures for the tiny bundle at ``bundle`` (their shapes follow its UNet and text encoder) once;
    a complete folder is returned untouched."""
    out = Path(out_dir)
    if (out / MANIFEST).is_file():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.building-", dir=out.parent))
    try:
        _build_into(staging, Path(bundle), seed)
        try:
            os.replace(staging, out)  # atomic: a reader sees no folder or a complete one
        except OSError:
            if not (out / MANIFEST).is_file():  # a folder there that is not ours: leave it, say so
                raise
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    out.chmod(0o755)
    return out


def _build_into(root: Path, bundle: Path, seed: int) -> None:
    import torch
    from diffusers import UNet2DConditionModel
    from safetensors.torch import save_file
    from transformers import CLIPTextModel

    unet = UNet2DConditionModel.from_pretrained(bundle / "unet")
    text_encoder = CLIPTextModel.from_pretrained(bundle / "text_encoder")
    generator = torch.Generator().manual_seed(seed + 1)

    detail = lora_pairs(unet, UNET_TARGETS, generator) | text_encoder_pairs(text_encoder, TEXT_TARGETS, generator)
    _write(root / "loras" / f"{KOHYA_LORA}.safetensors", kohya_from_pairs(detail), save_file,
           {"ss_network_module": "networks.lora", "ss_network_dim": str(LORA_RANK), "ss_base_model_version": "sd_v1"})
    style = lora_pairs(unet, UNET_TARGETS, generator)
    _write(root / "loras" / DIFFUSERS_LORA / "pytorch_lora_weights.safetensors", peft_from_pairs(style), save_file)
    # In LCM-LoRA's layout (a diffusers folder, UNet only); random, so it shows the plumbing of the fast mode
    fast = lora_pairs(unet, UNET_TARGETS, generator)
    _write(root / "loras" / FAST_LORA / "pytorch_lora_weights.safetensors", peft_from_pairs(fast), save_file)

    vectors = torch.randn(2, text_encoder.config.hidden_size, generator=generator) * 0.5
    _write(root / "embeddings" / f"{EMBEDDING}.safetensors", {"emb_params": vectors}, save_file)
    _build_ip_adapter(root / "ip_adapter" / "models", unet, generator, save_file)

    files = sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())
    atomic_write_json(root / MANIFEST, {"version": TINY_ADAPTERS_VERSION, "seed": seed,
                                        "files": {rel: sha256_file(root / rel) for rel in files}})


def _write(path: Path, tensors: dict[str, Any], save_file: Any, metadata: dict[str, str] | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(path), metadata=metadata)


def lora_pairs(unet: Any, targets: tuple[str, ...], generator: Any, rank: int = LORA_RANK
               ) -> dict[str, tuple[Any, Any]]:
    """'unet.<module>' -> (down, up) random low-rank matrices for every Linear whose name ends with a target."""
    return {f"unet.{k}": v for k, v in _pairs(unet, targets, generator, rank).items()}


def text_encoder_pairs(text_encoder: Any, targets: tuple[str, ...], generator: Any, rank: int = LORA_RANK
                       ) -> dict[str, tuple[Any, Any]]:
    return {f"text_encoder.{k}": v for k, v in _pairs(text_encoder, targets, generator, rank).items()}


def _pairs(model: Any, targets: tuple[str, ...], generator: Any, rank: int = LORA_RANK
           ) -> dict[str, tuple[Any, Any]]:
    import torch

    pairs = {}
    for name, module in model.named_modules():
        if isinstance(module, torch.nn.Linear) and name.endswith(targets):
            down = torch.randn(rank, module.in_features, generator=generator) / module.in_features ** 0.5
            up = torch.randn(module.out_features, rank, generator=generator) * 0.5
            pairs[name] = (down, up)
    return pairs


def kohya_from_pairs(pairs: dict[str, tuple[Any, Any]], rank: int = LORA_RANK) -> dict[str, Any]:
    """kohya-ss/A1111 key names: lora_unet_<module with _>.lora_down/.lora_up/.alpha; text encoder lora_te_."""
    import torch

    out = {}
    for name, (down, up) in pairs.items():
        part, _, module = name.partition(".")
        if part == "unet":
            key = "lora_unet_" + module.replace(".", "_")
        else:  # kohya names the text encoder's modules as transformers' CLIPTextModel long did: text_model.<...>
            key = "lora_te_" + ("" if module.startswith("text_model.") else "text_model_") + module.replace(".", "_")
        out[f"{key}.lora_down.weight"], out[f"{key}.lora_up.weight"] = down, up
        out[f"{key}.alpha"] = torch.tensor(float(rank))  # alpha = rank: scale 1, as peft's default
    return out


def peft_from_pairs(pairs: dict[str, tuple[Any, Any]]) -> dict[str, Any]:
    """diffusers/peft key names: <component>.<module>.lora_A/.lora_B.weight (what save_lora_weights writes)."""
    out = {}
    for name, (down, up) in pairs.items():
        out[f"{name}.lora_A.weight"], out[f"{name}.lora_B.weight"] = down, up
    return out


def _build_ip_adapter(folder: Path, unet: Any, generator: Any, save_file: Any) -> None:
    """``image_proj`` (a linear map to 4 tokens + LayerNorm) and one to_k_ip/to_v_ip pair per cross-attention layer,
    keyed 1, 3, 5 ... in attention-processor order, as the SD1.5 IP-Adapter files are."""
    import torch
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(generator.initial_seed()))
        encoder = CLIPVisionModelWithProjection(CLIPVisionConfig(**IMAGE_ENCODER_CONFIG)).eval()
    encoder.save_pretrained(folder / "image_encoder", safe_serialization=True)
    cross = unet.config.cross_attention_dim
    embed = IMAGE_ENCODER_CONFIG["projection_dim"]
    tensors = {"image_proj.proj.weight": torch.randn(cross * 4, embed, generator=generator) / embed ** 0.5,
               "image_proj.proj.bias": torch.zeros(cross * 4),
               "image_proj.norm.weight": torch.ones(cross), "image_proj.norm.bias": torch.zeros(cross)}
    key_id = 1
    for name in unet.attn_processors:
        if not name.endswith("attn2.processor"):
            continue
        attn = unet.get_submodule(name.removesuffix(".processor"))
        hidden = attn.to_k.out_features
        for proj in ("to_k_ip", "to_v_ip"):
            tensors[f"ip_adapter.{key_id}.{proj}.weight"] = torch.randn(hidden, cross, generator=generator) * 0.5
        key_id += 2
    _write(folder / IP_ADAPTER_WEIGHTS, tensors, save_file)
