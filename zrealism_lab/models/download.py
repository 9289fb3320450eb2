"""Fetch a preset's weights from the hub (on a machine with internet access), safetensors and configs only."""
from __future__ import annotations

from .loading import hub_offline
from .modelset import ModelSet, resolve_modelset
from ..errors import MissingWeightsError

# Configs, tokenizers and safetensors weights; never pickle files, never the fp16/ema duplicates we do not load.
ALLOW_PATTERNS = ["*.json", "*.txt", "*.safetensors"]
IGNORE_PATTERNS = ["*.fp16.safetensors", "*.ema*", "*.non_ema*", "*.ckpt", "*.bin", "*.pt", "*.pth"]


def download_modelset(models: ModelSet | str) -> list[str]:
    """Download every hub component of a model set into the hub cache (tqdm progress); returns the local folders."""
    from huggingface_hub import snapshot_download

    modelset = resolve_modelset(models)
    if hub_offline():
        raise MissingWeightsError("HF_HUB_OFFLINE is set: unset it on a machine with internet access to download.")
    folders = []
    seen = set()
    for ref in modelset.components():
        if ref.kind != "hub" or ref.location in seen:
            continue
        seen.add(ref.location)
        print(f"downloading {ref.location} ...")
        folders.append(snapshot_download(ref.location, allow_patterns=ALLOW_PATTERNS, ignore_patterns=IGNORE_PATTERNS))
    if modelset.fast_lora and modelset.fast_lora.count("/") == 1 and modelset.fast_lora not in seen:
        print(f"downloading {modelset.fast_lora} (the few-step LoRA of speed fast) ...")  # a hub id, not a path
        folders.append(snapshot_download(modelset.fast_lora, allow_patterns=["*.safetensors", "*.json"]))
    return folders
