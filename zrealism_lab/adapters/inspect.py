"""What an adapter file is, read from its keys and shapes (the safetensors header only, no tensor loaded): which
format, which parts of the model it changes, and whether it was made for this base model (SD1.5: 768-wide text
features; SDXL: 2048 and two text encoders; SD2: 1024)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import DamagedWeightsError, SettingsError

_SDXL_MARKERS = ("lora_te1_", "lora_te2_", "text_encoder_2.", "add_embedding", "label_emb", "lora_unet_label_emb")
_BASE_BY_WIDTH = {768: "SD1.x", 1024: "SD2.x", 2048: "SDXL", 4096: "a DiT model"}


@dataclass(frozen=True)
class LoraInfo:
    format: str  # "kohya" (A1111/kohya-ss key names) or "diffusers" (peft/diffusers key names)
    parts: tuple[str, ...]  # "unet" and/or "text_encoder"
    tensors: int
    context_width: int | None  # the text-feature width its cross-attention keys take, when it has such keys


@dataclass(frozen=True)
class EmbeddingInfo:
    format: str  # "a1111" (emb_params or string_to_param) or "diffusers" (one token key)
    vectors: int
    width: int


def read_shapes(path: Path, setting: str, allow_pickle: bool = False) -> dict[str, tuple[int, ...]]:
    """Key -> shape of a .safetensors file from its header, or of a pickle file (torch's weights_only loader, which
    refuses code) when the user opted in."""
    if path.suffix.lower() != ".safetensors":
        return {k: tuple(v.shape) for k, v in _flat_tensors(load_pickle_tensors(path, setting)).items()}
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as handle:
            return {key: tuple(handle.get_slice(key).get_shape()) for key in handle.keys()}
    except Exception as exc:  # noqa: BLE001 - any header error means the same: not a readable safetensors file
        raise DamagedWeightsError(f"{setting}: {path.name} is not a readable .safetensors file ({exc}). Download it "
                                  "again; a partial download has the right name but not the right bytes.") from None


def load_pickle_tensors(path: Path, setting: str) -> dict[str, Any]:
    import torch

    try:  # weights_only: tensors, dicts, strings and numbers only (A1111's .pt embeddings hold just these)
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001
        raise DamagedWeightsError(f"{setting}: {path.name} cannot be read as plain tensors ({type(exc).__name__}). "
                                  "Use a .safetensors version of it.") from None


def _flat_tensors(data: Any, prefix: str = "") -> dict[str, Any]:
    import torch

    if isinstance(data, torch.Tensor):
        return {prefix.rstrip("."): data}
    if isinstance(data, dict):
        out: dict[str, Any] = {}
        for key, value in data.items():
            out.update(_flat_tensors(value, f"{prefix}{key}."))
        return out
    return {}


def inspect_lora(path: Path, setting: str, context_width: int | None, allow_pickle: bool = False) -> LoraInfo:
    """Refuses, with what the file is, a file that is not a LoRA or is a LoRA made for another base model."""
    shapes = read_shapes(path, setting, allow_pickle)
    keys = list(shapes)
    if any(key.startswith(_SDXL_MARKERS) or f".{_SDXL_MARKERS[2]}" in key for key in keys):
        raise SettingsError(setting, path.name, "a LoRA made for SD1.5 models",
                            "This file's keys (two text encoders / added embeddings) are an SDXL LoRA's; it cannot "
                            "load into an SD1.5 model. Use an SD1.5 version of it.")
    kohya = [k for k in keys if k.startswith(("lora_unet_", "lora_te_"))]
    lora_keys = [k for k in keys if any(m in k for m in ("lora_A", "lora_B", "lora.down", "lora.up", "lora_down",
                                                         "lora_up", "lora_linear_layer"))]
    if not lora_keys:
        sample = ", ".join(keys[:3]) or "none"
        raise SettingsError(setting, path.name, "a LoRA file (keys with lora_down/lora_up or lora_A/lora_B)",
                            f"Its first keys are {sample}: it looks like a full model or another kind of adapter.")
    fmt = "kohya" if kohya else "diffusers"
    parts = tuple(part for part, markers in (("unet", ("lora_unet_", "unet.")),
                                             ("text_encoder", ("lora_te_", "text_encoder.")))
                  if any(k.startswith(markers) for k in keys))
    width = _cross_attention_width(shapes)
    if width is not None and context_width is not None and width != context_width:
        made_for = _BASE_BY_WIDTH.get(width, f"a model with {width}-wide text features")
        raise SettingsError(setting, path.name, f"a LoRA made for this base model ({context_width}-wide text features)",
                            f"Its cross-attention keys take {width}-wide features: it was made for {made_for}.")
    return LoraInfo(fmt, parts or ("unet",), len(keys), width)


def _cross_attention_width(shapes: dict[str, tuple[int, ...]]) -> int | None:
    """The input width of a cross-attention key/value projection's down matrix: the text features it was trained on."""
    for key, shape in shapes.items():
        if "attn2" in key and ("to_k" in key or "to_v" in key) and any(m in key for m in ("lora_down", "lora.down",
                                                                                           "lora_A")):
            return int(shape[-1]) if len(shape) >= 2 else None
    return None


