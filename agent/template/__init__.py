"""Research templates: the contract (`contract`), knob values in and out of `experiment.py`
(`knobs`), how the orchestrator calls a template (`run`), and `template check` (`check`)."""
