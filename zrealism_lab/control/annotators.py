"""Loading controlnet-aux detectors ("annotators") from a local folder or from the official hub repository.

Where the checkpoint files may come from:
  1. ``annotator_dir`` (argument) or the ``ZREALISM_ANNOTATOR_DIR`` environment variable: a folder holding the
     files under their original names (as in the hub repository). A named folder is used as it is: when a file
     is missing there the hub is not tried, so a typo cannot silently fetch something else.
  2. Otherwise the official ``lllyasviel/Annotators`` hub repository, from the local hub cache when the files
     are there, else downloaded (unless the hub is offline). No other repository can be named.

Pickle policy. The annotator files are pickle-based ``.pt``/``.pth`` files that controlnet-aux reads with
``torch.load``. The lab's rule is to refuse pickle unless the user opts in, because unpickling can run code.
torch >= 2.6 reads with ``weights_only=True`` by default: a restricted unpickler that rebuilds only tensors and
plain containers and refuses everything else, so it cannot run code from the file. The official annotator files
are plain state dicts and load that way. We therefore allow loading without an opt-in only when we can force
that mode: with torch >= 2.6, ``TORCH_FORCE_WEIGHTS_ONLY_LOAD=1`` is set while the detector loads (it wins even
where a caller passes ``weights_only=False``). A file that needs full unpickling is refused with
UnsafeCheckpointError. Opting in (``allow_pickle=True`` or ``ZREALISM_ALLOW_PICKLE_ANNOTATORS=1``), for files you
trust, sets ``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1`` instead, so the load uses full unpickling. Older torch versions
need the opt-in.
"""
from __future__ import annotations

import os
import pickle
import threading
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

from ..errors import MissingWeightsError, UnsafeCheckpointError

ANNOTATOR_REPO = "lllyasviel/Annotators"
ANNOTATOR_DIR_ENV = "ZREALISM_ANNOTATOR_DIR"
ALLOW_PICKLE_ENV = "ZREALISM_ALLOW_PICKLE_ANNOTATORS"
_TRUE = ("1", "true", "yes", "on")
# MiDaS asks timm for "vit_base_resnet50_384", which timm maps to its new name with a warning on every load.
DEPRECATED_TIMM_NAME = "Mapping deprecated model name"


@dataclass(frozen=True)
class AnnotatorSpec:
    detector: str  # controlnet-aux class name, for messages
    files: tuple[str, ...]  # file names in the folder / hub repository, as controlnet-aux expects them
    load: Callable[[Any, str, bool], Any]  # (controlnet_aux module, folder or repo id, local_files_only) -> detector


def _load_midas(aux: Any, source: str, local_only: bool) -> Any:
    return aux.MidasDetector.from_pretrained(source, model_type="dpt_hybrid", local_files_only=local_only)


def _load_openpose(aux: Any, source: str, local_only: bool) -> Any:
    return aux.OpenposeDetector.from_pretrained(source, local_files_only=local_only)


def _load_lineart_anime(aux: Any, source: str, local_only: bool) -> Any:
    return aux.LineartAnimeDetector.from_pretrained(source, local_files_only=local_only)


# (kind, method) -> what controlnet-aux 0.0.x reads (file names from each detector's from_pretrained).
ANNOTATORS: dict[tuple[str, str], AnnotatorSpec] = {
    ("depth", "midas"): AnnotatorSpec("MidasDetector", ("dpt_hybrid-midas-501f0c75.pt",), _load_midas),
    ("openpose", "openpose"): AnnotatorSpec(
        "OpenposeDetector", ("body_pose_model.pth", "hand_pose_model.pth", "facenet.pth"), _load_openpose),
    ("lineart_anime", "anime"): AnnotatorSpec("LineartAnimeDetector", ("netG.pth",), _load_lineart_anime),
}

_cache: dict[tuple[str, str, str, str], Any] = {}
# One lock for the cache and for the environment switch below: loads are rare and must not interleave.
_lock = threading.RLock()


