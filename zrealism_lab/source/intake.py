"""Image intake: decode a source image safely into 8-bit RGB or RGBA.

The guard against decompression bombs looks at the size the file's header declares, before any
pixel is decoded. Every failure a user can cause becomes an IntakeError that says what was wrong
and what to do. Intake only reads: it never writes a file.
"""
from __future__ import annotations

import io
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Union

import numpy as np
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

from ..errors import IntakeError, SettingsError

DEFAULT_MAX_PIXELS = 64_000_000
MAX_PIXELS_ENV = "ZREALISM_MAX_PIXELS"

# Formats a user may hand in. Multi-picture JPEGs (many phones) open through the JPEG plugin as "MPO".
SUPPORTED_FORMATS: tuple[str, ...] = ("PNG", "JPEG", "WEBP", "BMP", "TIFF", "GIF")
_EXIF_ORIENTATION = 0x0112

ImageSource = Union[str, os.PathLike, bytes, bytearray, Image.Image]


@dataclass
class SourceImage:
    """A decoded source: ``image`` is 8-bit RGBA when the source has any transparency, else RGB."""

    image: Image.Image
    path: str | None
    format: str | None
    original_mode: str
    original_size: tuple[int, int]
    has_alpha: bool
    exif_transposed: bool

    @property
    def size(self) -> tuple[int, int]:
        return self.image.size

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe description for run records."""
        return {
            "path": self.path,
            "format": self.format,
            "original_mode": self.original_mode,
            "original_size": list(self.original_size),
            "size": list(self.image.size),
            "mode": self.image.mode,
            "has_alpha": self.has_alpha,
            "exif_transposed": self.exif_transposed,
        }


def resolve_max_pixels(max_pixels: int | None = None) -> int:
    """The pixel cap in force: the argument, else $ZREALISM_MAX_PIXELS, else DEFAULT_MAX_PIXELS."""
    name, value = "max_pixels", max_pixels
    if value is None:
        raw = os.environ.get(MAX_PIXELS_ENV, "").strip()
        if not raw:
            return DEFAULT_MAX_PIXELS
        name = MAX_PIXELS_ENV
        try:
            value = int(raw.replace("_", ""))
        except ValueError:
            raise SettingsError(name, raw, "a positive whole number of pixels, e.g. 64000000") from None
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
        raise SettingsError(name, value, "a positive whole number of pixels, e.g. 64000000")
    return int(value)


def _supported_list() -> str:
    return ", ".join(SUPPORTED_FORMATS)


def _check_file(path: Path) -> None:
    if not path.exists():
        raise IntakeError(
            f"source image '{path}' does not exist. Check the path; relative paths start at the current directory."
        )
    if path.is_dir():
        raise IntakeError(f"source image '{path}' is a directory, not an image file. Pass the path of one image file.")
    if not path.is_file():
        raise IntakeError(f"source image '{path}' is not a regular file. Pass the path of one image file.")
    if not os.access(path, os.R_OK):
        raise IntakeError(f"source image '{path}' cannot be read (permission denied). Fix its permissions or copy it.")
    if path.stat().st_size == 0:
        raise IntakeError(f"source image '{path}' is empty (0 bytes). Re-export or re-download the image.")


def _describe(path: Path | None) -> str:
    return f"source image '{path}'" if path is not None else "source image"


def _open_header(fp: Any, label: str, max_pixels: int) -> Image.Image:
    """Open lazily (header only) and enforce the pixel cap before any pixel is decoded."""
    with warnings.catch_warnings():
        # Pillow's own bomb check runs inside Image.open. It is a second line of defence: when the
        # caller has raised our cap above Pillow's soft limit, our cap decides instead.
        action = "error" if max_pixels <= (Image.MAX_IMAGE_PIXELS or 0) else "ignore"
        warnings.simplefilter(action, Image.DecompressionBombWarning)
        try:
            image = Image.open(fp, formats=SUPPORTED_FORMATS)
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            raise IntakeError(
                f"{label} is too large to decode safely ({exc}). The pixel cap is {max_pixels:,} pixels; "
                f"downscale the image, or raise the cap with max_pixels= or ${MAX_PIXELS_ENV} if you trust the file."
            ) from None
        except UnidentifiedImageError:
            raise IntakeError(
                f"{label}: the image format was not recognised (not an image, or corrupt). "
                f"Supported formats: {_supported_list()}."
            ) from None
        except (OSError, SyntaxError, ValueError, EOFError) as exc:
            raise IntakeError(
                f"{label} is truncated or corrupt and could not be read ({exc}). Re-export or re-download it; "
                f"supported formats: {_supported_list()}."
            ) from None
    width, height = image.size
    if width <= 0 or height <= 0:
        image.close()
        raise IntakeError(f"{label} declares an empty size {width}x{height}. Re-export the image.")
    if width * height > max_pixels:
        image.close()
        raise IntakeError(
            f"{label} is {width}x{height} = {width * height:,} pixels, above the pixel cap of {max_pixels:,}. "
            f"Downscale it, or raise the cap with max_pixels= or ${MAX_PIXELS_ENV} if you trust the file."
        )
    return image


def validate_image_path(path: str | os.PathLike, *, max_pixels: int | None = None) -> Path:
    """Cheap check for settings validation: the file exists, is readable and has a supported image
    header within the pixel cap. Decodes no pixels. Returns the resolved path."""
    cap = resolve_max_pixels(max_pixels)
    resolved = Path(os.fspath(path)).expanduser()
    _check_file(resolved)
    with open(resolved, "rb") as fh:
        image = _open_header(fh, _describe(resolved), cap)
        image.close()
    return resolved.resolve()


def _sixteen_bit_to_8(image: Image.Image) -> Image.Image:
    """Scale integer/float single-channel modes to 8-bit L.

    Pillow's own convert("L") clips 16-bit values at 255 instead of scaling, which turns most
    16-bit images white, so the scaling is done here."""
    array = np.asarray(image)
    if image.mode.startswith("I;16"):
        scaled = array.astype(np.float64) / 257.0
    elif image.mode == "F":
        finite = np.nan_to_num(array.astype(np.float64))
        if finite.size and finite.min() >= 0.0 and finite.max() <= 1.0:
            scaled = finite * 255.0
        else:
            scaled = _stretch(finite)
    else:  # "I": 32-bit integers; most files hold 8- or 16-bit data in it
        values = array.astype(np.float64)
        top = values.max() if values.size else 0.0
        if values.size and values.min() >= 0 and top <= 255:
            scaled = values
        elif values.size and values.min() >= 0 and top <= 65535:
            scaled = values / 257.0
        else:
            scaled = _stretch(values)
    return Image.fromarray(np.clip(np.rint(scaled), 0, 255).astype(np.uint8), mode="L")


def _stretch(values: np.ndarray) -> np.ndarray:
    low, high = float(values.min()), float(values.max())
    if high <= low:
        return np.zeros_like(values)
    return (values - low) * (255.0 / (high - low))


def _apply_icc(image: Image.Image, icc: bytes | None) -> Image.Image:
    """Convert from an embedded colour profile to sRGB (wide-gamut phone photos, print CMYK);
    best effort: a broken profile falls back to Pillow's plain conversion."""
    if not icc or image.mode not in ("RGB", "RGBA", "CMYK"):
        return image
    try:
        from PIL import ImageCms

        source_profile = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        srgb = ImageCms.createProfile("sRGB")
        alpha = image.getchannel("A") if image.mode == "RGBA" else None
        base = image.convert("RGB") if image.mode == "RGBA" else image
        converted = ImageCms.profileToProfile(base, source_profile, srgb, outputMode="RGB")
        if converted is None:
            return image
        if alpha is not None:
            converted.putalpha(alpha)
        return converted
    except Exception:  # noqa: BLE001 - any profile problem means "use the plain conversion"
        return image


