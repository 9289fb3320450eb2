"""The lab's UI state without any widget: the run state machine, progress wording, update throttling, field
validation, error summaries and the session's run history.

Nothing here imports ipywidgets, so every rule the widgets follow is tested from plain Python.
"""
from __future__ import annotations

import enum
import re
import threading
import time
import traceback
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

from ..errors import ZRealismError
from ..spec import Spec


class Phase(str, enum.Enum):
    IDLE = "idle"
    RUNNING = "running"
    CANCELLING = "cancelling"
    DONE = "done"
    CANCELLED = "cancelled"
    ERROR = "error"


ACTIVE_PHASES = frozenset({Phase.RUNNING, Phase.CANCELLING})

# Which phase may follow which: a finished run (done, cancelled, error) may always be followed by a new one.
_TRANSITIONS: dict[Phase, frozenset[Phase]] = {
    Phase.IDLE: frozenset({Phase.RUNNING}),
    Phase.RUNNING: frozenset({Phase.CANCELLING, Phase.DONE, Phase.CANCELLED, Phase.ERROR}),
    Phase.CANCELLING: frozenset({Phase.DONE, Phase.CANCELLED, Phase.ERROR}),
    Phase.DONE: frozenset({Phase.RUNNING}),
    Phase.CANCELLED: frozenset({Phase.RUNNING}),
    Phase.ERROR: frozenset({Phase.RUNNING}),
}

BUSY_MESSAGE = "A run is already in progress: wait for it to finish or press Cancel. Nothing was queued."


class TransitionError(RuntimeError):
    """A state change that the machine does not allow (a bug in the caller, never the user's doing)."""


Listener = Callable[[Phase, str], None]


class RunState:
    """One generation at a time: ``try_start`` is atomic, so two presses of Run from two threads start one run.

    Listeners get (phase, message) after every change, outside the lock, in the thread that made the change.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._phase = Phase.IDLE
        self._message = ""
        self._listeners: list[Listener] = []
        self.runs_started = 0

    @property
    def phase(self) -> Phase:
        return self._phase

    @property
    def message(self) -> str:
        return self._message

    @property
    def busy(self) -> bool:
        return self._phase in ACTIVE_PHASES

    def subscribe(self, listener: Listener) -> None:
        self._listeners.append(listener)

    def try_start(self, message: str = "starting ...") -> bool:
        """Enter RUNNING unless a run is active; False (and no change) when busy."""
        with self._lock:
            if self._phase in ACTIVE_PHASES:
                return False
            self._set(Phase.RUNNING, message)
            self.runs_started += 1
        self._notify()
        return True

    def request_cancel(self, message: str = "cancelling: stopping after the current step ...") -> bool:
        """RUNNING -> CANCELLING; False when there is nothing to cancel (or a cancel is already under way)."""
        with self._lock:
            if self._phase is not Phase.RUNNING:
                return False
            self._set(Phase.CANCELLING, message)
        self._notify()
        return True

    def finish(self, message: str = "done") -> None:
        self._move(Phase.DONE, message)

    def mark_cancelled(self, message: str = "cancelled") -> None:
        self._move(Phase.CANCELLED, message)

    def fail(self, message: str) -> None:
        self._move(Phase.ERROR, message)

    def _move(self, phase: Phase, message: str) -> None:
        with self._lock:
            if phase not in _TRANSITIONS[self._phase]:
                raise TransitionError(f"cannot go from {self._phase.value} to {phase.value}")
            self._set(phase, message)
        self._notify()

    def _set(self, phase: Phase, message: str) -> None:
        self._phase, self._message = phase, message

    def _notify(self) -> None:
        phase, message = self._phase, self._message
        for listener in list(self._listeners):
            listener(phase, message)


# ------------------------------------------------------------------------------------------------ progress


def format_seconds(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    seconds = max(0.0, float(seconds))
    if seconds < 0.1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 10:
        return f"{seconds:.1f} s"
    if seconds < 60:
        return f"{seconds:.0f} s"
    minutes, rest = divmod(int(round(seconds)), 60)
    if minutes < 60:
        return f"{minutes} min {rest:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


_STAGE_WORDS = {"denoise": "denoising step", "decode": "decoding", "load": "loading model",
                "controls": "control maps", "colour": "anchoring colours", "metrics": "measuring",
                "record": "saving the run folder", "report": "writing the report"}


AFTER_DENOISE = ("decode", "colour", "metrics", "record")


@dataclass(frozen=True)
class ProgressView:
    """What the progress bar and its label show for one step event."""

    stage: str
    step: int
    total: int
    text: str

    @property
    def fraction(self) -> float:
        return min(1.0, self.step / self.total) if self.total else 0.0

    @property
    def marker(self) -> bool:
        """A stage after denoising starting (decoding, anchoring colours, measuring, saving): the bar stays full,
        only the label changes."""
        return self.stage in AFTER_DENOISE and self.step == 0 and self.total == 1

    @property
    def indeterminate(self) -> bool:
        """A stage of unknown length (a report): the bar moves without a fraction, the label counts time."""
        return self.total <= 0


def progress_view(event: Any) -> ProgressView:
    """Wording for a progress.StepEvent: "denoising step 3/6 · 0.4 s elapsed · ETA 0.8 s"; a stage marker
    (step 0 of 1: decode, colour, metrics, record) reads "decoding ..."; total 0 is a stage of unknown length."""
    stage, step, total = str(event.stage), int(event.step), int(event.total)
    if stage == "load":
        text = "loading model ..." if step < total else "model loaded"
        return ProgressView(stage, step, total, text)
    word = _STAGE_WORDS.get(stage, stage)
    if total <= 0:
        return ProgressView(stage, 0, 0, f"{word} · {format_seconds(event.elapsed)} elapsed")
    if step == 0 and total == 1:
        return ProgressView(stage, step, total, f"{word} ...")
    parts = [f"{word} {step}/{total}", f"{format_seconds(event.elapsed)} elapsed"]
    if step < total:
        parts.append(f"ETA {format_seconds(event.eta)}")
    return ProgressView(stage, step, total, " · ".join(parts))


class Throttle:
    """Lets at most one update through per ``min_interval`` seconds; forced updates (the last step, a stage
    change, a preview) always pass. Keeps a fast run from flooding the kernel's comm channel."""

    def __init__(self, min_interval: float = 0.1, clock: Callable[[], float] = time.monotonic) -> None:
        self.min_interval, self.clock = min_interval, clock
        self._last: float | None = None
        self._lock = threading.Lock()

    def ready(self, force: bool = False) -> bool:
        with self._lock:
            now = self.clock()
            if force or self._last is None or now - self._last >= self.min_interval:
                self._last = now
                return True
            return False

    def reset(self) -> None:
        with self._lock:
            self._last = None


