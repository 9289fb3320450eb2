"""Control maps the user gives ("preprocessor: none"): the controls syntax, checks before any model loads, stills and
clips on the tiny bundle fed the given maps with no detector, their record and infotext, and reruns."""
from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image, ImageDraw

pytest.importorskip("torch")

from zrealism_lab.errors import IntakeError, MissingWeightsError, SettingsError  # noqa: E402
from zrealism_lab.files import sha256_file  # noqa: E402
from zrealism_lab.settings import ControlUnit, StaticSettings, TemporalSettings, parse_controls  # noqa: E402

FAST_CLIP = TemporalSettings(size=64, steps=2, detect_resolution=64, max_frames=4)


def _skeleton(path, size=(96, 80), shift=0):
    """An OpenPose-editor style map: keypoint discs in OpenPose's colours joined by a limb, on black."""
    from zrealism_lab.metrics.adherence import OPENPOSE_COLOURS

    image = Image.new("RGB", size)
    draw = ImageDraw.Draw(image)
    points = [(48 + shift, 12), (48 + shift, 30), (34 + shift, 32), (62 + shift, 32)]
    draw.line(points[:2], fill=(0, 0, 153), width=4)
    for colour, (x, y) in zip(OPENPOSE_COLOURS, points):
        draw.ellipse((x - 4, y - 4, x + 4, y + 4), fill=tuple(int(c) for c in colour))
    image.save(path)
    return path


def _depth(path, size=(80, 96), shade=200):
    array = np.tile(np.linspace(0, shade, size[0], dtype=np.uint8), (size[1], 1))
    Image.fromarray(array, mode="L").save(path)
    return path


@pytest.fixture(scope="module")
def maps(tmp_path_factory):
    folder = tmp_path_factory.mktemp("maps")
    return {"openpose": _skeleton(folder / "skeleton.png"), "depth": _depth(folder / "depth.png")}


def test_the_controls_syntax_takes_a_map_after_the_at_sign():
    units = parse_controls("openpose=0.8@skeleton.png,depth@maps/depth map.png,canny=0.5:0:0.8@edges.png,"
                           "openpose:mediapipe=0.7@pose.png,lineart_anime")
    assert [(u.kind, u.scale, u.start, u.end, u.method, u.image) for u in units] == [
        ("openpose", 0.8, 0.0, 1.0, None, "skeleton.png"), ("depth", 1.0, 0.0, 1.0, None, "maps/depth map.png"),
        ("canny", 0.5, 0.0, 0.8, None, "edges.png"), ("openpose", 0.7, 0.0, 1.0, "mediapipe", "pose.png"),
        ("lineart_anime", 1.0, 0.0, 1.0, None, None)]
    assert units[0] == ControlUnit("openpose", 0.8, image="skeleton.png")
    # the same unit from a dict, from text in dict settings, and through a record's round trip
    from_dict = StaticSettings.from_dict({"controls": [{"kind": "openpose", "scale": 0.8, "image": "skeleton.png"}]})
    from_text = StaticSettings.from_dict({"controls": "openpose=0.8@skeleton.png"})
    assert from_dict.controls == from_text.controls == (units[0],)
    assert StaticSettings.from_dict(json.loads(json.dumps(from_dict.to_dict()))) == from_dict
    assert "image" not in ControlUnit("depth").to_dict()  # units without a map keep their old records


@pytest.mark.parametrize("text", ["openpose@", "openpose=0.8@ ", "openpose=@map.png", "openpose=x@map.png",
                                  "openpose=0.8:0.1@map.png", "=0.8@map.png", "@map.png"])
def test_bad_controls_text_is_a_clear_error(text):
    with pytest.raises(SettingsError, match="KIND=SCALE@PATH"):
        parse_controls(text)


def test_a_missing_or_unreadable_map_is_refused_before_any_model_loads(tmp_path, sample_64, maps, monkeypatch):
    from zrealism_lab.generate.static import run_static

    not_image = tmp_path / "notes.png"
    not_image.write_text("not a picture")
    (tmp_path / "empty").mkdir()
    no_models = tmp_path / "no-such-model-set"  # would fail when the model set is resolved, after the settings
    for image, fragment in ((tmp_path / "nope.png", "No such file"), (not_image, "not recognised"),
                            (tmp_path / "empty", "no map images")):
        settings = StaticSettings(size=64, controls=(ControlUnit("openpose", 0.8, image=str(image)),))
        with pytest.raises(SettingsError, match=r"controls\[openpose\]\.image") as error:
            run_static(sample_64, settings, models=no_models, out_dir=tmp_path / "runs")
        assert fragment in str(error.value)
    monkeypatch.setenv("ZREALISM_MAX_PIXELS", "1000")  # the intake's decompression-bomb cap holds for maps too
    with pytest.raises(SettingsError, match="pixel cap"):
        ControlUnit("depth", image=str(maps["depth"])).validated()
    assert not (tmp_path / "runs").exists()


