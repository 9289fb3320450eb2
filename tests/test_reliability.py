"""Bad and awkward input, class by class: each is refused with one clear message before any work (exit 2 from the
CLI, the lab's own error type from Python), and leaves nothing behind. Signals end a run within a step with a
'cancelled' record. Every class is a parametrised corpus, so a class is closed, not a case."""
from __future__ import annotations

import io
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from zrealism_lab.cli.main import main
from zrealism_lab.errors import SettingsError, ZRealismError
from zrealism_lab.settings import StaticSettings
from zrealism_lab.sweep.spec import load_spec


def _cli(argv: list[str], capsys) -> tuple[int, str]:
    code = main(argv)
    err = capsys.readouterr().err
    return code, err


def _assert_clean_refusal(code: int, err: str, *needles: str) -> None:
    assert code == 2, err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.strip() and not line.startswith("note:")]
    assert 1 <= len(lines) <= 6, err  # what was wrong, what is allowed, what to do (a line per missing part)
    for needle in needles:
        assert needle in err


# ------------------------------------------------------------------------------------------------ 1. bombs in specs

def _alias_bomb(depth: int = 9, width: int = 9) -> str:
    lines = [f"a0: &a0 [{', '.join(['lol'] * width)}]"]
    for level in range(1, depth):
        lines.append(f"a{level}: &a{level} [{', '.join([f'*a{level - 1}'] * width)}]")
    return "\n".join(lines)


SPEC_BOMBS = {
    "alias bomb under a plain key": "image: sample:dark\nname: x\nbase:\n  " + _alias_bomb().replace("\n", "\n  "),
    "alias bomb as an axis's values": "image: sample:dark\nbomb:\n  " + _alias_bomb().replace("\n", "\n  ")
                                      + "\naxes:\n  seed: *a8",
    "a 100x100x100 grid": json.dumps({"image": "sample:dark", "axes": {
        "steps": list(range(1, 101)), "cfg": [i / 10 for i in range(100)], "seed": list(range(100))}}),
    "a long seeds list times an axis": json.dumps({"image": "sample:dark", "axes": {"strength": [0.3, 0.5]},
                                                   "seeds": list(range(6000))}),
    "JSON nested 100,000 levels": "[" * 100_000 + "]" * 100_000,
}


@pytest.mark.parametrize("name", list(SPEC_BOMBS))
def test_spec_bombs_are_refused_at_once_with_nothing_written(name, tmp_path, capsys):
    suffix = ".json" if SPEC_BOMBS[name].startswith(("{", "[")) else ".yaml"
    spec = tmp_path / f"spec{suffix}"
    spec.write_text(SPEC_BOMBS[name])
    out = tmp_path / "sweep"
    start = time.perf_counter()
    code, err = _cli(["sweep", str(spec), "--out", str(out), "--quiet"], capsys)
    assert time.perf_counter() - start < 10  # refused while reading or counting, not after expanding
    _assert_clean_refusal(code, err)
    assert not out.exists()


def test_the_job_cap_names_the_count_and_can_be_raised(monkeypatch):
    spec = load_spec({"image": "sample:dark", "axes": {"strength": [0.3, 0.5, 0.7]}, "seeds": [0, 1]})
    monkeypatch.setenv("ZREALISM_MAX_SWEEP_JOBS", "5")
    with pytest.raises(SettingsError, match=r"6 jobs.*ZREALISM_MAX_SWEEP_JOBS"):
        spec.expand()
    monkeypatch.setenv("ZREALISM_MAX_SWEEP_JOBS", "6")
    assert len(spec.expand()) == 6
    monkeypatch.setenv("ZREALISM_MAX_SWEEP_JOBS", "many")
    with pytest.raises(SettingsError, match="ZREALISM_MAX_SWEEP_JOBS"):
        spec.expand()


@pytest.mark.parametrize("content", [b"image: sample:dark\nname: \xff\xfe\n", b"\x00" * 10 + b"\xc3"])
def test_a_spec_that_is_not_utf8_is_refused(tmp_path, capsys, content):
    spec = tmp_path / "spec.yaml"
    spec.write_bytes(content)
    _assert_clean_refusal(*_cli(["sweep", str(spec), "--out", str(tmp_path / "o")], capsys), "UTF-8")


# ------------------------------------------------------------------------------------------------ 2. one intake

