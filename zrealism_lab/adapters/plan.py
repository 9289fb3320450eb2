"""A run's adapters resolved before any model loads: each LoRA, embedding and IP-Adapter found on disk, read for
format and base model, hashed, and recorded. ``resolve_adapters`` raises a SettingsError for a missing file, an
unknown name, a file for another base model or a pickle file without the opt-in."""
from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..errors import SettingsError
from ..files import sha256_file
from ..models.modelset import ComponentRef, ModelSet
from .files import (EMBEDDING_DIRS_ENV, LORA_DIRS_ENV, LORA_SUFFIXES, check_pickle_file, find_adapter_file,
                    safetensors_addnet_hash, search_dirs, short_hash)
from .inspect import inspect_embedding, inspect_ip_adapter, inspect_lora
from .tags import split_lora_tags

# h94/IP-Adapter's SD1.5 files (models/<name>.safetensors), by the names people use for them.
IP_ADAPTERS = ("ip-adapter_sd15", "ip-adapter-plus_sd15", "ip-adapter-plus-face_sd15", "ip-adapter-full-face_sd15")
IP_ADAPTER_ALIASES = {"sd15": "ip-adapter_sd15", "plus": "ip-adapter-plus_sd15", "plus-face": "ip-adapter-plus-face_sd15",
                      "full-face": "ip-adapter-full-face_sd15"}
_TOKEN = re.compile(r"^[a-z0-9][a-z0-9_.-]*$")


@dataclass(frozen=True)
class LoraChoice:
    name: str
    weight: float
    path: str
    sha256: str
    hash: str  # A1111's short hash (tensor bytes of a .safetensors, else the whole file)
    format: str
    parts: tuple[str, ...]
    origin: str  # "prompt" (a <lora:...> tag) or "settings"

    @property
    def adapter_name(self) -> str:
        """The peft adapter name: the file's identity, so a re-weighted LoRA is the same loaded adapter."""
        return "lora_" + re.sub(r"\W", "_", self.name)[:40] + "_" + self.sha256[:10]


@dataclass(frozen=True)
class EmbeddingChoice:
    token: str
    path: str
    sha256: str
    hash: str
    format: str
    vectors: int


@dataclass(frozen=True)
class IPAdapterChoice:
    name: str
    path: str
    sha256: str
    variant: str  # "ip-adapter", "plus" or "full-face"
    image_encoder: ComponentRef
    scale: float
    start: float
    end: float
    image: str | None  # a reference image path; None: the run's prepared source


@dataclass(frozen=True)
class AdapterPlan:
    prompt: str  # the prompt without its <lora:...> tags: what the text encoder sees
    loras: tuple[LoraChoice, ...] = ()
    embeddings: tuple[EmbeddingChoice, ...] = ()
    ip_adapter: IPAdapterChoice | None = None
    fuse: bool = False
    vectors: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)  # token -> [n, width] tensor

    @property
    def empty(self) -> bool:
        return not self.loras and not self.embeddings and self.ip_adapter is None

    def to_record(self) -> dict[str, Any]:
        ip = None
        if self.ip_adapter is not None:
            ip = {k: v for k, v in asdict(self.ip_adapter).items() if k != "image_encoder"}
            ip["image_encoder"] = self.ip_adapter.image_encoder.describe()
        return {"loras": [asdict(lora) for lora in self.loras], "embeddings": [asdict(e) for e in self.embeddings],
                "ip_adapter": ip, "lora_fuse": self.fuse}


def resolve_adapters(settings: Any, models: ModelSet, *, allow_pickle: bool = False) -> AdapterPlan:
    """Every adapter the settings ask for, found, checked against the base model and hashed."""
    prompt, tagged = split_lora_tags(settings.prompt)
    context_width, text_width = base_widths(models)
    lora_folders = search_dirs(LORA_DIRS_ENV, models.lora_dirs)
    loras = []
    for (name, weight), origin in [*((t, "prompt") for t in tagged), *((t, "settings") for t in settings.loras)]:
        setting = "prompt" if origin == "prompt" else f"loras[{name}]"
        path = find_adapter_file(name, setting, lora_folders, LORA_SUFFIXES, "a LoRA")
        check_pickle_file(path, setting, allow_pickle)
        info = inspect_lora(path, setting, context_width, allow_pickle)
        full = sha256_file(path)
        hashed = safetensors_addnet_hash(path) if path.suffix == ".safetensors" else full
        loras.append(LoraChoice(name, float(weight), str(path), full, short_hash(hashed), info.format, info.parts,
                                origin))
    embeddings, vectors = [], {}
    folders = search_dirs(EMBEDDING_DIRS_ENV, models.embedding_dirs)
    for value in settings.embeddings:
        setting = f"embeddings[{value}]"
        path = find_adapter_file(value, setting, folders, LORA_SUFFIXES, "a textual-inversion embedding")
        check_pickle_file(path, setting, allow_pickle)
        token = _token(path, setting)
        if token in vectors:
            raise SettingsError("embeddings", value, "embeddings with different file names",
                                f"Two files would both be the token '{token}' (the file name is the token).")
        info, tensor = inspect_embedding(path, setting, text_width, allow_pickle)
        full = sha256_file(path)
        embeddings.append(EmbeddingChoice(token, str(path), full, short_hash(full), info.format, info.vectors))
        vectors[token] = tensor
    ip = _resolve_ip_adapter(settings, models, context_width) if settings.ip_adapter else None
    return AdapterPlan(prompt, tuple(loras), tuple(embeddings), ip, bool(settings.lora_fuse), vectors)


