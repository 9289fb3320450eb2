"""Single-file components as A1111 users have them: a base checkpoint, a VAE and a ControlNet in one file each, in
the original (LDM) layout, loaded offline from Python and the CLI, with wrong kinds refused before any model loads."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch

from zrealism_lab.errors import DamagedWeightsError, MissingWeightsError, SettingsError, UnsafeCheckpointError
from zrealism_lab.models.single_file import SD15_CONFIGS, describe_keys, detect_parts, read_keys
from zrealism_lab.settings import ControlUnit

UNITS = (ControlUnit("depth", 0.75, method="inflate"),)


@pytest.fixture(scope="module")
def a1111_files(tiny_bundle, tmp_path_factory):
    """The tiny bundle as one checkpoint, one VAE and one ControlNet file in the A1111 layout."""
    from zrealism_lab.models.tiny_single_file import write_tiny_checkpoint, write_tiny_controlnet, write_tiny_vae

    folder = tmp_path_factory.mktemp("a1111")
    return {"checkpoint": write_tiny_checkpoint(tiny_bundle, folder / "tiny_v1.safetensors"),
            "novae": write_tiny_checkpoint(tiny_bundle, folder / "tiny_noVAE.safetensors", with_vae=False),
            "vae": write_tiny_vae(tiny_bundle, folder / "tiny.vae.safetensors"),
            "controlnet": write_tiny_controlnet(tiny_bundle, "depth", folder / "control_tiny_depth.safetensors")}


def _diffusers(folder):
    from safetensors.torch import load_file

    return load_file(str(sorted(folder.glob("*.safetensors"))[0])), json.loads((folder / "config.json").read_text())


def _equal(converted, reference):
    assert set(converted) == set(reference)
    for key, value in reference.items():
        assert torch.equal(converted[key], value), key


def test_diffusers_converters_take_the_a1111_files_back_to_the_bundle_tensors(a1111_files, tiny_bundle):
    from diffusers.loaders import single_file_utils as sfu
    from safetensors.torch import load_file

    checkpoint = load_file(str(a1111_files["checkpoint"]))
    assert any(k.startswith("model.diffusion_model.input_blocks.") for k in checkpoint)
    unet, unet_config = _diffusers(tiny_bundle / "unet")
    _equal(sfu.convert_ldm_unet_checkpoint(checkpoint, unet_config), unet)
    vae, vae_config = _diffusers(tiny_bundle / "vae")
    _equal(sfu.convert_ldm_vae_checkpoint(checkpoint, vae_config), vae)
    _equal(sfu.convert_ldm_vae_checkpoint(load_file(str(a1111_files["vae"])), vae_config), vae)
    _equal(sfu.convert_ldm_clip_checkpoint(checkpoint), load_file(str(tiny_bundle / "text_encoder" / "model.safetensors")))
    controlnet, cn_config = _diffusers(tiny_bundle / "controlnet" / "depth")
    _equal(sfu.convert_controlnet_checkpoint(load_file(str(a1111_files["controlnet"])), cn_config), controlnet)


def test_what_a_file_holds_is_read_from_its_keys(a1111_files, tiny_bundle):
    assert detect_parts(read_keys(a1111_files["checkpoint"])) == {"unet": "ldm", "vae": "ldm", "text_encoder": "ldm"}
    assert detect_parts(read_keys(a1111_files["novae"])) == {"unet": "ldm", "text_encoder": "ldm"}
    assert detect_parts(read_keys(a1111_files["vae"])) == {"vae": "ldm"}
    assert detect_parts(read_keys(a1111_files["controlnet"])) == {"controlnet": "ldm"}
    assert detect_parts(_diffusers(tiny_bundle / "vae")[0]) == {"vae": "diffusers"}
    assert detect_parts(_diffusers(tiny_bundle / "controlnet" / "canny")[0]) == {"controlnet": "diffusers"}
    assert detect_parts(_diffusers(tiny_bundle / "unet")[0]) == {"unet": "diffusers"}
    assert "SDXL" in describe_keys(["conditioner.embedders.0.transformer.text_model.x"])
    assert "LoRA" in describe_keys(["lora_unet_down_blocks_0_attentions_0_proj_in.lora_down.weight"])


def test_single_file_base_vae_and_controlnet_give_the_folder_bundle_pixels(a1111_files, tiny_bundle, sample_64,
                                                                           small_settings, tiny_engine):
    from zrealism_lab.engine.engine import Engine
    from zrealism_lab.generate.static import run_static

    settings = small_settings.replace(controls=UNITS)
    reference = run_static(sample_64, settings, engine=tiny_engine)
    models = (tiny_engine.models.with_component("base", a1111_files["novae"], config=str(tiny_bundle))
              .with_component("vae", a1111_files["vae"], config=str(tiny_bundle / "vae"))
              .with_component("controlnet:depth", a1111_files["controlnet"],
                              config=str(tiny_bundle / "controlnet" / "depth")))
    engine = Engine(models, device="cpu")
    result = run_static(sample_64, settings, engine=engine)
    assert np.array_equal(np.asarray(result.image), np.asarray(reference.image))
    assert engine.ref("tokenizer").location == str(tiny_bundle / "tokenizer")  # the config folder's tokenizer
    whole = Engine(tiny_engine.models.with_component("base", a1111_files["checkpoint"], config=str(tiny_bundle)),
                   device="cpu")
    assert np.array_equal(np.asarray(run_static(sample_64, settings, engine=whole).image), np.asarray(reference.image))


def test_a_diffusers_vae_file_with_its_config_beside_it_loads_as_the_vae(tiny_bundle, tmp_path, sample_64,
                                                                         small_settings, tiny_engine):
    from zrealism_lab.engine.engine import Engine
    from zrealism_lab.generate.static import run_static

    shutil.copy(tiny_bundle / "vae" / "config.json", tmp_path / "config.json")
    vae_file = shutil.copy(tiny_bundle / "vae" / "diffusion_pytorch_model.safetensors", tmp_path / "my_vae.safetensors")
    engine = Engine(tiny_engine.models.with_component("vae", vae_file), device="cpu")
    result = run_static(sample_64, small_settings.replace(controls=UNITS), engine=engine)
    reference = run_static(sample_64, small_settings.replace(controls=UNITS), engine=tiny_engine)
    assert np.array_equal(np.asarray(result.image), np.asarray(reference.image))


def test_a_wrong_kind_is_refused_before_any_model_loads(a1111_files, tiny_engine, tiny_bundle):
    from zrealism_lab.engine.engine import Engine

    engine = Engine(tiny_engine.models.with_component("controlnet:depth", a1111_files["vae"]), device="cpu")
    with pytest.raises(SettingsError, match="holds a VAE .*--component vae=FILE"):
        engine.static_pipeline(("depth",))
    engine = Engine(tiny_engine.models.with_component("vae", a1111_files["controlnet"]), device="cpu")
    with pytest.raises(SettingsError, match="expected a VAE file.*ControlNet"):
        engine.static_pipeline(())
    engine = Engine(tiny_engine.models.with_component("base", a1111_files["novae"], config=str(tiny_bundle)),
                    device="cpu")
    with pytest.raises(SettingsError, match="noVAE"):
        engine.static_pipeline(())
    assert engine.loaded_roles() == []


def test_a_checkpoint_without_config_uses_the_shipped_sd15_configs_offline(a1111_files, tiny_engine):
    from zrealism_lab.engine.engine import Engine
    from zrealism_lab.models.loading import load_file_part

    engine = Engine(tiny_engine.models.with_component("base", a1111_files["checkpoint"]), device="cpu")
    assert engine.ref("scheduler").location == str(SD15_CONFIGS / "scheduler")
    with pytest.raises(MissingWeightsError, match="openai/clip-vit-large-patch14.*--component-config base=FOLDER"):
        engine.static_pipeline(())  # the tokenizer is the one part a checkpoint lacks: named, with where to get it
    with pytest.raises(DamagedWeightsError, match="does not match its config.*--component-config"):
        load_file_part(engine.ref("unet"), "unet")  # tiny weights against the SD1.5 architecture


def test_shipped_configs_are_the_sd15_architecture():
    import diffusers
    from accelerate import init_empty_weights
    from transformers import CLIPTextConfig, CLIPTextModel

    from zrealism_lab.models.fullsize import EXPECTED_PARAMETERS

    classes = {"unet": diffusers.UNet2DConditionModel, "vae": diffusers.AutoencoderKL,
               "controlnet": diffusers.ControlNetModel}
    for part, cls in classes.items():
        with init_empty_weights():
            model = cls.from_config(cls.load_config(SD15_CONFIGS / part))
        count = sum(p.numel() for p in model.parameters())
        assert abs(count - EXPECTED_PARAMETERS[part]) <= 0.005 * EXPECTED_PARAMETERS[part], part
    with init_empty_weights():
        text = CLIPTextModel(CLIPTextConfig.from_pretrained(SD15_CONFIGS / "text_encoder"))
    assert sum(p.numel() for p in text.parameters()) == EXPECTED_PARAMETERS["text_encoder"]
    assert json.loads((SD15_CONFIGS / "scheduler" / "scheduler_config.json").read_text())["beta_end"] == 0.012


def test_pickle_checkpoints_stay_opt_in(a1111_files, tiny_bundle, tmp_path):
    from safetensors.torch import load_file

    from zrealism_lab.models.loading import load_file_part
    from zrealism_lab.models.modelset import ComponentRef

    ckpt = tmp_path / "tiny_vae.ckpt"
    torch.save({"state_dict": load_file(str(a1111_files["vae"]))}, ckpt)
    ref = ComponentRef.parse("vae", ckpt, config=str(tiny_bundle / "vae"))
    with pytest.raises(UnsafeCheckpointError, match="allow_pickle"):
        load_file_part(ref, "vae")
    vae = load_file_part(ref, "vae", allow_pickle=True)
    reference, _ = _diffusers(tiny_bundle / "vae")
    _equal(vae.state_dict(), reference)


def test_cli_runs_a1111_single_files_offline(a1111_files, tiny_bundle, sample_64, tmp_path, capsys, tiny_engine):
    from zrealism_lab.cli.main import main

    code = main(["run", "static", "--image", str(sample_64), "--preset", "tiny", "--size", "64", "--steps", "2",
                 "--controls", "depth:inflate", "--detect-resolution", "64", "--quiet", "--out", str(tmp_path),
                 "--component", f"base={a1111_files['checkpoint']}", "--component-config", f"base={tiny_bundle}",
                 "--component", f"controlnet:depth={a1111_files['controlnet']}",
                 "--component-config", f"controlnet:depth={tiny_bundle / 'controlnet' / 'depth'}"])
    assert code == 0, capsys.readouterr().err
    code = main(["run", "static", "--image", str(sample_64), "--preset", "tiny", "--out", str(tmp_path),
                 "--component", f"vae={a1111_files['controlnet']}"])
    err = capsys.readouterr().err
    assert code == 2 and "expected a VAE file" in err and "Traceback" not in err
    code = main(["run", "static", "--image", str(sample_64), "--preset", "tiny", "--out", str(tmp_path),
                 "--component-config", f"vae={tiny_bundle}"])
    assert code == 2 and "component-config" in capsys.readouterr().err


@pytest.mark.slow
def test_full_size_sd15_files_convert_and_fit_the_shipped_configs():
    """At SD1.5 size (four blocks, the attention-less outer blocks), on meta tensors: nothing is allocated."""
    from diffusers.loaders import single_file_utils as sfu

    from zrealism_lab.models import fullsize
    from zrealism_lab.models.single_file import LDM_PREFIXES, build_part, convert_part
    from zrealism_lab.models.tiny_single_file import controlnet_to_ldm, unet_to_ldm, vae_to_ldm

    writers = {"unet": (unet_to_ldm, fullsize.SD15_UNET_CONFIG), "vae": (vae_to_ldm, fullsize.SD15_VAE_CONFIG),
               "controlnet": (controlnet_to_ldm, fullsize.SD15_CONTROLNET_CONFIG)}
    for part, (to_ldm, config) in writers.items():
        state = fullsize.build_component(part, empty=True).state_dict()
        config = json.loads((SD15_CONFIGS / part / "config.json").read_text())
        ldm = to_ldm(state, config)
        if part == "unet":  # SD1.5's LDM names: the first up block's upsampler, the last down block's resnet
            assert "output_blocks.2.1.conv.weight" in ldm and "input_blocks.11.0.in_layers.0.weight" in ldm
        if part == "unet":  # as in a checkpoint, where the converter looks for it
            ldm = {LDM_PREFIXES["unet"] + k: v for k, v in ldm.items()}
        converted = convert_part(ldm, part, "ldm", config)
        assert {k: tuple(v.shape) for k, v in converted.items()} == {k: tuple(v.shape) for k, v in state.items()}
        model = build_part(part, config, converted, dtype=None, role=part, path=SD15_CONFIGS)  # strict: every key
        assert set(model.state_dict()) == set(state)
    assert sfu.convert_ldm_clip_checkpoint({"cond_stage_model.transformer.text_model.x": 1}) == {"text_model.x": 1}
