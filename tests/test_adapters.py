"""LoRAs, textual-inversion embeddings and IP-Adapter on the tiny bundle, through the same code as users' files."""
from __future__ import annotations

import numpy as np
import pytest

from zrealism_lab.adapters.plan import resolve_adapters
from zrealism_lab.adapters.tags import split_lora_tags
from zrealism_lab.errors import SettingsError, UnsafeCheckpointError
from zrealism_lab.generate.static import run_static
from zrealism_lab.settings import StaticSettings


def pixels(result) -> np.ndarray:
    return np.asarray(result.image, dtype=np.int16)


@pytest.fixture(scope="module")
def base_run(tiny_engine, sample_64):
    settings = StaticSettings(size=64, steps=4, strength=0.5, detect_resolution=64)  # = conftest's small_settings
    return run_static(sample_64, settings, engine=tiny_engine, evaluate=False)


# ------------------------------------------------------------------------------------------------ prompt tags

@pytest.mark.parametrize("prompt, text, found", [
    ("photo <lora:tiny-detail:0.8>", "photo", [("tiny-detail", 0.8)]),
    ("photo, < lora : add detail : -0.5 >, skin", "photo, skin", [("add detail", -0.5)]),
    ("<lora:x>, photo", "photo", [("x", 1.0)]),
    ("<LYCO:y:2>photo", "photo", [("y", 2.0)]),
    ("no tags (word:1.2)", "no tags (word:1.2)", []),
])
def test_lora_tags_are_parsed_and_removed(prompt, text, found):
    assert split_lora_tags(prompt) == (text, found)


@pytest.mark.parametrize("prompt", ["<lora:>", "<lora:x:lots>", "<lora:x:1:2>", "<lora:x:1> <lora:x:0.5>",
                                    "<lora:x:inf>"])
def test_bad_lora_tags_are_refused_clearly(prompt):
    with pytest.raises(SettingsError, match="prompt"):
        StaticSettings(prompt=prompt).validated()


def test_lora_settings_take_the_forms_people_type():
    assert StaticSettings(loras="a:0.5, b").loras == (("a", 0.5), ("b", 1.0))
    assert StaticSettings(loras={"a": 1}).loras == (("a", 1.0),)
    assert StaticSettings(loras=[["a", 0.2], {"name": "b"}]).loras == (("a", 0.2), ("b", 1.0))
    data = StaticSettings(loras="a:0.5", embeddings="e1,e2").to_dict()
    assert StaticSettings.from_dict(data) == StaticSettings(loras="a:0.5", embeddings=("e1", "e2"))
    for bad in ({"loras": "a:x"}, {"loras": {"a": 9}}, {"loras": "a,a"}, {"embeddings": [""]}):
        with pytest.raises(SettingsError, match="loras|embeddings"):
            StaticSettings(**bad).validated()
    with pytest.raises(SettingsError, match="not both"):
        StaticSettings(prompt="x <lora:a:1>", loras="a").validated()


# ------------------------------------------------------------------------------------------------ files

def test_unknown_lora_lists_what_is_there(tiny_engine):
    with pytest.raises(SettingsError) as info:
        resolve_adapters(StaticSettings(loras="no-such-lora"), tiny_engine.models)
    assert "tiny-detail" in str(info.value) and "tiny-style" in str(info.value)


def test_a_missing_path_is_refused(tiny_engine, tmp_path):
    with pytest.raises(SettingsError, match="No file"):
        resolve_adapters(StaticSettings(loras=str(tmp_path / "gone.safetensors")), tiny_engine.models)


def test_loras_are_found_in_the_folders_the_environment_names(tiny_engine, tmp_path, monkeypatch):
    import shutil

    from zrealism_lab.adapters.files import LORA_DIRS_ENV

    source = next(p for p in map(__import__("pathlib").Path, tiny_engine.models.lora_dirs))
    (tmp_path / "sub").mkdir()
    shutil.copy(source / "tiny-detail.safetensors", tmp_path / "sub" / "my-lora.safetensors")
    monkeypatch.setenv(LORA_DIRS_ENV, str(tmp_path))
    plan = resolve_adapters(StaticSettings(prompt="a <lora:my-lora:0.3>"), tiny_engine.models)
    assert plan.loras[0].weight == 0.3 and plan.loras[0].origin == "prompt" and plan.prompt == "a"


