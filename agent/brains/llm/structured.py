"""Structured output: describe a pydantic model compactly, and pull it out of model text.

Models wrap JSON in prose or ```json fences, or stop mid-object; `parse` finds the first
complete JSON object in the text and validates it, raising `OutputInvalid` with a short
reason that the repair round quotes back to the model.
"""

from __future__ import annotations

import copy
import json
import re
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from agent import safe_json

T = TypeVar("T", bound=BaseModel)
MAX_ANSWER_BYTES = 2 * 2**20
_FENCE = re.compile(r"```[a-zA-Z]*\s*\n?(.*?)```", re.DOTALL)


class OutputInvalid(ValueError):
    """The model's text held no valid object of the requested schema."""


def extract_json(text: str) -> dict[str, Any]:
    """The first JSON object in `text`, looking inside ``` fences first. An answer is hostile
    input: one too long or nested too deep is refused before any parsing (no RecursionError)."""
    raw = text.encode("utf-8", errors="replace")
    if len(raw) > MAX_ANSWER_BYTES:
        raise OutputInvalid(f"the answer is {len(raw)} bytes, more than the {MAX_ANSWER_BYTES} allowed")
    if safe_json.nesting(raw) > safe_json.MAX_DEPTH:
        raise OutputInvalid(f"the JSON is nested more than {safe_json.MAX_DEPTH} levels deep")
    candidates = [m.group(1) for m in _FENCE.finditer(text)] + [text]
    decoder = json.JSONDecoder()
    for chunk in candidates:
        start = chunk.find("{")
        while start != -1:
            try:
                obj, _ = decoder.raw_decode(chunk, start)
            except json.JSONDecodeError:
                start = chunk.find("{", start + 1)
                continue
            if isinstance(obj, dict):
                return obj
            start = chunk.find("{", start + 1)
    if "{" not in text:
        raise OutputInvalid("the answer contains no JSON object (reply with JSON only, no prose)")
    raise OutputInvalid("the JSON object is incomplete or malformed (truncated, or a syntax error)")


def _error_text(e: ValidationError) -> str:
    parts = []
    for err in e.errors()[:5]:
        where = ".".join(str(x) for x in err["loc"]) or "(top level)"
        parts.append(f"{where}: {err['msg']}")
    more = f" (and {e.error_count() - 5} more)" if e.error_count() > 5 else ""
    return "; ".join(parts) + more


def parse(text: str, schema: type[T]) -> T:
    obj = extract_json(text)
    try:
        return schema.model_validate(obj)
    except ValidationError as e:
        raise OutputInvalid(f"the JSON does not match the schema: {_error_text(e)}") from None


def strip_fences(text: str) -> str:
    """Free text (LaTeX) without a surrounding ``` fence the model may have added."""
    m = _FENCE.fullmatch(text.strip())
    return (m.group(1) if m else text).strip()


# ------------------------------------------------------------------ compact schema hint


def shape(schema: type[BaseModel]) -> str:
    """A one-line TypeScript-like shape of the model: far fewer tokens than a JSON Schema."""
    js = schema.model_json_schema()
    return _shape(js, js.get("$defs", {}))


def _shape(node: dict[str, Any], defs: dict[str, Any]) -> str:
    if "$ref" in node:
        return _shape(defs[node["$ref"].rsplit("/", 1)[-1]], defs)
    if "anyOf" in node:
        return " | ".join(_shape(n, defs) for n in node["anyOf"])
    if "enum" in node:
        return " | ".join(json.dumps(v) for v in node["enum"])
    if "const" in node:
        return json.dumps(node["const"])
    kind = node.get("type")
    if kind == "object" and "properties" in node:
        required = set(node.get("required", []))
        fields = []
        for name, sub in node["properties"].items():
            opt = "" if name in required else "?"
            fields.append(f'"{name}"{opt}: {_shape(sub, defs)}{_note(sub)}')
        return "{" + ", ".join(fields) + "}"
    if kind == "object":
        extra = node.get("additionalProperties")
        return "{[key: string]: " + (_shape(extra, defs) if isinstance(extra, dict) else "any") + "}"
    if kind == "array":
        return _shape(node.get("items", {}), defs) + "[]"
    return {"integer": "int", "number": "float", "string": "string", "boolean": "bool", "null": "null"}.get(
        kind or "", "any"
    )


def _note(node: dict[str, Any]) -> str:
    bits = []
    if "minimum" in node and "maximum" in node:
        bits.append(f"{node['minimum']}-{node['maximum']}")
    if "pattern" in node:
        bits.append(f"/{node['pattern']}/")
    if node.get("description"):
        bits.append(node["description"])
    return f" /* {'; '.join(bits)} */" if bits else ""


# ------------------------------------------------------------------ JSON Schema for constrained decoding


def response_schema(schema: type[BaseModel]) -> tuple[dict[str, Any], bool]:
    """The JSON Schema of `schema` for `response_format` (type json_schema), and whether it
    qualifies for strict mode: OpenAI's strict mode wants every property required and
    `additionalProperties: false`, so a free-form map (dict[str, str]) makes it non-strict.
    Servers that decode under a grammar (llama.cpp, vLLM, Ollama) follow either kind."""
    js = copy.deepcopy(schema.model_json_schema())
    strict = True

    def walk(node: Any) -> None:
        nonlocal strict
        if isinstance(node, list):
            for v in node:
                walk(v)
            return
        if not isinstance(node, dict):
            return
        node.pop("default", None)
        node.pop("title", None)
        if node.get("type") == "object":
            props = node.get("properties")
            if not isinstance(props, dict) or node.get("additionalProperties") not in (None, False):
                strict = False
            else:
                node["additionalProperties"] = False
                node["required"] = list(props)  # optional fields are answered too; pydantic accepts them
        for key, value in node.items():
            if key != "properties":
                walk(value)
            else:
                for sub in value.values():
                    walk(sub)

    walk(js)
    return js, strict
