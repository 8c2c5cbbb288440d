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

    def next_weight(self) -> float:
        """The weight of the trained model in the next update: 1 − decay, the decay lower for the first updates."""
        updates = self.updates + 1
        return 1 - min(self.decay, (1 + updates) / (10 + updates))

    @torch.no_grad()
    def update(self) -> None:
        """Move the average towards the model it was made from, after one training step."""
        weight = self.next_weight()
        self.updates += 1
        self.blend(weight)

    @torch.no_grad()
    def blend(self, weight: float | torch.Tensor) -> None:
        """The average moved by ``weight`` towards the model, uncounted. A 0-dimensional tensor ``weight`` is read
        on the device, so a captured CUDA graph follows its value (a float would be frozen into it)."""
        torch._foreach_lerp_(self._averaged, self._current,
                             weight if isinstance(weight, float) else [weight] * len(self._averaged))
        for average, counter in self._counters:
            average.copy_(counter)

    def load(self, state: dict, updates: int) -> None:
        self.model.load_state_dict(state)
        self.updates = updates
