"""Targets a generator is asked for: ``NAME=VALUE``, ``NAME<=VALUE`` or ``NAME>=VALUE``.

Both generators (molecules and crystals) read their ``--condition`` options with
:func:`parse_condition`, aim guidance with a point inside a window, and rank their samples by
how well a property model's prediction meets the conditions (:func:`selection_score`).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

_CONDITION = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(<=|>=|=)\s*([-+0-9.eE]+)\s*$")

PROBABILITY_FLOOR = 1e-12
"""Smallest probability of meeting a window condition that a score uses (so that -log is
finite)."""


@dataclass(frozen=True)
class Condition:
    """One condition: ``name op value`` with op one of ``=``, ``<=``, ``>=``."""

    name: str
    op: str
    value: float

    def __str__(self) -> str:
        return f"{self.name}{self.op}{self.value:g}"

    def violation(self, x: float) -> float:
        """How far ``x`` is outside the condition (0 inside; for ``=``, the distance)."""
        if self.op == "<=":
            return max(0.0, x - self.value)
        if self.op == ">=":
            return max(0.0, self.value - x)
        return abs(x - self.value)

    def met(self, x: float, tolerance: float = 0.0) -> bool:
        """Whether ``x`` meets the condition (``=``: within ``tolerance``)."""
        return self.violation(x) <= tolerance

    def probability(self, mean: float, std: float) -> float:
        """Probability that a Gaussian prediction meets a ``<=`` or ``>=`` condition.

        Raises:
            ValueError: for ``=`` (a point has no probability).
        """
        if self.op == "=":
            raise ValueError(f"{self}: a point target has no probability of being met")
        if not std > 0:
            return float(self.met(mean))
        z = (self.value - mean) / std
        below = 0.5 * math.erfc(-z / math.sqrt(2.0))
        return below if self.op == "<=" else 1.0 - below


def parse_condition(text: str, properties: Sequence[str]) -> Condition:
    """Parses ``NAME=VALUE``, ``NAME<=VALUE`` or ``NAME>=VALUE``.

    Raises:
        ValueError: malformed, or a property not in ``properties``.
    """
    m = _CONDITION.match(text)
    if m is None:
        raise ValueError(f"condition {text!r}: expected NAME=VALUE, NAME<=VALUE or NAME>=VALUE")
    name, op, value = m.group(1), m.group(2), m.group(3)
    if name not in properties:
        raise ValueError(f"condition {text!r}: unknown property {name!r}; known: "
                         f"{', '.join(properties)}")
    try:
        number = float(value)
    except ValueError:
        raise ValueError(f"condition {text!r}: {value!r} is not a number") from None
    return Condition(name, op, number)


def selection_score(conditions: Sequence[Condition], mean: Mapping[str, float],
                    std: Mapping[str, float], scale: Mapping[str, float]) -> float:
    """How badly a prediction meets the conditions (lower is better; 0 is perfect).

    A point target adds its distance in units of the model's typical error for that property
    (``scale``: its held-out mean absolute error); a window (``<=``, ``>=``) adds -log of the
    predicted probability of meeting it, so that samples predicted well inside with little
    uncertainty come first. A condition without a prediction (NaN) makes the score infinite.
    """
    score = 0.0
    for c in conditions:
        m, s = mean.get(c.name, math.nan), std.get(c.name, math.nan)
        if not math.isfinite(m):
            return math.inf
        if c.op == "=":
            score += abs(m - c.value) / max(scale.get(c.name, 1.0), 1e-9)
        else:
            p = c.probability(m, s if math.isfinite(s) else 0.0)
            score += -math.log(max(p, PROBABILITY_FLOOR))
    return score