def _to_8bit(image: Image.Image) -> tuple[Image.Image, bool]:
    """Return (RGB or RGBA image, has_transparency)."""
    mode = image.mode
    icc = image.info.get("icc_profile")
    if mode in ("I", "F") or mode.startswith("I;16"):
        image, mode = _sixteen_bit_to_8(image), "L"
    if mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
    elif mode == "PA":
        image = image.convert("RGBA")
    elif mode in ("1", "L"):
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
    elif mode in ("LA", "La", "RGBa", "RGBA"):
        image = image.convert("RGBA")
    elif mode == "CMYK":
        converted = _apply_icc(image, icc)
        image = converted if converted.mode == "RGB" else image.convert("RGB")
    elif mode == "RGB":
        image = _apply_icc(image, icc)
    else:
        try:
            image = image.convert("RGB")
        except (ValueError, OSError) as exc:
            raise IntakeError(
                f"image mode {mode!r} cannot be converted to RGB ({exc}). Re-export it as 8-bit RGB or RGBA PNG."
            ) from None
    if image.mode == "RGBA":
        image = _apply_icc(image, icc) if mode == "RGBA" else image
        alpha = np.asarray(image.getchannel("A"))
        if alpha.min() < 255:
            return image, True
        return image.convert("RGB"), False
    return image, False


