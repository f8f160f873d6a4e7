"""Run reports: the reference's stdout sections and the ``--results-path`` JSON file.

Text matches BLIS @cbb0de7b ``cmd/root.go`` / ``sim/metrics.go`` byte for byte, including Go's
``encoding/json`` number formatting (``go_json_dumps``).  Numbers come from
``simulator.metrics``; nothing here computes statistics.
"""
from __future__ import annotations

import dataclasses
import math
import re
import sys
from typing import IO, Any

import numpy as np

from simulator.autoscale.report import autoscale_summary
from simulator.metrics import (
    Distribution,
    FitnessResult,
    MetricsBlock,
    RawMetrics,
    cluster_metrics,
    fitness,
    gateway_summary,
    goodput,
    request_outcomes,
    instance_metrics,
    jain_fairness_index,
    per_slo_distributions,
    per_tenant_distributions,
    raw_metrics,
    slo_attainment,
    tenant_throughput,
    trace_summary,
)
from simulator.disagg import pd_summary
from simulator.codepolicy import uses_code_policy
from simulator.fileio import atomic_write
from simulator.result import SimResult

# ---------------------------------------------------------------------------------------------
# Go encoding/json
# ---------------------------------------------------------------------------------------------


def go_float(x: float) -> str:
    """Format a float64 exactly like Go ``encoding/json``.

    Shortest round-trip digits; fixed notation for 1e-6 <= |x| < 1e21 (integral values without
    ``.0``); otherwise exponent notation with a two-digit negative exponent shortened
    (``1e-07`` -> ``1e-7``).  Non-finite values are unsupported in JSON: ValueError.
    """
    x = float(x)
    if math.isnan(x) or math.isinf(x):
        raise ValueError(f"json: unsupported value: {x!r}")
    if x == 0.0:
        return "-0" if math.copysign(1.0, x) < 0 else "0"
    r = repr(x)
    ax = abs(x)
    if ax < 1e-6 or ax >= 1e21:
        mant, exp = r.split("e")
        if len(exp) == 3 and exp[0] == "-" and exp[1] == "0":
            exp = "-" + exp[2]
        return mant + "e" + exp
    if "e" not in r:
        return r[:-2] if r.endswith(".0") else r
    # Python switched to exponent form (|x| < 1e-4 or >= 1e16): rewrite in fixed notation.
    mant, exp = r.split("e")
    sign = ""
    if mant[0] == "-":
        sign, mant = "-", mant[1:]
    int_part, _, frac_part = mant.partition(".")
    digits = (int_part + frac_part).lstrip("0") or "0"
    point = len(int_part) + int(exp)
    if point <= 0:
        body = "0." + "0" * (-point) + digits
    elif point >= len(digits):
        body = digits + "0" * (point - len(digits))
    else:
        body = digits[:point] + "." + digits[point:]
    return sign + body


_HEX = "0123456789abcdef"
_NEEDS_ESCAPE = re.compile(r'[^\x20-\x7e]|["\\<>&]')


def go_string(s: str) -> str:
    """Quote a string like Go ``encoding/json`` (HTML-safe: ``<``, ``>``, ``&`` escaped)."""
    if not _NEEDS_ESCAPE.search(s):
        return '"' + s + '"'
    out = ['"']
    for ch in s:
        o = ord(ch)
        if ch == '"':
            out.append('\\"')
        elif ch == "\\":
            out.append("\\\\")
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\r":
            out.append("\\r")
        elif ch == "\t":
            out.append("\\t")
        elif ch == "\b":
            out.append("\\b")
        elif ch == "\f":
            out.append("\\f")
        elif o < 0x20 or ch in "<>&":
            out.append("\\u00" + _HEX[o >> 4] + _HEX[o & 0xF])
        elif o in (0x2028, 0x2029):
            out.append("\\u%04x" % o)
        elif 0xD800 <= o <= 0xDFFF:
            out.append("\\ufffd")  # lone surrogate = invalid UTF-8 in Go
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def _scalar(v: Any, nonfinite_null: bool) -> str | None:
    """JSON text of a scalar, or None if ``v`` is a container."""
    t = type(v)
    if t is float:
        if nonfinite_null and not math.isfinite(v):
            return "null"
        return go_float(v)
    if t is str:
        return go_string(v)
    if t is int:
        return str(v)
    if v is None:
        return "null"
    if isinstance(v, (bool, np.bool_)):
        return "true" if v else "false"
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    if isinstance(v, (float, np.floating)):
        return _scalar(float(v), nonfinite_null)
    if isinstance(v, str):
        return go_string(v)
    return None


