"""The values a hyper-parameter may take (a finite number in an interval, an integer, one of
a few words) and how a refusal shows a value. Torch-free; ``methods/catalog.py`` uses them.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

# A bool is never a number here (YAML's true / false are no temperature), and a number is
# finite. Values are checked, never converted: a run's spec keeps what the user gave.


def is_number(v) -> bool:  # an int is finite (math.isfinite(10**400) would overflow)
    return isinstance(v, int) and not isinstance(v, bool) or (
        isinstance(v, float) and math.isfinite(v))


@dataclass(frozen=True)
class Real:
    """A finite number in an interval (int or float); ``none``: what null means, if allowed."""

    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    none: str | None = None
    text: str | None = None  # the allowed values in words, when the interval says too little

    def ok(self, v) -> bool:
        if v is None:
            return self.none is not None
        if not is_number(v):
            return False
        if self.low is not None and (v <= self.low if self.low_open else v < self.low):
            return False
        return self.high is None or (v < self.high if self.high_open else v <= self.high)

    def allowed(self, key: str) -> str:
        if self.text:
            return f"{key} {self.text}"
        if self.low is not None and self.high is not None:
            rng = (f"in {'(' if self.low_open else '['}{self.low:g}, {self.high:g}"
                   f"{')' if self.high_open else ']'}")
        elif self.low is not None:
            rng = f"{'>' if self.low_open else '>='} {self.low:g}"
        else:
            rng = f"{'<' if self.high_open else '<='} {self.high:g}"
        return f"{key} {rng} (a number)" + (f" or null ({self.none})" if self.none else "")


@dataclass(frozen=True)
class Int:
    """An integer >= ``low`` (not a bool, not a float); ``none``: what null means, if allowed."""

    low: int = 1
    none: str | None = None

    def ok(self, v) -> bool:
        if v is None:
            return self.none is not None
        return isinstance(v, int) and not isinstance(v, bool) and v >= self.low

    def allowed(self, key: str) -> str:
        return (f"{key} >= {self.low} (an integer)"
                + (f" or null ({self.none})" if self.none else ""))


@dataclass(frozen=True)
class Choice:
    values: tuple

    def ok(self, v) -> bool:
        return isinstance(v, str) and v in self.values

    def allowed(self, key: str) -> str:
        return f"{key} one of {', '.join(self.values)}"



NUMBER_TEXT = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")


def shown(value) -> str:
    """The value as the message shows it, with why a number written as text is text."""
    if isinstance(value, str) and NUMBER_TEXT.fullmatch(value.strip()):
        why = ("YAML reads 1e3 as text: write 1.0e3" if re.search("[eE]", value)
               else "text, not a number")
        return f"{value!r} ({why})"
    return repr(value)
