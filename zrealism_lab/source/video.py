"""Clips in and out: read an MP4/MOV/WebM/GIF/WebP/APNG or a folder of frames; write MP4 (H.264), GIF and PNG frames.

Reading decodes through imageio-ffmpeg (the ffmpeg binary it ships) for video containers and through PIL for
animated images, so no system ffmpeg is needed. Every write goes to a temporary file in the destination folder and
is renamed into place, so a reader never sees half a video.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np
from PIL import Image, ImageSequence, UnidentifiedImageError

from ..errors import IntakeError, SettingsError
from ..files import atomic_path

VIDEO_SUFFIXES = (".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi")
ANIMATED_SUFFIXES = (".gif", ".webp", ".png", ".apng")
FRAME_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff")
DEFAULT_FPS = 8.0
# Decoding stops here even when no max_frames was asked for: a clip of a feature film must not fill the memory.
MAX_DECODED_FRAMES = 10_000
# ... and when the kept frames reach this many pixels in all (about 3 GB as 8-bit RGB).
MAX_CLIP_PIXELS = 1_000_000_000


def _frame_cap() -> int:
    from .intake import resolve_max_pixels

    return resolve_max_pixels()


def _check_frame_size(size: tuple[int, int], label: str) -> None:
    width, height = size
    cap = _frame_cap()
    if width * height > cap:
        raise IntakeError(f"{label} has {width}x{height} frames = {width * height:,} pixels, above the pixel cap of "
                          f"{cap:,} per frame; downscale the clip, or raise the cap with $ZREALISM_MAX_PIXELS if you "
                          "trust the file")


@dataclass
class Clip:
    """Decoded frames (RGB, all the same size) and the rate they play at."""

    frames: list[Image.Image]
    fps: float  # after sampling: the source rate divided by ``every``
    path: str | None = None
    format: str = ""
    source_fps: float = DEFAULT_FPS
    source_frame_count: int = 0  # frames decoded before sampling (up to where reading stopped)
    every: int = 1
    notes: list[str] = field(default_factory=list)

    @property
    def size(self) -> tuple[int, int]:
        return self.frames[0].size

    def __len__(self) -> int:
        return len(self.frames)

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "format": self.format, "frames": len(self.frames), "size": list(self.size),
                "fps": self.fps, "source_fps": self.source_fps, "source_frame_count": self.source_frame_count,
                "every": self.every, "notes": list(self.notes)}


# ------------------------------------------------------------------------------------------------ reading


def validate_clip_path(path: str | os.PathLike) -> Path:
    """Cheap checks before any model loads: the path exists and is a clip file or a folder of frames."""
    if not isinstance(path, (str, os.PathLike)) or not os.fspath(path):
        raise IntakeError(f"clip path {path!r} is not a path: give an MP4/MOV/WebM/GIF/WebP file or a folder of frames")
    p = Path(path).expanduser()
    if not p.exists():
        raise IntakeError(f"no clip at {p}: give an existing MP4/MOV/WebM/GIF/WebP file or a folder of PNG/JPG frames")
    if p.is_dir():
        if not _frame_files(p):
            raise IntakeError(f"the folder {p} holds no frames: it needs image files ({', '.join(FRAME_SUFFIXES)})")
        return p
    if p.stat().st_size == 0:
        raise IntakeError(f"the clip file {p} is empty (0 bytes): give a real video or animated image")
    suffix = p.suffix.lower()
    if suffix not in VIDEO_SUFFIXES + ANIMATED_SUFFIXES:
        raise IntakeError(f"{p} is not a clip this lab reads: use {', '.join(VIDEO_SUFFIXES + ANIMATED_SUFFIXES)} "
                          "or a folder of frames")
    return p


def read_clip(path: str | os.PathLike, every: int = 1, max_frames: int | None = None) -> Clip:
    """Decode a clip: every ``every``-th frame, at most ``max_frames`` of them, as RGB images of one size.

    Raises IntakeError for a missing, empty, corrupt or unreadable clip."""
    if isinstance(every, bool) or not isinstance(every, int) or every < 1:
        raise SettingsError("every", every, "a whole number >= 1 (1 keeps every frame, 2 every second one ...)")
    if max_frames is not None and (isinstance(max_frames, bool) or not isinstance(max_frames, int) or max_frames < 1):
        raise SettingsError("max_frames", max_frames, "a whole number >= 1, or none for all frames")
    p = validate_clip_path(path)
    if p.is_dir():
        frames_iter, fps, fmt = _iter_folder(p), DEFAULT_FPS, "folder"
    elif p.suffix.lower() in VIDEO_SUFFIXES:
        frames_iter, fps, fmt = _iter_video(p)
    else:
        frames_iter, fps, fmt = _iter_animated(p)

    frames: list[Image.Image] = []
    decoded = 0
    kept_pixels = 0
    notes: list[str] = []
    try:
        for index, frame in enumerate(frames_iter):
            decoded = index + 1
            if index % every:
                continue
            frames.append(frame)
            kept_pixels += frame.width * frame.height
            if (max_frames is not None and len(frames) >= max_frames) or decoded >= MAX_DECODED_FRAMES:
                if decoded >= MAX_DECODED_FRAMES:
                    notes.append(f"stopped reading after {MAX_DECODED_FRAMES} frames")
                break
            if kept_pixels >= MAX_CLIP_PIXELS:  # a long, large clip must not fill the memory
                notes.append(f"stopped reading after {len(frames)} kept frames ({kept_pixels:,} pixels in all): "
                             "use every= or max_frames= to choose which frames to read")
                break
    except IntakeError:
        raise
    except Exception as exc:  # a decoder failing half-way: the file is damaged
        detail = str(exc).splitlines()[0][:160] if str(exc) else ""
        raise IntakeError(f"could not decode {p} ({type(exc).__name__}: {detail}): the file is damaged or not a "
                          "video; re-export it as MP4 (H.264) or GIF") from None
    finally:
        close = getattr(frames_iter, "close", None)
        if close is not None:
            close()
    if not frames:
        raise IntakeError(f"{p} holds no frames" + (f" (decoded {decoded})" if decoded else "")
                          + ": give a clip with at least one frame")
    frames = _same_size(frames, notes)
    return Clip(frames, fps / every, str(p), fmt, fps, decoded, every, notes)


def _natural_key(path: Path) -> list[Any]:
    """frame2 before frame10: digits compare as numbers."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", path.name)]


