"""Model sets: which base checkpoint, VAE, ControlNets, motion adapter and scheduler make up a run.

Each component is a *reference*: a hub repo id (``org/name``, optionally ``org/name:subfolder``), a local diffusers
folder, or a single ``.safetensors`` file. Presets name the defaults; a user can point any component at their own files.
"""
from __future__ import annotations

import dataclasses
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from ..errors import SettingsError
from ..settings import CONTROL_KINDS, ControlUnit

PICKLE_SUFFIXES = (".ckpt", ".bin", ".pt", ".pth", ".pkl")
SAFE_SUFFIXES = (".safetensors",)
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+(:[\w./-]+)?$")

# The one wording of what the tiny preset's pictures are, for every face that shows them.
RANDOM_WEIGHTS_NOTE = ("The tiny preset has random weights: its pictures show the plumbing (every stage, map and metric), "
                       "not realism.")
RANDOM_WEIGHTS_CAPTION = "tiny preset: random weights, so these pictures show the plumbing, not realism"  # under pictures


@dataclass(frozen=True)
class ComponentRef:
    """Where one component lives. ``kind`` is 'hub', 'folder' or 'file'."""

    role: str
    kind: str
    location: str
    subfolder: str | None = None
    config: str | None = None  # for single files: a folder (or hub id) holding the component's config

    @classmethod
    def parse(cls, role: str, value: str | os.PathLike, *, config: str | None = None) -> "ComponentRef":
        text = os.fspath(value)
        if not text or not isinstance(text, str):
            raise SettingsError(role, value, "a hub id like org/name, a local diffusers folder or a .safetensors file")
        path = Path(text).expanduser()
        if path.suffix.lower() in SAFE_SUFFIXES + PICKLE_SUFFIXES:
            return cls(role, "file", str(path), config=config)
        if path.exists() or text.startswith((".", "/", "~")):
            return cls(role, "folder", str(path))
        if _HUB_ID.match(text):
            repo, _, sub = text.partition(":")
            return cls(role, "hub", repo, subfolder=sub or None)
        return cls(role, "folder", str(path))

    def describe(self) -> str:
        if self.kind == "hub":
            return f"hub repo {self.location}" + (f" (subfolder {self.subfolder})" if self.subfolder else "")
        return f"local {self.kind} {self.location}"

    def with_subfolder(self, subfolder: str) -> "ComponentRef":
        """The same checkpoint, one component inside it (base checkpoints hold unet/, vae/, text_encoder/ ...)."""
        if self.kind == "hub":
            sub = f"{self.subfolder}/{subfolder}" if self.subfolder else subfolder
            return dataclasses.replace(self, subfolder=sub)
        if self.kind == "folder":
            return dataclasses.replace(self, location=str(Path(self.location) / subfolder))
        return self

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in dataclasses.asdict(self).items() if v is not None}


