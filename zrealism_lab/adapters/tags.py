"""A1111's extra-network tags in prompts: ``<lora:name:0.8>`` selects a LoRA and its weight, and is removed from the
text the text encoder sees (as A1111 does)."""
from __future__ import annotations

import math
import re

from ..errors import SettingsError

DEFAULT_TAG_WEIGHT = 1.0  # A1111's weight for <lora:name> without one
# <lora:NAME>, <lora:NAME:W>; A1111 also accepts <lyco:...> (LyCORIS) for the same thing. Names may hold spaces,
# dots and dashes, not ':' '<' '>'.
_TAG = re.compile(r"<\s*(?P<kind>lora|lyco)\s*:(?P<body>[^<>]*)>", re.IGNORECASE)
_ALLOWED = "<lora:NAME> or <lora:NAME:WEIGHT> with a number as weight, e.g. <lora:add-detail:0.8>"


def split_lora_tags(prompt: str, setting: str = "prompt") -> tuple[str, list[tuple[str, float]]]:
    """The prompt without its ``<lora:...>`` tags, and the (name, weight) pairs they named, in order.

    A name given twice is refused (A1111 would silently add the weights; that hides a typo more often than it helps).
    """
    found: list[tuple[str, float]] = []
    for match in _TAG.finditer(prompt):
        parts = [p.strip() for p in match.group("body").split(":")]
        name = parts[0]
        if not name or len(parts) > 2:
            raise SettingsError(setting, match.group(0), _ALLOWED)
        weight = DEFAULT_TAG_WEIGHT
        if len(parts) == 2:
            try:
                weight = float(parts[1])
            except ValueError:
                raise SettingsError(setting, match.group(0), _ALLOWED) from None
            if not math.isfinite(weight):
                raise SettingsError(setting, match.group(0), _ALLOWED)
        if any(name == known for known, _ in found):
            raise SettingsError(setting, match.group(0), "each LoRA named once",
                                f"'{name}' appears in more than one <lora:...> tag; give it one weight.")
        found.append((name, weight))
    if not found:
        return prompt, []
    text = _TAG.sub(" ", prompt)
    text = re.sub(r"\s*,(\s*,)+", ",", text)  # "a, <lora:x>, b" -> "a, , b" -> "a, b"
    text = re.sub(r"[ \t]{2,}", " ", text).strip().strip(",").strip()
    return text, found


def lora_tags(loras: list[tuple[str, float]] | tuple[tuple[str, float], ...]) -> str:
    """The tags A1111 writes into the prompt of its infotext for the LoRAs a run used."""
    return " ".join(f"<lora:{name}:{weight:g}>" for name, weight in loras)