def _frame_files(folder: Path) -> list[Path]:
    files = [f for f in folder.iterdir() if f.is_file() and f.suffix.lower() in FRAME_SUFFIXES
             and not f.name.startswith(".")]
    return sorted(files, key=_natural_key)


def _checked_rgb(image: Image.Image, label: str) -> Image.Image:
    _check_frame_size(image.size, label)
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        # Transparent frames are flattened on white, as the still intake's default backdrop.
        rgba = image.convert("RGBA")
        flat = Image.new("RGB", rgba.size, (255, 255, 255))
        flat.paste(rgba, mask=rgba.getchannel("A"))
        return flat
    return image.convert("RGB")


def _iter_folder(folder: Path) -> Iterator[Image.Image]:
    for file in _frame_files(folder):
        try:
            with Image.open(file) as image:
                _check_frame_size(image.size, str(file))  # from the header, before any pixel is decoded
                image.load()
                yield _checked_rgb(image, str(file))
        except (UnidentifiedImageError, OSError, SyntaxError, Image.DecompressionBombError) as exc:
            raise IntakeError(f"frame {file} cannot be read ({exc}): remove it or re-export the frames") from None


def _iter_animated(path: Path) -> tuple[Iterator[Image.Image], float, str]:
    try:
        image = Image.open(path)
    except Image.DecompressionBombError as exc:
        raise IntakeError(f"{path} is too large to decode safely ({exc})") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise IntakeError(f"{path} is not a readable image ({exc}): give an animated GIF/WebP/PNG or a video") from None
    try:
        _check_frame_size(image.size, str(path))  # from the header, before any pixel is decoded
        image.load()
    except IntakeError:
        image.close()
        raise
    except (OSError, SyntaxError, ValueError) as exc:
        image.close()
        raise IntakeError(f"{path} is not a readable image ({exc}): give an animated GIF/WebP/PNG or a video") from None
    duration = image.info.get("duration") or 0
    fps = 1000.0 / float(duration) if duration and duration > 0 else DEFAULT_FPS

    def frames() -> Iterator[Image.Image]:
        try:
            for frame in ImageSequence.Iterator(image):
                yield _checked_rgb(frame.copy(), str(path))
        finally:
            image.close()

    return frames(), float(fps), (image.format or path.suffix.lstrip(".")).lower()


def _iter_video(path: Path) -> tuple[Iterator[Image.Image], float, str]:
    import imageio_ffmpeg

    try:
        reader = imageio_ffmpeg.read_frames(str(path), pix_fmt="rgb24")
        meta = next(reader)
    except (OSError, RuntimeError, StopIteration, ValueError) as exc:
        first = str(exc).strip().splitlines()[-1][:200] if str(exc).strip() else type(exc).__name__
        raise IntakeError(f"{path} cannot be decoded as a video ({first}): it is damaged or not a video file; "
                          "re-export it as MP4 (H.264) or GIF") from None
    width, height = meta["size"]
    try:
        _check_frame_size((width, height), str(path))
    except IntakeError:
        reader.close()
        raise
    fps = float(meta.get("fps") or DEFAULT_FPS)

    def frames() -> Iterator[Image.Image]:
        try:
            for buffer in reader:
                yield Image.frombuffer("RGB", (width, height), bytes(buffer), "raw", "RGB", 0, 1).copy()
        finally:
            reader.close()

    return frames(), fps, meta.get("codec", "video") or "video"


