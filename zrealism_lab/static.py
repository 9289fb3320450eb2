"""Static runs: source image -> photoreal still, through intake, background analysis, preparation, control maps,
ControlNet img2img on the shared engine, colour anchoring against the fixed source, evaluation and the run record."""
from __future__ import annotations

import os
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image

from .engine import Engine, get_engine
from .errors import CancelledError
from .progress import CancelToken, ProgressCallback, StepReporter, emit
from .settings import ControlUnit, StaticSettings


@dataclass
class SourceContext:
    """Everything derived from the source before any model runs; shared by static and temporal runs."""

    source: Any  # intake.SourceImage
    analysis: Any  # background.BackgroundAnalysis
    prepared: Any  # preparation.Prepared
    control_maps: dict[str, Any]  # kind -> control.ControlMap
    units: tuple[ControlUnit, ...]
    prompt: str
    negative_prompt: str
    warnings: list[str]
    timings: dict[str, float]


@dataclass
class StaticResult:
    image: Image.Image  # the final still (after colour anchoring)
    raw: Image.Image  # straight out of the diffusion model
    context: SourceContext
    settings: StaticSettings
    colour: Any  # colour.AnchorResult
    metrics: Any  # metrics.MetricReport or None
    status: str  # completed | cancelled
    timings: dict[str, float]
    warnings: list[str]
    engine: dict[str, Any]
    run_dir: Path | None = None
    record: dict[str, Any] = field(default_factory=dict)

    @property
    def control_images(self) -> dict[str, Image.Image]:
        return {kind: cmap.image for kind, cmap in self.context.control_maps.items()}


def resolve_units(settings: StaticSettings, engine: Engine, profile: Any) -> tuple[ControlUnit, ...]:
    import dataclasses

    if settings.controls is not None:
        return tuple(settings.controls)
    units = engine.models.default_controls
    if profile is not None and getattr(profile, "control_scales", None):
        units = tuple(dataclasses.replace(u, scale=profile.control_scales.get(u.kind, u.scale)) for u in units)
    return units


def check_named_settings(settings: StaticSettings, engine: Engine) -> None:
    """The settings that name things (a profile, the control kinds of this model set), checked before a run folder
    is created: a typo must not leave a failed run behind."""
    from .profiles import find_profile, get_profile

    profile = (find_profile(settings.profile) or get_profile(settings.profile)) if settings.profile else None
    for unit in resolve_units(settings, engine, profile):
        engine.models.controlnet(unit.kind)


def understand_source(source: Any, settings: StaticSettings, engine: Engine, *, size: int | None = None,
                      max_pixels: int | None = None) -> SourceContext:
    """Intake, background analysis, preparation, prompts and control maps: no diffusion model is loaded here."""
    from .background import analyze_background
    from .control import CONTROL_PROVIDERS, resolve_empty_pose
    from .intake import load_image
    from .preparation import PrepareSettings, prepare
    from .profiles import find_profile, get_profile
    from .prompts import build_negative_prompt, build_prompt

    timings: dict[str, float] = {}
    notes: list[str] = []
    t = time.perf_counter()
    loaded = load_image(source, max_pixels=max_pixels)
    timings["intake"] = time.perf_counter() - t

    profile = None
    if settings.profile:
        profile = find_profile(settings.profile) or get_profile(settings.profile)
    units = resolve_units(settings, engine, profile)
    for unit in units:
        engine.models.controlnet(unit.kind)  # unknown kind for this model set: clear error before any work

    t = time.perf_counter()
    analysis = analyze_background(loaded.image)
    notes += list(analysis.warnings)
    timings["background"] = time.perf_counter() - t

    t = time.perf_counter()
    prep_settings = PrepareSettings(transparent_backdrop=settings.transparent_backdrop,
                                    keep_dark_backdrop=settings.keep_dark_backdrop,
                                    lighting_hints=settings.lighting_hints, long_side=size or settings.size,
                                    mask_controls=settings.mask_controls)
    prepared = prepare(loaded, analysis, prep_settings)
    prompt = build_prompt(settings.prompt, list(prepared.prompt_hints), profile)
    negative = build_negative_prompt(settings.negative_prompt, profile)
    timings["prepare"] = time.perf_counter() - t

    t = time.perf_counter()
    maps: dict[str, Any] = {}
    kept_units = []
    for unit in units:
        provider = CONTROL_PROVIDERS.get(unit.kind)
        cmap = provider.detect(prepared.image, size=prepared.size, detect_resolution=settings.detect_resolution,
                               mask=prepared.mask, mask_to_subject=settings.mask_controls,
                               method=engine.models.control_method(unit.kind, unit.method),
                               annotator_dir=_annotator_dir(engine), **dict(unit.params))
        notes += list(cmap.warnings)
        if unit.kind == "openpose":
            cmap = resolve_empty_pose(cmap, settings.pose_policy)
            if cmap is None:
                notes.append("openpose unit dropped: no person was found in the source (pose_policy='drop').")
                continue
        maps[unit.kind] = cmap
        kept_units.append(unit)
    timings["controls"] = time.perf_counter() - t
    return SourceContext(loaded, analysis, prepared, maps, tuple(kept_units), prompt, negative, notes, timings)


