"""Sweeps: spec expansion and validation, the manifest, running with failures, resume, contact sheets, the lab's
small sweep, the CLI and the report notebook (tiny preset, 64 px, 2 denoising steps)."""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from PIL import Image

from zrealism_lab.errors import SettingsError
from zrealism_lab.settings import ControlUnit, StaticSettings
from zrealism_lab.sweep import SweepSpec, load_spec, prepare_sweep, read_manifest, run_small_sweep, run_sweep
from zrealism_lab.sweep.contact import FAILED_FILL
from zrealism_lab.sweep.manifest import completed_run, job_runs_dir, read_job_state

BASE = {"size": 64, "steps": 4, "strength": 0.5, "detect_resolution": 64}


def _control_kinds(engine) -> tuple[str, object]:
    """(a kind whose default detector needs no files, a controls value whose detector needs checkpoint files). No
    test machine has those files, so the second value's jobs fail at detection, like a real sweep whose annotator
    weights are missing. Where every kind's default runs offline (MediaPipe pose), the failing value names a
    weight-needing method explicitly."""
    from zrealism_lab.control import CONTROL_PROVIDERS

    if os.environ.get("ZREALISM_ANNOTATOR_DIR"):
        pytest.skip("annotator checkpoints are configured, so no job fails for lack of them")
    kinds = list(engine.models.controlnets)

    def needs_weights(kind: str) -> bool:  # the detector this model set uses for a unit that names no method
        return CONTROL_PROVIDERS.get(kind).needs_weights(engine.models.control_method(kind, None))

    working = [k for k in kinds if not needs_weights(k)]
    failing: list[object] = [k for k in kinds if needs_weights(k)]
    failing += [[{"kind": k, "method": name}] for k in kinds for name, method in CONTROL_PROVIDERS.get(k).methods.items()
                if method.needs_weights]
    if not working or not failing:
        pytest.skip("no pair of weightless and weight-needing control detectors in this model set")
    return working[0], failing[0]


# ----------------------------------------------------------------------------------------- expansion
def test_axes_expand_to_the_cartesian_product_in_axis_order():
    spec = SweepSpec.from_dict({"image": "sample:light", "base": BASE,
                                "axes": {"strength": [0.4, 0.6, 0.8], "cfg": [1.0, 7.5]}})
    jobs = spec.expand()
    assert len(jobs) == 6
    assert [(j.settings.strength, j.settings.cfg) for j in jobs] == [
        (0.4, 1.0), (0.4, 7.5), (0.6, 1.0), (0.6, 7.5), (0.8, 1.0), (0.8, 7.5)]
    assert [j.position for j in jobs] == [(0, 0), (0, 1), (1, 0), (1, 1), (2, 0), (2, 1)]
    assert jobs[3].coords == {"strength": 0.6, "cfg": 7.5}
    assert all(j.settings.size == 64 and j.settings.steps == 4 for j in jobs)  # base settings carried over


def test_per_unit_axes_change_only_their_unit():
    spec = SweepSpec.from_dict({"image": "sample:light",
                                "base": {**BASE, "controls": [{"kind": "depth", "scale": 0.8}, "canny"]},
                                "axes": {"controls.depth.scale": [0.5, 1.0], "controls.canny.end": [0.5, 0.9]}})
    jobs = spec.expand()
    assert len(jobs) == 4
    units = [{u.kind: u for u in job.settings.controls} for job in jobs]
    assert [(u["depth"].scale, u["canny"].end) for u in units] == [(0.5, 0.5), (0.5, 0.9), (1.0, 0.5), (1.0, 0.9)]
    assert all(u["canny"].scale == 1.0 and u["depth"].end == 1.0 for u in units)  # the other fields untouched
    assert [u.kind for u in jobs[0].settings.controls] == ["depth", "canny"]  # unit order kept


def test_per_unit_axis_uses_the_model_sets_units_when_the_base_names_none(tiny_engine):
    defaults = tiny_engine.models.default_controls
    kind = defaults[0].kind
    spec = SweepSpec.from_dict({"image": "sample:light", "base": BASE, "axes": {f"controls.{kind}.scale": [0.25]}})
    (job,) = spec.expand(defaults)
    assert [u.kind for u in job.settings.controls] == [u.kind for u in defaults]
    assert job.settings.controls[0].scale == 0.25
    assert job.settings.controls[1:] == defaults[1:]


