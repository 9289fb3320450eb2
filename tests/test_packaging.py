"""The packaging files agree with each other and the package imports lightly."""
from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

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
