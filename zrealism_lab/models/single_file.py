"""Single-file components as A1111 and ComfyUI users have them: a whole base checkpoint (Civitai style), a VAE or a
ControlNet in one ``.safetensors`` file, in the original (LDM) layout or in diffusers' own.

What a file holds is read from its key names (no tensor is loaded for that), so a VAE given where a ControlNet
belongs gets a clear error before any model loads. The architecture comes from configs the package ships for SD1.5
(``models/configs/sd15``), so no hub call is needed; ``config=`` points at another (a diffusers folder, or a hub id).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable, Mapping

from ..errors import DamagedWeightsError, SettingsError

SD15_CONFIGS = Path(__file__).parent / "configs" / "sd15"
# Where a real checkpoint's tokenizer comes from when its config names none: the CLIP tokenizer SD1.5 was trained
# with (vocab.json and merges.txt, about 1.6 MB, which the package does not ship).
CLIP_TOKENIZER_REPO = "openai/clip-vit-large-patch14"

# Key prefixes of the original (LDM / A1111) layout, per part, and one key that marks each diffusers-layout part.
LDM_PREFIXES = {"unet": "model.diffusion_model.", "vae": "first_stage_model.",
                "text_encoder": "cond_stage_model.transformer.", "controlnet": "control_model."}
DIFFUSERS_MARKERS = {"unet": "time_embedding.linear_1.weight", "vae": "post_quant_conv.weight",
                     "text_encoder": "text_model.embeddings.token_embedding.weight",
                     "controlnet": "controlnet_cond_embedding.conv_in.weight"}
# What each role may be given: the parts the file must hold.
ROLE_PARTS = {"base": ("unet", "text_encoder"), "vae": ("vae",), "controlnet": ("controlnet",)}
PART_WORDS = {"unet": "a UNet", "vae": "a VAE", "text_encoder": "a text encoder", "controlnet": "a ControlNet"}


def read_keys(path: str | Path, allow_pickle: bool = False) -> list[str]:
    """The tensor names of a weight file, without loading a tensor (safetensors) or by loading it (pickle)."""
    path = Path(path)
    if path.suffix.lower() == ".safetensors":
        from safetensors import safe_open

        try:
            with safe_open(str(path), framework="pt") as handle:
                return list(handle.keys())
        except Exception as exc:  # noqa: BLE001 - safetensors raises its own error types for bad headers
            raise DamagedWeightsError(f"{path} is not a readable .safetensors file ({exc}): download or copy it "
                                      "again.") from None
    return list(_pickle_state(path, allow_pickle))


def _pickle_state(path: Path, allow_pickle: bool) -> Mapping[str, Any]:
    from ..errors import UnsafeCheckpointError

    if not allow_pickle:  # the loader checks first; this keeps the rule where the file is opened too
        raise UnsafeCheckpointError(f"{path} is a pickle checkpoint: convert it to .safetensors, or opt in with "
                                    "allow_pickle=True (CLI: --allow-pickle) if you trust its source.")
    import torch

    state = torch.load(str(path), map_location="cpu", weights_only=True)
    return state.get("state_dict", state) if isinstance(state, dict) else {}


def detect_parts(keys: Iterable[str]) -> dict[str, str]:
    """Which model parts a file holds and in which layout: {'unet': 'ldm', 'vae': 'diffusers', ...}."""
    keys = list(keys)
    keyset = set(keys)
    parts: dict[str, str] = {}
    for part, prefix in LDM_PREFIXES.items():
        if any(k.startswith(prefix) for k in keys):
            parts[part] = "ldm"
    if "input_hint_block.0.weight" in keyset and "zero_convs.0.0.weight" in keyset:
        parts["controlnet"] = "ldm"  # a lone ControlNet saved without its control_model. prefix
    elif not parts and any(k.startswith("encoder.down.") for k in keys) and any(
            k.startswith("decoder.up.") for k in keys):
        parts["vae"] = "ldm"  # an A1111 VAE file (vae-ft-mse-840000-ema-pruned and the like)
    for part, marker in DIFFUSERS_MARKERS.items():
        if marker in keyset and part not in parts:
            parts[part] = "diffusers"
    if parts.get("controlnet") == "diffusers":
        parts.pop("unet", None)  # a diffusers ControlNet carries a UNet's encoder half, not a UNet
    return parts


def describe_keys(keys: Iterable[str]) -> str:
    """What a file holds, in words, for error messages: the parts found, or what the keys look like otherwise."""
    keys = list(keys)
    parts = detect_parts(keys)
    if parts:
        return " + ".join(f"{PART_WORDS[p]} ({layout} layout)" for p, layout in parts.items())
    if any(k.startswith("conditioner.embedders.") for k in keys):
        return "an SDXL checkpoint (this lab runs SD1.5-architecture models)"
    if any(k.startswith("cond_stage_model.model.") for k in keys):
        return "an SD2 checkpoint (OpenCLIP text encoder; this lab runs SD1.5-architecture models)"
    if any("lora_" in k for k in keys[:200]):
        return "a LoRA (it is applied on top of a base checkpoint, not loaded as a component)"
    if any("motion_modules" in k for k in keys[:200]):
        return "a motion module (give it as motion_adapter)"
    return f"no model part this lab knows ({len(keys)} tensors, e.g. {', '.join(keys[:3]) or 'none'})"


def check_file_kind(role: str, path: str | Path, allow_pickle: bool = False) -> dict[str, str]:
    """The parts a single file holds, checked against the role it was given for; a wrong kind is a SettingsError
    naming what the file holds and where it belongs."""
    family = role.split(":", 1)[0]
    wanted = ROLE_PARTS.get("base" if family in ("unet", "text_encoder", "tokenizer") else family)
    keys = read_keys(path, allow_pickle)
    parts = detect_parts(keys)
    if wanted is None or all(p in parts for p in wanted):
        return parts
    if family == "vae" and "vae" in parts:
        return parts
    held = describe_keys(keys)
    if family == "vae" and "unet" in parts:  # the base checkpoint's own VAE was asked for, and it has none
        raise SettingsError(role, str(path), "a base checkpoint with a VAE inside, or a VAE of its own",
                            f"The file holds {held} but no VAE (a 'noVAE' checkpoint): give one with --component "
                            "vae=FILE_OR_HUB_ID (Python: ModelSet.with_component('vae', ...)).")
    base_family = family in ("unet", "text_encoder", "tokenizer", "base")
    where = ("give it as --component base=FILE (Python: ModelSet.with_component('base', FILE))"
             if "unet" in parts and "text_encoder" in parts and not base_family
             else "give it as --component controlnet:KIND=FILE" if "controlnet" in parts
             else "give it as --component vae=FILE" if "vae" in parts and family != "vae"
             else "a UNet alone is no base checkpoint: give a diffusers folder (--preset FOLDER) or a whole "
                  "checkpoint" if "unet" in parts else "")
    allowed = {"base": "a base checkpoint (UNet + text encoder [+ VAE]) in one file",
               "vae": "a VAE file", "controlnet": "a ControlNet file"}[family if family in ROLE_PARTS else "base"]
    raise SettingsError("base" if base_family else role, str(path), allowed,
                        f"The file holds {held}" + (f": {where}." if where else "."))


def config_source(role: str, part: str, config: str | None, path: Path) -> str | Path:
    """Where a part's config comes from: ``config`` (a folder holding config.json, or a pipeline folder with
    ``part``/ inside, or a hub id), else a config.json beside the file, else the shipped SD1.5 config."""
    if config:
        folder = Path(config).expanduser()
        if folder.is_dir():
            if (folder / part / "config.json").is_file() or (folder / part / "scheduler_config.json").is_file():
                return folder / part
            if (folder / "config.json").is_file():
                return folder
            raise SettingsError(f"{role} config", config, f"a folder with {part}/config.json or config.json")
        return config  # a hub id: read through the hub cache
    if (path.parent / "config.json").is_file() and part != "text_encoder":
        return path.parent
    return SD15_CONFIGS / part


def read_part(path: Path, part: str, layout: str, allow_pickle: bool = False) -> dict[str, Any]:
    """The tensors of one part (only those: a 2 GB checkpoint's VAE is read alone)."""
    prefix = LDM_PREFIXES[part] if layout == "ldm" else ""
    if path.suffix.lower() == ".safetensors":
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as handle:
            names = list(handle.keys())
            if prefix and any(n.startswith(prefix) for n in names):
                names = [n for n in names if n.startswith(prefix)]
            return {n: handle.get_tensor(n) for n in names}
    return dict(_pickle_state(path, allow_pickle))


def convert_part(state: dict[str, Any], part: str, layout: str, config: dict[str, Any]) -> dict[str, Any]:
    """A part's tensors under diffusers' key names (diffusers' own converters for the LDM layout)."""
    if layout == "diffusers":
        return state
    from diffusers.loaders import single_file_utils as sfu

    if part == "unet":
        return sfu.convert_ldm_unet_checkpoint(state, config)
    if part == "vae":
        return sfu.convert_ldm_vae_checkpoint(state, config)
    if part == "controlnet":
        return sfu.convert_controlnet_checkpoint(state, config)
    return sfu.convert_ldm_clip_checkpoint(state)


def build_part(part: str, config: dict[str, Any], state: dict[str, Any], *, dtype: Any, role: str,
               path: Path) -> Any:
    """The model built empty from its config and given the file's tensors; a mismatch names what differs."""
    import diffusers
    from accelerate import init_empty_weights

    with init_empty_weights(include_buffers=False):
        if part == "text_encoder":
            from transformers import CLIPTextConfig, CLIPTextModel

            model = CLIPTextModel(CLIPTextConfig(**{k: v for k, v in config.items() if not k.startswith("_")}))
        else:
            cls = {"unet": diffusers.UNet2DConditionModel, "vae": diffusers.AutoencoderKL,
                   "controlnet": diffusers.ControlNetModel}[part]
            model = cls.from_config(config)
    wanted = model.state_dict()
    state = {k: v for k, v in state.items() if k in wanted or not k.endswith("position_ids")}
    missing = sorted(set(wanted) - set(state))
    unexpected = sorted(set(state) - set(wanted))
    shapes = [k for k in wanted if k in state and tuple(state[k].shape) != tuple(wanted[k].shape)]
    if missing or unexpected or shapes:
        detail = "; ".join(f"{label} {len(names)} (e.g. {names[0]})" for label, names in
                           (("missing", missing), ("unexpected", unexpected), ("other shape", shapes)) if names)
        raise DamagedWeightsError(
            f"{role}: the {part} in {path} does not match its config ({detail}). It is of another architecture "
            "than SD1.5, or its config is not the right one: give the config of its architecture with config=FOLDER "
            "(CLI: --component-config ROLE=FOLDER), a diffusers folder of the same model.")
    if dtype is not None:
        state = {k: v.to(dtype) if v.is_floating_point() else v for k, v in state.items()}
    model.load_state_dict(state, strict=True, assign=True)
    return model


def load_single_file_part(role: str, part: str, path: str | Path, part_config: dict[str, Any], *, dtype: Any = None,
                          allow_pickle: bool = False) -> Any:
    """One part (unet, vae, text_encoder, controlnet) of a single file, converted when it is in the LDM layout;
    ``part_config`` is its diffusers config (see ``config_source``)."""
    path = Path(path)
    parts = detect_parts(read_keys(path, allow_pickle))
    if part not in parts:
        check_file_kind(role, path, allow_pickle)  # names what the file holds instead
        raise SettingsError(role, str(path), f"a file holding {PART_WORDS[part]}",
                            f"The file holds {describe_keys(read_keys(path, allow_pickle))}.")
    layout = parts[part]
    state = convert_part(read_part(path, part, layout, allow_pickle), part, layout, part_config)
    return build_part(part, part_config, state, dtype=dtype, role=role, path=path)


def base_config_folder(config: str | None) -> Path:
    """The pipeline folder whose scheduler/ (and tokenizer/) a single-file base checkpoint uses."""
    if config and Path(config).expanduser().is_dir():
        return Path(config).expanduser()
    return SD15_CONFIGS


def base_file_ref(base: Any, role: str) -> Any:
    """The reference a role of a single-file base checkpoint loads from: the file for its weights, the config's
    scheduler folder, and a tokenizer from the config folder or the CLIP tokenizer's hub repo (cache first)."""
    from .modelset import ComponentRef

    if role in ("unet", "vae", "text_encoder"):
        return ComponentRef(role, "file", base.location, config=base.config)
    folder = base_config_folder(base.config)
    if role == "scheduler":
        return ComponentRef(role, "folder", str(folder / "scheduler" if (folder / "scheduler").is_dir()
                                                else SD15_CONFIGS / "scheduler"))
    if role == "tokenizer":
        if (folder / "tokenizer").is_dir():
            return ComponentRef(role, "folder", str(folder / "tokenizer"))
        if base.config and not Path(base.config).expanduser().exists():  # a hub id names the pipeline's tokenizer
            return ComponentRef(role, "hub", base.config, subfolder="tokenizer")
        return ComponentRef(role, "hub", CLIP_TOKENIZER_REPO)
    return ComponentRef(role, "file", base.location, config=base.config)
