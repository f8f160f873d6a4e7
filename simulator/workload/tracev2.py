"""Trace v2: a YAML header plus a CSV of per-request records (reference ``sim/workload/tracev2.go``
and ``replay.go`` @cbb0de7b), written by ``blis run --trace-output DIR`` and replayed through
``--workload-spec DIR`` (or ``--workload-spec DIR/header.yaml``).

Layout of a trace directory written by :func:`write_trace_v2` (``blis run``)::

    DIR/header.yaml   the reference's TraceHeader (trace_version: 2, time_unit: microseconds,
                      mode, warm_up_requests, workload_spec, server {...}, network {...}) plus a
                      ``blis_evo`` mapping with what an exact replay needs (see below)
    DIR/trace.csv     the reference's 22 columns, one row per simulated request, in request order
    DIR/tokens.npz    (blis-evo extension) the exact token ids: a compressed NumPy archive with
                      ``token_ptr`` (int64, n + 1) and ``tokens`` (int32), the Workload's CSR
                      layout (request i's input ids then output ids are
                      ``tokens[token_ptr[i]:token_ptr[i+1]]``)

A ``blis observe`` run (:func:`write_observed_trace`, ``mode: real``) writes the same three files
plus ``DIR/observed.csv`` (named by ``blis_evo.observed_file``): one row per request with
``request_id`` (row position), ``attempts`` (0 = never sent), ``first_send_time_us`` and the
server-reported ``server_prompt_tokens`` / ``server_completion_tokens`` (empty = unknown), and
records its settings in ``blis_evo.observe``.  Its CSV rows hold the measurements:
``arrival_time_us`` the scheduled send, ``send_time_us`` the actual send of the last attempt,
``first_chunk_time_us`` / ``last_chunk_time_us`` the first and last streamed content chunk (0
when none), ``num_chunks`` the content chunks received, ``status`` one of :data:`STATUSES`;
``input_tokens`` / ``output_tokens`` are what was sent and asked for.  :func:`read_trace_v2`
returns these columns of any trace as :attr:`TraceV2.observed` (:class:`ObservedRecords`).

The reference's CSV holds token *counts* only.  With ``tokens.npz`` present a replay uses the
exact ids, so export → replay reproduces the simulation bit for bit.  Without it (a trace from the
reference or from a real server) the ids are synthesised like the reference's
``LoadTraceV2Requests``: one RNG (seeded with the run's ``--seed``) first draws a 50-token prefix
for every ``prefix_group`` in first-appearance order, then for each row ``input_tokens`` fresh
input ids (appended to the group prefix, so the input is 50 tokens longer than the column, as in
the reference) and ``output_tokens`` output ids.  Ids are numpy's, not Go's.

The ``blis_evo`` header mapping (ignored by the reference's non-strict YAML reader) holds:
``data_file`` / ``tokens_file`` (names next to the header), ``horizon`` (the simulated horizon,
µs), ``slo_names`` / ``tenant_names`` (the code tables, ``null`` when the workload had none),
``slo_targets`` (per-class SLO targets of the spec's clients), ``prefix_lengths`` (tokens of each
prefix group's shared prefix) and ``clients`` (``id``, ``streaming``, ``prefix_group``, and
``rtt_ms`` / ``bandwidth_mbps`` when the client has a network block).

Requests are renumbered ``request_<i>`` by row position (the ``request_id`` column is checked but
not used as the id) and kept in file order, like CSV v1 traces.  Reading is strict, unlike the
reference (which turns unparsable numbers into 0): a malformed header, row, field or sidecar
raises :class:`~simulator.errors.InputError` naming the file, the row and the column.
"""
from __future__ import annotations

import csv
import dataclasses
import io
import math
import os
import re
import zipfile
from dataclasses import dataclass

import numpy as np
import yaml

from simulator.errors import InputError, one_line
from simulator.fileio import atomic_write
from simulator.kernels.request_states import REQ_COMPLETED, REQ_DROPPED, REQ_REJECTED
from simulator.workload.distribution import MAX_TOKEN_ID
from simulator.workload.generator import RequestNetwork, SpecRequests
from simulator.workload.types import Workload

TRACE_VERSION = 2
TIME_UNIT = "microseconds"
HEADER_FILE = "header.yaml"
DATA_FILE = "trace.csv"
TOKENS_FILE = "tokens.npz"
OBSERVED_FILE = "observed.csv"
EXT_KEY = "blis_evo"
REPLAY_PREFIX_LENGTH = 50
"""Synthetic prefix length per prefix group when no token sidecar exists (reference replay.go)."""

COLUMNS = (
    "request_id", "client_id", "tenant_id", "slo_class", "session_id", "round_index",
    "prefix_group", "streaming", "input_tokens", "output_tokens",
    "text_tokens", "image_tokens", "audio_tokens", "video_tokens", "reason_ratio",
    "arrival_time_us", "send_time_us", "first_chunk_time_us", "last_chunk_time_us",
    "num_chunks", "status", "error_message",
)
"""The reference's trace v2 CSV columns, in order."""

OBSERVED_COLUMNS = ("request_id", "attempts", "first_send_time_us", "server_prompt_tokens",
                    "server_completion_tokens")
"""Columns of the ``observed.csv`` sidecar of a ``blis observe`` trace (one row per request)."""

STATUSES = ("ok", "error", "timeout", "rejected", "cancelled")
"""Valid values of the ``status`` column (the reference writes the first three; ``rejected``
and ``cancelled`` come from ``blis observe``)."""

_HEADER_KEYS = ("trace_version", "time_unit", "created_at", "mode", "warm_up_requests",
                "workload_spec", "server", "network", EXT_KEY)