def test_a_corrupt_map_or_a_folder_for_a_still_fails_before_any_model_loads(tiny_engine, tmp_path, sample_64, maps):
    from zrealism_lab.engine.engine import Engine
    from zrealism_lab.generate.static import run_static

    data = maps["depth"].read_bytes()
    truncated = tmp_path / "truncated.png"
    truncated.write_bytes(data[: len(data) // 2])  # a sound header, then the pixels stop
    folder = tmp_path / "folder"
    folder.mkdir()
    _depth(folder / "a.png")
    fresh = Engine(tiny_engine.models, device="cpu")  # nothing loaded yet
    base = StaticSettings(size=64, steps=4, detect_resolution=64)
    for unit, fragment in ((ControlUnit("depth", image=str(truncated)), "cannot be decoded"),
                           (ControlUnit("depth", image=str(folder)), "for clips"),
                           (ControlUnit("openpose", image=str(maps["openpose"])), "hires_control_maps")):
        settings = base.replace(controls=(unit,), hires=1.5 if unit.kind == "openpose" else None)
        with pytest.raises(SettingsError, match=fragment):
            run_static(sample_64, settings, engine=fresh, out_dir=tmp_path / "runs")
    assert fresh.loaded_roles() == [] and not (tmp_path / "runs").exists()


@pytest.fixture(scope="module")
def given_run(tiny_engine, sample_64, maps, tmp_path_factory):
    """A still fed a given skeleton (with the OpenPose detector, which needs annotator files offline) and a given
    depth map."""
    from zrealism_lab.generate.static import run_static

    settings = StaticSettings(size=64, steps=4, strength=0.5, detect_resolution=64, seed=3, controls=(
        ControlUnit("openpose", 0.8, method="openpose", image=str(maps["openpose"])),
        ControlUnit("depth", 0.6, image=str(maps["depth"]))))
    return run_static(sample_64, settings, engine=tiny_engine, out_dir=tmp_path_factory.mktemp("given-runs"))


def test_a_still_is_fed_the_given_maps_and_records_them(given_run, tiny_engine, maps):
    from zrealism_lab.source.context import detect_unit

    with pytest.raises(MissingWeightsError):  # the OpenPose detector cannot run here: the run did not use it
        detect_unit(ControlUnit("openpose", method="openpose"), Image.open(maps["openpose"]), tiny_engine,
                    size=(64, 64), detect_resolution=64)
    record = given_run.record
    size = tuple(given_run.context.prepared.size)
    for kind in ("openpose", "depth"):
        entry = record["controls"][kind]["params"]
        assert entry["given"] is True and entry["detector_ran"] is False
        assert entry["image"] == str(maps[kind].resolve()) and entry["sha256"] == sha256_file(maps[kind])
        expected = Image.open(maps[kind]).convert("RGB").resize(size, Image.BILINEAR)
        with Image.open(given_run.run_dir / f"control_{kind}.png") as saved:
            assert saved.mode == "RGB" and np.array_equal(np.asarray(saved), np.asarray(expected))
    assert [u["image"] for u in record["units"]] == [str(maps["openpose"]), str(maps["depth"])]
    assert record["metrics"] is not None  # the adherence measure copes with a map no detector made
    with Image.open(given_run.run_dir / "output.png") as output:
        text = output.info["parameters"]
    assert 'ControlNet 0: "Module: none, Model: openpose' in text and 'ControlNet 1: "Module: none' in text
    from zrealism_lab.infotext import read_settings

    imported = read_settings(given_run.run_dir / "output.png")
    assert imported.settings == given_run.settings and imported.unmapped == {}


def test_the_cli_takes_a_map_after_the_kind(tiny_engine, sample_64, maps, tmp_path):
    from zrealism_lab.cli.main import main
    from zrealism_lab.records import read_record

    out = tmp_path / "runs"
    assert main(["run", "static", "--image", str(sample_64), "--preset", "tiny", "--device", "cpu", "--size", "64",
                 "--steps", "2", "--controls", f"openpose=0.8@{maps['openpose']}", "--out", str(out), "--quiet"]) == 0
    (run,) = out.iterdir()
    record = read_record(run)
    assert record["units"] == [{"kind": "openpose", "scale": 0.8, "start": 0.0, "end": 1.0, "method": None,
                                "params": {}, "image": str(maps["openpose"])}]
    assert record["controls"]["openpose"]["params"]["sha256"] == sha256_file(maps["openpose"])


def test_a_rerun_uses_the_map_and_says_when_it_changed(given_run, tiny_engine, maps, tmp_path):
    import shutil

    from zrealism_lab.generate.rerun import rerun

    again = rerun(given_run.run_dir, tmp_path / "again", engine=tiny_engine)
    assert again.identical and again.result.settings.controls == given_run.settings.controls
    kept = tmp_path / "original.png"
    shutil.copy(maps["depth"], kept)
    try:
        _depth(maps["depth"], shade=120)  # the user edited the map since
        with pytest.raises(IntakeError, match=r"depth map .* changed since the run: its sha256 is"):
            rerun(given_run.run_dir, tmp_path / "refused", engine=tiny_engine)
    finally:
        shutil.copy(kept, maps["depth"])
    assert not (tmp_path / "refused").exists()


@pytest.fixture(scope="module")
def clip_and_maps(sample_64, tmp_path_factory):
    from zrealism_lab.source.video import write_gif

    folder = tmp_path_factory.mktemp("clip")
    base = Image.open(sample_64).convert("RGB")
    write_gif([base.rotate(angle, fillcolor=(255, 255, 255)) for angle in range(0, 40, 10)], folder / "in.gif", 8)
    pose_maps = folder / "poses"
    pose_maps.mkdir()
    for index in range(4):  # names sort as the frames go (frame 10 after frame 2)
        _skeleton(pose_maps / f"pose_{index * 4}.png", size=(64, 64), shift=index * 3)
    return folder / "in.gif", pose_maps


def test_a_clip_takes_a_folder_of_maps_one_per_frame(tiny_engine, clip_and_maps, maps, tmp_path):
    from zrealism_lab.generate.temporal import run_temporal

    clip, pose_maps = clip_and_maps
    settings = FAST_CLIP.replace(controls=(ControlUnit("openpose", 0.8, method="openpose", image=str(pose_maps)),
                                           ControlUnit("depth", 0.5, image=str(maps["depth"]))))
    result = run_temporal(clip=clip, settings=settings, engine=tiny_engine, out_dir=tmp_path / "runs")
    files = sorted(pose_maps.iterdir(), key=lambda p: int(p.stem.split("_")[1]))
    poses = result.inputs.control_frames["openpose"]
    assert len(poses) == len(result.frames) == 4
    for given, fed in zip(files, poses):
        assert np.array_equal(np.asarray(fed), np.asarray(Image.open(given).convert("RGB").resize(fed.size,
                                                                                                   Image.BILINEAR)))
    depth = result.inputs.control_frames["depth"]
    assert len(depth) == 4 and all(np.array_equal(np.asarray(d), np.asarray(depth[0])) for d in depth)
    entry = result.record["controls"]["openpose"]
    assert entry["given"] and entry["image"] == str(pose_maps.resolve()) and entry["maps"] == 4
    assert [f["name"] for f in entry["files"]] == [f.name for f in files]
    assert result.record["controls"]["depth"]["sha256"] == sha256_file(maps["depth"])


def test_a_folder_of_the_wrong_count_names_both_numbers_before_any_model_loads(tiny_engine, clip_and_maps, sample_64,
                                                                               tmp_path):
    from zrealism_lab.engine.engine import Engine
    from zrealism_lab.generate.temporal import run_temporal

    clip, pose_maps = clip_and_maps
    fresh = Engine(tiny_engine.models, device="cpu")
    settings = FAST_CLIP.replace(controls=(ControlUnit("openpose", image=str(pose_maps)),))
    with pytest.raises(SettingsError, match=r"It holds 4 map images, the run makes 3 frames"):
        run_temporal(clip=clip, settings=settings.replace(max_frames=3), engine=fresh, out_dir=tmp_path / "runs")
    with pytest.raises(SettingsError, match=r"It holds 4 map images, the run makes 8 frames"):  # still -> clip
        run_temporal(sample_64, settings.replace(frames=8), engine=fresh, out_dir=tmp_path / "runs")
    assert fresh.loaded_roles() == [] and not (tmp_path / "runs").exists()
