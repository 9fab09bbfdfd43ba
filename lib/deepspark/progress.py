"""Progress of a run on stderr: one bar over the stages, one per long step (epochs, datasets).

On a terminal the bars redraw in place and log records print above them; elsewhere (CI, Airflow
logs) each stage's start and end is one plain line and the bars print once, finished, at the end.
"""

from __future__ import annotations

import logging

from rich.console import Console
from rich.logging import RichHandler
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn


class StageProgress:
    """Context manager; ``stage`` and ``step`` are the pipeline's callbacks."""

    def __init__(self, stages: list[str], console: Console | None = None) -> None:
        self.console = console or Console(stderr=True)
        self.bars = Progress(
            TextColumn("{task.description:<28}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=self.console,
        )
        self.pipeline = self.bars.add_task("pipeline", total=len(stages))
        self.steps: dict[str, int] = {}
        self._handlers: list[logging.Handler] = []

    def __enter__(self) -> StageProgress:
        if self.console.is_terminal:
            # Log records go through the bars' console, so they print above the bars.
            root = logging.getLogger()
            self._handlers, root.handlers = root.handlers, [RichHandler(console=self.console)]
            self.bars.start()
        return self

    def __exit__(self, *exc) -> None:
        if self.console.is_terminal:
            self.bars.stop()
            logging.getLogger().handlers = self._handlers
        else:
            self.console.print(self.bars.make_tasks_table(self.bars.tasks))

    def say(self, text: str) -> None:
        self.console.print(text, markup=False, highlight=False, soft_wrap=True)

    def stage(self, name: str, state: str) -> None:
        if state == "start":
            self.bars.update(self.pipeline, description=f"pipeline: {name}")
            self.say(f"[{name}] running ...")
        else:
            self.bars.advance(self.pipeline)
            self.say(f"[{name}] {state}")

    def step(self, what: str, done: int, total: int) -> None:
        if what not in self.steps:
            self.steps[what] = self.bars.add_task(what, total=total)
        self.bars.update(self.steps[what], completed=done, total=total)
