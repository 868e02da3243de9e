"""The offline brain: no key, no network; real, narrow science over a template's declared knobs,
with its own writer and review rubric (docs/offline_brain.md)."""
