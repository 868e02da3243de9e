"""A loopback OpenAI-compatible server for tests: real HTTP on 127.0.0.1, scripted answers.

    with LoopbackLLM(default=ScriptedBrainAnswers(template)) as srv:
        srv.add("next_run", rate_limited(1), answer_json)   # a 429, then an answer
        brain = LLMBrain(LLMClient("test-model", base_url=srv.url, api_key="sk-test"))

Answers are matched by the `X-AI-Scientist-Stage` header: first the exact stage's queue
(`write_section:results`), then its base (`write_section`), then `default(stage, request)`.
With nothing left the server answers 400 naming the stage, which the client turns into a
ConfigError at once. An answer is text, a dict or pydantic model (sent as JSON), or a
`Fault`: an HTTP error (429 with Retry-After, 500, 401, ...) or a slow reply.

Every request is recorded (headers without Authorization, and the JSON body) in `requests`,
and, if `log_path` is given, appended to that file as JSONL.

Like real servers it may refuse what it does not support: `formats` are the `response_format`
types it accepts (json_schema, json_object; others get a 400), `images=False` refuses image
parts with a 400. It reports `prompt_tokens_details.cached_tokens`, counting the prefix a
request shares with an earlier one as a provider's prefix cache would. `HungLLM` accepts
connections and never answers.
"""

from __future__ import annotations

import json
import os
import re
import socket
import threading
import time
from collections import defaultdict, deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from agent.brains.llm.brain import (
    CitationStep,
    EditAnswer,
    EditList,
    FigureCritiques,
    FigureNotes,
    IdeaReflection,
    MetaReflection,
    NextRunAnswer,
    NoveltyStep,
    ReviewAnswer,
    Revision,
    RunAnswer,
)
from agent.models import FigureCritique, FigureNote, Idea, PlotPlan, Review, ReviewForm
from agent.template.contract import Template

# ------------------------------------------------------------------ faults


@dataclass(frozen=True)
class Fault:
    """A reply other than a plain answer: an HTTP error status, or an answer sent late."""

    status: int = 200
    message: str = ""
    retry_after: float | None = None
    delay_s: float = 0.0
    content: str = "{}"
    raw: str | None = None  # a 200 whose body is this text, not a chat completion


def rate_limited(retry_after: float = 1.0) -> Fault:
    return Fault(429, "Rate limit reached; try again later", retry_after=retry_after)


def server_error(status: int = 500) -> Fault:
    return Fault(status, "The server had an error while processing your request")


def unauthorized() -> Fault:
    return Fault(401, "Incorrect API key provided")


def http_error(status: int, message: str) -> Fault:
    return Fault(status, message)


def slow(delay_s: float, content: str = "{}") -> Fault:
    """Answer `content`, but only after `delay_s` (past the client's timeout, typically)."""
    return Fault(200, delay_s=delay_s, content=content)


def not_json_body(text: str = "<html><body>Bad Gateway</body></html>") -> Fault:
    """A 200 whose body is not a chat completion (a proxy's error page, say)."""
    return Fault(200, raw=text)


