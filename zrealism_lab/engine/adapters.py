"""Applying a run's adapters to the shared engine without reading any base weight again.

LoRAs are loaded once per file (peft adapters on the shared UNet and text encoder) and switched with
``set_adapters``; embeddings become tokens of the shared tokenizer; the IP-Adapter replaces the UNet's cross-attention
processors. Every static pipeline holds the same UNet, and the motion UNet holds the same spatial submodules
(``sharing``), so one application acts on stills, refinement passes and clips alike. What peft or diffusers put in
place of a top-level UNet module (conv_in, the IP-Adapter's image projection) is shared again afterwards.
"""
from __future__ import annotations

import contextlib
import warnings
from typing import TYPE_CHECKING, Any, Callable, Iterator

from ..errors import DamagedWeightsError

if TYPE_CHECKING:
    from ..adapters.plan import AdapterPlan, IPAdapterChoice, LoraChoice

MAX_LOADED_LORAS = 8  # LoRAs kept loaded but inactive, so switching back costs nothing; older ones are deleted


class EngineAdapters:
    """The adapters applied to one engine's shared components, and what the next run needs changed."""

    def __init__(self, engine: Any) -> None:
        self.engine = engine
        self.loaded: dict[str, "LoraChoice"] = {}  # peft adapter name -> its file, oldest first
        self.active: tuple[tuple[str, float], ...] = ()
        self.fused = False
        self.tokens: dict[str, tuple[str, int]] = {}  # token -> (sha256, vectors)
        self.ip_sha256: str | None = None
        self.lora_loads = 0  # LoRA files read so far (tests count them: switching weights reads none)
        self._call_kwargs: dict[str, Any] = {}

    def begin_run(self, plan: "AdapterPlan", reference: Any, guidance: float) -> None:
        """Apply the plan and, with an IP-Adapter, encode its reference image (``reference`` when the plan names
        none) for this run's guidance."""
        self.apply(plan)
        self._call_kwargs = {}
        if plan.ip_adapter is not None:
            image = reference
            if plan.ip_adapter.image is not None:
                from ..source.intake import load_image

                image = load_image(plan.ip_adapter.image).image.convert("RGB")
            self._call_kwargs = {"ip_adapter_image_embeds": self.ip_adapter_embeds(image, guidance)}

    def call_kwargs(self) -> dict[str, Any]:
        """What every pipeline call of the current run adds: while an IP-Adapter is applied, the UNet needs its
        image embeddings on every call (main pass, hires, face crops, clips)."""
        return dict(self._call_kwargs)

    def apply(self, plan: "AdapterPlan") -> None:
        """Bring the shared components to exactly the plan's adapters (nothing from an earlier run stays active)."""
        if plan.empty and not self.loaded and not self.tokens and self.ip_sha256 is None:
            return
        loader = self.engine.static_pipeline(())  # any pipeline over the shared UNet / text encoder / tokenizer
        with self.engine.load_lock, _quiet_loaders():
            if self.fused:
                self._unfuse(loader)
            self._apply_loras(loader, plan)
            self._apply_embeddings(loader, plan)
            self._apply_ip_adapter(loader, plan.ip_adapter)
            self.engine.reshare_motion_unet()
            if plan.fuse and plan.loras:
                self._fuse(loader, [lora.adapter_name for lora in plan.loras])

    # ----------------------------------------------------------------- LoRA
    def _fuse(self, loader: Any, names: list[str]) -> None:
        """Merge the LoRAs into the base weights, keeping a copy of each weight it changes: unmerging subtracts the
        delta again, which leaves rounding in weights every later run (and the motion UNet) shares."""
        self._saved = [(module.base_layer.weight, module.base_layer.weight.detach().clone())
                       for part in (loader.unet, loader.text_encoder) for module in part.modules()
                       if hasattr(module, "base_layer") and hasattr(module, "merge")]
        loader.fuse_lora(components=["unet", "text_encoder"], lora_scale=1.0, adapter_names=names)
        self.fused = True

    def _unfuse(self, loader: Any) -> None:
        import torch

        loader.unfuse_lora()
        with torch.no_grad():
            for weight, original in getattr(self, "_saved", ()):
                weight.copy_(original)
        self._saved = []
        self.fused = False

    def _apply_loras(self, loader: Any, plan: "AdapterPlan") -> None:
        for lora in plan.loras:
            if lora.adapter_name not in self.loaded:
                self._evict(loader, keep={choice.adapter_name for choice in plan.loras})
                loader.load_lora_weights(_read_tensors(lora.path), adapter_name=lora.adapter_name)
                self.lora_loads += 1
            self.loaded[lora.adapter_name] = self.loaded.pop(lora.adapter_name, lora)  # most recent last
        wanted = tuple((lora.adapter_name, lora.weight) for lora in plan.loras)
        if wanted == self.active:
            return
        if wanted:
            loader.enable_lora()
            loader.set_adapters([name for name, _ in wanted], adapter_weights=[w for _, w in wanted])
        elif self.loaded:
            loader.disable_lora()
        self.active = wanted

    def _evict(self, loader: Any, keep: set[str]) -> None:
        while len(self.loaded) >= MAX_LOADED_LORAS:
            oldest = next((name for name in self.loaded if name not in keep), None)
            if oldest is None:
                return
            loader.delete_adapters(oldest)
            del self.loaded[oldest]
            self.active = tuple(a for a in self.active if a[0] != oldest)

    # ----------------------------------------------------------------- textual inversion
    def _apply_embeddings(self, loader: Any, plan: "AdapterPlan") -> None:
        wanted = {e.token: (e.sha256, e.vectors) for e in plan.embeddings}
        stale = [token for token, known in self.tokens.items() if wanted.get(token) != known]
        if stale:  # a token not wanted, or its file changed: its vectors leave the tokenizer and text encoder
            loader.unload_textual_inversion(tokens=[t for token in stale for t in _token_names(token,
                                                                                              self.tokens[token][1])])
            for token in stale:
                del self.tokens[token]
        for embedding in plan.embeddings:
            if embedding.token not in self.tokens:
                loader.load_textual_inversion(plan.vectors[embedding.token], token=embedding.token)
                self.tokens[embedding.token] = (embedding.sha256, embedding.vectors)

    # ----------------------------------------------------------------- IP-Adapter
    def _apply_ip_adapter(self, loader: Any, choice: "IPAdapterChoice | None") -> None:
        wanted = choice.sha256 if choice is not None else None
        if self.ip_sha256 is not None and self.ip_sha256 != wanted:
            loader.unload_ip_adapter()
            self.ip_sha256 = None
        if choice is None or self.ip_sha256 == wanted:
            return
        tensors = _read_tensors(choice.path)
        state = {"image_proj": {k.removeprefix("image_proj."): v for k, v in tensors.items()
                                if k.startswith("image_proj.")},
                 "ip_adapter": {k.removeprefix("ip_adapter."): v for k, v in tensors.items()
                                if k.startswith("ip_adapter.")}}
        loader.register_modules(image_encoder=self.engine.component("image_encoder"))
        loader.load_ip_adapter(state, subfolder=None, weight_name=choice.path, image_encoder_folder=None)
        self.ip_sha256 = wanted

    def ip_adapter_embeds(self, image: Any, guidance: float) -> list[Any]:
        """The reference image encoded once per run; every pipeline call of the run (passes and frames) takes it."""
        import torch

        loader = self.engine.static_pipeline(())
        with torch.no_grad():
            return loader.prepare_ip_adapter_image_embeds(image, None, torch.device(self.engine.plan.device), 1,
                                                          guidance > 1.0)

    def ip_adapter_schedule(self, choice: "IPAdapterChoice", total_steps: int) -> Callable[[int], None]:
        """Set the IP-Adapter's scale for the first step and return the per-step update (start/end fractions of the
        steps, like a ControlNet unit's; diffusers has no such switch, the processors' scale is set each step)."""
        loader = self.engine.static_pipeline(())

        def scale_at(step: int) -> float:
            fraction = step / max(total_steps, 1)
            return choice.scale if choice.start <= fraction < choice.end or (step == 0 and choice.start == 0) else 0.0

        loader.set_ip_adapter_scale(scale_at(0))

        def after_step(step_index: int) -> None:
            loader.set_ip_adapter_scale(scale_at(step_index + 1))

        return after_step


