"""The Delta table layer: the only package that knows Delta. Use :class:`Tables`.

Modules, lowest first: ``errors`` and ``types`` (shared by everything here), ``schema``, the two
engines (``spark_engine``: delta-spark; ``rs_engine``: delta-rs), then ``api`` (:class:`Tables`).
"""

from deepspark.tables.api import TABLE_NAME, Tables
from deepspark.tables.errors import (
    ConcurrentWriteError,
    SchemaMismatchError,
    TableError,
    TableNotFoundError,
)
from deepspark.tables.types import Txn, WriteResult, hadoop_uri

__all__ = [
    "TABLE_NAME",
    "ConcurrentWriteError",
    "SchemaMismatchError",
    "TableError",
    "TableNotFoundError",
    "Tables",
    "Txn",
    "WriteResult",
    "hadoop_uri",
]