def test_an_sdxl_lora_is_refused_before_any_model_loads(tiny_engine, tmp_path):
    import torch
    from safetensors.torch import save_file

    path = tmp_path / "xl.safetensors"
    save_file({"lora_te1_text_model_encoder_layers_0_self_attn_q_proj.lora_down.weight": torch.zeros(4, 768),
               "lora_te2_text_model_encoder_layers_0_self_attn_q_proj.lora_down.weight": torch.zeros(4, 1280)},
              str(path))
    with pytest.raises(SettingsError, match="SDXL"):
        resolve_adapters(StaticSettings(loras=str(path)), tiny_engine.models)


def test_a_lora_for_another_width_is_refused(tiny_engine, tmp_path):
    import torch
    from safetensors.torch import save_file

    path = tmp_path / "sd15.safetensors"  # made for real SD1.5 (768-wide text), the tiny bundle is 32 wide
    save_file({"lora_unet_down_blocks_1_attentions_0_transformer_blocks_0_attn2_to_k.lora_down.weight":
               torch.zeros(4, 768)}, str(path))
    with pytest.raises(SettingsError, match="768-wide"):
        resolve_adapters(StaticSettings(loras=str(path)), tiny_engine.models)


def test_a_full_checkpoint_given_as_lora_is_refused(tiny_engine, tiny_bundle):
    with pytest.raises(SettingsError, match="not|LoRA file"):
        resolve_adapters(StaticSettings(loras=str(tiny_bundle / "unet" / "diffusion_pytorch_model.safetensors")),
                         tiny_engine.models)


def test_pickle_embeddings_need_the_opt_in(tiny_engine, tmp_path):
    import torch

    path = tmp_path / "oldneg.pt"  # A1111's .pt layout
    torch.save({"string_to_param": {"*": torch.randn(3, 32)}, "name": "oldneg", "step": 100}, path)
    settings = StaticSettings(embeddings=str(path))
    with pytest.raises(UnsafeCheckpointError, match="pickle"):
        resolve_adapters(settings, tiny_engine.models)
    plan = resolve_adapters(settings, tiny_engine.models, allow_pickle=True)
    assert plan.embeddings[0].token == "oldneg" and plan.embeddings[0].vectors == 3


def test_sdxl_and_wrong_width_embeddings_are_refused(tiny_engine, tmp_path):
    import torch
    from safetensors.torch import save_file

    save_file({"clip_l": torch.zeros(2, 768), "clip_g": torch.zeros(2, 1280)}, str(tmp_path / "xl.safetensors"))
    save_file({"emb_params": torch.zeros(2, 768)}, str(tmp_path / "wide.safetensors"))
    with pytest.raises(SettingsError, match="SDXL"):
        resolve_adapters(StaticSettings(embeddings=str(tmp_path / "xl.safetensors")), tiny_engine.models)
    with pytest.raises(SettingsError, match="768 wide"):
        resolve_adapters(StaticSettings(embeddings=str(tmp_path / "wide.safetensors")), tiny_engine.models)


def test_unknown_ip_adapter_names_are_refused(tiny_engine):
    with pytest.raises(SettingsError, match="ip-adapter_sd15"):
        resolve_adapters(StaticSettings(ip_adapter="sdxl-thing"), tiny_engine.models)


# ------------------------------------------------------------------------------------------------ LoRA runs

