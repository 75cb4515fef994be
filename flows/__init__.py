"""Prefect flows and the ``invdes`` command line: wiring of the stages, no chemistry.

The domains and oracles are named here as the registries' plugins; they are imported when a
registry is first asked for an implementation (see :mod:`pipeline.registry`).
"""

from pipeline.registry import add_plugins

add_plugins("chem", "oracles")
