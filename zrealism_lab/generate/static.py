"""Static runs: source image -> photoreal still. The source stage (``source.context``) feeds ControlNet img2img on
the shared engine, then colour anchoring against the fixed source, evaluation and the run record."""
from __future__ import annotations

import dataclasses
import os
import time
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from PIL import Image

from ..engine import Engine, get_engine
from ..errors import CancelledError
from ..progress import CancelToken, ProgressCallback, StepReporter, emit
from ..settings import StaticSettings
from .calls import control_arguments
from .result import RunResult
from .hires import decode_latents
from .refine import check_refinements, run_refinements, wants_latents
from ..source.context import SourceContext, check_named_settings, detect_unit, understand_source

if TYPE_CHECKING:
    from ..colour import AnchorResult
    from .face_detail import FaceDetailResult
    from .hires import HiresResult


@dataclass
class StaticResult(RunResult):
    image: Image.Image  # the final still (after colour anchoring)
    raw: Image.Image  # straight out of the diffusion model
    context: SourceContext
    settings: StaticSettings
    colour: AnchorResult
    hires: HiresResult | None = None  # the hires pass, when it ran (its .first is the first pass's raw image)
    faces: FaceDetailResult | None = None  # the face-detail pass, when asked for (ran or skipped)

    @property
    def control_images(self) -> dict[str, Image.Image]:
        return {kind: cmap.image for kind, cmap in self.context.control_maps.items()}


def adherence_request(context: SourceContext, engine: Engine) -> Any:
    """Control adherence: re-run each unit's detector (same method and parameters) on the output and compare it
    with the map that was fed in. Maps that never look at the image (the mask-inflated depth) are skipped."""
    from ..control import CONTROL_PROVIDERS
    from ..metrics.adherence import AdherenceRequest

    units = {u.kind: u for u in context.units}

    def lookup(kind: str):
        cmap = context.control_maps[kind]
        if not CONTROL_PROVIDERS.get(kind).method(cmap.method).reads_image:
            return None
        unit = dataclasses.replace(units[kind], method=cmap.method)

        def detect(image: Image.Image):
            found = detect_unit(unit, image, engine, size=image.size, detect_resolution=max(image.size))
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
                    **control_arguments(context.units), width=context.prepared.size[0],
                    height=context.prepared.size[1])
    return call


