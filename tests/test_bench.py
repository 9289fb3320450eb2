"""The bench's row logic and table on the tiny bundle (one repeat, 64 px), and the full-size builders."""
from __future__ import annotations

import json

import numpy as np
import pytest

from zrealism_lab.bench import NO_GPU, BenchReport, Row, row, target_met
from zrealism_lab.bench.gpu import gpu_rows
from zrealism_lab.bench.hot_paths import hot_path_rows
from zrealism_lab.bench.measure import interleaved, peak_rss_bytes, reset_peak_rss
from zrealism_lab.bench.overhead import max_pixel_difference, static_overhead_rows, temporal_overhead_rows


@pytest.fixture()
def one_thread():
    """Row logic, not speed, is under test: one torch thread keeps the tiny runs fast on a busy shared machine."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


# ------------------------------------------------------------------------------------------------ rows and table


@pytest.mark.parametrize(("value", "target", "expected"), [
    (1.04, "<= 1.05", True), (1.06, "<= 1.05", False), (0.99, "< 1", True), (1.0, "< 1", False),
    (0, "== 0", True), (2, "== 0", False), (3.0, ">= 2", True), (None, "<= 1", None), (1.0, "", None),
    ("text", "<= 1", None),
])
def test_target_met(value, target, expected):
    assert target_met(value, target) is expected


def test_markdown_and_json_hold_every_row_and_the_machine():
    report = BenchReport({"cpu": "Test CPU", "cores": 2, "torch": "x", "torch_threads": 2, "load_start": 1.5,
                          "load_end": 2.0})
    report.add(row("overhead", "ratio | with a pipe", 1.0234, "x", "<= 1.05", "lab 1 s"))
    report.add([row("memory", "rss", 7.456, "GiB"), Row("GPU", "clip", None, status=NO_GPU)])
    table = report.to_markdown()
    lines = table.splitlines()
    assert "Test CPU" in lines[0] and "2 cores" in lines[0] and "no GPU" in lines[0]
    assert "1.5" in lines[1]
    header = [cell.strip() for cell in lines[3].strip("|").split("|")]
    assert header == ["section", "what", "value", "unit", "target", "met?", "note"]
    body = lines[5:]
    assert len(body) == 3
    assert all(line.count("|") == 8 for line in body)  # a "|" inside a cell must not add a column
    assert "| 1.02 | x | <= 1.05 | yes |" in body[0]
    assert NO_GPU in body[2]
    data = json.loads(json.dumps(report.to_dict()))
    assert data["machine"]["cpu"] == "Test CPU"
    assert [r["what"] for r in data["rows"]] == ["ratio | with a pipe", "rss", "clip"]
    assert data["rows"][0]["met"] is True and data["rows"][2]["status"] == NO_GPU


def test_interleaved_alternates_and_drops_warmup():
    calls: list[str] = []
    samples = interleaved({"a": lambda: calls.append("a"), "b": lambda: calls.append("b")}, 3, warmup=1)
    assert calls == ["a", "b"] * 4
    assert all(len(s.values) == 3 for s in samples.values())
    assert samples["a"].best <= samples["a"].median


def test_max_pixel_difference():
    from PIL import Image

    a = Image.new("RGB", (4, 4), (10, 20, 30))
    b = Image.new("RGB", (4, 4), (10, 21, 30))
    assert max_pixel_difference([a], [a.copy()]) == 0
    assert max_pixel_difference([a, a], [a, b]) == 1
    assert max_pixel_difference([a], [a, a]) == 255


def test_peak_rss_sees_a_new_allocation():
    if not reset_peak_rss():
        pytest.skip("this kernel does not let a process reset its peak RSS")
    before = peak_rss_bytes()
    block = np.ones(64 * 2**20, dtype=np.uint8)  # 64 MiB, every page written
    assert peak_rss_bytes() >= before + 60 * 2**20
    del block


def test_gpu_rows_say_not_measured_without_cuda():
    import torch

    if torch.cuda.is_available():
        pytest.skip("a CUDA GPU is present")
    rows = gpu_rows(None, lambda text: None)
    assert rows and all(r.status == NO_GPU and r.value is None for r in rows)
    assert all(r.value_text() == NO_GPU for r in rows)



def test_child_main_writes_its_task_result_as_json(tmp_path, monkeypatch):
    """The parent reads a child's result from a JSON file: numpy scalars and paths must come through."""
    from zrealism_lab.bench import child

    monkeypatch.setitem(child.CHILD_TASKS, "write", lambda bundle, params: {
        "bundle": bundle, "n": np.int64(params["n"]), "gib": np.float32(0.5)})
    result = tmp_path / "result.json"
    argv = ["--child", "write", "--bundle", str(tmp_path), "--params", '{"n": 3}', "--result", str(result)]
    assert child.child_main(argv) == 0
    assert json.loads(result.read_text(encoding="utf-8")) == {"bundle": str(tmp_path), "n": 3, "gib": 0.5}

# ------------------------------------------------------------------------------------------------ tiny bundle rows