def import_controlnet_aux() -> Any:
    """Import controlnet-aux; its package import pulls in every detector and warns about optional extras
    (mediapipe, timm deprecations) that the lab does not use."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import controlnet_aux
    return controlnet_aux


@dataclass(frozen=True)
class AnnotatorLocation:
    source: str  # a folder (absolute) or the hub repository id
    local_files_only: bool
    is_folder: bool

    def describe(self) -> str:
        return f"folder {self.source}" if self.is_folder else f"hub repository {self.source}"


def annotator_spec(kind: str, method: str) -> AnnotatorSpec:
    return ANNOTATORS[(kind, method)]


def locate_annotator(kind: str, method: str, annotator_dir: str | os.PathLike | None = None) -> AnnotatorLocation:
    """Where the checkpoint files of (kind, method) will be read from; MissingWeightsError when nowhere."""
    spec = annotator_spec(kind, method)
    folder = annotator_dir or os.environ.get(ANNOTATOR_DIR_ENV) or None
    if folder is not None:
        path = Path(folder).expanduser().resolve()
        missing = [name for name in spec.files if not (path / name).is_file()]
        if missing:
            raise MissingWeightsError(_missing_message(kind, method, spec, missing, f"the folder {path}"))
        return AnnotatorLocation(str(path), True, True)

    from huggingface_hub import constants, try_to_load_from_cache

    missing = [name for name in spec.files if not isinstance(try_to_load_from_cache(ANNOTATOR_REPO, name), str)]
    if not missing:
        return AnnotatorLocation(ANNOTATOR_REPO, True, False)
    if hub_offline():
        where = (f"the hub cache ({constants.HF_HUB_CACHE}) for {ANNOTATOR_REPO}; "
                 f"the hub is offline (HF_HUB_OFFLINE is set), and {ANNOTATOR_DIR_ENV} is not set")
        raise MissingWeightsError(_missing_message(kind, method, spec, missing, where))
    return AnnotatorLocation(ANNOTATOR_REPO, False, False)


def hub_offline() -> bool:
    from huggingface_hub import constants

    # The hub library reads HF_HUB_OFFLINE once at import; reading the variable again honours later changes.
    env = os.environ.get("HF_HUB_OFFLINE") or os.environ.get("TRANSFORMERS_OFFLINE") or ""
    return bool(constants.HF_HUB_OFFLINE) or env.strip().lower() in _TRUE


def pickle_allowed(allow_pickle: bool = False) -> bool:
    return bool(allow_pickle) or os.environ.get(ALLOW_PICKLE_ENV, "").strip().lower() in _TRUE


def load_annotator(kind: str, method: str, *, annotator_dir: str | os.PathLike | None = None,
                   device: str = "cpu", allow_pickle: bool = False) -> tuple[Any, AnnotatorLocation]:
    """The controlnet-aux detector for (kind, method), loaded once per (kind, method, location, device)."""
    spec = annotator_spec(kind, method)
    location = locate_annotator(kind, method, annotator_dir)
    key = (kind, method, location.source, device)
    with _lock:
        if key in _cache:
            return _cache[key], location
        aux = import_controlnet_aux()
        try:
            with _torch_load_mode(spec, pickle_allowed(allow_pickle)):
                detector = spec.load(aux, location.source, location.local_files_only)
        except pickle.UnpicklingError as error:
            raise UnsafeCheckpointError(
                f"{spec.detector}: a checkpoint in the {location.describe()} holds more than tensors "
                f"({_refused_global(error)}), so the restricted weights-only loader refused it.\n"
                f"If you trust the files ({', '.join(spec.files)}), pass allow_pickle=True or set "
                f"{ALLOW_PICKLE_ENV}=1."
            ) from error
        except (OSError, ConnectionError) as error:
            if location.local_files_only:
                raise
            where = f"the hub repository {ANNOTATOR_REPO} (download failed: {type(error).__name__})"
            raise MissingWeightsError(_missing_message(kind, method, spec, list(spec.files), where)) from error
        if device != "cpu":
            detector = detector.to(device)
        _cache[key] = detector
        return detector, location


def clear_annotator_cache() -> None:
    """Forget loaded detectors (frees their memory once nothing else holds them)."""
    with _lock:
        _cache.clear()


def cached_annotators() -> list[tuple[str, str, str, str]]:
    with _lock:
        return list(_cache)


@contextmanager
def _torch_load_mode(spec: AnnotatorSpec, allow_pickle: bool) -> Iterator[None]:
    """Make every torch.load inside the block weights-only, or, when pickle is allowed, full unpickling
    (torch >= 2.6 would otherwise refuse such files even after the user opted in)."""
    import torch

    if not allow_pickle and not torch.__version__ >= "2.6":
        raise UnsafeCheckpointError(
            f"{spec.detector} reads pickle checkpoints ({', '.join(spec.files)}); torch {torch.__version__} cannot "
            f"be made to read them with the restricted weights-only loader (needs torch >= 2.6).\n"
            f"Upgrade torch, or if you trust the files pass allow_pickle=True or set {ALLOW_PICKLE_ENV}=1.")
    on, off = ("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "TORCH_FORCE_WEIGHTS_ONLY_LOAD") if allow_pickle else (
        "TORCH_FORCE_WEIGHTS_ONLY_LOAD", "TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD")
    saved = {name: os.environ.get(name) for name in (on, off)}
    os.environ[on] = "1"
    os.environ.pop(off, None)  # torch refuses to run with both set
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD")  # the user opted in
            warnings.filterwarnings("ignore", message=DEPRECATED_TIMM_NAME)
            yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _refused_global(error: Exception) -> str:
    """The 'Unsupported global: ...' part of torch's weights-only refusal, without its advice to pass
    weights_only=False (not an option here)."""
    for line in str(error).splitlines():
        if "Unsupported global" in line:
            return line.strip().split(" was not", 1)[0].replace("WeightsUnpickler error: ", "")
    return str(error).splitlines()[0] if str(error) else type(error).__name__


def _missing_message(kind: str, method: str, spec: AnnotatorSpec, missing: list[str], where: str) -> str:
    return (
        f"The {kind} detector '{method}' (controlnet-aux {spec.detector}) needs {', '.join(spec.files)}; "
        f"missing: {', '.join(missing)}.\n"
        f"Looked in: {where}.\n"
        f"To provide them: set {ANNOTATOR_DIR_ENV} (or pass annotator_dir=) to a folder holding these files, "
        f"or run once with network access so they are fetched from {ANNOTATOR_REPO}."
    )


# Parameters every checkpoint-backed method accepts.
WEIGHTED_DEFAULTS: dict[str, Any] = {"device": "auto", "allow_pickle": False}


def annotator_for(request: Any) -> tuple[Any, dict[str, Any]]:
    """The detector for a DetectRequest of a checkpoint-backed method, and facts for the run record."""
    from ..device import resolve_device

    device = resolve_device(request.params["device"])
    detector, location = load_annotator(request.kind, request.method, annotator_dir=request.annotator_dir,
                                        device=device, allow_pickle=request.params["allow_pickle"])
    return detector, {"annotator_source": location.source, "annotator_device": device}