def _pair_ssim(capsys, first: Path, second: Path) -> float:
    assert main(["metrics", str(first), str(second), "--json"]) == 0
    values = {m["name"]: m["value"] for m in json.loads(capsys.readouterr().out)["metrics"]}
    return values["ssim_luma"]


def _picture() -> np.ndarray:
    from zrealism_lab.source.samples import load_sample

    return np.asarray(load_sample("scenic").convert("RGB").resize((64, 48)))


def _sixteen_bit(path: Path, rgb: np.ndarray) -> Path:
    Image.fromarray(rgb[..., 1].astype(np.uint16) * 257).save(path)  # a 16-bit greyscale PNG
    return path


def _rotated_jpeg(path: Path, rgb: np.ndarray) -> Path:
    """The picture stored on its side with EXIF orientation 6 (rotate 90 clockwise to view), as phones save."""
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(np.rot90(rgb, 1)).save(path, quality=95, exif=exif)
    return path


@pytest.mark.parametrize("variant", ["16-bit PNG", "EXIF-rotated JPEG", "palette PNG", "grey + alpha PNG"])
def test_metrics_read_files_as_runs_do(tmp_path, capsys, variant):
    rgb = _picture()
    if variant == "16-bit PNG":
        reference = tmp_path / "grey8.png"
        Image.fromarray(rgb[..., 1]).save(reference)
        other = _sixteen_bit(tmp_path / "grey16.png", rgb)
    elif variant == "EXIF-rotated JPEG":
        reference = tmp_path / "upright.jpg"
        Image.fromarray(rgb).save(reference, quality=95)
        other = _rotated_jpeg(tmp_path / "rotated.jpg", rgb)
    elif variant == "palette PNG":
        reference = tmp_path / "rgb.png"
        Image.fromarray(rgb).save(reference)
        other = tmp_path / "palette.png"
        Image.fromarray(rgb).quantize(256, dither=Image.Dither.NONE).save(other)
    else:
        reference = tmp_path / "grey.png"
        Image.fromarray(rgb[..., 0]).save(reference)
        other = tmp_path / "grey_alpha.png"
        Image.fromarray(np.dstack([rgb[..., 0], np.full_like(rgb[..., 0], 255)])).convert("LA").save(other)
    assert _pair_ssim(capsys, reference, other) > 0.9


# ------------------------------------------------------------------------------------------------ 3. no failed folder

def _png_bytes() -> bytes:
    from zrealism_lab.source.samples import load_sample

    buffer = io.BytesIO()
    load_sample("dark").resize((64, 64)).save(buffer, "PNG")
    return buffer.getvalue()


def _bad_sources(tmp_path: Path) -> dict[str, object]:
    png = _png_bytes()
    (tmp_path / "truncated.png").write_bytes(png[: len(png) // 2])
    buffer = io.BytesIO()
    Image.open(io.BytesIO(png)).convert("RGB").save(buffer, "JPEG")
    (tmp_path / "truncated.jpg").write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 3])
    Image.new("RGB", (2, 600), (200, 20, 20)).save(tmp_path / "needle.png")
    (tmp_path / "empty.png").write_bytes(b"")
    (tmp_path / "text.png").write_text("not a picture")
    return {
        "truncated PNG": tmp_path / "truncated.png", "truncated JPEG": tmp_path / "truncated.jpg",
        "an aspect no size can keep": tmp_path / "needle.png", "an empty file": tmp_path / "empty.png",
        "text named .png": tmp_path / "text.png", "a numpy array": np.zeros((64, 64, 3), np.uint8),
        "garbage bytes": b"garbage", "a 0x0 image": Image.new("RGB", (0, 0)), "a list": [1, 2, 3],
        "a folder": tmp_path,
    }


BAD_SOURCE_NAMES = [
    "truncated PNG", "truncated JPEG", "an aspect no size can keep", "an empty file", "text named .png",
    "a numpy array", "garbage bytes", "a 0x0 image", "a list", "a folder"]


@pytest.mark.parametrize("name", BAD_SOURCE_NAMES)
@pytest.mark.parametrize("mode", ["static", "temporal"])
def test_a_bad_source_fails_before_a_run_folder_exists(tmp_path, tiny_engine, name, mode):
    from zrealism_lab.generate.static import run_static
    from zrealism_lab.generate.temporal import run_temporal
    from zrealism_lab.settings import TemporalSettings

    source = _bad_sources(tmp_path)[name]
    out = tmp_path / "runs"
    with pytest.raises(ZRealismError):
        if mode == "static":
            run_static(source, StaticSettings(size=64, steps=2, detect_resolution=64), engine=tiny_engine,
                       out_dir=out)
        else:
            run_temporal(source, TemporalSettings(size=64, frames=8, steps=2, detect_resolution=64),
                         engine=tiny_engine, out_dir=out)
    assert not out.exists() or not any(out.iterdir())


