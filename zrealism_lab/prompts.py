"""Prompt handling for CLIP's 77-token window: validation, assembly from fragments, length checks
and prompt weighting.

Weighting syntax in the style people paste from other SD front ends -- ``(freckles:1.2)``,
``(word)`` (x1.1), ``[word]`` (/1.1), ``word++`` / ``word--`` and compel's ``(words)1.2`` -- is
honoured through compel when it is installed. Without compel it is removed with a visible
warning, never passed to the text encoder as literal brackets.
"""
from __future__ import annotations

import importlib.util
import re
import unicodedata
import warnings
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Iterable

from .errors import SettingsError, ZRealismError

if TYPE_CHECKING:  # pragma: no cover
    from .profiles import Profile

CLIP_TOKEN_LIMIT = 77  # 75 text tokens + start and end markers
MAX_PROMPT_CHARS = 2000
_ALLOWED_CONTROL = {"\n", "\t"}


class ZRealismWarning(UserWarning):
    """Something the user asked for was changed or cannot be honoured exactly; the run goes on."""


def validate_prompt(value: object, name: str = "prompt") -> str:
    """Return ``value`` if it is a usable prompt, else raise SettingsError."""
    if not isinstance(value, str):
        raise SettingsError(name, value, "a text string")
    if len(value) > MAX_PROMPT_CHARS:
        raise SettingsError(name, value[:40] + "...", f"at most {MAX_PROMPT_CHARS} characters (got {len(value)})",
                            "CLIP reads about 75 tokens; shorten the prompt.")
    if any(unicodedata.category(ch) == "Cs" for ch in value):  # undecodable bytes from a terminal or a file
        raise SettingsError(name, value.encode("utf-8", "replace").decode()[:40], "UTF-8 text",
                            "Part of it is not valid UTF-8: save or type the prompt as UTF-8.")
    bad = sorted({ch for ch in value if unicodedata.category(ch) == "Cc" and ch not in _ALLOWED_CONTROL})
    if bad:
        codes = ", ".join(f"U+{ord(ch):04X}" for ch in bad)
        raise SettingsError(name, value[:40], f"text without control characters (found {codes})",
                            "Remove them; only newlines and tabs are allowed.")
    return value


# ---------------------------------------------------------------------------------------------
# Weighting syntax

_PLUS, _MINUS = 1.1, 0.9  # compel's factors per '+' / '-'
_ROUND, _SQUARE = 1.1, 1 / 1.1  # the usual meaning of (word) and [word]

_TOKEN = re.compile(r"""
    \\(?P<escaped>[()\[\]\\])                              # \( \) \[ \] \\ : literal characters
  | (?P<open>[(\[])
  | :\s*(?P<colon_weight>[+-]?(?:\d+\.?\d*|\.\d+))\s*\)     # (words:1.2)
  | \)(?:(?P<suffix_weight>(?:\d+\.?\d*|\.\d+))(?!\w)|(?P<suffix_signs>\++|-+))?   # ) or )1.2 or )++
  | \]
  | (?P<text>[^\\()\[\]:]+|[:\\])
""", re.VERBOSE)

# word++ / word-- : signs glued to the end of a word, followed by a separator or the end.
_WORD_SIGNS = re.compile(r"(?P<word>[^\s,;()\[\]]+?)(?P<signs>\++|-+)(?=[\s,;]|$)")


@dataclass
class WeightedPrompt:
    """A prompt parsed into (text, weight) fragments."""

    fragments: list[tuple[str, float]]
    has_weighting: bool

    @property
    def plain_text(self) -> str:
        return _tidy("".join(text for text, _ in self.fragments))

    def to_compel(self) -> str:
        """The same prompt in compel's syntax, where ``(words)1.2`` carries each weight."""
        parts = []
        for index, (text, weight) in enumerate(self.fragments):
            escaped = re.sub(r"([()])", r"\\\1", text)  # compel reads \( and \) as literal brackets
            core = escaped.strip()
            if abs(weight - 1.0) < 1e-6 or not core.strip(" ,;."):
                parts.append(escaped)
                continue
            lead = escaped[: len(escaped) - len(escaped.lstrip())]
            trail = escaped[len(escaped.rstrip()):]
            following = self.fragments[index + 1][0] if index + 1 < len(self.fragments) else ""
            if not trail and following[:1].isalnum():
                trail = " "  # '(red)1.1' + '990s' would read as weight 1.1990
            parts.append(f"{lead}({core}){weight:.4g}{trail}")
        return "".join(parts)