def test_lora_weight_zero_keeps_the_base_pixels_and_one_changes_them(tiny_engine, sample_64, small_settings,
                                                                    base_run):
    zero = run_static(sample_64, small_settings.replace(loras="tiny-detail:0"), engine=tiny_engine, evaluate=False)
    one = run_static(sample_64, small_settings.replace(prompt=small_settings.prompt + " <lora:tiny-detail:1>"),
                     engine=tiny_engine, evaluate=False)
    after = run_static(sample_64, small_settings, engine=tiny_engine, evaluate=False)
    assert np.array_equal(pixels(zero), pixels(base_run))
    assert np.abs(pixels(one) - pixels(base_run)).max() > 10
    assert np.array_equal(pixels(after), pixels(base_run))  # nothing of the LoRA stays active
    assert one.adapters["loras"][0]["origin"] == "prompt" and "<lora" not in one.context.prompt


def test_two_loras_combine_and_switching_reads_no_base_weight(tiny_engine, sample_64, small_settings):
    run = lambda loras: pixels(run_static(sample_64, small_settings.replace(loras=loras), engine=tiny_engine,  # noqa
                                          evaluate=False))
    detail, style = run("tiny-detail:1"), run("tiny-style:1")
    loaded_roles, lora_loads = tiny_engine.loaded_roles(), tiny_engine.adapters.lora_loads
    both = run("tiny-detail:1,tiny-style:1")
    reweighted = run("tiny-detail:0.5,tiny-style:0.5")
    assert not np.array_equal(both, detail) and not np.array_equal(both, style)
    assert not np.array_equal(reweighted, both)
    assert tiny_engine.loaded_roles() == loaded_roles  # no component loaded again
    assert tiny_engine.adapters.lora_loads == lora_loads  # and no LoRA file read again
    assert np.array_equal(run("tiny-detail:1"), detail)


def test_kohya_and_diffusers_files_of_the_same_lora_give_the_same_pixels(tiny_engine, sample_64, small_settings,
                                                                         tmp_path):
    from safetensors.torch import load_file, save_file

    from zrealism_lab.models.tiny_adapters import kohya_from_pairs

    folder = next(iter(tiny_engine.models.lora_dirs))
    peft = load_file(f"{folder}/tiny-style/pytorch_lora_weights.safetensors")
    pairs = {key.removesuffix(".lora_A.weight"): (peft[key], peft[key.replace("lora_A", "lora_B")])
             for key in peft if key.endswith("lora_A.weight")}
    save_file(kohya_from_pairs(pairs), str(tmp_path / "style-kohya.safetensors"))
    plan = resolve_adapters(StaticSettings(loras=str(tmp_path / "style-kohya.safetensors")), tiny_engine.models)
    assert plan.loras[0].format == "kohya"
    diffusers_run = run_static(sample_64, small_settings.replace(loras="tiny-style"), engine=tiny_engine,
                               evaluate=False)
    kohya_run = run_static(sample_64, small_settings.replace(loras=str(tmp_path / "style-kohya.safetensors")),
                           engine=tiny_engine, evaluate=False)
    assert diffusers_run.adapters["loras"][0]["format"] == "diffusers"
    assert np.abs(pixels(diffusers_run) - pixels(kohya_run)).max() <= 1


def test_fused_loras_match_unfused_and_unfuse_cleanly(tiny_engine, sample_64, small_settings, base_run):
    unfused = run_static(sample_64, small_settings.replace(loras="tiny-detail:0.8"), engine=tiny_engine,
                         evaluate=False)
    fused = run_static(sample_64, small_settings.replace(loras="tiny-detail:0.8", lora_fuse=True),
                       engine=tiny_engine, evaluate=False)
    after = run_static(sample_64, small_settings, engine=tiny_engine, evaluate=False)
    assert np.abs(pixels(fused) - pixels(unfused)).max() <= 2 and fused.adapters["lora_fuse"] is True
    assert np.array_equal(pixels(after), pixels(base_run))  # unfusing restores the base weights exactly


