"""Independent oracles: one per task, sharing no solving code with the trace builders."""
