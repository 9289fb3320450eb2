"""The speed switches on the tiny bundle: CPU bf16 (autocast and bf16 weights), TAESD previews and the fast clip
decode. Each switch changes pixels (or previews) when on, and the same seed gives the same pixels in each mode."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from zrealism_lab import device as device_module  # noqa: E402
from zrealism_lab.device import apply_autocast, cpuinfo_flags, plan_hardware  # noqa: E402
from zrealism_lab.errors import SettingsError  # noqa: E402

needs_bf16 = pytest.mark.skipif(device_module.cpu_bf16_support() is None,
                                reason="this CPU has no native bf16 (AMX, AVX512-BF16 or Arm BF16)")


def _pixels(image):
    return np.asarray(image.convert("RGB"), np.int16)


@pytest.fixture(autouse=True)
def one_thread():
    """Pixels, not speed, are under test: one torch thread keeps the tiny runs fast on a busy shared machine."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="module")
def static_settings():
    from zrealism_lab.settings import StaticSettings

    return StaticSettings(size=64, steps=4, strength=0.75, detect_resolution=64, seed=11)


@pytest.fixture(scope="module")
def temporal_settings():
    from zrealism_lab.settings import TemporalSettings

    return TemporalSettings(frames=8, size=64, steps=2, strength=0.75, detect_resolution=64, seed=11)


# ------------------------------------------------------------------------------------------------ the plan


def test_fp32_stays_the_default_and_bf16_is_chosen_only_where_native(monkeypatch):
    plan = plan_hardware("cpu")
    assert plan.dtype == "float32" and plan.autocast is None and plan.preview == "auto" and not plan.fast_decode
    monkeypatch.setattr(device_module, "cpu_bf16_support", lambda: "avx512_bf16")
    assert plan_hardware("cpu", autocast="auto").autocast == "bfloat16"
    assert plan_hardware("cpu", autocast="bf16").to_dict()["autocast"] == "bfloat16"
    assert plan_hardware("cpu", dtype="bf16").dtype == "bfloat16"
    assert plan_hardware("cpu", dtype="bf16", autocast="auto").autocast is None  # bf16 weights need no autocast
    monkeypatch.setattr(device_module, "cpu_bf16_support", lambda: None)
    assert plan_hardware("cpu", autocast="auto").autocast is None
    for kwargs in (dict(autocast="bf16"), dict(dtype="bfloat16")):
        with pytest.raises(SettingsError, match="no native bf16"):
            plan_hardware("cpu", **kwargs)


@pytest.mark.parametrize("kwargs", [dict(autocast="fp8"), dict(preview="vae"), dict(dtype="int8")])
def test_bad_speed_switches_are_refused(kwargs):
    with pytest.raises(SettingsError):
        plan_hardware("cpu", **kwargs)


def test_cpuinfo_flags_reads_x86_and_arm_lists(tmp_path):
    x86 = tmp_path / "x86"
    x86.write_text("processor\t: 0\nflags\t\t: fpu avx512f avx512_bf16 amx_tile\n\nprocessor\t: 1\n")
    arm = tmp_path / "arm"
    arm.write_text("processor\t: 0\nFeatures\t: fp asimd bf16 i8mm\n")
    assert "avx512_bf16" in cpuinfo_flags(str(x86)) and "bf16" in cpuinfo_flags(str(arm))
    assert cpuinfo_flags(str(tmp_path / "none")) == set()


def test_autocast_wraps_a_module_once_and_runs_it_in_bf16(monkeypatch):
    monkeypatch.setattr(device_module, "cpu_bf16_support", lambda: "avx512_bf16")
    plan = plan_hardware("cpu", autocast="bf16")
    layer = torch.nn.Linear(4, 4)
    assert apply_autocast(layer, plan) is layer
    forward = layer.forward
    apply_autocast(layer, plan)
    assert layer.forward is forward  # not wrapped twice
    assert layer(torch.randn(2, 4)).dtype == torch.bfloat16
    plain = torch.nn.Linear(4, 4)
    assert apply_autocast(plain, plan_hardware("cpu")) is plain and plain(torch.randn(2, 4)).dtype == torch.float32


# ------------------------------------------------------------------------------------------------ bf16 runs


@needs_bf16
@pytest.mark.parametrize("switch", [dict(autocast="bf16"), dict(dtype="bf16")], ids=["autocast", "weights"])
def test_bf16_changes_pixels_and_is_deterministic(tiny_engine, sample_64, static_settings, switch):
    from zrealism_lab.engine.engine import get_engine
    from zrealism_lab.generate.static import run_static

    fp32 = run_static(sample_64, static_settings, engine=tiny_engine, evaluate=False)
    engine = get_engine("tiny", device="cpu", **switch)
    first = run_static(sample_64, static_settings, engine=engine, evaluate=False)
    again = run_static(sample_64, static_settings, engine=engine, evaluate=False)
    assert np.array_equal(_pixels(first.raw), _pixels(again.raw))
    difference = np.abs(_pixels(first.raw) - _pixels(fp32.raw))
    assert difference.max() > 0  # the switch is really on
    hardware = first.engine["hardware"]
    if "autocast" in switch:
        assert hardware["autocast"] == "bfloat16" and hardware["dtype"] == "float32"
        assert engine.component("unet").zrealism_autocast == "bfloat16"
        assert engine.component("vae").dtype == torch.float32  # the VAE decodes in fp32
    else:
        assert hardware["dtype"] == "bfloat16" and engine.component("unet").dtype == torch.bfloat16


