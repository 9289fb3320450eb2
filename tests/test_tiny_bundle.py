"""The tiny random-weight bundle: layout, reproducibility, atomic builds, tokenizer, and real pipelines running on it."""
from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from zrealism_lab.errors import SettingsError
from zrealism_lab.models.tiny import (
    MANIFEST_NAME,
    TINY_BUNDLE_VERSION,
    TINY_CONTROLNETS,
    build_tiny_bundle,
    is_complete_bundle,
    required_files,
)
from zrealism_lab.settings import DEFAULT_NEGATIVE_PROMPT, DEFAULT_PROMPT

SIZE_LIMIT = 50 * 1024 * 1024


def _files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    # Tiny 64 px models gain nothing from intra-op threads, and on a busy 2-core machine two threads can make a
    # 0.2 s pipeline call take 10 s or more.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def bundle(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("tiny") / "bundle"
    start = time.perf_counter()
    root = build_tiny_bundle(out, seed=0)
    print(f"tiny bundle built in {time.perf_counter() - start:.2f} s")
    return root


@pytest.fixture(scope="module")
def controlnets(bundle):
    from diffusers import ControlNetModel

    return [ControlNetModel.from_pretrained(bundle / "controlnet" / kind, local_files_only=True)
            for kind in ("depth", "canny")]


@pytest.fixture(scope="module")
def img2img_pipe(bundle, controlnets):
    from diffusers import MultiControlNetModel, StableDiffusionControlNetImg2ImgPipeline

    pipe = StableDiffusionControlNetImg2ImgPipeline.from_pretrained(
        bundle, controlnet=MultiControlNetModel(controlnets), local_files_only=True)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def _source(size: int = 64) -> Image.Image:
    rng = np.random.default_rng(0)
    return Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8))


def _control(value: int) -> Image.Image:
    return Image.new("RGB", (64, 64), (value, value, value))


# ---------------------------------------------------------------------------------------------------------------
# Layout and manifest


def test_layout_is_complete_and_uses_only_safetensors(bundle):
    files = _files(bundle)
    assert set(required_files()) <= set(files)
    assert MANIFEST_NAME in files
    assert not [f for f in files if f.endswith((".bin", ".ckpt", ".pt", ".pth"))]
    for kind in ("depth", "openpose", "canny", "lineart_anime"):
        assert f"controlnet/{kind}/diffusion_pytorch_model.safetensors" in files
    assert set(TINY_CONTROLNETS) >= {"depth", "openpose", "canny", "lineart_anime"}
    assert is_complete_bundle(bundle)


def test_manifest_lists_every_file_with_its_hash(bundle):
    import hashlib

    manifest = json.loads((bundle / MANIFEST_NAME).read_text())
    assert manifest["format"] == "zrealism-tiny"
    assert manifest["version"] == TINY_BUNDLE_VERSION
    assert manifest["seed"] == 0
    on_disk = {k: hashlib.sha256(v).hexdigest() for k, v in _files(bundle).items() if k != MANIFEST_NAME}
    assert manifest["files"] == on_disk


def test_model_index_and_scheduler_match_sd15(bundle):
    index = json.loads((bundle / "model_index.json").read_text())
    assert index["_class_name"] == "StableDiffusionPipeline"
    assert index["safety_checker"] == [None, None]
    assert index["feature_extractor"] == [None, None]
    assert index["requires_safety_checker"] is False
    assert index["unet"] == ["diffusers", "UNet2DConditionModel"]
    assert index["text_encoder"] == ["transformers", "CLIPTextModel"]
    scheduler = json.loads((bundle / "scheduler" / "scheduler_config.json").read_text())
    assert scheduler["_class_name"] in ("PNDMScheduler", "DDIMScheduler")
    assert (scheduler["beta_schedule"], scheduler["num_train_timesteps"]) == ("scaled_linear", 1000)
    assert (scheduler["beta_start"], scheduler["beta_end"]) == (0.00085, 0.012)
    assert scheduler["steps_offset"] == 1
    assert scheduler["clip_sample"] is False and scheduler["set_alpha_to_one"] is False


def test_bundle_is_small(bundle):
    total = sum(p.stat().st_size for p in bundle.rglob("*") if p.is_file())
    print(f"tiny bundle size {total / 1e6:.1f} MB")
    assert total < SIZE_LIMIT


# ---------------------------------------------------------------------------------------------------------------
# Reproducibility


def test_same_seed_rebuild_is_byte_identical(bundle, tmp_path):
    rng_before = torch.get_rng_state()
    again = build_tiny_bundle(tmp_path / "again", seed=0)
    assert torch.equal(rng_before, torch.get_rng_state())  # the caller's random stream is left alone
    assert _files(again) == _files(bundle)


