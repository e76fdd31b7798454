"""End to end, as a user runs it: real papermill kernels, a real MLflow sqlite store and registry."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import nbformat
import numpy as np
import pandas as pd
import pytest
import yaml
from conftest import BENTOML_HOME, CLI, Server, cli, free_port, wait_for_http
from mlflow import MlflowClient

import ml_lifecycle as ml

pytestmark = pytest.mark.slow


def client_for(project: Path) -> MlflowClient:
    uri = f"sqlite:///{project.resolve()}/mlflow.db"
    return MlflowClient(uri, uri)


def only_run_dir(project: Path, index: int = -1) -> Path:
    return sorted((project / "runs").glob("2*"))[index]


def product(run_dir: Path, step: str, name: str) -> Path:
    """Where a run's record says a step's product is (the cache for finished steps)."""
    record = json.loads((run_dir / "run.json").read_text())
    return Path(next(s for s in record["steps"] if s["name"] == step)["products"][name])


def test_demo_run_registers_a_champion(demo_runs):
    project, first, _ = demo_runs
    assert first.returncode == 0, first.stdout + first.stderr
    assert "registered demo_model version 1 as challenger, champion (gates passed)" in first.stdout
    run_dir = only_run_dir(project, 0)
    names = sorted(p.name for p in run_dir.glob("*.ipynb"))
    assert names == ["01_validate.ipynb", "02_train.ipynb", "03_evaluate.ipynb", "04_register.ipynb",
                     "05_card.ipynb", "06_package.ipynb"]
    record = json.loads((run_dir / "run.json").read_text())
    assert record["status"] == "done" and [s["status"] for s in record["steps"]] == ["done"] * 6
    # the champion was packaged and deployed: its Bento, and the pointer that `serve` and `rollback` use
    deployed = json.loads((project / "deploy" / "champion.json").read_text())
    tag = f"demo_model:v1-{record['mlflow_run_id'][:8]}"  # version and run: unique across registries
    assert f"deployed Bento {tag}; serve it with: ml-lifecycle serve" in first.stdout
    assert (deployed["bento"], deployed["model_version"]) == (tag, "1")
    assert json.loads(product(run_dir, "package", "deployment").read_text())["bento"] == tag
    # each executed notebook carries the injected parameters and its outputs
    nb = nbformat.read(run_dir / "03_evaluate.ipynb", as_version=4)
    assert any("injected-parameters" in c.metadata.get("tags", []) for c in nb.cells)
    assert any(c.get("outputs") for c in nb.cells if c.cell_type == "code")

    client = client_for(project)
    mv = client.get_model_version_by_alias("demo_model", "champion")
    assert str(mv.version) == "1"  # the second run (next test) moved challenger on to version 2
    reg = json.loads(product(run_dir, "register", "registration").read_text())
    assert reg == {"name": "demo_model", "version": "1", "aliases": ["challenger", "champion"], "champion": True,
                   "note": ""}
    assert mv.tags["gates.passed"] == "true"
    run = client.get_run(record["mlflow_run_id"])
    assert run.info.status == "FINISHED"
    assert len(run.data.params["data.fingerprint"]) == 16 and run.data.params["contract.name"] == "credit_default"
    params = run.data.params  # provenance: seeds, digests, code and package versions
    assert params["repro.git_commit"] == "none" and params["repro.seed"] == "42"  # (a copy, not a repo)
    assert params["repro.contract_digest"] == params["contract.digest"] and len(params["repro.feature_spec_digest"]) == 16
    assert len(params["repro.experiment_digest"]) == 16 and params["trainer"] == "logistic_regression"  # auto, resolved
    assert {a.path for a in client.list_artifacts(run.info.run_id, "experiment")} == {"experiment/experiment.json"}
    assert params["repro.version.scikit-learn"].startswith("1.9") and params["repro.version.torch"].startswith("2.13")
    assert {a.path for a in client.list_artifacts(run.info.run_id, "environment")} == {"environment/packages.json"}
    assert run.data.metrics["test.roc_auc"] >= 0.75
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id, "notebooks")}
    assert artifacts == {f"notebooks/{n}{ext}" for n in (Path(m).stem for m in names) for ext in (".ipynb", ".html")}
    assert {a.path for a in client.list_artifacts(run.info.run_id, "contract")} == {"contract/contract.yaml"}
    import mlflow

    from ml_lifecycle.tracking import using_store
    with using_store(f"sqlite:///{project.resolve()}/mlflow.db"):
        info = mlflow.models.get_model_info(json.loads(product(run_dir, "train", "model_info").read_text())["model_uri"])
    assert {c["name"] for c in info.signature.inputs.to_dict()} >= {"age", "income", "region"}


def test_env_override_gate_keeps_the_champion(demo_runs):
    project, _, second = demo_runs
    assert second.returncode == 0, second.stdout + second.stderr
    assert "registered demo_model version 2 as challenger (gates failed: champion unchanged)" in second.stdout
    client = client_for(project)
    assert str(client.get_model_version_by_alias("demo_model", "champion").version) == "1"
    assert str(client.get_model_version_by_alias("demo_model", "challenger").version) == "2"
    run_dir = only_run_dir(project)
    verdict = json.loads(product(run_dir, "evaluate", "evaluation").read_text())["verdict"]
    # only the gates changed: the steps that do not read [gates] were not executed again
    steps = json.loads((run_dir / "run.json").read_text())["steps"]
    assert [st["status"] for st in steps] == ["cached", "cached", "done", "done", "done", "done"]
    skipped = ml.Deployment.read(product(run_dir, "package", "deployment"))  # the product says why nothing was
    assert (skipped.bento, skipped.model_version, skipped.reason) == ("", "2", "not champion: not deployed")
    assert json.loads((project / "deploy" / "champion.json").read_text())["bento"].startswith("demo_model:v1-")
    assert [r["gate"] for r in verdict["results"] if not r["passed"]] == ["roc_auc >= 0.99"]


def test_mlflow_ui_shows_the_runs(demo_runs):
    project, *_ = demo_runs
    port = free_port()
    mlflow_bin = Path(sys.executable).parent / "mlflow"
    proc = subprocess.Popen([str(mlflow_bin), "ui", "--backend-store-uri", f"sqlite:///{project}/mlflow.db",
                             "--host", "127.0.0.1", "--port", str(port)], cwd=project,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        base = f"http://127.0.0.1:{port}"
        wait_for_http(f"{base}/health", proc, timeout=60)
        with urllib.request.urlopen(f"{base}/", timeout=10) as r:
            assert r.status == 200 and b"<html" in r.read().lower()
        req = urllib.request.Request(f"{base}/api/2.0/mlflow/experiments/search", method="POST",
                                     data=json.dumps({"max_results": 10}).encode(),
                                     headers={"Content-Type": "application/json"})
        exps = json.loads(urllib.request.urlopen(req, timeout=10).read())["experiments"]
        exp_id = next(e["experiment_id"] for e in exps if e["name"] == "demo")
        req = urllib.request.Request(f"{base}/api/2.0/mlflow/runs/search", method="POST",
                                     data=json.dumps({"experiment_ids": [exp_id]}).encode(),
                                     headers={"Content-Type": "application/json"})
        runs = json.loads(urllib.request.urlopen(req, timeout=10).read())["runs"]
        assert len(runs) == 2 and {r["info"]["status"] for r in runs} == {"FINISHED"}
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)


def test_contract_violation_stops_at_validate(demo_project):
    path = demo_project / "data" / "demo.csv"
    df = pd.read_csv(path)
    df.loc[[3, 10, 20], "age"] = 5
    df.loc[[7, 8], "region"] = "mars"
    df.to_csv(path, index=False)

    r = cli("run", cwd=demo_project)
    assert r.returncode == 1
    err = r.stderr.strip().splitlines()
    assert len(err) == 1 and "Traceback" not in r.stderr, r.stderr
    assert err[0].startswith("error: step 'validate', cell ") and "ContractViolation" in err[0]
    assert "age: min >= 18 (3 rows)" in err[0] and "region: allowed" in err[0] and "(2 rows)" in err[0]
    assert "validate   FAILED" in r.stdout and "train " not in r.stdout

    run_dir = only_run_dir(demo_project)
    assert sorted(p.name for p in run_dir.glob("*.ipynb")) == ["01_validate.ipynb"]
    nb = nbformat.read(run_dir / "01_validate.ipynb", as_version=4)
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []) if o.output_type == "error"]
    assert [e.ename for e in errors] == ["ContractViolation"]
    report = json.loads(product(run_dir, "validate", "validation_report").read_text())
    assert {(v["column"], v["rule"].split()[0]) for v in report["violations"]} == {("age", "min"), ("region", "allowed")}
    assert not (run_dir / "validate" / "train.parquet").exists()
    assert json.loads((run_dir / "run.json").read_text())["status"] == "failed"

    client = client_for(demo_project)
    assert client.search_registered_models() == []
    run = client.search_runs([client.get_experiment_by_name("demo").experiment_id])[0]
    assert run.info.status == "FAILED"
    assert {a.path for a in client.list_artifacts(run.info.run_id, "notebooks")} == {"notebooks/01_validate.ipynb",
                                                                                  "notebooks/01_validate.html"}


# --- the user's own data: binary (string labels), multiclass and regression ---------------------------------

def _binary(rng, n):
    tenure = rng.integers(1, 72, n)
    charges = rng.uniform(20, 120, n).round(2)
    plan = rng.choice(["monthly", "yearly", "two_year"], n)
    support = rng.choice([True, False], n)
    logit = 1.5 - 0.05 * tenure + 0.02 * charges + 1.2 * (plan == "monthly") - 0.8 * support
    churn = np.where(rng.random(n) < 1 / (1 + np.exp(-logit)), "yes", "no")
    return pd.DataFrame({"account": [f"A{i:05d}" for i in range(n)], "tenure": tenure, "charges": charges,
                         "plan": plan, "support": support, "churn": churn}), "churn", "binary", ".csv"


def _multiclass(rng, n):
    x1, x2 = rng.normal(0, 1, n), rng.normal(0, 1, n)
    soil = rng.choice(["clay", "sand", "loam"], n)
    score = x1 + 0.8 * x2 + 0.7 * (soil == "loam") + rng.normal(0, 0.4, n)
    label = np.select([score < -0.6, score < 0.6], ["low", "medium"], "high")
    x1[rng.random(n) < 0.05] = np.nan
    return pd.DataFrame({"x1": x1, "x2": x2, "soil": soil, "grade": label}), "grade", "multiclass", ".csv"


def _regression(rng, n):
    sqm = rng.uniform(30, 250, n)
    rooms = rng.integers(1, 8, n)
    city = rng.choice(["north", "centre", "south"], n)
    price = 1500 * sqm + 8000 * rooms + 60000 * (city == "centre") + rng.normal(0, 20000, n)
    return pd.DataFrame({"sqm": sqm, "rooms": rooms, "city": city, "price": price}), "price", "regression", ".parquet"


# each dataset with another part of the experiment config: both trainer families, a search, split strategies
EXPERIMENTS = {
    "binary": {"model": {"trainer": "torch_mlp", "params": {"hidden": [16], "max_epochs": 30, "patience": 4}},
               "cv": {"folds": 3}, "metrics": ["roc_auc", "f1"],
               "search": {"trials": 3, "space": {"lr": {"low": 0.001, "high": 0.02, "log": True}}},
               "card": {"intended_use": "Flag accounts likely to churn for a retention call.",
                        "limitations": ["Synthetic data."]}},
    "multiclass": {"model": {"trainer": "hist_gradient_boosting", "params": {"max_iter": 50}},
                   "split": {"strategy": "stratified", "test_size": 0.3}, "metrics": ["f1_macro", "accuracy"],
                   "slices": ["soil"]},
    "regression": {"model": {"trainer": "random_forest", "params": {"n_estimators": 40}},
                   "split": {"strategy": "group", "group": "city_block", "test_size": 0.25}, "slices": ["city"]},
}


@pytest.mark.parametrize("make", [_binary, _multiclass, _regression], ids=["binary", "multiclass", "regression"])
def test_init_and_run_on_user_data(tmp_path, make):
    """`init` around the user's table, the experiment config edited, the full pipeline run, the evidence checked."""
    df, target, task, suffix = make(np.random.default_rng(3), 1500)
    if task == "regression":
        df["city_block"] = [f"b{i % 60}" for i in range(len(df))]  # the group split keeps each block on one side
    data = tmp_path / f"user_table{suffix}"
    df.to_csv(data, index=False) if suffix == ".csv" else df.to_parquet(data, index=False)

    r = cli("init", tmp_path / "proj", "--data", data, "--target", target)
    assert r.returncode == 0, r.stderr
    proj = tmp_path / "proj"
    assert f"task: {task}" in (proj / "contracts" / "user_table.yaml").read_text()
    exp = yaml.safe_load((proj / "experiment.yaml").read_text())
    for section, value in EXPERIMENTS[task].items():
        exp[section] = {**exp[section], **value} if isinstance(exp.get(section), dict) else value
    (proj / "experiment.yaml").write_text(yaml.safe_dump(exp))

    r = cli("run", "--project", proj)
    assert r.returncode == 0, r.stdout + r.stderr
    run_dir = only_run_dir(proj)
    reg = json.loads(product(run_dir, "register", "registration").read_text())
    assert reg == {"name": "user_table_model", "version": "1", "aliases": ["challenger", "champion"], "champion": True,
                   "note": ""}
    client = client_for(proj)
    mv = client.get_model_version_by_alias("user_table_model", "champion")
    run = client.get_run(mv.run_id)
    assert run.data.params["trainer"] == EXPERIMENTS[task]["model"]["trainer"]
    evaluation = json.loads(product(run_dir, "evaluate", "evaluation").read_text())
    metrics = EXPERIMENTS[task].get("metrics")
    if metrics:  # the experiment's metrics first, in its order, each with its interval
        assert list(evaluation["metrics"])[:len(metrics)] == metrics and set(metrics) <= set(evaluation["intervals"])
    if "slices" in EXPERIMENTS[task]:
        assert {row["slice"] for row in evaluation["slices"]} == set(EXPERIMENTS[task]["slices"])
    if task == "regression":  # the group split: no block on both sides
        train = pd.read_parquet(product(run_dir, "validate", "train_data"))
        test = pd.read_parquet(product(run_dir, "validate", "test_data"))
        assert not set(train["city_block"]) & set(test["city_block"])
    plots = {a.path for a in client.list_artifacts(run.info.run_id, "plots")}
    expected = ["residuals"] if task == "regression" else ["confusion_matrix", "roc_pr", "calibration"]
    assert plots == {f"plots/{p}.png" for p in [*expected, "learning_curve"]}
    card = product(run_dir, "card", "model_card").read_text()
    assert card.startswith("# Model card: user_table_model version 1") and "## Limitations" in card
    assert "95% low" in card and mv.description.startswith("# Model card: user_table_model version 1")
    assert {a.path for a in client.list_artifacts(run.info.run_id, "model_card")} == {
        "model_card/model_card.md", "model_card/model_card.html"}
    if task == "binary":
        # the search: 3 trials, each a child run of the pipeline's run, the best one fed into the final fit
        children = client.search_runs([run.info.experiment_id], f"tags.`mlflow.parentRunId` = '{run.info.run_id}'")
        assert len(children) == 3 and "search.best.lr" in run.data.params
        assert len(client.get_metric_history(run.info.run_id, "epoch.val_loss")) == int(run.data.metrics["epochs"])
        assert "Flag accounts likely to churn" in card and "Synthetic data." in card
        # the torch model is served by the same Bento service as any other
        env = {**os.environ, "BENTOML_HOME": str(BENTOML_HOME), "BENTOML_DO_NOT_TRACK": "True"}
        with Server(env, [CLI, "serve"], cwd=proj) as server:
            status, body = server.predict([{"account": "A99999", "tenure": 3, "charges": 99.0, "plan": "monthly",
                                            "support": False}])
        assert status == 200 and body["model_version"] == "1", body
        assert set(body["predictions"][0]["scores"]) == {"no", "yes"}