def test_seeds_become_the_last_axis_and_controls_can_be_an_axis():
    spec = SweepSpec.from_dict({"image": "sample:light", "base": BASE,
                                "axes": {"controls": ["depth", "depth=0.5,canny"]}, "seeds": [1, 2, 3]})
    assert [a.name for a in spec.axes] == ["controls", "seed"]
    jobs = spec.expand()
    assert len(jobs) == 6
    assert [j.settings.seed for j in jobs[:3]] == [1, 2, 3]
    assert [u.kind for u in jobs[0].settings.controls] == ["depth"]
    assert [(u.kind, u.scale) for u in jobs[3].settings.controls] == [("depth", 0.5), ("canny", 1.0)]


def test_spec_files_in_yaml_or_json_resolve_images_beside_them(tmp_path, sample_64):
    shutil.copy(sample_64, tmp_path / "me.png")
    (tmp_path / "spec.yaml").write_text("image: me.png\npreset: tiny\nbase: {size: 64}\n"
                                        "axes:\n  strength: [0.5, 0.7]\n")
    (tmp_path / "spec.json").write_text(json.dumps({"image": "me.png", "axes": {"cfg": [2, 4]}, "seeds": [0]}))
    yaml_spec, json_spec = load_spec(tmp_path / "spec.yaml"), load_spec(tmp_path / "spec.json")
    assert Path(yaml_spec.image) == tmp_path / "me.png" and Path(json_spec.image) == tmp_path / "me.png"
    assert [a.values for a in yaml_spec.axes] == [(0.5, 0.7)]
    assert [a.name for a in json_spec.axes] == ["cfg", "seed"]


# ----------------------------------------------------------------------------------------- validation
def test_a_bad_axis_value_raises_the_single_runs_error_naming_the_setting():
    with pytest.raises(SettingsError) as single:
        StaticSettings(strength=1.5).validated()
    with pytest.raises(SettingsError) as swept:
        SweepSpec.from_dict({"image": "sample:light", "axes": {"strength": [0.5, 1.5]}}).expand()
    assert swept.value.name == "strength" and str(swept.value) == str(single.value)

    with pytest.raises(SettingsError) as unit:
        SweepSpec.from_dict({"image": "sample:light", "base": {"controls": "depth"},
                             "axes": {"controls.depth.scale": [0.5, 3.0]}}).expand()
    assert unit.value.name == "controls.depth.scale" and unit.value.value == 3.0
    assert "from 0 to 2" in str(unit.value)

    with pytest.raises(SettingsError) as scheduler:
        SweepSpec.from_dict({"image": "sample:light", "axes": {"scheduler": ["euler", "no-such-sampler"]}}).expand()
    assert scheduler.value.name == "scheduler" and "no-such-sampler" in str(scheduler.value)

    with pytest.raises(SettingsError) as base:
        SweepSpec.from_dict({"image": "sample:light", "base": {"steps": 0}, "axes": {"cfg": [1.0]}}).expand()
    assert base.value.name == "steps"


def test_unknown_axes_and_kinds_missing_from_the_base_are_clear_errors():
    with pytest.raises(SettingsError) as unknown:
        SweepSpec.from_dict({"image": "sample:light", "axes": {"strenght": [0.5]}}).expand()
    assert "strenght" in str(unknown.value) and "strength" in str(unknown.value)

    with pytest.raises(SettingsError) as kind:
        SweepSpec.from_dict({"image": "sample:light", "base": {"controls": "depth"},
                             "axes": {"controls.openpose.scale": [0.5]}}).expand()
    assert "controls.openpose.scale" in str(kind.value) and "base controls: depth" in str(kind.value)

    with pytest.raises(SettingsError, match="controls.KIND.FIELD"):
        SweepSpec.from_dict({"image": "sample:light", "base": {"controls": "depth"},
                             "axes": {"controls.depth.weight": [0.5]}}).expand()
    with pytest.raises(SettingsError, match="not both"):
        SweepSpec.from_dict({"image": "sample:light", "axes": {"seed": [1]}, "seeds": [2]})
    with pytest.raises(SettingsError, match="distinct"):
        SweepSpec.from_dict({"image": "sample:light", "axes": {"cfg": [2.0, 2.0]}})
    with pytest.raises(SettingsError, match="sweep spec keys"):
        SweepSpec.from_dict({"image": "sample:light", "axis": {"cfg": [2.0]}})