def _token(path: Path, setting: str) -> str:
    """A1111's convention: the file name is the token people type. CLIP lower-cases prompts, so the token is too."""
    stem = (path.parent.name if path.name == "pytorch_lora_weights.safetensors" else path.stem).lower()
    if not _TOKEN.match(stem):
        raise SettingsError(setting, path.name, "a file name of letters, digits, '_', '-' or '.' (it becomes the "
                                                "token you type in the prompt)", "Rename the file.")
    return stem


def _resolve_ip_adapter(settings: Any, models: ModelSet, context_width: int | None) -> IPAdapterChoice:
    from ..models.loading import locate

    value = IP_ADAPTER_ALIASES.get(settings.ip_adapter, settings.ip_adapter)
    path = Path(value).expanduser()
    if value in IP_ADAPTERS:
        if models.ip_adapter is None:
            raise SettingsError("ip_adapter", value, "a .safetensors path (this model set names no IP-Adapter "
                                "repository)")
        path = _ip_file(models.ip_adapter, value)
        encoder = models.ip_adapter.with_subfolder("models/image_encoder")
    elif path.suffix == ".safetensors" and path.is_file():
        beside = path.parent / "image_encoder"
        encoder = (ComponentRef("image_encoder", "folder", str(beside)) if beside.is_dir() else
                   models.ip_adapter.with_subfolder("models/image_encoder") if models.ip_adapter else None)
        if encoder is None:
            raise SettingsError("ip_adapter", value, "an IP-Adapter file with an image_encoder/ folder beside it")
    else:
        raise SettingsError("ip_adapter", value, "one of " + ", ".join(IP_ADAPTERS) + " (or "
                            + ", ".join(IP_ADAPTER_ALIASES) + ") or an existing .safetensors file")
    encoder = ComponentRef("image_encoder", encoder.kind, encoder.location, encoder.subfolder)
    status = locate(encoder)
    if not status.present and encoder.kind != "hub":
        raise SettingsError("ip_adapter", value, "an IP-Adapter whose image encoder is on disk",
                            f"No image encoder at {encoder.describe()}.")
    variant = inspect_ip_adapter(path, "ip_adapter", context_width)
    image = settings.ip_adapter_image
    if image is not None:
        from ..source.intake import validate_image_path

        validate_image_path(image)
    return IPAdapterChoice(value, str(path), sha256_file(path), variant, encoder, float(settings.ip_adapter_scale),
                           float(settings.ip_adapter_start), float(settings.ip_adapter_end), image)


def _ip_file(ref: ComponentRef, name: str) -> Path:
    filename = f"models/{name}.safetensors"
    if ref.kind == "folder":
        path = Path(ref.location) / filename
        if not path.is_file():
            raise SettingsError("ip_adapter", name, "an IP-Adapter file on disk", f"{path} does not exist.")
        return path
    from huggingface_hub import hf_hub_download

    from ..models.loading import hub_offline

    try:
        return Path(hf_hub_download(ref.location, filename, local_files_only=hub_offline()))
    except Exception:  # noqa: BLE001 - offline, missing repo or file: the same advice
        raise SettingsError("ip_adapter", name, "an IP-Adapter on disk or on the hub",
                            f"{filename} of {ref.location} is not in the cache"
                            + (" and the hub is offline." if hub_offline() else " and could not be fetched.")) from None


def base_widths(models: ModelSet) -> tuple[int | None, int | None]:
    """(UNet cross-attention width, text-encoder width) read from the base's config files when they are on disk; the
    checks that use them are skipped for a base whose configs are not (a single file, an uncached hub repo)."""
    base = models.base
    if base.kind == "folder":
        return (_config_value(Path(base.location) / "unet" / "config.json", "cross_attention_dim"),
                _config_value(Path(base.location) / "text_encoder" / "config.json", "hidden_size"))
    if base.kind == "hub":
        from ..models.loading import cached_hub_folder

        folder = cached_hub_folder(base.location, base.subfolder)
        if folder is not None:
            return (_config_value(folder / "unet" / "config.json", "cross_attention_dim"),
                    _config_value(folder / "text_encoder" / "config.json", "hidden_size"))
    return None, None


def _config_value(path: Path, key: str) -> int | None:
    try:
        value = json.loads(path.read_text(encoding="utf-8")).get(key)
    except (OSError, ValueError):
        return None
    return value if isinstance(value, int) else None
