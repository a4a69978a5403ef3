"""The Spark engine: the same aggregates as DuckDB, over prediction logs and labels read in place.

Each model's ``[models.<name>.lake]`` logs (Parquet folder/file, Delta table, or a catalog table) become
the temporary view ``logs_<model>`` and its labels feed ``current_labels`` (the latest label per
prediction, as the DuckDB table of that name), so the relation SQL the query modules build reads the
same names on both engines. One :class:`SparkSession` per process (``local[*]`` by default, Spark
Connect with ``sc://host:15002``); Vigil's own state stays in DuckDB.
"""

from __future__ import annotations

from connectors.engines.spark.session import SparkEngine, SparkHandle, create

__all__ = ["SparkEngine", "SparkHandle", "create"]
