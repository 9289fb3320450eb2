"""The `metrics` subcommand, driven through a parser built here exactly as the main CLI builds its own."""
from __future__ import annotations

import argparse
import json

import cv2
import imageio.v3 as iio
import numpy as np
import pytest
from PIL import Image

from zrealism_lab.cli.metrics import add_parser, read_clip, run_metrics_command

SIZE = 64


def run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="zrealism")
    add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    assert args.func is run_metrics_command
    return args.func(args)


def _scene() -> np.ndarray:
    image = np.full((SIZE, SIZE, 3), (230, 220, 200), np.uint8)
    cv2.circle(image, (32, 32), 18, (200, 60, 50), -1)
    cv2.rectangle(image, (8, 50), (40, 56), (30, 30, 120), -1)
    return image


@pytest.fixture()
def files(tmp_path):
    source = _scene()
    output = cv2.GaussianBlur(source, (5, 5), 0)
    mask = np.zeros((SIZE, SIZE), np.uint8)
    mask[14:50, 14:50] = 255
    Image.fromarray(source).save(tmp_path / "source.png")
    Image.fromarray(output).convert("RGBA").save(tmp_path / "output.png")  # non-RGB modes are converted
    Image.fromarray(mask).save(tmp_path / "mask.png")
    frames = [np.roll(source, 2 * t, axis=1) for t in range(5)]
    (tmp_path / "frames").mkdir()
    for t, frame in enumerate(frames):  # frame_10 must sort after frame_9: natural order
        Image.fromarray(frame).save(tmp_path / "frames" / f"frame_{t * 5}.png")
    iio.imwrite(tmp_path / "clip.gif", np.stack(frames), loop=0)
    iio.imwrite(tmp_path / "clip.mp4", np.stack(frames), fps=8, codec="libx264", macro_block_size=16)
    return tmp_path


def test_pair_json_output(files, capsys):
    code = run(["metrics", str(files / "source.png"), str(files / "output.png"), "--json"])
    assert code == 0
    data = json.loads(capsys.readouterr().out)
    values = {m["name"]: m["value"] for m in data["metrics"]}
    assert data["kind"] == "pair" and data["common_size"] == [SIZE, SIZE]
    assert 0.3 < values["ssim_luma"] < 1.0
    assert values["delta_e2000_mean"] > 0


def test_pair_with_mask_prints_a_table(files, capsys):
    code = run(["metrics", str(files / "source.png"), str(files / "output.png"), "--mask", str(files / "mask.png")])
    assert code == 0
    out = capsys.readouterr().out
    assert "delta_e2000_mean" in out and "compared at 64x64 px" in out


def test_mask_restricts_colour_metrics_through_the_cli(files, capsys):
    run(["metrics", str(files / "source.png"), str(files / "output.png"), "--json"])
    whole = {m["name"]: m["value"] for m in json.loads(capsys.readouterr().out)["metrics"]}
    run(["metrics", str(files / "source.png"), str(files / "output.png"), "--mask", str(files / "mask.png"), "--json"])
    masked = {m["name"]: m["value"] for m in json.loads(capsys.readouterr().out)["metrics"]}
    assert masked["L_mean_source"] != pytest.approx(whole["L_mean_source"])
    assert masked["ssim_luma"] == pytest.approx(whole["ssim_luma"])


@pytest.mark.parametrize("clip_name", ["frames", "clip.gif", "clip.mp4"])
def test_clip_formats(files, capsys, clip_name):
    code = run(["metrics", "--clip", str(files / clip_name), "--json"])
    assert code == 0, capsys.readouterr().err
    data = json.loads(capsys.readouterr().out)
    assert data["kind"] == "clip"
    assert len(data["series"]["flicker"]) == 4


def test_clip_with_reference(files, capsys):
    code = run(["metrics", "--clip", str(files / "clip.gif"), "--reference", str(files / "frames"), "--json"])
    assert code == 0
    values = {m["name"]: m["value"] for m in json.loads(capsys.readouterr().out)["metrics"]}
    assert values["flicker_ratio"] == pytest.approx(1.0, abs=0.05)  # GIF palette aside, the same frames


def test_frame_folder_is_read_in_natural_order(files):
    frames = read_clip(str(files / "frames"))
    shifts = [int(np.argmax(np.asarray(f)[32, :, 0] == 200)) for f in frames]
    assert shifts == sorted(shifts)


@pytest.mark.parametrize("argv_tail,message", [
    (["missing.png", "output.png"], "does not exist"),
    (["source.png", "frames"], "is a folder"),
    (["source.png", "not_an_image.png"], "not a readable image"),
    (["source.png"], "SOURCE and OUTPUT"),
    ([], "SOURCE and OUTPUT"),
    (["source.png", "output.png", "--mask", "missing_mask.png"], "does not exist"),
    (["source.png", "output.png", "--mask", "small_mask.png"], "must match"),
    (["--clip", "missing.mp4"], "does not exist"),
    (["--clip", "source.png"], "at least 2 frames"),
    (["--clip", "empty"], "holds no frames"),
    (["--clip", "broken.mp4"], "could not be read"),
    (["--clip", "one_frame"], "at least 2 frames"),
    (["source.png", "output.png", "--clip", "frames"], "not both"),
    (["source.png", "output.png", "--reference", "frames"], "only goes with --clip"),
])
def test_bad_arguments_exit_2_with_a_clear_message(files, capsys, argv_tail, message):
    (files / "not_an_image.png").write_bytes(b"this is text")
    (files / "broken.mp4").write_bytes(b"\x00" * 64)
    (files / "empty").mkdir()
    (files / "one_frame").mkdir()
    Image.fromarray(_scene()).save(files / "one_frame" / "0.png")
    Image.new("L", (10, 10), 255).save(files / "small_mask.png")
    argv = ["metrics"] + [str(files / a) if not a.startswith("--") else a for a in argv_tail]
    assert run(argv) == 2
    captured = capsys.readouterr()
    assert message in captured.err
    assert captured.err.startswith("zrealism metrics: error:")
    assert captured.out == ""