def test_static_overhead_rows_on_the_tiny_bundle(tiny_engine, one_thread):
    rows = static_overhead_rows(tiny_engine, 64, 1)
    ratio, bare, lab, full = rows
    assert "lab generation path / bare diffusers" in ratio.what and ratio.unit == "x"
    assert ratio.target == "<= 1.05" and ratio.met is (ratio.value <= 1.05)
    assert 0.2 < ratio.value < 5.0
    assert "same pixels" in ratio.note  # same components, inputs, scheduler and seed: the very same picture
    assert bare.unit == "s" and bare.value > 0
    assert lab.value > 0 and "generate" in lab.note and "controls" in lab.note
    assert "metrics" in full.note


def test_temporal_overhead_rows_on_the_tiny_bundle(tiny_engine, one_thread):
    rows = temporal_overhead_rows(tiny_engine, 64, 1)
    ratio = rows[0]
    assert "temporal 64 px, 8 frames" in ratio.what and 0.2 < ratio.value < 5.0
    # the lab decodes in chunks itself; at most a rounding step away from the pipeline's own decode
    assert "same pixels" in ratio.note or "differ by at most 1/255" in ratio.note
    assert "decode" in rows[2].note


def test_hot_path_rows_measure_previews_and_imports():
    rows = {r.what: r for r in hot_path_rows()}
    preview = rows["latent_preview, 64x64 latent (512 px image)"]
    assert preview.unit == "ms" and preview.value > 0 and preview.met is not None
    imports = rows["import zrealism_lab: heavy modules imported"]
    assert imports.status == "measured" and isinstance(imports.value, int)


def test_bench_subcommand_is_registered():
    from zrealism_lab.cli import bench as bench_command
    from zrealism_lab.cli.main import build_parser

    args = build_parser().parse_args(["bench", "--quick", "--json", "out.json", "--threads", "1"])
    assert args.func is bench_command.cmd_bench and args.quick and args.json == "out.json" and args.threads == 1


# ------------------------------------------------------------------------------------------------ full-size builders


@pytest.mark.parametrize("role", ["unet", "vae", "text_encoder", "controlnet", "motion_adapter"])
def test_fullsize_parameter_counts_on_the_meta_device(role):
    from zrealism_lab.models.fullsize import (
        EXPECTED_PARAMETERS,
        build_component,
        parameter_count,
    )

    module = build_component(role, empty=True)
    assert all(p.device.type == "meta" for p in module.parameters())
    count = parameter_count(module)
    assert abs(count - EXPECTED_PARAMETERS[role]) <= 0.005 * EXPECTED_PARAMETERS[role]


def test_fullsize_unet_is_sd15():
    from zrealism_lab.models.fullsize import build_unet, parameter_count

    unet = build_unet(empty=True)
    assert 855e6 < parameter_count(unet) < 865e6
    assert tuple(unet.config.block_out_channels) == (320, 640, 1280, 1280)
    assert unet.config.cross_attention_dim == 768 and unet.config.sample_size == 64


def test_fullsize_text_encoder_is_real_and_runs(tiny_bundle):
    """Random parameters, but construction-time buffers (CLIP's position ids) kept, so it runs on real token ids."""
    import torch
    from transformers import CLIPTokenizer

    from zrealism_lab.models.fullsize import SD15_TEXT_ENCODER_CONFIG, build_text_encoder

    encoder = build_text_encoder(seed=1)
    assert not any(p.device.type == "meta" for p in encoder.parameters())
    position_ids = next(b for name, b in encoder.named_buffers() if name.endswith("position_ids"))
    assert torch.equal(position_ids.flatten(), torch.arange(77))
    tokenizer = CLIPTokenizer.from_pretrained(tiny_bundle / "tokenizer")
    ids = tokenizer(["a photo of a person"], padding="max_length", max_length=77, return_tensors="pt").input_ids
    assert int(ids.max()) < SD15_TEXT_ENCODER_CONFIG["vocab_size"]
    with torch.no_grad():
        hidden = encoder(ids).last_hidden_state
    assert hidden.shape == (1, 77, 768) and torch.isfinite(hidden).all()


def test_fullsize_modelset_points_at_local_folders(tmp_path):
    from zrealism_lab.models.fullsize import fullsize_modelset

    for folder in ("controlnet/depth", "controlnet/canny", "motion_adapter"):
        (tmp_path / folder).mkdir(parents=True)
        (tmp_path / folder / "config.json").write_text("{}")
    models = fullsize_modelset(tmp_path)
    assert models.base.kind == "folder" and models.base.location == str(tmp_path)
    assert sorted(models.controlnets) == ["canny", "depth"]
    assert models.motion_adapter.location == str(tmp_path / "motion_adapter")
    assert models.random_weights
    # weightless detectors only, so a full-size run needs no annotator checkpoints
    assert [(u.kind, u.method) for u in models.default_controls] == [("depth", "inflate"), ("canny", None)]
    only_depth = fullsize_modelset(tmp_path, ["depth"])
    assert list(only_depth.controlnets) == ["depth"] and len(only_depth.default_controls) == 1


