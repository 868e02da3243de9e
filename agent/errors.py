"""The exception tree. Every error a user can cause is a `UserError`: the CLI prints its
message on one line and exits 2, never a traceback.

    AIScientistError
    ├── UserError                 bad input: print one line, exit 2
    │   ├── TemplateError         a malformed or missing research template
    │   ├── ToolMissing           a required tool (bwrap, latexmk, ...) is absent
    │   ├── ConfigError           bad flags, settings or API key
    │   └── BudgetExceeded        the next LLM call would pass --budget-usd
    └── StageFailed               a pipeline stage gave up on one idea (recorded, run goes on)
"""

from __future__ import annotations


class AIScientistError(Exception):
    """Base of every error this package raises on purpose."""


class UserError(AIScientistError):
    """Something the user can fix. The CLI prints `str(err)` and exits 2."""


class TemplateError(UserError):
    """A research template is missing, malformed, or produced output off the contract."""

    def __init__(self, file: str, field: str, message: str):
        self.file, self.field = file, field
        super().__init__(f"{file}: {field}: {message}")


class ToolMissing(UserError):
    """A required external tool is not installed; the message says how to install it."""


class ConfigError(UserError):
    """Bad flags, settings, or credentials."""


class BudgetExceeded(UserError):
    """The next LLM call would exceed the run's --budget-usd. Work so far is kept."""


class StageFailed(AIScientistError):
    """A stage gave up on one idea; the reason is recorded and other ideas go on."""

    def __init__(self, stage: str, reason: str):
        self.stage, self.reason = stage, reason
        super().__init__(f"{stage}: {reason}")
