"""`LLMClient`: one typed question to any OpenAI-compatible endpoint, with the safety rails.

Each call goes: cache lookup -> budget check -> HTTP with bounded retries -> ledger row ->
pydantic validation -> (on invalid output) exactly one repair round -> a typed result, or
`StageFailed` with the reason. What each failure becomes:

    429, 5xx, timeout, connection error   retried with backoff + jitter (Retry-After honoured),
                                          bounded in attempts and total time; then StageFailed
    401, 403, 404, other 4xx, context     ConfigError at once, with what to do (no retry)
    invalid JSON / schema twice           StageFailed (never a crash)
    the call would pass the budget        BudgetExceeded, before anything is sent

Every request carries the header `X-AI-Scientist-Stage` and names its stage in the first
line of the system prompt. The API key lives only inside the `openai` client: it is never
logged, cached or written to the ledger.
"""

from __future__ import annotations

import logging
import os
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import openai
from openai.types.chat import ChatCompletion
from pydantic import BaseModel
from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_attempt, stop_before_delay

from agent.brains.llm.cache import CachedAnswer, CallCache, request_hash
from agent.brains.llm.ledger import Call, Ledger
from agent.brains.llm.prices import PriceTable
from agent.brains.llm.structured import OutputInvalid, parse, shape, strip_fences
from agent.brains.llm.tokens import count_messages, count_tokens
from agent.errors import BudgetExceeded, ConfigError, StageFailed

log = logging.getLogger(__name__)
T = TypeVar("T", bound=BaseModel)
V = TypeVar("V")
STAGE_HEADER = "X-AI-Scientist-Stage"
KEY_VARS = ("AI_SCIENTIST_API_KEY", "OPENAI_API_KEY")
NO_KEY = "not-needed"  # local servers (Ollama, llama.cpp) ignore the key, but the client wants one
REPAIR_ECHO_CHARS = 4000  # how much of an invalid answer the repair round quotes back


def resolve_api_key(base_url: str | None) -> str:
    """The key from the environment; a dummy for a custom endpoint; else a ConfigError."""
    for var in KEY_VARS:
        if os.environ.get(var):
            return os.environ[var]
    if base_url:
        return NO_KEY
    raise ConfigError("no API key: set OPENAI_API_KEY or AI_SCIENTIST_API_KEY, or use --model offline")


class BadResponse(Exception):
    """The endpoint answered 200 with something that is not a chat completion (a proxy's page)."""


@dataclass
class _Answer:
    content: str
    prompt_tokens: int
    completion_tokens: int
    cached: bool
    key: str = ""


def _checked(value: V, check: Callable[[V], None] | None) -> V:
    """`value`, once the caller's extra `check` (which raises ValueError) accepts it."""
    if check is not None:
        try:
            check(value)
        except ValueError as e:
            raise OutputInvalid(str(e)) from None
    return value


def _transient(e: BaseException) -> bool:
    """Errors that a later attempt can fix."""
    if isinstance(e, openai.APIConnectionError | BadResponse):  # includes APITimeoutError
        return True
    return isinstance(e, openai.APIStatusError) and (e.status_code >= 500 or e.status_code in (408, 409, 429))


def _retry_after(e: BaseException) -> float | None:
    """Seconds the server asked us to wait (Retry-After or retry-after-ms), if it said."""
    if not isinstance(e, openai.APIStatusError):
        return None
    headers = e.response.headers
    try:
        if headers.get("retry-after-ms"):
            return float(headers["retry-after-ms"]) / 1000
        if headers.get("retry-after"):
            return float(headers["retry-after"])
    except ValueError:  # an HTTP date: fall back to our own backoff
        return None
    return None


def _message(e: openai.APIStatusError) -> str:
    body = e.body if isinstance(e.body, dict) else {}
    err = body.get("error", body)
    msg = err.get("message") if isinstance(err, dict) else None
    return str(msg or e.message)[:300]


def _context_hint(msg: str) -> bool:
    """Whether an error message (lower case) says the prompt is longer than the context."""
    return "context length" in msg or "context window" in msg or "maximum context" in msg


def _context_overflow(e: openai.APIStatusError) -> bool:
    code = e.body.get("code") if isinstance(e.body, dict) else None
    return code == "context_length_exceeded" or _context_hint(_message(e).lower())


