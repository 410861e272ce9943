"""pencilbench: synthetic long-reasoning benchmarks with gold CoT and PENCIL traces.

The installed package owns the project's four parts as subpackages, so nothing else in
site-packages is shadowed: ``pencilbench.generators`` (tasks, traces, datasets),
``pencilbench.solvers`` (independent oracles), ``pencilbench.bench`` (the harness and the
command line) and ``pencilbench.reports`` (leaderboards).
"""

from pencilbench.generators import __version__

__all__ = ["__version__"]
