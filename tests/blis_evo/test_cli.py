"""The ``blis`` CLI end to end (blis_evo.cli): exit codes, error lines, output, determinism.

Subprocess tests run ``python -m blis_evo run ...`` (and the ``blis`` console script) from a
temporary working directory with the repository's numba cache; the remaining checks call
``main`` in-process, which is much faster.
"""
from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import numpy as np
import pytest

from blis_evo import cli
from blis_evo.logging_setup import LOGGER_NAME, level_for

REPO_ROOT = Path(__file__).resolve().parents[2]
MODEL = ["--model", "meta-llama/llama-3.1-8b-instruct", "--hardware", "H100", "--tp", "1"]
# --vllm-version given so that no "Using default ..." warning precedes the error line.
BASE = [*MODEL, "--vllm-version", "vllm/vllm-openai:v0.8.4", "--num-requests", "5", "--rate", "10"]
DIST_RUN = ["run", *MODEL, "--num-requests", "50", "--rate", "10"]
WALL_CLOCK = re.compile(r'^level=info msg="Simulation wall-clock time: \d+\.\d{3}s"$', re.M)


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["NUMBA_CACHE_DIR"] = str(REPO_ROOT / ".numba_cache")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    return env


def run_blis(args: list[str], cwd: Path, launcher: list[str] | None = None,
             timeout: float = 900) -> subprocess.CompletedProcess:
    """Run ``<launcher> args`` (default ``python -m blis_evo``) in ``cwd``; capture text output."""
    cmd = (launcher or [sys.executable, "-m", "blis_evo"]) + list(args)
    return subprocess.run(cmd, cwd=cwd, env=_env(), capture_output=True, text=True,
                          timeout=timeout)


def console_script_launcher() -> list[str]:
    """How to invoke the ``blis`` console script.

    The installed script (``.venv/bin/blis``, next to the interpreter) when the package is
    installed; otherwise the equivalent of the wrapper pip would generate from the
    ``[project.scripts]`` entry of pyproject.toml (``from blis_evo.cli import main;
    sys.exit(main())``), so the declared target is exercised either way.
    """
    installed = Path(sys.executable).parent / "blis"
    if installed.is_file() and os.access(installed, os.X_OK):
        return [str(installed)]
    target = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]["scripts"]["blis"]
    module, func = target.split(":")
    return [sys.executable, "-c",
            f"import sys; from {module} import {func}; sys.argv[0] = 'blis'; sys.exit({func}())"]


# ---------------------------------------------------------------------------------------------
# Bad input: exit 2, one line "blis: error: ...", no traceback, no results file
# ---------------------------------------------------------------------------------------------

BAD_CSV = ('arrival_time,request_id,model,prefill_tokens,decode_tokens\n'
           '0.1,r0,m,"[1,2,3]","[4,5]"\n'
           '0.2,r1,m,"[1,2,x]","[4,5]"\n')
BAD_POLICY_YAML = "admission:\n  policy: always-admit\nrouting:\n  polcy: weighted\n"

