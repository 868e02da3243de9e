"""Knob values on their way into `experiment.py` and back: a value as a flag or as a constant's
code edit, and the settings a planned run used, read back from its flags and edits."""

from __future__ import annotations

import ast
import re
from typing import Any

from agent.models import Edit, PlannedRun
from agent.numbers import fmt_value
from agent.template.contract import Knob, Template


def _literal(text: str) -> Any:
    try:
        return ast.literal_eval(text.strip())
    except (ValueError, SyntaxError):
        return text.strip()


def constant_value(code: str, name: str) -> tuple[str, Any] | None:
    """The module-level line `NAME = literal` in `code` and its value, or None."""
    m = re.search(rf"^{re.escape(name)}\s*(?::[^=\n]+)?=\s*(.+)$", code, re.MULTILINE)
    if not m:
        return None
    line, rhs = m.group(0), m.group(1)
    try:  # the value's exact extent, so a trailing comment is not part of it
        node = ast.parse(line.strip()).body[0]
        value_node = node.value  # type: ignore[attr-defined]
        rhs = ast.get_source_segment(line.strip(), value_node) or rhs
    except (SyntaxError, IndexError, AttributeError):
        rhs = rhs.split("#", 1)[0]
    return line, _literal(rhs)


def parse_flag_value(knob: Knob, text: str) -> Any:
    """A flag's string as the knob's typed value (matching one of `values` when it can)."""
    for v in knob.values or []:
        if str(v) == text or fmt_value(v) == text:
            return v
    try:
        if knob.type == "bool":
            return text.lower() in ("1", "true", "yes")
        if knob.type == "int":
            return int(float(text))
        if knob.type == "float":
            return float(text)
    except ValueError:
        pass
    return text


def run_settings(template: Template, planned: PlannedRun) -> dict[str, Any]:
    """Knob name -> value that a planned run sets: as its planner typed them, else read back from
    its flags and code edits (an LLM's plan)."""
    if planned.knobs:
        return dict(planned.knobs)
    out: dict[str, Any] = {}
    for knob in template.knobs:
        if knob.flag and knob.flag in planned.args:
            out[knob.name] = parse_flag_value(knob, planned.args[knob.flag])
        elif knob.constant:
            for edit in planned.edits:
                found = constant_value(edit.replace, knob.constant)
                if edit.path.endswith("experiment.py") and found:
                    out[knob.name] = found[1]
    return out


def settings_label(settings: dict[str, Any]) -> str:
    return ", ".join(f"{k}={fmt_value(v)}" for k, v in settings.items())


def flag_text(knob: Knob, value: Any) -> str:
    """A value as experiment.py's argparse takes it (bools as true/false)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if knob.type == "int":
        return str(int(value))
    return repr(value) if isinstance(value, float) else str(value)


def py_literal(value: Any) -> str:
    """A value as Python source; strings in double quotes, as the templates write them."""
    if isinstance(value, str) and value.isascii() and '"' not in value and "\\" not in value:
        return f'"{value}"'
    return repr(value)


def constant_edit(code: str, knob: Knob, value: Any) -> Edit:
    """The SEARCH/REPLACE edit that sets `NAME = value` on the line where `code` has it now,
    keeping any type annotation and trailing comment."""
    name = knob.constant or knob.name
    found = constant_value(code, name)
    line = found[0] if found else f"{name} = {py_literal(knob.default)}"
    try:
        value_node = ast.parse(line).body[0].value  # type: ignore[attr-defined]
        raw = line.encode()  # ast offsets count UTF-8 bytes
        new = (raw[:value_node.col_offset].decode() + py_literal(value)
               + raw[value_node.end_col_offset:].decode())
    except (SyntaxError, IndexError, AttributeError):
        new = f"{name} = {py_literal(value)}"
    return Edit(path="experiment.py", search=line, replace=new)
