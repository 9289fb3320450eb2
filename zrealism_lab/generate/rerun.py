"""Exact reruns: repeat a run from its record alone and say whether the new outputs match the old ones.

Before anything runs, the source file and every weight file are checked against the sha256 in the record, so a
difference in the pictures is never silently blamed on the seed. Static and temporal records are rerun by the same
code; each kind names its settings class and run function once in ``_KINDS``.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import numpy as np
from PIL import Image

from ..errors import IntakeError, SettingsError, ZRealismError
from ..files import sha256_file
from ..records import compare_model_hashes, missing_record_fields, read_record, safe_output_name

from ..settings import StaticSettings, TemporalSettings
from .static import StaticResult, run_static
from .temporal import TemporalResult, run_temporal

if TYPE_CHECKING:
    from ..models.modelset import ModelSet


class ChangedWeightsError(ZRealismError):
    """The weight files a record names differ from the ones on disk now, so a rerun would not be exact."""


@dataclass(frozen=True)
class RunKind:
    settings_class: type
    run: Callable[..., Any]
    temporal: bool


_KINDS: dict[str, RunKind] = {"static": RunKind(StaticSettings, run_static, temporal=False),
                              "temporal": RunKind(TemporalSettings, run_temporal, temporal=True)}


@dataclass
class RerunPlan:
    """What a rerun will do, worked out from the record before any model loads."""

    record_dir: Path
    record: dict[str, Any]
    kind: str
    inputs: dict[str, Path]  # {"source": path} or, for clip -> clip runs, {"clip": path}
    settings: StaticSettings | TemporalSettings
    models: ModelSet
    hardware: dict[str, Any]  # get_engine's device, offload and dtype
    notes: list[str] = field(default_factory=list)


@dataclass
class RerunResult:
    record_dir: Path
    run_dir: Path | None
    result: StaticResult | TemporalResult
    comparison: dict[str, str]  # output name -> identical | different | missing
    weight_changes: list[str]
    notes: list[str]

    @property
    def identical(self) -> bool:
        return bool(self.comparison) and all(state == "identical" for state in self.comparison.values())

    def summary(self) -> str:
        same = sum(state == "identical" for state in self.comparison.values())
        lines = [f"rerun of {self.record_dir}", f"new run folder: {self.run_dir}",
                 f"outputs identical: {same} of {len(self.comparison)}"]
        lines += [f"  {name}: {state}" for name, state in self.comparison.items() if state != "identical"]
        lines += [f"weights changed: {line}" for line in self.weight_changes]
        lines += [f"note: {note}" for note in self.notes]
        return "\n".join(lines)


def plan_rerun(record_dir: str | os.PathLike, *, image: str | os.PathLike | None = None,
               device: str | None = None) -> RerunPlan:
    """Read a record and check the source (sha256) and settings; raises before any model loads."""
    from ..models.modelset import ModelSet, tiny_modelset

    folder = Path(record_dir).expanduser()
    record = read_record(folder)
    kind = record.get("kind")
    if kind not in _KINDS:
        raise SettingsError("kind", kind, "a run record of kind " + " or ".join(_KINDS))
    if record.get("status") != "completed":
        raise IntakeError(f"{folder} holds a {record.get('status')} run: only completed runs record their source and "
                          "outputs, so only they can be repeated exactly. Start a new run with the same settings instead.")
    missing = [name for name in missing_record_fields(record) if name in ("settings", "models", "hardware")]
    if missing or not isinstance(record.get("settings"), dict) or not isinstance(record.get("models"), dict):
        raise IntakeError(f"{folder / 'record.json'} lacks what a rerun needs ({', '.join(missing) or 'settings/models'}"
                          "): the record is damaged or was edited. Start a new run with the same settings instead.")
    outputs = record.get("outputs")
    if not isinstance(outputs, dict) or not outputs:
        raise IntakeError(f"{folder / 'record.json'} lists no outputs to compare: the record is damaged or was edited.")
    for name in outputs:  # checked now: a name escaping the folder must not cost a whole run before it is refused
        safe_output_name(name)
    spec = _KINDS[kind]
    notes: list[str] = []
    settings = _settings_from_record(spec.settings_class, record, notes)
    if record.get("mode") == "clip":
        inputs = {"clip": _check_input(record.get("clip") or {}, image, "clip")}
    else:
        _refuse_still_from_static(record, folder)
        inputs = {"source": _check_input(record.get("source") or {}, image, "image")}
    try:
        models = ModelSet.from_dict(record["models"])
    except (KeyError, TypeError) as exc:
        raise IntakeError(f"{folder / 'record.json'} has an unreadable 'models' entry ({type(exc).__name__}: {exc}): "
                          "the record is damaged or was edited.") from None
    if models.random_weights and models.name == "tiny" and not Path(models.base.location).exists():
        # The tiny bundle is rebuilt from its seed on any machine; the hash check below proves it is the same.
        models = tiny_modelset()
        notes.append(f"the recorded tiny bundle folder is gone; using the one at {models.base.location}")
    hardware = _recorded_hardware(record, notes) if device is None else {"device": device, "offload": "auto",
                                                                          "dtype": None}
    return RerunPlan(folder, record, kind, inputs, settings, models, hardware, notes)


def _settings_from_record(settings_class: Any, record: dict[str, Any], notes: list[str] | None = None) -> Any:
    import dataclasses

    from ..settings import control_unit_from

    settings = settings_class.from_dict(record["settings"])
    units = record.get("units")
    if units is not None and hasattr(settings, "controls"):
        # The units the run really used (profile scales applied, an empty pose dropped): exact even if the model
        # set's default units change between versions.
        settings = settings.replace(controls=tuple(control_unit_from(u) for u in units))
    if getattr(settings, "controls", None):
        settings = settings.replace(controls=tuple(_recorded_map(u, record) for u in settings.controls))
    if getattr(settings, "controls", None):
        # Loading pickle checkpoints is the user's decision, never a file's: an opt-in stored in a record (which
        # anyone can edit) is dropped; the user can still opt in with ZREALISM_ALLOW_PICKLE_ANNOTATORS=1.
        opted = [u.kind for u in settings.controls if isinstance(u.params, dict) and u.params.get("allow_pickle")]
        if opted:
            settings = settings.replace(controls=tuple(
                dataclasses.replace(u, params={k: v for k, v in u.params.items() if k != "allow_pickle"})
                if u.kind in opted else u for u in settings.controls))
            if notes is not None:
                notes.append(f"the record allowed pickle checkpoints for {', '.join(opted)}; a rerun does not take "
                             "that from a record: set ZREALISM_ALLOW_PICKLE_ANNOTATORS=1 if you trust the files")
    return settings.validated()


def _recorded_map(unit: Any, record: dict[str, Any]) -> Any:
    """A unit given its own map: the file (or folder) the run read, by the absolute path the record keeps (the unit's
    own may be relative to where the run started), checked against the recorded sha256 before any model loads."""
    import dataclasses

    from ..control.given import check_given_image, given_digest

    entry = (record.get("controls") or {}).get(unit.kind)
    if unit.image is None or not isinstance(entry, dict):
        return unit
    given = entry if entry.get("given") else entry.get("params") if isinstance(entry.get("params"), dict) else {}
    if not given.get("given"):
        return unit
    path = Path(str(given.get("image") or unit.image))
    if not path.exists():
        raise IntakeError(f"the run's {unit.kind} map '{path}' is not there any more: a rerun needs the map the run "
                          "used. Put it back, or start a new run with the map where it is now.")
    unit = dataclasses.replace(unit, image=str(path))
    check_given_image(unit)  # a clear error if it is no longer an image
    expected, current = given.get("sha256"), given_digest(unit)
    if expected and current != expected:
        raise IntakeError(f"the {unit.kind} map '{path}' changed since the run: its sha256 is {current[:12]}..., the "
                          f"record says {expected[:12]}.... A rerun would not be exact: put the original map back, or "
                          "start a new run with the changed map.")
    return unit


def _refuse_still_from_static(record: dict[str, Any], folder: Path) -> None:
    """A clip animated from a static run's result started from that result, which the record does not hold."""
    made_from = {str(c.get("from")) for c in (record.get("controls") or {}).values() if isinstance(c, dict)}
    if made_from & {"static run", "the still"}:
        raise IntakeError(f"{folder} animated the result of a static run, which its record does not hold, so it "
                          "cannot be repeated from this record alone. Rerun that static run, then animate its result "
                          "with the same settings.")


