"""GFN2-xTB geometry relaxation (tblite): a DFT-like geometry from a SMILES in a fraction of a second.

The property model reads a molecule's 3D geometry. What a campaign has for a new molecule is the
RDKit ETKDG + MMFF94 geometry; relaxing it with the GFN2-xTB tight-binding Hamiltonian brings it
closer to a quantum-chemical minimum, like the B3LYP geometries the QM9 labels were computed on.
One relaxation of a QM9-sized molecule takes about 0.16 s on one core (about 40 energy and
gradient evaluations of 4 ms). Measured on the QM9 pool, a property model continued on these
geometries was no more accurate than on the MMFF ones (README, "Property model"), so the shipped
model reads MMFF geometries; ``invdes train surrogate --geometry xtb`` trains on these.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from scipy.optimize import minimize

BOHR_PER_ANGSTROM = 1.0 / 0.529177210903


class RelaxationError(RuntimeError):
    """GFN2-xTB found no self-consistent solution or the relaxation did not converge."""


def relax_xtb(numbers: npt.ArrayLike, positions_angstrom: npt.ArrayLike, *, charge: int = 0,
              unpaired: int = 0, gradient_tolerance: float = 5e-4,
              max_evaluations: int = 300) -> npt.NDArray[np.float64]:
    """Relaxes a geometry to a GFN2-xTB minimum (L-BFGS on the analytic gradient).

    Args:
        numbers: atomic numbers, (n_atoms,).
        positions_angstrom: start geometry, (n_atoms, 3) Angstrom.
        charge: total charge, e.
        unpaired: number of unpaired electrons.
        gradient_tolerance: largest gradient component at convergence, Hartree/Bohr.
        max_evaluations: energy and gradient evaluations allowed.

    Returns:
        The relaxed positions, (n_atoms, 3) Angstrom, in the input's atom order.

    Raises:
        RelaxationError: the SCF failed, or no minimum was reached within ``max_evaluations``.
    """
    from tblite.interface import Calculator
    from threadpoolctl import threadpool_limits

    z = np.asarray(numbers, dtype=np.int64)
    start = np.asarray(positions_angstrom, dtype=np.float64).reshape(-1, 3) * BOHR_PER_ANGSTROM
    if len(z) != len(start):
        raise ValueError(f"{len(z)} atomic numbers but {len(start)} positions")
    try:
        calc = Calculator("GFN2-xTB", z, start, charge=float(charge), uhf=int(unpaired))
        calc.set("verbosity", 0)
    except Exception as err:  # tblite raises its own exception types from C
        raise RelaxationError(f"GFN2-xTB set-up failed: {err}") from err

    def energy_and_gradient(x: npt.NDArray[np.float64]) -> tuple[float, npt.NDArray[np.float64]]:
        calc.update(x.reshape(-1, 3))
        try:
            result = calc.singlepoint()
        except Exception as err:
            raise RelaxationError(f"GFN2-xTB SCF failed: {err}") from err
        return float(result.get("energy")), np.asarray(result.get("gradient"), float).ravel()

    # one OpenMP and BLAS thread: with torch loaded, tblite's threads spin against each other and a
    # relaxation takes seconds instead of 0.16 s; parallelism is across molecules
    with threadpool_limits(limits=1):
        found = minimize(energy_and_gradient, start.ravel(), jac=True, method="L-BFGS-B",
                         options={"gtol": gradient_tolerance, "maxfun": max_evaluations,
                                  "maxiter": max_evaluations})
    if not np.all(np.isfinite(found.x)):
        raise RelaxationError("GFN2-xTB relaxation diverged")
    grad = np.asarray(found.jac)
    if np.abs(grad).max() > 10 * gradient_tolerance:
        raise RelaxationError(f"GFN2-xTB relaxation stopped with a gradient of "
                              f"{np.abs(grad).max():.2e} Hartree/Bohr ({found.message})")
    return found.x.reshape(-1, 3) / BOHR_PER_ANGSTROM
