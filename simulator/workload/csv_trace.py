"""Request traces in the reference CSV format (``--workload traces``).

The format is one header line, then one request per line::

    arrival_time,request_id,model,prefill_tokens,decode_tokens
    0.646154,r0,m,"[8468,3564,...]","[31,7,...]"

Only columns 1, 4 and 5 are read (arrival time in seconds, input token ids, output token ids);
columns 2 and 3 are ignored, as in the reference.  Requests get the ids ``request_<i>`` by position.

Reference behaviours kept on purpose:

* the arrival is ``int64(seconds * 1e6)``: one double multiply, then truncation toward zero;
* reading stops at the first row whose arrival is later than the horizon, and rows after it are
  not even validated;
* rows stay in file order.  Arrival times are *not* sorted or required to be non-decreasing (the
  reference only schedules one arrival event per row, so an out-of-order file is replayed as is);
* every row must have as many columns as the header (the reference's CSV reader enforces this),
  and at least 5;
* a token column holding JSON ``null`` is an empty list.

Stricter than the reference (where it would build a nonsensical request or crash): arrival times
must be finite and non-negative, and token ids must be non-negative int32 values.

Gzip-compressed files (``.csv.gz``) are recognised by their magic bytes and read transparently.
"""
from __future__ import annotations

import csv
import gzip
import io
import json
import os

import numpy as np
from numba import njit

from simulator.errors import InputError
from simulator.workload.types import Workload

_FLAG = "--workload-traces-filepath"
_INT32_MAX = 2**31 - 1
_COLUMN_LABELS = {0: "arrival_time", 3: "prefill_tokens", 4: "decode_tokens"}

_JSON_WS = " \t\n\r"


def _open_text(path: str):
    """Open ``path`` for text reading, decompressing it if it starts with the gzip magic bytes."""
    raw = open(path, "rb")  # noqa: SIM115 - closed by the caller through the wrapper
    try:
        magic = raw.peek(2)[:2] if hasattr(raw, "peek") else b""
    except OSError:
        raw.close()
        raise
    stream = gzip.GzipFile(fileobj=raw, mode="rb") if magic == b"\x1f\x8b" else raw
    return raw, io.TextIOWrapper(stream, encoding="utf-8", newline="")


def _where(path: str, row: int, col: int) -> str:
    return f"{path} row {row} column {col + 1} ({_COLUMN_LABELS[col]})"


def _parse_arrival(path: str, row: int, text: str) -> int:
    """Seconds (Go ``ParseFloat`` syntax, no surrounding spaces) -> truncated microseconds."""
    bad = f"{_where(path, row, 0)}: must be a number of seconds, got {text!r}"
    if not text or not text.isascii() or text != text.strip() or "_" in text:
        raise InputError(bad)
    try:
        seconds = float(text)
    except ValueError:
        raise InputError(bad) from None
    us = seconds * 1e6
    if not np.isfinite(us) or us < 0.0 or us >= 9.223372036854775807e18:
        raise InputError(f"{_where(path, row, 0)}: must be a finite number of seconds >= 0 "
                         f"(and < 2^63 microseconds), got {text!r}")
    return int(us)  # truncation toward zero, like the reference's int64 conversion


def _slow_tokens(path: str, row: int, col: int, text: str) -> list[int]:
    """Exact validation of one token column; used to locate and explain a bad field."""
    what = f"{_where(path, row, col)}: must be a JSON array of integer token ids"
    if text.strip(_JSON_WS) == "null":
        return []
    try:
        value = json.loads(text, parse_constant=lambda c: float("nan"))
    except ValueError:
        raise InputError(f"{what}, got {_clip(text)}") from None
    if not isinstance(value, list):
        raise InputError(f"{what}, got {_clip(text)}")
    for v in value:
        if type(v) is not int:
            raise InputError(f"{what}, found {json.dumps(v)[:40]}")
        if v < 0 or v > _INT32_MAX:
            raise InputError(f"{_where(path, row, col)}: token ids must be in [0, {_INT32_MAX}], "
                             f"found {v}")
    return value


def _clip(text: str) -> str:
    return repr(text if len(text) <= 40 else text[:37] + "...")


def load_trace_csv(path, horizon_us: int) -> Workload:
    """Load a reference-format CSV trace (plain or gzipped) into a :class:`Workload`.

    Reproduces the reference's trace reader: the header is skipped, column 1 is the arrival in
    seconds (converted with ``int64(s * 1e6)``), columns 4 and 5 are JSON arrays of input and
    output token ids, and reading stops at the first arrival ``> horizon_us``.  Rows keep their
    file order (no sorting).  Any malformed row, or an unreadable file, raises
    :class:`~simulator.errors.InputError` with a one-line message naming the file, the 1-based
    data row and the column.

    Token columns are parsed by one compiled scan over all fields (about 1.5 s per 25 M token ids,
    most of it the CSV split); only a field that scan refuses is re-parsed with ``json`` to explain
    the error.
    """
    path = os.fspath(path)
    old_limit = csv.field_size_limit()
    csv.field_size_limit(2**31 - 1)  # token lists can be far longer than the 128 KiB default
    try:
        return _load(path, int(horizon_us))
    finally:
        csv.field_size_limit(old_limit)


