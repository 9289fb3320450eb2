"""What adapters a model set can use here: the LoRAs and embeddings its folders (and the environment's) hold, and
whether its IP-Adapter files are on disk. Read by `zrealism models check` and the lab's Controls tab."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..models.modelset import ModelSet
from .files import EMBEDDING_DIRS_ENV, LORA_DIRS_ENV, LORA_SUFFIXES, list_named_files, search_dirs


@dataclass(frozen=True)
class AdapterEntry:
    kind: str  # "lora", "embedding" or "ip_adapter"
    name: str
    path: str | None
    size_bytes: int
    present: bool = True

    def line(self) -> str:
        size = f"{self.size_bytes / 2**20:9.1f} MB" if self.present else "        -   "
        state = "present" if self.present else "MISSING"
        return f"{self.kind + ' ' + self.name:26s} {state:8s} {size}  {self.path or ''}"


def list_loras(models: ModelSet) -> dict[str, Path]:
    return list_named_files(search_dirs(LORA_DIRS_ENV, models.lora_dirs), LORA_SUFFIXES)


def list_embeddings(models: ModelSet) -> dict[str, Path]:
    return list_named_files(search_dirs(EMBEDDING_DIRS_ENV, models.embedding_dirs), LORA_SUFFIXES)


def adapter_inventory(models: ModelSet) -> list[AdapterEntry]:
    """Every LoRA and embedding found by name, then the IP-Adapter variants of the model set's repository."""
    from ..models.loading import locate
    from .plan import IP_ADAPTERS

    entries = [AdapterEntry("lora", name, str(path), path.stat().st_size) for name, path in list_loras(models).items()]
    entries += [AdapterEntry("embedding", name, str(path), path.stat().st_size)
                for name, path in list_embeddings(models).items()]
    if models.ip_adapter is not None:
        ref = models.ip_adapter
        encoder = locate(ref.with_subfolder("models/image_encoder"))
        entries.append(AdapterEntry("ip_adapter", "image_encoder", encoder.path or ref.describe(), encoder.size_bytes,
                                    encoder.present))
        for name in IP_ADAPTERS:
            if ref.kind == "folder":  # a local repository lists the variants it holds
                path = Path(ref.location) / "models" / f"{name}.safetensors"
                if path.is_file():
                    entries.append(AdapterEntry("ip_adapter", name, str(path), path.stat().st_size))
                continue
            cached = _hub_file(ref.location, f"models/{name}.safetensors")
            entries.append(AdapterEntry("ip_adapter", name, str(cached) if cached else f"{ref.location} (hub)",
                                        cached.stat().st_size if cached else 0, cached is not None))
    return entries


def _hub_file(repo: str, filename: str) -> Path | None:
    from huggingface_hub import try_to_load_from_cache

    found = try_to_load_from_cache(repo, filename)
    return Path(found) if isinstance(found, str) else None
