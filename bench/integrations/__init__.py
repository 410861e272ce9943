"""Hooks that other evaluation tools load: lm-evaluation-harness (``lm_eval_hooks``, used by
folders that ``pencilbench export lm-eval`` writes) and inspect_ai (``inspect_tasks``, the
``pencilbench/...`` tasks of the optional ``inspect`` extra). Neither tool is imported here."""
