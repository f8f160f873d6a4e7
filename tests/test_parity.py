"""End-to-end parity with the Go reference (BLIS cbb0de7b) on the shipped trace-replay fixtures.

Each case in ``tests/fixtures/blis_parity`` (8 cases: FCFS, chunked prefill, roofline, horizon,
round-robin, weighted routing, fitness weights, token-bucket admission) and
``tests/fixtures/blis_parity_more`` (9 cases: SJF, priority-FCFS, reverse-priority, least-loaded,
always-busiest, prefix-affinity, stale snapshots, GPU+CPU KV tiers, near-preemption KV pressure)
is replayed in-process through ``blis_evo.cli.main`` with ``--legacy-blis-quirks`` and compared
with what the reference printed and wrote:
per-request rows, the cluster aggregate, the per-instance blocks and the other stdout sections.
Floats must agree to a relative tolerance of 1e-6 (absolute floor 1e-9), counts exactly.

The fixture's per-request ``itl_ms`` and ``scheduling_delay_ms`` are in microseconds (a reference
bug, see the fixtures' README); ours are true milliseconds, so the fixture values are divided by
1000 before comparing.
"""
from __future__ import annotations

import contextlib
import io
import json
import math
import re
from pathlib import Path

import pytest

from blis_evo.cli import main

REPO_ROOT = Path(__file__).resolve().parents[1]
DATA_DIR = REPO_ROOT / "blis_evo" / "data"
FIXTURES_DIR = REPO_ROOT / "tests" / "fixtures"
PARITY_DIR = FIXTURES_DIR / "blis_parity"
PARITY_MORE_DIR = FIXTURES_DIR / "blis_parity_more"
# Case name -> the directory holding its trace and reference outputs (names are unique across
# both sets; test_all_cases_present checks that).
CASE_DIRS = {p.stem: d for d in (PARITY_DIR, PARITY_MORE_DIR) for p in d.glob("*.json")}
CASES = sorted(CASE_DIRS)

REL_TOL = 1e-6
ABS_TOL = 1e-9
COUNT_FIELDS = frozenset({
    "completed_requests", "still_queued", "still_running", "injected_requests",
    "total_input_tokens", "total_output_tokens", "kv_allocation_failures",
})
BLOCK_HEADER = "=== Simulation Metrics ==="
SECTION_RE = re.compile(r"^=== (.+) ===$", re.M)


def test_all_cases_present():
    """Both reference sets are shipped complete: 8 + 9 cases, each with its trace, no name clash."""
    first = sorted(p.stem for p in PARITY_DIR.glob("*.json"))
    more = sorted(p.stem for p in PARITY_MORE_DIR.glob("*.json"))
    assert len(first) == 8, first
    assert len(more) == 9, more
    assert not set(first) & set(more), set(first) & set(more)
    assert len(CASES) == 17, CASES
    for name in CASES:
        assert (CASE_DIRS[name] / f"{name}.csv.gz").is_file(), name


# ---------------------------------------------------------------------------------------------
# Running a case (each (case, mode) runs once per session)
# ---------------------------------------------------------------------------------------------

_RUNS: dict[tuple[str, bool], "CaseRun"] = {}


class CaseRun:
    """Outcome of one in-process ``blis run``: exit code, stdout, stderr, results document."""

    def __init__(self, code: int, stdout: str, stderr: str, results: dict | None):
        self.code, self.stdout, self.stderr, self.results = code, stdout, stderr, results


def load_fixture(name: str) -> dict:
    """The reference outputs of parity case ``name``."""
    return json.loads((CASE_DIRS[name] / f"{name}.json").read_text())