def truncated(answer: str | dict | BaseModel) -> str:
    """The first half of an answer's JSON text, as if the model stopped mid-object."""
    text = _text(answer)
    return text[: max(1, len(text) // 2)]


PROSE = "Sure! I think the best next step is to lower the learning rate and train for longer. Let me know!"
MISSING_SEARCH = "THIS LINE IS NOT IN THE FILE = 1"
CRASH_LINE = "raise RuntimeError('injected crash: loss is nan')"


def missing_search_run() -> NextRunAnswer:
    """A planned run whose edit quotes code that does not exist: `apply_edits` refuses it."""
    edit = EditAnswer(path="experiment.py", search=MISSING_SEARCH, replace="THIS LINE = 2")
    return NextRunAnswer(run=RunAnswer(description="edit of code that is not there", edits=[edit]))


def crashing_run(code: str) -> NextRunAnswer:
    """A planned run whose edit makes experiment.py raise right after its first import."""
    return NextRunAnswer(run=crashing_edit(code))


def crashing_edit(code: str) -> RunAnswer:
    """The edit of `crashing_run`, as a run (or a search node's child)."""
    line = next(ln for ln in code.splitlines() if ln.startswith(("import ", "from ")) and code.count(ln) == 1)
    edit = EditAnswer(path="experiment.py", search=line, replace=f"{line}\n{CRASH_LINE}")
    return RunAnswer(description="a run that crashes", edits=[edit])


def uncrash_run() -> RunAnswer:
    """The fix for `crashing_run`: remove the raise."""
    return RunAnswer(description="crash removed", edits=[EditAnswer(search=f"\n{CRASH_LINE}", replace="")])

Answer = str | dict | BaseModel | Fault


def review_shaped(stage: str, form: Review) -> Answer:
    """`form` in the shape each reviewing stage asks for: a reviewer reasons before its form, the
    meta-review's reflection says whether it is done (it is), the vision probe answers."""
    fields = form.model_dump(exclude={"text_cut"})
    return {"review": {"reasoning": "r", "review": fields}, "meta_review_reflect": {"review": fields, "done": True},
            "vision_probe": "OK"}.get(stage, fields)


def _text_of(content: str | list | None) -> str:
    if isinstance(content, list):
        return "\n".join(p.get("text", "") for p in content if p.get("type") == "text")
    return content or ""


def _text(answer: str | dict | list | BaseModel) -> str:
    if isinstance(answer, BaseModel):
        return answer.model_dump_json()
    if isinstance(answer, dict | list):
        return json.dumps(answer)
    return answer


# ------------------------------------------------------------------ the server


@dataclass
class Request:
    """One request as the server saw it (never the Authorization header)."""

    stage: str
    headers: dict[str, str]
    body: dict[str, Any]
    authorized: bool
    at: float = field(default_factory=time.monotonic)
    answer: str | None = None  # the completion's text, once answered

    @property
    def messages(self) -> list[dict[str, str]]:
        return self.body.get("messages", [])

    @property
    def system(self) -> str:
        return _text_of(self.messages[0]["content"]) if self.messages else ""

    @property
    def user(self) -> str:
        """The last user message (the repair message in a repair round)."""
        users = [_text_of(m["content"]) for m in self.messages if m.get("role") == "user"]
        return users[-1] if users else ""

    @property
    def prompt(self) -> str:
        """This call's question: the last user message that names a stage (in a conversation,
        the earlier ones are history; in a repair round, the repair message comes after it)."""
        users = [_text_of(m["content"]) for m in self.messages if m.get("role") == "user"]
        asked = [u for u in users if u.startswith("[stage: ")]
        return asked[-1] if asked else (users[0] if users else "")

    @property
    def images(self) -> list[str]:
        """The data URLs of every image part, in order."""
        return [p["image_url"]["url"] for m in self.messages if isinstance(m.get("content"), list)
                for p in m["content"] if p.get("type") == "image_url"]

    @property
    def response_format(self) -> str | None:
        fmt = self.body.get("response_format")
        return fmt.get("type") if isinstance(fmt, dict) else None


class LoopbackLLM:
    """A scripted `/v1/chat/completions` on 127.0.0.1 with a free port."""

    def __init__(
        self,
        script: dict[str, list[Answer]] | None = None,
        *,
        default: Callable[[str, Request], Answer] | None = None,
        api_key: str | None = None,
        json_mode: bool = True,
        formats: tuple[str, ...] = ("json_schema", "json_object"),
        images: bool = True,
        log_path: Path | None = None,
    ):
        self.default = default
        self.api_key = api_key  # when set, other bearer tokens get a 401
        self.formats = formats if json_mode else ()  # response_format types accepted; others get a 400
        self.images = images  # when False, image parts are refused with a 400
        self.log_path = log_path
        self._prompts: list[str] = []  # what the prefix cache has seen
        self.requests: list[Request] = []
        self._queues: dict[str, deque[Answer]] = defaultdict(deque)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        for stage, answers in (script or {}).items():
            self.add(stage, *answers)

    # -------------------------------------------------------------- control

    @property
    def url(self) -> str:
        assert self._httpd is not None, "server not started"
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}/v1"

    def start(self) -> LoopbackLLM:
        httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        httpd.daemon_threads = True
        httpd.owner = self  # type: ignore[attr-defined]
        self._httpd = httpd
        self._stop.clear()
        self._thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()  # wakes slow replies
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._httpd = self._thread = None

    def __enter__(self) -> LoopbackLLM:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def add(self, stage: str, *answers: Answer) -> None:
        """Queue answers for a stage (or a stage base such as `write_section`)."""
        with self._lock:
            self._queues[stage].extend(answers)

    def pending(self) -> dict[str, int]:
        """Scripted answers not yet consumed, by stage."""
        with self._lock:
            return {k: len(v) for k, v in self._queues.items() if v}

    def stages(self) -> list[str]:
        return [r.stage for r in self.requests]

    def for_stage(self, stage: str) -> list[Request]:
        return [r for r in self.requests if r.stage == stage or r.stage.split(":")[0] == stage]

    # -------------------------------------------------------------- used by the handler

    def _record(self, req: Request) -> None:
        with self._lock:
            self.requests.append(req)
            if self.log_path is not None:
                with self.log_path.open("a") as f:
                    f.write(json.dumps({"stage": req.stage, "headers": req.headers, "body": req.body}) + "\n")

    def _next(self, req: Request) -> Answer | None:
        with self._lock:
            for key in (req.stage, req.stage.split(":")[0]):
                if self._queues.get(key):
                    return self._queues[key].popleft()
        return self.default(req.stage, req) if self.default is not None else None


class _Handler(BaseHTTPRequestHandler):
    server_version = "LoopbackLLM/1"

    def log_message(self, format: str, *args: Any) -> None:  # quiet: pytest shows failures
        pass

    def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
        owner: LoopbackLLM = self.server.owner  # type: ignore[attr-defined]
        if self.path.rstrip("/") not in ("/v1/chat/completions", "/chat/completions"):
            return self._error(404, f"no route {self.path}", "not_found")
        length = int(self.headers.get("Content-Length") or 0)
        try:
            body = json.loads(self.rfile.read(length) or b"{}")
        except json.JSONDecodeError:
            return self._error(400, "request body is not JSON", "invalid_request_error")
        auth = self.headers.get("Authorization", "")
        headers = {k.lower(): v for k, v in self.headers.items() if k.lower() != "authorization"}
        req = Request(
            stage=self.headers.get("X-AI-Scientist-Stage", ""),
            headers=headers,
            body=body,
            authorized=owner.api_key is None or auth == f"Bearer {owner.api_key}",
        )
        owner._record(req)
        if not req.authorized:
            return self._error(401, "Incorrect API key provided", "invalid_api_key")
        fmt = req.response_format
        if fmt is not None and fmt not in owner.formats:
            return self._error(400, f"response_format type {fmt!r} is not supported by this server",
                               "invalid_request_error")
        if req.images and not owner.images:
            return self._error(400, "this model does not support image input", "invalid_request_error")
        answer = owner._next(req)
        if answer is None:
            return self._error(400, f"loopback server: no scripted answer left for stage {req.stage!r}", "no_script")
        if isinstance(answer, Fault):
            if answer.delay_s and owner._stop.wait(answer.delay_s):
                return  # server shutting down
            if answer.raw is not None:
                return self._send_bytes(200, answer.raw.encode(), "text/html")
            if answer.status != 200:
                extra = {"Retry-After": f"{answer.retry_after:g}"} if answer.retry_after is not None else {}
                return self._error(answer.status, answer.message, f"http_{answer.status}", extra)
            answer = answer.content
        req.answer = _text(answer)
        self._completion(body, req.answer)

    def _completion(self, body: dict[str, Any], content: str) -> None:
        owner: LoopbackLLM = self.server.owner  # type: ignore[attr-defined]
        text = "\n".join(f"{m.get('role')}: {_text_of(m.get('content'))}" for m in body.get("messages", []))
        with owner._lock:
            shared = max((len(os.path.commonprefix([text, seen])) for seen in owner._prompts), default=0)
            owner._prompts.append(text)
        prompt = len(text) // 4 + 1
        cached = (shared // 4 // 128) * 128  # providers cache in blocks of 128 tokens
        completion = len(content) // 4 + 1
        self._send(
            200,
            {
                "id": f"chatcmpl-loopback-{time.monotonic_ns()}",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": body.get("model", ""),
                "choices": [
                    {"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}
                ],
                "usage": {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion,
                          "prompt_tokens_details": {"cached_tokens": min(cached, prompt)}},
            },
        )

    def _error(self, status: int, message: str, code: str, headers: dict[str, str] | None = None) -> None:
        self._send(status, {"error": {"message": message, "type": code, "code": code}}, headers)

    def _send(self, status: int, payload: dict[str, Any], headers: dict[str, str] | None = None) -> None:
        self._send_bytes(status, json.dumps(payload).encode(), "application/json", headers)

    def _send_bytes(self, status: int, data: bytes, ctype: str, headers: dict[str, str] | None = None) -> None:
        try:
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(data)))
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (timeout): nothing to tell it


class HungLLM:
    """An endpoint that accepts connections and never answers (a hung server or proxy)."""

    def __init__(self) -> None:
        self._sock = socket.socket()
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(64)
        self._held: list[socket.socket] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._sock.getsockname()[1]}/v1"

    def _accept(self) -> None:
        self._sock.settimeout(0.1)
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self._held.append(conn)  # read nothing, answer nothing

    def __enter__(self) -> HungLLM:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        for c in [*self._held, self._sock]:
            c.close()

    @property
    def connections(self) -> int:
        return len(self._held)


