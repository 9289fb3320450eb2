"""A1111-compatible infotext: what the lab writes on every PNG, and reading A1111's (and the lab's own) back."""
from __future__ import annotations

import hashlib
import json

import pytest
from PIL import Image

from zrealism_lab.errors import IntakeError
from zrealism_lab.infotext import parse_infotext, read_settings, write_infotext
from zrealism_lab.settings import ControlUnit, StaticSettings, TemporalSettings

# A1111 1.9's format (sampler and schedule type apart), with sd-webui-controlnet units and a LoRA tag.
A1111_NEW = """photo of a knight, <lora:add_detail:0.5>, detailed armour
Negative prompt: cartoon, (worst quality:1.4)
Steps: 28, Sampler: DPM++ 2M, Schedule type: Karras, CFG scale: 6.5, Seed: 1234567, Size: 512x768, \
Model hash: 6ce0161689, Model: realisticVisionV51_v51VAE, VAE hash: 735e4c3a44, VAE: vae-ft-mse-840000-ema-pruned.safetensors, \
Denoising strength: 0.55, Clip skip: 2, ControlNet 0: "Module: depth_midas, Model: control_v11f1p_sd15_depth [cfd03158], \
Weight: 0.8, Resize Mode: Crop and Resize, Low Vram: False, Processor Res: 512, Guidance Start: 0.0, Guidance End: 0.9, \
Pixel Perfect: False, Control Mode: Balanced", ControlNet 1: "Module: dw_openpose_full, Model: control_v11p_sd15_openpose \
[cab727d4], Weight: 1.0, Resize Mode: Crop and Resize, Processor Res: 512, Guidance Start: 0.0, Guidance End: 1.0, \
Pixel Perfect: False, Control Mode: Balanced", ControlNet 2: "Module: ip-adapter_clip_sd15, Model: ip-adapter_sd15 \
[6a3f6166], Weight: 0.6", Lora hashes: "add_detail: 7c6bad76eb54", Version: v1.9.4"""
# The older one-field sampler, a hires fix and ADetailer.
A1111_OLD = """a portrait
Steps: 20, Sampler: DPM++ 2M Karras, CFG scale: 7, Seed: 42, Size: 512x512, Model hash: 15012c538f, \
Model: realisticVisionV51, Denoising strength: 0.7, Hires upscale: 2, Hires steps: 12, Hires upscaler: Latent, \
Hires denoising strength: 0.4, ADetailer model: face_yolov8n.pt, ADetailer denoising strength: 0.35, ENSD: 31337"""


def test_a1111_infotext_of_the_documented_format_is_read_into_settings():
    imported = read_settings(A1111_NEW)
    s = imported.settings
    assert imported.kind == "static" and isinstance(s, StaticSettings)
    assert s.prompt == "photo of a knight, <lora:add_detail:0.5>, detailed armour"  # tags stay as they are
    assert s.negative_prompt == "cartoon, (worst quality:1.4)"
    assert (s.steps, s.scheduler, s.cfg, s.seed, s.size, s.strength) == (28, "dpmpp-2m-karras", 6.5, 1234567, 768,
                                                                         0.55)
    assert s.detect_resolution == 512
    assert s.controls == (ControlUnit("depth", 0.8, 0.0, 0.9, method="midas"), ControlUnit("openpose", 1.0))
    assert imported.models["Model hash"] == "6ce0161689" and imported.models["VAE"].startswith("vae-ft-mse")
    assert imported.models["controlnet:depth"] == "control_v11f1p_sd15_depth [cfd03158]"
    assert imported.models["Lora hashes"] == "add_detail: 7c6bad76eb54"
    assert set(imported.unmapped) == {"Clip skip", "ControlNet 2", "ControlNet 1 module"}
    assert imported.version == "v1.9.4"


def test_the_older_sampler_field_hires_and_adetailer_are_read():
    imported = read_settings(A1111_OLD)
    s = imported.settings
    assert (s.scheduler, s.negative_prompt, s.hires, s.hires_steps, s.hires_upscaler) == (
        "dpmpp-2m-karras", "", 2.0, 12, "latent")
    assert s.face_detail and s.face_strength == 0.35 and s.hires_strength == 0.4
    assert s.size == StaticSettings().size  # Size is the hires output: the first pass's size is not in it
    assert imported.unmapped == {"ENSD": "31337"}


def test_the_parser_splits_like_a1111s_png_info():
    parsed = parse_infotext('line one\nline two\nNegative prompt: bad\nmore bad\nSteps: 5, Sampler: Euler a, '
                            'CFG scale: 7, Note: "a, quoted: value"')
    assert parsed["prompt"] == "line one\nline two" and parsed["negative_prompt"] == "bad\nmore bad"
    assert parsed["params"]["Note"] == "a, quoted: value" and parsed["params"]["Sampler"] == "Euler a"
    with pytest.raises(IntakeError, match="no A1111 parameters line"):
        read_settings("just a prompt")


