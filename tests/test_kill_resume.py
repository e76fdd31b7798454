"""SIGKILL at every step boundary, and inside register just after MLflow created the version: every resumed run
finishes the work once. One version per model, a consistent champion and history, killed runs marked KILLED,
and no staging leftovers."""
from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest
from conftest import BENTOML_HOME, CLI, cli, copy_demo_project
from mlflow import MlflowClient

from ml_lifecycle.registry import champion_chain, history
from ml_lifecycle.settings import load_settings

pytestmark = pytest.mark.slow
BOUNDARIES = ["validate", "train", "evaluate"]  # kill as each of these reports "done"


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ML_LIFECYCLE_")}
    return {**env, "BENTOML_HOME": str(BENTOML_HOME), "BENTOML_DO_NOT_TRACK": "True"}


def _versions(project: Path) -> int:
    db = project / "mlflow.db"
    if not db.exists():
        return 0
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as con:
        try:
            return con.execute("select count(*) from model_versions").fetchone()[0]
        except sqlite3.OperationalError:  # the registry tables do not exist yet
            return 0


def _run_until(project: Path, kill_when, deadline_s: float = 300) -> list[str]:
    """Start `ml-lifecycle run`, SIGKILL its whole process group (kernels too) once `kill_when(line)` is true."""
    proc = subprocess.Popen([str(CLI), "run"], cwd=project, env=_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    lines, deadline = [], time.monotonic() + deadline_s
    try:
        for line in proc.stdout:  # bounded by the deadline below and by the run's own end
            lines.append(line.rstrip())
            if kill_when(line) or time.monotonic() > deadline:
                os.killpg(proc.pid, signal.SIGKILL)
                break
    finally:
        proc.wait(timeout=60)
        with_group_gone(proc.pid)
    return lines


def with_group_gone(pgid: int) -> None:
    """Wait (bounded) until no process of the killed group is left, so the next run sees it dead."""
    for _ in range(100):
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)


def _kill_just_after_version_created(project: Path) -> list[str]:
    """Run, and kill the run as soon as the registry holds a version (inside the register step)."""
    proc = subprocess.Popen([str(CLI), "run"], cwd=project, env=_env(), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 300
    try:
        while proc.poll() is None and time.monotonic() < deadline:
            if _versions(project) > 0:
                os.killpg(proc.pid, signal.SIGKILL)
                break
            time.sleep(0.02)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=60)
        with_group_gone(proc.pid)
    return []


def test_sigkill_at_every_step_boundary_resumes_to_one_consistent_registration(tmp_path):
    project = copy_demo_project(tmp_path / "demo")
    for step in BOUNDARIES:
        lines = _run_until(project, lambda line, s=step: line.split()[:2] == [s, "done"])
        assert any(line.split()[:2] == [step, "done"] for line in lines), lines
    _kill_just_after_version_created(project)
    final = cli("run", cwd=project)
    assert final.returncode == 0, final.stdout + final.stderr

    settings = load_settings(project / "settings.ini", env={})
    client = MlflowClient(settings.tracking_uri, settings.tracking_uri)
    versions = client.search_model_versions("name='demo_model'")
    assert len(versions) == 1, [(v.version, v.run_id, v.tags) for v in versions]  # one model, one version
    assert versions[0].tags["ml_lifecycle.registration"] == "complete"
    events = history(settings)
    assert champion_chain(events) == ["1"] and len(events) == 1
    assert str(client.get_model_version_by_alias("demo_model", "champion").version) == "1"

    runs = sorted(p for p in (project / "runs").glob("2*") if (p / "run.json").is_file())
    records = [json.loads((p / "run.json").read_text()) for p in runs]
    assert [r["status"] for r in records] == ["killed"] * 4 + ["done"], [r["status"] for r in records]
    for r in records[:-1]:  # each killed run recorded its MLflow run as soon as it started it, and was closed
        assert r["mlflow_run_id"] and client.get_run(r["mlflow_run_id"]).info.status == "KILLED", r
    experiment = client.get_experiment_by_name(settings.tracking.experiment).experiment_id
    assert not client.search_runs([experiment], "attributes.status = 'RUNNING'")  # none left RUNNING for good
    assert client.get_run(records[-1]["mlflow_run_id"]).info.status == "FINISHED"
    assert not list((project / "runs" / ".cache").rglob(".tmp-*")), "staging leftovers"
    assert not list((project / "runs" / ".active").iterdir())
    # each resumed run executed only what had no finished result
    assert [s["status"] for s in records[1]["steps"]][:1] == ["cached"]
