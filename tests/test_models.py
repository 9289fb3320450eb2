"""Model sets and the loader: local folders, single files, pickle refusal, the offline missing-weights error."""
from __future__ import annotations

import shutil

import pytest
import torch

from zrealism_lab.errors import MissingWeightsError, SettingsError, UnsafeCheckpointError
from zrealism_lab.models.loading import load_component, locate
from zrealism_lab.models.modelset import ComponentRef, resolve_modelset
from zrealism_lab.settings import ControlUnit


def test_component_refs_parse_hub_folder_and_file(tmp_path):
    assert ComponentRef.parse("vae", "stabilityai/sd-vae-ft-mse").kind == "hub"
    hub = ComponentRef.parse("base", "org/name:unet")
    assert (hub.location, hub.subfolder) == ("org/name", "unet")
    assert ComponentRef.parse("vae", str(tmp_path)).kind == "folder"
    assert ComponentRef.parse("vae", "./missing-folder").kind == "folder"
    assert ComponentRef.parse("vae", "weights/vae.safetensors").kind == "file"


def test_presets_name_every_component():
    rv = resolve_modelset("realistic-vision")
    assert rv.base.location == "SG161222/Realistic_Vision_V5.1_noVAE"
    assert rv.vae.location == "stabilityai/sd-vae-ft-mse"
    assert rv.controlnets["openpose"].location == "lllyasviel/control_v11p_sd15_openpose"
    assert rv.controlnets["lineart_anime"].location == "lllyasviel/control_v11p_sd15s2_lineart_anime"
    assert rv.motion_adapter.location == "guoyww/animatediff-motion-adapter-v1-5-2"
    with pytest.raises(SettingsError, match="preset"):
        resolve_modelset("no-such-preset")


def test_load_from_local_folder_is_the_tiny_path(tiny_engine):
    from diffusers import ControlNetModel

    assert tiny_engine.models.base.kind == "folder"
    controlnet = load_component(tiny_engine.models.controlnet("canny"), ControlNetModel)
    assert isinstance(controlnet, ControlNetModel)


def test_load_single_safetensors_file(tiny_bundle, tmp_path):
    from diffusers import ControlNetModel

    folder = tiny_bundle / "controlnet" / "depth"
    single = tmp_path / "depth.safetensors"
    shutil.copy(folder / "diffusion_pytorch_model.safetensors", single)
    ref = ComponentRef.parse("controlnet:depth", single, config=str(folder))
    model = load_component(ref, ControlNetModel)
    reference = ControlNetModel.from_pretrained(folder)
    for (name, a), (_, b) in zip(model.state_dict().items(), reference.state_dict().items()):
        assert torch.equal(a, b), name


def test_pickle_checkpoints_are_refused_unless_allowed(tmp_path, tiny_bundle):
    from diffusers import AutoencoderKL

    ckpt = tmp_path / "model.ckpt"
    ckpt.write_bytes(b"not loaded")
    with pytest.raises(UnsafeCheckpointError, match="allow_pickle"):
        load_component(ComponentRef.parse("base", ckpt), AutoencoderKL)
    pickled_folder = tmp_path / "vae"
    pickled_folder.mkdir()
    shutil.copy(tiny_bundle / "vae" / "config.json", pickled_folder / "config.json")
    torch.save(AutoencoderKL.from_pretrained(tiny_bundle / "vae").state_dict(),
               pickled_folder / "diffusion_pytorch_model.bin")
    with pytest.raises(UnsafeCheckpointError):
        load_component(ComponentRef.parse("vae", pickled_folder), AutoencoderKL)
    vae = load_component(ComponentRef.parse("vae", pickled_folder), AutoencoderKL, allow_pickle=True)
    assert isinstance(vae, AutoencoderKL)


def test_offline_missing_weights_error_names_component_place_and_fix(small_settings, sample_64):
    from zrealism_lab.engine.engine import Engine
    from zrealism_lab.generate.static import run_static

    engine = Engine("realistic-vision", device="cpu")
    with pytest.raises(MissingWeightsError) as info:
        run_static(sample_64, small_settings.replace(controls=(ControlUnit("canny"),)), engine=engine)
    message = str(info.value)
    assert "SG161222/Realistic_Vision_V5.1_noVAE" in message and "unet" in message
    assert "zrealism models download realistic-vision" in message and "--component" in message
    assert len(message.splitlines()) < 15
    assert engine.loaded_roles() == []


def test_missing_local_folder_is_reported(tmp_path):
    from diffusers import AutoencoderKL

    status = locate(ComponentRef.parse("vae", tmp_path / "nothing-here"))
    assert not status.present
    with pytest.raises(MissingWeightsError, match="nothing-here"):
        load_component(ComponentRef.parse("vae", tmp_path / "nothing-here"), AutoencoderKL)


def test_with_component_points_one_role_elsewhere(tiny_bundle):
    models = resolve_modelset("tiny").with_component("controlnet:canny", tiny_bundle / "controlnet" / "depth")
    assert models.controlnets["canny"].location.endswith("depth")
    with pytest.raises(SettingsError):
        models.with_component("controlnet:sketch", tiny_bundle)


def test_engine_cache_reloads_a_component_changed_on_disk(tmp_path):
    from zrealism_lab.engine.engine import get_engine
    from zrealism_lab.models.tiny import build_tiny_bundle

    bundle = build_tiny_bundle(tmp_path / "bundle", seed=3)
    first = get_engine(bundle, device="cpu")
    assert get_engine(bundle, device="cpu") is first  # unchanged files: the same engine, nothing loaded again
    weights = bundle / "vae" / "diffusion_pytorch_model.safetensors"
    weights.write_bytes(weights.read_bytes())  # rewritten (new mtime): must not be served from the old engine
    assert get_engine(bundle, device="cpu") is not first


def test_download_fetches_every_hub_component_and_the_few_step_lora(monkeypatch, tmp_path):
    """What `zrealism models download` asks the hub for (the hub call itself is replaced: tests never touch the
    network): each component's repository once, safetensors and configs only, then the few-step LoRA."""
    import huggingface_hub

    from zrealism_lab.models.download import download_modelset
    from zrealism_lab.models.modelset import resolve_modelset

    asked: list[tuple[str, list[str]]] = []

    def fake_snapshot(repo, allow_patterns=None, ignore_patterns=None):
        asked.append((repo, list(allow_patterns or ())))
        return str(tmp_path / repo.replace("/", "--"))

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake_snapshot)
    models = resolve_modelset("realistic-vision")
    download_modelset(models)
    repos = [repo for repo, _ in asked]
    assert repos[-1] == "latent-consistency/lcm-lora-sdv1-5" and len(repos) == len(set(repos))
    assert {ref.location for ref in models.components() if ref.kind == "hub"} <= set(repos)
    assert all("*.bin" not in patterns and "*.safetensors" in patterns for _, patterns in asked)
