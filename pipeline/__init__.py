"""Domain-agnostic engine of the inverse-design pipeline.

The engine knows candidates, evaluations, objectives and the campaign store, but no chemistry:
molecules live in :mod:`chem`, perovskites in :mod:`materials` and the expensive truth in
:mod:`oracles`. Each stage of a round (generate -> filter -> surrogate -> acquisition -> oracle ->
record) is a small protocol in :mod:`pipeline.protocols`, whose implementations are found through
the explicit registries of :mod:`pipeline.registry`.
"""
