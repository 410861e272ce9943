"""Models for the Ray tests, reachable as ``python:ray_models:NAME`` with this folder on the path."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from eval_models import last_token


def dies_once(request: Any) -> str:
    """Kills its own worker process the first time any process calls it (a marker file in
    ``$PENCILBENCH_TEST_MARKERS`` remembers), then answers as ``last_token``."""
    marker = Path(os.environ["PENCILBENCH_TEST_MARKERS"]) / "died"
    try:
        marker.open("x").close()
    except FileExistsError:
        return last_token(request)
    os._exit(1)


def sleepy(request: Any) -> str:
    time.sleep(0.2)
    return last_token(request)


def always_dies(request: Any) -> str:
    os._exit(1)
