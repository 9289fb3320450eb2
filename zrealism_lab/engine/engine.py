"""The shared engine: loads each model component once per session and builds static and temporal pipelines
around the same loaded modules.

Pipelines here are cheap views over shared components (diffusers pipelines hold references, not copies), so
switching the set of ControlNets, the scheduler or static <-> temporal reads nothing from disk.
"""
from __future__ import annotations

import os
import threading
import time
from typing import Any, Iterable

from ..device import HardwarePlan, apply_autocast, plan_hardware
from ..errors import SettingsError
from ..models.loading import ComponentStatus, load_component, locate, missing_weights_error
from ..models.modelset import ComponentRef, ModelSet, resolve_modelset

BASE_PARTS = ("unet", "vae", "text_encoder", "tokenizer")


class Engine:
    """Owns loaded components for one model set on one device."""

    def __init__(self, models: ModelSet | str | os.PathLike | None = "realistic-vision", *, device: str = "auto",
                 offload: str = "auto", dtype: str | None = None, allow_pickle: bool = False, autocast: str = "off",
                 preview: str = "auto", fast_decode: bool = False) -> None:
        self.models = resolve_modelset(models)
        self.plan: HardwarePlan = plan_hardware(device, offload, dtype, autocast=autocast, preview=preview,
                                                fast_decode=fast_decode)
        if (preview == "taesd" or fast_decode) and self.models.preview_vae is None:
            raise SettingsError("preview" if preview == "taesd" else "fast_decode", preview if preview == "taesd"
                                else fast_decode, "a model set with a tiny autoencoder (preview_vae, e.g. "
                                "madebyollin/taesd)", "Add one with ModelSet.with_component('preview_vae', PATH), "
                                "or use preview='auto' / 'linear' and fast_decode=False.")
        self.allow_pickle = allow_pickle
        self._components: dict[str, Any] = {}
        self._pipelines: dict[tuple, Any] = {}
        self._motion_unet: Any = None
        self._scheduler_config: dict[str, Any] | None = None
        self.load_seconds: dict[str, float] = {}
        # One generation at a time per engine (and so per device): diffusers pipelines are not re-entrant.
        self.busy = threading.Lock()
        self._load_lock = threading.RLock()
        from .adapters import EngineAdapters

        self.adapters = EngineAdapters(self)  # LoRAs, embeddings and the IP-Adapter on the shared components

    # ----------------------------------------------------------------- references and preflight
    def ref(self, role: str) -> ComponentRef:
        ms = self.models
        if role in BASE_PARTS or role in ("scheduler", "safety_checker", "feature_extractor"):
            if role == "vae" and ms.vae is not None:
                return ms.vae
            if ms.base.kind == "file":  # weights from the file; scheduler and tokenizer from its config (see single_file)
                from ..models.single_file import base_file_ref

                return base_file_ref(ms.base, role)
            return ComponentRef(role, ms.base.kind, ms.base.location, ms.base.subfolder, ms.base.config).with_subfolder(role)
        if role.startswith("controlnet:"):
            return self.models.controlnet(role.split(":", 1)[1])
        if role == "image_encoder":  # the IP-Adapter's CLIP vision model (h94/IP-Adapter: models/image_encoder)
            if ms.ip_adapter is None:
                raise SettingsError("ip_adapter", None, "a model set with an IP-Adapter repository")
            return ComponentRef("image_encoder", ms.ip_adapter.kind, ms.ip_adapter.location,
                                ms.ip_adapter.subfolder).with_subfolder("models/image_encoder")
        if role == "preview_vae" and ms.preview_vae is not None:
            return ms.preview_vae
        if role == "motion_adapter":
            if ms.motion_adapter is None:
                raise SettingsError("motion_adapter", None, "a motion adapter in the model set for temporal runs")
            return ms.motion_adapter
        raise SettingsError("role", role, "unet, vae, text_encoder, tokenizer, controlnet:<kind> or motion_adapter")

    def roles_for(self, control_kinds: Iterable[str], temporal: bool = False, safety_checker: bool = False) -> list[str]:
        roles = list(BASE_PARTS) + [f"controlnet:{k}" for k in control_kinds]
        if temporal:
            roles.append("motion_adapter")
        if safety_checker:
            roles += ["safety_checker", "feature_extractor"]
        return roles

    def preflight(self, roles: Iterable[str]) -> list[ComponentStatus]:
        """Check that every component a run needs is on disk (or may be downloaded) before anything loads."""
        from ..models.loading import hub_offline

        statuses, missing = [], []
        for role in roles:
            if role in self._components:
                continue
            status = locate(self.ref(role))
            if status.present and status.ref.kind == "file":  # a VAE given as the ControlNet fails here, not later
                from ..models.loading import check_file_component

                check_file_component(status.ref, self.allow_pickle)
            statuses.append(status)
            if not status.present and (status.ref.kind != "hub" or hub_offline()):
                missing.append(status)
        if missing:
            raise missing_weights_error(missing, self.models.name)
        return statuses

    # ----------------------------------------------------------------- components
    def component(self, role: str) -> Any:
        """Load a component once; later calls return the same object."""
        with self._load_lock:
            if role in self._components:
                return self._components[role]
            start = time.perf_counter()
            module = self._load(role)
            if hasattr(module, "to") and self.plan.offload == "none" and role != "tokenizer":
                module = module.to(self.plan.device)
            if hasattr(module, "eval"):
                module.eval()
                module.requires_grad_(False)
            if role == "unet" or role.startswith("controlnet:"):
                apply_autocast(module, self.plan)
            self._components[role] = module
            self.load_seconds[role] = time.perf_counter() - start
            return module

    def _load(self, role: str) -> Any:
        import diffusers
        import transformers

        ref = self.ref(role)
        dtype = self.plan.torch_dtype
        if ref.kind == "file" and role in BASE_PARTS and ref.location == self.models.base.location:
            return self._load_from_base_file(role)  # a VAE file of its own loads below, as any other component
        classes = {
            "unet": diffusers.UNet2DConditionModel,
            "vae": diffusers.AutoencoderKL,
            "text_encoder": transformers.CLIPTextModel,
            "tokenizer": transformers.CLIPTokenizer,
            "motion_adapter": diffusers.MotionAdapter,
            "preview_vae": diffusers.AutoencoderTiny,
            "feature_extractor": transformers.CLIPImageProcessor,
            "image_encoder": transformers.CLIPVisionModelWithProjection,
        }
        if role.startswith("controlnet:"):
            cls = diffusers.ControlNetModel
        elif role == "safety_checker":
            from diffusers.pipelines.stable_diffusion.safety_checker import StableDiffusionSafetyChecker as cls
        else:
            cls = classes[role]
        if role == "feature_extractor":
            return cls.from_pretrained(ref.location if ref.kind != "hub" else ref.location,
                                       **({"subfolder": ref.subfolder} if ref.subfolder else {}))
        return load_component(ref, cls, dtype=dtype, allow_pickle=self.allow_pickle)

    def _load_from_base_file(self, role: str) -> Any:
        """An A1111-style single checkpoint holds the UNet, VAE and text encoder together: each part is read from
        it alone and built from the shipped SD1.5 configs (or the file's config=), with no hub call."""
        from ..models.loading import load_file_part

        return load_file_part(self.ref(role), role, dtype=self.plan.torch_dtype, allow_pickle=self.allow_pickle)

    def scheduler_config(self) -> dict[str, Any]:
        if self._scheduler_config is None:
            ref = self.ref("scheduler")
            from diffusers import DDIMScheduler

            if ref.kind == "folder":
                config = DDIMScheduler.load_config(ref.location)
            else:
                config = _hub_config(DDIMScheduler, ref)
            self._scheduler_config = dict(config)
        return self._scheduler_config

    def loaded_roles(self) -> list[str]:
        return list(self._components)

    # ----------------------------------------------------------------- pipelines
    def static_pipeline(self, control_kinds: tuple[str, ...], *, safety_checker: bool = False) -> Any:
        """A ControlNet img2img pipeline over the shared components (plain img2img with no control units)."""
        import diffusers
        from diffusers.models.controlnets.multicontrolnet import MultiControlNetModel

        key = ("static", tuple(control_kinds), safety_checker)
        if key in self._pipelines:
            return self._pipelines[key]
        self.preflight(self.roles_for(control_kinds, safety_checker=safety_checker))
        parts = {name: self.component(name) for name in BASE_PARTS}
        extra = {"safety_checker": None, "feature_extractor": None, "requires_safety_checker": False}
        if safety_checker:
            extra = {"safety_checker": self.component("safety_checker"),
                     "feature_extractor": self.component("feature_extractor"), "requires_safety_checker": True}
        scheduler = diffusers.DDIMScheduler.from_config(self.scheduler_config())
        if control_kinds:
            controlnet = MultiControlNetModel([self.component(f"controlnet:{k}") for k in control_kinds])
            pipe = diffusers.StableDiffusionControlNetImg2ImgPipeline(**parts, scheduler=scheduler, controlnet=controlnet,
                                                                      **extra)
        else:
            pipe = diffusers.StableDiffusionImg2ImgPipeline(**parts, scheduler=scheduler, **extra)
        self._apply_plan(pipe)
        pipe.set_progress_bar_config(disable=True)
        self._pipelines[key] = pipe
        return pipe

    def temporal_pipeline(self, control_kinds: Iterable[str]) -> Any:
        """An AnimateDiff video-to-video pipeline (with a MultiControlNet when there are control kinds) over the
        shared components; its motion UNet shares the static UNet's and the adapter's tensors."""
        import diffusers

        from .animatediff import ANIMATEDIFF_SCHEDULE, frame_chunked_multicontrolnet

        kinds = tuple(control_kinds)
        key = ("temporal", kinds)
        if key in self._pipelines:
            return self._pipelines[key]
        self.preflight(self.roles_for(kinds, temporal=True))
        parts = {name: self.component(name) for name in BASE_PARTS}
        adapter = self.component("motion_adapter")
        if self.plan.offload == "sequential":  # a static pipeline may have offloaded the UNet the motion UNet shares
            release_offload([parts["unet"], adapter])
        parts["unet"] = self.motion_unet()
        scheduler = diffusers.DDIMScheduler.from_config({**self.scheduler_config(), **ANIMATEDIFF_SCHEDULE},
                                                        clip_sample=False)
        if kinds:
            controlnet = frame_chunked_multicontrolnet()([self.component(f"controlnet:{k}") for k in kinds])
            pipe = diffusers.AnimateDiffVideoToVideoControlNetPipeline(**parts, motion_adapter=adapter,
                                                                       controlnet=controlnet, scheduler=scheduler)
        else:
            pipe = diffusers.AnimateDiffVideoToVideoPipeline(**parts, motion_adapter=adapter, scheduler=scheduler)
        self._apply_plan(pipe)
        pipe.set_progress_bar_config(disable=True)
        self._pipelines[key] = pipe
        return pipe

    def motion_unet(self) -> Any:
        """The shared motion UNet, built once from the loaded UNet and motion adapter (see ``sharing``)."""
        from .sharing import build_shared_motion_unet

        with self._load_lock:
            if self._motion_unet is None:
                self._motion_unet = apply_autocast(
                    build_shared_motion_unet(self.component("unet"), self.component("motion_adapter")), self.plan)
            return self._motion_unet

    @property
    def load_lock(self) -> threading.RLock:
        """Held while components load or adapters change the shared modules."""
        return self._load_lock

    def reshare_motion_unet(self) -> None:
        """After adapters changed the 2D UNet's top-level modules, let the motion UNet (if built) use them too."""
        from .sharing import reshare_top_level

        if self._motion_unet is not None:
            reshare_top_level(self._motion_unet, self.component("unet"))

    def pipelines(self) -> dict[tuple, Any]:
        """The pipelines built so far, by (kind, control kinds ...): a copy, for inspection."""
        return dict(self._pipelines)

    def preview_kind(self) -> str:
        """What draws live previews: "taesd" (the model set's tiny autoencoder) or "linear". In "auto" mode the
        tiny autoencoder is used only when it is on disk already: a preview never downloads or fails a run."""
        mode, ref = self.plan.preview, self.models.preview_vae
        if mode == "linear" or ref is None:
            return "linear"
        return "taesd" if mode == "taesd" or "preview_vae" in self._components or locate(ref).present else "linear"

    def _attach_decoders(self, pipe: Any) -> None:
        """The tiny autoencoder, where the plan wants it, for this pipeline's previews and fast clip decode."""
        from ..progress import set_preview_decoder
        from .animatediff import set_fast_decoder

        set_preview_decoder(pipe, self.component("preview_vae") if self.preview_kind() == "taesd" else None)
        set_fast_decoder(pipe, self.component("preview_vae") if self.plan.fast_decode else None)

    def _apply_plan(self, pipe: Any) -> None:
        self._attach_decoders(pipe)
        plan = self.plan
        if plan.offload == "model":
            pipe.enable_model_cpu_offload()
        elif plan.offload == "sequential":
            self._offload_sequential(pipe)
        if plan.attention_slicing:
            pipe.enable_attention_slicing()
        vae = pipe.vae
        if plan.vae_slicing and hasattr(vae, "enable_slicing"):
            vae.enable_slicing()
        if plan.vae_tiling and hasattr(vae, "enable_tiling"):
            vae.enable_tiling()

    def _offload_sequential(self, pipe: Any) -> None:
        """Sequential CPU offload over shared modules. diffusers' enable_sequential_cpu_offload offloads each
        component on its own, but this engine's pipelines share modules (the static and temporal pipelines, the
        motion UNet and its adapter), and offloading a module a second time finds its weights already on the meta
        device and fails. So every hook on the pipeline's modules is removed first (which puts the weights back),
        then each module is offloaded exactly once."""
        import torch
        from accelerate import cpu_offload

        device = torch.device(self.plan.device)
        named = [(name, m) for name, m in pipe.components.items() if isinstance(m, torch.nn.Module)]
        release_offload([m for _, m in named])
        for name, module in named:
            if name in getattr(pipe, "_exclude_from_cpu_offload", ()):
                module.to(device)
            elif not any(p.device.type == "meta" for p in module.parameters()):
                cpu_offload(module, device, offload_buffers=len(module._parameters) > 0)
            # else: its weights are a module's offloaded just before (the adapter's motion modules in the motion UNet)

    def describe(self) -> dict[str, Any]:
        return {"models": self.models.to_dict(), "hardware": self.plan.to_dict(), "preview": self.preview_kind(),
                "loaded": self.loaded_roles(),
                "load_seconds": {k: round(v, 3) for k, v in self.load_seconds.items()}}


