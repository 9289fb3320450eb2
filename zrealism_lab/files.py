"""One way to write a file: atomically (a reader never sees half a file) and with one file mode (the user's usual
one), for every output of a run folder, a report page, a clip or a bundle. Plus the hash and JSON helpers that go
with writing outputs."""
from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

if TYPE_CHECKING:
    from PIL import Image

_UMASK = os.umask(0)
os.umask(_UMASK)
FILE_MODE = 0o666 & ~_UMASK  # what open() would give: mkstemp makes owner-only files


def check_output_root(root: str | os.PathLike) -> Path:
    """The folder runs are written under, checked before any work: it is a folder (or can be made as one) and can be
    written to. A file in the way, a symlink loop or a read-only place is a clear error, not a traceback later."""
    from .errors import SettingsError

    allowed = "a folder, or a path where a folder can be made"
    if not isinstance(root, (str, os.PathLike)) or not os.fspath(root):
        raise SettingsError("out", root, allowed)
    path = Path(root).expanduser()
    try:
        path = path.resolve()
    except (OSError, RuntimeError) as exc:  # a symlink loop: RuntimeError before Python 3.13, OSError since
        raise SettingsError("out", os.fspath(root), allowed, f"It cannot be resolved ({exc}).") from None
    existing = path
    while not existing.exists():
        if existing.is_symlink():  # a dangling link: mkdir would fail on it
            raise SettingsError("out", os.fspath(root), allowed, f"{existing} is a broken symbolic link.")
        existing = existing.parent
    if not existing.is_dir():
        where = "is a file" if existing == path else f"passes through the file {existing}"
        raise SettingsError("out", os.fspath(root), allowed, f"The path {where}; choose another --out.")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise SettingsError("out", os.fspath(root), allowed, f"{existing} is not writable by this user.")
    return path


def sha256_file(path: str | os.PathLike, _cache: dict = {}) -> str:  # noqa: B006 - deliberate per-process memo
    """SHA-256 of a file, memoised on (path, size, mtime): weight files are large and rarely change."""
    stat = os.stat(path)
    key = (os.fspath(path), stat.st_size, stat.st_mtime_ns)
    if key not in _cache:
        digest = hashlib.sha256()
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        _cache[key] = digest.hexdigest()
    return _cache[key]


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str = "") -> Iterator[Path]:
    """A temporary path beside ``path`` for a writer that needs a file name (ffmpeg, PIL); renamed into place with
    the usual file mode when the block ends, removed when it raises. ``suffix`` keeps the extension a writer reads
    the format from."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part" + suffix, dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        os.chmod(tmp, FILE_MODE)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write to a temp file in the same folder, then rename: a reader never sees a half-written file."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def json_default(value: Any) -> Any:
    """JSON for the objects records hold: results with ``to_dict``, paths, numpy scalars, sets and tuples."""
    if hasattr(value, "to_dict"):
        return value.to_dict()
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "item"):
        return value.item()
    if isinstance(value, (set, tuple)):
        return list(value)
    return repr(value)


def json_text(data: Any, *, sort_keys: bool = False) -> str:
    return json.dumps(data, indent=2, sort_keys=sort_keys, default=json_default) + "\n"


def atomic_write_json(path: str | os.PathLike, data: Any, *, sort_keys: bool = False) -> None:
    atomic_write_text(path, json_text(data, sort_keys=sort_keys))


def png_bytes(image: Image.Image, text: dict[str, str] | None = None) -> bytes:
    """A PNG of the image, with ``text`` as international text chunks (settings travel with the picture)."""
    from PIL import PngImagePlugin

    info = PngImagePlugin.PngInfo()
    for key, value in (text or {}).items():
        info.add_itxt(key, value)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", pnginfo=info)
    return buffer.getvalue()