def test_the_manifest_is_written_before_anything_runs_with_stable_job_ids(tmp_path, tiny_engine, sample_64):
    spec = {"image": str(sample_64), "preset": "tiny", "base": {**BASE, "controls": "depth"},
            "axes": {"strength": [0.5, 0.7], "controls.depth.scale": [0.5, 1.0]}}
    manifest = prepare_sweep(spec, tmp_path / "a", engine=tiny_engine)
    on_disk = read_manifest(tmp_path / "a")
    assert [j["id"] for j in on_disk["jobs"]] == [j["id"] for j in manifest["jobs"]]
    assert not (tmp_path / "a" / "runs").exists()
    ids = [j["id"] for j in manifest["jobs"]]
    assert len(set(ids)) == 4
    job = on_disk["jobs"][3]
    assert job["coords"] == {"strength": 0.7, "controls.depth.scale": 1.0}
    assert job["settings"]["controls"][0]["scale"] == 1.0 and job["settings"]["strength"] == 0.7
    assert job["seed"] == 0 and on_disk["source"]["sha256"] and on_disk["models"]["name"] == "tiny"
    assert {"unet", "vae", "text_encoder", "controlnet:depth"} <= set(on_disk["model_hashes"])

    again = prepare_sweep(spec, tmp_path / "b", engine=tiny_engine)
    assert [j["id"] for j in again["jobs"]] == ids  # same spec, same ids: what resume relies on
    reseeded = prepare_sweep({**spec, "base": {**spec["base"], "seed": 7}}, tmp_path / "c", engine=tiny_engine)
    assert not set(j["id"] for j in reseeded["jobs"]) & set(ids)


def test_problems_a_single_run_meets_late_are_found_before_any_job_runs(tmp_path, tiny_engine, sample_64):
    spec = {"image": str(sample_64), "base": {**BASE, "controls": "depth"},
            "axes": {"controls.depth.method": ["inflate", "no-such-method"]}}
    with pytest.raises(SettingsError, match="no-such-method"):
        run_sweep(spec, tmp_path / "s", engine=tiny_engine, progress=False)
    assert not (tmp_path / "s" / "runs").exists()
    with pytest.raises(Exception, match="missing.png"):
        run_sweep({**spec, "image": str(tmp_path / "missing.png"), "axes": {"cfg": [1.0]}}, tmp_path / "t",
                  engine=tiny_engine, progress=False)


# ----------------------------------------------------------------------------------------- running
@pytest.fixture(scope="module")
def sweep_run(tmp_path_factory, tiny_engine, sample_64):
    """4 jobs: strength x controls, where the second controls value's jobs fail (missing detector weights)."""
    folder = tmp_path_factory.mktemp("sweep") / "out"
    working, failing = _control_kinds(tiny_engine)
    spec = {"image": str(sample_64), "preset": "tiny", "base": {**BASE, "pose_policy": "keep"},
            "axes": {"strength": [0.4, 0.6], "controls": [working, failing]}}
    seen = []
    result = run_sweep(spec, folder, engine=tiny_engine, progress=False,
                       on_job=lambda done, total, state: seen.append((done, total, state["status"])))
    label = failing if isinstance(failing, str) else failing[0]["kind"]  # how rows and sheets name the value
    return {"spec": spec, "folder": folder, "result": result, "seen": seen, "failing": label}


def test_a_failed_job_is_recorded_and_the_sweep_goes_on(sweep_run):
    result, folder = sweep_run["result"], sweep_run["folder"]
    assert (result.ran, result.failed, result.skipped) == (4, 2, 0)
    assert [s[:2] for s in sweep_run["seen"]] == [(1, 4), (2, 4), (3, 4), (4, 4)]
    assert [s[2] for s in sweep_run["seen"]] == ["completed", "failed", "completed", "failed"]
    rows = result.rows
    assert [r["status"] for r in rows] == ["completed", "failed", "completed", "failed"]
    failed = rows[1]
    assert failed["controls"] == sweep_run["failing"] and failed["strength"] == 0.4
    assert "needs" in failed["error"] and failed["output"] is None
    state = read_job_state(folder, failed["job"])
    assert state["status"] == "failed" and state["error"]["type"] == "MissingWeightsError"
    # Missing weights are found before a run starts generating, so the failure is the job's alone: no run folder
    assert failed["run_dir"] is None and not list(job_runs_dir(folder, failed["job"]).glob("*/record.json"))


