"""Stopping a training run at a chosen epoch, as Ctrl-C would, by injection rather than a timer."""

from trainer import loop


def stop_at_epoch(monkeypatch, epoch: int) -> None:
    """Make a training session raise KeyboardInterrupt when epoch ``epoch`` starts (undo with monkeypatch.undo)."""
    real = loop.train_epoch

    def train_epoch(*args, **kwargs):
        if kwargs["epoch"] == epoch:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr("trainer.session.train_epoch", train_epoch)