def _tidy(text: str) -> str:
    text = re.sub(r"[ \t]+", " ", text)
    text = re.sub(r" +([,;.])", r"\1", text)
    return text.strip()


def _split_word_signs(text: str) -> list[tuple[str, float]]:
    pieces: list[tuple[str, float]] = []
    last = 0
    for match in _WORD_SIGNS.finditer(text):
        if match.start() > last:
            pieces.append((text[last:match.start()], 1.0))
        signs = match.group("signs")
        factor = (_PLUS if signs[0] == "+" else _MINUS) ** len(signs)
        pieces.append((match.group("word"), factor))
        last = match.end()
    if last < len(text):
        pieces.append((text[last:], 1.0))
    return pieces


def parse_weighting(prompt: str) -> WeightedPrompt:
    """Parse the weighting syntax into fragments. Unclosed groups keep their default factor, as
    other SD front ends do; a stray closing bracket stays literal text."""
    fragments: list[list[Any]] = []
    stack: list[tuple[str, int]] = []  # (bracket, index of its first fragment)
    found = False

    def scale(start: int, factor: float) -> None:
        for fragment in fragments[start:]:
            fragment[1] *= factor

    for match in _TOKEN.finditer(prompt):
        token = match.group(0)
        if match.group("escaped"):
            fragments.append([match.group("escaped"), 1.0])
        elif match.group("open"):
            stack.append((token, len(fragments)))
        elif match.group("colon_weight") is not None:
            if stack and stack[-1][0] == "(":
                found = True
                scale(stack.pop()[1], float(match.group("colon_weight")))
            else:
                fragments.append([token, 1.0])
        elif token.startswith(")"):
            if stack and stack[-1][0] == "(":
                found = True
                start = stack.pop()[1]
                if match.group("suffix_weight"):
                    scale(start, float(match.group("suffix_weight")))
                elif match.group("suffix_signs"):
                    signs = match.group("suffix_signs")
                    scale(start, (_PLUS if signs[0] == "+" else _MINUS) ** len(signs))
                else:
                    scale(start, _ROUND)
            else:
                fragments.append([token, 1.0])
        elif token == "]":
            if stack and stack[-1][0] == "[":
                found = True
                scale(stack.pop()[1], _SQUARE)
            else:
                fragments.append([token, 1.0])
        else:
            for text, factor in _split_word_signs(token):
                found = found or factor != 1.0
                fragments.append([text, factor])
    for bracket, start in reversed(stack):
        found = True
        scale(start, _ROUND if bracket == "(" else _SQUARE)

    merged: list[tuple[str, float]] = []
    for text, weight in fragments:
        if merged and abs(merged[-1][1] - weight) < 1e-9:
            merged[-1] = (merged[-1][0] + text, weight)
        elif text:
            merged.append((text, weight))
    return WeightedPrompt(merged, found)


def has_weighting(prompt: str) -> bool:
    return parse_weighting(prompt).has_weighting


def compel_available() -> bool:
    return importlib.util.find_spec("compel") is not None


def strip_weighting(prompt: str, name: str = "prompt") -> tuple[str, list[str]]:
    """Remove weighting syntax, returning the plain text and the warnings emitted (one
    ZRealismWarning, also issued through ``warnings``, when anything was removed)."""
    parsed = parse_weighting(prompt)
    if not parsed.has_weighting:
        return prompt, []
    message = (f"{name}: prompt weighting like '(word:1.2)' needs the 'compel' package, which is not installed; "
               f"the weights were removed and the plain text is used: {parsed.plain_text!r}. "
               "Install compel to honour them.")
    warnings.warn(message, ZRealismWarning, stacklevel=2)
    return parsed.plain_text, [message]