_SERVER_KEYS = {"type": str, "model": str, "tensor_parallel": int, "max_num_seqs": int,
                "block_size": int, "gpu_memory_utilization": float, "max_model_len": int}
_NETWORK_KEYS = {"measured_rtt_ms": float}
_INT_RE = re.compile(r"[+-]?[0-9]+")
_TRUE = ("1", "t", "T", "TRUE", "true", "True")
_FALSE = ("0", "f", "F", "FALSE", "false", "False")
_MASK64 = (1 << 64) - 1


@dataclass(frozen=True)
class TracePaths:
    """The files of one trace v2 (``tokens`` is None when there is no token sidecar)."""

    directory: str
    header: str
    data: str
    tokens: str | None
    observed: str | None = None


@dataclass(frozen=True)
class ObservedRecords:
    """Per-request outcomes of a trace, aligned with its requests (all times µs since the run
    start; arrays int64).

    From ``trace.csv``: ``send_us`` (``send_time_us``: when the request, or its last retry, was
    sent), ``first_chunk_us`` / ``last_chunk_us`` (first and last streamed content chunk; 0 when
    none arrived), ``num_chunks`` (content chunks received), ``status`` (one of
    :data:`STATUSES`) and ``error_message``.  From the ``observed.csv`` sidecar of a
    ``blis observe`` trace (-1 where unknown: no sidecar, or not reported by the server):
    ``attempts`` (HTTP attempts made, 0 = never sent), ``first_send_us`` (first attempt's send
    time), ``server_prompt_tokens`` / ``server_completion_tokens`` (the server's usage report).
    """

    send_us: np.ndarray
    first_chunk_us: np.ndarray
    last_chunk_us: np.ndarray
    num_chunks: np.ndarray
    status: tuple
    error_message: tuple
    attempts: np.ndarray
    first_send_us: np.ndarray
    server_prompt_tokens: np.ndarray
    server_completion_tokens: np.ndarray

    def __len__(self) -> int:
        return int(self.send_us.shape[0])

    @property
    def ok(self) -> np.ndarray:
        """Boolean mask of requests with status ``ok``."""
        return np.array([s == "ok" for s in self.status], dtype=bool)

    def head(self, count: int) -> "ObservedRecords":
        """The first ``count`` records."""
        return ObservedRecords(*(getattr(self, f.name)[:count]
                                 for f in dataclasses.fields(self)))


@dataclass(frozen=True)
class TraceV2:
    """A loaded trace v2.

    ``header`` is the parsed header mapping; ``requests`` a
    :class:`~simulator.workload.generator.SpecRequests` (its ``workload`` is what the simulator
    runs; ``client`` indexes ``clients``, -1 for rows with an empty ``client_id`` that the
    header's client table does not list); ``clients`` the per-client records (dicts with ``id``,
    ``streaming``, ``prefix_group`` and optional ``rtt_ms`` / ``bandwidth_mbps``);
    ``horizon`` the recorded horizon (µs) or None; ``slo_targets`` per-class targets or None;
    ``exact_tokens`` whether the ids came from the sidecar; ``observed`` the per-request
    outcome columns (:class:`ObservedRecords`: send / first-chunk / last-chunk times, chunks,
    status, and for ``blis observe`` traces attempts and server token counts).
    """

    paths: TracePaths
    header: dict
    requests: object
    clients: tuple
    horizon: int | None
    slo_targets: dict | None
    exact_tokens: bool
    observed: ObservedRecords | None = None

    @property
    def workload(self) -> Workload:
        """The request table to simulate."""
        return self.requests.workload


# ----------------------------------------------------------------------------------------------
# Locating and detecting
# ----------------------------------------------------------------------------------------------

def trace_v2_paths(path: str) -> TracePaths:
    """The header, data and token-sidecar files of the trace at ``path`` (a trace directory or
    its header file).  The data file is the header's ``blis_evo.data_file`` (default
    ``trace.csv``) next to the header.  Raises InputError when the header does not exist."""
    path = os.fspath(path)
    if os.path.isdir(path):
        directory, header = path, os.path.join(path, HEADER_FILE)
    else:
        directory, header = os.path.dirname(path) or ".", path
    if not os.path.isfile(header):
        raise InputError(f"trace v2: header file {header!r} does not exist")
    doc = _read_header_doc(header)
    ext = doc.get(EXT_KEY) if isinstance(doc.get(EXT_KEY), dict) else {}
    data_name = ext.get("data_file", DATA_FILE)
    tok_name = ext.get("tokens_file", TOKENS_FILE)
    obs_name = ext.get("observed_file")
    for key, val in (("data_file", data_name), ("tokens_file", tok_name),
                     ("observed_file", OBSERVED_FILE if obs_name is None else obs_name)):
        if not isinstance(val, str) or val == "" or os.path.basename(val) != val:
            raise InputError(f"{header}: {EXT_KEY}.{key} must be a plain file name, got {val!r}")
    tokens = os.path.join(directory, tok_name)
    observed = None if obs_name is None else os.path.join(directory, obs_name)
    return TracePaths(directory, header, os.path.join(directory, data_name),
                      tokens if os.path.isfile(tokens) else None, observed)


def is_trace_v2(path: str) -> bool:
    """Whether ``path`` is a trace v2: a directory holding ``header.yaml``, or a YAML file whose
    top level is a mapping with a ``trace_version`` key.  Never raises (unreadable or invalid
    files are "not a trace"; the workload-spec loader then reports them)."""
    try:
        path = os.fspath(path)
        if os.path.isdir(path):
            return os.path.isfile(os.path.join(path, HEADER_FILE))
        if not os.path.isfile(path) or os.path.getsize(path) > (16 << 20):
            return False
        with open(path, encoding="utf-8") as f:
            doc = yaml.safe_load(f)
        return isinstance(doc, dict) and "trace_version" in doc
    except Exception:  # noqa: BLE001 - detection only
        return False


