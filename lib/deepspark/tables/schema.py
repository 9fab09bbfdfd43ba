"""Schema enforcement and evolution for Delta writes, the rules delta-spark applies.

* A column the table lacks is an error unless schema evolution is asked for, when it is added.
* A column the write lacks is filled with nulls (the table's columns are all nullable).
* A column whose type differs is an error: no silent casts.
* Types Delta cannot store (ML vectors, untyped nulls) are rejected before any data moves.
"""

from __future__ import annotations

import json

from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql.types import DataType, NullType, StructField, StructType, UserDefinedType

from deepspark.tables.errors import SchemaMismatchError


def delta_schema_json(schema: StructType) -> str:
    """The Delta log's schema string for ``schema``: Spark's JSON with every column nullable."""
    nullable = StructType([StructField(f.name, f.dataType, True, f.metadata) for f in schema])
    return nullable.json()


def spark_schema_from_delta(schema_json: str) -> StructType:
    """Delta's log stores schemas in Spark's own JSON format."""
    return StructType.fromJson(json.loads(schema_json))


def check_storable(schema: StructType, table: str) -> None:
    """Reject column types that have no Delta representation, naming the column."""
    for column in schema:
        problem = _unstorable(column.dataType)
        if problem:
            raise SchemaMismatchError(f"{table}: column '{column.name}' {problem}")


def _unstorable(data_type: DataType) -> str | None:
    if isinstance(data_type, UserDefinedType):
        return (
            f"has type {data_type.simpleString()}, which Delta cannot store; convert it "
            "first (for ML vectors: pyspark.ml.functions.vector_to_array)"
        )
    if isinstance(data_type, NullType):
        return "has no type (it is all nulls); cast it to the type it should have"
    for child in _children(data_type):
        problem = _unstorable(child)
        if problem:
            return problem
    return None


def _children(data_type: DataType) -> list[DataType]:
    if isinstance(data_type, StructType):
        return [f.dataType for f in data_type]
    inner = [getattr(data_type, a, None) for a in ("elementType", "keyType", "valueType")]
    return [t for t in inner if t is not None]


def align_to_table(
    df: DataFrame, table_schema: StructType, evolve: bool, table: str
) -> tuple[DataFrame, list[StructField]]:
    """``df`` with the table's column order (new columns last) and the columns to add."""
    incoming = {f.name: f for f in df.schema}
    existing = {f.name: f for f in table_schema}
    lower = {name.lower(): name for name in existing}

    case_clash = [n for n in incoming if n not in existing and n.lower() in lower]
    if case_clash:
        pairs = ", ".join(f"'{n}' vs table '{lower[n.lower()]}'" for n in case_clash)
        raise SchemaMismatchError(f"{table}: column names differ only in case: {pairs}")

    wrong_types = [
        f"'{name}': table has {existing[name].dataType.simpleString()}, "
        f"write has {field.dataType.simpleString()}"
        for name, field in incoming.items()
        if name in existing
        and not isinstance(field.dataType, NullType)
        and field.dataType != existing[name].dataType
    ]
    if wrong_types:
        raise SchemaMismatchError(
            f"{table}: column types differ ({'; '.join(wrong_types)}); cast the data or write to a new table"
        )

    new_fields = [f for name, f in incoming.items() if name not in existing]
    if new_fields and not evolve:
        names = ", ".join(f"{f.name} {f.dataType.simpleString()}" for f in new_fields)
        raise SchemaMismatchError(
            f"{table}: the write has columns the table lacks ({names}); pass "
            "evolve_schema=True to add them, or drop them"
        )

    columns = [
        F.col(f"`{f.name}`").cast(f.dataType).alias(f.name)
        if f.name in incoming
        else F.lit(None).cast(f.dataType).alias(f.name)
        for f in table_schema
    ]
    columns += [F.col(f"`{f.name}`") for f in new_fields]
    return df.select(*columns), new_fields
