"""`LLMClient`: one typed question to any OpenAI-compatible endpoint, with the safety rails.

Each call goes: cache lookup -> budget check -> HTTP with bounded retries -> ledger row ->
pydantic validation -> (on invalid output) exactly one repair round -> a typed result, or
`StageFailed` with the reason. What each failure becomes:

    429, 5xx, connection error            retried with backoff + jitter (Retry-After honoured),
                                          bounded in attempts and total time; then StageFailed
    timeout (no answer in timeout_s)      retried once, within 1.8 x timeout_s of the call's start
                                          (a hung endpoint hangs the retry too); then StageFailed
    the stage's deadline passes           StageFailed (`deadline`: all calls of one brain step)
    401, 403, 404, other 4xx, context     ConfigError at once, with what to do (no retry)
    response_format refused (400, or a    the next weaker form, remembered: json_schema (strict
    500 that names it)                    where the schema allows) -> json_object with the schema
                                          -> json_object -> prompt only
    image parts refused (400)             `supports_images` is False from then on
    invalid JSON / schema twice           StageFailed (never a crash)
    the call would pass the budget        BudgetExceeded, before anything is sent

A structured answer is asked for with its JSON Schema (`response_format` json_schema), so
that servers which decode under a grammar (llama.cpp, vLLM, Ollama) can only return a valid
object; the compact shape is in the prompt as well, for servers that follow only the prompt.
Prompt tokens served from the provider's prefix cache are counted apart (`cached_tokens`).

Every request carries the header `X-AI-Scientist-Stage` and names its stage in the first
line of its last user message (not in the system text, which stays the same across the
calls of a conversation so that prefix caching applies). The API key lives only inside the `openai` client: it is never
logged, cached or written to the ledger.
"""

from __future__ import annotations

import base64
import contextlib
import logging
import os
import random
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import openai
from openai.types.chat import ChatCompletion
from pydantic import BaseModel
from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_attempt

from agent.brains.llm.cache import CachedAnswer, CallCache, request_hash
from agent.brains.llm.ledger import Call, Ledger
from agent.brains.llm.prices import Price, PriceTable, require_price
from agent.brains.llm.structured import OutputInvalid, parse, response_schema, shape, strip_fences
from agent.brains.llm.tokens import count_messages, count_tokens
from agent.errors import BudgetExceeded, ConfigError, StageFailed
from agent.models import FigureImage

log = logging.getLogger(__name__)
T = TypeVar("T", bound=BaseModel)
V = TypeVar("V")
STAGE_HEADER = "X-AI-Scientist-Stage"
KEY_VARS = ("AI_SCIENTIST_API_KEY", "OPENAI_API_KEY")
NO_KEY = "not-needed"  # local servers (Ollama, llama.cpp) ignore the key, but the client wants one
REPAIR_TOKENS = 16_000  # the most a repair of a cut-off answer may ask for
REPAIR_ECHO_CHARS = 4000  # how much of an invalid answer the repair round quotes back
HUNG_FACTOR = 1.8  # a call whose attempt timed out ends within this many timeouts of its start
# Strongest first; a refusal steps down once. "json_object_schema" is json_object with the schema
# beside it, which llama-cpp-python's server turns into a grammar (it refuses json_schema).
FORMATS = ("json_schema", "json_object_schema", "json_object", "prompt")
Message = dict[str, Any]  # {"role": ..., "content": str | [text and image parts]}
# An 8x8 grey PNG: the one image the vision probe sends.
PROBE_PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAgAAAAIAQAAAAA+i6PJAAAADklEQVR4nGNgYGBgYAAAAAUAAa3m4BcAAAAASUVORK5CYII="
)


