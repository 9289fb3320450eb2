"""The README's Python examples run verbatim, offline, on the tiny preset (their inputs made in a scratch folder)."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.S)


def test_the_readme_has_python_examples_on_the_tiny_preset():
    blocks = python_blocks()
    assert len(blocks) >= 2 and 'get_engine("tiny")' in blocks[0]


@pytest.mark.slow
@pytest.mark.timeout(1800)  # 512 px stills and a 16-frame clip: a few minutes on two cores
def test_the_readme_python_examples_run_verbatim(tmp_path, monkeypatch, tiny_engine):
    from zrealism_lab.source.samples import load_sample
    from zrealism_lab.source.video import write_mp4

    monkeypatch.chdir(tmp_path)
    base = load_sample("light").convert("RGB").resize((128, 128))
    write_mp4([base.rotate(angle, fillcolor=(255, 255, 255)) for angle in range(0, 24, 3)], tmp_path / "dance.mp4", 8)
    load_sample("transparent").save(tmp_path / "character.png")
    namespace: dict = {}
    for block in python_blocks():
        exec(compile(block, str(README), "exec"), namespace)  # noqa: S102 - the documentation's own code
    assert namespace["result"].run_dir is not None and namespace["clip"].mode == "clip"
    assert len(list((tmp_path / "runs").iterdir())) == 3