def release_offload(modules: Iterable[Any]) -> None:
    """Remove accelerate's offload hooks from modules and all their submodules, putting offloaded weights back on
    the CPU (the motion UNet must be built from real tensors, and a module must be offloaded only once)."""
    from accelerate.hooks import remove_hook_from_module

    for module in modules:
        remove_hook_from_module(module, recurse=True)


def _hub_config(cls: Any, ref: ComponentRef) -> dict[str, Any]:
    """A hub component's config: from the local cache first, then downloaded unless the hub is offline. Loading
    the UNet, VAE and text encoder fetches only their own subfolders, so the scheduler's config may not be cached."""
    from ..models.loading import from_hub

    return from_hub(cls.load_config, ref)


_ENGINES: dict[tuple, tuple[tuple, Engine]] = {}  # key -> (fingerprint of the local weight files, engine)
_ENGINES_LOCK = threading.Lock()


def local_weights_fingerprint(modelset: ModelSet) -> tuple:
    """(path, size, mtime) of every local weight and config file: cheap stats, no hashing. A component changed on
    disk during the session must be loaded again, not served from the cache."""
    from pathlib import Path

    stats = []
    for ref in modelset.components():
        if ref.kind == "hub":
            continue  # hub snapshots are content-addressed: a new revision is a new folder
        path = Path(ref.location)
        files = [path] if path.is_file() else sorted(path.rglob("*")) if path.is_dir() else []
        for file in files:
            if file.is_file():
                info = file.stat()
                stats.append((str(file), info.st_size, info.st_mtime_ns))
    return tuple(stats)


