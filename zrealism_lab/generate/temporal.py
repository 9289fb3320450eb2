"""Temporal runs: a still (or the source) or an input clip -> a short live-action clip with AnimateDiff.

Still -> clip: the still is repeated as the input video of diffusers' AnimateDiff video-to-video ControlNet pipeline,
with the still's control maps on every frame, so every frame stays anchored to that one image while the motion
module and a motion prompt add movement. Clip -> clip: the input clip's frames are the video and each frame gets its
own control maps. Clips longer than the motion module's window run through FreeNoise context windows; the spatial
layers and the ControlNets then work through the frames in window-sized chunks, so memory follows the window, not
the clip length. The pipeline's motion UNet shares its weights with the static engine (see ``sharing``).
"""
from __future__ import annotations

import os
import time
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from PIL import Image

from ..engine import Engine, get_engine
from ..engine.animatediff import (ANIMATEDIFF_SCHEDULE, FREE_NOISE_SPATIAL_SPLIT, decode_video_latents,
                                  set_free_init, set_free_noise, window_chunking)
from ..errors import CancelledError, SettingsError
from ..progress import CancelToken, ProgressCallback, StepReporter, emit
from ..schedulers import denoise_steps
from ..settings import TemporalSettings
from ..source.context import check_named_settings
from ..adapters.plan import resolve_adapters
from ..device import run_autocast
from ..speed import apply_speed
from .calls import control_arguments
from .result import RunResult
from .static import StaticResult
from .temporal_inputs import (SampledClip, TemporalInputs, inputs_from_clip, inputs_from_source, inputs_from_static,
                              sample_clip)

if TYPE_CHECKING:
    from ..colour import AnchorResult
    from ..metrics import MetricReport
    from .clip_hires import ClipHiresResult
    from .face_track import ClipFaceResult


@dataclass
class TemporalResult(RunResult):
    frames: list[Image.Image]  # final frames (after colour anchoring)
    raw_frames: list[Image.Image]  # straight out of the VAE
    fps: float
    inputs: TemporalInputs
    settings: TemporalSettings
    colour: list[AnchorResult]  # one per frame
    generation: dict[str, Any]  # what actually ran: steps, windows, chunks, scheduler
    faces: ClipFaceResult | None = None  # the face-detail pass, when asked for (ran or skipped)
    hires: ClipHiresResult | None = None  # the hires pass, when asked for (its .first: the first-pass frames)

    @property
    def mode(self) -> Literal["still", "clip"]:
        return self.inputs.mode

    @property
    def size(self) -> tuple[int, int]:
        return self.frames[0].size

    @property
    def control_images(self) -> dict[str, Image.Image]:
        return {kind: maps[0] for kind, maps in self.inputs.control_frames.items()}


# ------------------------------------------------------------------------------------------------ run


class _RunningCount:
    """Numbers the steps of all FreeInit passes consecutively before handing them to the StepReporter."""

    def __init__(self, reporter: StepReporter) -> None:
        self.reporter, self.count = reporter, 0

    def __call__(self, pipe: Any, step_index: int, timestep: Any, kwargs: dict[str, Any]) -> dict[str, Any]:
        out = self.reporter(pipe, self.count, timestep, kwargs)
        self.count += 1
        return out


def _engine_for(source: Any, models: Any, device: str, offload: str) -> Engine:
    """The engine that made a StaticResult (same model set, same device choice: nothing is loaded again)."""
    if isinstance(source, StaticResult) and source.engine.get("models"):
        from ..models.modelset import ModelSet

        models = ModelSet.from_dict(source.engine["models"])
    return get_engine(models, device=device, offload=offload)


def _check_named_settings(settings: TemporalSettings, source: Any, engine: Engine) -> None:
    """Profile name and control kinds, checked before a run folder exists (as for stills)."""
    units = tuple(source.context.units) if isinstance(source, StaticResult) and settings.controls is None else None
    check_named_settings(settings, engine, units)


def _colour_anchor(raw: list[Image.Image], inputs: TemporalInputs, settings: TemporalSettings,
                   ) -> tuple[list[Image.Image], list[AnchorResult]]:
    from ..colour import anchor_colours, anchor_frames

    masks = inputs.masks if settings.colour_mask else None
    if inputs.mode == "still":  # one fixed source for every frame: prepared once, shared by all frames
        results = anchor_frames(raw, inputs.references[0], method=settings.colour_method,
                                strength=settings.colour_strength, mask=masks[0] if masks else None)
    else:  # each frame against its own input frame (never the previous output, so drift cannot build up)
        results = [anchor_colours(frame, reference, method=settings.colour_method, strength=settings.colour_strength,
                                  mask=masks[i] if masks else None)
                   for i, (frame, reference) in enumerate(zip(raw, inputs.references))]
    return [r.image for r in results], results