class LLMClient:
    """Typed completions from one model. Thread-safe; share one per run."""

    def __init__(
        self,
        model: str,
        *,
        base_url: str | None = None,
        api_key: str | None = None,
        ledger: Ledger | None = None,
        prices: PriceTable | None = None,
        prices_path: Path | None = None,
        budget_usd: float | None = None,
        cache: CallCache | None = None,
        timeout_s: float = 120.0,
        max_attempts: int = 5,
        max_total_s: float = 600.0,
        backoff_s: float = 2.0,
        max_backoff_s: float = 60.0,
        temperature: float = 0.7,
        max_tokens: int = 4096,
    ):
        if not model:
            raise ConfigError("no model name: pass --model NAME or set AI_SCIENTIST_MODEL")
        self.model = model
        self.base_url = base_url
        self.ledger = ledger if ledger is not None else Ledger()
        self.prices = prices or PriceTable.load(prices_path)
        self.budget_usd = budget_usd
        self.cache = cache or CallCache(None, "off")
        self.timeout_s = timeout_s
        self.max_attempts = max_attempts
        self.max_total_s = max_total_s
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self.temperature = temperature
        self.max_tokens = max_tokens
        self._openai = openai.OpenAI(
            base_url=base_url,
            api_key=api_key or resolve_api_key(base_url),
            timeout=timeout_s,
            max_retries=0,  # retries are ours: bounded in attempts and total time, and recorded
        )
        # Request options some endpoints reject; each is adapted once, then remembered.
        self._json_mode = True
        self._token_param = "max_tokens"
        self._send_temperature = True
        self._lock = threading.Lock()
        self._reserved_usd = 0.0

    def __repr__(self) -> str:  # never shows the key
        return f"LLMClient(model={self.model!r}, base_url={self.base_url!r})"

    # ------------------------------------------------------------------ public

    def complete(
        self,
        stage: str,
        system: str,
        user: str,
        schema: type[T],
        *,
        idea: str = "",
        max_tokens: int | None = None,
        check: Callable[[T], None] | None = None,
    ) -> T:
        """A `schema` instance. `check` may raise ValueError to reject a valid-looking answer."""
        system = f"{system.strip()}\n\nReply with one JSON object only, no prose and no code fences, of this shape:\n{shape(schema)}"

        def validate(text: str) -> T:
            return _checked(parse(text, schema), check)

        return self._complete(stage, system, user, validate, schema.__name__, idea, max_tokens)

    def complete_text(
        self,
        stage: str,
        system: str,
        user: str,
        *,
        idea: str = "",
        max_tokens: int | None = None,
        check: Callable[[str], None] | None = None,
    ) -> str:
        """Free text (e.g. a LaTeX section), without any surrounding code fence."""

        def validate(text: str) -> str:
            out = strip_fences(text)
            if not out:
                raise OutputInvalid("the answer was empty")
            return _checked(out, check)

        return self._complete(stage, system, user, validate, None, idea, max_tokens)

    # ------------------------------------------------------------------ one question, one repair

    def _complete(
        self,
        stage: str,
        system: str,
        user: str,
        validate: Callable[[str], Any],
        schema_name: str | None,
        idea: str,
        max_tokens: int | None,
    ) -> Any:
        limit = max_tokens or self.max_tokens
        messages = [{"role": "system", "content": f"[stage: {stage}]\n{system.strip()}"}, {"role": "user", "content": user}]
        answer = first_answer = self._ask(stage, messages, schema_name, idea, limit)
        try:
            result = validate(answer.content)
        except OutputInvalid as first:
            self._record(stage, idea, answer, ok=False, error=f"invalid output: {first}")
            log.info("%s: invalid output (%s); one repair round", stage, first)
            repair = messages + [
                {"role": "assistant", "content": answer.content[:REPAIR_ECHO_CHARS]},
                {
                    "role": "user",
                    "content": f"Your answer was invalid: {first}.\nReply again with the complete, corrected answer"
                    + (" as one JSON object only." if schema_name else " only."),
                },
            ]
            answer = self._ask(stage, repair, schema_name, idea, limit)
            try:
                result = validate(answer.content)
            except OutputInvalid as second:
                reason = f"invalid output after one repair round: {second}"
                self._record(stage, idea, answer, ok=False, error=reason)
                for bad in (first_answer, answer):
                    self.cache.forget(bad.key)
                raise StageFailed(stage, reason) from None
        self._record(stage, idea, answer, ok=True)
        return result

    def _ask(
        self, stage: str, messages: list[dict[str, str]], schema_name: str | None, idea: str, max_tokens: int
    ) -> _Answer:
        """The answer text: from the cache, or from the endpoint (then cached)."""
        key = self.cache.key(request_hash(self.model, messages, schema_name, self.temperature))
        hit = self.cache.get(key, stage)
        if hit is not None:
            return _Answer(hit.content, hit.prompt_tokens, hit.completion_tokens, cached=True, key=key)
        estimate = self._reserve(stage, messages, max_tokens)
        try:
            resp = self._send_with_retries(stage, idea, messages, max_tokens, schema_name is not None)
        finally:
            with self._lock:
                self._reserved_usd -= estimate
        content = (resp.choices[0].message.content or "") if resp.choices else ""
        usage = resp.usage
        answer = _Answer(
            content,
            usage.prompt_tokens if usage else count_messages(messages),
            usage.completion_tokens if usage else count_tokens(content),
            cached=False,
            key=key,
        )
        self.cache.put(
            CachedAnswer(
                key=key,
                stage=stage,
                model=self.model,
                request={"messages": messages, "schema": schema_name, "temperature": self.temperature},
                content=content,
                prompt_tokens=answer.prompt_tokens,
                completion_tokens=answer.completion_tokens,
            )
        )
        return answer

    # ------------------------------------------------------------------ budget and ledger

    def _reserve(self, stage: str, messages: list[dict[str, str]], max_tokens: int) -> float:
        """Raise BudgetExceeded if this call could pass the budget; else hold its estimate."""
        estimate = self.prices.cost(self.model, count_messages(messages), max_tokens)
        if self.budget_usd is None:
            return 0.0
        with self._lock:
            spent = self.ledger.total_usd + self._reserved_usd
            if spent + estimate > self.budget_usd:
                raise BudgetExceeded(
                    f"stopped before the {stage} call: ${spent:.4f} spent and up to ${estimate:.4f} more "
                    f"would pass --budget-usd {self.budget_usd:g}; work so far is kept, resume with a higher --budget-usd"
                )
            self._reserved_usd += estimate
        return estimate

    def _record(self, stage: str, idea: str, answer: _Answer | None, *, ok: bool, error: str = "") -> None:
        p, c = (answer.prompt_tokens, answer.completion_tokens) if answer else (0, 0)
        cached = bool(answer and answer.cached)
        cost = 0.0 if cached else self.prices.cost(self.model, p, c)
        self.ledger.add(
            Call(
                stage=stage,
                idea=idea,
                model=self.model,
                prompt_tokens=p,
                completion_tokens=c,
                cost_usd=cost,
                cached=cached,
                ok=ok,
                error=error,
            )
        )

    # ------------------------------------------------------------------ HTTP with retries

    def _send_with_retries(
        self, stage: str, idea: str, messages: list[dict[str, str]], max_tokens: int, json: bool
    ) -> Any:
        start = time.monotonic()
        retrying = Retrying(
            stop=stop_after_attempt(self.max_attempts) | stop_before_delay(self.max_total_s),
            wait=self._wait,
            retry=retry_if_exception(_transient),
            before_sleep=lambda state: self._log_retry(stage, state),
            reraise=True,
        )
        try:
            return retrying(self._attempt, stage, idea, messages, max_tokens, json, start)
        except openai.APIStatusError as e:
            if _transient(e):
                raise self._gave_up(stage, start, e) from None
            raise self._fatal(stage, e) from None
        except (openai.APIConnectionError, BadResponse) as e:
            raise self._gave_up(stage, start, e) from None
        except openai.APIError as e:  # anything else the client library may raise
            raise StageFailed(stage, f"unexpected answer from {self._endpoint()}: {str(e)[:300]}") from None

    def _attempt(
        self, stage: str, idea: str, messages: list[dict[str, str]], max_tokens: int, json: bool, start: float
    ) -> Any:
        """One HTTP request; a failure is recorded in the ledger before it propagates."""
        left = self.max_total_s - (time.monotonic() - start)
        timeout = max(min(self.timeout_s, 1.0), min(self.timeout_s, left))
        try:
            resp = self._post(stage, messages, max_tokens, json, timeout)
            if not isinstance(resp, ChatCompletion):
                raise BadResponse(f"not a chat completion: {str(resp)[:120]!r}")
            return resp
        except (openai.APIError, BadResponse) as e:
            self._record(stage, idea, None, ok=False, error=self._describe(e, timeout))
            raise

    def _post(self, stage: str, messages: list[dict[str, str]], max_tokens: int, json: bool, timeout: float) -> Any:
        """Send once, adapting (once each) to endpoints that reject an optional parameter."""
        while True:
            kwargs: dict[str, Any] = {self._token_param: max_tokens}
            if self._send_temperature:
                kwargs["temperature"] = self.temperature
            if json and self._json_mode:
                kwargs["response_format"] = {"type": "json_object"}
            try:
                return self._openai.chat.completions.create(
                    model=self.model,
                    messages=messages,  # type: ignore[arg-type]
                    extra_headers={STAGE_HEADER: stage},
                    timeout=timeout,
                    **kwargs,
                )
            except openai.BadRequestError as e:
                if not self._adapt(_message(e).lower(), kwargs):
                    raise

    def _adapt(self, msg: str, sent: dict[str, Any]) -> bool:
        """Drop or rename the option an endpoint complained about; False if nothing to adapt."""
        if _context_hint(msg):
            return False
        if "response_format" in sent and ("response_format" in msg or "json_object" in msg):
            self._json_mode = False
        elif self._token_param == "max_tokens" and "max_completion_tokens" in msg:
            self._token_param = "max_completion_tokens"
        elif "temperature" in sent and "temperature" in msg:
            self._send_temperature = False
        else:
            return False
        log.info("endpoint rejected an optional parameter; adapting (%s)", msg[:120])
        return True

    def _wait(self, state: RetryCallState) -> float:
        """Retry-After when the server gave one (capped), else exponential backoff with full jitter."""
        exc = state.outcome.exception() if state.outcome else None
        asked = _retry_after(exc) if exc else None
        if asked is not None:
            return min(max(asked, 0.0), self.max_backoff_s)
        return random.uniform(0, min(self.max_backoff_s, self.backoff_s * 2 ** (state.attempt_number - 1)))

    def _log_retry(self, stage: str, state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        why = " (Retry-After)" if exc is not None and _retry_after(exc) is not None else ""
        desc = self._describe(exc, self.timeout_s) if isinstance(exc, Exception) else repr(exc)
        log.warning(
            "%s: attempt %d failed (%s); retrying in %.1fs%s", stage, state.attempt_number, desc, state.upcoming_sleep, why
        )

    # ------------------------------------------------------------------ error messages

    def _endpoint(self) -> str:
        return self.base_url or "the OpenAI API"

    def _describe(self, e: Exception, timeout: float) -> str:
        if isinstance(e, openai.APITimeoutError):
            return f"timed out after {timeout:g}s"
        if isinstance(e, openai.APIConnectionError):
            return f"could not connect to {self._endpoint()}"
        if isinstance(e, openai.APIStatusError):
            return f"HTTP {e.status_code}: {_message(e)}"
        return str(e)[:300]

    def _gave_up(self, stage: str, start: float, e: Exception) -> StageFailed:
        elapsed = time.monotonic() - start
        return StageFailed(
            stage, f"the LLM endpoint kept failing ({self._describe(e, self.timeout_s)}); gave up after {elapsed:.0f}s"
        )

    def _fatal(self, stage: str, e: openai.APIStatusError) -> ConfigError:
        where = self._endpoint()
        status = e.status_code
        if status == 401:
            return ConfigError(
                f"the API key was rejected (401) by {where}: set OPENAI_API_KEY or AI_SCIENTIST_API_KEY to a valid key"
            )
        if status == 403:
            return ConfigError(f"access denied (403) by {where} for model {self.model!r}: check the key's permissions or --model")
        if status == 404:
            return ConfigError(
                f"model {self.model!r} or its endpoint was not found (404) at {where}: check --model and --base-url "
                "(an OpenAI-compatible base URL usually ends in /v1)"
            )
        if _context_overflow(e):
            return ConfigError(
                f"the {stage} prompt does not fit the context window of {self.model!r}: use a model with a longer context"
            )
        return ConfigError(f"{where} rejected the {stage} request (HTTP {status}): {_message(e)}")