# ---------------------------------------------------------------------------------------------
# Embeddings

def encode_prompts(pipe: Any, prompt: str, negative_prompt: str = "") -> dict[str, Any]:
    """Encode both prompts with compel (weights honoured, prompts longer than 77 tokens chunked
    rather than truncated) and pad them to equal length, ready for ``pipe(prompt_embeds=...,
    negative_prompt_embeds=...)``. Needs compel; see :func:`prepare_prompts` for the fallback."""
    if not compel_available():
        raise ZRealismError("Prompt weighting needs the 'compel' package, which is not installed. "
                            "Install it, or use prepare_prompts(), which falls back to plain text.")
    import torch
    from compel import Compel, DiffusersTextualInversionManager

    text_encoder = pipe.text_encoder
    # The manager expands a multi-vector embedding's token (token -> token token_1 ...) as diffusers' own prompt
    # encoding does, so weighted prompts see loaded embeddings too.
    manager = DiffusersTextualInversionManager(pipe) if hasattr(pipe, "maybe_convert_prompt") else None
    compel = Compel(tokenizer=pipe.tokenizer, text_encoder=text_encoder, truncate_long_prompts=False,
                    textual_inversion_manager=manager, dtype_for_device_getter=lambda device: text_encoder.dtype)
    with torch.no_grad():
        positive = compel.build_conditioning_tensor(parse_weighting(prompt).to_compel())
        negative = compel.build_conditioning_tensor(parse_weighting(negative_prompt).to_compel())
        positive, negative = compel.pad_conditioning_tensors_to_same_length([positive, negative])
    return {"prompt_embeds": positive, "negative_prompt_embeds": negative}


@dataclass
class PreparedPrompts:
    """What to hand the pipeline: either plain text or embeddings, plus what happened on the way."""

    prompt: str
    negative_prompt: str
    prompt_embeds: Any = None
    negative_prompt_embeds: Any = None
    warnings: list[str] = field(default_factory=list)

    @property
    def uses_embeddings(self) -> bool:
        return self.prompt_embeds is not None

    def pipeline_kwargs(self) -> dict[str, Any]:
        if self.uses_embeddings:
            return {"prompt_embeds": self.prompt_embeds, "negative_prompt_embeds": self.negative_prompt_embeds}
        return {"prompt": self.prompt, "negative_prompt": self.negative_prompt}


def prepare_prompts(pipe: Any, prompt: str, negative_prompt: str = "", chunk_long_prompts: bool = True
                    ) -> PreparedPrompts:
    """Decide how the prompts reach the pipeline.

    Weighted prompts (and, with ``chunk_long_prompts``, prompts longer than CLIP's window) are
    encoded with compel when it is installed. Otherwise weighting is removed with a warning and
    over-long prompts are reported with what CLIP will cut.
    """
    parsed = [parse_weighting(prompt), parse_weighting(negative_prompt)]
    weighted = any(p.has_weighting for p in parsed)
    tokenizer = getattr(pipe, "tokenizer", None)
    too_long = tokenizer is not None and any(check_prompt_length(tokenizer, p.plain_text).truncated for p in parsed)
    can_encode = compel_available() and tokenizer is not None and getattr(pipe, "text_encoder", None) is not None

    if can_encode and (weighted or (too_long and chunk_long_prompts)):
        embeds = encode_prompts(pipe, prompt, negative_prompt)
        return PreparedPrompts(parsed[0].plain_text, parsed[1].plain_text, embeds["prompt_embeds"], embeds["negative_prompt_embeds"])

    messages: list[str] = []
    plain_prompt, found = strip_weighting(prompt, "prompt")
    messages += found
    plain_negative, found = strip_weighting(negative_prompt, "negative_prompt")
    messages += found
    if tokenizer is not None:
        for name, text in (("prompt", plain_prompt), ("negative_prompt", plain_negative)):
            check = check_prompt_length(tokenizer, text, name=name)
            for message in check.warnings:
                warnings.warn(message, ZRealismWarning, stacklevel=2)
            messages += check.warnings
    return PreparedPrompts(plain_prompt, plain_negative, warnings=messages)