_KEY_CACHE: dict = {}


def _encode(v: Any, level: int, ind: str, parts: list, nonfinite_null: bool) -> None:
    text = _scalar(v, nonfinite_null)
    if text is not None:
        parts.append(text)
    elif isinstance(v, dict):
        if not v:
            parts.append("{}")
            return
        inner = "\n" + ind * (level + 1)
        parts.append("{")
        first = True
        for k, item in v.items():
            parts.append(inner if first else "," + inner)
            first = False
            key = _KEY_CACHE.get(k)
            if key is None:
                key = go_string(str(k)) + ": "
                if type(k) is str and len(_KEY_CACHE) < 4096:
                    _KEY_CACHE[k] = key
            parts.append(key)
            text = _scalar(item, nonfinite_null)
            if text is not None:
                parts.append(text)
            else:
                _encode(item, level + 1, ind, parts, nonfinite_null)
        parts.append("\n" + ind * level + "}")
    elif isinstance(v, (list, tuple, np.ndarray)):
        if len(v) == 0:
            parts.append("[]")
            return
        inner = "\n" + ind * (level + 1)
        parts.append("[")
        first = True
        for item in v:
            parts.append(inner if first else "," + inner)
            first = False
            _encode(item, level + 1, ind, parts, nonfinite_null)
        parts.append("\n" + ind * level + "]")
    elif dataclasses.is_dataclass(v) and not isinstance(v, type):
        _encode(dataclasses.asdict(v), level, ind, parts, nonfinite_null)
    else:
        raise TypeError(f"json: unsupported type {type(v).__name__}")


def go_json_dumps(obj: Any, indent: int = 2, *, nonfinite_null: bool = False) -> str:
    """Serialise like Go ``json.MarshalIndent(v, "", "  ")`` (dict order preserved).

    Why: the reference's stdout is compared byte for byte, and Go's float text differs from
    Python's ``json`` (``100`` vs ``100.0``, ``1e-7`` vs ``1e-07``).  NaN/Inf raise ValueError
    unless ``nonfinite_null`` (then ``null``; used only for our own results file).
    """
    parts: list[str] = []
    _encode(obj, 0, " " * indent, parts, nonfinite_null)
    return "".join(parts)


# ---------------------------------------------------------------------------------------------
# Stdout sections
# ---------------------------------------------------------------------------------------------

_BLOCK_HEADER = "=== Simulation Metrics ==="


def metrics_block_dict(block: MetricsBlock) -> dict:
    """Block fields in the reference's JSON order; ``kv_allocation_failures`` only when != 0."""
    d = dataclasses.asdict(block)
    if not d["kv_allocation_failures"]:
        del d["kv_allocation_failures"]
    return d


def format_metrics_block(block: MetricsBlock) -> str:
    """``=== Simulation Metrics ===`` + newline + Go-indented JSON of the block (no trailing
    newline; the caller ends the line).  ValueError if a field is non-finite (the reference's
    marshal fails then)."""
    return _BLOCK_HEADER + "\n" + go_json_dumps(metrics_block_dict(block))


def section_fitness(fr: FitnessResult) -> str:
    """Body of ``=== Fitness Evaluation ===``: ``Score: %.6f`` then ``  key: %.6f`` sorted."""
    lines = ["Score: %.6f" % fr.score]
    lines += ["  %s: %.6f" % (k, fr.components[k]) for k in sorted(fr.components)]
    return "\n".join(lines)


