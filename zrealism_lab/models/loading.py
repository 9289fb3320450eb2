"""Loading model components from hub ids, local diffusers folders or single .safetensors files.

The same code loads the real weights and the tiny bundle. Safetensors is the default everywhere; pickle checkpoints
(.ckpt/.bin/.pt/.pth) run arbitrary code when loaded, so they are refused unless the caller opts in with allow_pickle.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import DamagedWeightsError, MissingWeightsError, UnsafeCheckpointError, ZRealismError
from .modelset import PICKLE_SUFFIXES, ComponentRef

WEIGHT_SUFFIXES = (".safetensors",) + PICKLE_SUFFIXES


def hub_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


@dataclass(frozen=True)
class ComponentStatus:
    role: str
    ref: ComponentRef
    present: bool
    path: str | None  # where the files are on disk, when present
    size_bytes: int
    detail: str = ""

    def line(self) -> str:
        size = f"{self.size_bytes / 2**20:9.1f} MB" if self.present else "        -   "
        state = "present" if self.present else "MISSING"
        return f"{self.role:26s} {state:8s} {size}  {self.ref.describe()}" + (f"  ({self.detail})" if self.detail else "")


def _folder_size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())  # stat follows the hub cache's symlinks


def cached_hub_folder(repo: str, subfolder: str | None = None) -> Path | None:
    """The local snapshot of a hub repo (and subfolder) if it is in the hub cache, else None. Never uses the network."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        root = Path(snapshot_download(repo, local_files_only=True))
    except (LocalEntryNotFoundError, OSError, ValueError):
        return None
    folder = root / subfolder if subfolder else root
    return folder if folder.exists() else None


# Components that are configuration and vocabulary only.
WEIGHTLESS_ROLES = ("tokenizer", "scheduler", "feature_extractor")


def locate(ref: ComponentRef) -> ComponentStatus:
    """Where a component is on this machine, without loading it or touching the network."""
    if ref.kind == "hub":
        folder = cached_hub_folder(ref.location, ref.subfolder)
        if folder is None:
            return ComponentStatus(ref.role, ref, False, None, 0, "not in the local hub cache")
        return ComponentStatus(ref.role, ref, True, str(folder), _folder_size(folder))
    path = Path(ref.location)
    if not path.exists():
        return ComponentStatus(ref.role, ref, False, None, 0, "no such " + ("file" if ref.kind == "file" else "folder"))
    if ref.kind == "folder" and not any(path.glob("*.json")):
        return ComponentStatus(ref.role, ref, False, None, 0, "folder has no config .json files")
    if ref.kind == "folder" and ref.role not in WEIGHTLESS_ROLES and not any(
            f.suffix.lower() in WEIGHT_SUFFIXES for f in path.iterdir()):
        return ComponentStatus(ref.role, ref, False, None, 0, "folder has a config but no weight files")
    return ComponentStatus(ref.role, ref, True, str(path), _folder_size(path))


def missing_weights_error(statuses: list[ComponentStatus], preset: str | None = None) -> MissingWeightsError:
    """One short message for every missing component: what, where we looked, how to provide it."""
    lines = ["Model weights are missing" + (" (the hub cannot be reached: offline mode)" if hub_offline() else "") + ":"]
    for status in statuses:
        lines.append(f"  - {status.role}: looked for {status.ref.describe()}: {status.detail or 'not found'}")
    lines.append("To provide them: " + (f"run `zrealism models download {preset}` on a machine with internet access, or "
                                        if preset and preset != "tiny" else "")
                 + "point the component at local files (a diffusers folder or a .safetensors file), e.g. "
                   "`--component controlnet:openpose=PATH` on the CLI or ModelSet.with_component(role, PATH) in Python.")
    from .single_file import CLIP_TOKENIZER_REPO

    if any(s.role == "tokenizer" and s.ref.location == CLIP_TOKENIZER_REPO for s in statuses):
        lines.append(f"A single-file checkpoint carries no tokenizer: it uses the CLIP tokenizer of {CLIP_TOKENIZER_REPO} "
                     "(vocab.json, merges.txt, tokenizer_config.json, special_tokens_map.json; about 1.6 MB) from the "
                     "hub cache. Fetch those files once, or give config=FOLDER (CLI: --component-config base=FOLDER), "
                     "a diffusers SD1.5 folder with a tokenizer/ inside.")
    lines.append("Without any weights, `--preset tiny` runs every path offline on random weights.")
    return MissingWeightsError("\n".join(lines))


def check_pickle(ref: ComponentRef, allow_pickle: bool) -> None:
    path = Path(ref.location)
    if ref.kind == "file":
        bad = path.suffix.lower() in PICKLE_SUFFIXES
    elif ref.kind == "folder" and path.is_dir():
        files = [f for f in path.iterdir() if f.suffix.lower() in WEIGHT_SUFFIXES]
        bad = bool(files) and not any(f.suffix == ".safetensors" for f in files)
    else:
        bad = False
    if bad and not allow_pickle:
        raise UnsafeCheckpointError(
            f"{ref.role}: {ref.location} holds only pickle weights ({', '.join(PICKLE_SUFFIXES)}), which can run "
            "arbitrary code when loaded. Convert it to .safetensors, or, if you trust its source, opt in with "
            "allow_pickle=True (CLI: --allow-pickle).")


