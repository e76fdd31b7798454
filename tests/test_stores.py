"""Two projects used in turn in one process (one notebook kernel) keep to their own MLflow stores: each sees only
its own runs, versions, aliases and history, and MLflow's process-wide tracking URI is left as it was."""
from __future__ import annotations

import os
from pathlib import Path

import mlflow
import pytest

import ml_lifecycle as ml
from ml_lifecycle import registry, tracking
from ml_lifecycle.contracts import infer_contract
from ml_lifecycle.data import make_demo_data
from ml_lifecycle.errors import ModelNotFound
from ml_lifecycle.evals import GateResult, Verdict
from ml_lifecycle.training import train_model

GOOD = Verdict((GateResult("roc_auc >= 0.5", "roc_auc", 0.7, 0.5, True),))
BAD = Verdict((GateResult("roc_auc >= 0.9", "roc_auc", 0.7, 0.9, False),))


def _project(root: Path) -> ml.Project:
    root.mkdir()
    (root / "settings.ini").write_text(f"[project]\nname = {root.name}\n[data]\npath = d.csv\ncontract = c.yaml\n"
                                       "[registry]\nmodel_name = credit\n")
    return ml.project(root)


def test_two_projects_in_one_process_never_see_each_others_store(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("MLFLOW_REGISTRY_URI", raising=False)
    before = mlflow.get_tracking_uri(), mlflow.get_registry_uri()
    a, b = _project(tmp_path / "a"), _project(tmp_path / "b")
    assert a.settings.tracking_uri != b.settings.tracking_uri and a.client is not b.client
    demo = make_demo_data(300)
    contract = infer_contract(demo, "defaulted")
    model = train_model(demo, contract)

    def register(p: ml.Project, verdict: Verdict) -> tuple[str, str]:
        run_id = tracking.start_run(p.settings, "t")
        info = tracking.log_model(run_id, model, contract)  # the run knows its store
        tracking.end_run(run_id)
        return registry.register_model(p.settings, info.model_uri, run_id, verdict).version, run_id

    (va1, run_a1), (vb1, run_b1), (va2, run_a2) = register(a, GOOD), register(b, BAD), register(a, BAD)
    assert (va1, vb1, va2) == ("1", "1", "2")  # each store numbers its own versions
    assert [e.to_version for e in a.history()] == ["1"] and len(b.history()) == 0
    assert registry.alias_version(a.settings, "challenger") == "2" and registry.alias_version(b.settings, "challenger") == "1"
    assert registry.alias_version(a.settings, "champion") == "1"
    with pytest.raises(ModelNotFound, match="no version aliased 'champion' \\(versions: 1\\)"):
        registry.alias_version(b.settings, "champion")
    with pytest.raises(ModelNotFound):
        registry.resolve_version(b.settings, version="2")
    assert a.client.get_model_version("credit", "1").run_id == run_a1
    assert b.client.get_model_version("credit", "1").run_id == run_b1
    runs = {name: {r.info.run_id for r in p.client.search_runs([tracking.experiment_id(p.settings)])}
            for name, p in (("a", a), ("b", b))}
    assert runs == {"a": {run_a1, run_a2}, "b": {run_b1}}
    rows = demo.drop(columns="defaulted").head(5)
    for p in (b, a, b):  # a registry lookup through the fluent API, alternately
        assert tracking.load_pyfunc("models:/credit/1", p.settings).predict(rows).shape == (5, 2)
    assert (mlflow.get_tracking_uri(), mlflow.get_registry_uri()) == before
    assert "MLFLOW_TRACKING_URI" not in os.environ and "MLFLOW_REGISTRY_URI" not in os.environ


def test_using_store_restores_a_uri_set_before(tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite:///elsewhere.db")
    p = _project(tmp_path / "p")
    with tracking.using_store(p.settings) as uri:
        assert mlflow.get_tracking_uri() == uri == p.settings.tracking_uri == os.environ["MLFLOW_TRACKING_URI"]
    assert mlflow.get_tracking_uri() == "sqlite:///elsewhere.db" == os.environ["MLFLOW_TRACKING_URI"]


def test_a_run_from_elsewhere_needs_its_settings(tmp_path):
    p = _project(tmp_path / "p")
    run_id = tracking.client(p.settings).create_run(tracking.experiment_id(p.settings)).info.run_id  # another process's
    with pytest.raises(ValueError, match="settings="):
        tracking.log_metrics(run_id, {"x": 1.0})
    tracking.log_metrics(run_id, {"x": 1.0}, settings=p.settings)
    assert p.client.get_run(run_id).data.metrics == {"x": 1.0}
