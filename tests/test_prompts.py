from __future__ import annotations

import json
import types
import warnings

import pytest

from zrealism_lab import prompts
from zrealism_lab.errors import SettingsError
from zrealism_lab.profiles import Profile
from zrealism_lab.prompts import (PromptCheck, ZRealismWarning, build_negative_prompt, build_prompt,
                                  check_prompt_length, parse_weighting, prepare_prompts, strip_weighting,
                                  validate_prompt)


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory):
    """A byte-level CLIP tokenizer with no merges: every character is one token, so counts are easy."""
    from tokenizers.pre_tokenizers import ByteLevel
    from transformers import CLIPTokenizer

    folder = tmp_path_factory.mktemp("clip-tokenizer")
    chars = sorted(ByteLevel.alphabet())
    vocab = {c: i for i, c in enumerate(chars)}
    vocab.update({c + "</w>": len(chars) + i for i, c in enumerate(chars)})
    vocab["<|startoftext|>"] = len(vocab)
    vocab["<|endoftext|>"] = len(vocab)
    (folder / "vocab.json").write_text(json.dumps(vocab), encoding="utf-8")
    (folder / "merges.txt").write_text("#version: 0.2\n", encoding="utf-8")
    return CLIPTokenizer.from_pretrained(str(folder), model_max_length=77)


@pytest.fixture(scope="module")
def tiny_pipe(tokenizer):
    """The two parts of a pipeline that prompts need: tokenizer and a tiny random text encoder."""
    import torch
    from transformers import CLIPTextConfig, CLIPTextModel

    torch.manual_seed(0)
    config = CLIPTextConfig(hidden_size=32, intermediate_size=37, num_hidden_layers=2, num_attention_heads=4,
                            vocab_size=len(tokenizer), max_position_embeddings=77,
                            bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                            pad_token_id=tokenizer.pad_token_id)
    return types.SimpleNamespace(tokenizer=tokenizer, text_encoder=CLIPTextModel(config).eval())


# --- validation -------------------------------------------------------------------------------

def test_validate_prompt_accepts_text_with_newlines_and_tabs():
    assert validate_prompt("a photo,\n\tcinematic") == "a photo,\n\tcinematic"


@pytest.mark.parametrize("value, fragment", [
    (None, "text string"),
    (42, "text string"),
    ("x" * 2001, "2000"),
    ("bad\x00byte", "U+0000"),
    ("bell\x07", "U+0007"),
])
def test_validate_prompt_refuses(value, fragment):
    with pytest.raises(SettingsError) as error:
        validate_prompt(value, "negative_prompt")
    assert "negative_prompt" in str(error.value) and fragment in str(error.value)


# --- weighting --------------------------------------------------------------------------------

@pytest.mark.parametrize("prompt, plain, weights", [
    ("a (freckles:1.2) girl", "a freckles girl", {"freckles": 1.2}),
    ("a (freckles) girl", "a freckles girl", {"freckles": 1.1}),
    ("a [freckles] girl", "a freckles girl", {"freckles": 1 / 1.1}),
    ("a freckles++ girl", "a freckles girl", {"freckles": 1.21}),
    ("(red hair, freckles:1.3), smile", "red hair, freckles, smile", {"red hair, freckles": 1.3}),
    ("((x)), y", "x, y", {"x": 1.21}),
    ("(blue sky)0.8, sun", "blue sky, sun", {"blue sky": 0.8}),
])
def test_weighting_is_parsed(prompt, plain, weights):
    parsed = parse_weighting(prompt)
    assert parsed.has_weighting
    assert parsed.plain_text == plain
    found = {text.strip(): weight for text, weight in parsed.fragments if abs(weight - 1) > 1e-9}
    assert found.keys() == weights.keys()
    for text, weight in weights.items():
        assert found[text] == pytest.approx(weight)


@pytest.mark.parametrize("prompt", ["sci-fi pilot, t-shirt, 10:30 light", r"a \(literal\) bracket", "a photo"])
def test_plain_prompts_have_no_weighting(prompt):
    parsed = parse_weighting(prompt)
    assert not parsed.has_weighting
    assert all(weight == 1.0 for _, weight in parsed.fragments)


def test_compel_syntax_conversion():
    assert parse_weighting("a (freckles:1.2) girl").to_compel() == "a (freckles)1.2 girl"
    assert parse_weighting("[dust]").to_compel() == "(dust)0.9091"
    assert parse_weighting(r"a \(literal\) b").to_compel() == r"a \(literal\) b"


def test_stripping_warns_visibly_and_returns_the_message():
    with pytest.warns(ZRealismWarning, match="compel") as record:
        text, messages = strip_weighting("portrait, (freckles:1.2)", "prompt")
    assert text == "portrait, freckles"
    assert len(messages) == 1 and messages[0] == str(record[0].message)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert strip_weighting("portrait, freckles") == ("portrait, freckles", [])


