"""Prefect flows and the ``invdes`` command line: wiring of the stages, no chemistry.

The domains and oracles are named here as the registries' plugins; they are imported when a
registry is first asked for an implementation (see :mod:`pipeline.registry`).
"""

import os

from pipeline.registry import add_plugins

# Before anything imports torch: OpenMP threads that wait sleep instead of spinning. With the
# default spinning, torch's two threads on a 2-core machine shared with other work stalled each
# other: conditioned generation of 20 molecules took 201 s instead of 23 s, one denoiser call
# on 80 molecules 1.2 s instead of 0.09 s.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

add_plugins("chem", "materials", "oracles")