def _evaluate(frames: list[Image.Image], inputs: TemporalInputs) -> MetricReport:
    from ..metrics import evaluate_clip

    if frames[0].size != inputs.size:  # after a hires pass: judged at the input size, where masks and reference are
        frames = [frame.resize(inputs.size, Image.LANCZOS) for frame in frames]
    mask = None
    if inputs.masks:
        mask = inputs.masks[0] if inputs.mode == "still" else np.stack(inputs.masks)
    # In clip -> clip runs the input clip is the reference: its own flicker is what the output should not exceed.
    return evaluate_clip(frames, reference=inputs.frames if inputs.mode == "clip" else None, mask=mask)


def run_temporal(source: Any = None, settings: TemporalSettings | None = None, *, clip: Any = None,
                 engine: Engine | None = None, models: Any = "realistic-vision",
                 out_dir: str | os.PathLike | None = None,
                 on_step: ProgressCallback | None = None, cancel: CancelToken | None = None, preview_every: int = 5,
                 evaluate: bool = True, device: str = "auto", offload: str = "auto") -> TemporalResult:
    """Animate a still or transform a clip.

    ``source``: a StaticResult (its final still, control maps and prompts are used, on the same engine), an image or
    an image path (its prepared source is animated). ``clip``: an MP4/MOV/WebM/GIF/WebP file, a folder of frames or a
    ``video.Clip`` for a clip -> clip run. Give one of the two. Bad settings or inputs raise before any model loads.
    """
    import torch

    from ..files import check_output_root
    from ..records import RunWriter, recorded
    from ..source.intake import validate_image_path
    from ..source.video import Clip, validate_clip_path

    settings = TemporalSettings.coerce(settings).validated()
    if (source is None) == (clip is None):
        raise SettingsError("source/clip", "both" if source is not None else "neither",
                            "exactly one: a still (StaticResult, image or image path) or an input clip")
    from ..source.samples import resolve_source

    source = resolve_source(source)  # "sample:NAME" as on the command line
    if isinstance(source, (str, os.PathLike)):
        validate_image_path(source)
    if clip is not None and not isinstance(clip, Clip):
        validate_clip_path(clip)
    if clip is not None:  # decoded now: a damaged clip fails before any run folder exists
        t = time.perf_counter()
        clip = SampledClip(sample_clip(clip, settings), time.perf_counter() - t)
    if out_dir is not None:
        check_output_root(out_dir)
    engine = engine or _engine_for(source, models, device, offload)
    settings, speed = apply_speed(settings, engine.models, engine.plan.device)  # the settings the mode runs with
    _check_named_settings(settings, source, engine)
    adapters = resolve_adapters(settings, engine.models, allow_pickle=engine.allow_pickle)
    total_start = time.perf_counter()
    # Inputs, control maps and the pipeline come before the run folder: a folder is made only for a run that starts
    # generating, so a bad input or missing weights leave nothing behind.
    if clip is not None:
        inputs = inputs_from_clip(clip, settings, engine, on_step)
    elif isinstance(source, StaticResult):
        inputs = inputs_from_static(source, settings, engine)
    else:
        inputs = inputs_from_source(source, settings, engine)
    timings = dict(inputs.timings)
    notes = list(inputs.notes) + list(speed.notes)
    kinds = tuple(u.kind for u in inputs.units)
    if settings.face_detail and settings.face_boxes:  # in output frame pixels: known once the inputs are sized
        from ..settings import check_box
        from .clip_hires import clip_hires_size

        final = clip_hires_size(settings, inputs.size) if settings.hires_on else inputs.size
        for box in settings.face_boxes:
            check_box(box, final)
    n_frames = len(inputs.frames)
    if inputs.mode == "clip" and settings.frames != n_frames:  # the clip decides: record what ran, not the request
        if settings.frames != TemporalSettings().frames:
            notes.append(f"frames={settings.frames} applies to still -> clip runs; this clip -> clip run made the "
                         f"{n_frames} frames the input clip gives (every, max_frames choose them), and is recorded so")
        settings = settings.replace(frames=n_frames)

    t = time.perf_counter()
    emit(on_step, "load", 0, 1, t)
    pipe = engine.temporal_pipeline(kinds)
    emit(on_step, "load", 1, 1, t)
    timings["load"] = time.perf_counter() - t
    adapter_window = int(pipe.motion_adapter.config.motion_max_seq_length)
    if min(n_frames, settings.context_length) > adapter_window:
        raise SettingsError("context_length", settings.context_length,
                            f"at most {adapter_window}, the longest clip this motion adapter was trained on")

    writer = RunWriter.create(out_dir, "temporal") if out_dir is not None else None
    with recorded(writer, settings=settings, engine=engine), run_autocast(speed.autocast):
        from ..prompts import prepare_prompts
        from ..schedulers import make_scheduler

        pipe.scheduler = make_scheduler(settings.scheduler, {**engine.scheduler_config(), **ANIMATEDIFF_SCHEDULE},
                                        seed=settings.seed)
        long_clip = set_free_noise(pipe, n_frames, settings)
        set_free_init(pipe, settings)
        # The IP-Adapter's reference: the still the clip is anchored to, or the clip's first frame.
        engine.adapters.begin_run(adapters, inputs.still if inputs.still is not None else inputs.frames[0],
                                  settings.cfg)
        prompts = prepare_prompts(pipe, inputs.prompt, inputs.negative_prompt)
        notes += prompts.warnings
        prompt_kwargs = prompts.pipeline_kwargs()
        if long_clip and "prompt_embeds" in prompt_kwargs and prompt_kwargs["prompt_embeds"] is not None:
            # diffusers' FreeNoise encodes the prompt itself and refuses ready-made embeddings
            notes.append("prompt weighting / long-prompt chunking is not available with context windows: "
                         "the plain prompt text is used.")
            prompt_kwargs = {"prompt": prompts.prompt, "negative_prompt": prompts.negative_prompt}
        passes = denoise_steps(settings.steps, settings.strength, settings.free_init_iters if settings.free_init else 1)
        reporter = StepReporter(max(1, sum(passes)), on_step, cancel, preview_every)
        decode_chunk = settings.decode_chunk or engine.plan.decode_chunk
        width, height = inputs.size
        call: dict[str, Any] = dict(
            video=inputs.frames, height=height, width=width, num_inference_steps=settings.steps,
            strength=settings.strength, guidance_scale=settings.cfg,
            generator=torch.Generator("cpu").manual_seed(settings.seed), output_type="latent",
            callback_on_step_end=_RunningCount(reporter), callback_on_step_end_tensor_inputs=["latents"],
            decode_chunk_size=decode_chunk, **prompt_kwargs, **engine.adapters.call_kwargs())
        if adapters.ip_adapter is not None:
            reporter.hooks.append(engine.adapters.ip_adapter_schedule(adapters.ip_adapter, reporter.total))
        if kinds:
            call.update(conditioning_frames=[inputs.control_frames[k] for k in kinds],
                        **control_arguments(inputs.units))

        t = time.perf_counter()
        with engine.busy, warnings.catch_warnings(), window_chunking(pipe, long_clip, settings.context_length):
            warnings.filterwarnings("ignore", category=FutureWarning)
            latents = pipe(**call).frames
            timings["generate"] = time.perf_counter() - t
            if reporter.interrupted:
                raise CancelledError(f"cancelled after {reporter.done} of {reporter.total} denoising steps")
            t = time.perf_counter()
            raw = decode_video_latents(pipe, latents, decode_chunk, on_step, cancel)
            timings["decode"] = time.perf_counter() - t

        hires, control_frames = None, inputs.control_frames
        if settings.hires_on:
            from .clip_hires import run_clip_hires

            hires = run_clip_hires(pipe, inputs, settings, engine, raw, prompt_kwargs, long_clip=long_clip,
                                   decode_chunk=decode_chunk, on_step=on_step, cancel=cancel,
                                   preview_every=preview_every)
            raw, control_frames = hires.frames, hires.control_frames
            timings["hires"] = hires.seconds
            notes += hires.notes
        faces = None
        if settings.face_detail:
            from .face_track import refine_clip_faces

            unrefined = raw
            faces = refine_clip_faces(raw, settings.face_settings(), engine, window=settings.face_smoothing,
                                      prompt=inputs.prompt, negative_prompt=inputs.negative_prompt,
                                      units=inputs.units, control_frames=control_frames, on_step=on_step,
                                      cancel=cancel)
            raw = faces.frames
            timings["face_detail"] = faces.seconds
            notes += faces.notes
        t = time.perf_counter()
        frames, colour = _colour_anchor(raw, inputs, settings)
        timings["colour"] = time.perf_counter() - t
        metrics = None
        if evaluate:
            t = time.perf_counter()
            metrics = _evaluate(frames, inputs)
            if faces is not None and faces.status == "refined":  # the same clip without the pass, for comparison
                without = _evaluate(_colour_anchor(unrefined, inputs, settings)[0], inputs)
                faces.metrics_with = {m.name: round(float(m.value), 6) for m in metrics.values}
                faces.metrics_without = {m.name: round(float(m.value), 6) for m in without.values}
            timings["metrics"] = time.perf_counter() - t
        timings["total"] = time.perf_counter() - total_start
        generation = {
            "mode": inputs.mode, "frames": n_frames, "size": list(inputs.size), "fps": inputs.fps,
            "denoise_steps": passes, "decode_chunk": decode_chunk, "control_kinds": list(kinds),
            "scheduler": {"name": settings.scheduler, "class": type(pipe.scheduler).__name__,
                          **{k: pipe.scheduler.config.get(k) for k in ("beta_schedule", "timestep_spacing",
                                                                         "steps_offset", "clip_sample")}},
            "context_windows": ({"context_length": settings.context_length, "context_stride": settings.context_stride,
                                 "spatial_split": FREE_NOISE_SPATIAL_SPLIT, "frame_chunk": settings.context_length}
                                if long_clip else None),
            "free_init": {"iterations": settings.free_init_iters} if settings.free_init else None,
            "motion_adapter_window": adapter_window, "offload": engine.plan.offload,
        }
        result = TemporalResult(frames, raw, inputs.fps, inputs, settings, colour, generation, faces=faces,
                                hires=hires, metrics=metrics, status="completed", timings=timings, warnings=notes,
                                engine=engine.describe(), adapters=adapters.to_record(), speed=speed.to_dict())
        if writer is not None:
            writer.publish(result, engine)
        return result
