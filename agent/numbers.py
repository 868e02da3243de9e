"""The number format of papers: `fmt()` is the single rounding rule shared by the writers and
the faithfulness checker, so a number the text prints can be traced to the results."""

from __future__ import annotations

import math
import re
from typing import Any

SIG_DIGITS = 3


def fmt(x: Any, digits: int = SIG_DIGITS, trim: bool = False) -> str:
    """THE number format of papers: integers as-is; floats to `digits` significant digits,
    positional for 1e-3 <= |x| < 1e5 and scientific (`1.23e-5`) outside; `n/a` for None.
    `trim` drops trailing zeros (for set constants such as alpha = 0.05)."""
    if x is None or isinstance(x, bool):
        return "n/a" if x is None else str(x).lower()
    if isinstance(x, int):
        return str(x)
    x = float(x)
    if not math.isfinite(x):
        return "n/a"
    if x == 0:
        return "0"
    a = abs(x)
    if a < 1e-3 or a >= 1e5:
        mantissa, exp = f"{x:.{digits - 1}e}".split("e")
        if trim and "." in mantissa:
            mantissa = mantissa.rstrip("0").rstrip(".")
        return f"{mantissa}e{int(exp)}"
    decimals = max(0, digits - 1 - math.floor(math.log10(a)))
    out = f"{x:.{decimals}f}"
    if trim and "." in out:
        out = out.rstrip("0").rstrip(".")
    return "0" if float(out) == 0 else out


def fmt_value(v: Any) -> str:
    """A knob value as papers and legends show it: numbers through `fmt`, text as-is."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int | float):
        return fmt(v, trim=True)
    return str(v)


def numbers_in(text: str) -> list[float]:
    """Standalone numbers in free text (not digits glued to words such as `S5` or `run_1`)."""
    return [float(m) for m in re.findall(r"(?<![\w.])-?\d+(?:\.\d+)?(?:e-?\d+)?(?![\w])", text)]
