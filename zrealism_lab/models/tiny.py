"""The tiny random-weight model bundle: SD1.5's on-disk layout at toy size, so every path runs offline.

Real runs load Stable Diffusion 1.5, four ControlNets and an AnimateDiff motion adapter from diffusers folders. The
tiny bundle has exactly that layout (``model_index.json``, ``unet/``, ``vae/``, ``text_encoder/``, ``tokenizer/``,
``scheduler/``, ``controlnet/<kind>/``, ``motion_adapter/``), so it goes through the very same loading code. Its
weights are random: its pictures show the plumbing, not realism.

The sizes follow diffusers' own fast-test dummy components, except where the real architecture's shape matters to our
code: the VAE downsamples 8x (4 blocks) like SD1.5's, so 64 px images give 8x8 latents, and each ControlNet's
conditioning embedding downsamples 8x to match.

The build is reproducible (same seed, same library versions -> byte-identical files) and atomic: it is assembled in a
hidden sibling folder and renamed into place, so an interrupted build never leaves a complete-looking bundle.
"""
from __future__ import annotations

import hashlib
import json
import operator
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Iterable

from ..errors import SettingsError
from ..files import atomic_write_json, sha256_file
from ..settings import CONTROL_KINDS

TINY_BUNDLE_VERSION = 2  # bump whenever the layout, a config or the tokenizer corpus changes
BUNDLE_FORMAT = "zrealism-tiny"
MANIFEST_NAME = "zrealism_bundle.json"
TINY_CONTROLNETS: tuple[str, ...] = tuple(CONTROL_KINDS)  # one ControlNet folder per control kind the lab knows

BOS_TOKEN = "<|startoftext|>"
EOS_TOKEN = "<|endoftext|>"
TOKENIZER_VOCAB_SIZE = 1536  # 512 byte symbols + ~1000 merges + 2 specials: every corpus word is a token or two
MODEL_MAX_LENGTH = 77

# Component configurations (constructor keyword arguments). Plain data, so importing this module stays cheap.
UNET_CONFIG: dict[str, Any] = {
    "sample_size": 8,  # 8x8 latents -> 64 px default images
    "in_channels": 4,
    "out_channels": 4,
    "block_out_channels": (32, 64),
    "layers_per_block": 2,  # as SD1.5, and what motion_layers_per_block must match
    # Attention only at the coarser level: at 512 px a full-resolution attention block makes the tiny UNet
    # about 6x slower while showing nothing more of the plumbing.
    "down_block_types": ("DownBlock2D", "CrossAttnDownBlock2D"),
    "up_block_types": ("CrossAttnUpBlock2D", "UpBlock2D"),
    "cross_attention_dim": 32,
    "attention_head_dim": 8,
    "norm_num_groups": 2,
}
VAE_CONFIG: dict[str, Any] = {
    "sample_size": 64,
    "in_channels": 3,
    "out_channels": 3,
    "latent_channels": 4,
    "block_out_channels": (16, 32, 32, 32),  # 4 blocks = 3 downsamples = SD1.5's 8x scale factor
    "down_block_types": ("DownEncoderBlock2D",) * 4,
    "up_block_types": ("UpDecoderBlock2D",) * 4,
    "layers_per_block": 1,
    "norm_num_groups": 4,
    "scaling_factor": 0.18215,
}
CONTROLNET_CONFIG: dict[str, Any] = {
    "in_channels": 4,
    "conditioning_channels": 3,
    "block_out_channels": UNET_CONFIG["block_out_channels"],
    "layers_per_block": UNET_CONFIG["layers_per_block"],
    "down_block_types": UNET_CONFIG["down_block_types"],
    "cross_attention_dim": UNET_CONFIG["cross_attention_dim"],
    "attention_head_dim": UNET_CONFIG["attention_head_dim"],
    "norm_num_groups": UNET_CONFIG["norm_num_groups"],
    # Three stride-2 convolutions: the control image (64 px) must land on the latent grid (8 px).
    "conditioning_embedding_out_channels": (16, 16, 32, 32),
}
MOTION_ADAPTER_CONFIG: dict[str, Any] = {
    "block_out_channels": UNET_CONFIG["block_out_channels"],
    "motion_layers_per_block": UNET_CONFIG["layers_per_block"],
    "motion_mid_block_layers_per_block": 1,
    "motion_num_attention_heads": 4,
    "motion_norm_num_groups": 2,
    "motion_max_seq_length": 32,  # as animatediff-motion-adapter-v1-5-2
    "use_motion_mid_block": True,
}
TEXT_ENCODER_CONFIG: dict[str, Any] = {
    "hidden_size": UNET_CONFIG["cross_attention_dim"],
    "intermediate_size": 64,
    "num_hidden_layers": 5,  # enough for clip-skip settings to pick an earlier layer
    "num_attention_heads": 4,
    "max_position_embeddings": MODEL_MAX_LENGTH,
    "hidden_act": "quick_gelu",
    "layer_norm_eps": 1e-5,
    "projection_dim": 32,
}
# SD1.5's own scheduler config, key for key (its leftover clip_sample included: DDIM built from it reads it).
SCHEDULER_CONFIG: dict[str, Any] = {
    "_class_name": "PNDMScheduler",
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "beta_start": 0.00085,
    "clip_sample": False,
    "num_train_timesteps": 1000,
    "set_alpha_to_one": False,
    "skip_prk_steps": True,
    "steps_offset": 1,
    "trained_betas": None,
}

