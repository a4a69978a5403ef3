"""The wire format between a store owner and its clients: framed messages over a local socket.

One message is an 8-byte big-endian length, a JSON header, and optionally an Arrow IPC stream (a
DataFrame result or a DataFrame to register). Values inside headers (query parameters, ``fetchall``
rows) are tagged so that the types DuckDB returns survive the trip: ``datetime``, ``date``, ``Decimal``,
``bytes``, NaN and infinities come back as themselves, not as strings. Nothing is unpickled: a client
and its owner trust each other only as far as JSON and Arrow let them.
"""

from __future__ import annotations

import base64
import json
import math
import socket
import struct
import uuid
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

MAX_HEADER_BYTES = 64 << 20  # a header above this is a protocol error, not a query result
_LEN = struct.Struct(">II")  # header length, payload length


class WireError(Exception):
    """The other side closed the connection or sent something that is not a message."""


def encode_value(v: Any) -> Any:
    """A JSON-able form of one value (tagged where JSON alone would lose the type)."""
    if v is None or isinstance(v, bool | str):
        return v
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, int):
        return v
    if isinstance(v, float):
        return v if math.isfinite(v) else {"$f": repr(v)}
    if isinstance(v, pd.Timestamp):
        v = v.to_pydatetime()
    if isinstance(v, datetime):
        return {"$dt": v.isoformat()}
    if isinstance(v, date):
        return {"$d": v.isoformat()}
    if isinstance(v, time):
        return {"$t": v.isoformat()}
    if isinstance(v, timedelta):
        return {"$td": [v.days, v.seconds, v.microseconds]}
    if isinstance(v, Decimal):
        return {"$dec": str(v)}
    if isinstance(v, bytes | bytearray | memoryview):
        return {"$b": base64.b64encode(bytes(v)).decode("ascii")}
    if isinstance(v, uuid.UUID):
        return {"$u": str(v)}
    if isinstance(v, list | tuple):
        return {"$l": [encode_value(x) for x in v]}
    if isinstance(v, dict):
        return {"$m": [[encode_value(k), encode_value(x)] for k, x in v.items()]}
    raise TypeError(f"cannot send a {type(v).__name__} to the store owner")


def decode_value(v: Any) -> Any:
    if not isinstance(v, dict):
        return v
    (tag, x), = v.items()
    if tag == "$f":
        return float(x)
    if tag == "$dt":
        return datetime.fromisoformat(x)
    if tag == "$d":
        return date.fromisoformat(x)
    if tag == "$t":
        return time.fromisoformat(x)
    if tag == "$td":
        return timedelta(days=x[0], seconds=x[1], microseconds=x[2])
    if tag == "$dec":
        return Decimal(x)
    if tag == "$b":
        return base64.b64decode(x)
    if tag == "$u":
        return uuid.UUID(x)
    if tag == "$l":
        return [decode_value(y) for y in x]
    if tag == "$m":
        return {decode_value(k): decode_value(y) for k, y in x}
    raise WireError(f"unknown value tag {tag!r}")


def encode_params(params: Any) -> Any:
    if params is None:
        return None
    if isinstance(params, dict):
        return {"$m": [[k, encode_value(x)] for k, x in params.items()]}
    return [encode_value(x) for x in params]


def decode_params(params: Any) -> Any:
    if params is None:
        return None
    if isinstance(params, dict):
        return {k: decode_value(x) for k, x in params["$m"]}
    return [decode_value(x) for x in params]


def frame_to_arrow(df: pd.DataFrame) -> bytes:
    """A DataFrame as an Arrow IPC stream; object columns Arrow cannot type are sent as text."""
    try:
        table = pa.Table.from_pandas(df, preserve_index=False)
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError):
        safe = df.copy()
        for col in [c for c in safe.columns if safe[c].dtype == object]:
            safe[col] = safe[col].map(lambda x: None if x is None or (isinstance(x, float) and math.isnan(x))
                                      else str(x))
        table = pa.Table.from_pandas(safe, preserve_index=False)
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return bytes(sink.getvalue())


def arrow_to_frame(payload: bytes) -> pd.DataFrame:
    with pa.ipc.open_stream(pa.py_buffer(payload)) as reader:
        return reader.read_all().to_pandas()


def send(sock: socket.socket, header: dict[str, Any], payload: bytes = b"") -> None:
    body = json.dumps(header, separators=(",", ":"), allow_nan=False).encode("utf-8")
    sock.sendall(_LEN.pack(len(body), len(payload)) + body + payload)


def recv(sock: socket.socket) -> tuple[dict[str, Any], bytes]:
    """One message; :class:`WireError` when the peer closed the connection or broke the framing."""
    n_header, n_payload = _LEN.unpack(_read(sock, _LEN.size))
    if n_header > MAX_HEADER_BYTES:
        raise WireError(f"a message header of {n_header} bytes is larger than allowed")
    header = json.loads(_read(sock, n_header))
    if not isinstance(header, dict):
        raise WireError("a message header is not a JSON object")
    return header, _read(sock, n_payload) if n_payload else b""


def _read(sock: socket.socket, n: int) -> bytes:
    chunks: list[bytes] = []
    while n:
        chunk = sock.recv(min(n, 1 << 20))
        if not chunk:
            raise WireError("the connection was closed")
        chunks.append(chunk)
        n -= len(chunk)
    return b"".join(chunks)