def _model_folders(tmp_path: Path, bundle: Path) -> dict[str, Path]:
    empty = tmp_path / "empty-model"
    empty.mkdir()
    truncated = tmp_path / "truncated-model"
    shutil.copytree(bundle, truncated)
    weights = next((truncated / "unet").glob("*.safetensors"))
    weights.write_bytes(weights.read_bytes()[:1000])
    no_weights = tmp_path / "no-weights"
    shutil.copytree(bundle, no_weights)
    for file in (no_weights / "vae").glob("*.safetensors"):
        file.unlink()
    return {"empty": empty, "truncated weights": truncated, "weights removed": no_weights}


@pytest.mark.parametrize("name", ["empty", "truncated weights", "weights removed"])
def test_a_broken_model_folder_fails_before_a_run_folder_exists(tmp_path, tiny_bundle, sample_64, name, capsys):
    folder = _model_folders(tmp_path, tiny_bundle)[name]
    out = tmp_path / "runs"
    code, err = _cli(["run", "static", "--image", str(sample_64), "--preset", str(folder), "--size", "64",
                      "--steps", "2", "--controls", "none", "--device", "cpu", "--out", str(out), "--quiet"], capsys)
    _assert_clean_refusal(code, err)
    assert not out.exists() or not any(out.iterdir())


# ------------------------------------------------------------------------------------------------ 4. no tracebacks

def _out_paths(tmp_path: Path) -> dict[str, Path]:
    existing_file = tmp_path / "a-file"
    existing_file.write_text("x")
    loop = tmp_path / "loop"
    loop.symlink_to(tmp_path / "loop")
    return {"an existing file": existing_file, "a path through a file": existing_file / "runs",
            "a symlink loop": loop / "runs"}


@pytest.mark.parametrize("name", ["an existing file", "a path through a file", "a symlink loop"])
@pytest.mark.parametrize("command", ["run", "sweep"])
def test_an_unusable_out_folder_is_one_clear_error(tmp_path, sample_64, capsys, name, command):
    out = _out_paths(tmp_path)[name]
    if command == "run":
        argv = ["run", "static", "--image", str(sample_64), "--preset", "tiny", "--out", str(out)]
    else:
        spec = tmp_path / "spec.json"
        spec.write_text(json.dumps({"image": str(sample_64), "base": {"size": 64, "steps": 2}}))
        argv = ["sweep", str(spec), "--out", str(out), "--quiet"]
    _assert_clean_refusal(*_cli(argv, capsys), "out")


def test_a_cache_that_is_a_file_is_one_clear_error(tmp_path, sample_64, capsys, monkeypatch):
    cache = tmp_path / "cache-file"
    cache.write_text("x")
    monkeypatch.setenv("ZREALISM_CACHE", str(cache))
    argv = ["run", "static", "--image", str(sample_64), "--preset", "tiny", "--out", str(tmp_path / "o")]
    _assert_clean_refusal(*_cli(argv, capsys), "ZREALISM_CACHE")


@pytest.mark.parametrize("flag", ["--prompt", "--negative-prompt"])
def test_a_prompt_that_is_not_utf8_is_refused(tmp_path, sample_64, capsys, flag):
    undecodable = b"photo of \xff\xfe a person".decode("utf-8", "surrogateescape")  # what argv gives for bad bytes
    argv = ["run", "static", "--image", str(sample_64), "--preset", "tiny", flag, undecodable,
            "--out", str(tmp_path / "o")]
    _assert_clean_refusal(*_cli(argv, capsys), "UTF-8")


BAD_RECORDS = {"a JSON list": b"[1, 2, 3]", "nested 100,000 levels": b"[" * 100_000 + b"]" * 100_000,
               "not UTF-8": b'{"kind": "\xff"}', "not JSON": b"{kind: static"}


@pytest.mark.parametrize("name", list(BAD_RECORDS))
def test_a_damaged_record_is_one_clear_error(tmp_path, capsys, name):
    run = tmp_path / "run"
    run.mkdir()
    (run / "record.json").write_bytes(BAD_RECORDS[name])
    _assert_clean_refusal(*_cli(["rerun", str(run)], capsys), "record")


