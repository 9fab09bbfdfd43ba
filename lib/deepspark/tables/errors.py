"""The Delta layer's errors, raised by :class:`~deepspark.tables.Tables` and by both engines."""


class TableError(RuntimeError):
    """A Delta table operation that cannot go ahead; the message says why and where."""


class TableNotFoundError(TableError):
    """The table has no Delta log at its path (not written yet, or the path is wrong)."""


class SchemaMismatchError(TableError):
    """The data's columns or types differ from the table's (or cannot be stored at all)."""


class ConcurrentWriteError(TableError):
    """Another writer committed first, in a way this write cannot be reconciled with."""
