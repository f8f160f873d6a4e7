"""Text trace summaries: a compact markdown report of one run for LLM reflection.

:func:`summarize_text` turns a run (``SimResult`` + the ``Workload`` it simulated + the SLO
targets) into a deterministic 500-1500-token report in the shape of the evolutionary-policy
design's example: outcome vs targets, key issues with counts (rejections by admission, routing
away from cached prefixes, bursty tenants hurting the realtime class, KV pressure, load
imbalance within a pool of instances that could receive requests),
counterfactual regret, the worst decisions with their context and a suggested focus.  It is
what ``blis run --summarize-trace=text`` prints and what the OpenEvolve evaluator and the GEPA
adapter hand to the LLM.  The analyses live in :mod:`blis_evo.trace_analysis`.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Mapping

import numpy as np

from simulator.engine import ROUTER_BLOCK
from simulator.metrics import jain_fairness_index, raw_metrics, slo_attainment, tenant_throughput
from simulator.kernels.disagg import POOL_DECODE, POOL_PREFILL
from simulator.kernels.request_states import REQ_COMPLETED, REQ_DROPPED, REQ_REJECTED
from simulator.result import SimResult
from simulator.workload.types import Workload

from . import trace_analysis as ta

WORST_EXAMPLES = 3
BURST_HARM_RATIO = 1.2
"""A tenant's bursts are an issue when the realtime class's mean TTFT inside them exceeds this
multiple of its mean TTFT outside them (and some realtime TTFT misses arrived inside)."""
IMBALANCE_RATIO = 1.5
"""Routed-request ratio (busiest / idlest instance of a pool; per routable second when
autoscaled) above which load imbalance is an issue."""
IMBALANCE_MIN_GAP = 2
"""...and only when the busiest instance got at least this many requests more than the idlest."""
STICKY_SHARE = 0.5
"""Imbalance is blamed on prefix stickiness only when at least this share of the busiest
instance's routings went to it while it held part of the request's prefix."""


def approx_tokens(text: str) -> int:
    """Rough LLM token count of ``text``: words, numbers and punctuation marks each count one
    (close to a BPE tokenizer's count on this kind of report)."""
    return len(re.findall(r"\w+|[^\w\s]", text))


@dataclass(frozen=True)
class _Run:
    """Per-request views shared by the report sections (all arrays over all requests)."""

    result: SimResult
    arrived: np.ndarray
    ttft_ms: np.ndarray
    e2e_ms: np.ndarray
    cls: np.ndarray            # SLO class label per request ("default" for the empty name)
    tenant: np.ndarray         # tenant label per request
    targets: dict              # {class label: {ttft_ms/tpot_ms/e2e_ms: value}}
    order: np.ndarray
    audit: ta.PrefixAudit
    regret: np.ndarray | None
    counterfactual_k: int


def _labels(codes, names, n: int) -> np.ndarray:
    names = tuple(nm or "default" for nm in (names or ("",)))
    if codes is None:
        return np.full(n, names[0], dtype=object)
    return np.array(names, dtype=object)[np.asarray(codes, dtype=np.int64)]


def _targets_by_label(slo_targets: Mapping | None) -> dict:
    out: dict = {}
    for k, v in (slo_targets or {}).items():
        out["default" if k in ("", "default") else str(k)] = dict(v)
    return out


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


def _ms(x: float) -> str:
    return "n/a" if math.isnan(x) else f"{x:,.0f} ms"


def _pct(num: int, den: int) -> str:
    return f"{100.0 * num / den:.1f}%" if den else "n/a"


def _p99(values: np.ndarray) -> float:
    v = values[~np.isnan(values)]
    return float(np.percentile(v, 99)) if v.size else float("nan")


def _outcome(run: _Run, priority_policy: str) -> list[str]:
    res = run.result
    raw = raw_metrics(res, priority_policy)
    state = np.asarray(res.req_state)
    arrived = int(run.arrived.sum())
    completed = int(np.sum(state == REQ_COMPLETED))
    rejected = int(np.sum(state == REQ_REJECTED))
    dropped = int(np.sum(state == REQ_DROPPED))
    lines = ["## Outcome",
             f"- Throughput: {raw.tokens_per_sec:,.1f} tok/s, {raw.requests_per_sec:.2f} req/s; "
             f"completed {completed}/{arrived} (rejected {rejected}, dropped {dropped}, "
             f"unfinished {arrived - completed - rejected - dropped})",
             _dist_line("TTFT", raw.ttft), _dist_line("E2E", raw.e2e)]
    if run.targets:
        att = slo_attainment(res, {k: v for k, v in run.targets.items()})
        lines.append(f"- SLO attainment (all targets met): {100 * att['overall']:.1f}% overall")
    for lab in sorted(set(run.cls[run.arrived].tolist())):
        sel = run.arrived & (run.cls == lab)
        n = int(sel.sum())
        parts = [f"- Class {lab} ({n} requests):"]
        tg = run.targets.get(lab, {})
        for key, values in (("ttft_ms", run.ttft_ms), ("e2e_ms", run.e2e_ms)):
            name = key[:-3].upper()
            p99 = _p99(values[sel])
            if key in tg:
                within = int(np.sum(values[sel] <= tg[key]))
                verdict = "met" if p99 <= tg[key] else "MISSED"
                parts.append(f"{name} p99 {_ms(p99)} vs target {_ms(tg[key])} ({verdict}), "
                             f"{_pct(within, n)} within;")
            else:
                parts.append(f"{name} p99 {_ms(p99)} (no target);")
        lines.append(" ".join(parts).rstrip(";"))
    tput = tenant_throughput(res)
    if len(tput) >= 2:
        lines.append(f"- Tenant fairness (Jain): {jain_fairness_index(tput):.3f} over {len(tput)} tenants")
    lines.append("- Instances: " + "; ".join(_instance_notes(run)))
    if res.code_nonfinite:
        lines.append(f"- Code policy returned NaN/inf {int(res.code_nonfinite)} times "
                     "(each counted as the lowest score)")
    return lines


def _dist_line(name: str, dist) -> str:
    if not dist.count:
        return f"- {name}: n/a (no request has one)"
    return (f"- {name}: mean {_ms(dist.mean / 1000)}, p50 {_ms(dist.p50 / 1000)}, "
            f"p99 {_ms(dist.p99 / 1000)}")


@dataclass(frozen=True)
class _Pool:
    """Instances that could receive the same kind of routing, with what each received."""

    name: str                 # "" (whole cluster), "prefill" or "decode"
    instances: np.ndarray     # instance ids (ever routable when autoscaled)
    counts: np.ndarray        # routings each received
    seconds: np.ndarray | None  # routable seconds each (autoscaled runs), else None


def _pools(run: _Run) -> list[_Pool]:
    """The run's pools: under P/D the prefill instances with the prefill routings and the
    decode instances with the decode routings, else the whole cluster with the final routing
    of each request; under autoscaling only instances that were ever routable."""
    res = run.result
    n = int(res.num_instances)
    secs = ta.routable_seconds(res)
    if res.pd is None:
        groups = [("", np.arange(n), np.asarray(res.req_instance)[run.order])]
    else:
        pool = np.asarray(res.pd.inst_pool)
        groups = [(name, np.flatnonzero(pool == code), np.asarray(per)[run.order])
                  for name, code, per in (("prefill", POOL_PREFILL, res.pd.req_prefill_instance),
                                          ("decode", POOL_DECODE, res.pd.req_decode_instance))]
    out = []
    for name, inst, picks in groups:
        picks = picks[picks >= 0].astype(np.int64)
        counts = np.bincount(picks, minlength=n)
        if secs is not None:
            inst = inst[secs[inst] > 0]
        out.append(_Pool(name, inst, counts[inst], None if secs is None else secs[inst]))
    return out


def _instance_notes(run: _Run) -> list[str]:
    res = run.result
    secs = ta.routable_seconds(res)
    role = {}
    got = {}
    for p in _pools(run):
        for k, i in enumerate(p.instances.tolist()):
            role[i] = p.name
            got[i] = int(p.counts[k])
    notes = []
    for i in range(int(res.num_instances)):
        if i not in role:
            notes.append(f"i{i}: never routable")
            continue
        what = {"": "routed", "prefill": "prefills", "decode": "decodes"}[role[i]]
        tag = f" ({role[i]})" if role[i] else ""
        alive = f" in {secs[i]:.1f} routable s" if secs is not None else ""
        notes.append(f"i{i}{tag}: {got[i]} {what}{alive}, hit "
                     f"{100 * float(res.inst_cache_hit_rate[i]):.0f}%, "
                     f"{int(res.inst_preemptions[i])} preempt")
    return notes


@dataclass(frozen=True)
class _Imbalance:
    pool: str
    busy: int
    idle: int
    ratio: float
    sticky: float     # share of the busiest instance's routings where it held part of the prefix
    lines: list


def _imbalances(run: _Run) -> list[_Imbalance]:
    """Per pool with 2+ instances, the busiest vs the idlest instance (requests, or requests
    per routable second when autoscaled) when their ratio exceeds :data:`IMBALANCE_RATIO`."""
    out = []
    target = ta.dispatch_instance(run.result)[run.order]
    for p in _pools(run):
        if p.instances.size < 2:
            continue
        rate = p.counts / p.seconds if p.seconds is not None else p.counts.astype(np.float64)
        hi, lo = int(np.argmax(rate)), int(np.argmin(rate))
        if p.counts[hi] - p.counts[lo] < IMBALANCE_MIN_GAP:
            continue
        ratio = rate[hi] / rate[lo] if rate[lo] > 0 else math.inf
        if ratio <= IMBALANCE_RATIO:
            continue
        busy, idle = int(p.instances[hi]), int(p.instances[lo])
        mine = target == busy
        sticky = _stickiness(run, target, p, busy)
        where = f" in the {p.name} pool" if p.name else ""
        times = "no requests at all" if math.isinf(ratio) else f"{ratio:.1f}x"
        if p.seconds is None:
            head = (f"LOAD IMBALANCE{where}: instance {busy} got {int(p.counts[hi])} requests, "
                    f"instance {idle} only {int(p.counts[lo])} ({times})")
        else:
            head = (f"LOAD IMBALANCE{where}: instance {busy} got {int(p.counts[hi])} requests in "
                    f"{p.seconds[hi]:.1f} routable s ({rate[hi]:.2f}/s), instance {idle} only "
                    f"{int(p.counts[lo])} in {p.seconds[lo]:.1f} s ({rate[lo]:.2f}/s) "
                    f"({'none' if math.isinf(ratio) else f'{ratio:.1f}x'} per routable second)")
        lines = [head]
        if mine.any() and p.name != "decode":
            lines.append(f"   - {_pct(int(np.sum(run.audit.chosen[mine] > 0)), int(mine.sum()))} "
                         f"of instance {busy}'s routings went where part of the prefix was held")
        out.append(_Imbalance(p.name, busy, idle, ratio, sticky, lines))
    return out


def _stickiness(run: _Run, target: np.ndarray, pool: _Pool, busy: int) -> float:
    """Share of the busiest instance's routings that went to it while it held part of the
    prefix -- 0 unless prefix stickiness explains the imbalance: the decisions where no
    instance of the pool held any of the prefix ("cold") must not also pile onto it (a router
    stuck on one instance regardless of prefixes is not sticky).  0 for the decode pool (the
    audit follows the first pick)."""
    mine = target == busy
    if pool.name == "decode" or not mine.any():
        return 0.0
    in_pool = np.isin(target, pool.instances)
    cold = in_pool & (run.audit.chosen == 0) & (run.audit.best_other == 0)
    if int(cold.sum()) < 2 or np.mean(target[cold] == busy) > IMBALANCE_RATIO / pool.instances.size:
        return 0.0
    return float(np.mean(run.audit.chosen[mine] > 0))


def _admission(run: _Run) -> list[str] | None:
    """The rejected requests (of those that arrived) and which classes/tenants they hit."""
    rej = np.asarray(run.result.req_state) == REQ_REJECTED
    n_rej, n_arr = int(rej.sum()), int(run.arrived.sum())
    if not n_rej:
        return None
    lines = [f"ADMISSION: {n_rej} of {n_arr} arrived requests ({_pct(n_rej, n_arr)}) rejected"
             + (" -- nothing was served" if n_rej == n_arr else "")]
    for what, labels in (("class", run.cls), ("tenant", run.tenant)):
        names = sorted(set(labels[run.arrived].tolist()))
        if len(names) < 2 and what == "tenant":
            continue
        parts = [f"{nm} {int(np.sum(rej & (labels == nm)))}/{int(np.sum(run.arrived & (labels == nm)))}"
                 for nm in names]
        lines.append(f"   - rejected by {what}: " + ", ".join(parts))
    return lines


@dataclass(frozen=True)
class _Issues:
    lines: list
    routed_away: int
    bursty: list
    preemptions: int
    imbalances: list
    rejected: int
    all_rejected: bool


def _realtime(run: _Run) -> tuple[str | None, np.ndarray, np.ndarray]:
    """The tightest-TTFT class, its requests and those of them that missed the TTFT target."""
    with_ttft = sorted((v["ttft_ms"], k) for k, v in run.targets.items() if "ttft_ms" in v)
    n = run.arrived.shape[0]
    if not with_ttft:
        return None, np.zeros(n, dtype=bool), np.zeros(n, dtype=bool)
    target, lab = with_ttft[0]
    rt = run.arrived & (run.cls == lab)
    missed = rt & ~(run.ttft_ms <= target)
    return lab, rt, missed


def _issues(run: _Run) -> _Issues:
    res, audit = run.result, run.audit
    found: list[list[str]] = []
    admission = _admission(run)
    if admission:
        found.append(admission)
    decisions = int(run.order.size)
    away = audit.routed_away
    n_away = int(away.sum())
    if n_away:
        none = int(np.sum(away & (audit.chosen == 0)))
        lost_tokens = int(audit.lost_blocks.sum()) * ROUTER_BLOCK
        found.append([
            f"ROUTING: {n_away} of {decisions} decisions ({_pct(n_away, decisions)}) routed a "
            "request away from an instance known to hold more of its prefix",
            f"   - {none} of them went to an instance holding none of it (avoidable cache misses)",
            f"   - {lost_tokens:,} prompt tokens re-prefilled that another instance held "
            f"(mean {audit.lost_blocks[away].mean():.1f} blocks of {ROUTER_BLOCK} tokens per such decision)"])
    lab, rt, missed = _realtime(run)
    bursts = ta.tenant_bursts(res, rt, missed) if lab is not None else []
    bursty = [b for b in bursts if b.misses_inside > 0
              and b.ttft_inside_ms > BURST_HARM_RATIO * b.ttft_outside_ms]
    if bursty:
        n_missed = int(missed.sum())
        b = bursty[0]
        ratio = b.ttft_inside_ms / b.ttft_outside_ms if b.ttft_outside_ms > 0 else float("nan")
        block = [f"BURSTS: tenant \"{b.tenant}\" bursts ({b.windows} one-second windows, {b.requests} "
                 f"requests) coincided with {b.misses_inside} of {n_missed} {lab} TTFT misses "
                 f"({_pct(b.misses_inside, n_missed)})",
                 f"   - {lab} mean TTFT {_ms(b.ttft_inside_ms)} inside its bursts vs "
                 f"{_ms(b.ttft_outside_ms)} outside ({ratio:.1f}x)"]
        others = ", ".join(f"{o.tenant} ({o.misses_inside})" for o in bursty[1:4])
        if others:
            block.append(f"   - other bursting tenants (misses inside): {others}")
        found.append(block)
    pre = np.asarray(res.preemptions)
    n_pre = int(pre.sum())
    if n_pre or int(np.sum(res.inst_kv_alloc_failures)):
        worst = int(np.argmax(res.inst_preemptions))
        found.append([
            f"KV PRESSURE: {n_pre} preemptions ({n_pre / max(1, int(run.arrived.sum())):.3f} per "
            f"request); {int(np.sum(pre >= 2))} requests preempted more than once",
            f"   - instance {worst} had the most ({int(res.inst_preemptions[worst])}); KV allocation "
            f"failures {int(np.sum(res.inst_kv_alloc_failures))}; thrashing rate up to "
            f"{float(np.max(res.inst_kv_thrashing_rate)):.3f}"])
    imbalances = _imbalances(run)
    found.extend(im.lines for im in imbalances)
    lines = [f"## Key Issues ({len(found)} detected)"]
    if not found:
        lines.append("No admission, prefix-routing, burst, KV-pressure or imbalance issue detected.")
    for k, block in enumerate(found, 1):
        lines.append(f"{k}. {block[0]}")
        lines.extend(block[1:])
    n_rej = int(np.sum(np.asarray(res.req_state) == REQ_REJECTED))
    return _Issues(lines, n_away, bursty, n_pre, imbalances, n_rej,
                   bool(n_rej) and n_rej == int(run.arrived.sum()))


def _counterfactual(run: _Run) -> list[str]:
    lines = ["## Counterfactual Analysis"]
    res = run.result
    traced = int(np.asarray(res.route_target).size)
    if run.regret is None and res.trace_on and run.counterfactual_k > 0 and traced != run.order.size:
        lines.append(f"- Routing regret: not attributable to requests ({traced} routings traced "
                     f"for {run.order.size} routed requests: autoscaler drains re-routed some)")
    elif run.regret is None:
        lines.append("- Routing regret: not recorded (run with --trace-level decisions "
                     "--counterfactual-k K, K > 0)")
    elif run.regret.size == 0:
        lines.append("- Routing regret: no routing decisions")
    else:
        reg = run.regret
        pos = int(np.sum(reg > 0))
        scope = (" of the first pick, i.e. the prefill instance for disaggregated requests and "
                 "the decode instance otherwise" if res.pd is not None else "")
        lines.append(f"- Routing regret{scope} (best alternative's routing score minus the "
                     f"chosen one's; queue-depth difference for unscored policies): mean "
                     f"{reg.mean():.4f}, max {reg.max():.4f}; {pos} of {reg.size} decisions "
                     f"({_pct(pos, reg.size)}) had positive regret")
    audit = run.audit
    miss = audit.routed_away & (audit.chosen == 0)
    lines.append(f"- {int(miss.sum())} decisions where another instance held part of the prefix "
                 f"and the chosen one held none; routing them to the holder would have saved "
                 f"{int(audit.lost_blocks[miss].sum()) * ROUTER_BLOCK:,} prefill tokens")
    return lines


def _worst(run: _Run, k: int) -> list[int]:
    """Positions (in decision order) of the ``k`` worst decisions: among decisions that lost
    prefix or had positive regret (all decisions if none did), the highest TTFT first (no
    first token counts as infinite), ties by request index."""
    bad = run.audit.routed_away.copy()
    if run.regret is not None:
        bad |= run.regret > 0
    pos = np.flatnonzero(bad) if bad.any() else np.arange(run.order.size)
    ttft = run.ttft_ms[run.order[pos]]
    key = np.where(np.isnan(ttft), np.inf, ttft)
    ranked = pos[np.lexsort((run.order[pos], -key))]
    return ranked[:k].tolist()


def _worst_section(run: _Run, k: int) -> list[str]:
    picks = _worst(run, k)
    lines = [f"## Worst Decisions ({len(picks)} examples)"]
    res, audit = run.result, run.audit
    for n, d in enumerate(picks, 1):
        r = int(run.order[d])
        target = int(ta.dispatch_instance(res)[r])
        if res.pd is not None and int(res.pd.req_prefill_instance[r]) >= 0:
            dest = f"prefill instance {target}, decode instance {int(res.pd.req_decode_instance[r])}"
        else:
            dest = f"instance {target}"
        load = ta.outstanding_at(res, run.order, d)
        held = " ".join(f"i{i}={int(audit.held[d, i])}" for i in range(load.size))
        tg = run.targets.get(run.cls[r], {})
        ttft_t = f" (target {_ms(tg['ttft_ms'])}, {'met' if run.ttft_ms[r] <= tg['ttft_ms'] else 'missed'})" \
            if "ttft_ms" in tg else ""
        lines.append(f"{n}. t={int(res.routed_us[r]) / 1e6:.3f} s | request_{r} "
                     f"({run.tenant[r]}, {run.cls[r]}, {int(res.n_in[r])} prompt tokens) -> "
                     f"{dest}")
        lines.append(f"   Context: outstanding requests {' '.join(f'i{i}={int(v)}' for i, v in enumerate(load))}; "
                     f"prefix blocks known held {held} (of {int(audit.blocks[d])})")
        lines.append(f"   Result: TTFT {_ms(run.ttft_ms[r])}{ttft_t}; E2E {_ms(run.e2e_ms[r])}; "
                     f"preempted {int(res.preemptions[r])}x")
        why = []
        if run.regret is not None:
            why.append(f"{run.regret[d]:.4f} (routing-score units)")
        if audit.lost_blocks[d] > 0:
            why.append(f"instance {int(audit.best_other_instance[d])} held {int(audit.lost_blocks[d])} "
                       f"more prefix blocks ({int(audit.lost_blocks[d]) * ROUTER_BLOCK:,} tokens)")
        lines.append("   Regret: " + ("; ".join(why) if why else "none recorded"))
    return lines


def _focus(run: _Run, issues: _Issues) -> list[str]:
    lines = ["## Suggested Focus"]
    if issues.all_rejected:
        lines.append("- Admission rejects every request, so nothing is served: admit at least "
                     "the requests the cluster has capacity for")
    elif issues.rejected:
        lines.append("- Check that admission rejects only what the cluster cannot serve within "
                     "the SLO targets (rejected requests count as SLO misses)")
    if issues.routed_away:
        lines.append("- Weight prefix_match more when it is high on some instance, so that "
                     "load terms (queue_depth, pending) only break near-ties between prefix holders")
    if issues.bursty:
        lines.append(f"- Protect the realtime class from tenant \"{issues.bursty[0].tenant}\" bursts: "
                     "penalise instances with deep queues (queue_depth + pending) for short prompts, "
                     "or shape admission/priority per tenant")
    if issues.preemptions:
        lines.append("- Avoid instances near KV exhaustion: use kv_utilization / free_kv_blocks "
                     "to steer long prompts away before preemptions start")
    for im in issues.imbalances:
        where = f" across the {im.pool} pool" if im.pool else ""
        if im.sticky >= STICKY_SHARE and im.pool != "decode":
            lines.append(f"- Spread load{where}: prefix stickiness is overloading instance "
                         f"{im.busy}; cap it with queue_depth + batch_size + pending")
        else:
            lines.append(f"- Spread load{where}: instance {im.busy} gets far more requests than "
                         f"instance {im.idle}; weight load terms (queue_depth + batch_size + "
                         "pending) so routing follows outstanding work")
    if len(lines) == 1:
        lines.append("- No dominant issue: tune the balance between prefix_match and load terms "
                     "for the p99 TTFT tail, and cache_hit_rate for throughput")
    return lines


# ---------------------------------------------------------------------------------------------
# Entry point
# ---------------------------------------------------------------------------------------------


def summarize_text(result: SimResult, workload: Workload, slo_targets: Mapping | None = None, *,
                   counterfactual_k: int = 0, priority_policy: str = "constant",
                   policy_label: str = "", worst_examples: int = WORST_EXAMPLES) -> str:
    """A markdown report of one run for LLM reflection (deterministic; about 500-1500 tokens
    for realistic runs, see :func:`approx_tokens`).

    ``workload``: the request table that was simulated (its token ids give the prefix blocks
    the routing audit needs).  ``slo_targets``: ``{class: {ttft_ms, tpot_ms, e2e_ms}}`` (any
    subset; ``""``/``default`` for the unnamed class).  ``counterfactual_k``: the run's
    ``SimConfig.counterfactual_k`` (regret is reported only when > 0 with decisions traced).
    ``priority_policy``: for the priority-inversion detector of the raw metrics.
    ``policy_label``: one line naming the policy, shown in the header.
    """
    n = int(np.asarray(result.req_state).shape[0])
    if workload.num_requests != n:
        raise ValueError(f"workload has {workload.num_requests} requests, result has {n}")
    order = ta.decision_order(result)
    run = _Run(result=result, arrived=ta.arrived_mask(result),
               ttft_ms=np.asarray(result.ttft_us, dtype=np.float64) / 1000.0,
               e2e_ms=np.asarray(result.e2e_us, dtype=np.float64) / 1000.0,
               cls=_labels(result.slo_class, result.slo_names, n),
               tenant=_labels(result.tenant, result.tenant_names, n),
               targets=_targets_by_label(slo_targets), order=order,
               audit=ta.prefix_audit(result, workload, order),
               regret=ta.decision_regret(result, order, counterfactual_k),
               counterfactual_k=int(counterfactual_k))
    arrival = np.asarray(result.arrival_us)[run.arrived]
    span = float(arrival.max()) / 1e6 if arrival.size else 0.0
    head = ["# Trace summary",
            f"Policy: {policy_label or 'unnamed'}. {_cluster_line(result)}; "
            f"{int(run.arrived.sum())} requests arrived over {span:.1f} s; "
            f"{_plural(int(order.size), 'routing decision')}. Loads are outstanding requests "
            f"(queued + running + in flight); prefix blocks are {ROUTER_BLOCK}-token blocks an "
            f"instance is known to hold from earlier routings{_known_note(result)}."]
    issues = _issues(run)
    sections = [head, _outcome(run, priority_policy), issues.lines, _counterfactual(run),
                _worst_section(run, worst_examples), _focus(run, issues)]
    return "\n\n".join("\n".join(s) for s in sections) + "\n"


def _cluster_line(result: SimResult) -> str:
    n = int(result.num_instances)
    if result.autoscale is not None:
        out = result.autoscale
        text = (f"Autoscaled cluster of {_plural(n, 'instance slot')} "
                f"({out.min_replicas}-{out.max_replicas} replicas, {out.avg_replicas:.2f} on average)")
    else:
        text = f"Cluster of {_plural(n, 'instance')}"
    if result.pd is not None:
        pool = np.asarray(result.pd.inst_pool)
        text += (f" in P/D pools ({int(np.sum(pool == POOL_PREFILL))} prefill, "
                 f"{int(np.sum(pool == POOL_DECODE))} "
                 "decode; one decision per request picks both)")
    return text


def _known_note(result: SimResult) -> str:
    notes = []
    if result.pd is not None:
        notes.append("under P/D a request's prefix counts as held by its prefill and its decode "
                     "instance, and only instances of the chosen instance's pool are compared")
    if result.autoscale is not None:
        notes.append("a stopped instance forgets its prefixes and only instances routable at "
                     "the time are compared")
    return f" ({'; '.join(notes)})" if notes else ""


def policy_label(policy) -> str:
    """One line naming a ``PolicyConfig``'s routing (with weighted scorers), admission,
    priority and scheduler, for the report header (a code policy by its source digest)."""
    def name(family: str) -> str:
        code = getattr(policy, f"{family}_code", None)
        label = getattr(policy, family)
        return f"code({code.digest[:12]})" if label == "code" and code is not None else label

    routing = name("routing")
    if routing == "weighted":
        routing += " " + ",".join(f"{s.name}:{s.weight:g}" for s in policy.scorers)
    return (f"routing={routing}, admission={name('admission')}, priority={name('priority')}, "
            f"scheduler={policy.scheduler}")


def summarize_run(result: SimResult, workload: Workload, slo_targets: Mapping | None, *,
                  sim_cfg, policy) -> str:
    """:func:`summarize_text` for a run of ``policy`` (a ``PolicyConfig``) under ``sim_cfg``
    (its ``SimConfig``, for the counterfactual setting)."""
    return summarize_text(result, workload, slo_targets,
                          counterfactual_k=int(sim_cfg.counterfactual_k) if sim_cfg.trace_decisions else 0,
                          priority_policy=policy.priority, policy_label=policy_label(policy))
