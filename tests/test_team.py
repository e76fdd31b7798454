"""Team mode on real servers: two clones of a project run the whole lifecycle at the same time against one
`mlflow server` that keeps runs in PostgreSQL and proxies artifacts (`mlflow-artifacts:`), with their Optuna
studies in the same PostgreSQL; and pipelines fanned out on an existing Dask cluster (`dask scheduler` plus
`dask worker` processes on 127.0.0.1)."""
from __future__ import annotations

import contextlib
import glob
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from conftest import BENTOML_HOME, CLI, Server, cli, copy_demo_project, free_port, wait_for_http

from ml_lifecycle.data import make_demo_data

pytestmark = pytest.mark.slow
BIN = Path(sys.executable).parent


def _stop(proc: subprocess.Popen, group: bool = True) -> None:
    """SIGTERM the process (its group if `group`), SIGKILL after 30 s; bounded."""
    with contextlib.suppress(ProcessLookupError):
        (os.killpg if group else os.kill)(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            (os.killpg if group else os.kill)(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)


# --- PostgreSQL and the MLflow server --------------------------------------------------------------------------

def _pg_bin() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not found:
        pytest.fail("Debian's postgresql is not installed: `python3 dev.py test` installs it (apt-get install "
                    "postgresql)")
    return Path(found[-1]).parent


@contextlib.contextmanager
def postgresql(*databases: str):
    """A throwaway PostgreSQL on 127.0.0.1 and a free port (run as the `postgres` user when we are root: it
    refuses root), with `databases` created; yields `postgresql+psycopg://postgres@127.0.0.1:PORT`. Stopped by the
    postmaster's PID, its data folder deleted."""
    import psycopg
    pg = _pg_bin()
    data = Path(tempfile.mkdtemp(prefix="ml-lifecycle-pg-"))  # not under pytest's root-only tmp: postgres reads it
    as_user = []
    if os.geteuid() == 0:
        shutil.chown(data, "postgres", "postgres")
        as_user = ["runuser", "-u", "postgres", "--"]
    port = free_port()
    proc = None
    try:
        subprocess.run([*as_user, pg / "initdb", "-D", data / "db", "-U", "postgres", "--auth=trust", "-E", "UTF8"],
                       check=True, capture_output=True, timeout=120)
        proc = subprocess.Popen([*as_user, pg / "postgres", "-D", data / "db", "-h", "127.0.0.1", "-p", str(port),
                                 "-k", data, "-c", "max_connections=200", "-c", "fsync=off"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + 60
        while True:  # bounded: the deadline, or the server's exit
            try:
                with psycopg.connect(f"host=127.0.0.1 port={port} user=postgres dbname=postgres", autocommit=True,
                                     connect_timeout=2) as con:
                    for db in databases:
                        con.execute(f'CREATE DATABASE "{db}"')
                break
            except psycopg.OperationalError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise
                time.sleep(0.3)
        yield f"postgresql+psycopg://postgres@127.0.0.1:{port}"
    finally:
        if proc is not None:
            pid_file = data / "db" / "postmaster.pid"
            if pid_file.is_file():  # the postmaster itself (runuser is only its parent): a fast shutdown
                with contextlib.suppress(ProcessLookupError, ValueError):
                    os.kill(int(pid_file.read_text().split()[0]), signal.SIGINT)
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                _stop(proc)
        shutil.rmtree(data, ignore_errors=True)


@contextlib.contextmanager
def mlflow_server(backend: str, artifacts: Path):
    """`mlflow server` on 127.0.0.1 with runs in `backend` and artifacts kept (and proxied) by itself; yields its
    URL; stopped by process group."""
    port = free_port()
    env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true"}
    proc = subprocess.Popen([str(BIN / "mlflow"), "server", "--backend-store-uri", backend,
                             "--artifacts-destination", str(artifacts), "--host", "127.0.0.1", "--port", str(port),
                             "--workers", "2"],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for_http(f"{url}/health", proc, timeout=180)  # the first start creates the schema in PostgreSQL
        yield url
    finally:
        _stop(proc)


def _team_clone(dest: Path, tracking: str, storage: str) -> Path:
    """A clone of the demo project whose settings.ini points at the team's servers, with a small search."""
    project = copy_demo_project(dest)
    ini = (project / "settings.ini").read_text()
    ini = re.sub(r"(?m)^uri = .*$", f"uri = {tracking}", ini)
    ini = re.sub(r"(?m)^search_storage = .*$", f"search_storage = {storage}", ini)
    (project / "settings.ini").write_text(ini)
    exp = (project / "experiment.yaml").read_text()
    exp = exp.replace("trainer: auto", "trainer: logistic_regression").replace("trials: 0", "trials: 3")
    exp = exp.replace("space: {}", "space: {C: {low: 0.01, high: 10, log: true}}")
    (project / "experiment.yaml").write_text(exp)
    return project


def _popen_cli(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.Popen:
    full = {k: v for k, v in os.environ.items() if not k.startswith("ML_LIFECYCLE_")}
    full.update(BENTOML_HOME=str(BENTOML_HOME), BENTOML_DO_NOT_TRACK="True", **(env or {}))
    return subprocess.Popen([str(CLI), *args], cwd=cwd, env=full, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)


def _history(project: Path) -> list[dict]:
    r = cli("history", "--json", cwd=project)
    assert r.returncode == 0, r.stdout + r.stderr
    return [json.loads(line) for line in r.stdout.splitlines() if line.strip()]


def _registration(project: Path) -> dict:
    """The register step's product of the project's last run."""
    run_dir = sorted((project / "runs").glob("2*"))[-1]
    steps = {s["name"]: s for s in json.loads((run_dir / "run.json").read_text())["steps"]}
    return json.loads(Path(steps["register"]["products"]["registration"]).read_text())


def test_first_searches_at_once_all_open_the_optuna_storage(tmp_path):
    """Regression: the first searches of several clones at once raced to create the Optuna tables in PostgreSQL,
    and the losers failed with a UniqueViolation. Six threads (one barrier: the same instant) open a new study
    storage together; every one gets the study."""
    import optuna

    from ml_lifecycle.experiment import experiment_from_dict
    from ml_lifecycle.search import open_study
    from ml_lifecycle.settings import load_settings
    n = 6
    project = copy_demo_project(tmp_path / "demo")
    with postgresql("optuna") as pg:
        settings = load_settings(project / "settings.ini", env={"ML_LIFECYCLE_TRAINING__SEARCH_STORAGE": f"{pg}/optuna"})
        start = threading.Barrier(n, timeout=60)

        def first_search(_: int) -> str:
            start.wait()
            return open_study(settings, "race", "maximize", experiment_from_dict({})).study_name

        with ThreadPoolExecutor(n) as pool:
            assert list(pool.map(first_search, range(n))) == ["race"] * n
        assert [s.study_name for s in optuna.study.get_all_study_summaries(f"{pg}/optuna")] == ["race"]


def test_two_clones_share_one_postgres_backed_mlflow_server(tmp_path):
    with postgresql("mlflow", "optuna") as pg, mlflow_server(f"{pg}/mlflow", tmp_path / "artifacts") as url:
        storage = f"{pg}/optuna"
        alice = _team_clone(tmp_path / "alice", url, storage)
        bob = _team_clone(tmp_path / "bob", url, storage)
        # the same pipeline in both clones at the same time: both register, the history stays one ordered list
        procs = [_popen_cli("run", cwd=p, env={"ML_LIFECYCLE_USER": user})
                 for p, user in ((alice, "alice"), (bob, "bob"))]
        outs = [p.communicate(timeout=600) for p in procs]
        for p, (out, err) in zip(procs, outs, strict=True):
            assert p.returncode == 0, out + err
        from mlflow import MlflowClient
        client = MlflowClient(url, url)
        versions = sorted(int(v.version) for v in client.search_model_versions("name='demo_model'"))
        assert versions == [1, 2], versions
        for v in versions:  # artifacts are proxied: kept by the server, never under a clone
            source = client.get_model_version("demo_model", str(v))
            assert source.tags["ml_lifecycle.registration"] == "complete"
        assert not (alice / "mlartifacts").exists() and not (bob / "mlartifacts").exists()
        assert any((tmp_path / "artifacts").rglob("MLmodel"))
        # one Optuna study, in PostgreSQL, holding both clones' trials (the same inputs find the same study)
        import optuna
        summaries = optuna.study.get_all_study_summaries(storage)
        assert len(summaries) == 1 and summaries[0].n_trials >= 3, [(s.study_name, s.n_trials) for s in summaries]

        # each clone's register step says what it did; the history (the same from both clones) agrees with it
        registered = {user: _registration(p) for p, user in ((alice, "alice"), (bob, "bob"))}
        assert sorted(r["version"] for r in registered.values()) == ["1", "2"], registered
        events = _history(alice)
        assert _history(bob) == events and events, events
        assert len({(e["at"], e["to_version"]) for e in events}) == len(events)  # no duplicate event
        assert [e["at"] for e in events] == sorted(e["at"] for e in events)  # one ordered list
        for user, reg in registered.items():  # every champion move has its one event, by whoever made it
            moves = [e for e in events if e["to_version"] == reg["version"]]
            assert len(moves) == (1 if reg["champion"] else 0), (user, reg, events)
            assert all(e["by"] == user and e["action"] == "promote" for e in moves), moves
            assert reg["champion"] or reg["note"], reg  # a passing version not made champion says why
        chain = [e["to_version"] for e in events]
        assert all(a["from_version"] == b["to_version"] for a, b in zip(events[1:], events, strict=False))
        model = client.get_registered_model("demo_model")
        assert model.aliases["champion"] == chain[-1] and model.aliases["challenger"] in ("1", "2")

        # promote the other version, roll back, package and serve the champion, monitor it: all through the server
        other = "1" if chain[-1] == "2" else "2"
        r = cli("promote", other, "--force", "--reason", "team test", cwd=bob, env={"ML_LIFECYCLE_USER": "bob"})
        assert r.returncode == 0, r.stdout + r.stderr
        r = cli("rollback", "--reason", "team test", cwd=alice, env={"ML_LIFECYCLE_USER": "alice"})
        assert r.returncode == 0, r.stdout + r.stderr
        events = _history(bob)
        assert [e["action"] for e in events][-2:] == ["promote", "rollback"]
        assert events[-1]["to_version"] == chain[-1] and events[-1]["by"] == "alice" and events[-2]["by"] == "bob"
        assert client.get_registered_model("demo_model").aliases["champion"] == chain[-1]
        r = cli("package", cwd=alice)
        assert r.returncode == 0, r.stdout + r.stderr
        env = {**os.environ, "BENTOML_HOME": str(BENTOML_HOME), "BENTOML_DO_NOT_TRACK": "True"}
        env = {k: v for k, v in env.items() if not k.startswith("ML_LIFECYCLE_")}
        calm = make_demo_data(300, seed=51).drop(columns="defaulted")
        with Server(env, [CLI, "serve"], cwd=alice) as server:
            for start in range(0, len(calm), 100):
                status, _ = server.predict(json.loads(calm.iloc[start:start + 100].to_json(orient="records")))
                assert status == 200
        r = cli("monitor", cwd=alice)
        assert r.returncode == 0 and "recommendation: none" in r.stdout, r.stdout + r.stderr


# --- an existing Dask cluster ----------------------------------------------------------------------------------

@contextlib.contextmanager
def dask_cluster(n_workers: int = 2):
    """`dask scheduler` and `n_workers` `dask worker` processes on 127.0.0.1, no dashboard; yields the scheduler's
    address and the workers' addresses; every process stopped by its process group."""
    from distributed import Client
    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    procs = [subprocess.Popen([str(BIN / "dask"), "scheduler", "--host", "127.0.0.1", "--port", str(port),
                               "--no-dashboard"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)]
    try:
        for i in range(n_workers):
            procs.append(subprocess.Popen([str(BIN / "dask"), "worker", address, "--host", "127.0.0.1",
                                           "--nthreads", "1", "--no-dashboard", "--name", f"w{i}"],
                                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                          start_new_session=True))
        with Client(address, timeout="60s") as client:
            client.wait_for_workers(n_workers, timeout=120)
            workers = set(client.scheduler_info()["workers"])
        yield address, workers
    finally:
        for proc in reversed(procs):
            _stop(proc)


def test_run_and_sweep_on_an_existing_dask_cluster(tmp_path):
    project = copy_demo_project(tmp_path / "demo")
    with dask_cluster(2) as (address, workers):
        assert len(workers) == 2 and all(w.startswith("tcp://127.0.0.1:") for w in workers)
        r = cli("run", "--dask-scheduler", address, cwd=project)
        assert r.returncode == 0, r.stdout + r.stderr
        run_dir = sorted((project / "runs").glob("2*"))[-1]
        record = json.loads((run_dir / "run.json").read_text())
        assert record["status"] == "done" and record["dask_scheduler"] == address
        steps = record["steps"]
        assert [s["status"] for s in steps] == ["done"] * len(steps) and len(steps) == 6
        assert {s["worker"] for s in steps} <= workers, steps  # every step ran on one of the cluster's workers
        for s in steps:  # its notebook in the run folder, its products in the project's cache
            assert Path(s["notebook"]).parent == run_dir and Path(s["notebook"]).is_file()
            assert all(Path(p).is_file() and Path(p).is_relative_to(project / "runs" / ".cache")
                       for p in s["products"].values())
        assert _registration(project)["version"] == "1" and _registration(project)["champion"]

        r = cli("sweep", "--grid", "experiment.features.numeric_impute=mean,most_frequent", "--until", "train",
                "--dask-scheduler", address, cwd=project)
        assert r.returncode == 0, r.stdout + r.stderr
        assert address in r.stdout  # the header says where the points ran
        sweep_dir = sorted((project / "runs" / "sweeps").iterdir())[-1]
        rows = json.loads((sweep_dir / "results.json").read_text())
        assert [(row["status"], row["executed"]) for row in rows] == [("done", 1), ("done", 1)], rows
        assert {row["worker"] for row in rows} <= workers, rows