def load_component(ref: ComponentRef, cls: Any, *, dtype: Any = None, allow_pickle: bool = False) -> Any:
    """Load one diffusers/transformers component class from a reference."""
    check_pickle(ref, allow_pickle)
    try:
        return _load(ref, cls, dtype=dtype, allow_pickle=allow_pickle)
    except ZRealismError:
        raise
    except Exception as exc:  # noqa: BLE001 - safetensors, torch and the loaders raise many types for bad files
        first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        raise DamagedWeightsError(
            f"{ref.role}: the weights at {ref.location} could not be loaded ({type(exc).__name__}: {first}). The "
            "files are incomplete, damaged or of another architecture: download or copy them again.") from None


def _load(ref: ComponentRef, cls: Any, *, dtype: Any, allow_pickle: bool) -> Any:
    kwargs: dict[str, Any] = {}
    is_tokenizer = "Tokenizer" in cls.__name__
    if dtype is not None and not is_tokenizer:
        kwargs["torch_dtype"] = dtype
    if not is_tokenizer and not allow_pickle:
        kwargs["use_safetensors"] = True
    if ref.kind == "file":
        return _load_single_file(ref, cls, dtype=dtype, allow_pickle=allow_pickle)
    if ref.kind == "folder":
        status = locate(ref)
        if not status.present:
            raise missing_weights_error([status])
        return cls.from_pretrained(ref.location, **kwargs)
    return from_hub(cls.from_pretrained, ref, **kwargs)


def from_hub(loader: Any, ref: ComponentRef, **kwargs: Any) -> Any:
    """Call a hub loader (from_pretrained, load_config) on the local cache first, so cached files never need the
    network; then download unless the hub is offline. Failures become the short missing-weights error."""
    if ref.subfolder:
        kwargs["subfolder"] = ref.subfolder
    try:
        return loader(ref.location, local_files_only=True, **kwargs)
    except (OSError, ValueError):
        if hub_offline():
            raise missing_weights_error([locate(ref)]) from None
    try:
        return loader(ref.location, **kwargs)
    except (OSError, ValueError) as exc:
        status = ComponentStatus(ref.role, ref, False, None, 0, f"download failed: {str(exc).splitlines()[0][:200]}")
        raise missing_weights_error([status]) from None


# The classes a single file's parts load into (the rest, e.g. a motion adapter, use diffusers' own loaders).
SINGLE_FILE_PARTS = {"UNet2DConditionModel": "unet", "AutoencoderKL": "vae", "CLIPTextModel": "text_encoder",
                     "ControlNetModel": "controlnet"}


def single_file_config(ref: ComponentRef, part: str) -> dict[str, Any]:
    """A single file's part config: its config= folder or hub id, a config.json beside it, or the shipped SD1.5."""
    import json

    from .single_file import config_source

    source = config_source(ref.role, part, ref.config, Path(ref.location))
    if isinstance(source, Path):
        return json.loads((source / "config.json").read_text(encoding="utf-8"))
    from diffusers import ControlNetModel

    return dict(from_hub(ControlNetModel.load_config, ComponentRef(ref.role, "hub", source, subfolder=part)))


def load_file_part(ref: ComponentRef, part: str, *, dtype: Any = None, allow_pickle: bool = False) -> Any:
    """One part of a single .safetensors file (A1111/LDM or diffusers layout), offline."""
    from .single_file import load_single_file_part

    path = Path(ref.location)
    if not path.is_file():
        raise missing_weights_error([locate(ref)])
    check_pickle(ref, allow_pickle)
    return load_single_file_part(ref.role, part, path, single_file_config(ref, part), dtype=dtype,
                                 allow_pickle=allow_pickle)


def _load_single_file(ref: ComponentRef, cls: Any, *, dtype: Any = None, allow_pickle: bool = False) -> Any:
    """A single .safetensors file: UNets, VAEs, text encoders and ControlNets in either layout load through the
    shipped configs (``single_file``); other classes go through diffusers' own single-file loaders."""
    path = Path(ref.location)
    if not path.is_file():
        raise missing_weights_error([locate(ref)])
    part = SINGLE_FILE_PARTS.get(cls.__name__)
    if part is not None:
        return load_file_part(ref, part, dtype=dtype, allow_pickle=allow_pickle)
    config = ref.config or (str(path.parent) if (path.parent / "config.json").exists() else None)
    if not hasattr(cls, "from_single_file"):
        raise MissingWeightsError(f"{ref.role}: {path} is a single file and {cls.__name__} cannot be loaded from "
                                  "one; give a diffusers folder instead.")
    kwargs: dict[str, Any] = {"torch_dtype": dtype} if dtype is not None else {}
    if config:
        kwargs["config"] = config
    try:
        return cls.from_single_file(str(path), local_files_only=hub_offline() or config is not None, **kwargs)
    except (OSError, ValueError) as exc:
        raise MissingWeightsError(
            f"{ref.role}: could not convert the single-file checkpoint {path}: {str(exc).splitlines()[0][:200]}\n"
            "Give its diffusers config with config=FOLDER (a diffusers folder of the same architecture).") from None


def check_file_component(ref: ComponentRef, allow_pickle: bool = False) -> None:
    """Before anything loads: a single file is safe to open and holds what its role needs (read from its keys)."""
    check_pickle(ref, allow_pickle)
    family = ref.role.split(":", 1)[0]
    if Path(ref.location).suffix.lower() == ".safetensors" and family in ("unet", "vae", "text_encoder", "base",
                                                                           "controlnet"):
        from .single_file import check_file_kind

        check_file_kind(ref.role, ref.location, allow_pickle)
