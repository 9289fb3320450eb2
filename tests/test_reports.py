"""Report notebooks executed by papermill on a real kernel (tiny preset, 64 px), their self-contained HTML, and the
teaching walkthrough. Each notebook runs once per module: a kernel start with imports costs several seconds."""
from __future__ import annotations

import contextlib
import io
import json
import re

import nbformat
import pytest

from zrealism_lab.errors import SettingsError
from zrealism_lab.reports.execute import ReportError, offline_html, parse_value, run_report

pytestmark = pytest.mark.slow


def _no_network_resources(html: str) -> None:
    assert not re.search(r"<script\b[^>]*\bsrc\s*=\s*['\"]?https?://", html, re.IGNORECASE)
    assert not re.search(r"<link\b[^>]*\bhref\s*=\s*['\"]?https?://", html, re.IGNORECASE)
    assert not re.search(r"import\s*\(?\s*['\"]https?://", html)
    for script in re.findall(r"<script\b[^>]*>.*?</script>", html, re.IGNORECASE | re.DOTALL):
        assert not re.search(r"https?://", script), script[:200]


@pytest.fixture(scope="module")
def static_report(tmp_path_factory, sample_64, tiny_engine):
    """The static report through the CLI, as a user runs it."""
    from zrealism_lab.cli.main import main

    out = tmp_path_factory.mktemp("static-report")
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        code = main(["report", "static", "--image", str(sample_64), "-p", "size", "64", "-p", "steps", "4",
                     "-p", "detect_resolution", "64", "-p", "seed", "3", "--out", str(out), "--quiet"])
    assert code == 0
    html_line = next(line for line in printed.getvalue().splitlines() if line.strip().startswith("html:"))
    html_path = html_line.split("html:", 1)[1].strip()
    return out, html_path


@pytest.fixture(scope="module")
def temporal_report(tmp_path_factory, tiny_engine):
    out = tmp_path_factory.mktemp("temporal-report")
    # a LoRA and the few-step mode too, so the report's adapters and speed section has something to show
    return run_report("temporal", {"sample": "dark", "size": 64, "frames": 8, "steps": 4, "detect_resolution": 64,
                                   "loras": "tiny-detail:0.8", "speed": "few-step"}, out, progress=False)


def test_static_report_html_sits_beside_the_record_with_embedded_pictures_and_metrics(static_report):
    from pathlib import Path

    out, html_path = static_report
    html_file = Path(html_path)
    run_dir = html_file.parent
    assert run_dir.parent == out and html_file.name == "report.html"
    assert (run_dir / "record.json").is_file() and (run_dir / "report.ipynb").is_file()
    html = html_file.read_text()
    assert html.count("data:image/png;base64,") >= 8  # source, mask overlay, maps, outputs, plots
    assert 'class="zr-metrics"' in html and "ssim_luma" in html and "delta_e2000_mean" in html
    for heading in ("Source and background analysis", "Control maps", "Colour before and after anchoring",
                    "Metrics", "Timings", "Environment", "Run record"):
        assert heading in html
    assert "random weights" in html and 'href="record.json"' in html
    _no_network_resources(html)


def test_static_report_ran_with_the_given_parameters(static_report):
    from pathlib import Path

    from zrealism_lab.records import read_record

    run_dir = Path(static_report[1]).parent
    record = read_record(run_dir)
    assert record["status"] == "completed" and record["settings"]["seed"] == 3 and record["settings"]["size"] == 64
    notebook = nbformat.read(run_dir / "report.ipynb", as_version=4)
    injected = [c for c in notebook.cells if "injected-parameters" in c.metadata.get("tags", [])]
    assert len(injected) == 1 and "steps = 4" in injected[0].source
    assert notebook.metadata.kernelspec.name == "python3"
    assert all(not output.get("output_type") == "error" for cell in notebook.cells for output in cell.get("outputs", []))


