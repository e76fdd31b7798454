"""Sweeps fan out on Dask: a LocalCluster by default, or a scheduler started separately on 127.0.0.1."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from conftest import BENTOML_HOME, CLI, cli, copy_demo_project, free_port
from mlflow import MlflowClient

from ml_lifecycle.pipeline import write_notebook
from ml_lifecycle.scaffold import render_settings

pytestmark = pytest.mark.slow
BIN = Path(sys.executable).parent


def run_watching_sockets(args: list[str], cwd: Path, timeout: float = 600) -> tuple[subprocess.CompletedProcess,
                                                                                    set[str]]:
    """Run `ml-lifecycle ARGS` and collect every TCP address it (or any child process) listens on meanwhile."""
    import psutil
    env = {k: v for k, v in os.environ.items() if not k.startswith("ML_LIFECYCLE_")}
    env.update(BENTOML_HOME=str(BENTOML_HOME), BENTOML_DO_NOT_TRACK="True")
    proc = subprocess.Popen([str(CLI), *args], cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    seen: set[str] = set()
    deadline = time.monotonic() + timeout
    while proc.poll() is None and time.monotonic() < deadline:
        try:
            parent = psutil.Process(proc.pid)
            for p in (parent, *parent.children(recursive=True)):
                seen |= {f"{c.laddr.ip}:{c.laddr.port}" for c in p.net_connections(kind="tcp")
                         if c.status == psutil.CONN_LISTEN}
        except psutil.Error:  # a process ended between listing and asking
            pass
        time.sleep(0.1)
    out, err = proc.communicate(timeout=60)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err), seen


def test_demo_sweep_on_a_local_cluster(tmp_path):
    project = copy_demo_project(tmp_path / "demo")
    r, listening = run_watching_sockets(["sweep", "--grid", "experiment.model.trainer=logistic_regression,"
                                         "random_forest", "--until", "evaluate"], project)
    assert r.returncode == 0, r.stdout + r.stderr
    # the LocalCluster (and anything else the sweep starts) listens on loopback only, and there is no dashboard
    assert listening and all(a.startswith("127.0.0.1:") for a in listening), listening
    assert not any(a.endswith(":8787") for a in listening), listening
    assert "2 points on a LocalCluster of 2 workers, until evaluate" in r.stdout
    rows = json.loads(next((project / "runs" / "sweeps").glob("*/results.json")).read_text())
    assert [row["experiment.model.trainer"] for row in rows] == ["logistic_regression", "random_forest"]
    assert all(row["status"] == "done" and 0.5 < row["roc_auc"] <= 1 for row in rows)
    # validate is shared by both points: it ran once, before the fan-out, and both points found it cached
    assert [(row["executed"], row["cached"]) for row in rows] == [(2, 1), (2, 1)]
    assert all(row["worker"].startswith("inproc://") for row in rows)  # the LocalCluster's worker threads

    uri = f"sqlite:///{project}/mlflow.db"
    client = MlflowClient(uri, registry_uri=uri)
    exp = client.get_experiment_by_name("demo").experiment_id
    parent = client.search_runs([exp], "tags.`ml_lifecycle.sweep` = 'true'")[0]
    children = client.search_runs([exp], f"tags.`mlflow.parentRunId` = '{parent.info.run_id}'")
    labels = sorted(c.data.tags["ml_lifecycle.sweep_point"] for c in children)
    assert labels == ["experiment.model.trainer=logistic_regression", "experiment.model.trainer=random_forest",
                      "shared"]
    points = [c for c in children if c.data.tags["ml_lifecycle.sweep_point"] != "shared"]
    assert all("test.roc_auc" in c.data.metrics for c in points)
    assert client.search_registered_models() == []  # --until evaluate: nothing registered


def test_bad_grid_key_is_reported_before_anything_runs(tmp_path):
    project = copy_demo_project(tmp_path / "demo")
    r = cli("sweep", "--grid", "training.trainr=ridge", cwd=project)
    assert r.returncode == 1 and r.stderr.startswith("error: settings [training] trainr = 'ridge': unknown key")
    r = cli("sweep", "--grid", "experiment.model.trainr=ridge", cwd=project)
    assert r.returncode == 1 and "model.trainr = 'ridge': unknown key" in r.stderr, r.stderr
    assert not (project / "runs").exists()
    r = cli("sweep", "--grid", "train.max_rows=1,2", cwd=project)
    assert r.returncode == 1 and "notebook train.ipynb has no parameter 'max_rows'" in r.stderr


@pytest.fixture
def scheduler():
    """`dask scheduler` and one `dask worker`, started separately on 127.0.0.1, stopped by PID afterwards."""
    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    procs = [subprocess.Popen([str(BIN / "dask"), "scheduler", "--host", "127.0.0.1", "--port", str(port),
                               "--no-dashboard"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              start_new_session=True)]
    procs.append(subprocess.Popen([str(BIN / "dask"), "worker", address, "--nworkers", "1", "--nthreads", "1",
                                   "--host", "127.0.0.1", "--no-dashboard", "--name", "external-worker"],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True))
    try:
        from distributed import Client
        deadline = time.monotonic() + 60
        with Client(address, timeout="30s") as client:
            while not client.scheduler_info()["workers"]:
                assert time.monotonic() < deadline, "the dask worker never joined"
                time.sleep(0.5)
            worker = next(iter(client.scheduler_info()["workers"]))
        yield address, worker
    finally:
        for p in reversed(procs):
            os.killpg(p.pid, signal.SIGTERM)
        for p in procs:
            p.wait(timeout=30)


def test_sweep_on_an_existing_scheduler(tmp_path, scheduler):
    address, worker = scheduler
    project = tmp_path / "tiny"
    (project / "pipelines").mkdir(parents=True)
    (project / "data").mkdir()
    (project / "data" / "d.csv").write_text("n\n1\n")
    (project / "contracts").mkdir()
    (project / "contracts" / "c.yaml").write_text(yaml.safe_dump(
        {"name": "tiny", "target": {"column": "n", "task": "regression"}, "columns": {"n": {"dtype": "int"}}}))
    (project / "settings.ini").write_text(render_settings("tiny", "data/d.csv", "contracts/c.yaml", "regression")
                                          .replace("preload = ml_lifecycle.registry,", "preload = ml_lifecycle.settings\n#"))
    p = "settings_path = ''\nmlflow_run_id = ''\n"
    write_notebook(project / "pipelines" / "a.ipynb", p + "base = ''", "from pathlib import Path\nPath(base).write_text('10')")
    write_notebook(project / "pipelines" / "b.ipynb", p + "base = ''\nresult = ''\nfactor = 1",
                   "import json\nfrom pathlib import Path\n"
                   "Path(result).write_text(json.dumps({'value': int(Path(base).read_text()) * factor}))")
    (project / "pipelines" / "pipeline.yaml").write_text(yaml.safe_dump({"steps": {
        "a": {"notebook": "a.ipynb", "settings": [], "products": {"base": "base.txt"}},
        "b": {"notebook": "b.ipynb", "needs": ["a"], "settings": [], "products": {"result": "result.json"}}}}))

    r = cli("sweep", "--grid", "b.factor=2,3,4", "--project", project,
            env={"ML_LIFECYCLE_PIPELINE__DASK_SCHEDULER": address})
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"3 points on {address}" in r.stdout
    rows = json.loads(next((project / "runs" / "sweeps").glob("*/results.json")).read_text())
    assert [(row["b.factor"], row["value"]) for row in rows] == [(2, 20), (3, 30), (4, 40)]
    assert {row["worker"] for row in rows} == {worker}


def test_unreachable_scheduler_is_one_line(tmp_path):
    project = copy_demo_project(tmp_path / "demo")
    r = cli("sweep", "--grid", "experiment.model.trainer=ridge,random_forest", "--until", "validate", cwd=project,
            env={"ML_LIFECYCLE_PIPELINE__DASK_SCHEDULER": f"tcp://127.0.0.1:{free_port()}"})
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert r.stderr.strip().splitlines()[-1].startswith("error: cannot reach the Dask scheduler at tcp://127.0.0.1:")


def test_failing_shared_step_is_one_line(tmp_path):
    project = copy_demo_project(tmp_path / "demo")
    path = project / "data" / "demo.csv"
    lines = path.read_text().splitlines()
    row = lines[4].split(",")
    lines[4] = ",".join([row[0], "5", *row[2:]])  # age 5 breaks the contract (min 18)
    path.write_text("\n".join(lines) + "\n")
    r = cli("sweep", "--grid", "experiment.model.trainer=logistic_regression,random_forest", "--until", "evaluate",
            cwd=project)
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith("error: step 'validate', cell ") and "age: min >= 18 (1 rows)" in last