def section_anomalies(raw: RawMetrics) -> str | None:
    """Body of ``=== Anomaly Counters ===``, or None when every counter is 0."""
    if raw.priority_inversions <= 0 and raw.hol_blocking_events <= 0 and raw.rejected_requests <= 0:
        return None
    return (f"Priority Inversions: {raw.priority_inversions}\n"
            f"HOL Blocking Events: {raw.hol_blocking_events}\n"
            f"Rejected Requests: {raw.rejected_requests}")


def section_kv_cache(raw: RawMetrics) -> str | None:
    """Body of ``=== KV Cache Metrics ===`` (``%.4f``), or None when all three rates are 0."""
    if raw.preemption_rate == 0 and raw.cache_hit_rate == 0 and raw.kv_thrashing_rate == 0:
        return None
    return ("Preemption Rate: %.4f\nCache Hit Rate: %.4f\nKV Thrashing Rate: %.4f"
            % (raw.preemption_rate, raw.cache_hit_rate, raw.kv_thrashing_rate))


def section_per_slo(result: SimResult) -> str | None:
    """Body of ``=== Per-SLO Metrics ===`` (values in µs, as the reference prints them), or
    None with fewer than two classes."""
    dists = per_slo_distributions(result)
    if len(dists) <= 1:
        return None
    lines = []
    for cls in sorted(dists):
        t, e = dists[cls]
        lines.append(f"  {cls}:")
        lines.append("    TTFT: mean=%.2f p99=%.2f (n=%d)" % (t.mean, t.p99, t.count))
        lines.append("    E2E:  mean=%.2f p99=%.2f (n=%d)" % (e.mean, e.p99, e.count))
    return "\n".join(lines)


def section_trace_summary(summary: dict) -> str:
    """Body of ``=== Trace Summary ===`` from ``simulator.metrics.trace_summary``."""
    lines = [
        f"Total Decisions: {summary['total_decisions']}",
        f"  Admitted: {summary['admitted']}",
        f"  Rejected: {summary['rejected']}",
        f"Unique Targets: {summary['unique_targets']}",
    ]
    if summary["target_distribution"]:
        lines.append("Target Distribution:")
        lines += [f"  {k}: {v}" for k, v in summary["target_distribution"].items()]
    lines.append("Mean Regret: %.6f" % summary["mean_regret"])
    lines.append("Max Regret: %.6f" % summary["max_regret"])
    return "\n".join(lines)


def report_sections(result: SimResult, *, priority_policy: str, fitness_weights: dict | None,
                    summarize_trace: bool) -> dict:
    """The post-metrics stdout sections as ``{title: body}`` in print order (only those the
    reference would print).  Titles/bodies are the fixtures' ``sections`` strings."""
    raw = raw_metrics(result, priority_policy)
    out: dict[str, str] = {}
    if fitness_weights:
        out["Fitness Evaluation"] = section_fitness(fitness(raw, fitness_weights))
    body = section_anomalies(raw)
    if body is not None:
        out["Anomaly Counters"] = body
    body = section_kv_cache(raw)
    if body is not None:
        out["KV Cache Metrics"] = body
    body = section_per_slo(result)
    if body is not None:
        out["Per-SLO Metrics"] = body
    if summarize_trace and result.trace_on:
        out["Trace Summary"] = section_trace_summary(trace_summary(result))
    if result.autoscale is not None:
        a = autoscale_summary(result)
        out["Autoscaler"] = "\n".join(f"{k}: {a[k]}" for k in a if k != "decisions")
    gw = gateway_summary(result)
    if gw is not None:  # flow control or tenant budgets (not in the reference's stdout)
        wait = gw.pop("queue_wait")
        lines = [f"{k.replace('_', ' ').capitalize()}: {v}" for k, v in gw.items()]
        if wait.get("count"):
            lines.append("Queue Wait: mean=%.2f ms p99=%.2f ms max=%.2f ms (n=%d)"
                         % (wait["mean_ms"], wait["p99_ms"], wait["max_ms"], wait["count"]))
        out["Gateway"] = "\n".join(lines)
    return out


