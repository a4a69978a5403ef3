"""Spark counterparts of :mod:`connectors.queries.fairness`: the same narrow GROUP BY, in Spark SQL."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from connectors.engines.spark.session import SparkHandle
from connectors.queries.fairness import BUCKETS, _pivot, usable
from connectors.schema import LogSchema, quote


def _named(params: Sequence[Any]) -> dict[str, Any]:
    return {f"p{i}": v for i, v in enumerate(params)}


def left_out(con: SparkHandle, schema: LogSchema, where: str = "TRUE", params: Sequence[Any] = ()) -> int:
    sql = f"SELECT count(*) FROM {schema.table} WHERE ({where}) AND NOT coalesce({usable()}, FALSE)"
    return int(con.rows(sql, _named(params))[0][0])


def confusion_counts(con: SparkHandle, relation: str, groups: Mapping[str, str], favourable: str, *,
                     prediction: str = "prediction", label: str = "label", weight: str | None = None,
                     where: str = "TRUE", params: Sequence[Any] = (), bucket: str | None = None,
                     ts: str = "ts") -> pd.DataFrame:
    keys = [f"{expr} AS {quote(alias)}" for alias, expr in groups.items()]
    names = [quote(a) for a in groups]
    if bucket is not None:
        if bucket not in BUCKETS:
            raise ValueError(f"bucket must be one of {', '.join(BUCKETS)}, got {bucket!r}")
        keys.append(f"date_trunc('{BUCKETS[bucket]}', {quote(ts)}) AS bucket")
        names.append("bucket")
    inner = ", ".join(keys + [f"{quote(prediction)} AS __pred", f"{quote(label)} AS __label"]
                      + ([f"CAST({weight} AS DOUBLE) AS __w"] if weight else []))
    aggs = ["count(*) AS c"] + (["sum(__w) AS sw"] if weight else [])
    sql = (f"SELECT {', '.join([*names, '__pred', '__label', *aggs])} "
           f"FROM (SELECT {inner} FROM {relation} WHERE {where}) GROUP BY ALL")
    long = con.df(sql, _named(params))
    long["pp"] = long["__pred"].astype(object) == favourable
    long["ls"] = np.where(long["__label"].isna(), 0, np.where(long["__label"].astype(object) == favourable, 2, 1))
    return _pivot(long, [*groups, *(["bucket"] if bucket else [])], weighted=weight is not None)


def model_versions(con: SparkHandle, schema: LogSchema) -> list[str]:
    rows = con.rows(f"SELECT DISTINCT model_version FROM {schema.table} WHERE model_version IS NOT NULL ORDER BY 1")
    return [str(r[0]) for r in rows]
