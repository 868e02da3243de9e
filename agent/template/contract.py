"""Research templates: load and validate `templates/<name>/`, and check `final_info.json`.

The contract is documented for template authors in docs/templates.md; this module is its
executable form. Every problem is raised as a `TemplateError` naming the file and field.
"""

from __future__ import annotations

import hashlib
import math
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, ValidationError, model_validator

from agent.errors import TemplateError

REQUIRED_FILES = (
    "template.toml",
    "experiment.py",
    "plot.py",
    "seed_ideas.json",
    "latex/template.tex",
    "latex/references.bib",
    "README.md",
)
# The writeup fills these placeholders in latex/template.tex, one per paper part.
SECTIONS = (
    "abstract",
    "introduction",
    "related_work",
    "method",
    "experimental_setup",
    "results",
    "conclusion",
)
PLACEHOLDERS = ("TITLE", "BRAIN", *(s.upper() for s in SECTIONS))
FIGURES_HINT = ('declare every PNG plot.py writes: [[figures]] with file = "name.png" and shows = "what it '
                'shows" (docs/templates.md, "Figures")')


def placeholder(name: str) -> str:
    return f"%%{name.upper()}%%"


Direction = Literal["minimize", "maximize", "none"]


class Metric(BaseModel):
    """One number `experiment.py` reports per dataset."""

    name: str
    direction: Direction
    """Which way is better; `none` for a quantity that is reported but never judged (a KL term,
    a wall-clock time on shared hardware)."""
    primary: bool = False
    description: str = ""
    unit: str = ""
    """Printed with the metric in papers (setup section, table and figure captions): `nats`, `s`."""
    wall_clock: bool = False
    """A wall-clock time. It is judged only when no run it compares shared the machine with another
    (`--parallel`, `--parallel-runs`, Ray); otherwise it measures the load too, and is reported only."""


class Figure(BaseModel):
    """One PNG that `plot.py` writes, and what it shows: its caption, and the text that cites
    it, are written from this declaration and the numbers, never guessed from the file name."""

    file: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*\.png$")
    shows: str = Field(min_length=3)
    """What the figure shows, as a noun phrase: `reconstruction error against KL for each setting`."""
    metric: str | None = None
    """The declared metric it plots, if it plots one; the text then cites that metric's statistics."""
    runs: Literal["all", "baseline"] | int = "all"
    """Which runs it draws: every labelled run, the baseline alone, or the first N labelled runs."""

    @model_validator(mode="after")
    def _runs(self) -> Figure:
        if isinstance(self.runs, int) and self.runs < 1:
            raise ValueError("`runs` must be \"all\", \"baseline\" or a positive number of runs")
        return self


class Knob(BaseModel):
    """One declared dimension of the search space, and how it reaches `experiment.py`."""

    name: str
    type: Literal["choice", "int", "float", "bool"]
    description: str = ""
    values: list[Any] | None = None
    """Discrete values to try. Either `values` or `range` is required."""
    range: tuple[float, float] | None = None
    """Inclusive [low, high] for int/float knobs."""
    log: bool = False
    """Whether `range` is explored on a log scale."""
    default: Any
    flag: str | None = None
    """Command-line flag of experiment.py, e.g. `--lr`."""
    constant: str | None = None
    """Module-level constant in experiment.py, e.g. `BETA_SCHEDULE`, changed by a code edit."""

    @model_validator(mode="after")
    def _one_way_in(self) -> Knob:
        if (self.flag is None) == (self.constant is None):
            raise ValueError("set exactly one of `flag` or `constant`")
        if self.values is None and self.range is None:
            raise ValueError("set `values` or `range`")
        if self.range is not None:
            if self.type not in ("int", "float"):
                raise ValueError("`range` needs type int or float")
            low, high = self.range
            if not low < high:
                raise ValueError("`range` must be [low, high] with low < high")
            if self.log and low <= 0:
                raise ValueError("a log `range` must be positive")
        if self.values is not None and len(self.values) < 2:
            raise ValueError("`values` needs at least two entries")
        if self.flag is not None and not self.flag.startswith("--"):
            raise ValueError("`flag` must start with --")
        return self

    def candidates(self, n: int = 3) -> list[Any]:
        """Values worth testing, excluding the default: `values`, or `n` points of `range`."""
        if self.values is not None:
            pool = list(self.values)
        else:
            low, high = self.range  # type: ignore[misc]
            if self.log:
                pool = [math.exp(math.log(low) + i * (math.log(high) - math.log(low)) / (n - 1)) for i in range(n)]
            else:
                pool = [low + i * (high - low) / (n - 1) for i in range(n)]
            if self.type == "int":
                pool = sorted({int(round(v)) for v in pool})
            else:
                pool = [float(f"{v:.3g}") for v in pool]
        return [v for v in pool if v != self.default]


