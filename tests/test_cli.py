"""The `zrealism` CLI: help, the static run, exit codes for bad input."""
from __future__ import annotations

import json

import pytest

from zrealism_lab.cli.main import build_parser, main
from zrealism_lab.settings import parse_controls


def test_help_lists_commands(capsys):
    with pytest.raises(SystemExit) as info:
        main(["--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    for command in ("run", "models", "demo", "metrics"):
        assert command in out


def test_run_static_help_shows_ranges(capsys):
    with pytest.raises(SystemExit):
        main(["run", "static", "--help"])
    out = capsys.readouterr().out
    assert "--strength" in out and "from 0.01 to 1" in out and "--controls" in out


def test_parse_controls():
    units = parse_controls("depth=0.8,openpose=0.6:0.1:0.9,canny")
    assert [(u.kind, u.scale, u.start, u.end) for u in units] == [
        ("depth", 0.8, 0.0, 1.0), ("openpose", 0.6, 0.1, 0.9), ("canny", 1.0, 0.0, 1.0)]
    assert parse_controls("none") == []


def test_parse_controls_takes_a_detector_method_after_the_kind():
    units = parse_controls("openpose:mediapipe=0.7,depth:inflate,canny=0.5:0:0.8")
    assert [(u.kind, u.method, u.scale) for u in units] == [
        ("openpose", "mediapipe", 0.7), ("depth", "inflate", 1.0), ("canny", None, 0.5)]


def test_a_method_given_on_the_command_line_reaches_the_run(tmp_path, sample_64, tiny_engine):
    from zrealism_lab.records import read_record

    out = tmp_path / "runs"
    assert main(["run", "static", "--image", str(sample_64), "--preset", "tiny", "--device", "cpu", "--size", "64",
                 "--steps", "2", "--controls", "depth:inflate,canny", "--out", str(out), "--quiet"]) == 0
    (run,) = out.iterdir()
    assert read_record(run)["controls"]["depth"]["method"] == "inflate"


@pytest.mark.parametrize("args, fragment", [
    (["--strength", "1.5"], "strength"),
    (["--steps", "0"], "steps"),
    (["--size", "100000"], "size"),
    (["--scheduler", "nope"], "scheduler"),
    (["--controls", "depth,sketch"], "sketch"),
    (["--controls", "depth=abc"], "KIND=SCALE"),
    (["--preset", "nonexistent"], "preset"),
])
def test_bad_values_exit_2_with_message(args, fragment, capsys, sample_64, tmp_path):
    code = main(["run", "static", "--image", str(sample_64), "--out", str(tmp_path), *args])
    assert code == 2
    assert fragment in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_missing_image_exits_2(capsys, tmp_path):
    code = main(["run", "static", "--image", str(tmp_path / "nope.png"), "--preset", "tiny", "--out", str(tmp_path)])
    assert code == 2 and "nope.png" in capsys.readouterr().err


def test_run_static_tiny_writes_png_and_record(capsys, sample_64, tmp_path, tiny_engine):
    code = main(["run", "static", "--image", str(sample_64), "--preset", "tiny", "--size", "64", "--steps", "4",
                 "--seed", "3", "--quiet", "--device", "cpu", "--out", str(tmp_path)])
    assert code == 0
    out = capsys.readouterr()
    (folder,) = tmp_path.iterdir()
    assert str(folder) in out.out and "random weights" in out.err
    record = json.loads((folder / "record.json").read_text())
    assert record["settings"]["seed"] == 3 and (folder / "output.png").exists()


def test_models_check_reports_missing_offline(capsys):
    code = main(["models", "check", "realistic-vision"])
    out = capsys.readouterr().out
    assert code == 1 and "MISSING" in out and "zrealism models download realistic-vision" in out


def test_models_tiny_builds_bundle(tmp_path, capsys):
    assert main(["models", "tiny", "--out", str(tmp_path / "bundle")]) == 0
    assert (tmp_path / "bundle" / "model_index.json").exists()


def test_parser_builds_without_heavy_imports():
    assert build_parser().prog == "zrealism"
