"""Run records hold everything a run needs, interrupted runs are marked as such, and a record alone repeats a run
pixel for pixel; changed weights or a changed source are named before anything runs."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from PIL import Image

from zrealism_lab.errors import CancelledError, IntakeError
from zrealism_lab.records import missing_record_fields, read_record, verify_outputs
from zrealism_lab.generate.rerun import ChangedWeightsError, compare_outputs, rerun
from zrealism_lab.generate.static import run_static


@pytest.fixture(scope="module")
def static_run(tiny_engine, tmp_path_factory, sample_64):
    """One recorded static run from a source file the tests may move."""
    folder = tmp_path_factory.mktemp("static-run")
    source = folder / "character.png"
    shutil.copy(sample_64, source)
    from zrealism_lab.settings import StaticSettings

    settings = StaticSettings(size=64, steps=4, strength=0.5, detect_resolution=64, seed=11)
    return run_static(source, settings, engine=tiny_engine, out_dir=folder / "runs")


# ----------------------------------------------------------------- records


def test_completed_record_has_every_field_and_its_outputs_match_their_hashes(static_run):
    record = read_record(static_run.run_dir)
    assert missing_record_fields(record) == []
    assert record["hardware"]["device"] == "cpu" and record["hardware"]["dtype"] == "float32"
    assert set(record["timings"]) >= {"intake", "background", "controls", "generate", "colour", "metrics", "total"}
    assert record["background"]["kind"] == "transparent" and record["background"]["evidence"]
    assert all(len(digest) == 64 for files in record["model_hashes"].values() for digest in files.values())
    assert {"unet", "vae", "text_encoder", "controlnet:depth", "controlnet:canny"} <= set(record["model_hashes"])
    assert set(verify_outputs(static_run.run_dir).values()) == {"ok"}
    text = Image.open(static_run.run_dir / "output.png").text
    assert "Seed: 11" in text["parameters"] and json.loads(text["zrealism"])["settings"]["seed"] == 11


def test_a_changed_output_file_is_reported(static_run, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(static_run.run_dir, copy)
    Image.new("RGB", (64, 64)).save(copy / "control_depth.png")
    (copy / "control_canny.png").unlink()
    states = verify_outputs(copy)
    assert states["control_depth.png"] == "changed" and states["control_canny.png"] == "missing"
    assert states["output.png"] == "ok"


@pytest.mark.parametrize("interrupt, status", [(KeyboardInterrupt, "cancelled"), (RuntimeError, "failed")])
def test_a_run_stopped_mid_denoising_leaves_a_marked_record_and_no_partial_outputs(
        tiny_engine, small_settings, sample_64, tmp_path, interrupt, status):
    def stop_at_second_step(event):
        if event.stage == "denoise" and event.step == 2:
            raise interrupt("stopped by the test")

    with pytest.raises(interrupt):
        run_static(sample_64, small_settings.replace(steps=8), engine=tiny_engine, out_dir=tmp_path,
                   on_step=stop_at_second_step)
    (folder,) = tmp_path.iterdir()
    record = read_record(folder)
    assert record["status"] == status
    assert missing_record_fields(record) == []
    assert record["error"]["message"] == "stopped by the test"
    assert record["settings"]["steps"] == 8 and record["models"]["name"] == "tiny"
    assert sorted(p.name for p in folder.iterdir()) == ["record.json"]  # no PNG, no *.part left behind


def test_a_cancel_token_mid_run_marks_the_record_cancelled(tiny_engine, small_settings, sample_64, tmp_path):
    from zrealism_lab.progress import CancelToken

    token = CancelToken()

    def cancel_at_first_step(event):
        if event.stage == "denoise" and event.step == 1:
            token.cancel()

    with pytest.raises(CancelledError):
        run_static(sample_64, small_settings.replace(steps=8), engine=tiny_engine, out_dir=tmp_path,
                   on_step=cancel_at_first_step, cancel=token)
    (folder,) = tmp_path.iterdir()
    record = read_record(folder)
    assert record["status"] == "cancelled" and "cancelled after 1 of 4" in record["error"]["message"]
    assert record["outputs"] == {} and not list(folder.glob("*.png")) and not list(folder.glob(".*.part"))


# ----------------------------------------------------------------- static rerun


def test_static_rerun_is_pixel_identical(static_run, tiny_engine, tmp_path):
    result = rerun(static_run.run_dir, tmp_path, engine=tiny_engine)
    assert result.identical, result.summary()
    assert set(result.comparison) == set(static_run.record["outputs"])
    assert result.weight_changes == [] and result.run_dir.parent == tmp_path
    assert np.array_equal(np.asarray(Image.open(result.run_dir / "output.png")), np.asarray(static_run.image))


def test_rerun_cli_builds_the_engine_from_the_record(static_run, tmp_path, capsys):
    from zrealism_lab.cli.main import main

    assert main(["rerun", str(static_run.run_dir), "--out", str(tmp_path), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "outputs identical: 5 of 5" in out
    (new_run,) = [p for p in tmp_path.iterdir() if p.is_dir()]
    assert read_record(new_run)["settings"]["seed"] == 11


def test_a_different_run_is_not_reported_identical(static_run, tiny_engine, tmp_path):
    other = run_static(static_run.context.source.path, static_run.settings.replace(seed=12), engine=tiny_engine,
                       out_dir=tmp_path)
    states = compare_outputs(static_run.run_dir, other.run_dir)
    assert states["output.png"] == "different" and states["control_depth.png"] == "identical"


def test_a_moved_source_is_found_with_image_and_checked_by_hash(static_run, tiny_engine, tmp_path):
    source = static_run.context.source.path
    moved = tmp_path / "moved.png"
    shutil.move(source, moved)
    try:
        with pytest.raises(IntakeError, match="--image"):
            rerun(static_run.run_dir, tmp_path, engine=tiny_engine)
        assert rerun(static_run.run_dir, tmp_path, engine=tiny_engine, image=moved).identical
        other = tmp_path / "other.png"
        Image.open(moved).transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(other)
        with pytest.raises(IntakeError, match="sha256"):
            rerun(static_run.run_dir, tmp_path, engine=tiny_engine, image=other)
    finally:
        shutil.move(moved, source)


def test_an_interrupted_run_cannot_be_rerun(tiny_engine, small_settings, sample_64, tmp_path):
    from zrealism_lab.progress import CancelToken

    token = CancelToken()
    token.cancel()
    with pytest.raises(CancelledError):
        run_static(sample_64, small_settings, engine=tiny_engine, out_dir=tmp_path, cancel=token)
    (folder,) = tmp_path.iterdir()
    with pytest.raises(IntakeError, match="cancelled run"):
        rerun(folder, tmp_path / "again", engine=tiny_engine)


# ----------------------------------------------------------------- changed weights


def _perturb_safetensors(path) -> None:
    from safetensors.torch import load_file, save_file

    tensors = load_file(path)
    name = sorted(tensors)[0]
    tensors[name] = tensors[name] + 0.5
    save_file(tensors, path, metadata={"format": "pt"})


@pytest.fixture(scope="module")
def own_bundle_run(tiny_bundle, sample_64, tmp_path_factory):
    """A run on a private copy of the tiny bundle, whose VAE is then changed on disk."""
    from zrealism_lab.engine.engine import get_engine
    from zrealism_lab.settings import StaticSettings

    root = tmp_path_factory.mktemp("own-bundle")
    bundle = root / "bundle"
    shutil.copytree(tiny_bundle, bundle)
    settings = StaticSettings(size=64, steps=4, strength=0.5, detect_resolution=64, controls=())
    first = run_static(sample_64, settings, engine=get_engine(str(bundle), device="cpu"), out_dir=root / "runs")
    (weights,) = (bundle / "vae").glob("*.safetensors")
    _perturb_safetensors(weights)
    return first, weights, root


def test_changed_weights_are_named_before_running(own_bundle_run):
    first, weights, root = own_bundle_run
    with pytest.raises(ChangedWeightsError) as info:
        rerun(first.run_dir, root / "refused")
    message = str(info.value)
    assert "vae: " + weights.name in message and "allow_changed_weights" in message
    assert "unet" not in message and "text_encoder" not in message  # only the component that changed is named
    assert not (root / "refused").exists()  # refused before any run folder was made


def test_rerun_cli_refuses_changed_weights_unless_allowed(own_bundle_run, capsys):
    from zrealism_lab.cli.main import main

    first, weights, root = own_bundle_run
    assert main(["rerun", str(first.run_dir), "--out", str(root / "again"), "--quiet"]) == 2
    assert "vae: " + weights.name in capsys.readouterr().err and not (root / "again").exists()
    code = main(["rerun", str(first.run_dir), "--out", str(root / "again"), "--quiet", "--allow-changed-weights"])
    out = capsys.readouterr().out
    assert code == 1  # it ran, on the changed VAE, so the pictures differ
    assert "weights changed: vae" in out and "output.png: different" in out


# ----------------------------------------------------------------- temporal rerun


def test_temporal_rerun_repeats_every_frame(tiny_engine, sample_64, tmp_path):
    from zrealism_lab.generate.temporal import TemporalSettings, run_temporal

    settings = TemporalSettings(size=64, frames=8, steps=2, detect_resolution=64, seed=5)
    first = run_temporal(sample_64, settings, engine=tiny_engine, out_dir=tmp_path / "runs")
    assert missing_record_fields(first.record) == []
    frames = [name for name in first.record["outputs"] if name.startswith("frames/")]
    assert len(frames) == 8
    result = rerun(first.run_dir, tmp_path / "again", engine=tiny_engine)
    assert all(result.comparison[name] == "identical" for name in frames), result.summary()
    assert result.identical, result.summary()  # the MP4 and GIF encoders are deterministic too
