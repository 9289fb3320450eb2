"""The tiny bundle as A1111 users keep their models: one-file base checkpoint, VAE and ControlNet in the original
(LDM) key layout, so the single-file loaders are tested on the layout real downloads have.

The mapping is the inverse of diffusers' LDM -> diffusers converters (``diffusers.loaders.single_file_utils``),
written for any block layout (the tiny bundle's UNet has two blocks, SD1.5's four); the tests check that diffusers'
converters take each file back to the bundle's exact tensors.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .single_file import LDM_PREFIXES

_RESNET = (("norm1", "in_layers.0"), ("conv1", "in_layers.2"), ("norm2", "out_layers.0"), ("conv2", "out_layers.3"),
           ("time_emb_proj", "emb_layers.1"), ("conv_shortcut", "skip_connection"))
_VAE_ATTENTION = (("group_norm.", "norm."), ("to_q.", "q."), ("to_k.", "k."), ("to_v.", "v."),
                  ("to_out.0.", "proj_out."))


def _rename(key: str, pairs: list[tuple[str, str]], resnet_names: bool = False) -> str:
    """The LDM name of a diffusers key: its block prefix swapped, and (UNet resnets) its layer names too."""
    for new, old in pairs:
        if key.startswith(new):
            tail = key[len(new):]
            if resnet_names and ".resnets." in new:
                for name, ldm in _RESNET:
                    if tail.startswith(name + "."):
                        tail = ldm + tail[len(name):]
            return old + tail
    return key


def _encoder_prefixes(config: dict[str, Any]) -> list[tuple[str, str]]:
    """(diffusers prefix, LDM prefix) of the UNet encoder half a UNet and a ControlNet share."""
    per = config["layers_per_block"]
    blocks = len(config["block_out_channels"])
    pairs = [("conv_in.", "input_blocks.0.0."), ("time_embedding.linear_1.", "time_embed.0."),
             ("time_embedding.linear_2.", "time_embed.2."), ("mid_block.attentions.0.", "middle_block.1."),
             ("mid_block.resnets.0.", "middle_block.0."), ("mid_block.resnets.1.", "middle_block.2.")]
    for i in range(blocks):
        for j in range(per):
            pairs.append((f"down_blocks.{i}.resnets.{j}.", f"input_blocks.{(per + 1) * i + j + 1}.0."))
            pairs.append((f"down_blocks.{i}.attentions.{j}.", f"input_blocks.{(per + 1) * i + j + 1}.1."))
        pairs.append((f"down_blocks.{i}.downsamplers.0.conv.", f"input_blocks.{(per + 1) * (i + 1)}.0.op."))
    return pairs


def unet_to_ldm(state: dict[str, Any], config: dict[str, Any]) -> dict[str, Any]:
    """A diffusers UNet's tensors under the LDM names (without the model.diffusion_model. prefix)."""
    per = config["layers_per_block"]
    pairs = _encoder_prefixes(config) + [("conv_norm_out.", "out.0."), ("conv_out.", "out.2.")]
    for i, kind in enumerate(config["up_block_types"]):
        attention = "CrossAttn" in kind
        for j in range(per + 1):
            pairs.append((f"up_blocks.{i}.resnets.{j}.", f"output_blocks.{(per + 1) * i + j}.0."))
            pairs.append((f"up_blocks.{i}.attentions.{j}.", f"output_blocks.{(per + 1) * i + j}.1."))
        pairs.append((f"up_blocks.{i}.upsamplers.0.", f"output_blocks.{(per + 1) * i + per}.{2 if attention else 1}."))
    return {_rename(key, pairs, resnet_names=True): value for key, value in state.items()}


def controlnet_to_ldm(state: dict[str, Any], config: dict[str, Any]) -> dict[str, Any]:
    """A diffusers ControlNet's tensors under the LDM names (without the control_model. prefix)."""
    blocks = sum(1 for k in state if k.startswith("controlnet_cond_embedding.blocks.") and k.endswith(".weight"))
    pairs = _encoder_prefixes(config) + [
        ("controlnet_cond_embedding.conv_in.", "input_hint_block.0."),
        ("controlnet_cond_embedding.conv_out.", f"input_hint_block.{2 * (blocks + 1)}."),
        ("controlnet_mid_block.", "middle_block_out.0.")]
    pairs += [(f"controlnet_cond_embedding.blocks.{i}.", f"input_hint_block.{2 * (i + 1)}.") for i in range(blocks)]
    downs = sum(1 for k in state if k.startswith("controlnet_down_blocks.") and k.endswith(".weight"))
    pairs += [(f"controlnet_down_blocks.{i}.", f"zero_convs.{i}.0.") for i in range(downs)]
    return {_rename(key, pairs, resnet_names=True): value for key, value in state.items()}