def user_content(text: str, images: Sequence[FigureImage] = ()) -> str | list[dict[str, Any]]:
    """A user message's content: the text, then each image (a PNG data URL) after a line naming it."""
    if not images:
        return text
    parts: list[dict[str, Any]] = [{"type": "text", "text": text}]
    for img in images:
        parts.append({"type": "text", "text": f"Figure {img.name}" + (f" (caption: {img.caption})" if img.caption else "")})
        url = "data:image/png;base64," + base64.b64encode(img.png).decode()
        parts.append({"type": "image_url", "image_url": {"url": url}})
    return parts


def resolve_api_key(base_url: str | None) -> str:
    """The key from the environment; a dummy for a custom endpoint; else a ConfigError."""
    for var in KEY_VARS:
        if os.environ.get(var):
            return os.environ[var]
    if base_url:
        return NO_KEY
    raise ConfigError("no API key: set OPENAI_API_KEY or AI_SCIENTIST_API_KEY, or use --model offline")


class Chat:
    """A conversation with the model: every question is sent after the system text and each
    earlier exchange, unchanged, so that a provider's prefix cache covers all but the last."""

    def __init__(self, client: LLMClient, system: str, idea: str = "", temperature: float | None = None):
        self.client, self.system, self.idea, self.temperature = client, system, idea, temperature
        self.turns: list[Message] = []

    def ask(self, stage: str, user: str, schema: type[T], **kw: Any) -> T:
        kw.setdefault("temperature", self.temperature)
        return self.client.complete(stage, self.system, user, schema, idea=self.idea, history=list(self.turns),
                                    transcript=self.turns, **kw)

    def say(self, stage: str, user: str, **kw: Any) -> str:
        kw.setdefault("temperature", self.temperature)
        return self.client.complete_text(stage, self.system, user, idea=self.idea, history=list(self.turns),
                                         transcript=self.turns, **kw)


class BadResponse(Exception):
    """The endpoint answered 200 with something that is not a chat completion (a proxy's page)."""


@dataclass
class _Answer:
    content: str
    prompt_tokens: int
    completion_tokens: int
    cached: bool
    key: str = ""
    cached_prompt_tokens: int = 0


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


def _images_refused(msg: str) -> bool:
    """Whether a 400's message (lower case) says the model takes no image input."""
    return any(w in msg for w in ("image", "vision", "multimodal", "multi-modal")) or (
        "content" in msg and ("array" in msg or "list" in msg or "string" in msg)
    )


def _has_images(messages: list[Message]) -> bool:
    return any(isinstance(m.get("content"), list) for m in messages)


def _strip_images(messages: list[Message]) -> None:
    """Turn every message with image parts into its text alone (in place)."""
    for m in messages:
        if isinstance(m.get("content"), list):
            m["content"] = "\n".join(p.get("text", "") for p in m["content"] if p.get("type") == "text")


