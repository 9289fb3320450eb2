"""A tiny TAESD (diffusers ``AutoencoderTiny``) built by the package next to the tiny bundle, with seeded random
weights, in the layout of ``madebyollin/taesd`` (``config.json`` + ``diffusion_pytorch_model.safetensors``), so live
previews and the fast clip decode run offline through the same loading code as the real tiny autoencoder.

Like TAESD it works on the UNet's latents as they are (scaling factor 1) and upsamples 8x: an 8x8 latent gives a
64 px preview. Its pictures, like the tiny bundle's, show the plumbing, not realism.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from ..files import atomic_write_json

TINY_TAESD_VERSION = 2  # bump when the config or the weights' recipe changes
MANIFEST = "zrealism_taesd.json"
TINY_TAESD_CONFIG: dict[str, Any] = {  # madebyollin/taesd's layout (4 blocks, 8x), a few channels wide
    "in_channels": 3,
    "out_channels": 3,
    "encoder_block_out_channels": (8, 8, 8, 8),
    "decoder_block_out_channels": (8, 8, 8, 8),
    "num_encoder_blocks": (1, 1, 1, 1),
    "num_decoder_blocks": (1, 1, 1, 1),
    "latent_channels": 4,
    "scaling_factor": 1.0,
}


def build_tiny_taesd(out_dir: str | os.PathLike, *, seed: int = 0) -> Path:
    """Build the tiny autoencoder into ``out_dir`` once (a complete folder is returned untouched). Built in a hidden
    sibling folder and renamed into place, so a reader sees no folder or a complete one."""
    out = Path(out_dir)
    if is_complete_taesd(out):
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.building-", dir=out.parent))
    try:
        _build_into(staging, seed)
        try:
            os.replace(staging, out)
        except OSError:
            if not is_complete_taesd(out):  # a folder there that is not ours: leave it, say so
                raise
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    out.chmod(0o755)
    return out


def is_complete_taesd(path: str | os.PathLike) -> bool:
    root = Path(path)
    return all((root / name).is_file() for name in (MANIFEST, "config.json", "diffusion_pytorch_model.safetensors"))


def _build_into(root: Path, seed: int) -> None:
    import torch
    from diffusers import AutoencoderTiny

    with torch.random.fork_rng(devices=[]):  # seeded construction without disturbing the caller's random state
        torch.manual_seed(seed + 7)
        model = AutoencoderTiny(**TINY_TAESD_CONFIG)
    model.save_pretrained(root, safe_serialization=True)
    # diffusers saves a derived block_out_channels that its own loader then warns about on every load: drop it
    config = json.loads((root / "config.json").read_text(encoding="utf-8"))
    config.pop("block_out_channels", None)
    atomic_write_json(root / "config.json", config)
    atomic_write_json(root / MANIFEST, {"format": "zrealism-tiny-taesd", "version": TINY_TAESD_VERSION, "seed": seed})
