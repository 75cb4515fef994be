"""Molecules: representations, validity filters, generators and featurisers.

Importing this package registers its implementations in :mod:`pipeline.registry`.
"""

from chem import (  # noqa: F401  (registration)
    depict,
    domain,
    featurize,
    filters,
    flow_generator,
    ga,
    molecules,
    prior,
)
