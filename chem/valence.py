"""Valence-constrained decoding of a generated molecule's atom classes and bonds.

At the end of sampling the generator gives, for every heavy atom, a probability over atom classes
(element + hydrogen count, :data:`chem.flow_model.ATOM_CLASSES`) and, for every atom pair, a
probability over bond orders (none, single, double, triple). Reading each one off by its argmax
decides them independently, so an atom can end up with one bond too many or too few even when
the network is nearly sure of everything else. This module decodes them jointly instead: the
most probable graph under the model's own probabilities in which every atom has its element's
valence (C 4, N 3, O 2, F 1: bond orders plus hydrogens) and that is one connected molecule,
found exactly as a small mixed-integer program (SciPy's HiGHS):

    maximise   sum_i log p_i(class_i) + sum_{i<j} log p_ij(order_ij)
    subject to sum_j order_ij + hydrogens(class_i) = valence(element(class_i))   for every atom i
               the bonds connect all atoms  (cuts added while a solution falls apart)

Decoding is a read-out of the model, not a repair that can invent chemistry: it may only pick
what the model gives a real probability. A graph whose log-probability falls more than
``max_log_loss`` (nats) below the argmax graph's is rejected, and the sample stays invalid. With
the default of 2 nats, each accepted change replaces a choice by one the model gives at least
about e^-2 = 0.14 times its probability (or a few smaller changes of the same total).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy.optimize import Bounds, LinearConstraint, milp
from scipy.sparse import coo_array, csr_array, vstack
from scipy.sparse.csgraph import connected_components

from chem.flow_model import ATOM_CLASSES, BOND_TYPES
from chem.generated import ALLOWED_VALENCES

_ORDERS = np.arange(len(BOND_TYPES))  # bond order of each bond class: 0 none, 1, 2, 3
# bond orders each class needs: its element's (one) stable valence less its hydrogens
_FREE_BONDS = np.array([ALLOWED_VALENCES[e][0] - h for e, h in ATOM_CLASSES])
_FLOOR = 1e-9  # probabilities below this count as this (log = -20.7)


@dataclass(frozen=True)
class Decoded:
    """A decoded graph.

    Attributes:
        types: (n,) atom classes, indices into :data:`chem.flow_model.ATOM_CLASSES`.
        bonds: (n, n) symmetric bond orders.
        log_loss: how much less probable (nats) than the argmax graph; 0 when the argmax graph
            was already valence-consistent and connected.
        changed_atoms: atoms whose class differs from the argmax.
        changed_bonds: atom pairs whose bond order differs from the argmax.
    """

    types: npt.NDArray[np.int64]
    bonds: npt.NDArray[np.int64]
    log_loss: float
    changed_atoms: int
    changed_bonds: int


def consistent(types: npt.NDArray[np.int64], bonds: npt.NDArray[np.int64]) -> bool:
    """Whether every atom has its valence and the bonds connect all atoms."""
    if len(types) == 0:
        return False
    if not np.array_equal(np.asarray(bonds).sum(axis=1), _FREE_BONDS[np.asarray(types)]):
        return False
    return len(_components(np.asarray(bonds) > 0)) == 1


def _components(adjacency: npt.NDArray[np.bool_]) -> list[npt.NDArray[np.int64]]:
    """Atom indices of each connected fragment."""
    n, labels = connected_components(csr_array(adjacency), directed=False)
    return [np.nonzero(labels == k)[0] for k in range(n)]


def decode(atom_probs: npt.ArrayLike, bond_probs: npt.ArrayLike,
           max_log_loss: float = 2.0, max_cuts: int = 20) -> Decoded | None:
    """The most probable valence-consistent, connected graph.

    Args:
        atom_probs: (n, n_classes) per-atom probabilities (need not be normalised: each row is
            normalised here).
        bond_probs: (n, n, n_bond_types) per-pair probabilities; (i, j) and (j, i) are averaged.
        max_log_loss: the largest drop in log-probability (nats) from the argmax graph that is
            accepted.
        max_cuts: connectivity cuts to add before giving up.

    Returns:
        The decoded graph, or None when no valence-consistent connected graph is within
        ``max_log_loss`` of the argmax graph.

    Raises:
        ValueError: shapes that do not fit together.
    """
    p_atom = np.asarray(atom_probs, dtype=np.float64)
    p_bond = np.asarray(bond_probs, dtype=np.float64)
    n = len(p_atom)
    if p_atom.shape != (n, len(ATOM_CLASSES)) or p_bond.shape != (n, n, len(BOND_TYPES)):
        raise ValueError(f"atom_probs {p_atom.shape} and bond_probs {p_bond.shape} do not fit "
                         f"(n, {len(ATOM_CLASSES)}) and (n, n, {len(BOND_TYPES)})")
    if n == 0:
        return None
    log_atom = np.log(_normalised(p_atom))
    iu, ju = np.triu_indices(n, 1)
    log_bond = np.log(_normalised(0.5 * (p_bond[iu, ju] + p_bond[ju, iu])))  # (m, 4)
    m = len(iu)
    arg_types, arg_orders = log_atom.argmax(1), log_bond.argmax(1)
    best = log_atom.max(1).sum() + log_bond.max(1).sum()
    arg_bonds = _matrix(n, iu, ju, arg_orders)
    if consistent(arg_types, arg_bonds):
        return Decoded(arg_types, arg_bonds, 0.0, 0, 0)

    n_cls, n_bt = len(ATOM_CLASSES), len(BOND_TYPES)
    n_var = n * n_cls + m * n_bt
    cost = -np.concatenate([log_atom.ravel(), log_bond.ravel()])

    def atom_var(i: int, c: int) -> int:
        return i * n_cls + c

    def bond_var(p: int, k: int) -> int:
        return n * n_cls + p * n_bt + k

    rows, cols, vals = [], [], []
    r = 0
    for i in range(n):  # one class per atom
        rows += [r] * n_cls
        cols += [atom_var(i, c) for c in range(n_cls)]
        vals += [1.0] * n_cls
        r += 1
    for p in range(m):  # one order per pair
        rows += [r] * n_bt
        cols += [bond_var(p, k) for k in range(n_bt)]
        vals += [1.0] * n_bt
        r += 1
    n_one = r
    for i in range(n):  # bond orders = the class's free valence
        rows += [r] * n_cls
        cols += [atom_var(i, c) for c in range(n_cls)]
        vals += [-float(f) for f in _FREE_BONDS]
        for pair in np.nonzero((iu == i) | (ju == i))[0]:
            rows += [r] * (n_bt - 1)
            cols += [bond_var(int(pair), k) for k in range(1, n_bt)]
            vals += [float(k) for k in range(1, n_bt)]
        r += 1
    equalities = coo_array((vals, (rows, cols)), shape=(r, n_var)).tocsr()
    targets = np.concatenate([np.ones(n_one), np.zeros(r - n_one)])
    cuts: list[csr_array] = []
    cut_bounds: list[float] = []
    for _ in range(max_cuts + 1):
        constraints = [LinearConstraint(equalities, targets, targets)]
        if cuts:
            constraints.append(LinearConstraint(vstack(cuts), -np.inf, np.array(cut_bounds)))
        result = milp(cost, constraints=constraints, integrality=np.ones(n_var),
                      bounds=Bounds(0, 1))
        if result.x is None or -result.fun < best - max_log_loss - 1e-9:
            return None  # infeasible, or only graphs the model finds improbable
        chosen = np.round(result.x).astype(np.int64)
        types = chosen[: n * n_cls].reshape(n, n_cls).argmax(1)
        orders = chosen[n * n_cls :].reshape(m, n_bt).argmax(1)
        bonds = _matrix(n, iu, ju, orders)
        parts = _components(bonds > 0)
        if len(parts) == 1:
            return Decoded(types, bonds, float(best + result.fun),
                           int((types != arg_types).sum()), int((orders != arg_orders).sum()))
        for part in parts:  # at least one bond must leave each fragment
            inside = np.isin(iu, part)
            crossing = np.nonzero(inside != np.isin(ju, part))[0]
            cuts.append(csr_array((np.ones(len(crossing)),
                                   (np.zeros(len(crossing), dtype=np.int64),
                                    [bond_var(int(p), 0) for p in crossing])),
                                  shape=(1, n_var)))
            cut_bounds.append(len(crossing) - 1.0)  # not every crossing pair is "none"
    return None


def _normalised(p: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    p = np.clip(p, 0.0, None)
    total = p.sum(-1, keepdims=True)
    p = np.where(total > 0, p / np.where(total > 0, total, 1.0), 1.0 / p.shape[-1])
    return np.maximum(p, _FLOOR)


def _matrix(n: int, iu: npt.NDArray[np.int64], ju: npt.NDArray[np.int64],
            orders: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
    bonds = np.zeros((n, n), dtype=np.int64)
    bonds[iu, ju] = _ORDERS[orders]
    bonds[ju, iu] = _ORDERS[orders]
    return bonds