def case_argv(name: str, results_path: Path, legacy: bool = True) -> list[str]:
    """``blis run`` argv for a case: the fixture flags ({DATA} -> shipped data) + the trace."""
    fx = load_fixture(name)
    flags = [f.replace("{DATA}", str(DATA_DIR)) for f in fx["flags"]]
    argv = ["run", *flags, "--workload", "traces",
            "--workload-traces-filepath", str(CASE_DIRS[name] / f"{name}.csv.gz"),
            "--results-path", str(results_path)]
    if legacy:
        argv.append("--legacy-blis-quirks")
    return argv


def run_case(name: str, tmp_dir: Path, legacy: bool = True) -> CaseRun:
    """Run case ``name`` through ``main`` in-process (memoised per session)."""
    key = (name, legacy)
    if key not in _RUNS:
        results_path = tmp_dir / f"{name}-{'legacy' if legacy else 'default'}.json"
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(case_argv(name, results_path, legacy))
        results = json.loads(results_path.read_text()) if results_path.exists() else None
        _RUNS[key] = CaseRun(code, out.getvalue(), err.getvalue(), results)
    run = _RUNS[key]
    assert run.code == 0, f"{name}: exit {run.code}; stderr:\n{run.stderr}"
    assert run.results is not None, f"{name}: no results file written"
    return run


@pytest.fixture(scope="session")
def runs_dir(tmp_path_factory) -> Path:
    """Directory for the results files of all parity runs."""
    return tmp_path_factory.mktemp("parity")


# ---------------------------------------------------------------------------------------------
# Comparison helpers
# ---------------------------------------------------------------------------------------------


def close(ours: float, ref: float) -> bool:
    """Relative tolerance 1e-6 with an absolute floor of 1e-9."""
    return math.isclose(float(ours), float(ref), rel_tol=REL_TOL, abs_tol=ABS_TOL)


def block_mismatches(ours: dict, ref: dict, where: str) -> list[str]:
    """Field-by-field differences of two metric blocks (same keys; counts exact, floats close)."""
    problems = []
    if set(ours) != set(ref):
        problems.append(f"{where}: keys differ: only ours {sorted(set(ours) - set(ref))}, "
                        f"only reference {sorted(set(ref) - set(ours))}")
    for key, ref_v in ref.items():
        if key not in ours:
            continue
        v = ours[key]
        if isinstance(ref_v, str) or key in COUNT_FIELDS:
            ok = v == ref_v and type(v) is type(ref_v)
        else:
            ok = close(v, ref_v)
        if not ok:
            problems.append(f"{where}.{key}: ours {v!r} vs reference {ref_v!r}")
    return problems


def stdout_blocks(stdout: str) -> list[dict]:
    """Every ``=== Simulation Metrics ===`` JSON block in ``stdout``, in order."""
    decoder = json.JSONDecoder()
    blocks = []
    pos = stdout.find(BLOCK_HEADER)
    while pos >= 0:
        start = pos + len(BLOCK_HEADER) + 1  # the header line ends with "\n"
        obj, end = decoder.raw_decode(stdout, start)
        blocks.append(obj)
        pos = stdout.find(BLOCK_HEADER, end)
    return blocks


def _fail(problems: list[str], limit: int = 15) -> None:
    if problems:
        more = f"\n... and {len(problems) - limit} more" if len(problems) > limit else ""
        pytest.fail(f"{len(problems)} mismatch(es):\n" + "\n".join(problems[:limit]) + more)


# ---------------------------------------------------------------------------------------------
# Parity tests
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", CASES)
def test_parity_requests(name, runs_dir):
    """Every per-request row: same IDs, token counts, instance, and latencies within 1e-6."""
    fx = load_fixture(name)
    ours = {r["requestID"]: r for r in run_case(name, runs_dir).results["requests"]}
    ref = {r["requestID"]: r for r in fx["requests"]}
    assert set(ours) == set(ref), (
        f"request IDs differ: only ours {sorted(set(ours) - set(ref))[:10]}, "
        f"only reference {sorted(set(ref) - set(ours))[:10]}")
    assert len(ours) == len(fx["requests"])
    problems = []
    for rid, r in ref.items():
        o = ours[rid]
        for key in ("num_prefill_tokens", "num_decode_tokens", "handled_by"):
            if o[key] != r[key]:
                problems.append(f"{rid}.{key}: ours {o[key]!r} vs reference {r[key]!r}")
        for key, scale in (("ttft_ms", 1.0), ("e2e_ms", 1.0), ("itl_ms", 1e3),
                           ("scheduling_delay_ms", 1e3)):
            want = r[key] / scale
            if not close(o[key], want):
                problems.append(f"{rid}.{key}: ours {o[key]!r} vs reference {want!r}")
    _fail(problems)