# ----------------------------------------------------------------------------------------------
# Writing
# ----------------------------------------------------------------------------------------------

def _fmt_float(x: float) -> str:
    """Go ``strconv.FormatFloat(x, 'f', -1, 64)``: shortest round-trip digits, no exponent."""
    return np.format_float_positional(float(x), unique=True, trim="-")


def clients_from_spec(spec) -> list[dict]:
    """Per-client trace records (``id``, ``streaming``, ``prefix_group``, network) of a
    :class:`~simulator.workload.spec.WorkloadSpec`, in client order."""
    out = []
    for c in spec.clients:
        d = {"id": c.id, "streaming": bool(c.streaming), "prefix_group": c.prefix_group}
        if c.network is not None:
            d["rtt_ms"] = float(c.network.rtt_ms)
            d["bandwidth_mbps"] = float(c.network.bandwidth_mbps)
        out.append(d)
    return out


def _result_columns(workload: Workload, result, streaming: np.ndarray):
    """send (= arrival), first/last chunk times, num_chunks, status and error message per
    request of a simulation ``result`` (the simulated client sends at its arrival time)."""
    n = workload.num_requests
    arrival = np.asarray(workload.arrival_us, dtype=np.int64)
    if result is None:
        z = np.zeros(n, dtype=np.int64)
        return arrival, z, z, z, ["ok"] * n, [""] * n
    ttft = np.asarray(result.ttft_us, dtype=np.float64)
    e2e = np.asarray(result.e2e_us, dtype=np.float64)
    state = np.asarray(result.req_state)
    first = np.where(np.isnan(ttft), 0, arrival + np.rint(np.nan_to_num(ttft)).astype(np.int64))
    last = np.where(np.isnan(e2e), 0, arrival + np.rint(np.nan_to_num(e2e)).astype(np.int64))
    done = state == REQ_COMPLETED
    n_out = np.asarray(workload.n_out, dtype=np.int64)
    chunks = np.where(done, np.where(streaming, n_out, 1), 0)
    status, message = [], []
    for s in state.tolist():
        if s == REQ_COMPLETED:
            status.append("ok")
            message.append("")
        elif s == REQ_REJECTED:
            status.append("error")
            message.append("rejected by admission")
        elif s == REQ_DROPPED:
            status.append("error")
            message.append("dropped: does not fit in the KV cache")
        else:
            status.append("timeout")
            message.append("not completed before the horizon")
    return arrival, first, last, chunks, status, message


def write_trace_v2(directory, workload: Workload, result=None, *, header: dict,
                   details=None, clients=None, slo_targets: dict | None = None,
                   horizon: int | None = None) -> TracePaths:
    """Write ``workload`` (and, when given, the simulation ``result``) as a trace v2 into
    ``directory`` (created if missing); return the written :class:`TracePaths`.

    ``header``: header fields (``mode``, ``workload_spec``, ``server``, ``network``,
    ``created_at``, ``warm_up_requests``); ``trace_version`` and ``time_unit`` are set here, and
    nothing depends on the wall clock, so equal inputs give byte-identical files.
    ``details``: the :class:`~simulator.workload.generator.SpecRequests` of a spec-generated (or
    replayed) workload, for client/session/round/multimodal/reason columns; ``clients`` the
    per-client records (:func:`clients_from_spec`) its ``client`` indexes.  Without them those
    columns are empty/zero.  ``slo_targets`` and ``horizon`` are recorded for replay.
    With ``result``: send = arrival, first_chunk = arrival + TTFT, last_chunk = arrival + E2E
    (0 when absent), num_chunks = output tokens for completed streaming requests (1 if not
    streaming, 0 if not completed), status ok / error (rejected, dropped) / timeout.
    Each file is written to a temporary name and renamed; the header comes last.
    """
    cols = _request_columns(workload, details, clients)
    outcome = _result_columns(workload, result, cols.streaming)
    return _write_trace_files(directory, workload, cols, outcome, header=header,
                              slo_targets=slo_targets, horizon=horizon)


def write_observed_trace(directory, workload: Workload, records: ObservedRecords, *,
                         header: dict, details=None, clients=None,
                         slo_targets: dict | None = None, horizon: int | None = None,
                         observe: dict | None = None) -> TracePaths:
    """Write what a real server did with ``workload`` (``blis observe``) as a trace v2 into
    ``directory`` (created if missing); return the written :class:`TracePaths`.

    ``records`` (:class:`ObservedRecords`, one entry per request of ``workload`` in its order)
    fills ``send_time_us`` ... ``error_message`` as measured, and the ``observed.csv`` sidecar
    (attempts, first send, server-reported token counts).  ``input_tokens`` /
    ``output_tokens`` are what was sent (prompt length, requested output length), so
    ``tokens.npz`` holds exactly the prompts sent and a replay uses the same requests.  Every
    row is marked ``streaming`` (observe always streams).  ``header`` as for
    :func:`write_trace_v2` (``mode`` defaults to ``real``); ``observe`` is a mapping of the run's
    settings recorded as ``blis_evo.observe``.  Same atomic write order as
    :func:`write_trace_v2` (header last), so a reader never sees a header without its data.
    """
    n = workload.num_requests
    if len(records) != n:
        raise ValueError(f"write_observed_trace: {len(records)} records for {n} requests")
    bad = sorted(set(records.status) - set(STATUSES))
    if bad:
        raise ValueError(f"write_observed_trace: unknown status {bad[0]!r}; valid: "
                         + ", ".join(STATUSES))
    clients = [dict(c, streaming=True) for c in (clients or [])]
    cols = _request_columns(workload, details, clients)
    if details is not None and not clients:
        cols = dataclasses.replace(cols, clients=[dict(c, streaming=True) for c in cols.clients])
    cols = dataclasses.replace(cols, streaming=np.ones(n, dtype=bool))
    outcome = (records.send_us, records.first_chunk_us, records.last_chunk_us,
               records.num_chunks, list(records.status), list(records.error_message))
    ext = {"observed_file": OBSERVED_FILE}
    if observe:
        ext["observe"] = dict(observe)
    header = dict(header)
    header.setdefault("mode", "real")
    return _write_trace_files(directory, workload, cols, outcome, header=header,
                              slo_targets=slo_targets, horizon=horizon, ext_extra=ext,
                              sidecars={OBSERVED_FILE: _observed_csv(records)})


