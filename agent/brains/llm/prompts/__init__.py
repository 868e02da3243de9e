"""Prompt files, one per brain stage: `<stage>.md` holds the system text, a line
`=== user ===`, then the user text. Placeholders are `{{name}}`, so the JSON and LaTeX
braces in a prompt need no escaping. A file that opens with the `=== user ===` line is a
turn of a conversation whose system text is another file's (the coder's, say); one with
nothing after that line is a system text alone.

The stable part of each prompt comes first (the system text, then the template, the code,
the paper), the part that changes last, so that providers' prefix caching applies.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path

HERE = Path(__file__).resolve().parent
SPLIT = "\n=== user ===\n"
_VAR = re.compile(r"\{\{(\w+)\}\}")


@functools.cache
def load(name: str) -> tuple[str, str]:
    text = (HERE / f"{name}.md").read_text()
    if text.startswith(SPLIT.lstrip("\n")):
        text = "\n" + text
    if SPLIT not in text + "\n":
        raise ValueError(f"prompt {name}.md lacks the '=== user ===' separator line")
    system, user = (text + "\n").split(SPLIT, 1)
    return system.strip(), user.strip()


def render(prompt: str, /, **values: object) -> tuple[str, str]:
    """(system, user) of `prompt`.md with every `{{placeholder}}` filled."""

    def fill(text: str) -> str:
        def sub(m: re.Match[str]) -> str:
            if m.group(1) not in values:
                raise KeyError(f"prompt {prompt}.md needs a value for {{{{{m.group(1)}}}}}")
            return str(values[m.group(1)])

        return _VAR.sub(sub, text)

    system, user = load(prompt)
    return fill(system), fill(user)