def test_model_offload_on_a_cpu_is_refused_up_front(tmp_path, sample_64, capsys):
    out = tmp_path / "runs"
    argv = ["run", "static", "--image", str(sample_64), "--preset", "tiny", "--device", "cpu", "--offload", "model",
            "--out", str(out)]
    _assert_clean_refusal(*_cli(argv, capsys), "offload")
    assert not out.exists()


def test_settings_as_a_plain_dict_are_validated_and_anything_else_is_refused(tiny_engine, sample_64):
    from zrealism_lab.generate.static import run_static

    result = run_static(sample_64, {"size": 64, "steps": 2, "strength": 0.5, "detect_resolution": 64,
                                    "controls": "depth"}, engine=tiny_engine, evaluate=False)
    assert result.settings.size == 64 and [u.kind for u in result.context.units] == ["depth"]
    with pytest.raises(SettingsError, match="steps"):
        run_static(sample_64, {"steps": 0}, engine=tiny_engine)
    with pytest.raises(SettingsError, match="StaticSettings"):
        run_static(sample_64, [("size", 64)], engine=tiny_engine)


# ------------------------------------------------------------------------------------------------ 5. rerun checks first

@pytest.mark.parametrize("name", ["../../escape.png", "/etc/passwd", "frames/../../x.png", "a\\b.png", ""])
def test_a_record_whose_outputs_escape_its_folder_is_refused_before_rerunning(tmp_path, tiny_engine, sample_64,
                                                                               name, capsys):
    from zrealism_lab.generate.static import run_static

    runs = tmp_path / "runs"
    result = run_static(sample_64, StaticSettings(size=64, steps=2, strength=0.5, detect_resolution=64),
                        engine=tiny_engine, out_dir=runs, evaluate=False)
    record = json.loads((result.run_dir / "record.json").read_text())
    record["outputs"][name] = "0" * 64
    (result.run_dir / "record.json").write_text(json.dumps(record))
    again = tmp_path / "again"
    _assert_clean_refusal(*_cli(["rerun", str(result.run_dir), "--out", str(again), "--quiet"], capsys))
    assert not again.exists()


# ------------------------------------------------------------------------------------------------ 6. signals

