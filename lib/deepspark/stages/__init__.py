"""The pipeline's stages, one module or folder each, in pipeline order:

generate -> ingest -> clean -> validate -> features -> analytics -> train -> predict -> report.

A stage is a function ``(Run) -> StageResult`` (see :mod:`deepspark.run`). Stages never import
each other: what two of them share lives in a lower module (``bronze``, ``lineage``, ``plots``,
``tensors``, ``tables``); ``deepspark.pipeline`` is the registry that knows them all.
"""
