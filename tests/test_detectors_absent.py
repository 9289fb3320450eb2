"""Without the mediapipe package (simulated by patching its one availability check, nothing is uninstalled) every
offline detector says how to install it and everything else works as before. Also: the install line is the one CI
runs, and it leaves the lab's OpenCV in place."""
from __future__ import annotations

import tomllib
from importlib import metadata
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from zrealism_lab.control import (
    MEDIAPIPE_INSTALL,
    MissingDetectorPackageError,
    detect_control,
    detect_faces,
    mediapipe_runtime,
)
from zrealism_lab.errors import MissingWeightsError
from zrealism_lab.source.background import analyze_background
from zrealism_lab.source.samples import SAMPLE_NAMES, load_sample

ROOT = Path(__file__).resolve().parents[1]
SIMULATED = "the mediapipe package is not installed (simulated)"


@pytest.fixture
def absent(monkeypatch):
    monkeypatch.setattr(mediapipe_runtime, "mediapipe_problem", lambda: SIMULATED)


@pytest.fixture(scope="module")
def astronaut() -> Image.Image:
    from skimage import data

    return Image.fromarray(data.astronaut())


def test_the_pose_method_and_face_detection_name_the_install_line(absent, astronaut):
    with pytest.raises(MissingDetectorPackageError) as pose:
        detect_control("openpose", astronaut, size=(64, 64), method="mediapipe")
    assert isinstance(pose.value, MissingWeightsError)  # so every missing-weights path degrades the same way
    assert SIMULATED in str(pose.value) and MEDIAPIPE_INSTALL in str(pose.value)
    assert "need no checkpoint" not in str(pose.value)  # no hint pointing back at the method that just failed
    with pytest.raises(MissingDetectorPackageError, match="face detector") as faces:
        detect_faces(astronaut)
    assert MEDIAPIPE_INSTALL in str(faces.value)


def test_openposes_missing_weights_hint_says_mediapipe_needs_installing(absent, astronaut, tmp_path):
    with pytest.raises(MissingWeightsError) as error:
        detect_control("openpose", astronaut, size=(64, 64), method="openpose", annotator_dir=tmp_path)
    assert "need no checkpoint: mediapipe (needs the mediapipe package" in str(error.value)
    assert MEDIAPIPE_INSTALL in str(error.value)


def test_background_analysis_keeps_todays_masks_and_says_what_would_help(absent, astronaut):
    photo = analyze_background(astronaut)
    assert photo.kind == "scenic" and photo.mask_source == "grabcut"
    assert photo.mask_fraction < 0.1  # the old best effort: it misses the person
    assert any(MEDIAPIPE_INSTALL in warning for warning in photo.warnings)
    assert photo.to_dict()["mask_source"] == "grabcut"
    for name in SAMPLE_NAMES:  # drawings never needed the model: no warning
        assert analyze_background(load_sample(name)).warnings == []


def test_adherence_notes_a_missing_detector_instead_of_failing(absent, astronaut):
    from zrealism_lab.metrics.adherence import control_adherence

    def lookup(kind):
        return lambda image: detect_control("openpose", image, size=image.size, method="mediapipe").keypoints

    fed = np.array([[100.0, 100.0]] * 18)
    report = control_adherence(astronaut, {"openpose": fed}, lookup)
    assert report.values == [] and any(MEDIAPIPE_INSTALL in note for note in report.notes)


def test_the_tiny_preset_picks_mediapipe_for_pose_only_where_it_is_installed(tmp_path, monkeypatch):
    from zrealism_lab.models.modelset import tiny_modelset

    installed = mediapipe_runtime.mediapipe_available()
    present = tiny_modelset(tmp_path, build=False).control_methods
    assert present.get("openpose") == ("mediapipe" if installed else None)
    monkeypatch.setattr(mediapipe_runtime, "mediapipe_problem", lambda: SIMULATED)
    missing = tiny_modelset(tmp_path, build=False)
    assert "openpose" not in missing.control_methods and missing.control_methods["depth"] == "inflate"
    assert missing.control_method("openpose", None) is None  # the provider's default: OpenPose, with weights


def test_models_check_says_whether_the_detectors_are_present(absent):
    from zrealism_lab.cli.models import detector_line

    line = detector_line()
    assert "MISSING" in line and SIMULATED in line and MEDIAPIPE_INSTALL in line


def test_a_wheel_without_bundled_models_counts_as_absent(tmp_path, monkeypatch):
    import importlib.util

    fake = tmp_path / "mediapipe"
    fake.mkdir()
    spec = importlib.util.spec_from_file_location("mediapipe", fake / "__init__.py",
                                                  submodule_search_locations=[str(fake)])
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: spec if name == "mediapipe" else None)
    assert "no bundled models" in mediapipe_runtime.mediapipe_problem()


def test_ci_installs_the_documented_line_and_no_extra_pulls_jax():
    assert MEDIAPIPE_INSTALL in (ROOT / ".ci" / "run").read_text()
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = project["dependencies"] + [d for extra in project["optional-dependencies"].values() for d in extra]
    assert not [d for d in declared if "mediapipe" in d]  # an extra cannot say --no-deps (jax, a second cv2)


def test_opencv_is_still_the_headless_build():
    import cv2

    assert cv2.__file__ and metadata.version("opencv-python-headless")
    with pytest.raises(metadata.PackageNotFoundError):  # what mediapipe's own requirements would have added
        metadata.version("opencv-contrib-python")


def test_an_installed_package_that_fails_to_import_degrades_the_same_way(monkeypatch, astronaut):
    import sys

    # Installed as far as the cheap check can tell, but its import fails (as without protobuf: "initialization
    # failed"): a None entry in sys.modules makes `import mediapipe` raise ImportError.
    monkeypatch.setattr(mediapipe_runtime, "mediapipe_problem", lambda: None)
    monkeypatch.setitem(sys.modules, "mediapipe", None)
    with pytest.raises(MissingDetectorPackageError, match="importing it failed") as error:
        detect_faces(astronaut)
    assert MEDIAPIPE_INSTALL in str(error.value)
    analysis = analyze_background(astronaut)
    assert analysis.mask_source == "grabcut" and any("importing it failed" in w for w in analysis.warnings)
