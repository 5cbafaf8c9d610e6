"""
The receiver benchmark: ``python -m bench`` (see ``bench/README.md``).

Not part of the ``receiver`` package and not a test: it starts receivers as
subprocesses, loads them from a generator process on another core, and reads
their CPU time and memory from ``/proc``.
"""