def _write_block(block: MetricsBlock, out: IO[str]) -> None:
    if block.completed_requests <= 0:
        return
    try:
        text = format_metrics_block(block)
    except ValueError as exc:  # reference prints the header, then fails to marshal
        out.write(_BLOCK_HEADER + "\n")
        print(f"blis: warning: cannot encode metrics for {block.instance_id}: {exc}",
              file=sys.stderr)
        return
    out.write(text + "\n")


def print_run_report(result: SimResult, *, sim_cfg, policy, fitness_weights: dict | None,
                     summarize_trace: bool, out: IO[str]) -> None:
    """Write the reference's stdout report (everything after the wall-clock log line).

    Order: per-instance blocks (only when N > 1, each only if it completed something),
    the cluster block (if anything completed), then Fitness Evaluation (if weights),
    Anomaly Counters, KV Cache Metrics, Per-SLO Metrics, Trace Summary (each only when the
    reference would print it).  ``sim_cfg`` is accepted for symmetry; N comes from ``result``.
    """
    n = int(result.num_instances)
    if n > 1:
        for i in range(n):
            _write_block(instance_metrics(result, i), out)
    _write_block(cluster_metrics(result), out)
    sections = report_sections(result, priority_policy=policy.priority,
                               fitness_weights=fitness_weights, summarize_trace=summarize_trace)
    for title, body in sections.items():
        out.write(f"=== {title} ===\n{body}\n")


# ---------------------------------------------------------------------------------------------
# Results file
# ---------------------------------------------------------------------------------------------


def _client_latencies_ms(result: SimResult, client_network, idx: np.ndarray):
    """(has_network, client TTFT ms, client E2E ms) for requests ``idx``, or None.

    ``client_network`` has per-request arrays ``rtt_ms`` (NaN = no network block) and
    ``bandwidth_mbps`` (<= 0 = unlimited), aligned with the result's requests.  A client value
    is 0 when the server value is absent (like ``ttft_ms`` / ``e2e_ms``).
    """
    if client_network is None:
        return None
    # lazy: only runs whose clients declare a network (spec or trace v2 workloads) load specs
    from simulator.workload.spec import upload_delay_us

    n = np.asarray(result.n_in).shape[0]
    rtt = np.asarray(client_network.rtt_ms, dtype=np.float64)
    bw = np.asarray(client_network.bandwidth_mbps, dtype=np.float64)
    if rtt.shape != (n,) or bw.shape != (n,):
        raise ValueError(f"client_network arrays must have one entry per request ({n}), "
                         f"got {rtt.shape} and {bw.shape}")
    rtt, bw = rtt[idx], bw[idx]
    has = ~np.isnan(rtt)
    if not has.any():
        return None
    n_in = np.asarray(result.n_in, dtype=np.float64)[idx]
    n_out = np.asarray(result.n_out, dtype=np.float64)[idx]
    up = upload_delay_us(bw, n_in)
    down = upload_delay_us(bw, n_out)
    ttft = np.asarray(result.ttft_us, dtype=np.float64)[idx]
    e2e = np.asarray(result.e2e_us, dtype=np.float64)[idx]
    c_ttft = ttft + rtt * 1000.0 + up
    c_e2e = e2e + rtt * 1000.0 + up + down
    c_ttft = np.where(np.isnan(c_ttft), 0.0, c_ttft / 1e3)
    c_e2e = np.where(np.isnan(c_e2e), 0.0, c_e2e / 1e3)
    return has, c_ttft, c_e2e


