"""Command-line options shared by several commands (one definition each; Typer reads ``Annotated`` aliases)."""

from __future__ import annotations

from typing import Annotated

import typer

__all__ = ["Device", "LearningRate", "MaxMinutes", "ModelJson", "Steps", "Threads"]

#: torch CPU threads of a training or sampling command
Threads = Annotated[int | None, typer.Option("--threads", min=1, help="torch CPU threads.", show_default=False)]
#: torch device of a training command
Device = Annotated[str, typer.Option("--device", help="auto, cpu or cuda.")]
#: wall-time budget of a training run (the cosine learning-rate schedule follows it)
MaxMinutes = Annotated[float | None, typer.Option("--max-minutes", help="Training time budget.", show_default=False)]
#: overrides of a network's config
ModelJson = Annotated[str, typer.Option("--model-json", help="Network config overrides as JSON.")]
#: optimizer steps of a training run
Steps = Annotated[int, typer.Option("--steps", min=1, help="Optimizer steps.")]
#: peak learning rate of a training run
LearningRate = Annotated[float, typer.Option("--lr", help="Peak learning rate (cosine decay).")]