_WEIGHTS = "diffusion_pytorch_model.safetensors"


def required_files() -> list[str]:
    """Relative paths (POSIX style) every complete tiny bundle holds, besides its manifest."""
    files = [
        "model_index.json",
        "scheduler/scheduler_config.json",
        "text_encoder/config.json",
        "text_encoder/model.safetensors",
        "tokenizer/merges.txt",
        "tokenizer/special_tokens_map.json",
        "tokenizer/tokenizer_config.json",
        "tokenizer/vocab.json",
        "unet/config.json",
        f"unet/{_WEIGHTS}",
        "vae/config.json",
        f"vae/{_WEIGHTS}",
        "motion_adapter/config.json",
        f"motion_adapter/{_WEIGHTS}",
    ]
    for kind in TINY_CONTROLNETS:
        files += [f"controlnet/{kind}/config.json", f"controlnet/{kind}/{_WEIGHTS}"]
    return sorted(files)


def build_tiny_bundle(out_dir: str | os.PathLike, *, seed: int = 0, overwrite: bool = False) -> Path:
    """Build the tiny bundle in ``out_dir`` and return its path.

    A complete bundle of this version and seed already there is returned untouched unless ``overwrite``. A folder
    that holds something else (files that are not a tiny bundle) is never deleted.
    """
    try:  # ints and numpy integers; not bools, floats or strings
        valid = not isinstance(seed, bool) and 0 <= operator.index(seed) < 2**32
    except TypeError:
        valid = False
    if not valid:
        raise SettingsError("seed", seed, "an integer from 0 to 2**32 - 1")
    seed = operator.index(seed)
    out = Path(out_dir).expanduser()
    if not overwrite and is_complete_bundle(out):
        if _manifest(out).get("seed") == seed:
            return out
        raise SettingsError("out_dir", str(out), f"a new folder or one holding the seed-{seed} tiny bundle",
                            f"It holds the seed-{_manifest(out).get('seed')} bundle; pass overwrite=True to replace "
                            "it, or choose another folder.")
    _check_replaceable(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.building-", dir=out.parent))
    staging.chmod(0o755)  # mkdtemp makes it owner-only; a model cache is normally readable by others
    try:
        _build_into(staging, seed)
        _publish(staging, out, seed, overwrite)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return out


def is_complete_bundle(path: str | os.PathLike, *, verify_hashes: bool = True) -> bool:
    """True when ``path`` holds a tiny bundle of the current version with every file present (and intact)."""
    root = Path(path)
    try:
        manifest = _manifest(root)
        if manifest.get("format") != BUNDLE_FORMAT or manifest.get("version") != TINY_BUNDLE_VERSION:
            return False
        files: dict[str, str] = manifest["files"]
        if not set(required_files()) <= set(files):
            return False
        for rel, digest in files.items():
            file = root / rel
            if not file.is_file() or (verify_hashes and sha256_file(file) != digest):
                return False
        return True
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return False


# ---------------------------------------------------------------------------------------------------------------
# Publishing


def _manifest(root: Path) -> dict[str, Any]:
    return json.loads((root / MANIFEST_NAME).read_text(encoding="utf-8"))


def _is_tiny_bundle_folder(root: Path) -> bool:
    """Ours (any version, even damaged) as opposed to someone's other files."""
    try:
        return _manifest(root).get("format") == BUNDLE_FORMAT
    except (OSError, ValueError, AttributeError):
        return False


def _check_replaceable(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise SettingsError("out_dir", str(out), "a folder path", "It is a file; choose a folder for the bundle.")
    if out.is_dir() and any(out.iterdir()) and not _is_tiny_bundle_folder(out):
        raise SettingsError("out_dir", str(out), "a new or empty folder, or an existing tiny bundle",
                            "It holds other files, which a bundle build will not delete; choose another folder.")


def _publish(staging: Path, out: Path, seed: int, overwrite: bool) -> None:
    """Move the finished build into place. Each rename is atomic, so ``out`` is never half-written."""
    try:
        os.replace(staging, out)  # succeeds when out is absent or an empty folder
        return
    except OSError:
        pass
    # A builder running beside us may have finished first: keep its identical result.
    if not overwrite and is_complete_bundle(out) and _manifest(out).get("seed") == seed:
        return
    _check_replaceable(out)
    retired = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=out.parent))
    try:
        os.replace(out, retired / "bundle")
        try:
            os.replace(staging, out)
        except OSError:
            if not out.exists():  # put the previous bundle back rather than leave nothing
                os.replace(retired / "bundle", out)
            raise
    finally:
        shutil.rmtree(retired, ignore_errors=True)


