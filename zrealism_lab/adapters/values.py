"""The adapter settings' values: parsed from what people type and checked for shape, before any file is opened."""
from __future__ import annotations

import math
from typing import Any, Mapping

from ..errors import SettingsError

LORA_WEIGHT_RANGE = (-4.0, 4.0)  # A1111 sets no bound; past +-4 every LoRA burns the picture
_LORA_ALLOWED = ("NAME or NAME:WEIGHT items (a list, a mapping NAME -> WEIGHT, or text like 'add-detail:0.8,"
                 "film-grain'), weights from -4 to 4")


def normalize_loras(value: Any) -> Any:
    """(name, weight) pairs from the forms people use; a value it cannot read is returned as it is, for
    ``check_loras`` to refuse with a clear message."""
    if value is None:
        return ()
    if isinstance(value, str):
        items: list[Any] = [part for part in value.split(",") if part.strip()]
    elif isinstance(value, Mapping):
        items = list(value.items())
    elif isinstance(value, (list, tuple)):
        items = list(value)
    else:
        return value
    pairs: list[Any] = []
    for item in items:
        if isinstance(item, str):
            name, _, weight = item.strip().rpartition(":") if ":" in item else (item.strip(), "", "1")
            try:
                pairs.append((name.strip(), float(weight)))
            except ValueError:
                return value
        elif isinstance(item, (list, tuple)) and len(item) == 2:
            pairs.append((item[0], item[1]))
        elif isinstance(item, Mapping) and set(item) <= {"name", "weight"} and "name" in item:
            pairs.append((item["name"], item.get("weight", 1.0)))
        else:
            return value
    return tuple(pairs)


def check_loras(value: Any, setting: str = "loras") -> tuple[tuple[str, float], ...]:
    if not isinstance(value, tuple):
        raise SettingsError(setting, value, _LORA_ALLOWED)
    names: list[str] = []
    for item in value:
        name, weight = item
        if not isinstance(name, str) or not name.strip() or any(ch in name for ch in "<>"):
            raise SettingsError(setting, item, _LORA_ALLOWED)
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not math.isfinite(weight) \
                or not LORA_WEIGHT_RANGE[0] <= weight <= LORA_WEIGHT_RANGE[1]:
            raise SettingsError(f"{setting}[{name}]", weight, "a weight from -4 to 4")
        if name in names:
            raise SettingsError(setting, name, "each LoRA once", "Give each LoRA one weight.")
        names.append(name)
    return value


def normalize_names(value: Any) -> Any:
    """Embedding names or paths: a list, or text separated by commas."""
    if value is None:
        return ()
    if isinstance(value, str):
        return tuple(part.strip() for part in value.split(",") if part.strip())
    if isinstance(value, list):
        return tuple(value)
    return value


def check_names(value: Any, setting: str) -> tuple[str, ...]:
    if not isinstance(value, tuple) or not all(isinstance(v, str) and v.strip() for v in value):
        raise SettingsError(setting, value, "a list of names or paths of embedding files")
    if len(set(value)) != len(value):
        raise SettingsError(setting, value, "each embedding once")
    return value
