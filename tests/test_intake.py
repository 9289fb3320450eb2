from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from zrealism_lab.errors import IntakeError, SettingsError
from zrealism_lab.source.intake import (
    DEFAULT_MAX_PIXELS,
    SUPPORTED_FORMATS,
    SourceImage,
    load_image,
    resolve_max_pixels,
    validate_image_path,
)

SIZE = 64


def _rgb_array() -> np.ndarray:
    """A 64 px test card: red left half, blue right half, a green square in the middle."""
    array = np.zeros((SIZE, SIZE, 3), np.uint8)
    array[:, : SIZE // 2] = (220, 30, 30)
    array[:, SIZE // 2:] = (30, 30, 220)
    array[24:40, 24:40] = (30, 200, 30)
    return array


def _rgba_image() -> Image.Image:
    rgba = np.dstack([_rgb_array(), np.full((SIZE, SIZE), 255, np.uint8)])
    rgba[:8, :, 3] = 0  # transparent top band
    return Image.fromarray(rgba, "RGBA")


def _save(image: Image.Image, path: Path, fmt: str, **params) -> Path:
    image.save(path, fmt, **params)
    return path


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header declares width x height but which carries almost no pixel data."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", zlib.compress(b"\0" * 64))


# ---------------------------------------------------------------- formats and modes round-trip


@pytest.mark.parametrize("fmt,suffix", [("PNG", "png"), ("BMP", "bmp"), ("TIFF", "tif"), ("WEBP", "webp")])
def test_lossless_rgb_round_trip(tmp_path, fmt, suffix):
    params = {"lossless": True} if fmt == "WEBP" else {}
    path = _save(Image.fromarray(_rgb_array()), tmp_path / f"card.{suffix}", fmt, **params)
    loaded = load_image(path)
    assert isinstance(loaded, SourceImage)
    assert loaded.format == fmt and loaded.image.mode == "RGB" and not loaded.has_alpha
    assert loaded.path == str(path) and loaded.original_size == (SIZE, SIZE)
    np.testing.assert_array_equal(np.asarray(loaded.image), _rgb_array())


def test_jpeg_round_trip_is_close(tmp_path):
    path = _save(Image.fromarray(_rgb_array()), tmp_path / "card.jpg", "JPEG", quality=95)
    loaded = load_image(path)
    assert loaded.format == "JPEG" and loaded.image.mode == "RGB"
    error = np.abs(np.asarray(loaded.image, np.int16) - _rgb_array().astype(np.int16))
    assert error.mean() < 6


@pytest.mark.parametrize("fmt,suffix", [("PNG", "png"), ("WEBP", "webp"), ("TIFF", "tif")])
def test_rgba_with_transparency_stays_rgba(tmp_path, fmt, suffix):
    params = {"lossless": True} if fmt == "WEBP" else {}
    path = _save(_rgba_image(), tmp_path / f"alpha.{suffix}", fmt, **params)
    loaded = load_image(path)
    assert loaded.image.mode == "RGBA" and loaded.has_alpha and loaded.original_mode == "RGBA"
    alpha = np.asarray(loaded.image.getchannel("A"))
    assert (alpha[:8] == 0).all() and (alpha[8:] == 255).all()


def test_fully_opaque_alpha_becomes_rgb(tmp_path):
    opaque = Image.fromarray(_rgb_array()).convert("RGBA")
    loaded = load_image(_save(opaque, tmp_path / "opaque.png", "PNG"))
    assert loaded.image.mode == "RGB" and not loaded.has_alpha and loaded.original_mode == "RGBA"


def test_la_mode(tmp_path):
    la = Image.merge("LA", [Image.new("L", (SIZE, SIZE), 90), Image.linear_gradient("L").resize((SIZE, SIZE))])
    loaded = load_image(_save(la, tmp_path / "la.png", "PNG"))
    assert loaded.original_mode == "LA" and loaded.image.mode == "RGBA" and loaded.has_alpha
    assert np.asarray(loaded.image)[..., 0].max() == 90


def test_palette_with_transparency_entry(tmp_path):
    palette = Image.new("P", (SIZE, SIZE), 0)
    palette.putpalette([255, 0, 255, 10, 200, 10] + [0] * 762)
    palette.paste(1, (16, 16, 48, 48))
    path = _save(palette, tmp_path / "pal.png", "PNG", transparency=0)
    loaded = load_image(path)
    assert loaded.original_mode == "P" and loaded.image.mode == "RGBA" and loaded.has_alpha
    pixels = np.asarray(loaded.image)
    assert pixels[0, 0, 3] == 0 and tuple(pixels[32, 32]) == (10, 200, 10, 255)


def test_palette_without_transparency_is_rgb(tmp_path):
    palette = Image.fromarray(_rgb_array()).convert("P", palette=Image.Palette.ADAPTIVE, colors=8)
    loaded = load_image(_save(palette, tmp_path / "pal.bmp", "BMP"))
    assert loaded.original_mode == "P" and loaded.image.mode == "RGB" and not loaded.has_alpha


@pytest.mark.parametrize("mode", ["L", "1"])
def test_grey_and_bilevel(tmp_path, mode):
    grey = Image.fromarray(_rgb_array()).convert("L").point(lambda v: 255 if v > 100 else 0)
    loaded = load_image(_save(grey.convert(mode), tmp_path / f"{mode}.png", "PNG"))
    assert loaded.original_mode == mode and loaded.image.mode == "RGB"
    assert set(np.unique(np.asarray(loaded.image))) <= {0, 255}


@pytest.mark.parametrize("fmt,suffix", [("PNG", "png"), ("TIFF", "tif")])
def test_sixteen_bit_grey_is_scaled_not_clipped(tmp_path, fmt, suffix):
    values = np.zeros((SIZE, SIZE), np.uint16)
    values[:, :16], values[:, 16:32], values[:, 32:48], values[:, 48:] = 0, 257 * 64, 32896, 65535
    path = _save(Image.fromarray(values), tmp_path / f"deep.{suffix}", fmt)
    loaded = load_image(path)
    assert loaded.original_mode.startswith("I") and loaded.image.mode == "RGB"
    row = np.asarray(loaded.image)[0, :, 0]
    assert (row[0], row[20], row[40], row[60]) == (0, 64, 128, 255)


def test_cmyk_jpeg_and_tiff(tmp_path):
    cmyk = Image.fromarray(_rgb_array()).convert("CMYK")
    for fmt, suffix in (("JPEG", "jpg"), ("TIFF", "tif")):
        loaded = load_image(_save(cmyk, tmp_path / f"cmyk.{suffix}", fmt))
        assert loaded.original_mode == "CMYK" and loaded.image.mode == "RGB"
        red = np.asarray(loaded.image)[4, 4].astype(int)
        assert red[0] > 150 and red[1] < 90 and red[2] < 90


def test_gif_first_frame_with_transparency(tmp_path):
    first = Image.new("P", (SIZE, SIZE), 0)
    first.putpalette([0, 0, 0, 250, 40, 40, 40, 40, 250] + [0] * 759)
    first.paste(1, (8, 8, 56, 56))
    second = first.copy()
    second.paste(2, (0, 0, SIZE, SIZE))
    path = tmp_path / "anim.gif"
    first.save(path, "GIF", save_all=True, append_images=[second], transparency=0, duration=100, disposal=2)
    loaded = load_image(path)
    assert loaded.format == "GIF" and loaded.has_alpha and loaded.image.mode == "RGBA"
    pixels = np.asarray(loaded.image)
    assert pixels[0, 0, 3] == 0
    assert tuple(pixels[32, 32, :3]) == (250, 40, 40)  # the first frame, not the blue second one


def test_exif_orientation_is_applied(tmp_path):
    stored = np.zeros((32, SIZE, 3), np.uint8)  # landscape as stored, red mark top-left
    stored[:8, :8] = (255, 0, 0)
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    path = _save(Image.fromarray(stored), tmp_path / "rotated.jpg", "JPEG", exif=exif, quality=95)
    loaded = load_image(path)
    assert loaded.exif_transposed and loaded.original_size == (SIZE, 32)
    assert loaded.image.size == (32, SIZE)
    pixels = np.asarray(loaded.image).astype(int)
    assert pixels[3, 28, 0] > 200 and pixels[3, 3, 0] < 60  # the mark moved to the top-right corner


def test_unrotated_file_is_not_marked_transposed(tmp_path):
    loaded = load_image(_save(Image.fromarray(_rgb_array()), tmp_path / "plain.jpg", "JPEG"))
    assert not loaded.exif_transposed


def test_bytes_and_pil_sources():
    buffer = io.BytesIO()
    _rgba_image().save(buffer, "PNG")
    from_bytes = load_image(buffer.getvalue())
    assert from_bytes.path is None and from_bytes.format == "PNG" and from_bytes.has_alpha

    original = Image.fromarray(_rgb_array())
    from_pil = load_image(original)
    assert from_pil.image is not original and from_pil.image.mode == "RGB"
    np.testing.assert_array_equal(np.asarray(from_pil.image), _rgb_array())


def test_intake_writes_nothing(tmp_path):
    path = _save(Image.fromarray(_rgb_array()), tmp_path / "card.png", "PNG")
    before = {p: p.stat().st_mtime_ns for p in tmp_path.iterdir()}
    load_image(path)
    validate_image_path(path)
    assert {p: p.stat().st_mtime_ns for p in tmp_path.iterdir()} == before


def test_to_dict_is_plain():
    info = load_image(_rgba_image()).to_dict()
    assert info["has_alpha"] is True and info["size"] == [SIZE, SIZE] and info["mode"] == "RGBA"


# ---------------------------------------------------------------- bad files


def test_missing_file(tmp_path):
    with pytest.raises(IntakeError, match="does not exist"):
        load_image(tmp_path / "nope.png")


def test_directory(tmp_path):
    with pytest.raises(IntakeError, match="directory"):
        load_image(tmp_path)


def test_empty_file(tmp_path):
    path = tmp_path / "empty.png"
    path.write_bytes(b"")
    with pytest.raises(IntakeError, match="empty"):
        load_image(path)
    with pytest.raises(IntakeError, match="empty"):
        load_image(b"")


def test_truncated_png(tmp_path):
    buffer = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (SIZE, SIZE, 3), dtype=np.uint8)).save(buffer, "PNG")
    path = tmp_path / "cut.png"
    path.write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])
    with pytest.raises(IntakeError, match="truncated"):
        load_image(path)