@pytest.mark.slow
def test_a_clip_after_a_lora_still_shares_the_unet_and_uses_the_lora(tiny_engine, sample_64, small_settings):
    from zrealism_lab.engine.sharing import shared_storage
    from zrealism_lab.generate.temporal import run_temporal
    from zrealism_lab.settings import TemporalSettings

    still = run_static(sample_64, small_settings.replace(loras="tiny-detail:1"), engine=tiny_engine, evaluate=False)
    clip = TemporalSettings(size=64, steps=4, strength=0.5, frames=8, context_length=8, detect_resolution=64)
    with_lora = run_temporal(still, clip.replace(loras="tiny-detail:1"), engine=tiny_engine, evaluate=False)
    motion, unet = tiny_engine.motion_unet(), tiny_engine.component("unet")
    spatial = shared_storage(unet, motion)
    assert spatial["shared"] == spatial["parameters"]  # every 2D UNet tensor, LoRA layers included, is the same
    without = run_temporal(still, clip, engine=tiny_engine, evaluate=False)
    assert len(with_lora.frames) == 8
    assert np.abs(np.asarray(with_lora.frames[0], np.int16) - np.asarray(without.frames[0], np.int16)).max() > 5


# ------------------------------------------------------------------------------------------------ embeddings

def test_an_embedding_token_changes_the_conditioning(tiny_engine, sample_64, small_settings):
    prompt = small_settings.prompt + ", tiny-neg"
    plain = run_static(sample_64, small_settings.replace(prompt=prompt), engine=tiny_engine, evaluate=False)
    embedded = run_static(sample_64, small_settings.replace(prompt=prompt, embeddings="tiny-neg"),
                          engine=tiny_engine, evaluate=False)
    weighted = run_static(sample_64, small_settings.replace(prompt=small_settings.prompt + ", (tiny-neg:1.3)",
                                                            embeddings="tiny-neg"), engine=tiny_engine, evaluate=False)
    again = run_static(sample_64, small_settings.replace(prompt=prompt), engine=tiny_engine, evaluate=False)
    assert not np.array_equal(pixels(plain), pixels(embedded))
    assert not np.array_equal(pixels(weighted), pixels(embedded))  # compel sees the token too
    assert np.array_equal(pixels(again), pixels(plain))  # unloaded when not asked for
    entry = embedded.adapters["embeddings"][0]
    assert entry["token"] == "tiny-neg" and entry["vectors"] == 2 and len(entry["hash"]) == 12


# ------------------------------------------------------------------------------------------------ IP-Adapter

@pytest.mark.slow
def test_ip_adapter_scale_steers_stills(tiny_engine, sample_64, small_settings, base_run, tmp_path):
    from PIL import Image

    run = lambda **kw: run_static(sample_64, small_settings.replace(**kw), engine=tiny_engine,  # noqa: E731
                                  evaluate=False)
    zero, one = run(ip_adapter="sd15", ip_adapter_scale=0.0), run(ip_adapter="sd15", ip_adapter_scale=1.0)
    early = run(ip_adapter="ip-adapter_sd15", ip_adapter_scale=1.0, ip_adapter_end=0.5)
    Image.new("RGB", (48, 48), (200, 30, 30)).save(tmp_path / "red.png")
    other = run(ip_adapter="sd15", ip_adapter_scale=1.0, ip_adapter_image=str(tmp_path / "red.png"))
    assert np.abs(pixels(zero) - pixels(base_run)).max() <= 1  # IP-Adapter's attention kernel, rounding apart
    assert np.abs(pixels(one) - pixels(base_run)).max() > 10
    assert not np.array_equal(pixels(early), pixels(one))
    assert not np.array_equal(pixels(other), pixels(one))
    assert one.adapters["ip_adapter"]["variant"] == "ip-adapter" and one.adapters["ip_adapter"]["scale"] == 1.0
    after = run()
    assert np.array_equal(pixels(after), pixels(base_run))  # unloaded when not asked for