def get_engine(models: ModelSet | str | os.PathLike | None = "realistic-vision", *, device: str = "auto",
               offload: str = "auto", dtype: str | None = None, allow_pickle: bool = False, autocast: str = "off",
               preview: str = "auto", fast_decode: bool = False) -> Engine:
    """The session's engine for a model set and device: a second run with the same model set loads nothing.
    ``autocast``, ``preview`` and ``fast_decode``: the speed switches of ``device.plan_hardware``."""
    modelset = resolve_modelset(models)
    # Keyed by what is loaded where: 'auto' and the device it resolves to are one engine (two would load every
    # weight twice on one GPU), and the default units are part of the model set even though to_dict omits them.
    plan = plan_hardware(device, offload, dtype, autocast=autocast, preview=preview, fast_decode=fast_decode)
    key = (repr(modelset.to_dict()), repr(modelset.default_controls), plan.device, plan.offload, plan.dtype,
           allow_pickle, plan.autocast, plan.preview, plan.fast_decode)
    fingerprint = local_weights_fingerprint(modelset)
    with _ENGINES_LOCK:
        cached = _ENGINES.get(key)
        if cached is None or cached[0] != fingerprint:  # a changed file replaces the stale engine (and frees it)
            cached = (fingerprint, Engine(modelset, device=device, offload=offload, dtype=dtype,
                                          allow_pickle=allow_pickle, autocast=autocast, preview=preview,
                                          fast_decode=fast_decode))
            _ENGINES[key] = cached
        return cached[1]
