"""Sweeps over images and sweeps of clips: the image axis (a folder or a list of paths, checked before the sweep
starts, labelled by file name) and kind: temporal (TemporalSettings axes, run_temporal jobs, first frames on the
contact sheet, resume). Tiny preset, 64 px, few frames and steps."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from PIL import Image

from zrealism_lab.errors import IntakeError, SettingsError
from zrealism_lab.sweep import SweepSpec, read_manifest, run_sweep
from zrealism_lab.sweep.manifest import completed_run, job_runs_dir

BASE = {"size": 64, "steps": 4, "strength": 0.5, "detect_resolution": 64}
CLIP_BASE = {"size": 64, "frames": 8, "steps": 2, "detect_resolution": 64}


@pytest.fixture()
def two_images(tmp_path, sample_64):
    folder = tmp_path / "characters"
    folder.mkdir()
    shutil.copy(sample_64, folder / "first.png")
    with Image.open(sample_64) as image:
        image.convert("RGB").transpose(Image.FLIP_LEFT_RIGHT).save(folder / "second.jpg")
    (folder / ".hidden.png").write_bytes(b"skipped")
    (folder / "notes.txt").write_text("skipped")
    return folder


def test_an_image_axis_sweeps_each_image_and_labels_it_by_file_name(tmp_path, two_images, tiny_engine):
    spec = {"preset": "tiny", "base": BASE, "axes": {"image": str(two_images)}, "seeds": [0, 1]}
    result = run_sweep(spec, tmp_path / "sweep", engine=tiny_engine, progress=False)
    assert (result.ran, result.failed) == (4, 0)
    manifest = read_manifest(result.folder)
    assert manifest["source"] is None and manifest["axes"][0]["labels"] == ["first.png", "second.jpg"]
    assert [row["image"] for row in result.rows] == ["first.png", "first.png", "second.jpg", "second.jpg"]
    assert [row["seed"] for row in result.rows] == [0, 1, 0, 1]
    records = [json.loads((result.folder / row["run_dir"] / "record.json").read_text()) for row in result.rows]
    assert [r["source"]["path"].rsplit("/", 1)[-1] for r in records] == [row["image"] for row in result.rows]
    assert len({job["id"] for job in manifest["jobs"]}) == 4
    (sheet_path,) = result.contact_sheets
    with Image.open(sheet_path) as sheet:
        assert sheet.width > 2 * 128 and sheet.height > 2 * 128
    outputs = [np.asarray(Image.open(result.folder / row["output"]).convert("RGB")) for row in result.rows]
    assert not np.array_equal(outputs[0], outputs[2])  # the two images' jobs ran on their own sources

    from zrealism_lab.models.modelset import RANDOM_WEIGHTS_CAPTION
    from zrealism_lab.sweep.contact import PENDING_FILL, draw_contact_sheet

    def drawn(labels):  # the same sheet with empty cells: everything above the cells is the same as the real one's
        return np.asarray(draw_contact_sheet({}, "image", labels, "seed", [0, 1], cell=128, title="sweep of 2 images "
                                             "(tiny)", note=RANDOM_WEIGHTS_CAPTION))

    with Image.open(sheet_path) as sheet:
        real = np.asarray(sheet.convert("RGB"))
    by_name, by_path = drawn(["first.png", "second.jpg"]), drawn([str(two_images / n) for n in ("first.png",
                                                                                                 "second.jpg")])
    grid_top = np.nonzero((by_name == PENDING_FILL).all(axis=2).sum(axis=1) >= 128)[0].min()  # the cells' top
    assert real.shape == by_name.shape and (real[:grid_top] == by_name[:grid_top]).all()  # headed by file names
    assert (real[:grid_top] != by_path[:grid_top]).any()


def test_image_axis_files_are_checked_before_the_sweep_starts(tmp_path, two_images, sample_64, tiny_engine):
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40)
    with pytest.raises(IntakeError, match="broken.png"):
        run_sweep({"axes": {"image": [str(sample_64), str(broken)]}, "base": BASE}, tmp_path / "s",
                  engine=tiny_engine, progress=False)
    assert not (tmp_path / "s" / "runs").exists()
    with pytest.raises(IntakeError, match="missing.png"):
        run_sweep({"axes": {"image": [str(tmp_path / "missing.png")]}}, tmp_path / "t", engine=tiny_engine,
                  progress=False)
    with pytest.raises(SettingsError, match="not both"):
        SweepSpec.from_dict({"image": str(sample_64), "axes": {"image": [str(sample_64)]}})
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(IntakeError, match="holds no source images"):
        SweepSpec.from_dict({"axes": {"image": str(empty)}})
    relative = SweepSpec.from_dict({"axes": {"image": ["characters"]}}, relative_to=two_images.parent)
    assert [a.values for a in relative.axes] == [(str(two_images / "first.png"), str(two_images / "second.jpg"))]


def test_temporal_axes_are_temporal_settings_names():
    spec = SweepSpec.from_dict({"kind": "temporal", "image": "sample:light", "base": CLIP_BASE,
                                "axes": {"frames": [8, 12], "motion_prompt": ["waves", "blinks"]}})
    jobs = spec.expand()
    assert [(j.settings.frames, j.settings.motion_prompt) for j in jobs] == [
        (8, "waves"), (8, "blinks"), (12, "waves"), (12, "blinks")]
    assert type(jobs[0].settings).__name__ == "TemporalSettings"
    with pytest.raises(SettingsError) as still_only:
        SweepSpec.from_dict({"kind": "temporal", "image": "sample:light", "axes": {"hires_upscaler": ["x"]}}).expand()
    assert "TemporalSettings setting" in str(still_only.value) and "stills only" in str(still_only.value)
    with pytest.raises(SettingsError, match="frames"):
        SweepSpec.from_dict({"kind": "temporal", "image": "sample:light", "axes": {"frames": [8, 99]}}).expand()
    with pytest.raises(SettingsError, match="clips only"):
        SweepSpec.from_dict({"image": "sample:light", "axes": {"frames": [8]}}).expand()
    with pytest.raises(SettingsError, match="static .* or temporal"):
        SweepSpec.from_dict({"kind": "video", "image": "sample:light", "axes": {"cfg": [1.0]}})


@pytest.fixture(scope="module")
def clip_sweep(tmp_path_factory, tiny_engine, sample_64):
    folder = tmp_path_factory.mktemp("clip-sweep") / "out"
    spec = {"kind": "temporal", "image": str(sample_64), "preset": "tiny", "base": CLIP_BASE,
            "axes": {"strength": [0.5, 0.8]}}
    return {"spec": spec, "folder": folder,
            "result": run_sweep(spec, folder, engine=tiny_engine, progress=False)}


def test_a_temporal_sweep_runs_clips_and_shows_their_first_frames(clip_sweep):
    result, folder = clip_sweep["result"], clip_sweep["folder"]
    assert (result.ran, result.failed) == (2, 0) and read_manifest(folder)["run_kind"] == "temporal"
    for row in result.rows:
        record = json.loads((folder / row["run_dir"] / "record.json").read_text())
        assert record["kind"] == "temporal" and record["generation"]["frames"] == 8
        assert record["settings"]["strength"] == row["strength"]
        assert row["output"].endswith("frames/frame_0001.png") and "flicker" in row
    results = json.loads((folder / "results.json").read_text())
    assert results["counts"]["completed"] == 2 and results["metrics"]
    (sheet,) = result.contact_sheets
    assert sheet.is_file()


def test_a_temporal_sweep_resumes_skipping_finished_jobs(clip_sweep, tiny_engine):
    folder, rows = clip_sweep["folder"], clip_sweep["result"].rows
    crashed, kept = rows[0], rows[1]
    (folder / crashed["run_dir"] / "record.json").unlink()  # as if the process died mid-clip
    kept_runs = sorted(job_runs_dir(folder, kept["job"]).iterdir())
    result = run_sweep(clip_sweep["spec"], folder, engine=tiny_engine, progress=False)
    assert (result.ran, result.failed, result.skipped) == (1, 0, 1)
    assert sorted(job_runs_dir(folder, kept["job"]).iterdir()) == kept_runs
    (redone,) = job_runs_dir(folder, crashed["job"]).iterdir()  # the half run is gone, the new one finished
    assert completed_run(folder, crashed["job"]) == redone
    assert all(row["status"] == "completed" for row in result.rows)


def test_a_units_own_map_is_taken_from_the_spec_folder_and_is_part_of_each_jobs_identity(tmp_path, sample_64,
                                                                                        tiny_engine):
    from zrealism_lab.sweep import prepare_sweep

    folder = tmp_path / "spec"
    folder.mkdir()
    Image.new("RGB", (64, 64), (90, 90, 90)).save(folder / "depth.png")
    spec_file = folder / "sweep.json"
    spec_file.write_text(json.dumps({"image": str(sample_64), "preset": "tiny", "seeds": [0],
                                     "base": {**BASE, "controls": "depth=0.8@depth.png"}}))
    first = prepare_sweep(spec_file, tmp_path / "a", engine=tiny_engine)
    (unit,) = first["jobs"][0]["settings"]["controls"]
    assert unit["image"] == str(folder / "depth.png")  # relative to the spec, like its images
    Image.new("RGB", (64, 64), (200, 200, 200)).save(folder / "depth.png")  # the map edited between runs
    second = prepare_sweep(spec_file, tmp_path / "b", engine=tiny_engine)
    assert first["jobs"][0]["id"] != second["jobs"][0]["id"]  # so a resume runs it again