def adherence_request(context: SourceContext, engine: Engine) -> Any:
    """Control adherence: re-run each unit's detector (same method and parameters) on the output and compare it
    with the map that was fed in. Maps that never look at the image (the mask-inflated depth) are skipped."""
    from .control import CONTROL_PROVIDERS
    from .metrics.adherence import AdherenceRequest

    units = {u.kind: u for u in context.units}

    def lookup(kind: str):
        cmap = context.control_maps[kind]
        provider = CONTROL_PROVIDERS.get(kind)
        if not provider.method(cmap.method).reads_image:
            return None

        def detect(image: Image.Image):
            found = provider.detect(image, size=image.size, detect_resolution=max(image.size), method=cmap.method,
                                    annotator_dir=_annotator_dir(engine), **dict(units[kind].params))
            return found.keypoints if kind == "openpose" else found.image

        return detect

    fed = {kind: (cmap.keypoints if kind == "openpose" else cmap.image) for kind, cmap in context.control_maps.items()}
    return AdherenceRequest(fed_maps=fed, provider_lookup=lookup)


def pipeline_arguments(context: SourceContext, settings: StaticSettings, prompt_kwargs: dict[str, Any]
                       ) -> dict[str, Any]:
    """The img2img (+ MultiControlNet) call for a prepared source: shared by runs and the overhead benchmark."""
    call: dict[str, Any] = dict(image=context.prepared.image, strength=settings.strength,
                                num_inference_steps=settings.steps, guidance_scale=settings.cfg, output_type="pil",
                                **prompt_kwargs)
    if context.units:
        call.update(control_image=[context.control_maps[u.kind].image for u in context.units],
                    controlnet_conditioning_scale=[u.scale for u in context.units],
                    control_guidance_start=[u.start for u in context.units],
                    control_guidance_end=[u.end for u in context.units],
                    width=context.prepared.size[0], height=context.prepared.size[1])
    return call


def _annotator_dir(engine: Engine) -> str | None:
    value = os.environ.get("ZREALISM_ANNOTATOR_DIR") or engine.models.annotators
    return value if value and Path(value).expanduser().is_dir() else None


def run_static(source: Any, settings: StaticSettings | None = None, *, models: Any = "realistic-vision",
               engine: Engine | None = None, out_dir: str | os.PathLike | None = None,
               on_step: ProgressCallback | None = None, cancel: CancelToken | None = None, preview_every: int = 5,
               evaluate: bool = True, device: str = "auto", offload: str = "auto") -> StaticResult:
    """Transform one source image into a photoreal still. Bad settings or a bad source raise before any model loads."""
    import torch

    from .colour import anchor_colours
    from .intake import validate_image_path
    from .records import RunWriter

    settings = (settings or StaticSettings()).validated()
    if isinstance(source, (str, os.PathLike)):
        validate_image_path(source)
    engine = engine or get_engine(models, device=device, offload=offload)
    check_named_settings(settings, engine)
    writer = RunWriter.create(out_dir, "static") if out_dir is not None else None
    total_start = time.perf_counter()
    try:
        context = understand_source(source, settings, engine)
        timings = dict(context.timings)
        notes = list(context.warnings)
        kinds = tuple(u.kind for u in context.units)

        t = time.perf_counter()
        emit(on_step, "load", 0, 1, t)
        pipe = engine.static_pipeline(kinds, safety_checker=settings.safety_checker)
        emit(on_step, "load", 1, 1, t)
        timings["load"] = time.perf_counter() - t

        from .prompts import prepare_prompts
        from .schedulers import make_scheduler

        pipe.scheduler = make_scheduler(settings.scheduler, engine.scheduler_config(), seed=settings.seed)
        prompts = prepare_prompts(pipe, context.prompt, context.negative_prompt)
        notes += prompts.warnings
        prompt_kwargs = prompts.pipeline_kwargs()
        denoise_steps = max(1, int(settings.steps * settings.strength))
        reporter = StepReporter(denoise_steps, on_step, cancel, preview_every)
        call = pipeline_arguments(context, settings, prompt_kwargs)
        call.update(generator=torch.Generator("cpu").manual_seed(settings.seed), callback_on_step_end=reporter,
                    callback_on_step_end_tensor_inputs=["latents"])
        t = time.perf_counter()
        with engine.busy, warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=FutureWarning)
            output = pipe(**call)
        timings["generate"] = time.perf_counter() - t
        if reporter.interrupted:
            raise CancelledError(f"cancelled after {reporter.done} of {denoise_steps} denoising steps")
        raw = output.images[0]
        flagged = getattr(output, "nsfw_content_detected", None)
        if flagged and any(flagged):
            notes.append("the safety checker flagged the output and replaced it with a black image.")

        t = time.perf_counter()
        colour = anchor_colours(raw, context.prepared.image, method=settings.colour_method,
                                strength=settings.colour_strength,
                                mask=context.prepared.mask if settings.colour_mask else None)
        timings["colour"] = time.perf_counter() - t

        metrics = None
        if evaluate:
            from .metrics import evaluate_pair

            t = time.perf_counter()
            metrics = evaluate_pair(context.prepared.image, colour.image, mask=context.prepared.mask,
                                    adherence=adherence_request(context, engine))
            timings["metrics"] = time.perf_counter() - t
        timings["total"] = time.perf_counter() - total_start
        result = StaticResult(colour.image, raw, context, settings, colour, metrics, "completed", timings, notes,
                              engine.describe())
        if writer is not None:
            writer.write_static(result, engine)
            result.run_dir = writer.folder
            result.record = writer.record
        return result
    except BaseException as exc:
        if writer is not None:
            writer.fail(exc, settings=settings, engine=engine)
        raise
