"""The packaging files agree with each other and the package imports lightly."""
from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]


def test_environment_yml_matches_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = sorted(project["dependencies"] + project["optional-dependencies"]["dev"])
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip_section = next(item["pip"] for item in env["dependencies"] if isinstance(item, dict) and "pip" in item)
    assert sorted(pip_section) == wanted


def test_console_script_declared():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["scripts"]["zrealism"] == "zrealism_lab.cli:main"
    assert project["license"]["text"] == "MIT"


def test_import_is_light():
    """`import zrealism_lab` must not pull torch, diffusers or OpenCV (the lab paints before any model loads)."""
    code = ("import sys, zrealism_lab; heavy = [m for m in ('torch', 'diffusers', 'transformers', 'cv2', "
            "'controlnet_aux', 'matplotlib.pyplot') if m in sys.modules]; print(','.join(heavy))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == ""


@pytest.mark.slow
def test_a_wheel_installed_without_editable_mode_runs_the_static_report(tmp_path):
    """`pip install .` (no -e): the notebooks ship as package data, so `zrealism report static` works from the wheel.
    The fresh virtualenv borrows this environment's dependencies through a path file and gets only the wheel itself,
    so nothing is downloaded."""
    import site
    import sysconfig

    wheels = tmp_path / "wheels"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
                    str(wheels), str(ROOT)], check=True, capture_output=True, text=True, timeout=300)
    (wheel,) = wheels.glob("zrealism_lab-*.whl")
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    purelib = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             check=True, capture_output=True, text=True).stdout.strip()
    # The dependencies only, not this checkout: a plain path line adds the folder without running its .pth files
    # (which hold the editable install).
    deps = [p for p in [sysconfig.get_paths()["purelib"], *site.getsitepackages()] if Path(p).is_dir()]
    (Path(purelib) / "zrealism-test-deps.pth").write_text("\n".join(dict.fromkeys(deps)) + "\n")
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "-q", str(wheel)],
                   check=True, capture_output=True, text=True, timeout=300)
    where = subprocess.run([str(python), "-c", "import zrealism_lab.reports.execute as e; print(e.notebooks_dir())"],
                           check=True, capture_output=True, text=True, cwd=tmp_path).stdout.strip()
    assert Path(where).is_relative_to(venv) and (Path(where) / "static_report.ipynb").is_file()

    out = tmp_path / "reports"
    # nbconvert's templates are data files of the borrowed environment, found through the Jupyter path
    env = {**os.environ, "PATH": f"{venv / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}",
           "JUPYTER_PATH": str(Path(sys.prefix) / "share" / "jupyter")}
    env.pop("ZREALISM_NOTEBOOKS", None)
    done = subprocess.run([str(venv / "bin" / "zrealism"), "report", "static",
                           "-p", "preset", "tiny", "-p", "size", "64", "-p", "steps", "2", "-p", "detect_resolution",
                           "64", "--out", str(out), "--quiet"], capture_output=True, text=True, cwd=tmp_path, env=env,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    (page,) = out.rglob("report.html")
    assert (page.parent / "record.json").is_file()
