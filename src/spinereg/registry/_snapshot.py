"""Import snapshots: the values of the rows an import created, once per batch and entity,
as a zstd-compressed Arrow IPC stream (the create audit entries point here)."""

from __future__ import annotations

import json

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from spinereg.data import Entity
from spinereg.registry._sql import arrow_strings

__all__ = ["read_snapshot", "snapshot_blob", "snapshot_changes", "snapshot_table"]

_ARROW_TYPES = {"int": pa.int64(), "float": pa.float64(), "bool": pa.bool_(), "date": pa.date32()}

def snapshot_table(df: pd.DataFrame, ent: Entity) -> pa.Table:
    """The rows as stored, every tidy column, as an Arrow table (dates as dates, floats
    exact, missing values null)."""
    arrays: list[pa.Array | pa.ChunkedArray] = []
    for c in ent.columns:
        s = df[c.name]
        if c.type == "date":
            days = s.to_numpy(dtype="datetime64[s]").astype("datetime64[D]")
            arr = pa.array(days, from_pandas=True).cast(pa.date32())
        elif c.type == "category" and isinstance(s.dtype, pd.CategoricalDtype):
            arr = pc.cast(pa.array(s, from_pandas=True), pa.string())
        elif c.type in _ARROW_TYPES:
            arr = pa.array(s, from_pandas=True, type=_ARROW_TYPES[c.type])
        else:
            arr = arrow_strings(s)
        arrays.append(arr)
    return pa.Table.from_arrays(arrays, names=list(ent.column_names))

def snapshot_blob(df: pd.DataFrame, ent: Entity) -> bytes:
    """:func:`snapshot_table` as a zstd-compressed Arrow IPC stream."""
    table = snapshot_table(df, ent)
    sink = pa.BufferOutputStream()
    opts = pa.ipc.IpcWriteOptions(compression=pa.Codec("zstd", compression_level=1), use_threads=False)
    with pa.ipc.new_stream(sink, table.schema, options=opts) as writer:
        writer.write_table(table, max_chunksize=65_536)
    return bytes(sink.getvalue().to_pybytes())

def read_snapshot(data: bytes | memoryview) -> pa.Table:
    """An import snapshot (``spinereg_import_snapshot.data``) as an Arrow table."""
    with pa.ipc.open_stream(pa.py_buffer(bytes(data))) as reader:
        return reader.read_all()

def snapshot_changes(batch_id: int) -> str:
    """The ``changes`` of a create entry written by an import: the values are in the batch's snapshot."""
    return json.dumps({"snapshot": batch_id})