def test_each_job_has_its_own_run_record_and_a_row_with_metrics(sweep_run):
    folder, rows = sweep_run["folder"], sweep_run["result"].rows
    manifest = read_manifest(folder)
    for row, job in zip(rows[::2], manifest["jobs"][::2]):
        run = completed_run(folder, job["id"])
        assert run is not None and run.parent == job_runs_dir(folder, job["id"])
        record = json.loads((run / "record.json").read_text())
        assert record["settings"] == job["settings"]
        assert row["run_dir"] == run.relative_to(folder).as_posix()
        assert 0.0 <= row["edge_f1"] <= 1.0 and row["ssim_luma"] <= 1.0
    results = json.loads((folder / "results.json").read_text())
    assert results["counts"] == {"completed": 2, "failed": 2, "pending": 0}
    assert results["runs"][rows[0]["job"]] == rows[0]["run_dir"]
    best = {b["metric"]: b for b in results["best"]}
    pair = [r for r in rows if r["status"] == "completed"]
    assert best["ssim_luma"]["value"] == max(r["ssim_luma"] for r in pair)  # higher is better
    assert best["delta_e2000_mean"]["value"] == min(r["delta_e2000_mean"] for r in pair)  # lower is better


def test_the_contact_sheet_is_a_labelled_grid_with_failed_cells(sweep_run):
    folder = sweep_run["folder"]
    (path,) = sweep_run["result"].contact_sheets
    assert path == folder / "contact_sheet.png"
    with Image.open(path) as sheet:
        sheet = sheet.convert("RGB")
    assert sheet.width > 2 * 128 and sheet.height > 2 * 128
    colours = {colour for _, colour in sheet.getcolors(maxcolors=1 << 20)}
    assert FAILED_FILL in colours  # the failed jobs' cells


def test_axes_beyond_the_second_make_pages(tmp_path):
    import itertools

    from zrealism_lab.sweep.contact import sheets_from_rows, write_contact_sheets

    axes = [{"name": "strength", "values": [0.4, 0.6]}, {"name": "cfg", "values": [1.0]},
            {"name": "seed", "values": [1, 2, 3]}]
    rows, images, positions = [], {}, {}
    for number, position in enumerate(itertools.product(range(2), range(1), range(3))):
        rows.append({"job": str(number), "status": "completed"})
        images[str(number)] = Image.new("RGB", (8, 8), (0, 0, 200 + position[2]))
        positions[str(number)] = position
    pages = sheets_from_rows(axes, rows, images, positions=positions, cell=32)
    assert [label for label, _ in pages] == ["seed = 1", "seed = 2", "seed = 3"]
    for page, (_, sheet) in enumerate(pages):
        colours = dict((colour, count) for count, colour in sheet.getcolors(maxcolors=1 << 16))
        assert colours.get((0, 0, 200 + page)) == 2 * 32 * 32  # this page's two cells, and only them
    paths = write_contact_sheets(tmp_path, pages)
    assert [p.name for p in paths] == ["contact_sheet_z1.png", "contact_sheet_z2.png", "contact_sheet_z3.png"]


def test_contact_sheet_cells_sit_under_their_labels():
    import numpy as np

    from zrealism_lab.sweep.contact import BACKGROUND, draw_contact_sheet

    red = Image.new("RGB", (64, 64), (255, 0, 0))
    sheet = draw_contact_sheet({(1, 0): red, (0, 1): "failed: boom"}, "strength", [0.4, 0.6], "cfg", [1.0, 7.5],
                               title="t", cell=100)
    pixels = np.asarray(sheet)
    ys, xs = np.nonzero((pixels == (255, 0, 0)).all(axis=2))
    assert xs.size == 100 * 100  # scaled to the cell
    assert xs.min() > sheet.width / 2 and ys.max() < sheet.height / 2 + 60  # right column, top row
    ys_f, xs_f = np.nonzero((pixels == FAILED_FILL).all(axis=2))
    assert xs_f.max() < xs.min() and ys_f.min() > ys.max()  # left column, bottom row
    header = pixels[: ys.min(), xs.min(): xs.max()]
    assert (header != BACKGROUND).any(axis=2).sum() > 50  # the X value label is drawn above its column
    row_label = pixels[ys_f.min(): ys_f.max(), : xs_f.min()]
    assert (row_label != BACKGROUND).any(axis=2).sum() > 50  # the Y axis name and value left of the row