@pytest.mark.slow
def test_ip_adapter_steers_clips(tiny_engine, sample_64, small_settings):
    from zrealism_lab.generate.temporal import run_temporal
    from zrealism_lab.settings import TemporalSettings

    clip = TemporalSettings(size=64, steps=4, strength=0.5, frames=8, context_length=8, detect_resolution=64)
    first = lambda r: np.asarray(r.frames[0], np.int16)  # noqa: E731
    zero = run_temporal(sample_64, clip.replace(ip_adapter="sd15", ip_adapter_scale=0.0), engine=tiny_engine,
                        evaluate=False)
    one = run_temporal(sample_64, clip.replace(ip_adapter="sd15", ip_adapter_scale=1.0), engine=tiny_engine,
                       evaluate=False)
    assert np.abs(first(one) - first(zero)).max() > 5
    assert one.adapters["ip_adapter"]["name"] == "ip-adapter_sd15"


# ------------------------------------------------------------------------------------------------ records

def test_records_carry_the_adapters_and_rerun_reproduces(tiny_engine, sample_64, small_settings, tmp_path):
    import json

    from zrealism_lab.generate.rerun import rerun

    settings = small_settings.replace(prompt=small_settings.prompt + " <lora:tiny-detail:0.7>", loras="tiny-style:0.4",
                                      embeddings="tiny-neg", negative_prompt="tiny-neg, blurry", ip_adapter="sd15")
    result = run_static(sample_64, settings, engine=tiny_engine, out_dir=tmp_path / "runs", evaluate=False)
    record = json.loads((result.run_dir / "record.json").read_text())
    loras = {entry["name"]: entry for entry in record["adapters"]["loras"]}
    assert loras["tiny-detail"]["weight"] == 0.7 and loras["tiny-style"]["weight"] == 0.4
    assert all(len(entry["sha256"]) == 64 for entry in loras.values())
    assert record["adapters"]["embeddings"][0]["token"] == "tiny-neg"
    assert record["adapters"]["ip_adapter"]["sha256"]
    again = rerun(result.run_dir, tmp_path / "again", engine=tiny_engine)
    assert again.comparison["output.png"] == "identical"


# ------------------------------------------------------------------------------------------------ CLI

def test_the_cli_takes_loras_embeddings_and_the_ip_adapter(capsys, sample_64, tmp_path, tiny_engine):
    import json

    from zrealism_lab.cli import main

    code = main(["run", "static", "--image", str(sample_64), "--preset", "tiny", "--device", "cpu", "--size", "64",
                 "--steps", "4", "--strength", "0.5", "--detect-resolution", "64", "--out", str(tmp_path), "--quiet",
                 "--lora", "tiny-detail:0.6", "--lora", "tiny-style", "--embedding", "tiny-neg",
                 "--negative-prompt", "tiny-neg", "--ip-adapter", "sd15", "--ip-scale", "0.4"])
    assert code == 0, capsys.readouterr().err
    record = json.loads(next(tmp_path.glob("*/record.json")).read_text())
    assert [(e["name"], e["weight"]) for e in record["adapters"]["loras"]] == [("tiny-detail", 0.6),
                                                                               ("tiny-style", 1.0)]
    assert record["adapters"]["ip_adapter"]["scale"] == 0.4
    assert record["settings"]["embeddings"] == ["tiny-neg"]


def test_the_cli_refuses_an_unknown_lora_before_loading(capsys, sample_64, tmp_path):
    from zrealism_lab.cli import main

    code = main(["run", "static", "--image", str(sample_64), "--preset", "tiny", "--device", "cpu", "--out",
                 str(tmp_path), "--lora", "nope:0.5"])
    assert code == 2
    assert "nope" in capsys.readouterr().err and not any(tmp_path.iterdir())


def test_models_check_lists_the_adapters(capsys):
    from zrealism_lab.cli import main

    main(["models", "check", "tiny"])
    out = capsys.readouterr().out
    assert "lora tiny-detail" in out and "embedding tiny-neg" in out and "ip_adapter ip-adapter_sd15" in out


# ------------------------------------------------------------------------------------------------ sweeps

