"""The HTML reports as a reader sees them: outputs without code by default (code on request), each library
warning once, and the environment table in name | value order."""
from __future__ import annotations

import nbformat

from zrealism_lab.reports.execute import export_html, once_each_warning
from zrealism_lab.reports.notebook import environment_rows


def _notebook():
    warning = "There are modules in AutoencoderKL that should be kept in float32: []\n"
    cells = []
    for number in range(2):
        cell = nbformat.v4.new_code_cell(f"secret_code_{number} = {number}")
        cell.outputs = [nbformat.v4.new_output("stream", name="stderr", text=warning),
                        nbformat.v4.new_output("stream", name="stdout", text=f"visible output {number}\n")]
        cells.append(cell)
    return nbformat.v4.new_notebook(cells=cells)


def test_each_library_warning_shows_once():
    notebook = once_each_warning(_notebook())
    stderr = [o for cell in notebook.cells for o in cell.outputs if o.get("name") == "stderr"]
    assert len(stderr) == 1 and [len(cell.outputs) for cell in notebook.cells] == [2, 1]


def test_reports_hide_code_unless_asked(tmp_path):
    path = tmp_path / "report.ipynb"
    nbformat.write(_notebook(), path)
    hidden = export_html(path, tmp_path / "hidden.html").read_text()
    assert "visible output 1" in hidden and "secret_code_1" not in hidden
    assert hidden.count("kept in float32") == 1
    shown = export_html(path, tmp_path / "shown.html", show_code=True).read_text()
    assert "secret_code_1" in shown


def test_environment_table_reads_name_then_value():
    record = {"hardware": {"device": "cpu"}, "versions": {"torch": "2.14.1"}, "models": {"name": "tiny"}}
    rows = environment_rows(record)
    assert all(list(row)[:2] == ["name", "value"] for row in rows)
    assert {"name": "torch", "value": "2.14.1", "group": "version"} in rows
