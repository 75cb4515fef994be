"""What a campaign asks for, as a score where higher is better.

Three goals:

* ``maximize``: score = y. A hit is y >= ``threshold`` when one is set.
* ``minimize``: score = -y. A hit is y <= ``threshold`` when one is set.
* ``window``: score = 1 - ((y - c) / h)^2 with c the centre and h the half-width of
  [``low``, ``high``]. The score is 1 at the centre, 0 on the edges and negative outside, so a hit
  is exactly score >= 0, and the acquisition is drawn to the middle of the window rather than to
  its edges.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal, Self

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field, model_validator

if TYPE_CHECKING:  # torch is imported by whoever passes tensors, not by config loading
    import torch


class Objective(BaseModel):
    """One property target of a campaign.

    Attributes:
        property: the property to target, with its unit in the name (``gap_ev``).
        goal: ``maximize``, ``minimize`` or ``window``.
        low: lower edge of the window (``window`` only), in the property's unit.
        high: upper edge of the window (``window`` only), in the property's unit.
        threshold: value that counts as a hit for ``maximize`` / ``minimize``.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    property: str = Field(min_length=1)
    goal: Literal["maximize", "minimize", "window"]
    low: float | None = None
    high: float | None = None
    threshold: float | None = None

    @model_validator(mode="after")
    def _check_goal(self) -> Self:
        if self.goal == "window":
            if self.low is None or self.high is None:
                raise ValueError("goal 'window' needs both 'low' and 'high'")
            if not self.low < self.high:
                raise ValueError(f"window needs low < high, got low={self.low}, high={self.high}")
            if self.threshold is not None:
                raise ValueError("'threshold' is for maximize/minimize; a window uses low/high")
        elif self.low is not None or self.high is not None:
            raise ValueError(f"'low'/'high' are for goal 'window', not {self.goal!r}")
        return self

    def score(self, y: npt.ArrayLike) -> npt.NDArray[np.float64]:
        """Objective score of property values, higher is better; NaN stays NaN.

        Args:
            y: property values, any shape, in the property's unit.

        Returns:
            Scores, same shape as ``y``.
        """
        return np.asarray(self._score(np.asarray(y, dtype=np.float64)), dtype=np.float64)

    def score_torch(self, y: torch.Tensor) -> torch.Tensor:
        """Differentiable :meth:`score` on a tensor of any shape."""
        return self._score(y)

    def _score(self, y: Any) -> Any:
        """The score on a NumPy array or a tensor (the same arithmetic on both)."""
        if self.goal == "maximize":
            return y
        if self.goal == "minimize":
            return -y
        assert self.low is not None and self.high is not None  # checked by the validator
        centre = 0.5 * (self.low + self.high)
        half_width = 0.5 * (self.high - self.low)
        return 1.0 - ((y - centre) / half_width) ** 2

    def is_hit(self, y: npt.ArrayLike) -> npt.NDArray[np.bool_]:
        """Whether each value meets the target (False for NaN)."""
        values = np.asarray(y, dtype=np.float64)
        if self.goal == "window":
            assert self.low is not None and self.high is not None
            return (values >= self.low) & (values <= self.high)
        if self.threshold is None:
            return np.zeros(values.shape, dtype=bool)
        if self.goal == "maximize":
            return values >= self.threshold
        return values <= self.threshold

    def describe(self) -> str:
        """Human-readable target, for example ``gap_ev in [3.0, 4.0]``."""
        if self.goal == "window":
            return f"{self.property} in [{self.low}, {self.high}]"
        tail = f" (hit: {'>=' if self.goal == 'maximize' else '<='} {self.threshold})"
        return f"{self.goal} {self.property}" + (tail if self.threshold is not None else "")


class Constraint(BaseModel):
    """An outcome constraint: a property must stay above ``min`` and/or below ``max``.

    A hit must meet the objective and every constraint (measured by the oracle); the acquisition
    weighs each candidate by its predicted probability of meeting the constraints.

    Attributes:
        property: the constrained property, with its unit in the name (``gap_ev``).
        min: lowest allowed value, in the property's unit.
        max: highest allowed value, in the property's unit.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    property: str = Field(min_length=1)
    min: float | None = None
    max: float | None = None

    @model_validator(mode="after")
    def _check_bounds(self) -> Self:
        if self.min is None and self.max is None:
            raise ValueError(f"constraint on {self.property!r} needs 'min' or 'max'")
        if self.min is not None and self.max is not None and not self.min < self.max:
            raise ValueError(f"constraint needs min < max, got min={self.min}, max={self.max}")
        return self

    def satisfied(self, y: npt.ArrayLike) -> npt.NDArray[np.bool_]:
        """Whether each value meets the constraint (False for NaN)."""
        values = np.asarray(y, dtype=np.float64)
        ok = np.isfinite(values)
        if self.min is not None:
            ok &= values >= self.min
        if self.max is not None:
            ok &= values <= self.max
        return ok

    def slacks(self, y: torch.Tensor) -> list[torch.Tensor]:
        """BoTorch outcome constraints: one tensor per bound, <= 0 where it is met."""
        out = []
        if self.min is not None:
            out.append(self.min - y)
        if self.max is not None:
            out.append(y - self.max)
        return out

    def describe(self) -> str:
        """Human-readable bound, for example ``gap_ev >= 4.0``."""
        parts = []
        if self.min is not None:
            parts.append(f"{self.property} >= {self.min}")
        if self.max is not None:
            parts.append(f"{self.property} <= {self.max}")
        return " and ".join(parts)
