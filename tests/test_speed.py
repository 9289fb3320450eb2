"""Speed modes on the tiny bundle: each lever changes the pixels, the same seed gives the same pixels in a mode, and
the record says what the mode changed."""
from __future__ import annotations

import numpy as np
import pytest

from zrealism_lab.errors import SettingsError
from zrealism_lab.generate.static import run_static
from zrealism_lab.settings import StaticSettings
from zrealism_lab.speed import FEW_STEP_DENOISE, apply_speed


def pixels(result) -> np.ndarray:
    return np.asarray(result.image, dtype=np.int16)


@pytest.fixture(scope="module")
def base():
    return StaticSettings(size=64, steps=8, strength=0.7, detect_resolution=64)


def test_quality_changes_nothing_and_few_step_sets_its_levers(tiny_engine, base):
    same, plan = apply_speed(base, tiny_engine.models)
    assert same == base and plan.changes == {} and plan.autocast is None
    fast, plan = apply_speed(base.replace(speed="few-step", loras="tiny-detail:0.5"), tiny_engine.models)
    assert fast.scheduler == "lcm" and fast.cfg == 1.0
    assert int(fast.steps * fast.strength) == FEW_STEP_DENOISE
    assert fast.loras == (("tiny-detail", 0.5), (tiny_engine.models.fast_lora, 1.0))
    again, _ = apply_speed(fast, tiny_engine.models)  # a rerun of the recorded settings changes nothing more
    assert again == fast


def test_few_step_needs_a_model_set_with_a_few_step_lora(tiny_engine, base):
    import dataclasses

    models = dataclasses.replace(tiny_engine.models, fast_lora=None)
    with pytest.raises(SettingsError, match="few-step LoRA"):
        apply_speed(base.replace(speed="fast"), models)


@pytest.mark.parametrize("mode", ["few-step", "bf16", "fast"])
def test_each_lever_changes_the_pixels_and_a_seed_repeats_them(tiny_engine, sample_64, base, mode):
    from zrealism_lab.device import cpu_bf16_support

    if mode == "bf16" and cpu_bf16_support() is None:
        pytest.skip("this CPU computes no bf16 natively: the bf16 lever leaves fp32 on")
    quality = run_static(sample_64, base, engine=tiny_engine, evaluate=False)
    first = run_static(sample_64, base.replace(speed=mode), engine=tiny_engine, evaluate=False)
    second = run_static(sample_64, base.replace(speed=mode), engine=tiny_engine, evaluate=False)
    assert not np.array_equal(pixels(first), pixels(quality))
    assert np.array_equal(pixels(first), pixels(second))
    assert first.speed["mode"] == mode
    assert first.speed["few_step"] == (mode != "bf16") and (first.speed["autocast"] == "bfloat16") == (mode != "few-step")
    after = run_static(sample_64, base, engine=tiny_engine, evaluate=False)
    assert np.array_equal(pixels(after), pixels(quality))  # nothing of the mode stays behind


def test_the_speed_note_names_missing_weights_and_where_to_get_them(tiny_engine):
    import dataclasses

    from zrealism_lab.models.modelset import resolve_modelset
    from zrealism_lab.speed_status import few_step_lora_location, speed_note

    where, present = few_step_lora_location(tiny_engine.models)
    assert present and where.endswith("tiny-lcm")
    realistic = resolve_modelset("realistic-vision")
    where, present = few_step_lora_location(realistic)
    assert (where, present) == ("latent-consistency/lcm-lora-sdv1-5", False)  # nothing fetched on this machine
    note = speed_note("fast", realistic)
    assert "needs latent-consistency/lcm-lora-sdv1-5" in note and "zrealism models download realistic-vision" in note
    assert "no effect" in speed_note("few-step", tiny_engine.models) and "needs" not in speed_note(
        "few-step", tiny_engine.models)
    none = dataclasses.replace(tiny_engine.models, fast_lora=None)
    assert "names no few-step LoRA" in speed_note("fast", none)
    assert speed_note("bf16", none, device="cuda").startswith("bf16: bf16 autocast is a CPU lever")