def _cached_tokens(usage: Any) -> int:
    """Prompt tokens the provider served from its prefix cache, where it reports them."""
    details = getattr(usage, "prompt_tokens_details", None)
    n = getattr(details, "cached_tokens", None) if details is not None else None
    return n if isinstance(n, int) and n > 0 else 0


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
        price: Price | None = None,
        budget_usd: float | None = None,
        cache: CallCache | None = None,
        timeout_s: float = 60.0,
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
        self.prices = prices or PriceTable.load(prices_path, {model: price} if price else None)
        require_price(self.prices, model, budget_usd)
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
        self._format = FORMATS[0]
        self._strict = True
        self._token_param = "max_tokens"
        self._send_temperature = True
        self._images: bool | None = None  # None: not probed yet
        self._lock = threading.Lock()
        self._reserved_usd = 0.0
        self._deadline = threading.local()  # per thread: ideas run in parallel

    def __repr__(self) -> str:  # never shows the key
        return f"LLMClient(model={self.model!r}, base_url={self.base_url!r})"

    # ------------------------------------------------------------------ public

    @property
    def response_format(self) -> str:
        """The strongest structured-output form the endpoint has accepted (or not yet refused)."""
        return self._format

    @contextlib.contextmanager
    def deadline(self, seconds: float | None) -> Iterator[None]:
        """Every call in this block (on this thread) must end within `seconds` of its start; a
        nested block never extends the outer one. None: no deadline of its own."""
        outer = getattr(self._deadline, "end", None)
        end = outer if seconds is None else min(outer or float("inf"), time.monotonic() + seconds)
        self._deadline.end = end
        try:
            yield
        finally:
            self._deadline.end = outer

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
        history: Sequence[Message] = (),
        images: Sequence[FigureImage] = (),
        temperature: float | None = None,
        transcript: list[Message] | None = None,
    ) -> T:
        """A `schema` instance. `check` may raise ValueError to reject a valid-looking answer.
        `history` (earlier turns of a conversation) goes between the system and user message;
        `transcript`, when given, gets this exchange appended (the question as sent, the answer)."""
        user = f"{user.strip()}\n\nReply with one JSON object only, no prose and no code fences, of this shape:\n{shape(schema)}"

        def validate(text: str) -> T:
            return _checked(parse(text, schema), check)

        return self._complete(stage, system, user, validate, schema, idea, max_tokens, history, images, temperature,
                              transcript)

    def complete_text(
        self,
        stage: str,
        system: str,
        user: str,
        *,
        idea: str = "",
        max_tokens: int | None = None,
        check: Callable[[str], None] | None = None,
        history: Sequence[Message] = (),
        images: Sequence[FigureImage] = (),
        temperature: float | None = None,
        transcript: list[Message] | None = None,
    ) -> str:
        """Free text (e.g. a LaTeX section), without any surrounding code fence."""

        def validate(text: str) -> str:
            out = strip_fences(text)
            if not out:
                raise OutputInvalid("the answer was empty")
            return _checked(out, check)

        return self._complete(stage, system, user, validate, None, idea, max_tokens, history, images, temperature,
                              transcript)

    def supports_images(self) -> bool:
        """Whether the endpoint takes image parts: probed once with a tiny PNG, then remembered."""
        with self._lock:
            known = self._images
        if known is not None:
            return known
        probe = FigureImage(name="probe", png=PROBE_PNG)
        try:  # through the cache, so that a replayed run probes as the recorded one did
            self.complete_text("vision_probe", "You answer in one word.", "Reply with the word OK.", images=[probe],
                               max_tokens=5, temperature=0.0)
            ok = self._images is not False  # an endpoint that refused the image was answered without it
        except ConfigError as e:
            ok = False
            log.info("the endpoint takes no images (%s): figures are not shown to the model", str(e)[:200])
        except StageFailed as e:
            ok = False
            log.warning("vision probe failed (%s): figures are not shown to the model", e.reason[:200])
        with self._lock:
            self._images = ok
        return ok

    def set_images(self, enabled: bool) -> None:
        """Say whether images are sent (--vision on|off), instead of probing."""
        self._images = enabled

    # ------------------------------------------------------------------ one question, one repair

    def _complete(
        self,
        stage: str,
        system: str,
        user: str,
        validate: Callable[[str], Any],
        schema: type[BaseModel] | None,
        idea: str,
        max_tokens: int | None,
        history: Sequence[Message],
        images: Sequence[FigureImage],
        temperature: float | None,
        transcript: list[Message] | None,
    ) -> Any:
        limit = max_tokens or self.max_tokens
        temp = self.temperature if temperature is None else temperature
        question: Message = {"role": "user", "content": user_content(f"[stage: {stage}]\n{user.strip()}", images)}
        messages: list[Message] = [{"role": "system", "content": system.strip()}, *history, question]
        answer = first_answer = self._ask(stage, messages, schema, idea, limit, temp)
        try:
            result = validate(answer.content)
        except OutputInvalid as first:
            self._record(stage, idea, answer, ok=False, error=f"invalid output: {first}")
            log.info("%s: invalid output (%s); one repair round", stage, first)
            # A small model may ramble until the token limit, even under a grammar: the repair
            # then says so and gets twice the room.
            cut = answer.completion_tokens >= limit
            ask = (f"Your answer was cut off at the limit of {limit} tokens, so it is incomplete ({first}).\n"
                   "Reply again with the complete answer, much shorter: a sentence or two per text field,"
                   if cut else f"Your answer was invalid: {first}.\nReply again with the complete, corrected answer")
            repair = messages + [
                {"role": "assistant", "content": answer.content[:REPAIR_ECHO_CHARS]},
                {"role": "user", "content": ask + (" as one JSON object only." if schema else " only.")},
            ]
            answer = self._ask(stage, repair, schema, idea, min(2 * limit, REPAIR_TOKENS) if cut else limit, temp)
            try:
                result = validate(answer.content)
            except OutputInvalid as second:
                reason = f"invalid output after one repair round: {second}"
                self._record(stage, idea, answer, ok=False, error=reason)
                for bad in (first_answer, answer):
                    self.cache.forget(bad.key)
                raise StageFailed(stage, reason) from None
        self._record(stage, idea, answer, ok=True)
        if transcript is not None:
            transcript += [question, {"role": "assistant", "content": answer.content}]
        return result

    def _ask(
        self, stage: str, messages: list[Message], schema: type[BaseModel] | None, idea: str, max_tokens: int,
        temperature: float,
    ) -> _Answer:
        """The answer text: from the cache, or from the endpoint (then cached)."""
        schema_name = schema.__name__ if schema else None
        key = self.cache.key(request_hash(self.model, messages, schema_name, temperature))
        hit = self.cache.get(key, stage)
        if hit is not None:
            return _Answer(hit.content, hit.prompt_tokens, hit.completion_tokens, cached=True, key=key)
        estimate = self._reserve(stage, messages, max_tokens)
        try:
            resp = self._send_with_retries(stage, idea, messages, max_tokens, schema, temperature)
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
            cached_prompt_tokens=_cached_tokens(usage) if usage else 0,
        )
        self.cache.put(
            CachedAnswer(
                key=key,
                stage=stage,
                model=self.model,
                request={"messages": messages, "schema": schema_name, "temperature": temperature},
                content=content,
                prompt_tokens=answer.prompt_tokens,
                completion_tokens=answer.completion_tokens,
            )
        )
        return answer

    # ------------------------------------------------------------------ budget and ledger

    def _reserve(self, stage: str, messages: list[Message], max_tokens: int) -> float:
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
        hits = answer.cached_prompt_tokens if answer else 0
        cached = bool(answer and answer.cached)
        cost = 0.0 if cached else self.prices.cost(self.model, p, c, hits)
        self.ledger.add(
            Call(
                stage=stage,
                idea=idea,
                model=self.model,
                prompt_tokens=p,
                completion_tokens=c,
                cached_prompt_tokens=hits,
                cost_usd=cost,
                cached=cached,
                ok=ok,
                error=error,
            )
        )

    # ------------------------------------------------------------------ HTTP with retries

    def _send_with_retries(
        self, stage: str, idea: str, messages: list[Message], max_tokens: int, schema: type[BaseModel] | None,
        temperature: float,
    ) -> Any:
        start = time.monotonic()
        stage_end = getattr(self._deadline, "end", None)
        end = [min(start + self.max_total_s, stage_end or float("inf"))]  # shrinks after a timeout
        margin = min(0.5, 0.1 * self.timeout_s)  # no retry that could not get an answer in time

        def out_of_time(state: RetryCallState) -> bool:
            exc = state.outcome.exception() if state.outcome else None
            if isinstance(exc, openai.APITimeoutError):  # a hung endpoint hangs the retry too
                end[0] = min(end[0], start + HUNG_FACTOR * self.timeout_s)
            return time.monotonic() >= end[0] - margin

        retrying = Retrying(
            stop=stop_after_attempt(self.max_attempts) | out_of_time,
            wait=lambda state: min(self._wait(state), max(0.0, end[0] - time.monotonic() - margin)),
            retry=retry_if_exception(_transient),
            before_sleep=lambda state: self._log_retry(stage, state),
            reraise=True,
        )
        if stage_end is not None and time.monotonic() >= stage_end:
            raise StageFailed(stage, "the stage's deadline passed before this call (--llm-stage-deadline)")
        try:
            return retrying(self._attempt, stage, idea, messages, max_tokens, schema, temperature, end)
        except openai.APIStatusError as e:
            if _transient(e):
                raise self._gave_up(stage, start, e) from None
            raise self._fatal(stage, e) from None
        except (openai.APIConnectionError, BadResponse) as e:
            raise self._gave_up(stage, start, e) from None
        except openai.APIError as e:  # anything else the client library may raise
            raise StageFailed(stage, f"unexpected answer from {self._endpoint()}: {str(e)[:300]}") from None

    def _attempt(
        self, stage: str, idea: str, messages: list[Message], max_tokens: int, schema: type[BaseModel] | None,
        temperature: float, end: list[float],
    ) -> Any:
        """One HTTP request; a failure is recorded in the ledger before it propagates."""
        left = end[0] - time.monotonic()
        timeout = max(min(self.timeout_s, 1.0), min(self.timeout_s, left))
        try:
            resp = self._post(stage, messages, max_tokens, schema, temperature, timeout)
            if not isinstance(resp, ChatCompletion):
                raise BadResponse(f"not a chat completion: {str(resp)[:120]!r}")
            return resp
        except (openai.APIError, BadResponse) as e:
            self._record(stage, idea, None, ok=False, error=self._describe(e, timeout))
            raise

    def _response_format(self, schema: type[BaseModel]) -> dict[str, Any] | None:
        if self._format == "json_schema":
            js, strict = response_schema(schema)
            spec: dict[str, Any] = {"name": schema.__name__[:64], "schema": js}
            if strict and self._strict:
                spec["strict"] = True
            return {"type": "json_schema", "json_schema": spec}
        if self._format == "json_object_schema":
            return {"type": "json_object", "schema": response_schema(schema)[0]}
        if self._format == "json_object":
            return {"type": "json_object"}
        return None

    def _post(
        self, stage: str, messages: list[Message], max_tokens: int, schema: type[BaseModel] | None,
        temperature: float, timeout: float,
    ) -> Any:
        """Send once, adapting (once each) to endpoints that reject an optional parameter."""
        while True:
            kwargs: dict[str, Any] = {self._token_param: max_tokens}
            if self._send_temperature:
                kwargs["temperature"] = temperature
            fmt = self._response_format(schema) if schema is not None else None
            if fmt is not None:
                kwargs["response_format"] = fmt
            try:
                return self._openai.chat.completions.create(
                    model=self.model,
                    messages=messages,  # type: ignore[arg-type]
                    extra_headers={STAGE_HEADER: stage},
                    timeout=timeout,
                    **kwargs,
                )
            except openai.APIStatusError as e:  # 400s, and servers that answer a bad option with 422 or 500
                if e.status_code not in (400, 422, 500) or not self._adapt(_message(e).lower(), kwargs, messages):
                    raise

    def _adapt(self, msg: str, sent: dict[str, Any], messages: list[Message]) -> bool:
        """Drop or weaken the option an endpoint complained about; False if nothing to adapt."""
        if _context_hint(msg):
            return False
        fmt = sent.get("response_format")
        if _has_images(messages) and _images_refused(msg) and not (fmt and "response_format" in msg):
            _strip_images(messages)
            self._images = False
            log.warning("the endpoint refused image parts (%s): figures are no longer sent", msg[:120])
            return True
        if fmt and fmt.get("json_schema", {}).get("strict") and "strict" in msg:
            self._strict = False
        elif fmt and any(w in msg for w in ("response_format", "json_schema", "json_object", "schema", "grammar")):
            self._format = FORMATS[FORMATS.index(self._format) + 1]
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