def test_rerun_is_all_cached_and_never_undoes_a_rollback(demo_project):
    """The deployment pointer is an output, not an input: re-runs stay cached, and a cached or re-run package step
    never moves the deployment back to a version that is no longer champion."""
    assert cli("run", cwd=demo_project).returncode == 0
    # evaluate judged against no champion; now its own model is champion: the next run judges it again (once),
    # registers nothing new, and the run after that is all cached
    r = cli("run", cwd=demo_project)
    statuses = [st["status"] for st in json.loads((only_run_dir(demo_project) / "run.json").read_text())["steps"]]
    assert r.returncode == 0 and statuses[:3] == ["cached", "cached", "done"], r.stdout + r.stderr
    assert len(client_for(demo_project).search_model_versions("name='demo_model'")) == 1
    r = cli("run", cwd=demo_project)
    assert "nothing changed since the last run: no step executed" in r.stdout, r.stdout
    # re-judging the same model re-measures its latency, so evaluation.json's bytes change; the steps after it are
    # keyed on its content without the measured values: nothing is registered again
    before = product(only_run_dir(demo_project), "evaluate", "evaluation").read_bytes()
    r = cli("run", "--only", "evaluate", cwd=demo_project)
    after = product(only_run_dir(demo_project), "evaluate", "evaluation")
    assert r.returncode == 0 and after.read_bytes() != before, r.stdout + r.stderr
    assert json.loads(after.read_text())["measured"][0] == "/operational"
    r = cli("run", cwd=demo_project)
    assert "nothing changed since the last run: no step executed" in r.stdout, r.stdout + r.stderr
    assert len(client_for(demo_project).search_model_versions("name='demo_model'")) == 1
    exp = demo_project / "experiment.yaml"  # a second model, as good as the first: it becomes champion
    exp.write_text(exp.read_text().replace("resample: none", "resample: over"))
    r = cli("run", cwd=demo_project)
    assert "registered demo_model version 2 as challenger, champion" in r.stdout, r.stdout + r.stderr
    pointer = demo_project / "deploy" / "champion.json"
    assert json.loads(pointer.read_text())["model_version"] == "2"
    r = cli("rollback", "--reason", "test", cwd=demo_project)
    assert r.returncode == 0 and json.loads(pointer.read_text())["model_version"] == "1", r.stdout + r.stderr
    r = cli("run", cwd=demo_project)
    assert r.returncode == 0 and "nothing changed since the last run: no step executed" in r.stdout, r.stdout
    r = cli("run", "--only", "package", cwd=demo_project)  # the step itself checks the alias
    assert r.returncode == 0 and json.loads(pointer.read_text())["model_version"] == "1", r.stdout + r.stderr
    assert "champion is now version 1: not deployed" in product(only_run_dir(demo_project), "package",
                                                                  "deployment").read_text()