class ScaleProfile(BaseModel):
    """How big one `experiment.py` call is, and what it may use."""

    description: str = ""
    """What this scale runs (sizes, steps, hardware); the paper's setup section quotes it."""
    timeout_s: int = Field(gt=0)
    cpus: int = Field(default=1, ge=1)
    gpus: int = Field(default=0, ge=0)
    memory_mb: int = Field(default=4096, ge=256)
    seeds: list[int] | None = None
    """Overrides the template's seeds at this scale."""
    datasets: list[str] | None = None
    """Overrides (a subset of) the template's datasets at this scale."""


class Template(BaseModel):
    """A parsed, validated `template.toml`, plus where it lives."""

    name: str
    path: Path
    title: str
    description: str
    datasets: list[str] = Field(min_length=1)
    seeds: list[int] = Field(min_length=2)
    metrics: list[Metric] = Field(min_length=1)
    scale: dict[str, ScaleProfile]
    knobs: list[Knob] = Field(min_length=1)
    figures: list[Figure] = Field(min_length=1)
    """Every PNG `plot.py` writes; `template check` fails on a missing or an undeclared one."""
    editable: list[str] = Field(
        default_factory=list,
        description="Files besides experiment.py and plot.py that a brain may edit (plain relative paths).",
    )

    @model_validator(mode="after")
    def _consistent(self) -> Template:
        for rel in self.editable:
            parts = Path(rel).parts
            if not parts or Path(rel).is_absolute() or any(p.startswith(".") for p in parts):
                raise ValueError(f"editable: {rel!r} must be a plain relative path, not a dot-file")
        primaries = [m for m in self.metrics if m.primary]
        if len(primaries) != 1:
            raise ValueError(f"exactly one metric must be primary, found {len(primaries)}")
        if primaries[0].direction == "none":
            raise ValueError(f"the primary metric {primaries[0].name} needs direction minimize or maximize")
        if primaries[0].wall_clock:  # it must always be judged, and a time shared with other runs cannot be
            raise ValueError(f"the primary metric {primaries[0].name} cannot be wall_clock: make a time a "
                             "secondary metric, or primary without wall_clock and run with --parallel 1")
        metric_names = [m.name for m in self.metrics]
        if len(set(metric_names)) != len(metric_names):
            raise ValueError("metric names must be unique")
        files = [f.file for f in self.figures]
        if len(set(files)) != len(files):
            raise ValueError("figure files must be unique")
        for fig in self.figures:
            if fig.metric is not None and fig.metric not in metric_names:
                raise ValueError(f"figure {fig.file} names unknown metric {fig.metric!r}; metrics: {metric_names}")
        for required in ("smoke", "full"):
            if required not in self.scale:
                raise ValueError(f"missing scale profile [scale.{required}]")
        for name, prof in self.scale.items():
            unknown = set(prof.datasets or []) - set(self.datasets)
            if unknown:
                raise ValueError(f"scale.{name}.datasets names unknown datasets {sorted(unknown)}")
        names = [k.name for k in self.knobs]
        if len(set(names)) != len(names):
            raise ValueError("knob names must be unique")
        return self

    @property
    def editable_files(self) -> list[str]:
        """What a brain may edit in an idea's work folder: never a dot-file, never git metadata."""
        return ["experiment.py", "plot.py", *self.editable]

    @property
    def primary(self) -> Metric:
        return next(m for m in self.metrics if m.primary)

    def metric(self, name: str) -> Metric:
        return next(m for m in self.metrics if m.name == name)

    def figure(self, file: str) -> Figure | None:
        return next((f for f in self.figures if f.file == file), None)

    def knob(self, name: str) -> Knob:
        for k in self.knobs:
            if k.name == name:
                return k
        raise KeyError(f"template {self.name} has no knob {name!r}; knobs: {[k.name for k in self.knobs]}")

    def profile(self, scale: str) -> ScaleProfile:
        if scale not in self.scale:
            raise TemplateError(str(self.path / "template.toml"), "scale", f"no profile {scale!r}")
        return self.scale[scale]

    def seeds_for(self, scale: str) -> list[int]:
        return self.profile(scale).seeds or self.seeds

    def datasets_for(self, scale: str) -> list[str]:
        return self.profile(scale).datasets or self.datasets

    def experiment_args(self, scale: str, seeds: list[int] | None = None) -> list[str]:
        """The orchestrator's flags for one call: scale, seeds (the scale's, unless the search
        screens on fewer or confirms on fresh ones) and datasets (never knobs)."""
        return [
            "--scale", scale,
            "--seeds", ",".join(map(str, seeds or self.seeds_for(scale))),
            "--datasets", ",".join(self.datasets_for(scale)),
        ]

    def content_hash(self) -> str:
        """Hash of every file in the template, to key cached baselines."""
        h = hashlib.sha256()
        for f in sorted(p for p in self.path.rglob("*") if p.is_file() and "__pycache__" not in p.parts):
            h.update(str(f.relative_to(self.path)).encode())
            h.update(f.read_bytes())
        return h.hexdigest()[:16]


