"""Scale-out: `accelerate launch -m zrealism_lab.sweep` with two CPU processes runs every job exactly once, and the
main process gathers one results.json, one contact sheet and one report.

On a machine without CUDA, accelerate's `--multi_gpu` launcher (torchrun) starts the processes and the sweep's
PartialState picks the gloo backend; `--cpu` alone starts a single process unless MPI is set up."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def launched(tmp_path_factory, tiny_bundle, sample_64):
    """4 jobs (64 px, 2 denoising steps) over 2 CPU processes, with the report; the tiny bundle is already built in
    the session cache (ZREALISM_CACHE, passed through), so the processes only load it."""
    root = tmp_path_factory.mktemp("accelerate")
    spec = root / "spec.json"
    spec.write_text(json.dumps({"image": str(sample_64), "preset": "tiny",
                                "base": {"size": 64, "steps": 4, "strength": 0.5, "detect_resolution": 64},
                                "axes": {"strength": [0.5, 0.75], "cfg": [1.0, 7.5]}}))
    out = root / "sweep"
    env = {**os.environ, "MASTER_ADDR": "127.0.0.1", "OMP_NUM_THREADS": "1", "MPLBACKEND": "Agg"}
    command = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
               "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
               "--main_process_ip", "127.0.0.1", "--main_process_port", str(_free_port()),
               "-m", "zrealism_lab.sweep", str(spec), "--out", str(out), "--device", "cpu", "--quiet", "--report"]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300, cwd=root)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return {"out": out, "stdout": done.stdout}


def test_two_processes_run_every_job_exactly_once(launched):
    out = launched["out"]
    manifest = json.loads((out / "manifest.json").read_text())
    ids = [job["id"] for job in manifest["jobs"]]
    assert len(ids) == 4
    states = {ident: json.loads((out / "jobs" / f"{ident}.json").read_text()) for ident in ids}
    assert {s["status"] for s in states.values()} == {"completed"}
    assert sorted(s["process"] for s in states.values()) == [0, 0, 1, 1]  # split between the two processes
    for ident in ids:
        runs = list((out / "runs" / ident).iterdir())
        assert len(runs) == 1  # exactly once
        assert json.loads((runs[0] / "record.json").read_text())["status"] == "completed"
    assert sorted(p.name for p in (out / "runs").iterdir()) == sorted(ids)  # and nothing else


def test_the_main_process_gathers_one_result_and_one_report(launched):
    out = launched["out"]
    results = json.loads((out / "results.json").read_text())
    assert results["counts"] == {"completed": 4, "failed": 0, "pending": 0}
    assert len(results["runs"]) == 4 and all(row["edge_f1"] is not None for row in results["rows"])
    assert [p.name for p in out.glob("contact_sheet*.png")] == ["contact_sheet.png"]
    assert launched["stdout"].count("sweep folder:") == 1  # only the main process reports
    assert "on 2 processes" in launched["stdout"]
    pages = list(out.glob("sweep-report-*.html"))
    assert len(pages) == 1 and "data:image/png;base64" in pages[0].read_text()


def test_a_rerun_on_one_process_finds_everything_finished(launched, tiny_engine):
    from zrealism_lab.sweep import run_sweep

    out: Path = launched["out"]
    spec = json.loads((out / "manifest.json").read_text())["spec"]
    result = run_sweep(spec, out, engine=tiny_engine, progress=False)
    assert (result.ran, result.skipped) == (0, 4)