@dataclass(frozen=True)
class _RequestColumns:
    """Per-request spec columns of a trace (client, session, round, reason, modality counts,
    prefix length, streaming) and the client table ``client`` indexes."""

    client_of: np.ndarray
    session: np.ndarray
    round_index: np.ndarray
    reason: np.ndarray
    modality: list
    prefix_length: np.ndarray
    streaming: np.ndarray
    clients: list


def _request_columns(workload: Workload, details, clients) -> _RequestColumns:
    """The spec columns from ``details`` (a SpecRequests) or empty/zero ones without it."""
    n = workload.num_requests
    clients = list(clients or [])
    if details is not None:
        client_of = np.asarray(details.client, dtype=np.int64)
        session = np.asarray(details.session, dtype=np.int64)
        rnd = np.asarray(details.round_index, dtype=np.int64)
        reason = np.asarray(details.reason_ratio, dtype=np.float64)
        mm = [np.asarray(getattr(details, f"{k}_tokens"), dtype=np.int64)
              for k in ("text", "image", "audio", "video")]
        plen = np.asarray(details.prefix_length, dtype=np.int64)
        if not clients:
            clients = [{"id": cid, "streaming": False, "prefix_group": ""}
                       for cid in details.client_ids]
    else:
        client_of = np.full(n, -1, dtype=np.int64)
        session = np.full(n, -1, dtype=np.int64)
        rnd = np.zeros(n, dtype=np.int64)
        reason = np.zeros(n)
        mm = [np.zeros(n, dtype=np.int64) for _ in range(4)]
        plen = np.zeros(n, dtype=np.int64)
    cinfo = clients + [{"id": "", "streaming": False, "prefix_group": ""}]
    streaming = np.array([bool(cinfo[c].get("streaming", False)) for c in client_of.tolist()],
                         dtype=bool) if n else np.zeros(0, dtype=bool)
    return _RequestColumns(client_of, session, rnd, reason, mm, plen, streaming, clients)


def _trace_csv(workload: Workload, cols: _RequestColumns, outcome) -> str:
    """The trace.csv text: the reference's 22 columns, one row per request."""
    n = workload.num_requests
    send, first, last, chunks, status, message = outcome
    arrival = np.asarray(workload.arrival_us, dtype=np.int64)
    cinfo = cols.clients + [{"id": "", "streaming": False, "prefix_group": ""}]
    slo = workload.slo_class.tolist() if workload.slo_class is not None else [0] * n
    ten = workload.tenant.tolist() if workload.tenant is not None else [0] * n
    sn = workload.slo_names if workload.slo_class is not None else ("",)
    tn = workload.tenant_names if workload.tenant is not None else ("",)
    mm = cols.modality
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(COLUMNS)
    n_in = workload.n_in.tolist()
    n_out = workload.n_out.tolist()
    for i in range(n):
        c = int(cols.client_of[i])
        session = int(cols.session[i])
        w.writerow([
            i, cinfo[c]["id"], tn[ten[i]], sn[slo[i]],
            str(session) if session >= 0 else "", int(cols.round_index[i]),
            cinfo[c].get("prefix_group", ""), "true" if cols.streaming[i] else "false",
            n_in[i], n_out[i], int(mm[0][i]), int(mm[1][i]), int(mm[2][i]), int(mm[3][i]),
            _fmt_float(cols.reason[i]), int(arrival[i]), int(send[i]), int(first[i]),
            int(last[i]), int(chunks[i]), status[i], message[i],
        ])
    return buf.getvalue()