# ---------------------------------------------------------------------------------------------------------------
# Building


def _build_into(root: Path, seed: int) -> None:
    """Write every component into ``root``, in a fixed order, then the manifest last."""
    from diffusers import (AutoencoderKL, ControlNetModel, MotionAdapter, PNDMScheduler, StableDiffusionPipeline,
                           UNet2DConditionModel)
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    tokenizer_dir = root / "tokenizer"
    _write_tokenizer(tokenizer_dir)
    tokenizer = CLIPTokenizer.from_pretrained(tokenizer_dir)
    eos_id = tokenizer.convert_tokens_to_ids(EOS_TOKEN)
    text_config = CLIPTextConfig(
        **TEXT_ENCODER_CONFIG, vocab_size=len(tokenizer),
        bos_token_id=tokenizer.convert_tokens_to_ids(BOS_TOKEN), eos_token_id=eos_id, pad_token_id=eos_id,
    )

    components: dict[str, Any] = {}
    components["text_encoder"] = _seeded(seed, "text_encoder", lambda: CLIPTextModel(text_config))
    components["unet"] = _seeded(seed, "unet", lambda: UNet2DConditionModel(**UNET_CONFIG))
    components["vae"] = _seeded(seed, "vae", lambda: AutoencoderKL(**VAE_CONFIG))
    for name, model in components.items():
        model.save_pretrained(root / name, safe_serialization=True)
    for kind in TINY_CONTROLNETS:
        controlnet = _seeded(seed, f"controlnet/{kind}", lambda: ControlNetModel(**CONTROLNET_CONFIG),
                             control_responsive=True)
        controlnet.save_pretrained(root / "controlnet" / kind, safe_serialization=True)
    adapter = _seeded(seed, "motion_adapter", lambda: MotionAdapter(**MOTION_ADAPTER_CONFIG))
    adapter.save_pretrained(root / "motion_adapter", safe_serialization=True)

    scheduler_config = {**SCHEDULER_CONFIG, "_diffusers_version": _diffusers_version()}
    atomic_write_json(root / "scheduler" / "scheduler_config.json", scheduler_config)
    # The pipeline writes its own model_index.json, so the index is always in the form this diffusers reads.
    pipe = StableDiffusionPipeline(
        **components, tokenizer=tokenizer, scheduler=PNDMScheduler.from_config(scheduler_config),
        safety_checker=None, feature_extractor=None, requires_safety_checker=False,
    )
    pipe.save_config(root)

    files = sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())
    missing = set(required_files()) - set(files)
    if missing:  # a library that changed its file names must not yield a bundle that fails only at load time
        raise RuntimeError(f"tiny bundle build did not write {sorted(missing)}")
    atomic_write_json(root / MANIFEST_NAME, {
        "format": BUNDLE_FORMAT,
        "version": TINY_BUNDLE_VERSION,
        "seed": seed,
        "files": {rel: sha256_file(root / rel) for rel in files},
    })


def _component_seed(seed: int, name: str) -> int:
    """A distinct seed per component, so the four ControlNets (same architecture) get different weights."""
    return int.from_bytes(hashlib.sha256(f"{seed}/{name}".encode()).digest()[:8], "little") & (2**63 - 1)


def _seeded(seed: int, name: str, make, *, control_responsive: bool = False):
    """Construct one model from its own seed without disturbing the caller's global random state."""
    import torch

    component_seed = _component_seed(seed, name)
    # Constructors draw from the global generator, so seed it inside a forked state that is restored afterwards.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(component_seed)
        model = make().eval()
    if control_responsive:
        _make_control_responsive(model, torch.Generator().manual_seed(component_seed))
    return model


