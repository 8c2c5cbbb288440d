"""The model summary (torchinfo's) with the receptive field and jump of every layer added."""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
import torchinfo
from torch import nn

INPUT_SIZE = (1, 1, 28, 28)


@dataclass(frozen=True)
class LayerRow:
    name: str  # torchinfo's "Conv2d: 3-1" (kind: depth-index)
    kind: str
    output_shape: tuple[int, ...]
    params: int
    rf: int  # receptive field, in input pixels
    jump: int  # input pixels between neighbouring outputs
    macs: int


@dataclass(frozen=True)
class ModelSummary:
    layers: tuple[LayerRow, ...]
    total_params: int
    trainable_params: int
    total_macs: int


def _pair(v) -> int:
    return int(v[0] if isinstance(v, tuple) else v)


def receptive_field(modules: list[nn.Module], input_size: int = INPUT_SIZE[-1]) -> list[tuple[int, int]]:
    """(RF, jump) after each module, for a plain stack applied in order.

    rf_out = rf_in + (k − 1)·dilation·jump_in and jump_out = jump_in·stride for convolutions and
    pooling; global average pooling sees the whole remaining map; other layers change nothing.
    """
    rf, jump, size = 1, 1, input_size
    out = []
    for m in modules:
        if isinstance(m, (nn.Conv2d, nn.MaxPool2d, nn.AvgPool2d)):
            k, s = _pair(m.kernel_size), _pair(m.stride)
            d = _pair(m.dilation) if hasattr(m, "dilation") else 1
            p = _pair(m.padding)
            rf += (k - 1) * d * jump
            jump *= s
            size = (size + 2 * p - d * (k - 1) - 1) // s + 1
        elif isinstance(m, (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)):
            rf += (size - 1) * jump
            jump *= size
            size = 1
        out.append((rf, jump))
    return out


def summarize(model: nn.Module) -> ModelSummary:
    """Layer by layer: output shape, parameters, multiply-accumulates, receptive field and jump."""
    cpu_model = copy.deepcopy(model).cpu().eval()
    with torch.random.fork_rng(devices=[]):  # torchinfo draws a random input; keep the caller's RNG stream
        stats = torchinfo.summary(cpu_model, input_size=INPUT_SIZE, verbose=0, device="cpu")
    leaves = [layer for layer in stats.summary_list if layer.is_leaf_layer]
    fields = receptive_field([layer.module for layer in leaves])
    rows = tuple(
        LayerRow(layer.get_layer_name(False, True), layer.class_name, tuple(layer.output_size[1:]),
                 int(layer.num_params), rf, jump, int(layer.macs))
        for layer, (rf, jump) in zip(leaves, fields)
    )
    return ModelSummary(rows, int(stats.total_params), int(stats.trainable_params), int(stats.total_mult_adds))


def format_table(summary: ModelSummary) -> str:
    """A torchsummary-style text table with the RF and jump columns."""
    head = f"{'Layer':<26}{'Output shape':<18}{'Params':>9}{'RF':>6}{'Jump':>6}"
    lines = [head, "=" * len(head)]
    for r in summary.layers:
        shape = "[" + ", ".join(str(d) for d in r.output_shape) + "]"
        lines.append(f"{r.name:<26}{shape:<18}{r.params:>9,}{r.rf:>6}{r.jump:>6}")
    lines += ["=" * len(head), f"Total params: {summary.total_params:,}",
              f"Trainable params: {summary.trainable_params:,}",
              f"Mult-adds per image: {summary.total_macs / 1e6:.2f} M"]
    return "\n".join(lines)
