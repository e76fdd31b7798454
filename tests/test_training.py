"""Training twice on the same inputs gives identical predictions and metrics: both trainer families, all tasks,
in the library and through the pipeline (fresh kernels, MLflow round trip)."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import yaml
from conftest import cli, copy_demo_project

from ml_lifecycle.contracts import infer_contract
from ml_lifecycle.data import make_demo_data, split
from ml_lifecycle.evals import compute_metrics, predict
from ml_lifecycle.experiment import experiment_from_dict
from ml_lifecycle.tracking import load_pyfunc, using_store
from ml_lifecycle.training import train_model, xy

TRAINERS = {"sklearn": {"trainer": "hist_gradient_boosting", "params": {"max_iter": 40}},
            "torch": {"trainer": "torch_mlp", "params": {"hidden": [16], "max_epochs": 15, "patience": 3}}}


def _tables():
    demo = make_demo_data(1500, seed=4)
    rng = np.random.default_rng(4)
    regression = demo.drop(columns="defaulted").assign(
        score=lambda d: 2 * d["debt_ratio"] - 0.3 * d["late_payments"] + rng.normal(0, 0.2, len(d)))
    return {"binary": (demo, "defaulted"), "multiclass": (demo.drop(columns="defaulted"), "employment"),
            "regression": (regression, "score")}


@pytest.mark.parametrize("family", TRAINERS)
@pytest.mark.parametrize("task", ["binary", "multiclass", "regression"])
def test_training_twice_gives_identical_predictions_and_metrics(task, family):
    df, target = _tables()[task]
    df = df.dropna(subset=[target])
    contract = infer_contract(df, target, name=task)
    assert contract.task == task
    train, test = split(df, target, stratify=task != "regression")
    exp = experiment_from_dict({"seed": 11, "model": TRAINERS[family]})
    X, y = xy(test, contract)
    runs = []
    for _ in range(2):
        model = train_model(train, contract, exp)
        p = predict(model, X, y, task)
        runs.append((p, compute_metrics(task, p)))
    (p1, m1), (p2, m2) = runs
    assert m1 == m2
    assert np.array_equal(p1.y_pred, p2.y_pred)
    if task != "regression":
        assert np.array_equal(p1.scores, p2.scores)
    if family == "torch":  # the seed is what makes it repeatable: another seed, another network
        other = predict(train_model(train, contract, experiment_from_dict({"seed": 12, "model": TRAINERS[family]})),
                        X, y, task)
        a, b = (other.y_pred, p1.y_pred) if task == "regression" else (other.scores, p1.scores)
        assert not np.array_equal(a, b)


@pytest.mark.slow
def test_pipeline_retrained_from_scratch_reproduces_metrics_and_model(tmp_path):
    """`run --force` twice with the torch MLP: new kernels, new MLflow runs, the same metrics and predictions."""
    project = copy_demo_project(tmp_path / "demo")
    exp = yaml.safe_load((project / "experiment.yaml").read_text())
    exp["model"] = {**exp["model"], **TRAINERS["torch"]}
    (project / "experiment.yaml").write_text(yaml.safe_dump(exp))
    results = []
    for _ in range(2):
        r = cli("run", "--force", "--until", "evaluate", cwd=project)
        assert r.returncode == 0, r.stdout + r.stderr
        run = json.loads(sorted((project / "runs").glob("2*"))[-1].joinpath("run.json").read_text())
        products = {s["name"]: s["products"] for s in run["steps"]}
        evaluation = json.loads(open(products["evaluate"]["evaluation"]).read())
        info = json.loads(open(products["train"]["model_info"]).read())
        results.append((evaluation["metrics"], evaluation["intervals"], info["model_uri"]))
    (m1, i1, uri1), (m2, i2, uri2) = results
    assert m1 == m2 and i1 == i2 and uri1 != uri2  # two trained and logged models, identical evidence
    rows = pd.read_csv(project / "data" / "demo.csv").drop(columns="defaulted").head(200)
    with using_store(f"sqlite:///{project}/mlflow.db"):
        assert load_pyfunc(uri1).predict(rows).equals(load_pyfunc(uri2).predict(rows))
