"""Finding adapter files (LoRAs, textual-inversion embeddings) by name, path or hub id, and hashing them the way
A1111 does, so infotext hashes match what Civitai and A1111 show. Nothing here loads a tensor."""
from __future__ import annotations

import hashlib
import os
import re
import struct
from pathlib import Path
from typing import Iterable

from ..errors import SettingsError
from ..models.modelset import PICKLE_SUFFIXES

LORA_DIRS_ENV = "ZREALISM_LORA_DIRS"
EMBEDDING_DIRS_ENV = "ZREALISM_EMBEDDING_DIRS"
LORA_SUFFIXES = (".safetensors",) + PICKLE_SUFFIXES
DIFFUSERS_LORA_FILE = "pytorch_lora_weights.safetensors"  # what save_lora_weights writes into a LoRA folder
MAX_SEARCH_DEPTH = 4  # A1111's Lora folders hold a few levels of subfolders; deeper trees are not walked
_HUB_ID = re.compile(r"^[\w.-]+/[\w.-]+(/[\w./-]+\.safetensors)?$")


def search_dirs(env: str, extra: Iterable[str | os.PathLike] = ()) -> list[Path]:
    """The folders named by an environment variable (os.pathsep-separated), then ``extra``; existing ones only."""
    named = [p for p in os.environ.get(env, "").split(os.pathsep) if p.strip()]
    folders = [Path(p).expanduser() for p in [*named, *extra]]
    seen: list[Path] = []
    for folder in folders:
        if folder.is_dir() and folder.resolve() not in [s.resolve() for s in seen]:
            seen.append(folder)
    return seen


def list_named_files(folders: Iterable[Path], suffixes: tuple[str, ...]) -> dict[str, Path]:
    """name -> file for every adapter in the folders (first folder wins on a name clash). A diffusers LoRA folder
    (holding pytorch_lora_weights.safetensors) is listed under the folder's name."""
    found: dict[str, Path] = {}
    for folder in folders:
        for path in sorted(_walk(folder, 0)):
            if path.name == DIFFUSERS_LORA_FILE and path.parent != folder:
                found.setdefault(path.parent.name, path)
            elif path.suffix.lower() in suffixes:
                found.setdefault(path.stem, path)
    return found


def _walk(folder: Path, depth: int) -> Iterable[Path]:
    try:
        entries = list(folder.iterdir())
    except OSError:
        return
    for entry in entries:
        if entry.name.startswith("."):
            continue
        if entry.is_dir() and depth < MAX_SEARCH_DEPTH:
            yield from _walk(entry, depth + 1)
        elif entry.is_file():
            yield entry


def find_adapter_file(value: str, setting: str, folders: list[Path], suffixes: tuple[str, ...], what: str) -> Path:
    """A user's name, path or hub id for an adapter -> the local file. Raises a SettingsError that lists the names
    the folders hold when nothing matches."""
    if not isinstance(value, str) or not value.strip():
        raise SettingsError(setting, value, f"the name, path or hub id of {what}")
    text = value.strip()
    path = Path(text).expanduser()
    if path.is_dir() and (path / DIFFUSERS_LORA_FILE).is_file():
        return path / DIFFUSERS_LORA_FILE
    if path.is_file():
        if path.suffix.lower() not in suffixes:
            raise SettingsError(setting, text, f"a {' or '.join(suffixes)} file")
        return path
    if path.suffix.lower() in suffixes or os.sep in text and not _HUB_ID.match(text):
        raise SettingsError(setting, text, f"an existing file of {what}", "No file is at that path.")
    named = list_named_files(folders, suffixes)
    if text in named:
        return named[text]
    if _HUB_ID.match(text):
        return _from_hub(text, setting, what)
    where = ", ".join(str(f) for f in folders) or "none (set " + (LORA_DIRS_ENV if setting.startswith("lora")
                                                                 else EMBEDDING_DIRS_ENV) + ")"
    known = ", ".join(sorted(named)) or "none"
    raise SettingsError(setting, text, f"one of the names found ({known}), a file path or a hub id",
                        f"Searched folders: {where}.")


def _from_hub(text: str, setting: str, what: str) -> Path:
    """'owner/repo' (its pytorch_lora_weights.safetensors) or 'owner/repo/file.safetensors', from the hub cache, or
    downloaded unless the hub is offline."""
    from huggingface_hub import hf_hub_download

    from ..models.loading import hub_offline

    owner, repo, *rest = text.split("/")
    filename = "/".join(rest) or DIFFUSERS_LORA_FILE
    try:
        return Path(hf_hub_download(f"{owner}/{repo}", filename, local_files_only=hub_offline()))
    except Exception as exc:  # noqa: BLE001 - every hub failure (offline, missing repo, missing file) says the same
        state = "the hub is offline and it is not in the cache" if hub_offline() else type(exc).__name__
        raise SettingsError(setting, text, f"{what} on disk or on the hub",
                            f"{filename} of {owner}/{repo} could not be fetched ({state}).") from None


def check_pickle_file(path: Path, setting: str, allow_pickle: bool) -> None:
    if path.suffix.lower() in PICKLE_SUFFIXES and not allow_pickle:
        from ..errors import UnsafeCheckpointError

        raise UnsafeCheckpointError(
            f"{setting}: {path.name} is a pickle file ({path.suffix}), which can run arbitrary code when loaded. Use "
            "a .safetensors version, or opt in with allow_pickle=True (--allow-pickle) if you trust its source.")


def safetensors_addnet_hash(path: str | os.PathLike) -> str:
    """sha256 of a .safetensors file's tensor bytes (everything after its JSON header): the hash A1111 and Civitai
    ("AutoV3") give LoRAs, so it stays the same when only the file's metadata changes. No library computes it."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        header_length = struct.unpack("<Q", handle.read(8))[0]
        handle.seek(8 + header_length)
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def short_hash(full: str) -> str:
    """A1111's short hash of an extra network: the first 12 hex digits."""
    return full[:12]
