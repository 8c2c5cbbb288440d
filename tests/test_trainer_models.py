import pytest
import torch
from click.testing import CliRunner
from torch import nn

from trainer import models
from trainer.cli import main
from trainer.device import DeviceError, choose, resolve
from trainer.summary import receptive_field, summarize


@pytest.mark.parametrize("name", list(models.MODELS))
def test_every_model_is_small_and_has_the_required_layer_kinds(name):
    model = models.create(name)
    kinds = {type(m) for m in model.modules()}
    assert {nn.BatchNorm2d, nn.Dropout, nn.AdaptiveAvgPool2d, nn.Linear} <= kinds
    assert models.count_parameters(model) < models.MAX_PARAMS
    assert model(torch.zeros(2, 1, 28, 28)).shape == (2, 10)


def test_the_default_model_and_the_one_under_8000_parameters():
    # counted by hand from the channel plans: 3×3 convolutions without bias, BatchNorm's γ and β, the FC layer
    assert models.count_parameters(models.create()) == 17_290 < models.MAX_PARAMS
    assert models.count_parameters(models.create("tiny")) == 7_594 < 8_000


def test_receptive_field_of_a_known_stack():
    stack = [nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Conv2d(4, 4, 3), nn.MaxPool2d(2), nn.Conv2d(4, 4, 3),
             nn.Conv2d(4, 4, 3, dilation=2), nn.AdaptiveAvgPool2d(1)]
    # 28 → 26 → 24 → 12 → 10 → 6 → 1
    assert receptive_field(stack) == [(3, 1), (3, 1), (5, 1), (6, 2), (10, 2), (18, 2), (28, 12)]


def test_summary_rows_follow_the_model():
    s = summarize(models.create("tiny"))
    # by hand: a 3×3 convolution without bias has 9·in·out weights, BatchNorm 2 per channel
    first, norm = s.layers[0], s.layers[1]
    assert (first.kind, first.output_shape, first.params, first.rf, first.jump) == ("Conv2d", (8, 26, 26), 72, 3, 1)
    assert (norm.kind, norm.params) == ("BatchNorm2d", 16)
    assert first.macs == 72 * 26 * 26  # one multiply-add per weight per output pixel
    assert s.layers[-1].kind == "Linear" and s.layers[-1].output_shape == (10,) and s.layers[-1].params == 16 * 10 + 10
    assert s.total_params == 7_594


def test_summary_and_models_commands():
    out = CliRunner().invoke(main, ["summary"]).output
    assert "Total params: 17,290" in out  # the default model, counted by hand above
    convs = [line.split() for line in out.splitlines() if line.startswith("Conv2d")]
    assert convs[-1][-2:] == ["22", "2"]  # the last convolution sees 22×22 input pixels, 2 apart (README)
    listed = {line.split()[0]: line.split()[1] for line in CliRunner().invoke(main, ["models"]).output.splitlines()}
    assert set(listed) == set(models.MODELS) and listed["wide"] == "17,290" and listed["tiny"] == "7,594"


@pytest.mark.parametrize("cuda, mps, picked", [(True, True, "cuda"), (False, True, "mps"), (False, False, "cpu")])
def test_auto_picks_cuda_then_mps_then_the_cpu(monkeypatch, cuda, mps, picked):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    monkeypatch.setattr("trainer.device._mps_available", lambda: mps)
    assert choose("auto") == picked and choose("cpu") == "cpu"


def test_an_unknown_device_is_refused():
    with pytest.raises(DeviceError, match="unknown device 'tpu'"):
        resolve("tpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA device is present")
def test_cuda_without_a_gpu_is_a_clear_error():
    with pytest.raises(DeviceError, match="no CUDA device"):
        resolve("cuda")


def test_cpu_trains_in_full_precision_and_default_memory_format():
    d = resolve("cpu")
    assert not d.channels_last and not d.inputs(torch.ones(2, 3, 28, 28)).is_contiguous(
        memory_format=torch.channels_last)
    with d.autocast():
        y = nn.Linear(3, 3)(torch.ones(1, 3))
    assert y.dtype == torch.float32
    with resolve("cpu", precision="bf16").autocast():
        assert nn.Linear(3, 3)(torch.ones(1, 3)).dtype == torch.bfloat16