@pytest.mark.parametrize("name", CASES)
def test_parity_cluster(name, runs_dir):
    """The cluster aggregate: results file and stdout block both match the reference's file."""
    fx = load_fixture(name)
    run = run_case(name, runs_dir)
    ours_file = {k: run.results[k] for k in fx["cluster"] if k in run.results}
    problems = block_mismatches(ours_file, fx["cluster"], "results")
    printed = [b for b in stdout_blocks(run.stdout) if b.get("instance_id") == "cluster"]
    assert len(printed) == 1, f"expected one cluster block on stdout, got {len(printed)}"
    problems += block_mismatches(printed[0], fx["cluster"], "stdout cluster")
    _fail(problems)


@pytest.mark.parametrize("name", CASES)
def test_parity_instances(name, runs_dir):
    """Per-instance stdout blocks (multi-instance cases): same instances, same fields."""
    fx = load_fixture(name)
    run = run_case(name, runs_dir)
    ours = [b for b in stdout_blocks(run.stdout) if b.get("instance_id") != "cluster"]
    ref = fx.get("instances") or []
    assert [b["instance_id"] for b in ours] == [b["instance_id"] for b in ref]
    problems = []
    for o, r in zip(ours, ref):
        problems += block_mismatches(o, r, r["instance_id"])
    _fail(problems)


@pytest.mark.parametrize("name", CASES)
def test_parity_sections(name, runs_dir):
    """The other stdout sections appear verbatim, no extra ones, and the JSON agrees with them."""
    fx = load_fixture(name)
    run = run_case(name, runs_dir)
    sections = fx.get("sections") or {}
    for title, body in sections.items():
        assert f"=== {title} ===\n{body}\n" in run.stdout, f"section {title!r} differs:\n{run.stdout}"
    printed = [t for t in SECTION_RE.findall(run.stdout) if t != "Simulation Metrics"]
    assert printed == list(sections), f"printed sections {printed} vs reference {list(sections)}"
    check_json_against_sections(run.results, sections)


def _kv(body: str) -> dict[str, str]:
    """``Key: value`` lines of a section body -> {key: value} (indentation dropped)."""
    out = {}
    for line in body.splitlines():
        key, _, val = line.strip().partition(":")
        out[key.strip()] = val.strip()
    return out