# ------------------------------------------------------------------------------------------------ validation


def check_field(spec: Spec, value: Any) -> str | None:
    """None if ``value`` passes ``spec``, else the short message shown next to the field."""
    try:
        spec.check(value)
    except ZRealismError as exc:
        return f"expected {getattr(exc, 'allowed', spec.allowed())}"
    return None


_WHOLE = re.compile(r"\s*[+-]?\d+\s*")


def parse_number(spec: Spec, text: Any) -> tuple[Any, str | None]:
    """A number typed into a text box: (the value, None), or (the text, what is wrong with it). Whole-number settings
    take digits only, so "3.7" and "1e3" are refused with a message instead of becoming 37 or 13."""
    if not isinstance(text, str):
        return text, None
    stripped = text.strip()
    if spec.optional and stripped == "":
        return None, None
    if spec.kind is int:
        if not _WHOLE.fullmatch(stripped):
            return text, f"'{stripped}' is not a whole number: expected {spec.allowed()}"
        return int(stripped), None
    try:
        return float(stripped), None
    except ValueError:
        return text, f"'{stripped}' is not a number: expected {spec.allowed()}"


def size_note(size: Any, source_size: tuple[int, int] | None = None) -> str | None:
    """What a long side becomes: sides are floored to multiples of 8 ("100 -> 96 px"), and with the source's
    size known, the output's size ("96x48 px")."""
    if isinstance(size, bool) or not isinstance(size, int) or size < 64:
        return None
    if source_size is not None:
        from ..source.preparation import fit_size
        from ..errors import SettingsError

        try:
            width, height = fit_size(int(source_size[0]), int(source_size[1]), size)
        except SettingsError:
            return None  # the preflight says why
        return f"output {width}×{height} px" + (" (sides are multiples of 8)" if size % 8 else "")
    return f"{size} → {size // 8 * 8} px (sides are multiples of 8)" if size % 8 else None


def check_unit_range(start: float, end: float) -> str | None:
    """A ControlNet must stop guiding after it starts (the same rule as ControlUnit.validated)."""
    if end <= start:
        return f"end must be greater than start ({start:g})"
    return None


# ------------------------------------------------------------------------------------------------ errors


@dataclass(frozen=True)
class ErrorReport:
    """A short readable message for the UI, with the full details kept behind a disclosure."""

    title: str
    message: str
    details: str

    @property
    def short(self) -> str:
        return f"{self.title}: {self.message}" if self.message else self.title


_SHORT_LIMIT = 400  # a foreign error's first line is cut here
_OWN_LIMIT = 1500  # the lab's own messages are written to be read whole (what, allowed, what to do)


