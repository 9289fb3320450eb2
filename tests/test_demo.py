"""`zrealism demo`: offline on the tiny preset, saying plainly that its weights are random."""
from __future__ import annotations

from pathlib import Path

from zrealism_lab.cli import demo
from zrealism_lab.cli.main import main
from zrealism_lab.records import read_record


def test_quick_demo_makes_one_still_and_says_the_weights_are_random(tmp_path, capsys, tiny_engine):
    assert main(["demo", "--quick", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    (run_dir,) = (tmp_path / "runs").iterdir()
    assert read_record(run_dir)["status"] == "completed" and (run_dir / "output.png").is_file()
    assert "random weights" in out and "not realism" in out
    assert "zrealism models download realistic-vision" in out and "-p preset realistic-vision" in out
    assert not list(tmp_path.rglob("report.html"))  # --quick makes no reports


def test_full_demo_runs_both_reports_and_prints_their_pages(tmp_path, capsys, monkeypatch):
    import zrealism_lab.reports.execute as reports

    calls = []

    def fake_report(kind, parameters, out_dir, **kwargs):  # the notebooks themselves are run in test_reports
        calls.append((kind, dict(parameters), Path(out_dir)))
        run_dir = Path(out_dir) / f"run-{kind}"
        return reports.ReportResult(kind, run_dir, run_dir / "report.ipynb", run_dir / "report.html", 1.0)

    monkeypatch.setattr(reports, "run_report", fake_report)
    assert demo.run_demo(str(tmp_path)) == 0
    out = capsys.readouterr().out
    assert [kind for kind, _, _ in calls] == ["static", "temporal"]
    assert all(params["preset"] == "tiny" for _, params, _ in calls)
    assert str(tmp_path / "runs" / "run-static" / "report.html") in out
    assert str(tmp_path / "runs" / "run-temporal" / "report.html") in out
    assert "random weights" in out


def test_demo_parameters_are_valid_for_the_report_notebooks():
    from zrealism_lab.reports.execute import notebook_parameters, notebook_path

    for kind, parameters in (("static", demo.STATIC_PARAMETERS), ("temporal", demo.TEMPORAL_PARAMETERS)):
        assert set(parameters) <= set(notebook_parameters(notebook_path(kind)))
