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
    few_step = next(line for line in out.splitlines() if "few-step LoRA (speed fast)" in line)
    assert "MISSING" in few_step and "latent-consistency/lcm-lora-sdv1-5" in few_step


def test_models_tiny_builds_bundle(tmp_path, capsys):
    assert main(["models", "tiny", "--out", str(tmp_path / "bundle")]) == 0
    assert (tmp_path / "bundle" / "model_index.json").exists()


def test_parser_builds_without_heavy_imports():
    assert build_parser().prog == "zrealism"


# ----------------------------------------------------------------- parity: every setting of the table on the CLI


def _run_parser(mode):
    run = next(a for a in build_parser()._actions if a.dest == "command").choices["run"]
    return next(a for a in run._actions if a.dest == "mode").choices[mode]


@pytest.mark.parametrize("mode", ["static", "temporal"])
def test_every_setting_of_the_table_has_a_flag(mode):
    from zrealism_lab.cli.common import COMPOUND_SETTINGS
    from zrealism_lab.settings import SPECS, TEMPORAL_SPECS

    dests = {a.dest for a in _run_parser(mode)._actions}
    specs = SPECS if mode == "static" else TEMPORAL_SPECS
    assert [name for name in specs if name not in COMPOUND_SETTINGS and name not in dests] == []


def test_generated_flags_reach_the_settings_of_both_run_kinds():
    from zrealism_lab.cli.run import static_settings_from_args, temporal_settings_from_args

    extra = ["--pose-policy", "keep", "--detect-resolution", "128", "--mask-controls", "--no-lighting-hints",
             "--transparent-backdrop", "black", "--out", "runs"]
    static = static_settings_from_args(build_parser().parse_args(["run", "static", "--image", "x.png", *extra]))
    temporal = temporal_settings_from_args(build_parser().parse_args(["run", "temporal", "--image", "x.png", *extra]))
    for settings in (static, temporal):
        assert (settings.pose_policy, settings.detect_resolution, settings.mask_controls, settings.lighting_hints,
                settings.transparent_backdrop) == ("keep", 128, True, False, "black")
    args = build_parser().parse_args(["run", "static", "--image", "x.png", "--out", "o", "--dtype", "bfloat16"])
    assert args.dtype == "bfloat16"


def test_bad_generated_flag_values_exit_2(capsys, sample_64, tmp_path):
    assert main(["run", "static", "--image", str(sample_64), "--preset", "tiny", "--pose-policy", "maybe",
                 "--out", str(tmp_path)]) == 2
    assert "pose_policy" in capsys.readouterr().err
    assert main(["run", "static", "--image", str(sample_64), "--preset", "tiny", "--out", str(tmp_path),
                 "--component-config", "base=./somewhere"]) == 2
    assert "the role of a --component given too" in capsys.readouterr().err


def test_profiles_list_and_show(capsys):
    assert main(["profiles", "list"]) == 0
    out = capsys.readouterr().out
    assert "martial-artist" in out and "strength 0.65" in out and "aliases: fighter" in out
    assert main(["profiles", "show", "fighter", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["name"] == "martial-artist"
    assert main(["profiles", "show", "nobody"]) == 2
    assert "one of armoured-knight" in capsys.readouterr().err


def test_a_profiles_strength_is_what_runs_from_python_and_the_cli(tiny_engine, small_settings, tmp_path):
    from zrealism_lab.generate.static import run_static
    from zrealism_lab.profiles import apply_profile_strength
    from zrealism_lab.settings import ControlUnit, StaticSettings

    assert apply_profile_strength(StaticSettings(profile="fighter")).strength == 0.65
    assert apply_profile_strength(StaticSettings(profile="fighter", strength=0.5)).strength == 0.5  # set: it wins
    settings = small_settings.replace(strength=StaticSettings().strength, profile="martial-artist",
                                      controls=(ControlUnit("depth", method="inflate"),))
    # A sample name, as on the CLI; the CLI's runs go through run_static, so they get the same strength.
    result = run_static("sample:transparent", settings, engine=tiny_engine, out_dir=tmp_path)
    assert result.settings.strength == 0.65 and result.record["settings"]["strength"] == 0.65
    assert result.context.source.path.endswith("transparent.png")


@pytest.mark.slow
def test_a_clip_run_records_the_frames_that_ran(tiny_engine, tmp_path):
    from PIL import Image

    from zrealism_lab.generate.temporal import run_temporal
    from zrealism_lab.settings import ControlUnit, TemporalSettings
    from zrealism_lab.source.samples import load_sample
    from zrealism_lab.source.video import write_gif

    base = load_sample("light").convert("RGB").resize((64, 64))
    write_gif([base.rotate(a, fillcolor=(255, 255, 255)) for a in (0, 5, 10)], tmp_path / "in.gif", fps=8)
    settings = TemporalSettings(frames=48, size=64, steps=2, detect_resolution=64,
                                controls=(ControlUnit("depth", method="inflate"),))
    result = run_temporal(clip=tmp_path / "in.gif", settings=settings, engine=tiny_engine, out_dir=tmp_path / "runs")
    assert len(result.frames) == 3 and result.settings.frames == 3 and result.record["settings"]["frames"] == 3
    assert any("frames=48 applies to still -> clip runs" in note for note in result.warnings)
    with Image.open(result.run_dir / "frames" / "frame_0003.png") as frame:  # every frame carries the infotext
        assert "AnimateDiff: " in frame.info["parameters"]


def test_a_single_file_checkpoint_is_a_preset(tmp_path):
    from zrealism_lab.models.modelset import resolve_modelset

    checkpoint = tmp_path / "myModel.safetensors"
    checkpoint.write_bytes(b"{}")
    models = resolve_modelset(str(checkpoint))
    assert models.base.kind == "file" and models.vae is None and "depth" in models.controlnets
