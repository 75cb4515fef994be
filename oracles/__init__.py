"""The expensive truth: quantum chemistry (PySCF), force fields (CHGNet), the lab.

Importing this package registers its oracles in :mod:`pipeline.registry`.
"""

from oracles import chgnet_oracle, pyscf_oracle, pyscf_pbc_oracle  # noqa: F401  (registration)