BAD_INPUTS = {
    # id: (args (TMP -> the test's temp dir), expected fragment of the error line)
    "unknown-routing-policy": (["--routing-policy", "fastest"], "routing policy"),
    "bad-routing-scorers": (["--routing-policy", "weighted", "--routing-scorers", "queue-depth:abc"],
                            "routing-scorers"),
    "malformed-csv-row": (["--workload", "traces", "--workload-traces-filepath", "TMP/bad.csv"],
                          "row 2"),
    "missing-traces-file": (["--workload", "traces", "--workload-traces-filepath",
                             "TMP/no-such-trace.csv"], "no-such-trace.csv"),
    "bad-alpha-coeffs": (["--alpha-coeffs", "1,x,3"], "alpha-coeffs"),
    "negative-total-kv-blocks": (["--total-kv-blocks", "-5"], "total-kv-blocks"),
    "unknown-flag": (["--no-such-flag", "3"], "--no-such-flag"),
    "bad-policy-yaml-key": (["--policy-config", "TMP/policy.yaml"], "polcy"),
    "results-dir-missing": (["--results-path", "TMP/missing-dir/out.json"], "results-path"),
    "bad-log-level": (["--log", "loud"], "log"),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_cli_bad_input_exits_2_with_one_line(case, tmp_path):
    (tmp_path / "bad.csv").write_text(BAD_CSV)
    (tmp_path / "policy.yaml").write_text(BAD_POLICY_YAML)
    args, fragment = BAD_INPUTS[case]
    args = [a.replace("TMP", str(tmp_path)) for a in args]
    results = tmp_path / "results.json"
    extra = [] if "--results-path" in args else ["--results-path", str(results)]
    proc = run_blis(["run", *BASE, *args, *extra], cwd=tmp_path, timeout=300)
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("blis: error: "), lines[0]
    assert fragment in lines[0], lines[0]
    assert "Traceback" not in proc.stderr
    assert proc.stdout == ""
    assert not results.exists()
    assert not (tmp_path / "missing-dir").exists()
    assert {p.name for p in tmp_path.iterdir()} == {"bad.csv", "policy.yaml"}


# ---------------------------------------------------------------------------------------------
# A real run: report, wall-clock log line, determinism, console script == python -m
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def dist_runs(tmp_path_factory):
    """The llama-3.1-8b distribution run, twice via ``python -m`` and once via ``blis``."""
    tmp = tmp_path_factory.mktemp("cli")
    out = {}
    for key, launcher in (("a", None), ("b", None), ("script", console_script_launcher())):
        res = tmp / f"{key}.json"
        proc = run_blis([*DIST_RUN, "--log", "info", "--results-path", str(res)], cwd=tmp,
                        launcher=launcher)
        out[key] = (proc, res.read_bytes() if res.exists() else None)
    return out


def test_cli_distribution_run_prints_metrics_and_wall_clock(dist_runs):
    proc, results = dist_runs["a"]
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("=== Simulation Metrics ===\n{\n")
    block = json.loads(proc.stdout[len("=== Simulation Metrics ===\n"):proc.stdout.index("\n}\n") + 3])
    assert block["instance_id"] == "cluster"
    assert block["injected_requests"] == 50
    assert block["completed_requests"] == 50
    assert WALL_CLOCK.search(proc.stderr), proc.stderr
    assert "Traceback" not in proc.stderr
    doc = json.loads(results)
    assert doc["completed_requests"] == 50 and len(doc["requests"]) == 50


def test_cli_same_command_is_byte_identical(dist_runs):
    (a, ra), (b, rb) = dist_runs["a"], dist_runs["b"]
    assert a.returncode == b.returncode == 0
    assert a.stdout.encode() == b.stdout.encode()
    assert ra is not None and ra == rb


def test_cli_console_script_matches_python_m(dist_runs):
    (a, ra), (s, rs) = dist_runs["a"], dist_runs["script"]
    assert s.returncode == 0, s.stderr
    assert s.stdout == a.stdout
    assert rs == ra
    assert WALL_CLOCK.search(s.stderr), s.stderr


def test_cli_help_returns_zero():
    proc = run_blis(["run", "--help"], cwd=REPO_ROOT, timeout=300)
    assert proc.returncode == 0
    assert "--routing-policy" in proc.stdout and "--legacy-blis-quirks" in proc.stdout


# ---------------------------------------------------------------------------------------------
# In-process checks
# ---------------------------------------------------------------------------------------------


def call_main(argv: list[str]) -> tuple[int, str, str]:
    """``cli.main(argv)`` with stdout/stderr captured."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli.main(argv)
    return code, out.getvalue(), err.getvalue()


def _results(tmp_path: Path, argv: list[str], name: str = "r.json") -> tuple[dict, str]:
    path = tmp_path / name
    code, out, err = call_main([*argv, "--results-path", str(path)])
    assert code == 0, err
    return json.loads(path.read_text()), out


def test_main_seed_changes_generated_workload_only_through_seed(tmp_path):
    argv = ["run", *MODEL, "--num-requests", "20", "--rate", "5"]
    a, out_a = _results(tmp_path, [*argv, "--seed", "7"], "a.json")
    b, out_b = _results(tmp_path, [*argv, "--seed", "7"], "b.json")
    c, _ = _results(tmp_path, [*argv, "--seed", "8"], "c.json")
    assert a == b and out_a == out_b
    assert a["total_input_tokens"] != c["total_input_tokens"]
    # arrivals do not depend on the seed (evenly spaced at 1/rate)
    assert [r["arrived_at"] for r in a["requests"]] == [r["arrived_at"] for r in c["requests"]]


def test_main_preset_takes_only_rate_and_num_requests_from_flags(tmp_path):
    base = ["run", *MODEL, "--workload", "chatbot", "--rate", "20", "--num-requests", "12"]
    a, _ = _results(tmp_path, base, "a.json")
    # length flags are ignored for presets (and not range-checked), like the reference
    b, _ = _results(tmp_path, [*base, "--prompt-tokens", "3", "--prompt-tokens-max", "4"], "b.json")
    assert a["injected_requests"] == 12
    assert a == b


def test_main_kv_blocks_from_defaults_unless_explicit(monkeypatch):
    import simulator.engine as engine

    seen = []
    real_run = engine.run

    def spy(cfg, policy, workload):
        seen.append(cfg.total_kv_blocks)
        return real_run(cfg, policy, workload)

    monkeypatch.setattr(engine, "run", spy)
    argv = ["run", *MODEL, "--num-requests", "3", "--rate", "10"]
    assert call_main(argv)[0] == 0
    assert call_main([*argv, "--total-kv-blocks", "5000"])[0] == 0
    assert seen == [29205, 5000]  # defaults.yaml row for llama-3.1-8b / H100 / tp 1


def test_main_input_error_writes_nothing(tmp_path):
    res = tmp_path / "r.json"
    code, out, err = call_main(["run", *BASE, "--scheduler", "lifo", "--results-path", str(res)])
    assert code == 2 and out == ""
    assert err.startswith("blis: error: ") and err.count("\n") == 1
    assert not res.exists()


def test_main_keyboard_interrupt_returns_130(monkeypatch):
    def boom(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "execute", boom)
    code, out, err = call_main(["run", *BASE])
    assert code == 130 and out == ""
    assert "Traceback" not in err


def test_main_logs_settings_warnings(tmp_path):
    code, _, err = call_main(["run", *BASE, "--routing-scorers", "queue-depth:1",
                              "--results-path", str(tmp_path / "r.json")])
    assert code == 0
    assert re.search(r'^level=warning msg=".*routing-scorers has no effect', err, re.M), err
    # main removes the handler it installed (pytest may attach its own capture handlers)
    assert not any(getattr(h, "_blis_cli", False) for h in logging.getLogger(LOGGER_NAME).handlers)


@pytest.mark.parametrize("name,level", [
    ("trace", logging.DEBUG), ("debug", logging.DEBUG), ("info", logging.INFO),
    ("warn", logging.WARNING), ("warning", logging.WARNING), ("error", logging.ERROR),
    ("fatal", logging.CRITICAL), ("panic", logging.CRITICAL), ("INFO", logging.INFO),
])
def test_log_levels_map_like_logrus(name, level):
    assert level_for(name) == level


def test_subsystem_rng_is_deterministic_and_name_keyed():
    a = cli.subsystem_rng(42, "workload").integers(0, 2**62, size=4)
    b = cli.subsystem_rng(42, "workload").integers(0, 2**62, size=4)
    c = cli.subsystem_rng(42, "router").integers(0, 2**62, size=4)
    d = cli.subsystem_rng(43, "workload").integers(0, 2**62, size=4)
    e = cli.subsystem_rng(-1, "workload").integers(0, 2**62, size=4)  # int64 seeds may be negative
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c) and not np.array_equal(a, d) and len(e) == 4
    # one child per subsystem, not the master stream itself
    assert not np.array_equal(a, np.random.default_rng(42).integers(0, 2**62, size=4))
