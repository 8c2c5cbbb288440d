"""An exponential moving average of a model's weights and BatchNorm statistics, used for evaluation.

Averaging the last few hundred steps' weights smooths the step-to-step noise of SGD, so the
evaluated model changes less from one epoch to the next than the trained one.
"""

from __future__ import annotations

import copy

import torch
from torch import nn


class EMA:
    """``model``'s weights averaged with ``decay`` per step (less at first, so early epochs are not stale)."""

    def __init__(self, model: nn.Module, decay: float) -> None:
        self.model = copy.deepcopy(model).eval()
        for p in self.model.parameters():
            p.requires_grad_(False)
        self.decay = decay
        self.updates = 0
        self._pairs = self._floating(self.model), self._floating(model)

    @staticmethod
    def _floating(model: nn.Module) -> list[torch.Tensor]:
        return [t for t in model.state_dict().values() if t.dtype.is_floating_point]

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """Move the average towards ``model`` (the model it was made from) after one training step."""
        self.updates += 1
        decay = min(self.decay, (1 + self.updates) / (10 + self.updates))
        averaged, current = self._pairs
        torch._foreach_lerp_(averaged, current, 1 - decay)
        for name, buffer in model.named_buffers():  # counters such as BatchNorm's num_batches_tracked
            if not buffer.dtype.is_floating_point:
                self.model.get_buffer(name).copy_(buffer)

    def load(self, state: dict, updates: int) -> None:
        self.model.load_state_dict(state)
        self.updates = updates