def _same_size(frames: list[Image.Image], notes: list[str]) -> list[Image.Image]:
    """Folders of frames may mix sizes: resize the odd ones to the first frame's size (and say so)."""
    size = frames[0].size
    odd = [i for i, f in enumerate(frames) if f.size != size]
    if odd:
        notes.append(f"{len(odd)} frame(s) differ in size from the first ({size[0]}x{size[1]}) and were resized to it")
        frames = [f if f.size == size else f.resize(size, Image.LANCZOS) for f in frames]
    return frames


# ------------------------------------------------------------------------------------------------ geometry


def even_size(size: tuple[int, int]) -> tuple[int, int]:
    """H.264 in yuv420p needs even sides: odd ones grow by one pixel (padding, never cropping content away)."""
    width, height = size
    return width + width % 2, height + height % 2


def pad_to_even(array: np.ndarray) -> np.ndarray:
    """Pad an (H, W, 3) frame to even sides by repeating its last row/column, so no picture content is lost."""
    height, width = array.shape[:2]
    pad_h, pad_w = height % 2, width % 2
    if not (pad_h or pad_w):
        return array
    return np.pad(array, ((0, pad_h), (0, pad_w), (0, 0)), mode="edge")


def _as_arrays(frames: Sequence[Image.Image]) -> list[np.ndarray]:
    if not frames:
        raise SettingsError("frames", "[]", "at least one frame to write")
    size = frames[0].size
    for i, frame in enumerate(frames):
        if frame.size != size:
            raise SettingsError(f"frames[{i}]", f"{frame.size[0]}x{frame.size[1]}",
                                f"frames of one size ({size[0]}x{size[1]})")
    return [np.asarray(f.convert("RGB")) for f in frames]


def _check_fps(fps: float) -> float:
    if isinstance(fps, bool) or not isinstance(fps, (int, float)) or not 0 < fps <= 240:
        raise SettingsError("fps", fps, "a frame rate above 0 and at most 240")
    return float(fps)


# ------------------------------------------------------------------------------------------------ writing


def write_mp4(frames: Sequence[Image.Image], path: str | os.PathLike, fps: float, *, crf: int = 18) -> dict[str, Any]:
    """H.264 (libx264, yuv420p) MP4, written atomically. Odd sides are padded to even (see ``pad_to_even``).

    Returns what was written: size, padded, frames, fps, codec."""
    fps = _check_fps(fps)
    arrays = _as_arrays(frames)
    import imageio_ffmpeg

    path = Path(path)
    height, width = arrays[0].shape[:2]
    out_w, out_h = even_size((width, height))
    with atomic_path(path, ".mp4") as tmp:  # ffmpeg picks the container from the file name's suffix
        writer = imageio_ffmpeg.write_frames(
            str(tmp), (out_w, out_h), fps=fps, codec="libx264", pix_fmt_in="rgb24", pix_fmt_out="yuv420p",
            quality=None, macro_block_size=1, output_params=["-crf", str(int(crf)), "-movflags", "+faststart"],
            ffmpeg_log_level="error")
        writer.send(None)  # start ffmpeg
        for array in arrays:
            writer.send(np.ascontiguousarray(pad_to_even(array)))
        writer.close()
    return {"path": str(path), "codec": "h264", "pix_fmt": "yuv420p", "frames": len(arrays), "fps": fps,
            "size": [out_w, out_h], "source_size": [width, height], "padded": (out_w, out_h) != (width, height)}


def write_gif(frames: Sequence[Image.Image], path: str | os.PathLike, fps: float) -> dict[str, Any]:
    """Looping GIF, written atomically. GIF stores delays in 1/100 s, so the rate is rounded to that."""
    fps = _check_fps(fps)
    arrays = _as_arrays(frames)
    path = Path(path)
    delay_ms = max(20, int(round(100.0 / fps)) * 10)  # browsers treat delays under 20 ms as 100 ms
    images = [Image.fromarray(a) for a in arrays]
    with atomic_path(path, ".gif") as tmp:
        images[0].save(tmp, format="GIF", save_all=True, append_images=images[1:], duration=delay_ms, loop=0,
                       optimize=False, disposal=1)
    return {"path": str(path), "frames": len(images), "fps": 1000.0 / delay_ms, "size": list(images[0].size)}


def probe_video(path: str | os.PathLike) -> dict[str, Any]:
    """Codec, pixel format, size, rate and frame count of a video file, read back with the bundled ffmpeg."""
    import imageio_ffmpeg

    reader = imageio_ffmpeg.read_frames(str(path))
    try:
        meta = next(reader)
    finally:
        reader.close()
    frames, seconds = imageio_ffmpeg.count_frames_and_secs(str(path))
    codec = str(meta.get("codec", ""))
    pix_fmt = str(meta.get("pix_fmt", "")).split("(")[0]  # "yuv420p(progressive)" -> "yuv420p"
    return {"codec": codec.split()[0] if codec else "", "codec_detail": codec, "pix_fmt": pix_fmt,
            "size": list(meta["size"]), "fps": float(meta.get("fps") or 0.0), "frames": int(frames),
            "seconds": float(seconds)}
