"""The Delta table layer: the only package that knows Delta. Use :class:`Tables`."""

from deepspark.tables.api import (
    ConcurrentWriteError,
    SchemaMismatchError,
    TableError,
    TableNotFoundError,
    Tables,
    WriteResult,
)

__all__ = [
    "ConcurrentWriteError",
    "SchemaMismatchError",
    "TableError",
    "TableNotFoundError",
    "Tables",
    "WriteResult",
]
