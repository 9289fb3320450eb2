"""Hires fix: a second img2img pass over the upscaled first result, at the new size, with its own strength and
steps, control maps at the new size, VAE tiling where the size needs it, settings checked before any model loads."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from zrealism_lab.errors import SettingsError
from zrealism_lab.generate import hires
from zrealism_lab.generate.static import run_static
from zrealism_lab.records import read_record


def test_hires_factor_doubles_the_output_and_the_record_says_what_ran(tiny_engine, small_settings, sample_64,
                                                                       tmp_path):
    settings = small_settings.replace(hires=2.0, hires_strength=0.5, hires_steps=4)
    result = run_static(sample_64, settings, engine=tiny_engine, out_dir=tmp_path)
    assert result.hires.first.size == (64, 64)
    assert result.image.size == result.raw.size == (128, 128)
    record = read_record(result.run_dir)
    passes = record["passes"]["hires"]
    assert passes["first_size"] == [64, 64] and passes["size"] == [128, 128]
    assert (passes["upscaler"], passes["strength"], passes["steps"], passes["denoise_steps"]) == ("lanczos", 0.5, 4, 2)
    assert passes["seconds"] > 0 and record["timings"]["hires"] > 0
    assert {"output_first_pass.png", "hires_control_depth.png", "hires_control_canny.png"} <= set(record["outputs"])
    assert Image.open(result.run_dir / "output.png").size == (128, 128)


def test_hires_size_sets_the_long_side_and_keeps_the_aspect():
    from zrealism_lab.settings import StaticSettings

    settings = StaticSettings(size=64, hires_size=200)
    assert hires.hires_size(settings, (64, 48)) == (200, 152)
    assert hires.hires_size(StaticSettings(size=64, hires=1.5), (64, 48)) == (96, 72)


def test_strength_zero_keeps_the_first_pass_up_to_the_upscaler(tiny_engine, small_settings, sample_64):
    result = run_static(sample_64, small_settings.replace(hires=2.0, hires_strength=0.0), engine=tiny_engine,
                        evaluate=False)
    assert result.hires.denoise_steps == 0
    expected = result.hires.first.resize((128, 128), Image.LANCZOS)
    assert np.array_equal(np.asarray(result.raw), np.asarray(expected))


def test_latent_upscaler_denoises_upscaled_latents(tiny_engine, small_settings, sample_64):
    result = run_static(sample_64, small_settings.replace(hires=2.0, hires_upscaler="latent", hires_strength=0.5),
                        engine=tiny_engine, evaluate=False)
    assert result.raw.size == (128, 128) and result.hires.upscaler == "latent"
    zero = run_static(sample_64, small_settings.replace(hires=2.0, hires_upscaler="latent", hires_strength=0.0),
                      engine=tiny_engine, evaluate=False)
    # The same first pass, decoded from its own latents, under both.
    assert np.array_equal(np.asarray(zero.hires.first), np.asarray(result.hires.first))
    assert not np.array_equal(np.asarray(zero.raw), np.asarray(result.raw))


@pytest.mark.parametrize("maps", ["detect", "resize"])
def test_control_maps_match_the_new_size(tiny_engine, small_settings, sample_64, maps):
    result = run_static(sample_64, small_settings.replace(hires=1.5, hires_control_maps=maps), engine=tiny_engine,
                        evaluate=False)
    assert result.raw.size == (96, 96)
    assert set(result.hires.control_maps) == set(result.context.control_maps) == {"depth", "canny"}
    assert all(image.size == (96, 96) for image in result.hires.control_maps.values())
    assert result.hires.control_source == maps


def test_vae_tiling_is_switched_on_for_large_sizes_and_restored(tiny_engine, small_settings, sample_64,
                                                                monkeypatch):
    monkeypatch.setattr(hires, "TILING_LONG_SIDE", 64)
    pipe = tiny_engine.static_pipeline(("depth", "canny"))
    before = bool(getattr(pipe.vae, "use_tiling", False))
    result = run_static(sample_64, small_settings.replace(hires=2.0), engine=tiny_engine, evaluate=False)
    assert result.hires.vae_tiling is True
    assert bool(getattr(pipe.vae, "use_tiling", False)) == before


@pytest.mark.parametrize("changes, name", [
    ({"hires": 0.0}, "hires"),
    ({"hires": 0.5}, "hires"),
    ({"size": 1024, "hires": 2.5}, "hires"),
    ({"hires_size": 4096}, "hires_size"),
    ({"hires_size": 32}, "hires_size"),
    ({"hires": 2.0, "hires_size": 256}, "hires_size"),
    ({"hires": 2.0, "hires_strength": 1.5}, "hires_strength"),
    ({"hires": 2.0, "hires_strength": -0.1}, "hires_strength"),
    ({"hires": 2.0, "hires_strength": 0.1, "hires_steps": 4}, "hires_strength"),  # 0.4 steps: nothing would run
    ({"hires": 2.0, "hires_upscaler": "esrgan"}, "hires_upscaler"),
])
def test_bad_hires_values_fail_before_any_model_loads_and_leave_no_folder(changes, name, sample_64, tmp_path):
    from zrealism_lab.engine.engine import Engine
    from zrealism_lab.settings import StaticSettings

    engine = Engine("realistic-vision", device="cpu")  # no weights here: any load attempt would fail differently
    with pytest.raises(SettingsError, match=f"'{name}'"):
        run_static(sample_64, StaticSettings(**changes), engine=engine, out_dir=tmp_path)
    assert engine.loaded_roles() == [] and list(tmp_path.iterdir()) == []


def test_cli_flags_reach_the_settings():
    from zrealism_lab.cli.main import build_parser
    from zrealism_lab.cli.run import static_settings_from_args

    args = build_parser().parse_args(["run", "static", "--image", "x.png", "--out", "o", "--hires", "2.0",
                                      "--hires-strength", "0.35", "--hires-upscaler", "latent", "--face-box",
                                      "1,2,30,40"])
    settings = static_settings_from_args(args)
    assert (settings.hires, settings.hires_strength, settings.hires_upscaler) == (2.0, 0.35, "latent")
    assert settings.face_detail and settings.face_boxes == ((1, 2, 30, 40),)


def test_cli_refuses_a_bad_factor_before_any_model_loads(capsys, sample_64, tmp_path):
    from zrealism_lab.cli.main import main

    assert main(["run", "static", "--image", str(sample_64), "--out", str(tmp_path), "--hires", "0"]) == 2
    assert "hires" in capsys.readouterr().err and list(tmp_path.iterdir()) == []