def run_static(source: Any, settings: StaticSettings | None = None, *, models: Any = "realistic-vision",
               engine: Engine | None = None, out_dir: str | os.PathLike | None = None,
               on_step: ProgressCallback | None = None, cancel: CancelToken | None = None, preview_every: int = 5,
               evaluate: bool = True, device: str = "auto", offload: str = "auto") -> StaticResult:
    """Transform one source image into a photoreal still. Bad settings or a bad source raise before any model loads."""
    import torch

    from ..colour import anchor_colours
    from ..source.intake import validate_image_path
    from ..files import check_output_root
    from ..adapters.plan import resolve_adapters
    from ..records import RunWriter, recorded
    from ..device import run_autocast
    from ..speed import apply_speed

    from ..profiles import apply_profile_strength
    from ..source.samples import resolve_source

    settings = apply_profile_strength(StaticSettings.coerce(settings).validated()).validated()  # as it runs
    source = resolve_source(source)  # "sample:NAME" as on the command line
    if isinstance(source, (str, os.PathLike)):
        validate_image_path(source)
    if out_dir is not None:
        check_output_root(out_dir)
    engine = engine or get_engine(models, device=device, offload=offload)
    settings, speed = apply_speed(settings, engine.models, engine.plan.device)  # the settings the mode runs with
    check_named_settings(settings, engine)
    adapters = resolve_adapters(settings, engine.models, allow_pickle=engine.allow_pickle)
    total_start = time.perf_counter()
    # Everything that can fail on the user's input (decoding the source, sizes, control maps, the weights on disk)
    # happens before the run folder exists: a folder is made only for a run that starts generating.
    context = understand_source(source, settings, engine)
    check_refinements(settings, context.prepared.size)
    timings = dict(context.timings)
    notes = list(context.warnings) + list(speed.notes)
    kinds = tuple(u.kind for u in context.units)
    t = time.perf_counter()
    emit(on_step, "load", 0, 1, t)
    pipe = engine.static_pipeline(kinds, safety_checker=settings.safety_checker)
    emit(on_step, "load", 1, 1, t)
    timings["load"] = time.perf_counter() - t

    writer = RunWriter.create(out_dir, "static") if out_dir is not None else None
    with recorded(writer, settings=settings, engine=engine), run_autocast(speed.autocast):
        from ..prompts import prepare_prompts
        from ..schedulers import make_scheduler

        pipe.scheduler = make_scheduler(settings.scheduler, engine.scheduler_config(), seed=settings.seed)
        engine.adapters.begin_run(adapters, context.prepared.image, settings.cfg)
        prompts = prepare_prompts(pipe, context.prompt, context.negative_prompt)
        notes += prompts.warnings
        prompt_kwargs = prompts.pipeline_kwargs()
        denoise_steps = max(1, int(settings.steps * settings.strength))
        reporter = StepReporter(denoise_steps, on_step, cancel, preview_every)
        call = pipeline_arguments(context, settings, prompt_kwargs)
        call.update(generator=torch.Generator("cpu").manual_seed(settings.seed), callback_on_step_end=reporter,
                    callback_on_step_end_tensor_inputs=["latents"], **engine.adapters.call_kwargs())
        if adapters.ip_adapter is not None:
            reporter.hooks.append(engine.adapters.ip_adapter_schedule(adapters.ip_adapter, denoise_steps))
        if wants_latents(settings):
            call["output_type"] = "latent"
        t = time.perf_counter()
        with engine.busy, warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=FutureWarning)
            output = pipe(**call)
        timings["generate"] = time.perf_counter() - t
        if reporter.interrupted:
            raise CancelledError(f"cancelled after {reporter.done} of {denoise_steps} denoising steps")
        latents = output.images if wants_latents(settings) else None
        emit(on_step, "decode", 0, 1, time.perf_counter())  # the stages after denoising, for progress lines
        raw = decode_latents(pipe, latents) if latents is not None else output.images[0]
        flagged = getattr(output, "nsfw_content_detected", None)
        if flagged and any(flagged):
            notes.append("the safety checker flagged the output and replaced it with a black image.")
        refined = run_refinements(pipe, context, settings, engine, raw, prompt_kwargs, latents=latents,
                                  on_step=on_step, cancel=cancel, preview_every=preview_every)
        raw = refined.image
        timings.update(refined.timings)
        notes += refined.notes

        t = time.perf_counter()
        emit(on_step, "colour", 0, 1, t)
        colour = anchor_colours(raw, context.prepared.image, method=settings.colour_method,
                                strength=settings.colour_strength,
                                mask=context.prepared.mask if settings.colour_mask else None)
        timings["colour"] = time.perf_counter() - t

        metrics = None
        if evaluate:
            from ..metrics import evaluate_pair

            t = time.perf_counter()
            emit(on_step, "metrics", 0, 1, t)
            # At the first pass's size, where the control maps that adherence compares against were made.
            judged = colour.image if colour.image.size == context.prepared.size else colour.image.resize(
                context.prepared.size, Image.LANCZOS)
            metrics = evaluate_pair(context.prepared.image, judged, mask=context.prepared.mask,
                                    adherence=adherence_request(context, engine))
            timings["metrics"] = time.perf_counter() - t
        timings["total"] = time.perf_counter() - total_start
        result = StaticResult(colour.image, raw, context, settings, colour, hires=refined.hires, faces=refined.faces,
                              metrics=metrics, status="completed", timings=timings, warnings=notes,
                              engine=engine.describe(), adapters=adapters.to_record(), speed=speed.to_dict())
        if writer is not None:
            emit(on_step, "record", 0, 1, time.perf_counter())
            writer.publish(result, engine)
        return result