def _make_control_responsive(controlnet, generator) -> None:
    """Redraw the few ControlNet weights whose default start makes a random ControlNet ignore its control image.

    A fresh ControlNet's output projections are zero (it adds nothing to the UNet), and its conditioning embedding,
    with default init, shrinks the control image by ~100x through its eight convolutions. Then every control map
    gives the same picture. He-normal embedding convolutions with zero biases (a black map embeds to exactly zero)
    and 1/fan_in output projections make the tiny bundle's control maps visibly steer its output, which is what
    tests of the control paths need.
    """
    import torch

    with torch.no_grad():
        for name, param in sorted(controlnet.named_parameters()):
            if name.startswith("controlnet_cond_embedding."):
                gain = 2.0 if param.ndim == 4 else 0.0
            elif name.startswith(("controlnet_down_blocks.", "controlnet_mid_block.")):
                gain = 1.0 if param.ndim == 4 else 0.0
            else:
                continue
            fan_in = param[0].numel() if param.ndim > 1 else 1
            param.copy_(torch.randn(param.shape, generator=generator) * (gain / fan_in) ** 0.5)


def _diffusers_version() -> str:
    import diffusers

    return diffusers.__version__


# ---------------------------------------------------------------------------------------------------------------
# Tokenizer


def _write_tokenizer(folder: Path) -> None:
    """A small CLIP-style BPE tokenizer in the real ``tokenizer/`` layout, trained on the built-in corpus."""
    vocab, merges = _train_clip_bpe()
    folder.mkdir(parents=True, exist_ok=True)
    # vocab.json in id order and merges.txt with its version header, as CLIP's own files are.
    (folder / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False) + "\n", encoding="utf-8")
    (folder / "merges.txt").write_text("#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in merges),
                                       encoding="utf-8")
    specials = {"bos_token": BOS_TOKEN, "eos_token": EOS_TOKEN, "pad_token": EOS_TOKEN, "unk_token": EOS_TOKEN}
    atomic_write_json(folder / "special_tokens_map.json", specials)
    atomic_write_json(folder / "tokenizer_config.json", {
        **specials,
        "add_prefix_space": False,
        "clean_up_tokenization_spaces": False,
        "do_lower_case": True,
        "errors": "replace",
        "model_max_length": MODEL_MAX_LENGTH,
        "tokenizer_class": "CLIPTokenizer",
    })


def _byte_symbols() -> list[str]:
    """The 256 printable stand-ins for bytes, in the order CLIP's vocabulary lists them."""
    try:
        from transformers.convert_slow_tokenizer import bytes_to_unicode
    except ImportError:  # older transformers keep it with the CLIP tokenizer
        from transformers.models.clip.tokenization_clip import bytes_to_unicode
    return list(bytes_to_unicode().values())


def _train_clip_bpe() -> tuple[dict[str, int], list[tuple[str, str]]]:
    """Train BPE merges with CLIP's conventions and lay the vocabulary out like CLIP's."""
    from tokenizers import Regex, Tokenizer, normalizers, pre_tokenizers, trainers
    from tokenizers.models import BPE

    from .tiny_vocab import corpus

    symbols = _byte_symbols()
    word_ends = [s + "</w>" for s in symbols]
    tokenizer = Tokenizer(BPE(continuing_subword_prefix="", end_of_word_suffix="</w>"))
    # CLIP's normalisation and pre-tokenisation, as transformers sets them up for CLIPTokenizer.
    tokenizer.normalizer = normalizers.Sequence(
        [normalizers.NFC(), normalizers.Replace(Regex(r"\s+"), " "), normalizers.Lowercase()])
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(r"""<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]"""
                                   r"""|[^\s\p{L}\p{N}]+"""), behavior="removed", invert=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False),
    ])
    trainer = trainers.BpeTrainer(
        vocab_size=TOKENIZER_VOCAB_SIZE - 2,
        min_frequency=1,
        show_progress=False,
        # Registering the "</w>" symbols up front fixes their ids; otherwise the trainer numbers them in hash-map
        # order, which changes how ties between equally frequent pairs break, and the merges differ run to run.
        special_tokens=word_ends,
        initial_alphabet=symbols,
        end_of_word_suffix="</w>",
        continuing_subword_prefix="",
    )
    tokenizer.train_from_iterator(corpus(), trainer)
    merges = [_merge_pair(m) for m in json.loads(tokenizer.to_str())["model"]["merges"]]
    return _clip_vocab(symbols, word_ends, merges), merges


def _merge_pair(merge: str | Iterable[str]) -> tuple[str, str]:
    if isinstance(merge, str):  # older tokenizers serialise merges as "a b"
        left, right = merge.split(" ")
        return left, right
    left, right = merge
    return left, right


def _clip_vocab(symbols: list[str], word_ends: list[str], merges: list[tuple[str, str]]) -> dict[str, int]:
    """Bytes, bytes + "</w>", one entry per merge, then the two special tokens: CLIP's own id layout."""
    vocab: dict[str, int] = {}
    for token in [*symbols, *word_ends, *(a + b for a, b in merges), BOS_TOKEN, EOS_TOKEN]:
        vocab.setdefault(token, len(vocab))
    return vocab
