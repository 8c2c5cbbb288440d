"""The run templates shipped with the trainer: package data (``trainer.templates``), not code."""