@needs_bf16
def test_bf16_autocast_reaches_the_motion_unet(sample_64, temporal_settings):
    from zrealism_lab.engine.engine import get_engine
    from zrealism_lab.generate.temporal import run_temporal

    engine = get_engine("tiny", device="cpu", autocast="bf16")
    result = run_temporal(sample_64, temporal_settings, engine=engine, evaluate=False)
    assert engine.motion_unet().zrealism_autocast == "bfloat16"
    assert len(result.frames) == 8 and result.engine["hardware"]["autocast"] == "bfloat16"


# ------------------------------------------------------------------------------------------------ TAESD


def test_tiny_model_set_has_a_tiny_autoencoder_and_it_round_trips():
    from zrealism_lab.models.modelset import ModelSet, resolve_modelset
    from zrealism_lab.models.tiny_taesd import is_complete_taesd

    tiny = resolve_modelset("tiny")
    assert tiny.preview_vae is not None and is_complete_taesd(tiny.preview_vae.location)
    assert tiny.preview_vae in tiny.components()
    assert ModelSet.from_dict(tiny.to_dict()).preview_vae == tiny.preview_vae
    assert resolve_modelset("realistic-vision").preview_vae.location == "madebyollin/taesd"
    moved = tiny.with_component("preview_vae", tiny.preview_vae.location)
    assert moved.preview_vae.kind == "folder"


def test_taesd_needs_a_tiny_autoencoder_in_the_model_set():
    from zrealism_lab.engine.engine import Engine
    from zrealism_lab.models.modelset import resolve_modelset

    without = dataclasses.replace(resolve_modelset("tiny"), preview_vae=None)
    for kwargs in (dict(preview="taesd"), dict(fast_decode=True)):
        with pytest.raises(SettingsError, match="preview_vae"):
            Engine(without, device="cpu", **kwargs)
    assert Engine(without, device="cpu").preview_kind() == "linear"  # auto falls back


def _previews(engine, source, settings):
    from zrealism_lab.generate.static import run_static

    events = []
    run_static(source, settings, engine=engine, evaluate=False, on_step=events.append, preview_every=1)
    return [e.preview for e in events if e.stage == "denoise" and e.preview is not None]


def test_previews_come_from_taesd_when_present_else_linear(tiny_engine, sample_64, static_settings):
    from zrealism_lab.engine.engine import get_engine

    assert tiny_engine.preview_kind() == "taesd"
    taesd = _previews(tiny_engine, sample_64, static_settings)
    assert taesd and all(p.size == (64, 64) for p in taesd)  # the picture's size, not the latent's
    assert [p.tobytes() for p in _previews(tiny_engine, sample_64, static_settings)] == [p.tobytes() for p in taesd]
    linear_engine = get_engine("tiny", device="cpu", preview="linear")
    linear = _previews(linear_engine, sample_64, static_settings)
    assert linear and all(p.size == (8, 8) for p in linear)
    assert linear_engine.describe()["preview"] == "linear" and tiny_engine.describe()["preview"] == "taesd"


def test_taesd_preview_is_the_tiny_autoencoders_decode(tiny_engine):
    from zrealism_lab.progress import taesd_preview

    decoder = tiny_engine.component("preview_vae")
    latents = torch.randn(1, 4, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    image = taesd_preview(latents, decoder)
    with torch.no_grad():
        expected = decoder.decode(latents[:, :, 1]).sample[0]
    expected = ((expected.clamp(-1, 1) + 1) * 127.5).round().byte().permute(1, 2, 0).numpy()
    assert image.size == (64, 64) and np.array_equal(np.asarray(image), expected)


def test_fast_decode_changes_clip_pixels_and_is_deterministic(tiny_engine, sample_64, temporal_settings):
    from zrealism_lab.engine.engine import get_engine
    from zrealism_lab.generate.temporal import run_temporal

    vae = run_temporal(sample_64, temporal_settings, engine=tiny_engine, evaluate=False)
    engine = get_engine("tiny", device="cpu", fast_decode=True)
    fast = run_temporal(sample_64, temporal_settings, engine=engine, evaluate=False)
    again = run_temporal(sample_64, temporal_settings, engine=engine, evaluate=False)
    assert len(fast.raw_frames) == len(vae.raw_frames) == 8 and fast.raw_frames[0].size == (64, 64)
    assert all(np.array_equal(_pixels(a), _pixels(b)) for a, b in zip(fast.raw_frames, again.raw_frames))
    assert any(np.abs(_pixels(a) - _pixels(b)).max() > 0 for a, b in zip(fast.raw_frames, vae.raw_frames))
    assert fast.engine["hardware"]["fast_decode"] is True


def test_models_check_lists_the_preview_autoencoder(capsys):
    from zrealism_lab.cli.main import main

    main(["models", "check", "tiny"])
    out = capsys.readouterr().out
    assert "preview_vae" in out and "present" in out.split("preview_vae", 1)[1].splitlines()[0]


@needs_bf16
def test_a_bf16_autocast_run_reruns_with_autocast(sample_64, static_settings, tmp_path):
    from zrealism_lab.engine.engine import get_engine
    from zrealism_lab.generate.rerun import plan_rerun, rerun
    from zrealism_lab.generate.static import run_static

    engine = get_engine("tiny", device="cpu", autocast="bf16")
    first = run_static(sample_64, static_settings, engine=engine, out_dir=tmp_path / "runs", evaluate=False)
    plan = plan_rerun(first.run_dir)
    assert plan.hardware["autocast"] == "bf16" and plan.hardware["fast_decode"] is False
    again = rerun(first.run_dir, tmp_path / "again")  # the engine is built from the record
    assert again.identical, again.summary()