def _start_run(tmp_path: Path, mode: str) -> tuple[subprocess.Popen, Path]:
    from zrealism_lab.source.samples import sample_path

    out = tmp_path / "runs"
    argv = [sys.executable, "-m", "zrealism_lab.cli", "run", mode, "--image", str(sample_path("dark")), "--preset",
            "tiny", "--device", "cpu", "--size", "128", "--steps", "150", "--strength", "1.0", "--out", str(out),
            "--quiet"]
    if mode == "temporal":
        argv += ["--frames", "16"]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not (out.exists() and any(out.iterdir())):
        if proc.poll() is not None:
            raise AssertionError(proc.communicate())
        time.sleep(0.05)
    time.sleep(0.5)  # the run folder exists only once generation starts: now it is denoising
    return proc, out


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["static", "temporal"])
@pytest.mark.parametrize("signum,code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_signal_ends_the_run_with_a_cancelled_record(tmp_path, tiny_engine, mode, signum, code):
    proc, out = _start_run(tmp_path, mode)
    proc.send_signal(signum)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == code, stderr[-2000:]
    assert "Traceback" not in stderr
    (run,) = out.iterdir()
    record = json.loads((run / "record.json").read_text())
    assert record["status"] == "cancelled"
    leftovers = [p.name for p in run.rglob("*") if p.name.endswith(".part") or p.name.startswith(".")]
    assert leftovers == []


def _wait_for_run_folder(proc: subprocess.Popen, root: Path, timeout: float = 180) -> Path:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = [p for p in root.rglob("*-static-*") if p.is_dir()] if root.exists() else []
        if found:
            time.sleep(1.0)  # made right before generation starts: now it is denoising
            return found[0]
        if proc.poll() is not None:
            raise AssertionError(proc.communicate())
        time.sleep(0.1)
    raise AssertionError("no run started")


@pytest.mark.slow
@pytest.mark.parametrize("face", ["sweep", "report"])
def test_sigterm_during_a_sweep_or_a_report_leaves_a_cancelled_record(tmp_path, tiny_engine, sample_64, face):
    out = tmp_path / "out"
    if face == "sweep":
        spec = tmp_path / "spec.json"
        spec.write_text(json.dumps({"image": str(sample_64), "preset": "tiny", "axes": {"seed": [1, 2]},
                                    "base": {"size": 128, "steps": 150, "strength": 1.0, "controls": "depth"}}))
        argv = [sys.executable, "-m", "zrealism_lab.sweep", str(spec), "--out", str(out), "--device", "cpu", "--quiet"]
    else:
        argv = [sys.executable, "-m", "zrealism_lab.cli", "report", "static", "--image", str(sample_64), "-p", "preset",
                "tiny", "-p", "size", "128", "-p", "steps", "150", "-p", "strength", "1.0", "--out", str(out),
                "--quiet"]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    run = _wait_for_run_folder(proc, out)
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 143, stderr[-2000:]
    assert json.loads((run / "record.json").read_text())["status"] == "cancelled"


# ------------------------------------------------------------------------------------------------ 7. quiet is quiet

def test_quiet_runs_print_only_the_result(tmp_path, sample_64, tiny_engine):
    done = subprocess.run([sys.executable, "-m", "zrealism_lab.cli", "run", "temporal", "--image", str(sample_64),
                           "--preset", "tiny", "--device", "cpu", "--size", "64", "--frames", "8", "--steps", "2",
                           "--out", str(tmp_path / "runs"), "--quiet"], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONWARNINGS": "default"})
    assert done.returncode == 0, done.stderr[-2000:]
    assert [line for line in done.stderr.splitlines() if line.strip() and not line.startswith("note:")] == []


def test_a_sweep_resume_removes_the_half_run_a_killed_process_left(tmp_path, tiny_engine, sample_64):
    from zrealism_lab.sweep import run_sweep
    from zrealism_lab.sweep.manifest import job_runs_dir

    spec = {"image": str(sample_64), "preset": "tiny", "base": {"size": 64, "steps": 2, "strength": 0.5,
                                                               "detect_resolution": 64, "controls": "depth"},
            "axes": {"seed": [1, 2]}}
    first = run_sweep(spec, tmp_path / "sweep", engine=tiny_engine, progress=False)
    job = first.manifest["jobs"][0]["id"]
    runs = job_runs_dir(tmp_path / "sweep", job)
    shutil.rmtree(runs)  # the job as SIGKILL mid-run leaves it: a run folder with no record, nothing finished
    (runs / "20260101-000000000-static-dead00").mkdir(parents=True)
    again = run_sweep(spec, tmp_path / "sweep", engine=tiny_engine, progress=False)
    folders = [p for p in runs.iterdir() if p.is_dir()]
    assert again.ran == 1 and len(folders) == 1 and (folders[0] / "record.json").is_file()


# ------------------------------------------------------------------------------------------------ 8. short messages

def _media(tmp_path: Path) -> dict[str, Path]:
    corrupt = tmp_path / "corrupt.mp4"
    corrupt.write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"garbage" * 64)
    zero = tmp_path / "zero.mp4"
    zero.write_bytes(b"")
    header_lies = tmp_path / "huge.png"  # a PNG header declaring a 60000x60000 screen, then garbage
    header_lies.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + (60000).to_bytes(4, "big") * 2
                            + b"\x08\x02\x00\x00\x00" + b"\x00" * 4 + b"garbage" * 20)
    return {"corrupt MP4": corrupt, "zero-byte MP4": zero, "a 60000x60000 header": header_lies}


@pytest.mark.parametrize("name", ["corrupt MP4", "zero-byte MP4", "a 60000x60000 header"])
@pytest.mark.parametrize("command", ["metrics", "run"])
def test_unreadable_clips_get_a_short_message(tmp_path, capsys, name, command):
    clip = _media(tmp_path)[name]
    if command == "metrics":
        argv = ["metrics", "--clip", str(clip)]
    else:
        argv = ["run", "temporal", "--clip", str(clip), "--preset", "tiny", "--out", str(tmp_path / "o")]
    code, err = _cli(argv, capsys)
    assert code == 2 and "Traceback" not in err
    assert len([line for line in err.splitlines() if line.strip()]) <= 3, err


def test_image_and_clip_together_is_a_short_usage_error(tmp_path, sample_64, capsys):
    with pytest.raises(SystemExit) as stop:
        main(["run", "temporal", "--image", str(sample_64), "--clip", str(sample_64), "--out", str(tmp_path)])
    err = capsys.readouterr().err
    assert stop.value.code == 2 and "not allowed with argument" in err
    assert len(err.splitlines()) <= 3