STATIC = StaticSettings(prompt="a knight, <lora:armour:0.7>", negative_prompt="blurry, anime", steps=24, cfg=6.0,
                        strength=0.62, size=640, seed=99, scheduler="euler-a", colour_method="lab-histogram",
                        colour_strength=0.3, hires=1.5, hires_strength=0.3, hires_upscaler="latent", face_detail=True,
                        face_boxes=((10, 10, 60, 60),), detect_resolution=384, mask_controls=True,
                        controls=(ControlUnit("depth", 0.75, method="inflate"),
                                  ControlUnit("canny", 0.5, 0.1, 0.8, method="opencv",
                                              params={"low_threshold": 60, "high_threshold": 160})))


@pytest.mark.parametrize("settings,temporal", [(STATIC, False), (StaticSettings(), False),
                                               (TemporalSettings(frames=24, fps=12, context_stride=2, free_init=True,
                                                                 motion_prompt="slow turn"), True)])
def test_an_infotext_the_lab_writes_parses_back_to_identical_settings(settings, temporal):
    data = settings.to_dict()
    if data["controls"] is None:
        data["controls"] = [u.to_dict() for u in (ControlUnit("depth", 0.75, method="inflate"),)]
    text = write_infotext(settings.prompt, settings.negative_prompt, data, (640, 480), temporal=temporal)
    imported = read_settings(text)
    assert imported.unmapped == {}
    assert json.loads(json.dumps(imported.settings.to_dict(), default=list)) == json.loads(json.dumps(data,
                                                                                                      default=list))
    assert imported.kind == ("temporal" if temporal else "static")
    assert text.splitlines()[-1].endswith(", Version: zrealism-lab 0.1.0")


def test_the_writer_uses_a1111_names_and_takes_adapter_and_extra_fields():
    data = STATIC.to_dict()
    models = {"base": {"role": "base", "kind": "file", "location": "/models/realisticVisionV51.safetensors"},
              "vae": {"role": "vae", "kind": "hub", "location": "stabilityai/sd-vae-ft-mse"},
              "controlnets": {"canny": {"role": "controlnet:canny", "kind": "hub",
                                        "location": "lllyasviel/control_v11p_sd15_canny"}}}
    hashes = {"unet": {"realisticVisionV51.safetensors": "15012c538f" + "0" * 54},
              "controlnet:canny": {"diffusion_pytorch_model.safetensors": "d14c016b" + "1" * 56}}
    adapters = {"loras": [{"name": "armour", "hash": "7c6bad76eb54"}], "embeddings": [{"token": "easyneg",
                                                                                       "hash": "c74b4e810b03"}]}
    text = write_infotext(STATIC.prompt, STATIC.negative_prompt, data, (960, 720), models=models,
                          model_hashes=hashes, adapters=adapters, extra={"Note": "a, b"})
    line = text.splitlines()[-1]
    assert "Sampler: Euler a, CFG scale: 6, Seed: 99, Size: 960x720, Model hash: 15012c538f, " \
           "Model: realisticVisionV51, VAE: sd-vae-ft-mse, Denoising strength: 0.62" in line
    assert ('ControlNet 1: "Module: canny, Model: control_v11p_sd15_canny [d14c016b], Weight: 0.5, Resize Mode: '
            'Crop and Resize, Processor Res: 384, Threshold A: 60, Threshold B: 160, Guidance Start: 0.1, Guidance '
            'End: 0.8, Pixel Perfect: False, Control Mode: Balanced"') in line
    assert 'Hires upscale: 1.5, Hires steps: 24, Hires upscaler: Latent, Hires denoising strength: 0.3' in line
    assert 'Lora hashes: "armour: 7c6bad76eb54", TI hashes: "easyneg: c74b4e810b03", Note: "a, b"' in line
    assert read_settings(text).settings == STATIC


def test_every_png_of_a_run_carries_infotext_that_reads_back(tiny_engine, sample_64, small_settings, tmp_path):
    from zrealism_lab.generate.static import run_static

    settings = small_settings.replace(seed=5, controls=(ControlUnit("depth", 0.6, method="inflate"),))
    result = run_static(sample_64, settings, engine=tiny_engine, out_dir=tmp_path)
    for name in ("output.png", "output_raw.png"):
        with Image.open(result.run_dir / name) as image:
            assert "Sampler: DPM++ 2M, Schedule type: Karras" in image.info["parameters"]
    imported = read_settings(result.run_dir / "output.png")
    assert imported.settings == settings and imported.models["Model"] == tiny_engine.models.base.location.split("/")[-1]


def test_a_single_file_checkpoint_writes_a1111s_model_hash(tiny_engine, tiny_bundle, sample_64, small_settings,
                                                           tmp_path):
    from zrealism_lab.engine.engine import Engine
    from zrealism_lab.generate.static import run_static
    from zrealism_lab.models.tiny_single_file import write_tiny_checkpoint

    checkpoint = write_tiny_checkpoint(tiny_bundle, tmp_path / "myModel_v2.safetensors")
    engine = Engine(tiny_engine.models.with_component("base", checkpoint, config=str(tiny_bundle)), device="cpu")
    result = run_static(sample_64, small_settings.replace(controls=()), engine=engine, out_dir=tmp_path / "runs")
    text = Image.open(result.run_dir / "output.png").info["parameters"]
    sha = hashlib.sha256(checkpoint.read_bytes()).hexdigest()
    assert f"Model hash: {sha[:10]}, Model: myModel_v2," in text


