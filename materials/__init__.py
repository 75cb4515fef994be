"""Perovskites (ABX3, A2BB'X6): structures, validity filters, generators, featurisers and the
crystal property model.

Importing this package registers its implementations in :mod:`pipeline.registry`.
"""

from materials import (  # noqa: F401  (registration)
    depict,
    domain,
    featurize,
    filters,
    generators,
    prior,
)
