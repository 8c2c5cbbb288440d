import pytest
import torch
from click.testing import CliRunner
from torch import nn

from trainer import models
from trainer.cli import main
from trainer.device import DeviceError, resolve
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
    assert s.total_params == models.count_parameters(models.create("tiny"))
    assert sum(r.params for r in s.layers) == s.total_params
    first = s.layers[0]
    assert (first.kind, first.output_shape, first.rf, first.jump) == ("Conv2d", (8, 26, 26), 3, 1)
    assert s.layers[-1].kind == "Linear" and s.layers[-1].output_shape == (10,)


def test_summary_and_models_commands():
    out = CliRunner().invoke(main, ["summary"]).output
    params = models.count_parameters(models.create(models.DEFAULT_MODEL))
    assert "RF" in out and f"Total params: {params:,}" in out
    out = CliRunner().invoke(main, ["models"]).output
    assert all(name in out for name in models.MODELS)


def test_device_choice():
    assert resolve("cpu").device.type == "cpu"
    assert resolve("auto").type in ("cuda", "mps", "cpu")
    with pytest.raises(DeviceError, match="unknown device"):
        resolve("tpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA device is present")
def test_cuda_without_a_gpu_is_a_clear_error():
    with pytest.raises(DeviceError, match="no CUDA device"):
        resolve("cuda")


def test_cpu_trains_in_full_precision_and_default_memory_format():
    d = resolve("cpu")
    assert not d.channels_last
    with d.autocast():
        y = nn.Linear(3, 3)(torch.ones(1, 3))
    assert y.dtype == torch.float32