def test_the_lora_bench_measures_every_lever_on_the_tiny_bundle(tiny_engine, tmp_path):
    """The full-size LoRA child's own code, over the tiny bundle: two LoRAs loaded once each, every switch after
    that reads no file, and the rows come out of what it measured."""
    from zrealism_lab.bench import adapters
    from zrealism_lab.bench.adapters import child_adapters, rows_from

    point = child_adapters(tmp_path, {"tiny": True, "rank": 4})
    assert point["lora_loads"] == 2 and point["lora_bytes"] > 0
    assert point["switch_set"] >= 0 and len(point["step_fused"]) == adapters.STEP_REPEATS
    rows = rows_from(point)
    assert len(rows) == 6 and all(r.value is not None for r in rows)


# ------------------------------------------------------------------------------------------------ fast modes


@pytest.mark.slow
def test_fast_still_child_and_rows_on_the_tiny_bundle(tiny_bundle, monkeypatch, one_thread):
    """The fast-mode still rows, with each child task run in this process on the tiny bundle at 64 px."""
    from zrealism_lab.bench import fast, fullsize
    from zrealism_lab.bench.child import CHILD_TASKS
    from zrealism_lab.device import cpu_bf16_support

    if cpu_bf16_support() is None:
        pytest.skip("this CPU has no native bf16 (AMX, AVX512-BF16 or Arm BF16)")
    monkeypatch.setattr(fast, "STILL_SIZE", 64)
    monkeypatch.setattr(fullsize, "run_child", lambda task, bundle, params: CHILD_TASKS[task](tiny_bundle, params))
    rows = {r.what: r for r in fast._still_rows(tiny_bundle, lambda text: None)}
    fp32 = rows["512 px still, 2 ControlNets, CFG, fp32: seconds per step"]
    assert fp32.unit == "s/step" and fp32.value > 0 and "projected 21-step run" in fp32.note
    autocast = rows["512 px still step: bf16 autocast / fp32"]
    assert autocast.value > 0 and "autocast bfloat16, weights float32" in autocast.note
    assert "weights bfloat16" in rows["512 px still step: bf16 weights / fp32"].note
    weights = rows["512 px still, 2 ControlNets, CFG, bf16 weights: seconds per step"]
    assert "pixels differ from fp32 by at most" in weights.note


def test_fast_toggle_child_keeps_the_storage(tiny_bundle, one_thread):
    from zrealism_lab.bench.fast import child_fast_toggle

    cost = child_fast_toggle(tiny_bundle, {})
    assert cost["same_storage"] is True and len(cost["on"]) == len(cost["off"]) == 2
    assert cost["anon_added"] < 64 * 2**20


@pytest.mark.slow
def test_end_to_end_speed_rows_on_the_tiny_bundle(tiny_bundle, tmp_path, monkeypatch, one_thread):
    """The quality-against-fast rows, each child run in this process on the tiny bundle: the fast runs really take
    the few-step LoRA, LCM and guidance 1, and the ratios are computed against quality."""
    from zrealism_lab.bench import fast, fullsize
    from zrealism_lab.bench.child import CHILD_TASKS

    monkeypatch.setattr(fast, "STILL_SIZE", 64)
    monkeypatch.setattr(fast, "CLIP_SIZE", 64)
    monkeypatch.setattr(fast, "CLIP_FRAMES", 8)
    monkeypatch.setattr(fullsize, "run_child", lambda task, bundle, params: CHILD_TASKS[task](tiny_bundle, params))
    extras_dir = str(tmp_path / "extras")
    still = {r.what: r for r in fast.end_to_end_still_rows(tiny_bundle, lambda text: None,
                                                           modes=("quality", "fast"), extras_dir=extras_dir)}
    assert (tmp_path / "extras" / f"{fast.FAST_LORA_NAME}.safetensors").is_file()
    quality = still["512 px still, 2 ControlNets, end to end: speed quality"]
    fast_row = still["512 px still, 2 ControlNets, end to end: speed fast"]
    assert "21 denoising steps" in quality.note and "CFG 7.5" in quality.note
    assert "4 denoising steps" in fast_row.note and "lcm, CFG 1" in fast_row.note
    ratio = still["512 px still end to end: fast / quality"]
    assert ratio.target == "<= 0.125" and ratio.value == pytest.approx(fast_row.value / quality.value)
    clip = {r.what: r for r in fast.end_to_end_clip_rows(tiny_bundle, lambda text: None, extras_dir=extras_dir)}
    projected = clip["8-frame 64 px clip, 2 ControlNets: speed quality (projected to 15 steps)"]
    assert "over 2 steps" in projected.note and projected.value > 0
    assert "4 denoising steps" in clip["8-frame 64 px clip, 2 ControlNets, end to end: speed fast"].note
    assert clip["8-frame 64 px clip, 2 ControlNets: fast + TAESD decode / quality"].value > 0