@contextlib.contextmanager
def _quiet_loaders() -> Iterator[None]:
    """The loaders' advice is not the user's to act on: a UNet-only LoRA "has no text-encoder keys", peft notes a
    second adapter, transformers explains how it sizes new token rows. Errors still raise."""
    from diffusers.utils import logging as diffusers_logging
    from transformers.utils import logging as transformers_logging

    levels = [(lib, lib.get_verbosity()) for lib in (diffusers_logging, transformers_logging)]
    try:
        for lib, _ in levels:
            lib.set_verbosity_error()
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=UserWarning, module=r"peft\.")
            warnings.filterwarnings("ignore", message=r".*peft_config.*")
            yield
    finally:
        for lib, level in levels:
            lib.set_verbosity(level)


def _token_names(token: str, vectors: int) -> list[str]:
    """The tokens diffusers adds for a multi-vector embedding: token, token_1, token_2 ..."""
    return [token] + [f"{token}_{i}" for i in range(1, vectors)]


def _read_tensors(path: str) -> dict[str, Any]:
    """A file's tensors: safetensors, or a pickle file through torch's weights-only loader (the opt-in was checked
    when the plan was made)."""
    if path.endswith(".safetensors"):
        from safetensors.torch import load_file

        try:
            return load_file(path)
        except Exception as exc:  # noqa: BLE001
            raise DamagedWeightsError(f"{path} cannot be read ({exc}); download it again.") from None
    import torch

    return torch.load(path, map_location="cpu", weights_only=True)
