"""JSON from hostile sources (a sandboxed run's files, an LLM's answer, a worker's reply), parsed
with bounds: a size cap, a nesting cap, and no `NaN`/`Infinity`, which are not JSON and which
`json.loads` would otherwise accept. Every refusal is a `ValueError` with a reason fit for a log
or for the brain's fix loop; nothing here can raise `RecursionError` or run for long."""

from __future__ import annotations

import json
import re
from typing import Any

MAX_BYTES = 16 * 2**20
MAX_DEPTH = 64
_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.S)
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")


def nesting(data: bytes) -> int:
    """The deepest nesting of arrays and objects in `data`, ignoring brackets inside strings."""
    depth = deepest = 0
    for byte in _STRING.sub(b"", data).translate(None, _NOT_BRACKETS):
        if byte in b"[{":
            depth += 1
            deepest = max(deepest, depth)
        else:
            depth -= 1
    return deepest


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number; write a finite number or null")


def loads(data: bytes | str, *, max_bytes: int = MAX_BYTES, max_depth: int = MAX_DEPTH, what: str = "JSON") -> Any:
    """Parse `data` as strict JSON, or raise ValueError saying why not."""
    raw = data.encode("utf-8", errors="surrogatepass") if isinstance(data, str) else bytes(data)
    if len(raw) > max_bytes:
        raise ValueError(f"{what}: {len(raw)} bytes, more than the {max_bytes} allowed")
    depth = nesting(raw)
    if depth > max_depth:
        raise ValueError(f"{what}: nested {depth} levels deep, more than the {max_depth} allowed")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ValueError(f"{what}: not UTF-8 (byte {e.start})") from None
    try:
        return json.loads(text, parse_constant=_no_constants)
    except json.JSONDecodeError as e:
        raise ValueError(f"{what}: not valid JSON ({e.msg} at line {e.lineno} column {e.colno})") from None
    except ValueError as e:  # from _no_constants
        raise ValueError(f"{what}: {e}") from None
