"""Perovskites (ABX3): representations, validity filters, generators and featurisers.

The materials domain plugs into the same registries as :mod:`chem`; its components arrive with
the perovskite issues and are registered on import of this package.
"""
