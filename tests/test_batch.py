"""Batches and folders of images: N runs at counted-up seeds with a grid and batch.json, a stopped batch keeping
what finished, `zrealism run static|temporal --batch-count`, and `zrealism run static --image FOLDER` with its
summary table (tiny preset, 64 px, few steps)."""
from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from zrealism_lab.cli.main import main
from zrealism_lab.errors import CancelledError
from zrealism_lab.generate.batch import BATCH_NAME, GRID_NAME, SUMMARY_CSV, run_static_batch
from zrealism_lab.generate.static import run_static
from zrealism_lab.progress import CancelToken

TINY = ["--preset", "tiny", "--device", "cpu", "--size", "64", "--steps", "2", "--detect-resolution", "64", "--quiet"]


def _folders(out: Path, kind: str) -> list[Path]:
    return sorted(p for p in out.iterdir() if p.is_dir() and f"-{kind}-" in p.name)


def _pixels(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


def test_a_batch_counts_seeds_up_and_each_run_is_the_single_run_at_its_seed(tiny_engine, sample_64, small_settings,
                                                                          tmp_path):
    batch = run_static_batch(sample_64, small_settings.replace(seed=5), count=3, engine=tiny_engine, out_dir=tmp_path)
    assert batch.status == "completed" and batch.seeds == [5, 6, 7] and not batch.random_seed
    runs = _folders(tmp_path, "static")
    assert runs == batch.run_dirs and len(runs) == 3
    records = [json.loads((run / "record.json").read_text()) for run in runs]
    assert [r["seed"] for r in records] == [5, 6, 7]
    assert [(r["batch"]["index"], r["batch"]["count"]) for r in records] == [(1, 3), (2, 3), (3, 3)]
    assert len({r["batch"]["id"] for r in records}) == 1 and all(r["status"] == "completed" for r in records)

    (folder,) = _folders(tmp_path, "batch")
    assert folder == batch.folder
    summary = json.loads((folder / BATCH_NAME).read_text())
    assert summary["status"] == "completed" and summary["seeds"] == [5, 6, 7]
    assert [run["run_dir"] for run in summary["runs"]] == [run.name for run in runs]
    assert "ssim_luma" in summary["runs"][0]["metrics"]
    width, height = batch.results[0].image.size
    grid = _pixels(folder / GRID_NAME)
    assert grid.shape == (2 * height, 2 * width, 3)  # 3 outputs on a 2 x 2 grid, the fourth cell blank
    assert (grid[height:, width:] == 255).all()

    for number, (seed, run) in enumerate(zip(batch.seeds, runs)):
        single = run_static(sample_64, small_settings.replace(seed=seed), engine=tiny_engine, evaluate=False)
        assert np.array_equal(np.asarray(single.image), _pixels(run / "output.png"))
        y, x = divmod(number, 2)
        assert np.array_equal(grid[y * height:(y + 1) * height, x * width:(x + 1) * width], np.asarray(single.image))


def test_a_cancelled_run_stops_the_batch_and_the_finished_runs_stay(tiny_engine, sample_64, small_settings,
                                                                    tmp_path):
    token, finished = CancelToken(), []

    def cancel_in_second_run(event):
        if finished and event.stage == "denoise":
            token.cancel()

    with pytest.raises(CancelledError) as info:
        run_static_batch(sample_64, small_settings.replace(seed=1), count=3, engine=tiny_engine, out_dir=tmp_path,
                         on_step=cancel_in_second_run, cancel=token, evaluate=False,
                         on_run=lambda number, count, result: finished.append(number))
    batch = info.value.batch
    assert finished == [1] and batch.status == "cancelled" and len(batch.results) == 1
    assert "run 2 of 3 (seed 2)" in batch.error and "1 finished run(s) kept" in batch.error
    first, stopped = _folders(tmp_path, "static")  # no third run was started
    assert json.loads((first / "record.json").read_text())["status"] == "completed"
    record = json.loads((stopped / "record.json").read_text())
    assert record["status"] == "cancelled" and record["batch"]["index"] == 2
    assert not (stopped / "output.png").exists()  # a stopped run keeps no half-written output
    summary = json.loads((batch.folder / BATCH_NAME).read_text())
    assert summary["status"] == "cancelled" and [r["status"] for r in summary["runs"]] == ["completed", "cancelled"]
    assert (batch.folder / GRID_NAME).is_file()  # the grid of what finished


def test_cli_batch_count_with_a_random_seed(tmp_path, sample_64, tiny_engine, capsys):
    out = tmp_path / "out"
    assert main(["run", "static", "--image", str(sample_64), *TINY, "--seed", "-1", "--batch-count", "2",
                 "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    seeds = [json.loads((run / "record.json").read_text())["seed"] for run in _folders(out, "static")]
    assert len(seeds) == 2 and seeds[1] == seeds[0] + 1  # one drawn seed, counted up
    (folder,) = _folders(out, "batch")
    assert f"batch folder: {folder}" in printed and "(drawn)" in printed and "run 2 of 2" in printed
    assert json.loads((folder / BATCH_NAME).read_text())["random_seed"] is True

    for mode, source in (("static", ["--image", str(sample_64)]), ("temporal", ["--image", str(sample_64)])):
        assert main(["run", mode, *source, *TINY, "--batch-count", "0", "--out", str(tmp_path / "bad")]) == 2
        assert "batch_count" in capsys.readouterr().err and not (tmp_path / "bad").exists()
    assert main(["run", "static", "--image", str(sample_64), *TINY, "--seed", str(2**32 - 2), "--batch-count", "3",
                 "--out", str(tmp_path / "bad")]) == 2
    assert "at most 2 with seed" in capsys.readouterr().err


def test_cli_temporal_batch_of_two_short_clips(tmp_path, sample_64, tiny_engine, capsys):
    out = tmp_path / "clips"
    assert main(["run", "temporal", "--image", str(sample_64), *TINY, "--frames", "8", "--seed", "4",
                 "--batch-count", "2", "--out", str(out)]) == 0
    runs = _folders(out, "temporal")
    records = [json.loads((run / "record.json").read_text()) for run in runs]
    assert [(r["kind"], r["seed"], r["batch"]["index"]) for r in records] == [("temporal", 4, 1), ("temporal", 5, 2)]
    assert all(r["status"] == "completed" and r["generation"]["frames"] == 8 for r in records)
    (folder,) = _folders(out, "batch")
    grid = _pixels(folder / GRID_NAME)
    first = [_pixels(run / "frames" / "frame_0001.png") for run in runs]
    height, width, _ = first[0].shape
    assert grid.shape == (height, 2 * width, 3)  # each clip's first frame, side by side
    assert np.array_equal(grid[:, :width], first[0]) and np.array_equal(grid[:, width:], first[1])
    assert json.loads((folder / BATCH_NAME).read_text())["run_kind"] == "temporal"


def test_a_folder_of_images_runs_each_and_reports_the_broken_one(tmp_path, sample_64, tiny_engine, capsys):
    images = tmp_path / "images"
    images.mkdir()
    shutil.copy(sample_64, images / "a.png")
    with Image.open(sample_64) as image:
        image.convert("RGB").transpose(Image.FLIP_LEFT_RIGHT).save(images / "c.jpg")
    (images / "b.png").write_bytes(b"not an image at all")  # unreadable: this image's failure only
    shutil.copy(sample_64, images / ".hidden.png")
    (images / "notes.txt").write_text("skipped")
    out = tmp_path / "out"
    code = main(["run", "static", "--image", str(images), *TINY, "--seed", "9", "--out", str(out)])
    captured = capsys.readouterr()
    assert code == 1  # documented: some image failed, the summary says which
    assert "b.png" in captured.err and "1 of 3 images failed" in captured.err
    runs = _folders(out, "static")
    assert len(runs) == 2 and not _folders(out, "batch")  # one run each; a batch of one makes no grid
    sources = [Path(json.loads((run / "record.json").read_text())["source"]["path"]).name for run in runs]
    assert sources == ["a.png", "c.jpg"]
    (summary_dir,) = _folders(out, "images")
    with open(summary_dir / SUMMARY_CSV, newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [(r["image"], r["status"]) for r in rows] == [("a.png", "completed"), ("b.png", "failed"),
                                                         ("c.jpg", "completed")]
    assert rows[0]["run_dir"] == runs[0].name and rows[0]["seed"] == "9" and float(rows[0]["seconds"]) > 0
    assert float(rows[0]["ssim_luma"]) <= 1.0 and "not recognised" in rows[1]["error"]
    assert "| a.png |" in captured.out and (summary_dir / "summary.md").read_text().startswith("| image |")


def test_an_empty_folder_is_refused_before_any_model_loads(tmp_path, sample_64, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    shutil.copy(sample_64, empty / ".hidden.png")
    (empty / "readme.txt").write_text("no images here")
    # realistic-vision is not on this machine: loading it would fail with a different error
    code = main(["run", "static", "--image", str(empty), "--preset", "realistic-vision", "--out",
                 str(tmp_path / "out")])
    assert code == 2
    err = capsys.readouterr().err
    assert "holds no source images" in err and "png, jpg, jpeg, webp" in err
    assert not (tmp_path / "out").exists()