@pytest.fixture
def llm_server() -> Iterator[LoopbackLLM]:
    """A started LoopbackLLM with an empty script; stopped after the test."""
    with LoopbackLLM() as srv:
        yield srv


# ------------------------------------------------------------------ valid answers for every stage


_WORDS = (
    "we study how the training configuration changes the behaviour of the model and report what the "
    "experiments show relative to the baseline under the same data seeds and evaluation protocol while "
    "keeping every other setting fixed so that differences can be attributed to the change under study"
).split()


class ScriptedBrainAnswers:
    """A default answerer: schema-valid JSON (or text) for every Brain stage, built from the
    template and from what the request itself says (run counts, figure names, code lines).

    `runs` is how many runs next_run plans before it answers done; `section_words` sets the
    length of written sections (digit-free, so a faithfulness check has nothing to flag).
    """

    def __init__(self, template: Template, *, runs: int = 2, section_words: int = 60):
        self.template = template
        self.runs = runs
        self.section_words = section_words

    def __call__(self, stage: str, req: Request) -> Answer:
        base, _, section = stage.partition(":")
        handler = getattr(self, f"_{base}", None)
        if handler is None:
            return http_error(400, f"ScriptedBrainAnswers: unknown stage {stage!r}")
        return handler(req, section) if base in ("write_section", "refine_section") else handler(req)

    # ideation

    def idea_for(self, taken: set[str], i: int = 0) -> Idea:
        knobs = self.template.knobs
        while True:
            knob = knobs[i % len(knobs)]
            name = f"{knob.name}_sweep_{i}"[:48]
            i += 1
            if name not in taken:
                break
        return Idea(
            name=name,
            title=f"Does {knob.name} matter for {self.template.name}?",
            hypothesis=f"Changing {knob.name} from its default changes the primary metric.",
            experiment=f"Sweep {knob.name} over its candidate values with all seeds and compare to the baseline.",
            interestingness=6,
            feasibility=8,
            novelty=5,
            knobs=[knob.name],
        )

    def _ideas(self, req: Request) -> Answer:
        return self.idea_for(_archive_names(req.prompt) | _proposed_names(req.prompt))

    def _ideas_reflect(self, req: Request) -> Answer:
        """Round 1 sharpens the hypothesis; round 2 says it is done."""
        last = json.loads(_last_answer(req))
        idea = Idea.model_validate(last.get("idea", last))
        rnd = int(_find(r"Reflection round (\d+)", req.prompt) or 1)
        if rnd == 1:
            idea = idea.model_copy(update={"hypothesis": idea.hypothesis.rstrip(".") + ", beyond seed noise."})
        return IdeaReflection(critique=f"Round {rnd}: the hypothesis is falsifiable.", idea=idea, done=rnd >= 2)

    def _novelty(self, req: Request) -> Answer:
        """Round 1 searches; then it decides from what it saw."""
        last = "only round" in req.prompt or "last round" in req.prompt or "decide now (" in req.user
        if "Results for" not in req.prompt and not last:
            return NoveltyStep(thinking="Nothing searched yet.", decision="search", query="knob sweep baseline")
        numbers = [int(n) for n in re.findall(r"(?m)^\[(\d+)\] ", req.prompt)]
        return NoveltyStep(thinking="The hits vary other settings.", decision="novel",
                           reason="No hit tests this hypothesis in this setting.", papers=numbers[:1])

    def _vision_probe(self, req: Request) -> Answer:
        return "OK"

    # experiments

    def run_for(self, index: int, code: str) -> RunAnswer:
        """Run `index` (1-based): the next candidate of the next knob, as a flag or a code edit."""
        knob = self.template.knobs[(index - 1) % len(self.template.knobs)]
        cands = knob.candidates() or [knob.default]
        value = cands[(index - 1) // len(self.template.knobs) % len(cands)]
        if knob.flag:
            return RunAnswer(description=f"{knob.name} = {value}", args={knob.flag: value})
        line = _find(rf"(?m)^({re.escape(knob.constant or '')}\s*=.*)$", code)
        if not line:
            return RunAnswer(description=f"{knob.name} unchanged (constant not found)")
        return RunAnswer(
            description=f"{knob.name} = {value}",
            edits=[EditAnswer(path="experiment.py", search=line, replace=f"{knob.constant} = {value!r}")],
        )

    def _next_run(self, req: Request) -> Answer:
        done = int(_find(r"RUNS SO FAR \((\d+) of", req.prompt) or 0)
        if done >= self.runs:
            return NextRunAnswer(done=True, reason="The planned sweep is complete.")
        return NextRunAnswer(run=self.run_for(done + 1, _code(req.prompt)))

    def _expand(self, req: Request) -> Answer:
        """A child of the search node, by kind: the next knob value (as run_for plans it) for
        tune, draft and improve; the failed node's crash removed for debug; the first flag
        knob back at its default for ablate."""
        kind = req.stage.partition(":")[2]
        code = _code(req.prompt)
        if kind == "debug":
            return uncrash_run() if CRASH_LINE in code else RunAnswer(description="the same run again")
        if kind == "ablate":
            knob = next(k for k in self.template.knobs if k.flag)
            return RunAnswer(description=f"{knob.name} back to its default", args={knob.flag: knob.default})
        return self.run_for(int(_find(r"TREE \((\d+) nodes", req.prompt) or 1), code)

    def _fix_run(self, req: Request) -> Answer:
        """The failed run with its flags and without its edits: always applicable."""
        planned = json.loads(_find(r"It was planned as:\n(\{.*\})", req.prompt) or "{}")
        return RunAnswer(description=planned.get("description", "retry") + " (fixed)", args=planned.get("args", {}))

    def _run_notes(self, req: Request) -> Answer:
        name = _find(r"(?m)^(run_\d+|n\d+)\b[^\n]* finished:", req.prompt) or "the run"
        return f"In {name} we changed one setting against the baseline; the results above are the evidence."

    def _memory_summary(self, req: Request) -> Answer:
        return "Earlier runs swept one knob; every edit is recorded in the turns that follow."

    # figures and writing

    def _plot_plan(self, req: Request) -> Answer:
        ok = re.findall(r"(?m)^- (run_\d+): (?!.*FAILED)", req.prompt)
        return PlotPlan(labels={r: ("Baseline" if r == "run_0" else r.replace("_", " ")) for r in ok})

    def _fix_plot(self, req: Request) -> Answer:
        return EditList(edits=[])

    def _critique_figures(self, req: Request) -> Answer:
        files = re.findall(r"(?m)^- ([\w.-]+\.png): ", req.prompt)
        return FigureCritiques(figures=[FigureCritique(file=f, ok=True) for f in files])

    def _describe_figures(self, req: Request) -> Answer:
        files = [f.strip() for f in (_find(r"FIGURES: (.*)", req.prompt) or "").split(",") if f.strip()]
        return FigureNotes(
            figures=[
                FigureNote(file=f, caption=f"Runs compared in {f}.", description="Each curve is one labelled run.")
                for f in files
            ]
        )

    def section_text(self, section: str, figures: list[str]) -> str:
        words = [_WORDS[i % len(_WORDS)] for i in range(self.section_words)]
        text = f"In this {section.replace('_', ' ')} section " + " ".join(words) + "."
        if section == "results" and figures:
            stem = figures[0].rsplit(".", 1)[0]
            text += (
                "\n\n\\begin{figure}[t]\n\\centering\n"
                f"\\includegraphics[width=0.9\\linewidth]{{{figures[0]}}}\n"
                f"\\caption{{Comparison of the runs.}}\n\\label{{fig:{stem}}}\n\\end{{figure}}\n"
                f"Figure~\\ref{{fig:{stem}}} compares the runs."
            )
        return text

    def _write_section(self, req: Request, section: str) -> Answer:
        if section == "title":
            return f"A Study of {self.template.knobs[0].name.replace('_', ' ').title()} in {self.template.title}"
        figures = re.findall(r"(?m)^- ([\w.-]+\.png): ", req.prompt)
        return self.section_text(section, figures)

    def _refine_section(self, req: Request, section: str) -> Answer:
        return _last_answer(req)  # the draft stands

    def _citations(self, req: Request) -> Answer:
        return CitationStep(done=True)

    def _polish(self, req: Request) -> Answer:
        return Revision(sections={})

    def _fix_latex(self, req: Request) -> Answer:
        return EditList(edits=[])

    def _fix_numbers(self, req: Request) -> Answer:
        return self.section_text(_find(r"SECTION: (\w+)", req.prompt) or "results", [])

    def review(self, overall: int = 5) -> Review:
        return Review.model_validate(self.form(overall).model_dump())

    def form(self, overall: int = 5) -> ReviewForm:
        return ReviewForm(
            summary="The paper sweeps one knob of the template and compares against the baseline.",
            strengths=["Clear question", "Multiple seeds with error bars"],
            weaknesses=["Small scale only"],
            originality=2,
            quality=3,
            clarity=3,
            significance=2,
            questions=["Does the effect hold at full scale?"],
            limitations=["Smoke-scale runs"],
            ethical_concerns=False,
            soundness=3,
            presentation=3,
            contribution=2,
            overall=overall,
            confidence=3,
            decision="Accept" if overall >= 6 else "Reject",
        )

    def review_answer(self, overall: int = 5) -> ReviewAnswer:
        """A reviewer's answer: its reasoning, then the form."""
        return ReviewAnswer(reasoning="The claims are tested against the baseline on every seed.",
                            review=self.form(overall))

    def _review(self, req: Request) -> Answer:
        return self.review_answer()

    def _meta_review(self, req: Request) -> Answer:
        return self.form()

    def _meta_review_reflect(self, req: Request) -> Answer:
        return MetaReflection(review=self.form(), done=True)

    def _revise(self, req: Request) -> Answer:
        names = re.findall(r"(?m)^### (\w+)$", req.prompt)
        target = "conclusion" if "conclusion" in names else (names[-1] if names else "conclusion")
        return Revision(sections={target: self.section_text(target, []) + " We now state the limitation of scale."})


def _find(pattern: str, text: str) -> str | None:
    m = re.search(pattern, text)
    return m.group(1) if m else None


def _last_answer(req: Request) -> str:
    """The last assistant message of the conversation (the answer a reflection reconsiders)."""
    said = [_text_of(m["content"]) for m in req.messages if m.get("role") == "assistant"]
    return said[-1] if said else "{}"


def _proposed_names(prompt: str) -> set[str]:
    block = prompt.split("IDEAS ALREADY PROPOSED", 1)[-1] if "IDEAS ALREADY PROPOSED" in prompt else ""
    return set(re.findall(r"(?m)^- ([a-z0-9_]+): ", block))


def _archive_names(prompt: str) -> set[str]:
    """Names the archive and the failed ideas list, in full or in the '(+N more: ...)' line."""
    names: set[str] = set()
    for head in ("ARCHIVE", "FAILED IDEAS"):
        block = prompt.split(head, 1)[-1].split("\n\n", 1)[0] if head in prompt else ""
        names |= set(re.findall(r"(?m)^- ([a-z0-9_]+): ", block))
        more = re.search(r"lower scored: ([a-z0-9_, ]+)\)", block)
        names |= {n.strip() for n in more.group(1).split(",")} if more else set()
    return names


def _code(prompt: str) -> str:
    m = re.search(r"```python\n(.*?)```", prompt, flags=re.DOTALL)
    return m.group(1) if m else ""


# ------------------------------------------------------------------ a tiny template for tests

TOY_EXPERIMENT = '''"""Toy experiment: a noisy quadratic in log10(lr), for LLM-brain tests.

    python experiment.py --out_dir run_1 --scale smoke --seeds 0,1 --datasets easy --lr 0.01
"""
import argparse, json, math, os, random

WIDTH = 16

p = argparse.ArgumentParser()
p.add_argument("--out_dir", required=True)
p.add_argument("--scale", default="smoke")
p.add_argument("--seeds", default="0,1")
p.add_argument("--datasets", default="easy")
p.add_argument("--lr", type=float, default=0.001)
a = p.parse_args()
os.makedirs(a.out_dir, exist_ok=True)
info = {}
for ds in a.datasets.split(","):
    losses = []
    for s in [int(x) for x in a.seeds.split(",")]:
        rng = random.Random(s)
        losses.append((math.log10(a.lr) + 2.5) ** 2 + 1.0 / WIDTH + 0.01 * rng.random())
    m = sum(losses) / len(losses)
    se = (sum((x - m) ** 2 for x in losses) / (len(losses) - 1)) ** 0.5 / len(losses) ** 0.5
    info[ds] = {"means": {"loss": m}, "stderrs": {"loss": se}, "per_seed": {"loss": losses}}
json.dump(info, open(os.path.join(a.out_dir, "final_info.json"), "w"))
'''

TOY_TOML = '''title = "Toy quadratic"
description = "A noisy quadratic in log learning rate; loss is minimised near lr = 10^-2.5."
datasets = ["easy"]
seeds = [0, 1]

[[metrics]]
name = "loss"
direction = "minimize"
primary = true
description = "final loss"

[[figures]]
file = "loss.png"
shows = "the final loss of each run, with standard-error bars"
metric = "loss"

[scale.smoke]
timeout_s = 60

[scale.full]
timeout_s = 600

[[knobs]]
name = "lr"
type = "float"
range = [1e-4, 1e-1]
log = true
default = 0.001
flag = "--lr"
description = "learning rate"

[[knobs]]
name = "width"
type = "int"
values = [8, 16, 32]
default = 16
constant = "WIDTH"
description = "hidden width"
'''

TOY_TEX = r"""\documentclass{article}
\usepackage{graphicx}
\usepackage[numbers]{natbib}
\title{
%%TITLE%%
}
\author{
%%BRAIN%%
}
\begin{document}
\maketitle
\begin{abstract}
%%ABSTRACT%%
\end{abstract}
\section{Introduction}
%%INTRODUCTION%%
\section{Related Work}
%%RELATED_WORK%%
\section{Method}
%%METHOD%%
\section{Experimental Setup}
%%EXPERIMENTAL_SETUP%%
\section{Results}
%%RESULTS%%
\section{Conclusion}
%%CONCLUSION%%
\bibliographystyle{plainnat}
\bibliography{references}
\end{document}
"""


def write_toy_template(root: Path, name: str = "toy") -> Path:
    """Write a minimal valid template folder under `root`; return its path."""
    d = root / name
    (d / "latex").mkdir(parents=True, exist_ok=True)
    (d / "template.toml").write_text(TOY_TOML)
    (d / "experiment.py").write_text(TOY_EXPERIMENT)
    (d / "plot.py").write_text('"""Plots nothing: the toy template has no figures."""\n')
    seed = Idea(
        name="lr_sweep",
        title="Learning rate sweep",
        hypothesis="A larger learning rate lowers the loss.",
        experiment="Try lr in 1e-3, 3e-3, 1e-2.",
        interestingness=3,
        feasibility=9,
        novelty=2,
        knobs=["lr"],
    )
    (d / "seed_ideas.json").write_text(json.dumps([seed.model_dump()]))
    (d / "latex" / "template.tex").write_text(TOY_TEX)
    (d / "latex" / "references.bib").write_text("@article{ho2020ddpm, title={DDPM}, author={Ho}, year={2020}}\n")
    (d / "README.md").write_text("Toy template for tests.\n")
    return d