def test_import_settings_cli_and_run_settings_flag(tiny_engine, sample_64, tmp_path, capsys):
    from zrealism_lab.cli.main import main

    text_file = tmp_path / "a1111.txt"
    text_file.write_text(A1111_NEW, encoding="utf-8")
    assert main(["import-settings", str(text_file), "--out", str(tmp_path / "s.json")]) == 0
    err = capsys.readouterr().err
    assert "not mapped: Clip skip: 2" in err
    data = json.loads((tmp_path / "s.json").read_text())
    assert data["kind"] == "static" and data["seed"] == 1234567
    data.update(size=64, steps=2, controls="depth:inflate", detect_resolution=64, prompt="photo of a knight")
    (tmp_path / "s.json").write_text(json.dumps(data))
    assert main(["run", "static", "--image", str(sample_64), "--preset", "tiny", "--settings", str(tmp_path / "s.json"),
                 "--seed", "7", "--quiet", "--out", str(tmp_path / "runs")]) == 0
    run_dir = next((tmp_path / "runs").iterdir())
    record = json.loads((run_dir / "record.json").read_text())
    assert record["settings"]["seed"] == 7 and record["settings"]["cfg"] == 6.5  # the flag over the file
    capsys.readouterr()
    assert main(["import-settings", str(run_dir / "output.png")]) == 0
    assert json.loads(capsys.readouterr().out)["seed"] == 7
    assert main(["import-settings", str(tmp_path / "missing.png")]) == 2


def test_a_clips_still_keeps_its_static_runs_infotext(tmp_path):
    from PIL.PngImagePlugin import PngInfo

    from zrealism_lab.records import still_run_text

    info = PngInfo()
    info.add_text("parameters", "a still\nSteps: 4, Sampler: Euler, CFG scale: 7, Seed: 1")
    Image.new("RGB", (8, 8)).save(tmp_path / "output.png", pnginfo=info)
    assert still_run_text(str(tmp_path))["parameters"].startswith("a still")
    assert still_run_text(None) is None and still_run_text(str(tmp_path / "gone")) is None


@pytest.mark.parametrize("prompt,loras", [
    ("a knight", (("armour", 0.7), ("tiny-detail", 1.0))),  # listed only: the writer tags them
    ("a knight, <lora:armour:0.7>", (("tiny-detail", 0.5),)),  # one tagged by the user, one listed
    ("a knight, <lora:armour:0.7>, <lora:tiny-detail:1.25>", ()),  # tagged only: written as they are
])
def test_active_loras_are_written_as_a1111_tags_and_read_back_once(prompt, loras):
    from zrealism_lab.adapters.tags import split_lora_tags

    settings = StaticSettings(prompt=prompt, loras=loras)
    text = write_infotext(split_lora_tags(prompt)[0], settings.negative_prompt, settings.to_dict(), (512, 512))
    written = text.splitlines()[0]
    tagged = dict(split_lora_tags(written)[1])
    assert tagged == {**dict(split_lora_tags(prompt)[1]), **dict(loras)}  # every active LoRA, each tag once
    imported = read_settings(text)
    assert imported.settings == settings and imported.unmapped == {}
    s = imported.settings
    listed, in_prompt = {n for n, _ in s.loras}, {n for n, _ in split_lora_tags(s.prompt)[1]}
    assert not listed & in_prompt and listed | in_prompt == set(tagged)  # none twice, none lost
    s.validated()


def test_without_the_labs_field_the_tags_alone_select_the_loras():
    text = write_infotext("a knight", "blurry", StaticSettings(prompt="a knight", loras=(("armour", 0.7),)).to_dict(),
                          (512, 512))
    a1111_view = "\n".join(line.split(", Z-Realism settings:")[0] for line in text.splitlines())
    imported = read_settings(a1111_view)
    assert imported.settings.prompt == "a knight, <lora:armour:0.7>" and imported.settings.loras == ()


def test_a_unit_given_its_map_is_module_none_and_reads_back():
    unit = ControlUnit("openpose", 0.8, 0.0, 0.8, image="skeleton.png")
    data = StaticSettings(controls=(unit,)).to_dict()
    text = write_infotext("a knight", "blurry", data, (512, 512),
                          models={"controlnets": {"openpose": {"kind": "hub",
                                                               "location": "lllyasviel/control_v11p_sd15_openpose"}}})
    assert 'ControlNet 0: "Module: none, Model: control_v11p_sd15_openpose, Weight: 0.8' in text
    imported = read_settings(text)
    assert imported.settings.controls == (unit,) and imported.unmapped == {}
    # A1111's own text does not carry the map: the unit is read, and the note says how to give the map
    a1111_view = text.split(", Z-Realism settings:")[0]
    imported = read_settings(a1111_view)
    assert imported.settings.controls == (ControlUnit("openpose", 0.8, 0.0, 0.8),)
    assert "openpose@PATH" in imported.unmapped["ControlNet 0 map"]