def _load(path: str, horizon_us: int) -> Workload:
    try:
        raw, text = _open_text(path)
    except OSError as e:
        raise InputError(f"cannot read {_FLAG} {path!r}: {e.strerror or e}") from None

    arrivals: list[int] = []
    fields: list[str] = []          # input, output, input, output, ... in row order
    pending: InputError | None = None  # arrival/shape error at the row where reading stopped
    with raw, text:
        reader = csv.reader(text, strict=True)
        row = 0
        try:
            header = None
            for rec in reader:
                if rec:
                    header = rec
                    break
            if header is None:
                raise InputError(f"{path}: empty file, expected a header line "
                                 f"(arrival_time,request_id,model,prefill_tokens,decode_tokens)")
            ncol = len(header)
            for rec in reader:
                if not rec:
                    continue  # blank lines are skipped, as by the reference's CSV reader
                row += 1
                if len(rec) != ncol or ncol < 5:
                    pending = InputError(
                        f"{path} row {row}: has {len(rec)} columns, expected "
                        + (f"{ncol} like the header" if len(rec) != ncol else "at least 5")
                        + " (arrival_time,request_id,model,prefill_tokens,decode_tokens)")
                    break
                try:
                    t = _parse_arrival(path, row, rec[0])
                except InputError as e:
                    pending = e
                    break
                if t > horizon_us:
                    break
                arrivals.append(t)
                fields.append(rec[3])
                fields.append(rec[4])
        except csv.Error as e:
            pending = InputError(f"{path} row {row + 1}: malformed CSV ({e})")
        except (OSError, EOFError, UnicodeDecodeError) as e:
            raise InputError(f"cannot read {_FLAG} {path!r}: {e}") from None

    counts, tokens = _parse_tokens(path, fields)
    # A bad token field in an earlier row comes first in the file, so it wins over `pending`.
    if pending is not None:
        raise pending

    n = len(arrivals)
    counts = counts.reshape(n, 2) if n else np.zeros((0, 2), dtype=np.int64)
    n_in = np.ascontiguousarray(counts[:, 0])
    n_out = np.ascontiguousarray(counts[:, 1])
    ptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(n_in + n_out, out=ptr[1:])
    return Workload(np.asarray(arrivals, dtype=np.int64), n_in, n_out, ptr, tokens)


def _parse_tokens(path: str, fields: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Per-field token counts and all ids concatenated (int32), in field order."""
    nf = len(fields)
    if nf == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int32)
    body = "".join(fields)
    if body.isascii():  # anything else cannot be a valid int array
        buf = np.frombuffer(body.encode("ascii"), dtype=np.uint8)
        ends = np.cumsum(np.fromiter(map(len, fields), dtype=np.int64, count=nf))
        counts, ids, bad = _scan_fields(buf, ends, body.count(",") + nf)
        if bad < 0:
            return counts, ids
        # Explain the first field the scanner refused (it raises unless the scanner was stricter).
        _slow_tokens(path, bad // 2 + 1, 3 + bad % 2, fields[bad])

    # Slow path: exact per-field parse in file order; raises at the first bad field.
    lists = [_slow_tokens(path, i // 2 + 1, 3 + i % 2, f) for i, f in enumerate(fields)]
    counts = np.fromiter((len(x) for x in lists), dtype=np.int64, count=len(lists))
    ids = np.fromiter((v for x in lists for v in x), dtype=np.int32, count=int(counts.sum()))
    return counts, ids


@njit(cache=True)
def _scan_fields(buf, ends, cap):
    """Parse concatenated fields ``buf[ends[k-1]:ends[k]]``, each a JSON array of int32 ids >= 0.

    Accepts exactly: JSON whitespace, ``[``, ``]``, commas, non-negative integers without leading
    zeros, and ``null`` (an empty list).  Returns (counts per field, ids, index of the first field
    that does not match, or -1).  ``cap`` bounds the number of ids (commas + fields).
    """
    nf = ends.shape[0]
    counts = np.zeros(nf, dtype=np.int64)
    ids = np.empty(cap, dtype=np.int32)
    m = 0
    a = 0
    for k in range(nf):
        b = ends[k]
        i = a
        ok = False
        while i < b and (buf[i] == 32 or buf[i] == 9 or buf[i] == 10 or buf[i] == 13):
            i += 1
        if i + 4 <= b and buf[i] == 110 and buf[i + 1] == 117 and buf[i + 2] == 108 \
                and buf[i + 3] == 108:  # null
            i += 4
            ok = True
        elif i < b and buf[i] == 91:  # [
            i += 1
            while i < b and (buf[i] == 32 or buf[i] == 9 or buf[i] == 10 or buf[i] == 13):
                i += 1
            if i < b and buf[i] == 93:  # ]
                i += 1
                ok = True
            else:
                while True:
                    # one integer
                    if i >= b or buf[i] < 48 or buf[i] > 57:
                        break
                    if buf[i] == 48 and i + 1 < b and 48 <= buf[i + 1] <= 57:
                        break  # leading zero
                    v = 0
                    big = False
                    while i < b and 48 <= buf[i] <= 57:
                        if not big:
                            v = v * 10 + (buf[i] - 48)
                            if v > 2147483647:
                                big = True
                        i += 1
                    if big:
                        break
                    ids[m] = v
                    m += 1
                    counts[k] += 1
                    while i < b and (buf[i] == 32 or buf[i] == 9 or buf[i] == 10 or buf[i] == 13):
                        i += 1
                    if i < b and buf[i] == 44:  # ,
                        i += 1
                        while i < b and (buf[i] == 32 or buf[i] == 9 or buf[i] == 10
                                         or buf[i] == 13):
                            i += 1
                        continue
                    if i < b and buf[i] == 93:  # ]
                        i += 1
                        ok = True
                    break
        if ok:
            while i < b and (buf[i] == 32 or buf[i] == 9 or buf[i] == 10 or buf[i] == 13):
                i += 1
            ok = i == b
        if not ok:
            return counts, ids[:m], k
        a = b
    return counts, ids[:m], -1
