"""Temporal runs on the tiny bundle: still -> clip, clip -> clip, long clips, outputs, settings and bad inputs."""
from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("torch")

from zrealism_lab.errors import IntakeError, SettingsError  # noqa: E402
from zrealism_lab.settings import ControlUnit  # noqa: E402
from zrealism_lab.generate.temporal import TemporalSettings, run_temporal  # noqa: E402

FAST = TemporalSettings(frames=8, size=64, steps=2, detect_resolution=64)


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    path = tmp_path_factory.getbasetemp() / "zrealism-cache"  # shared by this session's test files
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("ZREALISM_CACHE", str(path))
        yield path


@pytest.fixture(scope="module")
def engine(cache):
    from zrealism_lab.engine.engine import get_engine

    return get_engine("tiny")


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    from zrealism_lab.source.samples import sample_path

    return sample_path("light")


def _arrays(frames):
    return [np.asarray(f) for f in frames]


def test_settings_are_checked_before_any_model_loads(cache, tmp_path, sample):
    from zrealism_lab.engine.engine import Engine

    fresh = Engine("tiny")  # nothing loaded yet
    for bad in (dict(frames=200), dict(size=100000), dict(size=100), dict(context_stride=16),
                dict(scheduler="nope"), dict(controls=("depth",)),
                dict(controls=(ControlUnit("depth"), ControlUnit("depth")))):
        with pytest.raises(SettingsError):
            run_temporal(sample, FAST.replace(**bad), engine=fresh, out_dir=tmp_path)
    with pytest.raises(SettingsError, match="exactly one"):
        run_temporal(None, FAST, engine=fresh)
    assert fresh.loaded_roles() == [] and list(tmp_path.iterdir()) == []