@pytest.mark.parametrize("name,content", [
    ("noise.png", np.random.default_rng(1).integers(0, 256, 512, dtype=np.uint8).tobytes()),
    ("notes.png", b"this is a text file, not a picture\n" * 4),
])
def test_not_an_image(tmp_path, name, content):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(IntakeError, match="not recognised") as caught:
        load_image(path)
    for fmt in SUPPORTED_FORMATS:
        assert fmt in str(caught.value)


def test_unsupported_type():
    with pytest.raises(IntakeError, match="file path, bytes or a PIL"):
        load_image(12345)  # type: ignore[arg-type]


def test_bomb_header_is_refused_before_decoding(tmp_path):
    path = tmp_path / "bomb.png"
    path.write_bytes(_png_header_only(100_000, 100_000))
    # The file holds almost no pixel data: decoding would report truncation, the cap must come first.
    with pytest.raises(IntakeError, match="pixel cap") as caught:
        load_image(path)
    assert "truncated" not in str(caught.value)
    with pytest.raises(IntakeError, match="pixel cap"):
        validate_image_path(path)


def test_pixel_cap_below_pillow_limit_and_configurable(tmp_path):
    path = tmp_path / "large.png"
    path.write_bytes(_png_header_only(9000, 9000))  # 81 MP: under Pillow's own limit, over ours
    with pytest.raises(IntakeError, match="above the pixel cap of 64,000,000"):
        load_image(path)
    # With the cap raised the header passes and decoding fails on the missing data instead.
    with pytest.raises(IntakeError, match="truncated"):
        load_image(path, max_pixels=100_000_000)