def _check_input(recorded: dict[str, Any], given: str | os.PathLike | None, what: str) -> Path:
    """The run's input file (or the moved copy the caller points at), checked against the recorded sha256."""
    expected = recorded.get("sha256")
    if given is not None:
        path = Path(given).expanduser()
        if not path.exists():
            raise IntakeError(f"'{path}' does not exist. Pass the {what} the run used.")
    else:
        if not recorded.get("path"):
            raise IntakeError(f"the record has no {what} path (the run was given pixels, not a file): pass the file "
                              "with image=PATH (CLI: --image PATH).")
        path = Path(recorded["path"]).expanduser()
        if not path.exists():
            raise IntakeError(f"the run's {what} '{path}' is not there any more. If it moved, point at it with "
                              "image=PATH (CLI: --image PATH); its sha256 is checked against the record.")
    if expected and path.is_file() and sha256_file(path) != expected:
        raise IntakeError(f"'{path}' is not the {what} the run used: its sha256 is {sha256_file(path)[:12]}..., "
                          f"the record says {expected[:12]}.... Pass the original file with image=PATH "
                          "(CLI: --image PATH).")
    return path


def _recorded_hardware(record: dict[str, Any], notes: list[str]) -> dict[str, Any]:
    """The recorded device, offload and dtype when this machine has that device, else this machine's defaults."""
    from ..device import resolve_device

    recorded = record.get("hardware") or {}
    try:
        device = resolve_device(recorded.get("device") or "auto")
    except SettingsError:
        notes.append(f"the run used {recorded.get('device')}, which this machine lacks: running on the best device "
                     "here, so the pixels may differ slightly (numerical kernels differ between devices)")
        return {"device": "auto", "offload": "auto", "dtype": None}
    hardware = {"device": device, "offload": recorded.get("offload", "auto"), "dtype": recorded.get("dtype"),
                "fast_decode": bool(recorded.get("fast_decode", False))}
    if recorded.get("autocast"):  # the same bf16 autocast, for the same pixels, where this CPU has native bf16
        from ..device import cpu_bf16_support

        native = device == "cpu" and cpu_bf16_support() is not None
        hardware["autocast"] = "bf16" if native else "off"
        if not native:
            notes.append("the run used CPU bf16 autocast, which this machine cannot run natively: running in fp32, "
                         "so the pixels may differ slightly")
    return hardware