def test_bad_clips_are_refused_with_clear_errors(engine, tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypisom" + b"\x13" * 300)
    (tmp_path / "readme.txt").write_text("not a clip")
    with pytest.raises(IntakeError, match="holds no frames"):
        run_temporal(clip=tmp_path / "empty", settings=FAST, engine=engine)
    with pytest.raises(IntakeError, match="cannot be decoded"):
        run_temporal(clip=tmp_path / "broken.mp4", settings=FAST, engine=engine)
    with pytest.raises(IntakeError, match="not a clip"):
        run_temporal(clip=tmp_path / "readme.txt", settings=FAST, engine=engine)


def test_cli_writes_mp4_gif_frames_and_record(cache, tmp_path, sample, capsys):
    from zrealism_lab.cli.main import main
    from zrealism_lab.source.video import probe_video

    code = main(["run", "temporal", "--image", str(sample), "--preset", "tiny", "--frames", "8", "--size", "64",
                 "--steps", "2", "--fps", "10", "--out", str(tmp_path), "--quiet"])
    assert code == 0
    (run_dir,) = [p for p in tmp_path.iterdir() if p.is_dir()]
    assert str(run_dir) in capsys.readouterr().out
    probe = probe_video(run_dir / "clip.mp4")
    assert probe["frames"] == 8 and probe["size"] == [64, 64] and probe["fps"] == pytest.approx(10)
    assert probe["codec"] == "h264" and probe["pix_fmt"] == "yuv420p"
    assert len(list((run_dir / "frames").glob("frame_*.png"))) == 8
    with Image.open(run_dir / "clip.gif") as gif:
        assert gif.n_frames == 8
    record = json.loads((run_dir / "record.json").read_text())
    assert record["kind"] == "temporal" and record["status"] == "completed" and record["mode"] == "still"
    assert record["settings"]["frames"] == 8 and record["generation"]["decode_chunk"] >= 1
    assert record["hardware"]["offload"] == record["generation"]["offload"]
    assert "clip.mp4" in record["outputs"] and "frames/frame_0008.png" in record["outputs"]


def test_same_seed_same_frames_and_the_clip_follows_the_still(engine, sample):
    from zrealism_lab.source.samples import sample_path

    events = []
    first = run_temporal(sample, FAST, engine=engine, on_step=events.append)
    again = run_temporal(sample, FAST, engine=engine)
    other = run_temporal(sample_path("dark"), FAST, engine=engine)
    assert len(first.frames) == 8 and first.size == (64, 64) and first.fps == 8
    for a, b in zip(_arrays(first.raw_frames), _arrays(again.raw_frames)):
        assert np.array_equal(a, b)
    difference = np.mean([np.abs(a.astype(int) - b.astype(int)).mean()
                          for a, b in zip(_arrays(first.raw_frames), _arrays(other.raw_frames))])
    assert difference > 5
    stages = {e.stage for e in events}
    assert {"denoise", "decode"} <= stages
    steps = sum(first.generation["denoise_steps"])
    assert [e.step for e in events if e.stage == "denoise"] == list(range(1, steps + 1))
    assert first.metrics is not None and first.colour is not None and len(first.colour) == 8


def test_a_static_result_is_animated_on_the_same_engine(engine, sample):
    from zrealism_lab.settings import StaticSettings
    from zrealism_lab.generate.static import run_static

    still = run_static(sample, StaticSettings(size=64, steps=2, detect_resolution=64), engine=engine, evaluate=False)
    run_temporal(sample, FAST, engine=engine)  # everything a temporal run needs is loaded now
    loaded = dict(engine.load_seconds)
    clip = run_temporal(still, FAST, engine=engine)
    assert engine.load_seconds == loaded
    assert clip.inputs.still.size == still.image.size and np.array_equal(np.asarray(clip.inputs.still),
                                                                          np.asarray(still.image))
    assert set(clip.inputs.control_frames) == set(still.context.control_maps)


def test_clip_to_clip_uses_each_frames_own_controls_and_the_input_as_reference(engine, tmp_path, sample):
    from zrealism_lab.source.video import write_gif

    base = Image.open(sample).convert("RGB").resize((64, 64))
    frames = [base.rotate(angle, fillcolor=(255, 255, 255)) for angle in range(0, 50, 5)]
    write_gif(frames, tmp_path / "input.gif", fps=10)
    result = run_temporal(clip=tmp_path / "input.gif", settings=FAST.replace(every=2, max_frames=4), engine=engine,
                          out_dir=tmp_path / "runs")
    assert result.mode == "clip" and len(result.frames) == 4 and result.fps == pytest.approx(5)
    depth = result.inputs.control_frames["depth"]
    assert len(depth) == 4 and not np.array_equal(np.asarray(depth[0]), np.asarray(depth[-1]))
    assert "flicker_reference" in result.metrics.names()  # the input clip is measured as the reference
    record = result.record
    assert record["mode"] == "clip" and record["clip"]["frames"] == 4
    assert record["colour"]["reference"] == "each input frame"


def test_long_clip_runs_through_context_windows(engine, sample):
    settings = FAST.replace(frames=40, context_length=16, context_stride=4, cfg=1.0, steps=1, strength=1.0)
    result = run_temporal(sample, settings, engine=engine, evaluate=False)
    assert len(result.frames) == 40 and result.size == (64, 64)
    assert result.generation["context_windows"]["context_length"] == 16
    # the window chunking is undone after the run: the static UNet's modules are plain again
    from diffusers.pipelines.free_noise_utils import SplitInferenceModule

    unet = engine.component("unet")
    assert not any(isinstance(m, SplitInferenceModule) for m in unet.modules())
    pipe = engine.pipelines()[("temporal", ("depth", "canny"))]
    assert not any(isinstance(m, SplitInferenceModule) for m in pipe.unet.modules())


def test_free_init_runs_its_passes_and_cancel_marks_the_record(engine, sample, tmp_path):
    from zrealism_lab.errors import CancelledError
    from zrealism_lab.progress import CancelToken
    from zrealism_lab.generate.temporal import denoise_steps

    events = []
    settings = FAST.replace(free_init=True, free_init_iters=2, steps=2, strength=1.0, cfg=1.0)
    result = run_temporal(sample, settings, engine=engine, on_step=events.append, evaluate=False)
    assert denoise_steps(2, 1.0, 2) == [2, 2] and result.generation["free_init"] == {"iterations": 2}
    assert [e.step for e in events if e.stage == "denoise"] == [1, 2, 3, 4]

    token = CancelToken()

    def cancel_at_first_step(event):
        if event.stage == "denoise":
            token.cancel()

    with pytest.raises(CancelledError):
        run_temporal(sample, FAST.replace(steps=4, strength=1.0, cfg=1.0), engine=engine, out_dir=tmp_path,
                     on_step=cancel_at_first_step, cancel=token)
    (run_dir,) = list(tmp_path.iterdir())
    assert json.loads((run_dir / "record.json").read_text())["status"] == "cancelled"