def test_pixel_cap_from_environment(tmp_path, monkeypatch):
    path = _save(Image.fromarray(_rgb_array()), tmp_path / "card.png", "PNG")
    monkeypatch.setenv("ZREALISM_MAX_PIXELS", "1000")
    assert resolve_max_pixels() == 1000
    with pytest.raises(IntakeError, match="pixel cap of 1,000"):
        load_image(path)
    with pytest.raises(IntakeError, match="pixel cap"):
        load_image(Image.fromarray(_rgb_array()))
    assert load_image(path, max_pixels=SIZE * SIZE).image.size == (SIZE, SIZE)  # the argument wins
    monkeypatch.setenv("ZREALISM_MAX_PIXELS", "lots")
    with pytest.raises(SettingsError, match="ZREALISM_MAX_PIXELS"):
        load_image(path)
    monkeypatch.delenv("ZREALISM_MAX_PIXELS")
    assert resolve_max_pixels() == DEFAULT_MAX_PIXELS == 64_000_000


@pytest.mark.parametrize("bad", [0, -5, 2.5, True])
def test_bad_max_pixels_argument(bad):
    with pytest.raises(SettingsError, match="max_pixels"):
        resolve_max_pixels(bad)


def test_validate_image_path_checks_header_only(tmp_path):
    good = _save(Image.fromarray(_rgb_array()), tmp_path / "card.png", "PNG")
    assert validate_image_path(good) == good.resolve()
    header_only = tmp_path / "header.png"
    header_only.write_bytes(_png_header_only(SIZE, SIZE))
    assert validate_image_path(header_only) == header_only.resolve()  # no decode: header is fine
    with pytest.raises(IntakeError, match="truncated"):
        load_image(header_only)
    (tmp_path / "text.png").write_text("hello")
    (tmp_path / "empty.png").write_bytes(b"")
    for bad, message in ((tmp_path / "text.png", "not recognised"), (tmp_path / "empty.png", "empty"),
                         (tmp_path / "missing.png", "does not exist"), (tmp_path, "directory")):
        with pytest.raises(IntakeError, match=message):
            validate_image_path(bad)