def check_json_against_sections(doc: dict, sections: dict[str, str]) -> None:
    """Our results JSON (fitness/anomalies/kv_cache/trace_summary) agrees with the sections."""
    if "Fitness Evaluation" in sections:
        lines = _kv(sections["Fitness Evaluation"])
        assert "%.6f" % doc["fitness"]["score"] == lines.pop("Score")
        assert {k: "%.6f" % v for k, v in doc["fitness"]["components"].items()} == lines
    else:
        assert "fitness" not in doc

    an = doc["anomalies"]
    if "Anomaly Counters" in sections:
        lines = _kv(sections["Anomaly Counters"])
        assert str(an["priority_inversions"]) == lines["Priority Inversions"]
        assert str(an["hol_blocking_events"]) == lines["HOL Blocking Events"]
        assert str(an["rejected_requests"]) == lines["Rejected Requests"]
    else:
        assert an == {"priority_inversions": 0, "hol_blocking_events": 0, "rejected_requests": 0}

    kv = doc["kv_cache"]
    if "KV Cache Metrics" in sections:
        lines = _kv(sections["KV Cache Metrics"])
        assert "%.4f" % kv["preemption_rate"] == lines["Preemption Rate"]
        assert "%.4f" % kv["cache_hit_rate"] == lines["Cache Hit Rate"]
        assert "%.4f" % kv["kv_thrashing_rate"] == lines["KV Thrashing Rate"]
    else:
        assert kv["preemption_rate"] == kv["cache_hit_rate"] == kv["kv_thrashing_rate"] == 0

    if "Trace Summary" in sections:
        body = sections["Trace Summary"]
        ts = doc["trace_summary"]
        lines = _kv(body)
        assert str(ts["total_decisions"]) == lines["Total Decisions"]
        assert str(ts["admitted"]) == lines["Admitted"]
        assert str(ts["rejected"]) == lines["Rejected"]
        assert str(ts["unique_targets"]) == lines["Unique Targets"]
        assert "%.6f" % ts["mean_regret"] == lines["Mean Regret"]
        assert "%.6f" % ts["max_regret"] == lines["Max Regret"]
        dist = dict(re.findall(r"^  (instance_\d+): (\d+)$", body, re.M))
        assert {k: str(v) for k, v in ts["target_distribution"].items()} == dist


# ---------------------------------------------------------------------------------------------
# Default mode vs --legacy-blis-quirks
# ---------------------------------------------------------------------------------------------

# A case whose instance never finishes its whole batch while requests still wait (no idle gap
# the non-work-conserving quirk could open) and that has no preemptions, so the phantom ITL is
# the only difference between the two modes.
NO_IDLE_GAP_CASE = "single_fcfs"


def test_default_mode_differs_from_legacy_only_by_phantom_itl(runs_dir):
    """Without idle gaps, default mode changes only E2E: it drops the one phantom ITL entry.

    TTFT, scheduling delay, token counts, placement and the completed count are identical; each
    completed request with >= 1 output token finishes with E2E smaller by exactly its phantom
    ITL, which is one step time plus alpha2 (so at least beta0 + alpha2 microseconds).
    """
    fx = load_fixture(NO_IDLE_GAP_CASE)
    legacy = run_case(NO_IDLE_GAP_CASE, runs_dir, legacy=True).results
    default = run_case(NO_IDLE_GAP_CASE, runs_dir, legacy=False).results
    assert legacy["kv_cache"]["preemption_rate"] == 0

    flags = fx["flags"]
    alpha2 = float(flags[flags.index("--alpha-coeffs") + 1].split(",")[2])
    beta0 = float(flags[flags.index("--beta-coeffs") + 1].split(",")[0])
    # Step times and alpha2 are applied in whole microseconds.
    min_phantom_ms = (math.floor(beta0) + math.floor(alpha2)) / 1e3 - 1e-9

    assert default["completed_requests"] == legacy["completed_requests"]
    assert default["injected_requests"] == legacy["injected_requests"]
    by_id = {r["requestID"]: r for r in legacy["requests"]}
    assert {r["requestID"] for r in default["requests"]} == set(by_id)
    checked = 0
    for d in default["requests"]:
        lg = by_id[d["requestID"]]
        for key in ("num_prefill_tokens", "num_decode_tokens", "handled_by", "ttft_ms",
                    "scheduling_delay_ms"):
            assert d[key] == lg[key], f"{d['requestID']}.{key}: default {d[key]} vs legacy {lg[key]}"
        if lg["e2e_ms"] > 0 and lg["num_decode_tokens"] >= 1:
            phantom = lg["e2e_ms"] - d["e2e_ms"]
            assert d["e2e_ms"] < lg["e2e_ms"], d["requestID"]
            assert phantom >= min_phantom_ms, (d["requestID"], phantom, min_phantom_ms)
            checked += 1
    assert checked == legacy["completed_requests"]
