"""The motion UNet shares the static UNet's and the motion adapter's tensors, and computes exactly what diffusers'
own copying conversion computes."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

torch = pytest.importorskip("torch")


@pytest.fixture(scope="module")
def engine(tmp_path_factory):
    from zrealism_lab.engine.engine import get_engine

    cache = tmp_path_factory.getbasetemp() / "zrealism-cache"  # shared by this session's test files
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("ZREALISM_CACHE", str(cache))
        yield get_engine("tiny")


@pytest.fixture(scope="module")
def parts(engine):
    return engine.component("unet"), engine.component("motion_adapter")


def test_every_parameter_is_the_static_unets_or_the_adapters_own_tensor(parts):
    from zrealism_lab.engine.sharing import build_shared_motion_unet

    unet, adapter = parts
    motion = build_shared_motion_unet(unet, adapter)
    owners = {p.data_ptr(): "unet" for p in unet.parameters()}
    owners.update({p.data_ptr(): "adapter" for p in adapter.parameters()})
    params = list(motion.parameters())
    assert params and all(p.data_ptr() in owners for p in params)
    assert all(p.device.type != "meta" for p in params)
    # every spatial weight and every motion weight is used, none is copied
    assert {p.data_ptr() for p in params} == set(owners)
    assert len(params) == len(list(unet.parameters())) + len(list(adapter.parameters()))
    assert motion.down_blocks[0].resnets[0] is unet.down_blocks[0].resnets[0]
    assert motion.down_blocks[0].motion_modules[0] is adapter.down_blocks[0].motion_modules[0]
    assert motion.down_blocks[0].resnets is not unet.down_blocks[0].resnets  # own containers


def test_forward_is_bit_identical_to_diffusers_from_unet2d(parts):
    from diffusers import UNetMotionModel

    from zrealism_lab.engine.sharing import build_shared_motion_unet

    unet, adapter = parts
    shared = build_shared_motion_unet(unet, adapter)
    copied = UNetMotionModel.from_unet2d(unet, adapter).eval()
    assert dict(shared.config) == dict(copied.config)
    generator = torch.Generator().manual_seed(0)
    sample = torch.randn(1, 4, 8, 8, 8, generator=generator)
    text = torch.randn(8, 77, unet.config.cross_attention_dim, generator=generator)
    with torch.no_grad():
        ours = shared(sample, 500, encoder_hidden_states=text).sample
        theirs = copied(sample, 500, encoder_hidden_states=text).sample
    assert torch.equal(ours, theirs)


def test_pipeline_output_is_bit_identical_to_an_independently_built_pipeline(engine, parts):
    import diffusers

    from zrealism_lab.engine.sharing import build_shared_motion_unet

    unet, adapter = parts
    common = {name: engine.component(name) for name in ("vae", "text_encoder", "tokenizer")}
    controlnet = [engine.component("controlnet:depth")]
    scheduler = diffusers.DDIMScheduler.from_config(engine.scheduler_config(), clip_sample=False)
    ours = diffusers.AnimateDiffVideoToVideoControlNetPipeline(
        **common, unet=build_shared_motion_unet(unet, adapter), motion_adapter=adapter, controlnet=controlnet,
        scheduler=scheduler)
    # given the 2D UNet, diffusers converts it itself with UNetMotionModel.from_unet2d (copying every weight)
    theirs = diffusers.AnimateDiffVideoToVideoControlNetPipeline(
        **common, unet=unet, motion_adapter=adapter, controlnet=controlnet, scheduler=scheduler)
    assert ours.unet.conv_in.weight.data_ptr() == unet.conv_in.weight.data_ptr()
    assert theirs.unet.conv_in.weight.data_ptr() != unet.conv_in.weight.data_ptr()
    video = [Image.fromarray(np.full((64, 64, 3), 40 * i, np.uint8)) for i in range(4)]
    control = [Image.fromarray(np.full((64, 64, 3), 255 - 40 * i, np.uint8)) for i in range(4)]

    def run(pipe):
        pipe.set_progress_bar_config(disable=True)
        return pipe(video=video, prompt="a person", conditioning_frames=[control], num_inference_steps=2,
                    strength=1.0, height=64, width=64, generator=torch.Generator().manual_seed(3),
                    output_type="np").frames

    assert np.array_equal(run(ours), run(theirs))


def test_engine_switch_reads_nothing_and_leaves_the_static_unet_plain(engine):
    engine.static_pipeline(("depth",))
    engine.component("motion_adapter")
    loaded = dict(engine.load_seconds)
    pipe = engine.temporal_pipeline(("depth",))
    assert engine.load_seconds == loaded  # nothing new was loaded
    unet = engine.component("unet")
    assert pipe.unet.mid_block.attentions[0] is unet.mid_block.attentions[0]
    assert pipe.motion_adapter is engine.component("motion_adapter")
    assert engine.temporal_pipeline(("depth",)) is pipe


def test_a_mismatched_adapter_is_refused(parts):
    from diffusers import MotionAdapter

    from zrealism_lab.errors import SettingsError
    from zrealism_lab.engine.sharing import build_shared_motion_unet

    unet, _ = parts
    wrong = MotionAdapter(block_out_channels=(16, 32), motion_layers_per_block=2, motion_num_attention_heads=2,
                          motion_norm_num_groups=2)
    with pytest.raises(SettingsError, match="motion_adapter"):
        build_shared_motion_unet(unet, wrong)


# ------------------------------------------------------------------------------------------------ context windows


def _free_noise_blocks(unet):
    from diffusers.models.attention import FreeNoiseTransformerBlock

    return [m for m in unet.modules() if isinstance(m, FreeNoiseTransformerBlock)]


def test_context_windows_switch_on_and_off_over_the_same_tensors(engine):
    from zrealism_lab.engine.animatediff import set_free_noise
    from zrealism_lab.settings import TemporalSettings

    pipe = engine.temporal_pipeline(())
    settings = TemporalSettings(frames=8, context_length=16, context_stride=4)
    before = {name: p.data_ptr() for name, p in pipe.unet.named_parameters()}
    buffers = {name: b.data_ptr() for name, b in pipe.unet.named_buffers()}
    try:
        assert set_free_noise(pipe, 24, settings)
        twins = _free_noise_blocks(pipe.unet)
        assert twins and pipe.free_noise_enabled
        assert all(t.context_length == 16 and t.context_stride == 4 for t in twins)
        # the same names over the same storage: switching copied nothing
        assert {name: p.data_ptr() for name, p in pipe.unet.named_parameters()} == before
        assert {name: b.data_ptr() for name, b in pipe.unet.named_buffers()} == buffers
        assert not set_free_noise(pipe, 8, settings)
        assert not _free_noise_blocks(pipe.unet) and not pipe.free_noise_enabled
        assert {name: p.data_ptr() for name, p in pipe.unet.named_parameters()} == before
        set_free_noise(pipe, 24, settings.replace(context_stride=2))
        again = _free_noise_blocks(pipe.unet)
        assert [id(t) for t in again] == [id(t) for t in twins]  # built once, reused
        assert all(t.context_stride == 2 for t in again)
    finally:
        set_free_noise(pipe, 8, settings)
    assert {name: p.data_ptr() for name, p in pipe.unet.named_parameters()} == before


def test_context_windows_give_the_pixels_of_diffusers_own_free_noise(engine, parts):
    import diffusers

    from zrealism_lab.engine.animatediff import set_free_noise
    from zrealism_lab.settings import TemporalSettings

    unet, adapter = parts
    common = {name: engine.component(name) for name in ("vae", "text_encoder", "tokenizer")}
    config = {**engine.scheduler_config(), "beta_schedule": "linear"}
    # diffusers' own path: a copied motion UNet and enable_free_noise rebuilding every motion block
    theirs = diffusers.AnimateDiffVideoToVideoPipeline(
        **common, unet=unet, motion_adapter=adapter,
        scheduler=diffusers.DDIMScheduler.from_config(config, clip_sample=False))
    theirs.enable_free_noise(context_length=16, context_stride=4)
    ours = engine.temporal_pipeline(())
    ours.scheduler = diffusers.DDIMScheduler.from_config(config, clip_sample=False)
    video = [Image.fromarray(np.full((32, 32, 3), 10 * i, np.uint8)) for i in range(18)]

    def run(pipe):
        pipe.set_progress_bar_config(disable=True)
        return pipe(video=video, prompt="a person", num_inference_steps=1, strength=1.0, height=32, width=32,
                    generator=torch.Generator().manual_seed(5), output_type="np").frames

    settings = TemporalSettings(frames=18, context_length=16, context_stride=4)
    try:
        assert set_free_noise(ours, 18, settings)
        assert np.array_equal(run(ours), run(theirs))
    finally:
        set_free_noise(ours, 8, settings)
