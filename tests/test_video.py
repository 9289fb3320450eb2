"""Clip reading and MP4/GIF/PNG writing (no models involved)."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from zrealism_lab.errors import IntakeError, SettingsError
from zrealism_lab.source.video import (even_size, pad_to_even, probe_video, read_clip, validate_clip_path, write_gif,
                                write_mp4)


def _frames(count: int, size: tuple[int, int] = (48, 32)) -> list[Image.Image]:
    """Frames whose brightness rises with the index, so order survives lossy encoding."""
    width, height = size
    step = 25 if count <= 10 else 20
    return [Image.fromarray(np.full((height, width, 3), 10 + step * i, np.uint8)) for i in range(count)]


def _brightness(frames: list[Image.Image]) -> list[float]:
    return [float(np.asarray(f).mean()) for f in frames]


def test_mp4_reads_back_as_h264_yuv420p_with_its_frames_size_and_rate(tmp_path):
    info = write_mp4(_frames(9), tmp_path / "clip.mp4", fps=12)
    probe = probe_video(tmp_path / "clip.mp4")
    assert probe["codec"] == "h264" and probe["pix_fmt"] == "yuv420p"
    assert probe["frames"] == 9 and probe["size"] == [48, 32] and probe["fps"] == pytest.approx(12.0)
    assert info["padded"] is False
    assert [p.name for p in tmp_path.iterdir()] == ["clip.mp4"]  # no temporary file left behind


def test_odd_sizes_are_padded_to_even_without_losing_content(tmp_path):
    assert even_size((47, 33)) == (48, 34)
    array = np.arange(33 * 47 * 3, dtype=np.uint8).reshape(33, 47, 3)
    padded = pad_to_even(array)
    assert padded.shape == (34, 48, 3) and np.array_equal(padded[:33, :47], array)
    info = write_mp4(_frames(3, (47, 33)), tmp_path / "odd.mp4", fps=8)
    assert info["padded"] is True and probe_video(tmp_path / "odd.mp4")["size"] == [48, 34]


def test_mp4_round_trip_keeps_frame_order_and_sampling(tmp_path):
    write_mp4(_frames(10), tmp_path / "clip.mp4", fps=10)
    clip = read_clip(tmp_path / "clip.mp4", every=3, max_frames=3)
    assert len(clip) == 3 and clip.size == (48, 32)
    assert clip.fps == pytest.approx(10 / 3) and clip.source_fps == pytest.approx(10.0)
    levels = _brightness(clip.frames)
    assert levels == sorted(levels)
    assert levels[0] == pytest.approx(10, abs=4) and levels[1] == pytest.approx(85, abs=4)


def test_gif_round_trip(tmp_path):
    info = write_gif(_frames(5), tmp_path / "clip.gif", fps=10)
    clip = read_clip(tmp_path / "clip.gif")
    assert len(clip) == 5 and clip.size == (48, 32) and clip.fps == pytest.approx(info["fps"]) == pytest.approx(10)
    assert _brightness(clip.frames) == pytest.approx(_brightness(_frames(5)), abs=2)


def test_folder_of_frames_is_sorted_naturally(tmp_path):
    frames = _frames(11)
    for i, frame in enumerate(frames):
        frame.save(tmp_path / f"f{i}.png")  # f10 sorts before f2 as plain text
    (tmp_path / "notes.txt").write_text("not a frame")
    clip = read_clip(tmp_path)
    assert len(clip) == 11 and _brightness(clip.frames) == _brightness(frames)


@pytest.mark.parametrize("name, content", [("corrupt.mp4", b"\x00\x00\x00\x18ftypmp42" + b"garbage" * 50),
                                           ("fake.gif", b"this is text, not a picture"),
                                           ("empty.webm", b"")])
def test_unreadable_clip_files_give_intake_errors(tmp_path, name, content):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(IntakeError, match=name.split(".")[0]):
        read_clip(path)


def test_missing_empty_and_unsupported_clips_are_refused(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(IntakeError, match="holds no frames"):
        read_clip(tmp_path / "empty")
    with pytest.raises(IntakeError, match="no clip at"):
        validate_clip_path(tmp_path / "nothing.mp4")
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(IntakeError, match="not a clip"):
        read_clip(tmp_path / "notes.txt")
    with pytest.raises(SettingsError):
        read_clip(tmp_path / "empty", every=0)


def test_mixed_frame_sizes_cannot_be_written(tmp_path):
    frames = _frames(2) + _frames(1, (32, 32))
    with pytest.raises(SettingsError, match="frames of one size"):
        write_mp4(frames, tmp_path / "bad.mp4", fps=8)
    assert list(tmp_path.iterdir()) == []