def test_sweeps_take_lora_weight_and_ip_adapter_scale_axes(tiny_engine, sample_64, tmp_path):
    from zrealism_lab.sweep.runner import run_sweep
    from zrealism_lab.sweep.spec import SweepSpec

    base = {"size": 64, "steps": 4, "strength": 0.5, "detect_resolution": 64, "loras": "tiny-style:1"}
    spec = SweepSpec.from_dict({"image": str(sample_64), "preset": "tiny", "base": base,
                                "axes": {"loras.tiny-detail": [0.0, 1.0], "ip_adapter_scale": [0.0, 0.8]}})
    jobs = spec.expand()
    assert [j.settings.loras for j in jobs][:2] == [(("tiny-style", 1.0), ("tiny-detail", 0.0))] * 2
    assert [j.settings.ip_adapter_scale for j in jobs] == [0.0, 0.8, 0.0, 0.8]
    with pytest.raises(SettingsError, match="from -4 to 4"):
        SweepSpec.from_dict({"image": str(sample_64), "base": base, "axes": {"loras.tiny-detail": [9]}}).expand()
    with pytest.raises(SettingsError, match="not both"):
        SweepSpec.from_dict({"image": str(sample_64), "base": base,
                             "axes": {"loras": ["", "tiny-detail"], "loras.tiny-style": [0.5]}}).expand()
    small = SweepSpec.from_dict({"image": str(sample_64), "preset": "tiny", "base": base,
                                 "axes": {"loras.tiny-detail": [0.0, 1.0]}})
    result = run_sweep(small, tmp_path / "sweep", engine=tiny_engine, progress=False)
    assert result.ran == 2 and result.failed == 0
    assert [row["status"] for row in result.rows] == ["completed", "completed"]


# ------------------------------------------------------------------------------------------------ lab

def test_the_lab_lists_loras_with_a_weight_slider_and_runs_them(tmp_path, tiny_engine, monkeypatch):
    """The Controls tab's Adapters section (headless): the tiny LoRAs found, one switched on at 0.8, the run
    applies it and the Results tab names it; "send to Controls" puts a run's adapters back."""
    from zrealism_lab import Lab

    lab = Lab(preset="tiny", size=64, steps=4, out_dir=tmp_path / "runs", source="dark")
    lab._analysis_jobs.wait(30)
    rows = lab.adapter_rows
    assert {"tiny-detail", "tiny-style"} <= set(rows.lora_rows) and "tiny-neg" in rows.embedding_boxes
    box, slider = rows.lora_rows["tiny-detail"]
    box.value, slider.value = True, 0.8
    rows.ip_choice.value = "ip-adapter_sd15"
    settings = lab.current_settings()
    assert settings.loras == (("tiny-detail", 0.8),) and settings.ip_adapter == "ip-adapter_sd15"
    assert lab.run()
    assert lab.wait(180), "the run did not finish"
    assert lab.last_result.adapters["loras"][0]["weight"] == 0.8
    assert "LoRA tiny-detail 0.8" in lab.results_notes.value
    box.value = False
    lab.apply_settings(lab.last_result.settings)
    assert rows.lora_rows["tiny-detail"][0].value and rows.lora_rows["tiny-detail"][1].value == 0.8


# ------------------------------------------------------------------------------------------------ reports

@pytest.mark.slow
def test_the_static_report_shows_the_adapters(tmp_path, sample_64, tiny_engine):
    import contextlib
    import io
    from pathlib import Path

    from zrealism_lab.cli.main import main

    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        code = main(["report", "static", "--image", str(sample_64), "-p", "size", "64", "-p", "steps", "4",
                     "-p", "detect_resolution", "64", "-p", "loras", "tiny-detail:0.8", "-p", "embeddings",
                     "tiny-neg", "--out", str(tmp_path), "--quiet"])
    assert code == 0
    html_path = next(line for line in printed.getvalue().splitlines() if line.strip().startswith("html:"))
    html = Path(html_path.split("html:", 1)[1].strip()).read_text(encoding="utf-8")
    assert "Adapters" in html and "tiny-detail" in html and "tiny-neg" in html
