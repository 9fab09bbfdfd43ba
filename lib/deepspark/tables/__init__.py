"""The Delta table layer: the only package that knows Delta. Use :class:`Tables`."""

from deepspark.tables.api import (
    ConcurrentWriteError,
    SchemaMismatchError,
    TableError,
    TableNotFoundError,
    Tables,
    WriteResult,
    hadoop_uri,
)

__all__ = [
    "ConcurrentWriteError",
    "SchemaMismatchError",
    "TableError",
    "TableNotFoundError",
    "Tables",
    "WriteResult",
    "hadoop_uri",
]
