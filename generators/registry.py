"""The one list of tasks. Adding a task means adding its module here."""

from __future__ import annotations

from pencilbench.generators import addition, einstein, phop, qbf, sat
from pencilbench.generators.task import Task

TASKS: dict[str, Task] = {
    task.name: task
    for task in (
        addition.TASK,
        einstein.TASK,
        phop.TASK,
        qbf.TASK,
        sat.TASK,
    )
}


def get_task(name: str) -> Task:
    """The task called ``name``; ``ValueError`` lists the known ones."""
    try:
        return TASKS[name]
    except KeyError:
        raise ValueError(f"unknown task {name!r}; known tasks: {', '.join(TASKS)}") from None