def request_rows(result: SimResult, client_network=None) -> list[dict]:
    """Per-request rows for every routed request, sorted by (arrived_at, requestID string).

    All latencies in true milliseconds (the reference writes itl/scheduling delay in µs);
    0 when absent.  ``slo_class``/``tenant_id`` only when non-empty.

    ``client_network`` (optional; e.g. ``SpecRequests.network``): per-request ``rtt_ms`` (NaN
    when the request's client has no network block) and ``bandwidth_mbps`` arrays.  Rows of
    requests with a network block then end with ``client_ttft_ms`` = server TTFT + RTT + upload
    and ``client_e2e_ms`` = server E2E + RTT + upload + download (4-byte tokens; see
    :func:`simulator.workload.spec.upload_delay_us`), 0 when the server value is absent.
    """
    idx = np.flatnonzero(np.asarray(result.req_instance) >= 0)
    if idx.size == 0:
        return []
    client = _client_latencies_ms(result, client_network, idx)
    arrival = np.asarray(result.arrival_us)[idx]
    ids = [f"request_{int(i)}" for i in idx]
    order = sorted(range(idx.size), key=lambda k: (int(arrival[k]), ids[k]))

    def ms(a):
        v = np.asarray(a, dtype=np.float64)[idx]
        return np.where(np.isnan(v), 0.0, v / 1e3)

    ttft = ms(result.ttft_us)
    itl = ms(result.itl_us)
    e2e = ms(result.e2e_us)
    sd_raw = np.asarray(result.sched_delay_us)[idx]
    sd = np.where(sd_raw >= 0, sd_raw.astype(np.float64) / 1e3, 0.0)
    n_in = np.asarray(result.n_in)[idx]
    n_out = np.asarray(result.n_out)[idx]
    inst = np.asarray(result.req_instance)[idx]
    slo = (np.asarray(result.slo_class)[idx] if result.slo_class is not None else None)
    ten = (np.asarray(result.tenant)[idx] if result.tenant is not None else None)
    rows = []
    for k in order:
        row = {
            "arrived_at": float(arrival[k]) / 1e6,
            "requestID": ids[k],
            "num_prefill_tokens": int(n_in[k]),
            "num_decode_tokens": int(n_out[k]),
            "ttft_ms": float(ttft[k]),
            "itl_ms": float(itl[k]),
            "e2e_ms": float(e2e[k]),
            "scheduling_delay_ms": float(sd[k]),
        }
        if slo is not None and result.slo_names[int(slo[k])]:
            row["slo_class"] = result.slo_names[int(slo[k])]
        if ten is not None and result.tenant_names[int(ten[k])]:
            row["tenant_id"] = result.tenant_names[int(ten[k])]
        row["handled_by"] = f"instance_{int(inst[k])}"
        if client is not None and client[0][k]:
            row["client_ttft_ms"] = float(client[1][k])
            row["client_e2e_ms"] = float(client[2][k])
        rows.append(row)
    return rows


def distribution_ms_dict(dist: Distribution) -> dict:
    """A tick-valued ``Distribution`` as ``{mean_ms, p50_ms, p95_ms, p99_ms, min_ms, max_ms,
    count}`` (milliseconds = ticks / 1000)."""
    return {
        "mean_ms": dist.mean / 1000,
        "p50_ms": dist.p50 / 1000,
        "p95_ms": dist.p95 / 1000,
        "p99_ms": dist.p99 / 1000,
        "min_ms": dist.min / 1000,
        "max_ms": dist.max / 1000,
        "count": int(dist.count),
    }


def grouped_distributions_doc(dists: dict) -> dict:
    """``{label: (ttft, e2e)}`` (from ``per_slo_distributions`` / ``per_tenant_distributions``)
    as ``{label: {"ttft": {...ms}, "e2e": {...ms}}}`` in key order."""
    return {lab: {"ttft": distribution_ms_dict(t), "e2e": distribution_ms_dict(e)}
            for lab, (t, e) in dists.items()}


def fairness_doc(result: SimResult) -> dict | None:
    """``{"jain_index", "tenant_throughput"}`` (output tokens/s of completed requests per
    tenant, see ``simulator.metrics.tenant_throughput``), or None with fewer than 2 tenants."""
    tput = tenant_throughput(result)
    if len(tput) < 2:
        return None
    return {"jain_index": jain_fairness_index(tput), "tenant_throughput": tput}