def test_temporal_report_shows_frames_clip_and_clip_metrics(temporal_report):
    from zrealism_lab.records import read_record

    assert temporal_report.run_dir is not None and temporal_report.html.parent == temporal_report.run_dir
    record = read_record(temporal_report.run_dir)
    assert record["kind"] == "temporal" and record["generation"]["frames"] == 8
    html = temporal_report.html.read_text()
    assert "data:image/gif;base64," in html  # the clip, playable offline
    assert html.count("data:image/png;base64,") >= 8
    assert 'class="zr-metrics"' in html and "flicker" in html and "warp_error" in html
    assert "frame 8" in html and "random weights" in html
    assert "Adapters and speed" in html and "tiny-detail" in html and "Speed few-step: what the mode changed" in html
    assert record["settings"]["scheduler"] == "lcm" and record["speed"]["mode"] == "few-step"
    _no_network_resources(html)


def test_a_bad_parameter_fails_in_the_first_cell_after_the_parameters(tmp_path, tiny_engine):
    from papermill.exceptions import PapermillExecutionError

    with pytest.raises(ReportError) as info:
        run_report("static", {"steps": 0, "size": 64}, tmp_path, progress=False)
    assert "SettingsError" in str(info.value) and "'steps'" in str(info.value)
    cause = info.value.__cause__
    assert isinstance(cause, PapermillExecutionError) and "'steps' = 0" in cause.evalue
    notebook = nbformat.read(info.value.notebook, as_version=4)
    code = [c for c in notebook.cells if c.cell_type == "code"]
    injected = next(i for i, c in enumerate(code) if "injected-parameters" in c.metadata.get("tags", []))
    failed = [i for i, c in enumerate(code) if any(o.get("output_type") == "error" for o in c.get("outputs", []))]
    assert failed == [injected + 1]
    assert not list(tmp_path.glob("*/record.json"))  # no run was started


def test_unknown_parameters_are_refused_before_a_kernel_starts(tmp_path):
    with pytest.raises(SettingsError, match="stpes"):
        run_report("static", {"stpes": 4}, tmp_path)


def test_parameter_values_are_json_when_they_parse():
    assert parse_value("8") == 8 and parse_value("0.5") == 0.5 and parse_value("true") is True
    assert parse_value("null") is None and parse_value('["depth"]') == ["depth"]
    assert parse_value("dark") == "dark" and parse_value("depth=0.8,canny") == "depth=0.8,canny"


def test_offline_html_removes_only_what_needs_the_network():
    page = ('<script src="https://cdn.example/require.js"></script><script>var x = 1;</script>'
            '<script type="module">import m from "https://cdn.example/mermaid.mjs";</script>'
            '<link rel="stylesheet" href="https://cdn.example/a.css"><style>body{}</style>')
    cleaned = offline_html(page)
    assert "var x = 1;" in cleaned and "<style>body{}</style>" in cleaned
    assert "cdn.example" not in cleaned


def test_walkthrough_teaches_with_real_pictures_and_numbers(tmp_path, tiny_engine):
    result = run_report("walkthrough", {"SIZE": 64, "STEPS": 5, "STRENGTHS": [0.2, 1.0]}, tmp_path,
                        progress=False)
    assert result.run_dir is None and result.notebook.parent == tmp_path
    html = result.html.read_text()
    for label in ("strength 0.2", "strength 1", "depth (inflate)", "canny (opencv)",
                  "lab-histogram", "reinhard"):
        assert label in html
    assert "What strength changes" in html and "ΔE00 after" in html
    assert "warp_error" in html  # the registry's clip metrics are explained too
    _no_network_resources(html)
    notebook = nbformat.read(result.notebook, as_version=4)
    rows = [o for c in notebook.cells for o in c.get("outputs", []) if "What strength changes" in json.dumps(o)]
    assert rows  # the sweep's table was produced by the kernel, not written into the notebook


def test_the_static_report_shows_the_refinement_passes(tmp_path, sample_64, tiny_engine):
    result = run_report("static", {"image": str(sample_64), "size": 64, "steps": 4, "detect_resolution": 64,
                                   "hires": 2.0, "face_detail": True}, tmp_path, progress=False)
    html = result.html.read_text(encoding="utf-8")
    assert "Hires fix" in html and "after the hires pass" in html and "Face detail" in html
    assert (result.run_dir / "output_first_pass.png").is_file()
