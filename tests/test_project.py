"""The CLI and `ml.project()` in a notebook leave the same world behind: registry aliases, history and the
deployment pointer, for promote, rollback and package; and a notebook promote deploys."""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from conftest import BENTOML_HOME, cli, free_port

os.environ["BENTOML_HOME"] = str(BENTOML_HOME)  # this process builds Bentos too: into the tests' store, as the CLI

import ml_lifecycle as ml  # noqa: E402

pytestmark = pytest.mark.slow
RECORD = {"age": 40, "income": 52000.0, "debt_ratio": 0.3, "credit_lines": 5, "late_payments": 0,
          "tenure_months": 100, "region": "north", "employment": "salaried"}


def _copy(project: Path, dest: Path) -> Path:
    return Path(shutil.copytree(project, dest, ignore=shutil.ignore_patterns("runs", "deploy")))


@pytest.fixture
def twins(demo_runs, tmp_path):
    """Two identical copies of the demo project after its two runs (v1 champion, v2 failed its gate)."""
    project, *_ = demo_runs
    return _copy(project, tmp_path / "by_cli"), _copy(project, tmp_path / "by_project")


def state(project: Path) -> dict:
    """What a promote, rollback or package leaves behind, without timestamps and timing-dependent gate values."""
    uri = f"sqlite:///{project.resolve()}/mlflow.db"
    from mlflow import MlflowClient
    model = MlflowClient(uri, uri).get_registered_model("demo_model")
    events = [json.loads(v) for k, v in sorted(model.tags.items()) if k.startswith("lifecycle.history.")]
    history = [{**{k: e[k] for k in ("action", "alias", "from_version", "to_version", "by", "reason", "forced")},
                "gates": [(r["gate"], r["passed"]) for r in (e.get("verdict") or {}).get("results", [])]}
               for e in events]
    pointer = project / "deploy" / "champion.json"
    deployed = {k: v for k, v in json.loads(pointer.read_text()).items() if k != "at"} if pointer.exists() else None
    return {"aliases": {k: str(v) for k, v in model.aliases.items()}, "history": history, "deployed": deployed}


def test_cli_and_project_leave_the_same_state(twins):
    by_cli, by_project = twins
    p = ml.project(by_project / "pipelines", env={})  # found upward, like git
    assert p.root == by_project.resolve()

    r = cli("promote", "2", "--force", "--reason", "parity", cwd=by_cli)
    assert r.returncode == 0, r.stdout + r.stderr
    promotion = p.promote("2", force=True, reason="parity")
    assert promotion.moved and promotion.deployment.model_version == "2"
    after_promote = state(by_cli)
    assert after_promote == state(by_project)
    assert after_promote["aliases"]["champion"] == "2" and after_promote["deployed"]["model_version"] == "2"
    assert after_promote["history"][-1]["reason"] == "parity" and after_promote["history"][-1]["gates"]
    assert "detail" in r.stdout and "champion: v1 -> v2" in r.stdout  # the gate table keeps its detail column

    r = cli("rollback", "--reason", "parity back", cwd=by_cli)
    assert r.returncode == 0, r.stdout + r.stderr
    back = p.rollback(reason="parity back")
    assert back.event.to_version == "1"
    after_rollback = state(by_cli)
    assert after_rollback == state(by_project)
    assert after_rollback["aliases"]["champion"] == "1" and after_rollback["deployed"]["model_version"] == "1"

    r = cli("package", "2", "--deploy", cwd=by_cli)
    assert r.returncode == 0, r.stdout + r.stderr
    package = p.package("2", deploy=True)
    assert f"built Bento {package.tag}" in r.stdout and package.labels["model_version"] == "2"
    after_package = state(by_cli)
    assert after_package == state(by_project) and after_package["deployed"]["model_version"] == "2"

    r = cli("history", cwd=by_cli)  # the same facts, in the same words (times and the store's path aside)
    shown = str(p.history())
    assert r.returncode == 0 and shown.count(" champion: ") == r.stdout.count(" champion: ") == 3, shown
    assert "champion now: v1" in shown and "champion now: v1" in r.stdout


def test_a_notebook_promote_deploys_and_serves(demo_runs, tmp_path):
    """The bug of issue 13: `ml.promote` in a notebook moved the alias but left the deployment on the old version."""
    project = _copy(demo_runs[0], tmp_path / "nb")
    settings = ml.load_settings(project / "settings.ini", env={})
    from ml_lifecycle.promotion import promote  # the library function under the facade deploys too
    promotion = promote(settings, "2", force=True, reason="from a notebook")
    pointer = json.loads((project / "deploy" / "champion.json").read_text())
    assert pointer["model_version"] == "2" and pointer["bento"].startswith("demo_model:v2-")
    assert promotion.deployment.bento == pointer["bento"]

    p = ml.project(project, env={})
    (project / "deploy" / "champion.json").unlink()  # a deploy lost after the move: promoting again redeploys
    again = p.promote("2")
    assert not again.moved and again.deployment.model_version == "2"
    assert json.loads((project / "deploy" / "champion.json").read_text())["model_version"] == "2"

    server = p.serve(port=free_port())
    try:
        assert server.url.startswith("http://127.0.0.1:")
        assert server.predict([RECORD])["model_version"] == "2"
    finally:
        server.stop()
    assert server.proc.poll() is not None


