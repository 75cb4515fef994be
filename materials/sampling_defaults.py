"""Defaults of crystal sampling, shared by ``invdes generate perovskites``, the campaign's
generator (:class:`materials.generators.CrystalFlowGenerator`) and the benchmarks; a module
without torch, so that the command line and configs read them without loading the network."""

ANNEAL = 5.0
"""Coordinate velocity scaling 1 + anneal t in sampling (see the README's measurements)."""
MIN_DISTANCE = 1.2
"""Site separation in sampling, Angstrom (:meth:`materials.crystal_flow.CrystalGenerator.sample`):
from flow time 0.5 on, sites closer than this are pushed apart (see the README's measurements)."""