def check_weights(engine: Any, record: dict[str, Any]) -> list[str]:
    """Lines naming each weight file whose sha256 differs from the record (empty: same weights)."""
    from ..records import model_hashes

    recorded = record.get("model_hashes") or {}
    current = model_hashes(engine, list(recorded))
    return compare_model_hashes(recorded, current) + check_adapter_files(record)


def check_adapter_files(record: dict[str, Any]) -> list[str]:
    """Lines naming each LoRA, embedding or IP-Adapter file that is gone or whose sha256 differs from the record."""
    adapters = record.get("adapters") or {}
    entries = [*adapters.get("loras", ()), *adapters.get("embeddings", ()),
               *([adapters["ip_adapter"]] if adapters.get("ip_adapter") else [])]
    lines = []
    for entry in entries:
        path = Path(entry.get("path", ""))
        label = entry.get("name") or entry.get("token") or path.name
        if not path.is_file():
            lines.append(f"adapter {label}: {path} is gone")
        elif sha256_file(path) != entry.get("sha256"):
            lines.append(f"adapter {label}: {path} changed (sha256 {entry.get('sha256', '')[:12]}... recorded)")
    return lines


def rerun(record_dir: str | os.PathLike, out_dir: str | os.PathLike | None = None, *, engine: Any = None,
          image: str | os.PathLike | None = None, allow_changed_weights: bool = False, device: str | None = None,
          on_step: Any = None) -> RerunResult:
    """Repeat a run from its record. ``out_dir`` defaults to the folder that holds the recorded run, so the new run
    sits beside it. Raises ChangedWeightsError before running if any weight file changed, unless allowed."""
    from ..engine.engine import get_engine

    plan = plan_rerun(record_dir, image=image, device=device)
    if engine is None:
        engine = get_engine(plan.models, **plan.hardware)
    changes = check_weights(engine, plan.record)
    if changes and not allow_changed_weights:
        raise ChangedWeightsError(
            "the weights differ from the ones the run used, so the rerun would not be exact:\n  "
            + "\n  ".join(changes)
            + "\nPut the recorded weights back, or rerun anyway with allow_changed_weights=True "
              "(CLI: --allow-changed-weights).")
    notes = list(plan.notes)
    if changes:
        notes.append("rerun with changed weights: differences in the outputs are expected")
    out = Path(out_dir).expanduser() if out_dir is not None else plan.record_dir.parent
    run = _KINDS[plan.kind].run
    result = run(settings=plan.settings, engine=engine, out_dir=out, on_step=on_step, **plan.inputs)
    run_dir = getattr(result, "run_dir", None)
    comparison = compare_outputs(plan.record_dir, run_dir, plan.record) if run_dir is not None else {}
    return RerunResult(plan.record_dir, run_dir, result, comparison, changes, notes)


def compare_outputs(old_dir: str | os.PathLike, new_dir: str | os.PathLike,
                    record: dict[str, Any] | None = None) -> dict[str, str]:
    """identical / different / missing for each output of the old run. PNGs are compared by pixels (their text
    chunks may carry paths), other files by sha256."""
    old_dir, new_dir = Path(old_dir), Path(new_dir)
    record = record if record is not None else read_record(old_dir)
    states: dict[str, str] = {}
    for name in record.get("outputs") or {}:
        old, new = old_dir / safe_output_name(name), new_dir / safe_output_name(name)
        if not old.is_file() or not new.is_file():
            states[name] = "missing"
        elif name.lower().endswith(".png"):
            states[name] = "identical" if _same_pixels(old, new) else "different"
        else:
            states[name] = "identical" if sha256_file(old) == sha256_file(new) else "different"
    return states


def _same_pixels(first: Path, second: Path) -> bool:
    with Image.open(first) as a, Image.open(second) as b:
        return a.mode == b.mode and a.size == b.size and np.array_equal(np.asarray(a), np.asarray(b))
