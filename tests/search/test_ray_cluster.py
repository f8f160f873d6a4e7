"""A real two-node Ray cluster on this machine: a search submitted as a Ray job survives the loss
of a worker process mid-run and ends with the same logbook and champion as an undisturbed run.

Starts a head (``ray start --head``) and a second node (``ray start --address``) with one CPU
each, submits ``python -m search.evolve`` with ``ray job submit --working-dir <repo>``, kills
(SIGKILL) a worker process while it runs an evaluation batch, and compares the outputs written
on the driver side with an in-process serial run.  ``ray stop --force`` cleans up every Ray
process afterwards, even if the test fails.
"""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from search.evolve import evolve
from blis_evo.experiment import load_experiment
from search.checkpoint import load_checkpoint
from search.loop import logbook_bytes

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
RAY = BIN / "ray"
GENERATIONS = 4

pytestmark = pytest.mark.skipif(not RAY.exists(), reason="ray CLI not installed")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env() -> dict:
    env = dict(os.environ)
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    env["RAY_AUTH_MODE"] = "disabled"          # a throwaway local cluster
    env.pop("RAY_ADDRESS", None)
    env.setdefault("NUMBA_CACHE_DIR", str(REPO / ".numba_cache"))
    return env


def _ray(*args, check=True, timeout=120) -> subprocess.CompletedProcess:
    return subprocess.run([str(RAY), *args], env=_env(), capture_output=True, text=True,
                          timeout=timeout, check=check)


@pytest.fixture
def two_node_cluster():
    """(dashboard address) of a head + one worker node, each with 1 CPU; torn down after."""
    gcs, dash = _free_port(), _free_port()
    _ray("stop", "--force", check=False)
    try:
        _ray("start", "--head", "--num-cpus", "1", "--port", str(gcs), "--dashboard-port", str(dash),
             "--disable-usage-stats")
        _ray("start", "--address", f"127.0.0.1:{gcs}", "--num-cpus", "1", "--disable-usage-stats")
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            status = _ray("status", "--address", f"127.0.0.1:{gcs}", check=False).stdout
            if "2.0 CPU" in status:
                break
            time.sleep(1)
        else:
            pytest.fail(f"the second node did not join:\n{status}")
        yield f"http://127.0.0.1:{dash}"
    finally:
        _ray("stop", "--force", check=False)


def _batch_worker_pids() -> list[int]:
    """PIDs of Ray worker processes currently running an evaluation batch."""
    out = subprocess.run(["ps", "-eo", "pid=,args="], capture_output=True, text=True).stdout
    return [int(line.split(None, 1)[0]) for line in out.splitlines()
            if "ray::_batch_task" in line and "IDLE" not in line]


def test_job_survives_killed_worker_with_identical_result(two_node_cluster, tmp_path):
    exp_path = tmp_path / "exp.yaml"
    from tests.conftest import small_experiment_dict
    doc = small_experiment_dict(num_requests=1500)
    doc["search"].update({"population": 10, "generations": GENERATIONS})
    exp_path.write_text(yaml.safe_dump(doc, sort_keys=False))
    exp = load_experiment(exp_path)
    reference = evolve(exp, generations=GENERATIONS, workers=1, out=tmp_path / "reference")

    out = tmp_path / "job"
    runtime_env = {"excludes": [".venv", ".numba_cache", ".git", "results", "__pycache__",
                                ".hypothesis", ".pytest_cache", "*.egg-info"]}
    job_id = f"blis-evo-test-{os.getpid()}"
    _ray("job", "submit", "--address", two_node_cluster, "--working-dir", str(REPO),
         "--submission-id", job_id, "--runtime-env-json", json.dumps(runtime_env), "--no-wait",
         "--", "python", "-m", "search.evolve", "--experiment", str(exp_path), "--out", str(out),
         "--generations", str(GENERATIONS), "--workers", "2", "--no-progress", timeout=300)

    killed = []
    deadline = time.monotonic() + 300
    status = ""
    while time.monotonic() < deadline:
        if not killed:
            pids = _batch_worker_pids()
            if pids:
                os.kill(pids[0], signal.SIGKILL)
                killed.append(pids[0])
        status = _ray("job", "status", "--address", two_node_cluster, job_id, check=False).stdout
        if any(f"' {s}" in status for s in ("succeeded", "failed", "stopped")):
            break
        time.sleep(0.05 if not killed else 1.0)
    logs = _ray("job", "logs", "--address", two_node_cluster, job_id, check=False).stdout
    assert f"Job '{job_id}' succeeded" in status, f"job did not succeed:\n{status}\n{logs[-3000:]}"
    assert killed, "no evaluation batch was caught running; nothing was killed"

    # outputs are written by the driver, where --out points
    assert (out / "champion.yaml").read_bytes() == (tmp_path / "reference" / "champion.yaml").read_bytes()
    job_state = load_checkpoint(str(out / "checkpoint.pkl"))
    assert logbook_bytes(job_state["logbook"]) == logbook_bytes(reference.state.logbook)
    assert job_state["halloffame"][0][0] == list(reference.state.champion)