def results_document(result: SimResult, *, priority_policy: str, fitness_weights: dict | None,
                     summarize_trace: bool = False, slo_targets: dict | None = None,
                     client_network=None, code_policy: bool = False) -> dict:
    """The ``--results-path`` document as an ordered dict (see ``write_results_json``);
    ``code_policy``: a code policy ran, so ``anomalies`` reports its NaN/inf count."""
    raw = raw_metrics(result, priority_policy)
    doc = metrics_block_dict(cluster_metrics(result))
    doc["rejected_requests"] = int(result.rejected)
    doc["dropped_unservable"] = int(np.sum(result.inst_dropped))
    doc["kv_cache"] = {
        "preemption_rate": raw.preemption_rate,
        "cache_hit_rate": raw.cache_hit_rate,
        "kv_thrashing_rate": raw.kv_thrashing_rate,
    }
    if fitness_weights:
        fr = fitness(raw, fitness_weights)
        doc["fitness"] = {"score": fr.score, "components": dict(fr.components)}
    doc["anomalies"] = {
        "priority_inversions": raw.priority_inversions,
        "hol_blocking_events": raw.hol_blocking_events,
        "rejected_requests": raw.rejected_requests,
    }
    pd = pd_summary(result)
    if pd is not None:  # P/D disaggregated deployment
        doc["anomalies"]["pd_backpressure"] = pd["pd_backpressure"]
        doc["disaggregation"] = pd
    if code_policy:
        doc["anomalies"]["code_policy_nonfinite"] = int(result.code_nonfinite)
    doc["outcomes"] = request_outcomes(result)
    gw = gateway_summary(result)
    if gw is not None:
        doc["gateway"] = gw
    doc["per_slo"] = grouped_distributions_doc(per_slo_distributions(result))
    doc["per_tenant"] = grouped_distributions_doc(per_tenant_distributions(result))
    fair = fairness_doc(result)
    if fair is not None:
        doc["fairness"] = fair
    if slo_targets:
        doc["slo_attainment"] = slo_attainment(result, slo_targets)
        doc["goodput_rps"] = goodput(result, slo_targets)
    if result.trace_on:
        doc["trace_summary"] = trace_summary(result)
    if result.autoscale is not None:
        doc["autoscaler"] = autoscale_summary(result)
    doc["instances"] = [metrics_block_dict(instance_metrics(result, i))
                        for i in range(int(result.num_instances))]
    doc["requests"] = request_rows(result, client_network)
    return doc


def write_results_json(result: SimResult, path: str, *, sim_cfg, policy,
                       fitness_weights: dict | None, summarize_trace: bool,
                       slo_targets: dict | None = None, client_network=None) -> None:
    """Write the results file atomically (temp file in the same directory + ``os.replace``).

    Contents: the cluster block fields (reference names/units), ``rejected_requests``,
    ``dropped_unservable``, ``kv_cache``, ``fitness`` (when weights given), ``anomalies``
    (with ``code_policy_nonfinite``, the NaN/inf values code policies returned, when one ran),
    ``per_slo`` and ``per_tenant`` (``{name: {"ttft": {mean_ms, p50_ms, p95_ms, p99_ms, min_ms,
    max_ms, count}, "e2e": {...}}}``, the empty name as ``default``; always present),
    ``fairness`` (``{jain_index, tenant_throughput}``, only with >= 2 tenants),
    ``slo_attainment`` (``{class: fraction, "overall": fraction}``, only when ``slo_targets``
    ``{class: {ttft_ms, tpot_ms, e2e_ms}}`` is given and non-empty), ``trace_summary`` (when
    tracing is on), ``autoscaler`` (when autoscaled: see
    ``simulator.autoscale.report.autoscale_summary``), ``instances`` (every instance's block) and ``requests`` (see
    ``request_rows``; with ``client_network``, rows of requests whose client has a network block
    also carry ``client_ttft_ms`` / ``client_e2e_ms``).  Go number formatting; a non-finite
    value is ``null``.
    """
    doc = results_document(result, priority_policy=policy.priority,
                           fitness_weights=fitness_weights, summarize_trace=summarize_trace,
                           slo_targets=slo_targets, client_network=client_network,
                           code_policy=uses_code_policy(policy))
    atomic_write(path, go_json_dumps(doc, nonfinite_null=True) + "\n")
