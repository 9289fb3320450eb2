"""A motion UNet that shares its weights with the static UNet and the motion adapter.

diffusers' ``UNetMotionModel.from_unet2d`` (and so ``from_pipe``) builds a new motion UNet and copies the 2D UNet's
weights and the adapter's motion modules into it: a second copy of every spatial weight (about 3.4 GB in fp32 for
SD1.5) next to the adapter it copied from. Here the motion UNet is built as an empty skeleton (no tensor allocated)
and its spatial submodules are *the static UNet's own modules*, its motion modules *the adapter's own modules*. So a
temporal run adds only the motion modules to memory and switching static <-> temporal reads nothing from disk.

The submodules are put into fresh ``ModuleList`` containers: the module objects (and their parameters) are shared,
but wrapping or replacing an entry of the motion UNet's lists (FreeNoise split inference does) leaves the static
UNet untouched.
"""
from __future__ import annotations

from typing import Any, Iterable

from ..errors import SettingsError

# Top-level submodules of UNetMotionModel taken from the 2D UNet when the 2D UNet has them.
_TOP_LEVEL = ("conv_in", "time_proj", "time_embedding", "encoder_hid_proj", "conv_norm_out", "conv_act", "conv_out")
# Per-block lists taken from the 2D UNet.
_BLOCK_LISTS = ("resnets", "attentions", "downsamplers", "upsamplers")


def build_shared_motion_unet(unet: Any, adapter: Any) -> Any:
    """A ``UNetMotionModel`` whose spatial parameters are ``unet``'s tensors and whose motion modules are
    ``adapter``'s, with the configuration ``UNetMotionModel.from_unet2d`` would give it. Allocates no weights."""
    import torch
    from accelerate import init_empty_weights
    from diffusers import UNetMotionModel

    if adapter.config.get("conv_in_channels"):
        raise SettingsError("motion_adapter", "a PIA adapter (own conv_in)",
                            "a plain AnimateDiff motion adapter (v1-4, v1-5, v1-5-2, v1-5-3)")
    try:
        with init_empty_weights(include_buffers=True):  # every tensor on the meta device: nothing allocated
            model = UNetMotionModel.from_unet2d(unet, adapter, load_weights=False)
    except ValueError as exc:
        raise SettingsError("motion_adapter", type(adapter).__name__,
                            "an adapter whose blocks and layers match the base UNet", str(exc)) from None

    for name in _TOP_LEVEL:
        source = getattr(unet, name, None)
        if source is not None or getattr(model, name, None) is not None:
            _put(model, name, source, f"unet.{name}")

    pairs = [(model.down_blocks, unet.down_blocks, adapter.down_blocks),
             (model.up_blocks, unet.up_blocks, adapter.up_blocks)]
    for motion_blocks, blocks, adapter_blocks in pairs:
        if len(motion_blocks) != len(blocks) or len(adapter_blocks) != len(blocks):
            raise SettingsError("motion_adapter", f"{len(adapter_blocks)} blocks",
                                f"{len(blocks)} blocks like the UNet")
        for i, (motion_block, block, adapter_block) in enumerate(zip(motion_blocks, blocks, adapter_blocks)):
            _share_block(motion_block, block, f"block {i}")
            _put_list(motion_block, "motion_modules", adapter_block.motion_modules, f"adapter block {i} motion_modules")
    _share_block(model.mid_block, unet.mid_block, "mid block")
    if hasattr(model.mid_block, "motion_modules"):
        if adapter.mid_block is None:
            raise SettingsError("motion_adapter", "no mid-block motion modules", "an adapter with a motion mid block")
        _put_list(model.mid_block, "motion_modules", adapter.mid_block.motion_modules, "adapter mid motion_modules")

    left = [n for n, t in [*model.named_parameters(), *model.named_buffers()] if t.device == torch.device("meta")]
    if left:  # a submodule of the skeleton that has no counterpart: sharing would be incomplete
        raise RuntimeError(f"shared motion UNet left {len(left)} tensors unassigned, e.g. {left[:3]}")
    model.eval()
    model.requires_grad_(False)
    return model


def reshare_top_level(model: Any, unet: Any) -> None:
    """Point the motion UNet's top-level modules at the 2D UNet's again, after something replaced one there (peft
    wraps conv_in for a LoRA that trains it; an IP-Adapter sets or removes encoder_hid_proj), and follow the 2D UNet's
    encoder_hid_dim_type, which tells the forward pass to project image embeddings."""
    for name in _TOP_LEVEL:
        if hasattr(unet, name) and getattr(model, name, None) is not getattr(unet, name):
            setattr(model, name, getattr(unet, name))
    hid_type = unet.config.get("encoder_hid_dim_type")
    if model.config.get("encoder_hid_dim_type") != hid_type:
        model.register_to_config(encoder_hid_dim_type=hid_type)


def _put(parent: Any, name: str, module: Any, label: str) -> None:
    skeleton = getattr(parent, name, None)
    _check_shapes(skeleton, module, label)
    setattr(parent, name, module)


def _put_list(parent: Any, name: str, modules: Iterable[Any], label: str) -> None:
    from torch import nn

    modules = list(modules)
    skeleton = getattr(parent, name, None)
    if skeleton is None or len(skeleton) != len(modules):
        expected = 0 if skeleton is None else len(skeleton)
        raise SettingsError("motion_adapter", label, f"{expected} modules where the motion UNet expects them")
    for i, (empty, real) in enumerate(zip(skeleton, modules)):
        _check_shapes(empty, real, f"{label}[{i}]")
    setattr(parent, name, nn.ModuleList(modules))  # a fresh container holding the same module objects


def _share_block(motion_block: Any, block: Any, label: str) -> None:
    for name in _BLOCK_LISTS:
        source = getattr(block, name, None)
        if source is None:
            if getattr(motion_block, name, None) is not None:
                raise SettingsError("motion_adapter", f"{label}.{name}", "the same block layout as the UNet")
            continue
        _put_list(motion_block, name, source, f"{label}.{name}")


def _check_shapes(skeleton: Any, module: Any, label: str) -> None:
    """Every tensor of the real module must have the shape the skeleton expects (a wrong adapter fails here)."""
    if skeleton is None or module is None:
        if skeleton is not module:
            raise SettingsError("motion_adapter", label, "a module where the motion UNet expects one")
        return
    expected = {k: tuple(v.shape) for k, v in skeleton.state_dict().items()}
    actual = {_base_key(k): tuple(v.shape) for k, v in module.state_dict().items() if not _adapter_key(k)}
    if expected != actual:
        diff = sorted(set(expected.items()) ^ set(actual.items()))[:2]
        raise SettingsError("motion_adapter", label, "weights shaped like the base model's architecture",
                            f"First differences: {diff}")


def _adapter_key(key: str) -> bool:
    """A LoRA's own tensors in a peft-wrapped module (the base weights are compared, not the adapters')."""
    return ".lora_" in key or key.startswith("lora_") or ".lora_magnitude_vector" in key


def _base_key(key: str) -> str:
    return key.replace(".base_layer.", ".").removeprefix("base_layer.")


def shared_storage(a: Any, b: Any) -> dict[str, int]:
    """How many parameters of module ``a`` have the very same storage as one of module ``b`` (data_ptr)."""
    pointers = {p.data_ptr() for p in b.parameters()}
    params = list(a.parameters())
    shared = sum(1 for p in params if p.data_ptr() in pointers)
    return {"parameters": len(params), "shared": shared}
