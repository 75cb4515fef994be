"""Prefect flows and the ``invdes`` command line: wiring of the stages, no chemistry."""
