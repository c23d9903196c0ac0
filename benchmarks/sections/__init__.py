"""The sections of :mod:`benchmarks.bench`, one concern per module (see its docstring)."""