def inspect_embedding(path: Path, setting: str, width: int | None, allow_pickle: bool = False
                      ) -> tuple[EmbeddingInfo, Any]:
    """The embedding's vectors (a [n, width] tensor) and what it is. SDXL embeddings (clip_l + clip_g) and embeddings
    for another text encoder width are refused."""
    if path.suffix.lower() == ".safetensors":
        from safetensors.torch import load_file

        shapes = read_shapes(path, setting)
        if {"clip_l", "clip_g"} & set(shapes):
            raise SettingsError(setting, path.name, "a textual-inversion embedding for SD1.5",
                                "It holds clip_l and clip_g vectors: an SDXL embedding.")
        data: dict[str, Any] = load_file(str(path))
    else:
        data = load_pickle_tensors(path, setting)
    if "emb_params" in data:
        fmt, vectors = "a1111", data["emb_params"]
    elif isinstance(data.get("string_to_param"), dict) and data["string_to_param"]:
        fmt, vectors = "a1111", next(iter(data["string_to_param"].values()))
    elif len(data) == 1:
        fmt, vectors = "diffusers", next(iter(data.values()))
    else:
        raise SettingsError(setting, path.name, "a textual-inversion embedding (A1111: emb_params or string_to_param; "
                            "diffusers: one token key)", f"It holds keys {sorted(map(str, data))[:4]}.")
    import torch

    if not isinstance(vectors, torch.Tensor) or vectors.ndim not in (1, 2):
        raise SettingsError(setting, path.name, "vectors shaped [n, width]")
    vectors = vectors.reshape(-1, vectors.shape[-1]).float()
    if width is not None and vectors.shape[-1] != width:
        made_for = _BASE_BY_WIDTH.get(int(vectors.shape[-1]), "another model")
        raise SettingsError(setting, path.name, f"an embedding of {width}-wide vectors (this text encoder's)",
                            f"Its vectors are {vectors.shape[-1]} wide: it was made for {made_for}.")
    return EmbeddingInfo(fmt, int(vectors.shape[0]), int(vectors.shape[-1])), vectors


def inspect_ip_adapter(path: Path, setting: str, context_width: int | None) -> str:
    """'ip-adapter' (a linear image projection), 'plus' (a resampler) or 'full-face'; refuses other files."""
    shapes = read_shapes(path, setting)
    proj = [k for k in shapes if k.startswith("image_proj.")]
    layers = [k for k in shapes if k.startswith("ip_adapter.") and k.endswith("to_k_ip.weight")]
    if not proj or not layers:
        raise SettingsError(setting, path.name, "an IP-Adapter file (image_proj.* and ip_adapter.* keys)",
                            "h94/IP-Adapter's models/ip-adapter_sd15.safetensors is one.")
    width = shapes[layers[0]][-1]
    if context_width is not None and width != context_width:
        made_for = _BASE_BY_WIDTH.get(int(width), "another model")
        raise SettingsError(setting, path.name, f"an IP-Adapter for this base model ({context_width}-wide)",
                            f"Its layers take {width}-wide features: it was made for {made_for} (sdxl_models/ holds "
                            "SDXL ones).")
    if "image_proj.latents" in shapes:
        return "plus"
    return "full-face" if "image_proj.proj.3.weight" in shapes else "ip-adapter"
