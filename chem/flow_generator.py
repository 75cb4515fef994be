"""The 3D flow-matching generator as a campaign generator (``equivariant_flow``).

Each round it samples molecules conditioned on the campaign's target (the middle of a target
window, or the values given in ``condition``), turns them into molecules
(:func:`chem.generated.build_molecule`) and proposes them by SMILES; samples that are not valid
molecules are proposed too, with the graph as generated, so the validity filters record why they
fail. With ``fine_tune: true`` a copy of the network is trained further on the campaign's
measured molecules before it samples (once there are ``fine_tune_min_labels`` of them, and again
whenever new ones have arrived).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator

from chem.flow_data import molecules_from_smiles
from chem.flow_matching import FlowGenerator, fine_tune_generator
from chem.generated import build_molecule
from chem.molecules import candidate_key
from pipeline.checkpoints import checkpoint_file
from pipeline.protocols import GenerationContext
from pipeline.registry import GENERATORS
from pipeline.types import Candidate

DEFAULT_WEIGHTS = Path(__file__).resolve().parent / "data" / "generator.pt"
"""The shipped checkpoint (``invdes train generator`` made it; see the README for the recipe)."""

TRAIN_COMMAND = "invdes train generator --data ..."


@GENERATORS.register("equivariant_flow")
class EquivariantFlowGenerator:
    """E(3)-equivariant flow matching over atoms, positions and bonds, conditioned on HOMO, LUMO
    and gap (eV) with classifier-free guidance.

    Proposes de novo molecules from the first round on; the graph GA explores around what was
    measured. Configs can list both.
    """

    class Params(BaseModel):
        """Generator settings.

        Attributes:
            weights: generator checkpoint; default: the shipped one.
            steps: integration steps per sample (1 to 1,000).
            guidance: classifier-free guidance weight w (0: conditional prediction only).
            condition: property targets in eV, e.g. ``{gap_ev: 6.0}``; default: the campaign's
                target window's middle (none for maximise/minimise objectives).
            fine_tune: fine-tune a copy on the campaign's measured molecules between rounds.
            fine_tune_min_labels: measured molecules needed before the first fine-tuning.
            fine_tune_epochs: passes over the measured molecules per fine-tuning.
            fine_tune_learning_rate: Adam step size of fine-tuning.
        """

        model_config = ConfigDict(extra="forbid", frozen=True)
        weights: str | None = None
        steps: int = Field(default=50, ge=1, le=1000)
        guidance: float = Field(default=6.0, ge=0.0, le=20.0)
        condition: dict[str, float] | None = None
        fine_tune: bool = False
        fine_tune_min_labels: int = Field(default=8, ge=1)
        fine_tune_epochs: int = Field(default=5, ge=1, le=1000)
        fine_tune_learning_rate: float = Field(default=1e-4, gt=0.0, le=1.0)

        @field_validator("weights")
        @classmethod
        def _weights_exist(cls, value: str | None) -> str | None:
            if value is not None:
                checkpoint_file(value, DEFAULT_WEIGHTS, "generator", TRAIN_COMMAND)
            return value

    def __init__(self, params: Params | None = None) -> None:
        self.params = params or self.Params()
        self.base = FlowGenerator.load(checkpoint_file(self.params.weights, DEFAULT_WEIGHTS,
                                                       "generator", TRAIN_COMMAND))
        unknown = sorted(set(self.params.condition or {}) - set(self.base.properties))
        if unknown:
            raise ValueError(f"condition on {unknown}: the generator knows "
                             f"{', '.join(self.base.properties)}")
        self.generator = self.base
        self._tuned_on: frozenset[str] = frozenset()

    def __repr__(self) -> str:
        p = self.params
        return (f"EquivariantFlowGenerator(steps={p.steps}, guidance={p.guidance}, "
                f"fine_tune={p.fine_tune}, condition={p.condition})")

    def reference_keys(self) -> frozenset[str]:
        """The training molecules (for novelty)."""
        return frozenset(self.base.reference_smiles)

    def condition(self, context: GenerationContext) -> dict[str, float]:
        """The targets a round samples at: ``condition`` if set, else the campaign's: a target
        window's middle, and for the limits the campaign puts on the generator's properties
        (a constraint such as a gap window while the objective is an orbital-location
        descriptor, a threshold) a point inside them (:func:`chem.conditioned.guidance_point`).
        Properties the generator is not trained on are left to the surrogate's selection."""
        if self.params.condition is not None:
            return dict(self.params.condition)
        from chem.conditioned import guidance_point
        from pipeline.conditions import Condition

        known = self.base.properties
        out = {k: v for k, v in context.condition.items() if k in known}
        stats = self.base.conditioning
        for name, (low, high) in context.bounds.items():
            if name not in known or name in out:
                continue
            if low is not None and high is not None:
                out[name] = 0.5 * (low + high)
                continue
            k = stats.properties.index(name)
            bound = (Condition(name, "<=", high) if high is not None
                     else Condition(name, ">=", low))  # type: ignore[arg-type]
            out[name] = guidance_point(bound, float(stats.mean[k]), float(stats.std[k]))
        return out

    def _maybe_fine_tune(self, context: GenerationContext) -> None:
        labelled = [d for d in context.population
                    if any(p in d.values for p in self.base.properties)]
        keys = frozenset(d.key for d in labelled)
        if (not self.params.fine_tune or len(labelled) < self.params.fine_tune_min_labels
                or keys == self._tuned_on):
            return
        values = np.array([[d.values.get(p, np.nan) for p in self.base.properties]
                           for d in labelled], dtype=np.float32)
        data, _ = molecules_from_smiles([d.key for d in labelled], values, seed=context.seed)
        if len(data):
            # always from the shipped network: each round's copy sees all labels so far
            self.generator = fine_tune_generator(
                self.base, data, epochs=self.params.fine_tune_epochs,
                learning_rate=self.params.fine_tune_learning_rate, seed=context.seed)
            self._tuned_on = keys

    def sample(self, n: int, *, context: GenerationContext) -> list[Candidate]:
        """Samples ``n`` molecules; every sample becomes a proposal (invalid ones included)."""
        self._maybe_fine_tune(context)
        condition = self.condition(context)
        samples = self.generator.sample(n, condition or None, steps=self.params.steps,
                                        guidance=self.params.guidance,
                                        seed=context.seed % (2**63))
        origin = "equivariant_flow" + ("+fine_tuned" if self._tuned_on else "")
        out = []
        for i, sample in enumerate(samples):
            built = build_molecule(*sample)
            text = built.smiles if built.valid else (built.raw_smiles or f"invalid:{built.reason}")
            key = candidate_key(text) if built.valid else text
            out.append(Candidate(id=context.candidate_id(i), key=key, representation=text,
                                 round_index=context.round_index, origin=origin))
        return out