def summarize_error(exc: BaseException) -> ErrorReport:
    """The lab's own errors already say what to do, so their text is the message; anything else is a bug or an
    environment problem, shown by type with its first line and the traceback behind the disclosure."""
    text = str(exc).strip()
    lines = text.splitlines()
    first = lines[0] if lines else ""
    if isinstance(exc, ZRealismError):
        title = {"SettingsError": "Invalid setting", "IntakeError": "Cannot read the source",
                 "MissingWeightsError": "Model weights missing", "UnsafeCheckpointError": "Unsafe checkpoint",
                 "CancelledError": "Cancelled"}.get(type(exc).__name__, "Error")
        message = text if len(text) <= _OWN_LIMIT else text[:_OWN_LIMIT] + " ..."
    else:
        title = type(exc).__name__
        message = first[:_SHORT_LIMIT] + (" ..." if len(first) > _SHORT_LIMIT or len(lines) > 1 else "")
    details = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    return ErrorReport(title, message, details)


def plain_message(exc: BaseException) -> str:
    """A user-facing sentence: a bad setting reads "frames 500 is not allowed: expected ...", not the library's
    "setting 'frames' = 500"; anything else is its short summary."""
    from ..errors import SettingsError

    if isinstance(exc, SettingsError):
        hint = str(exc).split(f"expected {exc.allowed}.", 1)[-1].strip()
        name = str(exc.name).replace("_", " ")
        return f"{name} {exc.value!r} is not allowed: expected {exc.allowed}." + (f" {hint}" if hint else "")
    return summarize_error(exc).short


# ------------------------------------------------------------------------------------------------ history


@dataclass
class HistoryEntry:
    """One run of the session: finished, cancelled or failed."""

    number: int
    status: str  # completed | cancelled | failed
    settings: Any  # StaticSettings
    source_label: str
    seconds: float
    result: Any = None  # StaticResult when completed
    error: str | None = None
    folder: Any = None  # the run folder when there is no result object (a cancelled or failed run's record)
    kind: str = "static"  # static (a still) or temporal (a clip)
    started: float = field(default_factory=time.time)
    record: Any = None  # the run folder's record, for runs read back from disk
    from_disk: bool = False  # read from a run folder (an earlier session), not run in this one

    @property
    def label(self) -> str:
        settings = self.settings
        parts = [f"#{self.number}", self.status if self.kind == "static" else f"{self.status} clip",
                 self.source_label]
        if settings is not None:
            parts += [f"{settings.size} px", f"{settings.steps} steps", f"strength {settings.strength:g}",
                      f"cfg {settings.cfg:g}", f"seed {settings.seed}"]
            if settings.controls is not None:
                parts.append("+".join(u.kind for u in settings.controls) or "no controls")
        parts.append(format_seconds(self.seconds))
        return " · ".join(parts)

    @property
    def viewable(self) -> bool:
        """Has pictures to show: a completed run of this session, or a completed run folder on disk."""
        return self.status == "completed" and (self.result is not None or self.folder is not None)

    @property
    def run_dir(self) -> Any:
        return getattr(self.result, "run_dir", None) or self.folder


class RunHistory:
    """The session's runs in order; thread-safe because the worker adds while the UI reads."""

    def __init__(self) -> None:
        self._entries: list[HistoryEntry] = []
        self._lock = threading.Lock()

    def add(self, status: str, settings: Any, source_label: str, seconds: float, *, result: Any = None,
            error: str | None = None, folder: Any = None, kind: str = "static") -> HistoryEntry:
        return self.add_entry(lambda number: HistoryEntry(number, status, settings, source_label, seconds, result,
                                                          error, folder, kind=kind))

    def add_entry(self, make: Callable[[int], HistoryEntry]) -> HistoryEntry:
        """Append the entry ``make(number)`` builds with the next run number."""
        with self._lock:
            entry = make(len(self._entries) + 1)
            self._entries.append(entry)
            return entry

    def get(self, number: int) -> HistoryEntry:
        with self._lock:
            for entry in self._entries:
                if entry.number == number:
                    return entry
        raise KeyError(f"no run #{number} in this session's history")

    def completed(self, kind: str | None = "static") -> list[HistoryEntry]:
        """Runs with pictures to show (this session's or on disk), of one kind (None: every kind)."""
        with self._lock:
            return [e for e in self._entries if e.viewable and kind in (None, e.kind)]

    @property
    def entries(self) -> list[HistoryEntry]:
        with self._lock:
            return list(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def options(self, entries: Iterable[HistoryEntry] | None = None) -> list[tuple[str, int]]:
        """(label, number) pairs, newest first, as a Select/Dropdown takes them."""
        chosen = self.entries if entries is None else list(entries)
        return [(e.label, e.number) for e in reversed(chosen)]
