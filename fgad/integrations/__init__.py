"""Adapters that make fgad's models usable inside other frameworks.

Each adapter is a module of its own that imports its framework only when it is imported itself::

    from fgad.integrations.anomalib import Fgad    # needs anomalib: pip install "fgad[anomalib]"
"""

__all__: list[str] = []
