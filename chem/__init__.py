"""Molecules: representations, validity filters, generators and featurisers.

Importing this package registers its implementations in :mod:`pipeline.registry`.
"""

from chem import featurize, filters, ga, molecules, prior  # noqa: F401  (registration)
