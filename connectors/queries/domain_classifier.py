"""SQL of the domain classifier's bounded sample (NannyML's DomainClassifierCalculator needs rows).

A classifier that tells reference rows from a bucket's rows has to see rows, so this is the one place
where multivariate drift takes rows out of the engine; it takes a bounded, deterministic sample. The
rows kept are those with the smallest MD5 of their ``prediction_id`` (per bucket, or over the whole
relation): the order depends on the ids alone, not on the thread count, the storage order or the DuckDB
version, so the same window gives the same sample (and the same classifier value) every time. The sample
comes back in time order (``ts``, then ``prediction_id``), the order NannyML's chunker gives.
"""

from __future__ import annotations

from collections.abc import Sequence

import duckdb
import pandas as pd

from connectors.engines.base import duckdb_function
from connectors.queries.reference import Source


@duckdb_function
def sampled_rows(con: duckdb.DuckDBPyConnection, src: Source, max_rows: int, per_bucket: bool) -> pd.DataFrame:
    """At most ``max_rows`` rows of ``src`` (per ``bucket`` when ``per_bucket``), with ``bucket_rows``: how
    many rows the row's bucket (or, without ``per_bucket``, the whole relation) had before sampling.

    ``src`` must carry ``prediction_id``, ``ts`` and ``bucket`` besides the feature columns.
    """
    part = "PARTITION BY bucket" if per_bucket else ""
    sql = (f"SELECT * EXCLUDE (vigil_rank) FROM (SELECT *, count(*) OVER ({part}) AS bucket_rows, "
           f"row_number() OVER ({part} ORDER BY md5(CAST(prediction_id AS VARCHAR)), prediction_id) AS vigil_rank "
           f"FROM ({src.sql})) WHERE vigil_rank <= ? ORDER BY ts, prediction_id")
    df = con.execute(sql, [*src.params, int(max_rows)]).df()
    df["bucket_rows"] = df["bucket_rows"].astype("int64")
    return df


__all__: Sequence[str] = ("sampled_rows",)