def _orientation(image: Image.Image) -> int:
    try:
        return int(image.getexif().get(_EXIF_ORIENTATION, 1) or 1)
    except Exception:  # noqa: BLE001 - unreadable EXIF means "no orientation"
        return 1


def _decode(image: Image.Image, label: str) -> Image.Image:
    try:
        image.load()
    except (OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError) as exc:
        raise IntakeError(
            f"{label} is truncated or corrupt and could not be decoded ({exc}). Re-export or re-download it."
        ) from None
    return image


def _finish(image: Image.Image, *, path: str | None, fmt: str | None) -> SourceImage:
    original_mode, original_size = image.mode, image.size
    orientation = _orientation(image)
    transposed = orientation not in (0, 1)
    if transposed:
        image = ImageOps.exif_transpose(image)
    converted, has_alpha = _to_8bit(image)
    if converted is image:  # never hand back (or later mutate) the caller's own object
        converted = image.copy()
    converted.info.pop("exif", None)  # the orientation is already applied to the pixels
    return SourceImage(
        image=converted,
        path=path,
        format=("JPEG" if fmt == "MPO" else fmt),
        original_mode=original_mode,
        original_size=original_size,
        has_alpha=has_alpha,
        exif_transposed=transposed,
    )


def load_image(source: ImageSource, *, max_pixels: int | None = None) -> SourceImage:
    """Decode ``source`` (a path, raw bytes or a PIL image) into a SourceImage.

    Applies EXIF orientation, converts every Pillow mode to 8-bit RGB (RGBA when any pixel is
    transparent), takes the first frame of animations, and refuses images above the pixel cap
    (``max_pixels`` or $ZREALISM_MAX_PIXELS, default 64 megapixels) before decoding them."""
    cap = resolve_max_pixels(max_pixels)
    if isinstance(source, Image.Image):
        width, height = source.size
        if width * height > cap:
            raise IntakeError(
                f"source image is {width}x{height} = {width * height:,} pixels, above the pixel cap of {cap:,}. "
                f"Downscale it, or raise the cap with max_pixels= or ${MAX_PIXELS_ENV}."
            )
        if width <= 0 or height <= 0:
            raise IntakeError(f"source image has an empty size {width}x{height}.")
        try:
            source.seek(0)
        except (EOFError, AttributeError, ValueError):
            pass
        return _finish(_decode(source, "source image"), path=None, fmt=source.format)

    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
        if not data:
            raise IntakeError("source image bytes are empty (0 bytes). Pass the content of an image file.")
        with _open_header(io.BytesIO(data), "source image bytes", cap) as image:
            fmt = image.format
            return _finish(_decode(image, "source image bytes"), path=None, fmt=fmt)

    if not isinstance(source, (str, os.PathLike)):
        raise IntakeError(
            f"cannot load an image from a {type(source).__name__}; pass a file path, bytes or a PIL.Image.Image."
        )
    path = Path(os.fspath(source)).expanduser()
    _check_file(path)
    label = _describe(path)
    # Pillow keeps truncated files an error (never a half-grey image) unless this global is set.
    if ImageFile.LOAD_TRUNCATED_IMAGES:
        warnings.warn("PIL.ImageFile.LOAD_TRUNCATED_IMAGES is set; truncated files will load padded", stacklevel=2)
    with open(path, "rb") as fh:
        with _open_header(fh, label, cap) as image:
            fmt = image.format
            return _finish(_decode(image, label), path=str(path), fmt=fmt)