def test_controlnets_of_one_bundle_differ(bundle):
    files = _files(bundle)
    weights = {files[f"controlnet/{k}/diffusion_pytorch_model.safetensors"] for k in TINY_CONTROLNETS}
    assert len(weights) == len(TINY_CONTROLNETS)


# ---------------------------------------------------------------------------------------------------------------
# Reuse, overwrite and atomicity


def test_complete_bundle_is_returned_untouched(bundle):
    stamps = {p: p.stat().st_mtime_ns for p in bundle.rglob("*")}
    start = time.perf_counter()
    assert build_tiny_bundle(bundle, seed=0) == bundle
    assert time.perf_counter() - start < 1.0
    assert {p: p.stat().st_mtime_ns for p in bundle.rglob("*")} == stamps


def test_other_seed_needs_overwrite_and_gives_different_weights(bundle, tmp_path):
    import shutil

    out = tmp_path / "b"
    shutil.copytree(bundle, out)
    with pytest.raises(SettingsError, match="overwrite=True"):
        build_tiny_bundle(out, seed=1)
    assert _files(out) == _files(bundle)
    build_tiny_bundle(out, seed=1, overwrite=True)
    assert is_complete_bundle(out)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b"]  # no staging or retired folders left beside it
    ours, theirs = _files(bundle), _files(out)
    weights = [f for f in ours if f.endswith(".safetensors")]
    assert len(weights) == 4 + len(TINY_CONTROLNETS)
    assert all(ours[f] != theirs[f] for f in weights)
    assert ours["tokenizer/vocab.json"] == theirs["tokenizer/vocab.json"]  # the tokenizer does not depend on the seed
    assert json.loads(theirs[MANIFEST_NAME])["seed"] == 1