# ---------------------------------------------------------------------------------------------
# Length

@dataclass
class PromptCheck:
    """How a prompt fits CLIP's window: ``tokens`` counts the start/end markers too."""

    tokens: int
    limit: int = CLIP_TOKEN_LIMIT
    truncated: bool = False
    dropped_text: str = ""
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"tokens": self.tokens, "limit": self.limit, "truncated": self.truncated,
                "dropped_text": self.dropped_text, "warnings": list(self.warnings)}


def check_prompt_length(tokenizer: Any, prompt: str, name: str = "prompt") -> PromptCheck:
    """Count ``prompt``'s tokens and report what CLIP would cut (it keeps the first 75 text
    tokens between its start and end markers)."""
    limit = getattr(tokenizer, "model_max_length", CLIP_TOKEN_LIMIT)
    if not isinstance(limit, int) or limit > 4096:  # tokenizers without a config report a huge sentinel
        limit = CLIP_TOKEN_LIMIT
    # verbose=False: the over-length case is reported below, not by the tokenizer's own log line.
    ids = list(tokenizer(prompt, truncation=False, add_special_tokens=True, verbose=False)["input_ids"])
    if len(ids) <= limit:
        return PromptCheck(len(ids), limit)
    # The kept part is ids[:limit - 1] plus the end marker; the rest of the text is dropped.
    dropped = tokenizer.decode(ids[limit - 1:-1], skip_special_tokens=True).strip()
    message = (f"{name} is {len(ids)} tokens, over CLIP's {limit}-token window: "
               f"this text will be ignored: {dropped!r}. Shorten the prompt or put what matters first.")
    return PromptCheck(len(ids), limit, True, dropped, [message])


# ---------------------------------------------------------------------------------------------
# Assembly

def _split_fragments(text: str) -> list[str]:
    """Split on commas outside brackets, so '(red hair, freckles:1.2)' stays one fragment."""
    fragments, depth, current = [], 0, []
    for ch in text:
        if ch in "([":
            depth += 1
        elif ch in ")]":
            depth = max(0, depth - 1)
        if ch == "," and depth == 0:
            fragments.append("".join(current))
            current = []
        else:
            current.append(ch)
    fragments.append("".join(current))
    return [" ".join(fragment.split()) for fragment in fragments if fragment.strip()]


def join_fragments(parts: Iterable[str]) -> str:
    """Join prompt parts with ', ', keeping the first occurrence of each fragment (compared
    case- and whitespace-insensitively)."""
    seen: set[str] = set()
    kept: list[str] = []
    for part in parts:
        for fragment in _split_fragments(part or ""):
            key = fragment.lower()
            if key not in seen:
                seen.add(key)
                kept.append(fragment)
    return ", ".join(kept)


def build_prompt(character_prompt: str, hints: list[str] | tuple[str, ...] = (), profile: "Profile | None" = None
                 ) -> str:
    """The prompt for a run: the character description first (CLIP weighs early tokens most and
    cuts the end), then the profile's prompt, then the preparation hints, without duplicates."""
    parts = [character_prompt]
    if profile is not None:
        parts.append(profile.prompt)
    parts.extend(hints or ())
    return join_fragments(parts)


def build_negative_prompt(negative_prompt: str, profile: "Profile | None" = None) -> str:
    """The user's negative prompt followed by the profile's, without duplicates."""
    return join_fragments([negative_prompt, profile.negative_prompt if profile is not None else ""])