@dataclass(frozen=True)
class ModelSet:
    """A complete set of weights for static and temporal runs."""

    name: str
    base: ComponentRef
    vae: ComponentRef | None = None
    controlnets: Mapping[str, ComponentRef] = field(default_factory=dict)
    motion_adapter: ComponentRef | None = None
    scheduler: str = "dpmpp-2m-karras"
    default_controls: tuple[ControlUnit, ...] = ()
    annotators: str = "lllyasviel/Annotators"  # controlnet-aux detector checkpoints: hub repo or local folder
    random_weights: bool = False  # True for the tiny bundle: pictures show the plumbing, not realism
    control_methods: Mapping[str, str] = field(default_factory=dict)  # detector method per kind when a unit names none
    # Adapters: where LoRAs and embeddings are found by name (besides ZREALISM_LORA_DIRS / ZREALISM_EMBEDDING_DIRS),
    # and the IP-Adapter repository (h94/IP-Adapter's layout: models/<variant>.safetensors, models/image_encoder/).
    lora_dirs: tuple[str, ...] = ()
    embedding_dirs: tuple[str, ...] = ()
    ip_adapter: ComponentRef | None = None
    fast_lora: str | None = None  # the few-step LoRA of speed="fast" (LCM-LoRA for SD1.5): hub id or path
    # A tiny autoencoder (TAESD, diffusers AutoencoderTiny) for live previews and the fast clip decode; optional.
    preview_vae: ComponentRef | None = None

    def control_method(self, kind: str, requested: str | None) -> str | None:
        """The detector method a unit uses: its own, else this model set's default for the kind (None: the provider's)."""
        return requested or self.control_methods.get(kind)

    def components(self) -> list[ComponentRef]:
        refs = [self.base]
        if self.vae is not None:
            refs.append(self.vae)
        refs.extend(self.controlnets.values())
        if self.motion_adapter is not None:
            refs.append(self.motion_adapter)
        if self.preview_vae is not None:
            refs.append(self.preview_vae)
        return refs

    def controlnet(self, kind: str) -> ComponentRef:
        if kind not in self.controlnets:
            raise SettingsError("controls", kind, "one of the control kinds this model set has: "
                                + ", ".join(self.controlnets), "Add a ControlNet for it with ModelSet.with_component().")
        return self.controlnets[kind]

    def with_component(self, role: str, value: str | os.PathLike, *, config: str | None = None) -> "ModelSet":
        """Point one component at other weights: role is 'base', 'vae', 'motion_adapter' or 'controlnet:<kind>'."""
        ref = ComponentRef.parse(role, value, config=config)
        if role.startswith("controlnet:"):
            kind = role.split(":", 1)[1]
            if kind not in CONTROL_KINDS:
                raise SettingsError("role", role, "controlnet:<kind> with kind one of " + ", ".join(CONTROL_KINDS))
            return dataclasses.replace(self, controlnets={**self.controlnets, kind: ref})
        if role not in ("base", "vae", "motion_adapter", "preview_vae"):
            raise SettingsError("role", role, "base, vae, motion_adapter, preview_vae or controlnet:<kind>")
        return dataclasses.replace(self, **{role: ref})

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "base": self.base.to_dict(),
            "vae": self.vae.to_dict() if self.vae else None,
            "controlnets": {k: v.to_dict() for k, v in self.controlnets.items()},
            "motion_adapter": self.motion_adapter.to_dict() if self.motion_adapter else None,
            "scheduler": self.scheduler,
            "annotators": self.annotators,
            "random_weights": self.random_weights,
            "control_methods": dict(self.control_methods),
            "lora_dirs": list(self.lora_dirs),
            "embedding_dirs": list(self.embedding_dirs),
            "ip_adapter": self.ip_adapter.to_dict() if self.ip_adapter else None,
            "fast_lora": self.fast_lora,
            "preview_vae": self.preview_vae.to_dict() if self.preview_vae else None,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "ModelSet":
        def ref(d):
            return None if d is None else ComponentRef(**d)

        return cls(
            name=data["name"], base=ref(data["base"]), vae=ref(data.get("vae")),
            controlnets={k: ref(v) for k, v in data.get("controlnets", {}).items()},
            motion_adapter=ref(data.get("motion_adapter")), scheduler=data.get("scheduler", "dpmpp-2m-karras"),
            default_controls=default_controls_for(data["name"]), annotators=data.get("annotators", "lllyasviel/Annotators"),
            random_weights=bool(data.get("random_weights", False)),
            control_methods=dict(data.get("control_methods", {})),
            lora_dirs=tuple(data.get("lora_dirs", ())), embedding_dirs=tuple(data.get("embedding_dirs", ())),
            ip_adapter=ref(data.get("ip_adapter")), fast_lora=data.get("fast_lora"),
            preview_vae=ref(data.get("preview_vae")),
        )


def cache_dir() -> Path:
    """Where the lab keeps what it builds (the tiny bundle). Override with ZREALISM_CACHE."""
    root = os.environ.get("ZREALISM_CACHE")
    path = Path(root).expanduser() if root else Path.home() / ".cache" / "zrealism_lab"
    if path.exists() and not path.is_dir():
        raise SettingsError("ZREALISM_CACHE", str(path), "a folder the lab may write its tiny bundle into",
                            "It names a file: point it at a folder, or unset it to use ~/.cache/zrealism_lab.")
    return path


def _realistic_vision() -> ModelSet:
    hub = lambda role, repo: ComponentRef.parse(role, repo)  # noqa: E731
    return ModelSet(
        name="realistic-vision",
        base=hub("base", "SG161222/Realistic_Vision_V5.1_noVAE"),
        vae=hub("vae", "stabilityai/sd-vae-ft-mse"),
        controlnets={
            "depth": hub("controlnet:depth", "lllyasviel/control_v11f1p_sd15_depth"),
            "openpose": hub("controlnet:openpose", "lllyasviel/control_v11p_sd15_openpose"),
            "canny": hub("controlnet:canny", "lllyasviel/control_v11p_sd15_canny"),
            "lineart_anime": hub("controlnet:lineart_anime", "lllyasviel/control_v11p_sd15s2_lineart_anime"),
        },
        motion_adapter=hub("motion_adapter", "guoyww/animatediff-motion-adapter-v1-5-2"),
        scheduler="dpmpp-2m-karras",
        default_controls=default_controls_for("realistic-vision"),
        ip_adapter=hub("ip_adapter", "h94/IP-Adapter"),
        fast_lora="latent-consistency/lcm-lora-sdv1-5",
        preview_vae=hub("preview_vae", "madebyollin/taesd"),
    )


def default_controls_for(name: str) -> tuple[ControlUnit, ...]:
    """The control units a preset uses when the settings name none (no model is built or loaded)."""
    if name == "tiny":
        # Offline: a weightless depth from the subject mask and OpenCV Canny, so every run works without annotators.
        return (ControlUnit("depth", 0.75, method="inflate"), ControlUnit("canny", 0.5))
    return (ControlUnit("depth", 0.75), ControlUnit("openpose", 0.8))