def test_a_rerun_runs_only_the_job_whose_run_never_finished(sweep_run, tiny_engine):
    folder, rows = sweep_run["folder"], sweep_run["result"].rows
    crashed, kept = rows[0], rows[2]
    (folder / crashed["run_dir"] / "record.json").unlink()  # as if the process died mid-job
    kept_runs = sorted(job_runs_dir(folder, kept["job"]).iterdir())
    result = run_sweep(sweep_run["spec"], folder, engine=tiny_engine, progress=False, retry_failed=False)
    assert (result.ran, result.failed, result.skipped) == (1, 0, 3)
    assert sorted(job_runs_dir(folder, kept["job"]).iterdir()) == kept_runs
    runs = sorted(job_runs_dir(folder, crashed["job"]).iterdir())
    # the half run (no record) is removed, not left beside the new one
    assert len(runs) == 1 and completed_run(folder, crashed["job"]) == runs[0] != folder / crashed["run_dir"]
    assert [r["status"] for r in result.rows] == ["completed", "failed", "completed", "failed"]


def test_a_rerun_tries_failed_jobs_again_by_default(sweep_run, tiny_engine):
    result = run_sweep(sweep_run["spec"], sweep_run["folder"], engine=tiny_engine, progress=False)
    assert (result.ran, result.failed, result.skipped) == (2, 2, 2)


# ----------------------------------------------------------------------------------------- faces
def test_run_small_sweep_returns_a_sheet_and_rows_in_memory(tiny_engine, sample_64):
    calls = []
    base = StaticSettings(**BASE, controls=(ControlUnit("depth", method="inflate"),))
    small = run_small_sweep(sample_64, base, {"controls.depth.scale": [0.5, 1.5]}, tiny_engine,
                            lambda done, total, row: calls.append((done, total, row["status"])))
    assert calls == [(1, 2, "completed"), (2, 2, "completed")]
    assert isinstance(small.sheet, Image.Image) and small.sheet.width > 2 * 112
    assert [row["controls.depth.scale"] for row in small.rows] == [0.5, 1.5]
    assert all(row["job"] in small.images for row in small.rows) and small.folder is None
    assert {b["metric"] for b in small.best} >= {"ssim_luma", "edge_f1"}
    with pytest.raises(SettingsError, match="at most 1 jobs"):
        run_small_sweep(sample_64, base, {"strength": [0.3, 0.5]}, tiny_engine, max_jobs=1)


def test_the_cli_validates_and_writes_the_manifest_on_a_dry_run(tmp_path, sample_64, capsys):
    from zrealism_lab.cli.main import main

    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps({"image": str(sample_64), "preset": "tiny", "base": BASE,
                                "axes": {"strength": [0.5, 0.7], "cfg": [1.0, 2.0, 3.0]}}))
    assert main(["sweep", str(spec), "--out", str(tmp_path / "out"), "--dry-run"]) == 0
    assert "6 jobs" in capsys.readouterr().out
    assert len(read_manifest(tmp_path / "out")["jobs"]) == 6 and not (tmp_path / "out" / "runs").exists()
    spec.write_text(json.dumps({"image": str(sample_64), "axes": {"cfg": [1.0, 99.0]}}))
    assert main(["sweep", str(spec), "--out", str(tmp_path / "bad")]) == 2
    assert "setting 'cfg' = 99.0" in capsys.readouterr().err


def test_the_report_notebook_executes_on_the_sweep_folder(sweep_run):
    from zrealism_lab.sweep import run_sweep_report

    report = run_sweep_report(sweep_run["folder"], progress=False)
    assert report.html.parent == sweep_run["folder"] and report.notebook.is_file()
    page = report.html.read_text()
    assert page.count("data:image/png;base64") >= 2  # the contact sheet and the metric plots, embedded
    assert "Best job per metric" in page and "2 failed job(s)" in page
    assert "needs" in page  # a failed job's message is listed