def test_project_reads_runs_and_monitors_a_dataframe(demo_runs):
    project, _, second = demo_runs
    p = ml.project(project, env={})
    last = p.last_run()
    assert last.registration["version"] == "2" and "roc_auc" in last.evaluation["metrics"]
    # the CLI summary of the run whose gate failed names the gate, its value and its threshold
    assert "test metrics (" in second.stdout and "FAIL gate roc_auc >= 0.99: value 0." in second.stdout, second.stdout
    assert "threshold 0.99" in second.stdout
    assert len(p.runs()) >= 2 and "run folder: " in str(last)
    assert p.card("champion").version == "1" and "demo_model" in str(p.card(1))
    judged = p.evaluate("champion")  # as promote judges it: the split gate included
    assert "roc_auc" in judged.metrics and any(r.metric == "data.same_split" and r.passed for r in judged.verdict.results)
    cmp = p.compare("2", "1")  # the same test rows: both intervals, the paired change, both curves on one plot
    rows = {r["metric"]: r for r in cmp.metrics}
    assert (cmp.a, cmp.b) == ("v2", "v1") and rows["roc_auc"]["paired_low"] <= rows["roc_auc"]["paired"]
    assert rows["roc_auc"]["paired"] <= rows["roc_auc"]["paired_high"]
    page = cmp._repr_html_()
    assert "paired change" in page and "roc_auc" in page and "data:image/png;base64," in page
    assert "Comparison: v2 vs v1" in str(cmp) and len(cmp.slice_frame())

    shifted = ml.make_demo_data(400, seed=32, shift={"debt_ratio": 1.0}, new_categories={"employment": "gig_worker"})
    result = p.monitor(data=shifted.drop(columns=[p.contract.target]))
    alerted = {r["feature"] for r in result.report["drift"] if r["alert"]}
    assert result.alerted and {"debt_ratio", "employment", "(prediction)"} <= alerted, str(result)
    assert result.recommendation == "retrain"
    stable = ml.make_demo_data(1000, seed=31)
    calm = p.monitor(data=stable.drop(columns=[p.contract.target]))
    assert not calm.alerted and calm.recommendation == "none", str(calm)
    assert p.validate(stable).ok and not p.validate(shifted).ok  # gig_worker is not an allowed employment


def test_run_with_experiment_overrides(demo_project):
    """`run(experiment={...})` overrides dotted keys of experiment.yaml for this run only, checked before any step."""
    import pandas as pd
    p = ml.project(demo_project, env={})
    with pytest.raises(ml.LifecycleError, match="split.strategy = 'shuffled'"):
        p.run(until="validate", experiment={"split.strategy": "shuffled"})
    assert not (demo_project / "runs").exists()  # refused before anything ran
    report = p.run(until="validate", experiment={"split.test_size": 0.3})
    test_rows = len(pd.read_parquet(report.record.step("validate").products["test_data"]))
    assert report.status == "done" and test_rows == 1800  # 30% of 6,000 rows instead of experiment.yaml's 25%
    assert "split" in (demo_project / "experiment.yaml").read_text() and "0.25" in (demo_project / "experiment.yaml").read_text()


def test_monitor_with_too_few_rows_answers_without_a_kernel(demo_runs, tmp_path):
    """`monitor` counts the served rows first: below min_rows it says so at once, with no kernel and no run."""
    import time

    from conftest import cli

    from ml_lifecycle.predlog import PredictionLog
    project = demo_runs[0]
    log = tmp_path / "predictions.jsonl"
    plog = PredictionLog(log)
    record = {"age": 40, "income": 40000.0, "debt_ratio": 0.3, "credit_lines": 5, "late_payments": 0,
              "tenure_months": 30, "region": "north", "employment": "salaried", "customer_id": 1}
    for _ in range(3):
        plog.write("predict_one", 200, "1", 2.0, [record], {"predictions": [{"label": 0}]})
    plog.write("predict_one", 200, "2", 2.0, [record], {"predictions": [{"label": 0}]})  # another version's
    plog.close()
    runs_before = sorted((project / "runs").glob("2*"))
    start = time.perf_counter()
    r = cli("monitor", cwd=project, env={"ML_LIFECYCLE_MONITORING__PREDICTION_LOG": str(log)})
    took = time.perf_counter() - start
    assert r.returncode == 0 and "only 3 served rows of version 1 (min_rows 100): too few to judge" in r.stdout, \
        r.stdout + r.stderr
    assert sorted((project / "runs").glob("2*")) == runs_before, "no monitor run, no kernel"
    print(f"monitor with too few rows: {took:.2f}s")
    r = cli("monitor", cwd=project, env={"ML_LIFECYCLE_MONITORING__PREDICTION_LOG": str(tmp_path / "none.jsonl")})
    assert r.returncode == 1 and "no prediction log at" in r.stderr and "serve the model first" in r.stderr