def _write_trace_files(directory, workload: Workload, cols: _RequestColumns, outcome, *,
                       header: dict, slo_targets, horizon, ext_extra: dict | None = None,
                       sidecars: dict | None = None) -> TracePaths:
    """Write tokens.npz, trace.csv, the ``sidecars`` ({file name: text}) and header.yaml
    (last), each atomically; ``ext_extra`` is merged into the header's ``blis_evo`` mapping."""
    directory = os.fspath(directory)
    os.makedirs(directory, exist_ok=True)
    prefix_lengths: dict[str, int] = {}
    cinfo = cols.clients + [{"id": "", "streaming": False, "prefix_group": ""}]
    for c, p in zip(cols.client_of.tolist(), cols.prefix_length.tolist()):
        g = cinfo[c].get("prefix_group", "")
        if g and g not in prefix_lengths:
            prefix_lengths[g] = int(p)
    slo_names = list(workload.slo_names) if workload.slo_class is not None else None
    tenant_names = list(workload.tenant_names) if workload.tenant is not None else None
    data = _trace_csv(workload, cols, outcome)

    doc = {"trace_version": TRACE_VERSION, "time_unit": TIME_UNIT}
    if header.get("created_at"):
        doc["created_at"] = str(header["created_at"])
    doc["mode"] = str(header.get("mode", "generated"))
    doc["warm_up_requests"] = int(header.get("warm_up_requests", 0))
    if header.get("workload_spec"):
        doc["workload_spec"] = str(header["workload_spec"])
    for key in ("server", "network"):
        sub = {k: v for k, v in (header.get(key) or {}).items() if v not in (None, "", 0, 0.0)}
        if sub:
            doc[key] = sub
    doc[EXT_KEY] = {
        "data_file": DATA_FILE,
        "tokens_file": TOKENS_FILE,
        "horizon": None if horizon is None else int(horizon),
        "slo_names": slo_names,
        "tenant_names": tenant_names,
        "slo_targets": slo_targets or None,
        "prefix_lengths": prefix_lengths,
        "clients": cols.clients,
    }
    doc[EXT_KEY].update(ext_extra or {})
    tok = io.BytesIO()
    np.savez_compressed(tok, token_ptr=np.asarray(workload.token_ptr, dtype=np.int64),
                        tokens=np.asarray(workload.tokens, dtype=np.int32))
    paths = TracePaths(directory, os.path.join(directory, HEADER_FILE),
                       os.path.join(directory, DATA_FILE), os.path.join(directory, TOKENS_FILE),
                       os.path.join(directory, OBSERVED_FILE)
                       if OBSERVED_FILE in (sidecars or {}) else None)
    atomic_write(paths.tokens, _deterministic_npz(tok.getvalue()))
    atomic_write(paths.data, data.encode("utf-8"))
    for name, text in (sidecars or {}).items():
        atomic_write(os.path.join(directory, name), text.encode("utf-8"))
    atomic_write(paths.header, yaml.safe_dump(doc, sort_keys=False, allow_unicode=True,
                                               default_flow_style=False).encode("utf-8"))
    return paths