def tiny_bundle_dir(seed: int = 0) -> Path:
    from .tiny import TINY_BUNDLE_VERSION

    return cache_dir() / f"tiny-v{TINY_BUNDLE_VERSION}-seed{seed}"


def default_control_methods(preset: str) -> dict[str, str]:
    """The detector method each control kind uses when a unit names none: the providers' own defaults, except on the
    offline tiny preset, where weightless detectors stand in (pose: MediaPipe's bundled models where the package is
    installed, else OpenPose, which needs its files). Cheap: builds nothing."""
    if preset != "tiny":
        return {}
    from ..control.mediapipe_runtime import mediapipe_available

    return {"depth": "inflate", "lineart_anime": "edges", **({"openpose": "mediapipe"} if mediapipe_available() else {})}


def tiny_adapters_dir(seed: int = 0) -> Path:
    from .tiny_adapters import TINY_ADAPTERS_VERSION

    return cache_dir() / f"tiny-adapters-v{TINY_ADAPTERS_VERSION}-seed{seed}"


def tiny_modelset(bundle: str | os.PathLike | None = None, *, build: bool = True) -> ModelSet:
    """The tiny random-weight bundle, built on first use, in the same layout as real weights."""
    from .tiny import build_tiny_bundle

    root = Path(bundle) if bundle is not None else tiny_bundle_dir()
    if build:
        root = build_tiny_bundle(root)
    return ModelSet(
        name="tiny",
        base=ComponentRef("base", "folder", str(root)),
        controlnets={k: ComponentRef(f"controlnet:{k}", "folder", str(root / "controlnet" / k)) for k in CONTROL_KINDS},
        motion_adapter=ComponentRef("motion_adapter", "folder", str(root / "motion_adapter")),
        scheduler="dpmpp-2m-karras",
        default_controls=default_controls_for("tiny"),
        random_weights=True,
        control_methods=default_control_methods("tiny"),
        **_tiny_adapter_fields(root, build),
        preview_vae=_tiny_preview_vae(build),
    )


def tiny_taesd_dir(seed: int = 0) -> Path:
    from .tiny_taesd import TINY_TAESD_VERSION

    return cache_dir() / f"tiny-taesd-v{TINY_TAESD_VERSION}-seed{seed}"


def _tiny_preview_vae(build: bool) -> ComponentRef:
    """The tiny TAESD next to the tiny bundle (built on first use)."""
    from .tiny_taesd import build_tiny_taesd

    root = build_tiny_taesd(tiny_taesd_dir()) if build else tiny_taesd_dir()
    return ComponentRef("preview_vae", "folder", str(root))


def _tiny_adapter_fields(bundle: Path, build: bool) -> dict[str, Any]:
    """The tiny adapters (a LoRA in each format, an embedding, an IP-Adapter) shaped for the tiny bundle."""
    from .tiny_adapters import build_tiny_adapters

    root = build_tiny_adapters(bundle, tiny_adapters_dir()) if build else tiny_adapters_dir()
    return {"lora_dirs": (str(root / "loras"),), "embedding_dirs": (str(root / "embeddings"),),
            "ip_adapter": ComponentRef("ip_adapter", "folder", str(root / "ip_adapter")),
            "fast_lora": str(root / "loras" / "tiny-lcm")}


PRESETS = ("realistic-vision", "tiny")


def resolve_modelset(value: "ModelSet | str | os.PathLike | None") -> ModelSet:
    """A ModelSet, a preset name, or a local folder (a tiny bundle or a diffusers SD1.5 folder)."""
    if isinstance(value, ModelSet):
        return value
    if value is None or value == "realistic-vision":
        return _realistic_vision()
    if value == "tiny":
        return tiny_modelset()
    path = Path(os.fspath(value)).expanduser()
    if path.is_file() and path.suffix.lower() in SAFE_SUFFIXES + PICKLE_SUFFIXES:
        # A single-file checkpoint (A1111 / Civitai) as the base, with its own VAE and the preset's ControlNets.
        return dataclasses.replace(_realistic_vision(), name=str(path), base=ComponentRef("base", "file", str(path)),
                                   vae=None)
    if path.is_dir():
        if (path / "zrealism_bundle.json").exists():
            return tiny_modelset(path, build=False)
        if not (path / "model_index.json").is_file() and not (path / "unet").is_dir():
            raise SettingsError("preset", str(path), "a diffusers model folder (with model_index.json, unet/, vae/, "
                                "text_encoder/, tokenizer/), a preset name or a tiny bundle",
                                "This folder holds no model; a single-file checkpoint goes in with --component "
                                "base=FILE.safetensors.")
        # A user's own diffusers folder as the base, with the preset's ControlNets and motion adapter.
        return dataclasses.replace(_realistic_vision(), name=str(path), base=ComponentRef("base", "folder", str(path)),
                                   vae=None)
    raise SettingsError("preset", os.fspath(value), "one of " + ", ".join(PRESETS) + ", an existing model folder or "
                        "a single-file checkpoint (.safetensors)")
