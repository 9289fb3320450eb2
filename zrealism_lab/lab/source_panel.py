"""The Source tab's rules: samples, uploads (the button, drag-and-drop and paste), the background analysis and the
background-kind override. The picture on screen is always the one the next Run uses: the picker, the picture, the
analysis and the run's source change together, or (for a file that cannot be read) not at all."""
from __future__ import annotations

import base64
import io
import json
import os
from pathlib import Path
from typing import Any

from ..errors import IntakeError, ZRealismError
from .layout import LabLayout
from .runner import LatestOnly
from .state import summarize_error
from .views import message_html

UPLOAD_PREFIX = "__upload__:"
KEPT_UPLOADS = 4  # the picker offers this many recent uploads again
# Uploaded (or path-given) source files above this size are refused before they are read or decoded; the pixel
# cap of intake then guards the decode itself.
MAX_UPLOAD_BYTES = 256 * 2**20


class SourcePanel(LabLayout):
    """LabLayout plus the source: ``source_label``/``source_value`` are what the next Run uses."""

    def connect_source(self) -> None:
        self._source: tuple[str, Any] = ("", None)  # (label, what run_static is given)
        self._source_size: tuple[int, int] | None = None
        self._loaded: Any = None
        self._uploads: dict[str, tuple[str, bytes]] = {}
        self._upload_count = 0
        self._analysis_jobs = LatestOnly("analysis")
        self._analysis: Any = None
        self.sample_picker.observe(self._on_pick, names="value")
        self.upload.observe(self._on_upload, names="value")
        self.drop_data.observe(self._on_drop, names="value")
        self.fields["background_kind"].input.observe(lambda _: self._show_override(), names="value")

    @property
    def source_label(self) -> str:
        """How the current source is named in messages and the history ("sample dark", "upload me.png")."""
        return self._source[0]

    @property
    def source_value(self) -> Any:
        """The current source as run_static takes it: a sample's path or an upload's bytes."""
        return self._source[1]

    def set_source(self, source: str | os.PathLike | bytes) -> None:
        """A sample name, an image path or an image file's bytes; problems show on the Source tab."""
        from ..source.samples import SAMPLE_NAMES

        if isinstance(source, str) and source in SAMPLE_NAMES:
            if self.sample_picker.value == source:
                self._use_sample(source)
            else:
                self.sample_picker.value = source  # the observer switches the source
            return
        if isinstance(source, (bytes, bytearray)):
            self.add_upload("uploaded image", bytes(source))
            return
        path = Path(source).expanduser()
        if not path.is_file():
            self._refuse(str(source), f"there is no file {source}. Give an image file, a sample name "
                                      f"({', '.join(SAMPLE_NAMES)}) or an image's bytes.")
            return
        if path.stat().st_size > MAX_UPLOAD_BYTES:
            self._refuse(path.name, _too_large(path.stat().st_size))
            return
        self.add_upload(path.name, path.read_bytes())

    # ------------------------------------------------------------------------------------------- events
    def _on_pick(self, change: dict) -> None:
        value = change["new"]
        if isinstance(value, str) and value.startswith(UPLOAD_PREFIX):
            name, data = self._uploads[value]
            self._use_upload(name, data)  # picking an earlier upload makes it the source again
        elif value is not None:
            self._use_sample(value)

    def _on_upload(self, change: dict) -> None:
        files = change["new"]
        if not files:
            return
        item = files[0]
        content = item.get("content", b"")
        # Cleared, so that choosing the same file again is a change the kernel hears about.
        self.upload.value = ()
        if len(content) > MAX_UPLOAD_BYTES:  # before copying or decoding it
            self._refuse(item.get("name", "upload"), _too_large(len(content)))
            return
        self.add_upload(item.get("name", "upload"), bytes(content))

    def _on_drop(self, change: dict) -> None:
        """A file dropped on or pasted into the drop zone (the browser sends it as base64 JSON)."""
        text = change["new"]
        if not text:
            return
        self.drop_data.value = ""
        try:
            item = json.loads(text)
            data = base64.b64decode(item["data"], validate=True)
            name = str(item.get("name") or "dropped image")
        except (ValueError, KeyError, TypeError):
            self._refuse("dropped file", "the browser sent something that is not a file: drop or paste an image.")
            return
        self.add_upload(name, data)

    # ------------------------------------------------------------------------------------------- sources
    def _use_sample(self, name: str) -> None:
        from ..source.intake import load_image
        from ..source.samples import sample_path

        path = sample_path(name)
        self._set_source(f"sample {name}", path, load_image(path))

    def add_upload(self, name: str, data: bytes) -> bool:
        """An uploaded, dropped or pasted image becomes the source (and an entry of the picker); a file that cannot
        be read is refused with the reason, and the current source stays, as the message says."""
        loaded = self._decode(name, data)
        if loaded is None:
            return False
        key = next((k for k, (n, d) in self._uploads.items() if n == name and d == data), None)
        if key is None:
            self._upload_count += 1
            key = f"{UPLOAD_PREFIX}{self._upload_count}"
            self._uploads[key] = (name, data)
            while len(self._uploads) > KEPT_UPLOADS:
                self._uploads.pop(next(iter(self._uploads)))
        samples = [o for o in self.sample_picker.options if not str(o[1]).startswith(UPLOAD_PREFIX)]
        uploads = [(f"uploaded: {n}", k) for k, (n, _) in self._uploads.items()]
        with self.sample_picker.hold_trait_notifications():
            self.sample_picker.options = samples + uploads
        if self.sample_picker.value != key:
            self._loaded_for = (key, loaded)
            self.sample_picker.value = key  # the observer makes it the source
        else:
            self._set_source(f"upload {name}", data, loaded)
        return True

    def _use_upload(self, name: str, data: bytes) -> None:
        pending = getattr(self, "_loaded_for", None)
        key = self.sample_picker.value
        loaded = pending[1] if pending is not None and pending[0] == key else self._decode(name, data)
        self._loaded_for = None
        if loaded is not None:
            self._set_source(f"upload {name}", data, loaded)

    def _decode(self, name: str, data: bytes) -> Any:
        """Intake's decoded image, or None with the reason on the Source tab."""
        from ..source.intake import load_image, resolve_max_pixels

        if len(data) > MAX_UPLOAD_BYTES:
            self._refuse(name, _too_large(len(data)))
            return None
        size = _header_size(data)
        cap = resolve_max_pixels()
        if size is not None and size[0] * size[1] > cap:
            self._refuse(name, f"it is {size[0]}×{size[1]} px ({size[0] * size[1] / 1e6:.0f} megapixels), above the "
                               f"{cap / 1e6:.0f} megapixels the lab reads. Downscale it (2048 px on the long side is "
                               "plenty) and upload it again.")
            return None
        try:
            return load_image(data)
        except ZRealismError as exc:
            self._refuse(name, str(exc).replace("source image bytes", "the file"))
            return None

    def _refuse(self, name: str, reason: str) -> None:
        still = f" The source is still {self.source_label}." if self.source_label else ""
        self.source_message.value = message_html(f"Cannot use {name}: {reason}{still}", "error")

    def _set_source(self, label: str, value: Any, loaded: Any) -> None:
        """Everything that shows the source changes at once: picture, message, size; the mask follows."""
        self._source, self._loaded, self._analysis = (label, value), loaded, None
        self._source_size = tuple(loaded.size)
        self.show_source_picture(loaded.image)
        self.mask_image.value = _blank()  # the old mask must not sit beside the new picture
        self.source_message.value = message_html(f"source: {label} — the next Run uses this picture", "info")
        self.analysis_text.value = "<i>analysing the background ...</i>"
        self.fields["size"].validate()  # its note names the output size for this source
        self.refresh_preflight()
        self._analysis_jobs.submit(lambda: _analyse(loaded), self._show_analysed, self._analysis_failed)

    def _show_analysed(self, found: tuple[Any, Any]) -> None:
        self._analysis = found
        self.show_analysis(found)

    def _show_override(self) -> None:
        if self._analysis is not None:
            self.show_analysis(self._analysis)

    def _analysis_failed(self, exc: BaseException) -> None:
        self.analysis_text.value = message_html(f"the background analysis failed: {summarize_error(exc).short}",
                                                "error")


def _blank() -> bytes:
    from .widgets import placeholder

    return placeholder()


def _header_size(data: bytes) -> tuple[int, int] | None:
    """The image's size from its header alone (no pixels decoded); None when the header cannot be read."""
    import warnings

    from PIL import Image

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(io.BytesIO(data)) as image:
                return image.size
    except Exception:  # noqa: BLE001 - not an image, or a decompression bomb: intake says so properly
        return None


def _too_large(size: int) -> str:
    return (f"the file is {size / 2**20:.0f} MB, above the lab's upload limit of {MAX_UPLOAD_BYTES // 2**20} MB: "
            "downscale or re-encode it (a PNG or JPEG of a few MB is plenty for 512-1024 px runs).")


def _analyse(loaded: Any) -> tuple[Any, Any]:
    from ..source.background import analyze_background

    return loaded, analyze_background(loaded.image)


__all__ = ["KEPT_UPLOADS", "MAX_UPLOAD_BYTES", "SourcePanel", "UPLOAD_PREFIX"]