def test_interrupted_build_leaves_no_complete_looking_folder(tmp_path, monkeypatch):
    from diffusers import ControlNetModel

    def fail(self, *args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(ControlNetModel, "save_pretrained", fail)
    out = tmp_path / "bundle"
    with pytest.raises(RuntimeError, match="disk full"):
        build_tiny_bundle(out, seed=0)
    assert not out.exists()
    assert not is_complete_bundle(out)
    assert list(tmp_path.iterdir()) == []  # the half-built staging folder is gone too


def test_interrupted_rebuild_keeps_the_previous_bundle(bundle, tmp_path, monkeypatch):
    import shutil

    from diffusers import MotionAdapter

    out = tmp_path / "bundle"
    shutil.copytree(bundle, out)
    monkeypatch.setattr(MotionAdapter, "save_pretrained", lambda self, *a, **k: (_ for _ in ()).throw(OSError("boom")))
    with pytest.raises(OSError, match="boom"):
        build_tiny_bundle(out, seed=0, overwrite=True)
    assert is_complete_bundle(out)
    assert _files(out) == _files(bundle)


def test_damaged_bundle_is_detected_and_rebuilt(bundle, tmp_path):
    import shutil

    out = tmp_path / "bundle"
    shutil.copytree(bundle, out)
    weights = out / "unet" / "diffusion_pytorch_model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    assert not is_complete_bundle(out)
    build_tiny_bundle(out, seed=0)
    assert is_complete_bundle(out)
    assert _files(out) == _files(bundle)


def test_missing_file_or_foreign_manifest_is_incomplete(bundle, tmp_path):
    import shutil

    out = tmp_path / "bundle"
    shutil.copytree(bundle, out)
    (out / "controlnet" / "canny" / "config.json").unlink()
    assert not is_complete_bundle(out, verify_hashes=False)
    assert not is_complete_bundle(tmp_path / "nowhere")
    (tmp_path / "odd").mkdir()
    (tmp_path / "odd" / MANIFEST_NAME).write_text("[1, 2]")
    assert not is_complete_bundle(tmp_path / "odd")


def test_foreign_folder_is_never_deleted(tmp_path):
    out = tmp_path / "notes"
    out.mkdir()
    (out / "thesis.txt").write_text("keep me")
    with pytest.raises(SettingsError, match="other files"):
        build_tiny_bundle(out, seed=0, overwrite=True)
    assert (out / "thesis.txt").read_text() == "keep me"
    for bad_seed in (-1, 2**32, 1.5, "0", True):
        with pytest.raises(SettingsError, match="seed"):
            build_tiny_bundle(tmp_path / "x", seed=bad_seed)
    assert not (tmp_path / "x").exists()


# ---------------------------------------------------------------------------------------------------------------
# Tokenizer and text encoder


@pytest.mark.parametrize("class_name", ["CLIPTokenizer", "CLIPTokenizerFast"])
def test_tokenizer_gives_short_sequences(bundle, class_name):
    import transformers

    tokenizer = getattr(transformers, class_name).from_pretrained(bundle / "tokenizer")
    ids = tokenizer("photorealistic portrait of a martial artist, cinematic lighting").input_ids
    tokens = tokenizer.convert_ids_to_tokens(ids)
    assert tokens[0] == "<|startoftext|>" and tokens[-1] == "<|endoftext|>"
    assert len(ids) <= 16
    assert {"photorealistic</w>", "portrait</w>", "cinematic</w>", "lighting</w>"} <= set(tokens)
    for prompt in (DEFAULT_PROMPT, DEFAULT_NEGATIVE_PROMPT):
        assert len(tokenizer(prompt).input_ids) < 60
    assert tokenizer.model_max_length == 77
    # Unknown words still tokenize, byte by byte at worst, as with CLIP's own vocabulary.
    odd = tokenizer("zyxqv 東京 ✨").input_ids
    assert tokenizer.unk_token_id not in odd[1:-1]


def test_vocabulary_has_clip_layout(bundle):
    vocab = json.loads((bundle / "tokenizer" / "vocab.json").read_text(encoding="utf-8"))
    merges = (bundle / "tokenizer" / "merges.txt").read_text(encoding="utf-8").splitlines()
    assert merges[0] == "#version: 0.2"
    assert 1000 <= len(vocab) <= 2000
    assert sorted(vocab.values()) == list(range(len(vocab)))
    by_id = sorted(vocab, key=vocab.get)
    assert all(len(t) == 1 for t in by_id[:256])
    assert by_id[256:512] == [t + "</w>" for t in by_id[:256]]
    assert by_id[-2:] == ["<|startoftext|>", "<|endoftext|>"]
    for line in merges[1:]:
        left, right = line.split(" ")
        assert left in vocab and right in vocab and left + right in vocab


def test_text_encoder_ids_match_tokenizer(bundle):
    from transformers import CLIPTextConfig, CLIPTokenizer

    config = CLIPTextConfig.from_pretrained(bundle / "text_encoder")
    tokenizer = CLIPTokenizer.from_pretrained(bundle / "tokenizer")
    assert config.vocab_size == len(tokenizer)
    assert config.bos_token_id == tokenizer.bos_token_id
    assert config.eos_token_id == tokenizer.eos_token_id
    assert config.pad_token_id == tokenizer.pad_token_id
    assert config.max_position_embeddings == 77


# ---------------------------------------------------------------------------------------------------------------
# Real diffusers pipelines on the bundle


def test_stable_diffusion_pipeline_loads_offline(bundle):
    from diffusers import AutoencoderKL, StableDiffusionPipeline

    pipe = StableDiffusionPipeline.from_pretrained(bundle, local_files_only=True)
    assert isinstance(pipe.vae, AutoencoderKL)
    assert pipe.vae_scale_factor == 8
    assert pipe.safety_checker is None
    assert pipe.unet.config.sample_size * pipe.vae_scale_factor == 64


def test_controlnet_img2img_with_two_controlnets(img2img_pipe):
    def run(controls, scale=1.0):
        return img2img_pipe(
            "photorealistic portrait, cinematic lighting, detailed skin", image=_source(), control_image=controls,
            strength=0.8, num_inference_steps=2, controlnet_conditioning_scale=[scale, scale],
            generator=torch.Generator().manual_seed(0),
        ).images[0]

    image = run([_control(128), _control(255)])
    assert isinstance(image, Image.Image) and image.size == (64, 64)
    # The ControlNets are not inert: other control maps give another picture.
    other = run([_control(0), _control(0)])
    assert np.abs(np.asarray(image, float) - np.asarray(other, float)).mean() > 1.0


def test_animatediff_video_to_video_controlnet_runs(bundle, img2img_pipe, controlnets):
    from diffusers import (AnimateDiffVideoToVideoControlNetPipeline, DDIMScheduler, MotionAdapter,
                           MultiControlNetModel, UNetMotionModel)

    adapter = MotionAdapter.from_pretrained(bundle / "motion_adapter", local_files_only=True)
    assert isinstance(UNetMotionModel.from_unet2d(img2img_pipe.unet, adapter), UNetMotionModel)
    pipe = AnimateDiffVideoToVideoControlNetPipeline.from_pipe(
        img2img_pipe, motion_adapter=adapter, controlnet=MultiControlNetModel(controlnets))
    pipe.scheduler = DDIMScheduler.from_config(pipe.scheduler.config)
    pipe.set_progress_bar_config(disable=True)
    frames = pipe(
        prompt="photorealistic portrait", video=[_source()] * 8,
        conditioning_frames=[[_control(128)] * 8, [_control(255)] * 8],
        strength=0.8, num_inference_steps=2, generator=torch.Generator().manual_seed(0),
    ).frames[0]
    assert len(frames) == 8
    assert all(frame.size == (64, 64) for frame in frames)