def templates_root() -> Path:
    """`templates/` of the project (or of the installed package's checkout)."""
    import os

    env = os.environ.get("AI_SCIENTIST_TEMPLATES")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[2] / "templates"


def list_templates(root: Path | None = None) -> list[str]:
    root = root or templates_root()
    return sorted(p.name for p in root.iterdir() if (p / "template.toml").is_file()) if root.is_dir() else []


def resolve(name_or_path: str, root: Path | None = None) -> Path:
    """A template name under `templates/`, or a path to a template folder."""
    p = Path(name_or_path)
    if (p / "template.toml").is_file():
        return p.resolve()
    root = root or templates_root()
    if (root / name_or_path / "template.toml").is_file():
        return (root / name_or_path).resolve()
    known = ", ".join(list_templates(root)) or "none"
    raise TemplateError(name_or_path, "name", f"no such template (known: {known})")


def load_template(name_or_path: str | Path, root: Path | None = None) -> Template:
    """Parse and validate a template; raise `TemplateError` naming the file and field."""
    path = resolve(str(name_or_path), root)
    toml_file = path / "template.toml"
    for rel in REQUIRED_FILES:
        if not (path / rel).is_file():
            raise TemplateError(str(path / rel), "file", "required file is missing")
    try:
        raw = tomllib.loads(toml_file.read_text())
    except tomllib.TOMLDecodeError as e:
        raise TemplateError(str(toml_file), "syntax", str(e)) from None
    try:
        tpl = Template(name=path.name, path=path, **raw)
    except ValidationError as e:
        err = e.errors()[0]
        field = ".".join(str(x) for x in err["loc"]) or "template"
        msg = err["msg"].removeprefix("Value error, ")
        if field == "figures" and err["type"] in ("missing", "too_short"):
            msg = FIGURES_HINT
        raise TemplateError(str(toml_file), field, msg) from None
    _check_latex(tpl)
    return tpl


def _check_latex(tpl: Template) -> None:
    tex_file = tpl.path / "latex" / "template.tex"
    tex = tex_file.read_text()
    missing = [p for p in PLACEHOLDERS if placeholder(p) not in tex]
    if missing:
        raise TemplateError(str(tex_file), "placeholders", f"missing {', '.join(placeholder(p) for p in missing)}")


def check_final_info(info: Any, tpl: Template, scale: str, where: str = "final_info.json",
                     datasets: list[str] | None = None, n_seeds: int | None = None) -> dict:
    """Validate one run's `final_info.json` against the template; return it unchanged.

    `datasets` and `n_seeds` default to the scale's; `template check` passes others when it
    runs the datasets the scale leaves out."""
    if not isinstance(info, dict):
        raise TemplateError(where, "top level", "must be an object keyed by dataset")
    expected = set(datasets or tpl.datasets_for(scale))
    if set(info) != expected:
        raise TemplateError(where, "datasets", f"expected {sorted(expected)}, got {sorted(info)}")
    n_seeds = n_seeds or len(tpl.seeds_for(scale))
    for ds, block in info.items():
        if not isinstance(block, dict):
            raise TemplateError(where, ds, "must be an object with means, stderrs, per_seed")
        for part in ("means", "stderrs", "per_seed"):
            if not isinstance(block.get(part), dict):
                raise TemplateError(where, f"{ds}.{part}", "missing or not an object")
        for m in tpl.metrics:
            for part in ("means", "stderrs", "per_seed"):
                if m.name not in block[part]:
                    raise TemplateError(where, f"{ds}.{part}.{m.name}",
                                        "missing: experiment.py must report every metric of template.toml "
                                        "for every dataset")
            for part in ("means", "stderrs"):
                v = block[part][m.name]
                if not isinstance(v, int | float) or isinstance(v, bool) or not math.isfinite(v):
                    raise TemplateError(where, f"{ds}.{part}.{m.name}", f"must be a finite number, got {v!r}")
            seeds = block["per_seed"][m.name]
            if not isinstance(seeds, list) or len(seeds) != n_seeds:
                raise TemplateError(where, f"{ds}.per_seed.{m.name}", f"must list {n_seeds} values, one per seed")
            if not all(isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x) for x in seeds):
                raise TemplateError(where, f"{ds}.per_seed.{m.name}", "values must be finite numbers")
    return info
