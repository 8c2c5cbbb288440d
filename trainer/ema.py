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
        averaged, current = self.model.state_dict(), model.state_dict()
        floating = [k for k, t in current.items() if t.dtype.is_floating_point]
        self._averaged = [averaged[k] for k in floating]
        self._current = [current[k] for k in floating]
        # counters such as BatchNorm's num_batches_tracked are copied, not averaged
        self._counters = [(averaged[k], t) for k, t in current.items() if not t.dtype.is_floating_point]

    @torch.no_grad()
    def update(self) -> None:
        """Move the average towards the model it was made from, after one training step."""
        self.updates += 1
        decay = min(self.decay, (1 + self.updates) / (10 + self.updates))
        torch._foreach_lerp_(self._averaged, self._current, 1 - decay)
        for average, counter in self._counters:
            average.copy_(counter)

    def load(self, state: dict, updates: int) -> None:
        self.model.load_state_dict(state)
        self.updates = updates