def test_prepare_prompts_without_compel_strips_with_a_warning(monkeypatch, tokenizer):
    monkeypatch.setattr(prompts, "compel_available", lambda: False)
    pipe = types.SimpleNamespace(tokenizer=tokenizer, text_encoder=object())
    with pytest.warns(ZRealismWarning):
        prepared = prepare_prompts(pipe, "a (freckles:1.4) face", "[blurry]")
    assert not prepared.uses_embeddings
    assert prepared.pipeline_kwargs() == {"prompt": "a freckles face", "negative_prompt": "blurry"}
    assert len(prepared.warnings) == 2  # one per weighted prompt


def test_prepare_prompts_plain_text_passes_through_quietly(tokenizer):
    pipe = types.SimpleNamespace(tokenizer=tokenizer, text_encoder=None)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        prepared = prepare_prompts(pipe, "a photo", "blurry")
    assert prepared.pipeline_kwargs() == {"prompt": "a photo", "negative_prompt": "blurry"}
    assert prepared.warnings == []


@pytest.mark.skipif(not prompts.compel_available(), reason="compel is not installed")
def test_encode_prompts_with_compel_weights_and_chunks(tiny_pipe):
    import torch

    weighted = prompts.encode_prompts(tiny_pipe, "a (freckles:1.5) girl", "blurry")
    plain = prompts.encode_prompts(tiny_pipe, "a freckles girl", "blurry")
    assert weighted["prompt_embeds"].shape == weighted["negative_prompt_embeds"].shape == (1, 77, 32)
    assert not torch.allclose(weighted["prompt_embeds"], plain["prompt_embeds"])
    # Unweighted text gives exactly what the text encoder gives on its own.
    ids = tiny_pipe.tokenizer("a freckles girl", padding="max_length", max_length=77, truncation=True,
                              return_tensors="pt").input_ids
    with torch.no_grad():
        reference = tiny_pipe.text_encoder(ids)[0]
    torch.testing.assert_close(plain["prompt_embeds"], reference)
    # A long prompt is chunked, not cut, and the short negative is padded to the same length.
    long = prompts.encode_prompts(tiny_pipe, "x " * 100, "blurry")
    assert long["prompt_embeds"].shape == long["negative_prompt_embeds"].shape == (1, 154, 32)
    prepared = prepare_prompts(tiny_pipe, "a (freckles:1.5) girl", "blurry")
    assert prepared.uses_embeddings and prepared.prompt == "a freckles girl"
    torch.testing.assert_close(prepared.prompt_embeds, weighted["prompt_embeds"])


# --- length -----------------------------------------------------------------------------------

def test_short_prompt_fits(tokenizer):
    check = check_prompt_length(tokenizer, "a red cat")
    assert check == PromptCheck(tokens=9, limit=77, truncated=False, dropped_text="", warnings=[])


def test_long_prompt_reports_what_clip_cuts(tokenizer):
    prompt = "a" * 75 + " tail end"  # 75 text tokens fill the window exactly
    check = check_prompt_length(tokenizer, prompt)
    assert check.tokens == 2 + 75 + len("tailend")  # spaces are not tokens
    assert check.truncated and check.limit == 77
    assert check.dropped_text == "tail end"
    assert len(check.warnings) == 1 and "tail" in check.warnings[0] and "77" in check.warnings[0]
    assert check.to_dict()["truncated"] is True
    assert not check_prompt_length(tokenizer, "a" * 75).truncated


def test_prepare_prompts_warns_about_truncation_without_compel(monkeypatch, tokenizer):
    monkeypatch.setattr(prompts, "compel_available", lambda: False)
    pipe = types.SimpleNamespace(tokenizer=tokenizer, text_encoder=object())
    with pytest.warns(ZRealismWarning, match="ignored"):
        prepared = prepare_prompts(pipe, "b" * 80, "")
    assert any("77" in message for message in prepared.warnings)


# --- assembly ---------------------------------------------------------------------------------

def test_build_prompt_joins_without_duplicates():
    profile = Profile(name="knight", prompt="raw photo, plate armour, Cinematic lighting",
                      negative_prompt="cartoon, toy")
    built = build_prompt("red-haired knight, (freckles:1.2, scar), plate armour",
                         ["cinematic  lighting", "plain background", ""], profile)
    assert built == "red-haired knight, (freckles:1.2, scar), plate armour, raw photo, Cinematic lighting, plain background"
    assert build_prompt("a photo", [], None) == "a photo"
    assert build_negative_prompt("blurry, toy", profile) == "blurry, toy, cartoon"