def vae_to_ldm(state: dict[str, Any], config: dict[str, Any]) -> dict[str, Any]:
    """A diffusers VAE's tensors under the LDM names; attention projections become 1x1 convolutions again."""
    blocks, per = len(config["block_out_channels"]), config["layers_per_block"]
    pairs = [("encoder.conv_norm_out.", "encoder.norm_out."), ("decoder.conv_norm_out.", "decoder.norm_out.")]
    for side in ("encoder", "decoder"):
        pairs += [(f"{side}.mid_block.attentions.0.", f"{side}.mid.attn_1."),
                  (f"{side}.mid_block.resnets.0.", f"{side}.mid.block_1."),
                  (f"{side}.mid_block.resnets.1.", f"{side}.mid.block_2.")]
    for i in range(blocks):
        pairs += [(f"encoder.down_blocks.{i}.resnets.{j}.", f"encoder.down.{i}.block.{j}.") for j in range(per)]
        pairs.append((f"encoder.down_blocks.{i}.downsamplers.0.", f"encoder.down.{i}.downsample."))
        up = blocks - 1 - i
        pairs += [(f"decoder.up_blocks.{i}.resnets.{j}.", f"decoder.up.{up}.block.{j}.") for j in range(per + 1)]
        pairs.append((f"decoder.up_blocks.{i}.upsamplers.0.", f"decoder.up.{up}.upsample."))
    out: dict[str, Any] = {}
    for key, value in state.items():
        new = _rename(key, pairs).replace("conv_shortcut", "nin_shortcut")
        if ".mid.attn_1." in new:
            for a, b in _VAE_ATTENTION:
                new = new.replace(f".mid.attn_1.{a}", f".mid.attn_1.{b}")
            if new.endswith(("q.weight", "k.weight", "v.weight", "proj_out.weight")) and value.ndim == 2:
                value = value[:, :, None, None]
        out[new] = value
    return out


def _diffusers_state(folder: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    from safetensors.torch import load_file

    weights = sorted(folder.glob("*.safetensors"))[0]
    return load_file(str(weights)), json.loads((folder / "config.json").read_text(encoding="utf-8"))


def _save(tensors: dict[str, Any], path: str | Path) -> Path:
    from safetensors.torch import save_file

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(path))
    return path


def write_tiny_checkpoint(bundle: str | Path, path: str | Path, *, with_vae: bool = True) -> Path:
    """The bundle's UNet, VAE and text encoder as one A1111-style checkpoint (model.diffusion_model.*,
    first_stage_model.*, cond_stage_model.transformer.*). ``with_vae=False``: a 'noVAE' checkpoint."""
    bundle = Path(bundle)
    unet, unet_config = _diffusers_state(bundle / "unet")
    tensors = {LDM_PREFIXES["unet"] + k: v for k, v in unet_to_ldm(unet, unet_config).items()}
    if with_vae:
        vae, vae_config = _diffusers_state(bundle / "vae")
        tensors.update({LDM_PREFIXES["vae"] + k: v for k, v in vae_to_ldm(vae, vae_config).items()})
    text, _ = _diffusers_state(bundle / "text_encoder")
    tensors.update({LDM_PREFIXES["text_encoder"] + k: v for k, v in text.items()})
    return _save(tensors, path)


def write_tiny_vae(bundle: str | Path, path: str | Path) -> Path:
    """The bundle's VAE as an A1111 VAE file (encoder.down.*, decoder.up.*, no prefix)."""
    vae, config = _diffusers_state(Path(bundle) / "vae")
    return _save(vae_to_ldm(vae, config), path)


def write_tiny_controlnet(bundle: str | Path, kind: str, path: str | Path) -> Path:
    """One of the bundle's ControlNets as an original-layout file (control_model.input_blocks.*, zero_convs.*)."""
    state, config = _diffusers_state(Path(bundle) / "controlnet" / kind)
    return _save({LDM_PREFIXES["controlnet"] + k: v for k, v in controlnet_to_ldm(state, config).items()}, path)