def _observed_csv(records: ObservedRecords) -> str:
    """The observed.csv sidecar text (see :data:`OBSERVED_COLUMNS`); -1 counts are empty."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(OBSERVED_COLUMNS)
    opt = lambda v: "" if v < 0 else int(v)  # noqa: E731
    for i in range(len(records)):
        w.writerow([i, int(records.attempts[i]), opt(records.first_send_us[i]),
                    opt(records.server_prompt_tokens[i]),
                    opt(records.server_completion_tokens[i])])
    return buf.getvalue()


def _deterministic_npz(data: bytes) -> bytes:
    """Rewrite a zip archive with fixed member timestamps (numpy stamps the wall clock)."""
    src = zipfile.ZipFile(io.BytesIO(data))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            zi = zipfile.ZipInfo(info.filename, date_time=(1980, 1, 1, 0, 0, 0))
            zi.compress_type = zipfile.ZIP_DEFLATED
            zi.external_attr = 0o644 << 16
            dst.writestr(zi, src.read(info.filename))
    return out.getvalue()


# ----------------------------------------------------------------------------------------------
# Reading
# ----------------------------------------------------------------------------------------------

def _read_header_doc(path: str) -> dict:
    try:
        with open(path, encoding="utf-8") as f:
            doc = yaml.safe_load(f)
    except yaml.YAMLError as exc:
        raise InputError(f"{path}: invalid YAML in trace header: {one_line(exc)}") \
            from None
    except UnicodeDecodeError:
        raise InputError(f"{path}: trace header is not UTF-8 text") from None
    if not isinstance(doc, dict):
        raise InputError(f"{path}: trace header must be a YAML mapping")
    return doc


def _want(path: str, key: str, value, typ):
    if typ is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if not isinstance(value, typ) or isinstance(value, bool) and typ is not bool:
        raise InputError(f"{path}: {key} must be {typ.__name__}, got {value!r}")
    if typ is float and not math.isfinite(value):
        raise InputError(f"{path}: {key} must be finite, got {value!r}")
    return value


def _parse_header(path: str) -> dict:
    doc = _read_header_doc(path)
    for key in doc:
        if key not in _HEADER_KEYS:
            raise InputError(f"{path}: unknown trace header key {key!r}; valid: "
                             + ", ".join(_HEADER_KEYS))
    if doc.get("trace_version") != TRACE_VERSION or isinstance(doc.get("trace_version"), bool):
        raise InputError(f"{path}: trace_version must be {TRACE_VERSION}, "
                         f"got {doc.get('trace_version')!r}")
    unit = doc.get("time_unit", TIME_UNIT)
    if unit not in (TIME_UNIT, "us"):
        raise InputError(f"{path}: time_unit must be {TIME_UNIT!r}, got {unit!r}")
    for key, typ in (("created_at", str), ("mode", str), ("workload_spec", str)):
        if doc.get(key) is not None:
            _want(path, key, doc[key], typ)
    if doc.get("mode") not in (None, "", "real", "generated"):
        raise InputError(f"{path}: mode must be 'real' or 'generated', got {doc['mode']!r}")
    if doc.get("warm_up_requests") is not None:
        if _want(path, "warm_up_requests", doc["warm_up_requests"], int) < 0:
            raise InputError(f"{path}: warm_up_requests must be >= 0")
    for sect, keys in (("server", _SERVER_KEYS), ("network", _NETWORK_KEYS)):
        sub = doc.get(sect)
        if sub is None:
            continue
        if not isinstance(sub, dict):
            raise InputError(f"{path}: {sect} must be a mapping")
        for k, v in sub.items():
            if k not in keys:
                raise InputError(f"{path}: unknown key {sect}.{k}; valid: {', '.join(keys)}")
            if v is not None:
                _want(path, f"{sect}.{k}", v, keys[k])
    ext = doc.get(EXT_KEY)
    if ext is not None and not isinstance(ext, dict):
        raise InputError(f"{path}: {EXT_KEY} must be a mapping")
    return doc


def _ext(path: str, doc: dict) -> dict:
    """The validated ``blis_evo`` header mapping (empty when absent)."""
    ext = doc.get(EXT_KEY) or {}
    if ext.get("observe") is not None and not isinstance(ext["observe"], dict):
        raise InputError(f"{path}: {EXT_KEY}.observe must be a mapping")
    allowed = ("data_file", "tokens_file", "horizon", "slo_names", "tenant_names", "slo_targets",
               "prefix_lengths", "clients", "observed_file", "observe")
    for k in ext:
        if k not in allowed:
            raise InputError(f"{path}: unknown key {EXT_KEY}.{k}; valid: {', '.join(allowed)}")
    if ext.get("horizon") is not None and (_want(path, f"{EXT_KEY}.horizon", ext["horizon"], int)
                                           <= 0):
        raise InputError(f"{path}: {EXT_KEY}.horizon must be > 0, got {ext['horizon']}")
    for key in ("slo_names", "tenant_names"):
        v = ext.get(key)
        if v is not None and (not isinstance(v, list) or not v
                              or not all(isinstance(s, str) for s in v) or len(set(v)) != len(v)):
            raise InputError(f"{path}: {EXT_KEY}.{key} must be a non-empty list of distinct "
                             f"strings, got {v!r}")
    t = ext.get("slo_targets")
    if t is not None:
        if not isinstance(t, dict):
            raise InputError(f"{path}: {EXT_KEY}.slo_targets must be a mapping")
        for cls, d in t.items():
            if not isinstance(d, dict):
                raise InputError(f"{path}: {EXT_KEY}.slo_targets.{cls} must be a mapping")
            for k, v in d.items():
                if k not in ("ttft_ms", "tpot_ms", "e2e_ms"):
                    raise InputError(f"{path}: unknown key {EXT_KEY}.slo_targets.{cls}.{k}")
                _want(path, f"{EXT_KEY}.slo_targets.{cls}.{k}", v, float)
    pl = ext.get("prefix_lengths") or {}
    if not isinstance(pl, dict):
        raise InputError(f"{path}: {EXT_KEY}.prefix_lengths must be a mapping")
    for g, v in pl.items():
        if _want(path, f"{EXT_KEY}.prefix_lengths.{g}", v, int) < 0:
            raise InputError(f"{path}: {EXT_KEY}.prefix_lengths.{g} must be >= 0")
    clients = ext.get("clients") or []
    if not isinstance(clients, list):
        raise InputError(f"{path}: {EXT_KEY}.clients must be a list")
    ckeys = {"id": str, "streaming": bool, "prefix_group": str, "rtt_ms": float,
             "bandwidth_mbps": float}
    for i, c in enumerate(clients):
        if not isinstance(c, dict) or not isinstance(c.get("id"), str):
            raise InputError(f"{path}: {EXT_KEY}.clients[{i}] must be a mapping with an id")
        for k, v in c.items():
            if k not in ckeys:
                raise InputError(f"{path}: unknown key {EXT_KEY}.clients[{i}].{k}")
            _want(path, f"{EXT_KEY}.clients[{i}].{k}", v, ckeys[k])
    return ext


def _int_field(where: str, text: str, *, lo: int | None = 0) -> int:
    if not _INT_RE.fullmatch(text):
        raise InputError(f"{where}: must be an integer, got {text!r}")
    v = int(text)
    if lo is not None and v < lo:
        raise InputError(f"{where}: must be >= {lo}, got {v}")
    if v >= 2**63:
        raise InputError(f"{where}: out of range, got {v}")
    return v


def _csv_file(path: str, what: str, missing: str) -> tuple[list[str] | None, list[list[str]]]:
    """(header row or None, body rows) of a strict CSV file; InputError for malformed CSV,
    non-UTF-8 text (``"<path>: <what> is not UTF-8 text"``) or a missing file (``missing``)."""
    try:
        with open(path, encoding="utf-8", newline="") as f:
            reader = csv.reader(f, strict=True)
            return next(reader, None), list(reader)
    except csv.Error as exc:
        raise InputError(f"{path}: malformed CSV: {exc}") from None
    except UnicodeDecodeError:
        raise InputError(f"{path}: {what} is not UTF-8 text") from None
    except FileNotFoundError:
        raise InputError(missing) from None


def _read_rows(path: str) -> list[list[str]]:
    head, rows = _csv_file(path, "trace data", f"trace v2: data file {path!r} does not exist")
    if head is None:
        raise InputError(f"{path}: empty trace data file (no CSV header row)")
    if tuple(h.strip() for h in head) != COLUMNS:
        raise InputError(f"{path} row 1: CSV header must be the {len(COLUMNS)} trace v2 "
                         f"columns {','.join(COLUMNS)}")
    for r, row in enumerate(rows):
        if len(row) != len(COLUMNS):
            raise InputError(f"{path} row {r + 2}: has {len(row)} columns, "
                             f"expected {len(COLUMNS)}")
    return rows


def _load_tokens(path: str, n_in: np.ndarray, n_out: np.ndarray):
    try:
        with np.load(path, allow_pickle=False) as z:
            if set(z.files) != {"token_ptr", "tokens"}:
                raise InputError(f"{path}: token sidecar must hold exactly token_ptr and tokens, "
                                 f"got {sorted(z.files)}")
            ptr = np.asarray(z["token_ptr"])
            tokens = np.asarray(z["tokens"])
    except InputError:
        raise
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        raise InputError(f"{path}: unreadable token sidecar: {one_line(exc)}") \
            from None
    n = n_in.shape[0]
    if ptr.dtype.kind not in "iu" or tokens.dtype.kind not in "iu" or ptr.ndim != 1 \
            or tokens.ndim != 1:
        raise InputError(f"{path}: token_ptr and tokens must be 1-D integer arrays")
    if ptr.shape[0] != n + 1:
        raise InputError(f"{path}: token_ptr has {ptr.shape[0]} entries, expected {n + 1} "
                         f"(one more than the {n} trace rows)")
    ptr = ptr.astype(np.int64)
    lens = np.diff(ptr)
    want = n_in + n_out
    if ptr[0] != 0 or ptr[-1] != tokens.shape[0] or np.any(lens != want):
        bad = np.flatnonzero(lens != want)
        row = f" (first mismatch at data row {int(bad[0]) + 2})" if bad.size else ""
        raise InputError(f"{path}: token_ptr does not match input_tokens + output_tokens of the "
                         f"trace rows{row}")
    if tokens.size and (tokens.min() < 0 or tokens.max() > 2**31 - 1):
        raise InputError(f"{path}: token ids must be non-negative int32 values")
    return ptr, tokens.astype(np.int32)


def _synthetic_tokens(rng: np.random.Generator, groups: list[str], new_in: np.ndarray,
                      n_out: np.ndarray):
    """Reference replay: one prefix per group first, then fresh input and output ids per row."""
    order = list(dict.fromkeys(g for g in groups if g))
    table = (rng.integers(0, MAX_TOKEN_ID, size=(len(order), REPLAY_PREFIX_LENGTH),
                          dtype=np.int32) if order else np.zeros((0, 0), dtype=np.int32))
    code = {g: k for k, g in enumerate(order)}
    gcode = np.array([code.get(g, -1) for g in groups], dtype=np.int64)
    plen = np.where(gcode >= 0, REPLAY_PREFIX_LENGTH, 0).astype(np.int64)
    n_in = plen + new_in
    lens = n_in + n_out
    ptr = np.zeros(lens.shape[0] + 1, dtype=np.int64)
    np.cumsum(lens, out=ptr[1:])
    total = int(ptr[-1])
    fresh = rng.integers(0, MAX_TOKEN_ID, size=int((new_in + n_out).sum()), dtype=np.int32)
    tokens = np.empty(total, dtype=np.int32)
    offset = np.arange(total, dtype=np.int64) - np.repeat(ptr[:-1], lens)
    is_prefix = offset < np.repeat(plen, lens)
    tokens[~is_prefix] = fresh
    if is_prefix.any():
        tokens[is_prefix] = table[np.repeat(gcode, lens)[is_prefix], offset[is_prefix]]
    return n_in, plen, ptr, tokens


def read_trace_v2(path, *, seed: int = 0) -> TraceV2:
    """Load the trace v2 at ``path`` (its directory or its header file) as a :class:`TraceV2`.

    Token ids come from the ``tokens.npz`` sidecar when present (exact replay), else they are
    synthesised from ``seed`` like the reference's replay (see the module docstring).  Strict:
    raises InputError naming the file, row and column of the first malformed value.
    """
    paths = trace_v2_paths(path)
    doc = _parse_header(paths.header)
    ext = _ext(paths.header, doc)
    rows = _read_rows(paths.data)
    n = len(rows)
    d = paths.data

    def where(r: int, c: int) -> str:
        return f"{d} row {r + 2} column {c + 1} ({COLUMNS[c]})"

    ints = {c: np.zeros(n, dtype=np.int64) for c in (0, 5, 8, 9, 10, 11, 12, 13, 15, 16, 17, 18,
                                                      19)}
    reason = np.zeros(n)
    streaming = np.zeros(n, dtype=bool)
    for r, row in enumerate(rows):
        for c, arr in ints.items():
            arr[r] = _int_field(where(r, c), row[c])
        t = row[14]
        try:
            v = float(t) if t == t.strip() and "_" not in t and t else None
        except ValueError:
            v = None
        if v is None or not math.isfinite(v) or not 0.0 <= v <= 1.0:
            raise InputError(f"{where(r, 14)}: must be a number in [0, 1], got {t!r}")
        reason[r] = v
        if row[7] in _TRUE:
            streaming[r] = True
        elif row[7] not in _FALSE:
            raise InputError(f"{where(r, 7)}: must be true or false, got {row[7]!r}")
        if row[20] not in STATUSES and row[20] != "":
            raise InputError(f"{where(r, 20)}: must be one of {', '.join(STATUSES)}, "
                             f"got {row[20]!r}")
    arrival = ints[15]
    new_in, n_out = ints[8], ints[9]

    # clients: the header's table (exact round trip), then ids first seen in the rows
    clients = [dict(c) for c in ext.get("clients") or []]
    cindex: dict[str, int] = {}
    for k, c in enumerate(clients):
        cindex.setdefault(c["id"], k)
    client_of = np.zeros(n, dtype=np.int32)
    for r, row in enumerate(rows):
        cid = row[1]
        if cid == "" and cid not in cindex:
            client_of[r] = -1  # no client (e.g. a CSV v1 workload); -1 also in write_trace_v2
            continue
        if cid not in cindex:
            cindex[cid] = len(clients)
            clients.append({"id": cid, "streaming": bool(streaming[r]), "prefix_group": row[6]})
        client_of[r] = cindex[cid]

    # SLO class / tenant code tables
    def codes(col: int, names_key: str):
        names = ext.get(names_key)
        if names_key in ext and names is None:
            for r, row in enumerate(rows):
                if row[col] != "":
                    raise InputError(f"{where(r, col)}: must be empty ({EXT_KEY}.{names_key} "
                                     f"is null), got {row[col]!r}")
            return None, ("",)
        names = list(names) if names is not None else list(dict.fromkeys(
            row[col] for row in rows)) or [""]
        idx = {s: k for k, s in enumerate(names)}
        out = np.zeros(n, dtype=np.int32)
        for r, row in enumerate(rows):
            if row[col] not in idx:
                raise InputError(f"{where(r, col)}: {row[col]!r} is not in {EXT_KEY}.{names_key}")
            out[r] = idx[row[col]]
        return out, tuple(names)

    slo, slo_names = codes(3, "slo_names")
    ten, tenant_names = codes(2, "tenant_names")

    groups = [row[6] for row in rows]
    if paths.tokens is not None:
        ptr, tokens = _load_tokens(paths.tokens, new_in, n_out)
        n_in = new_in
        pl = ext.get("prefix_lengths") or {}
        plen = np.array([int(pl.get(g, 0)) if g else 0 for g in groups], dtype=np.int64)
    else:
        rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence(int(seed) & _MASK64)))
        n_in, plen, ptr, tokens = _synthetic_tokens(rng, groups, new_in, n_out)

    sess_code: dict[str, int] = {}
    session = np.full(n, -1, dtype=np.int64)
    for r, row in enumerate(rows):
        s = row[4]
        if s == "":
            continue
        if _INT_RE.fullmatch(s) and int(s) >= 0:
            session[r] = int(s)
        else:
            session[r] = sess_code.setdefault(s, len(sess_code))
    wl = Workload(arrival, n_in, n_out, ptr, tokens, slo, ten, slo_names, tenant_names)
    rtt = np.array([c.get("rtt_ms", np.nan) for c in clients] + [np.nan], dtype=np.float64)
    bw = np.array([c.get("bandwidth_mbps", 0.0) for c in clients] + [0.0], dtype=np.float64)
    network = RequestNetwork(rtt[client_of], bw[client_of])
    reqs = SpecRequests(wl, client_of, tuple(c["id"] for c in clients), session,
                        ints[5].astype(np.int32), reason, plen, ints[10], ints[11], ints[12],
                        ints[13], network=network)
    targets = ext.get("slo_targets")
    observed = _observed_records(paths.observed, rows, ints)
    return TraceV2(paths, doc, reqs, tuple(clients), ext.get("horizon"),
                   {k: dict(v) for k, v in targets.items()} if targets else None,
                   paths.tokens is not None, observed)


def _observed_records(path: str | None, rows: list, ints: dict) -> ObservedRecords:
    """The outcome columns of the trace rows plus, when ``path`` is given, the observed.csv
    sidecar (which must then exist and hold one row per trace row, in order)."""
    n = len(rows)
    unknown = np.full(n, -1, dtype=np.int64)
    extra = [unknown, unknown.copy(), unknown.copy(), unknown.copy()]
    if path is not None:
        extra = _read_observed_sidecar(path, n)
    return ObservedRecords(ints[16], ints[17], ints[18], ints[19],
                           tuple(row[20] for row in rows), tuple(row[21] for row in rows),
                           *extra)


def _read_observed_sidecar(path: str, n: int) -> list[np.ndarray]:
    """attempts, first_send_us, server prompt / completion tokens from observed.csv."""
    head, body = _csv_file(path, "observed sidecar",
                           f"trace v2: observed sidecar {path!r} does not exist")
    if head is None or tuple(h.strip() for h in head) != OBSERVED_COLUMNS:
        raise InputError(f"{path} row 1: CSV header must be the columns "
                         f"{','.join(OBSERVED_COLUMNS)}")
    if len(body) != n:
        raise InputError(f"{path}: has {len(body)} rows, expected {n} (one per trace row)")
    out = [np.full(n, -1, dtype=np.int64) for _ in range(4)]
    for r, row in enumerate(body):
        where = f"{path} row {r + 2}"
        if len(row) != len(OBSERVED_COLUMNS):
            raise InputError(f"{where}: has {len(row)} columns, expected {len(OBSERVED_COLUMNS)}")
        if _int_field(f"{where} column 1 (request_id)", row[0]) != r:
            raise InputError(f"{where} column 1 (request_id): must be {r}, got {row[0]!r}")
        for k in range(4):
            if row[k + 1] != "":
                out[k][r] = _int_field(f"{where} column {k + 2} ({OBSERVED_COLUMNS[k + 1]})",
                                       row[k + 1])
    return out


def load_trace_v2(path, *, seed: int = 0) -> Workload:
    """The request table of the trace v2 at ``path`` (directory or header file); see
    :func:`read_trace_v2`.  Raises InputError on a malformed trace."""
    return read_trace_v2(path, seed=seed).workload


def head_trace(trace: TraceV2, count: int) -> TraceV2:
    """``trace`` restricted to its first ``count`` requests (``count <= 0``: unchanged)."""
    r = trace.requests
    wl = r.workload
    if count <= 0 or count >= wl.num_requests:
        return trace
    end = int(wl.token_ptr[count])
    new_wl = Workload(wl.arrival_us[:count], wl.n_in[:count], wl.n_out[:count],
                      wl.token_ptr[:count + 1], wl.tokens[:end],
                      None if wl.slo_class is None else wl.slo_class[:count],
                      None if wl.tenant is None else wl.tenant[:count],
                      wl.slo_names, wl.tenant_names)
    net = r.network
    if net is not None:
        net = dataclasses.replace(net, rtt_ms=net.rtt_ms[:count],
                                  bandwidth_mbps=net.bandwidth_mbps[:count])
    sliced = {f.name: getattr(r, f.name)[:count] for f in dataclasses.fields(r)
              if f.name not in ("workload", "client_ids", "network")}
    reqs = dataclasses.replace(r, workload=new_wl, network=net, **sliced)
    observed = None if trace.observed is None else trace.observed.head(count)
    return dataclasses.replace(trace, requests=reqs, observed=observed)
