"""Monitoring against a known answer: serve the demo model, send traffic drawn like the training data (no alert,
live quality within the offline intervals), then traffic with one feature's mean moved and a category never seen
in training; `ml-lifecycle monitor` must alert on exactly those two features."""
from __future__ import annotations

import json
import os
import time

import pandas as pd
import pytest
from conftest import BENTOML_HOME, CLI, Server, cli, copy_demo_project

from ml_lifecycle.data import make_demo_data

pytestmark = pytest.mark.slow
SHIFTED = {"debt_ratio", "employment"}


def records(df: pd.DataFrame) -> list[dict]:
    return json.loads(df.drop(columns="defaulted").to_json(orient="records"))


def alerted(stdout: str) -> set[str]:
    """The features named in the ALERT lines (not live quality, `ALERT live <metric>`, nor the predictions)."""
    return {line.split()[1].rstrip(":") for line in stdout.splitlines()
            if line.strip().startswith("ALERT") and not line.strip().startswith(("ALERT live ", "ALERT (prediction)"))}


def last_report(project) -> dict:
    run_dir = sorted((project / "runs").glob("2*"))[-1]
    record = json.loads((run_dir / "run.json").read_text())
    assert (run_dir / "01_monitor.ipynb").is_file()  # the executed notebook is kept as evidence
    return json.loads(open(record["steps"][0]["products"]["report"]).read())


def test_monitor_alerts_on_exactly_the_shifted_features(tmp_path):
    project = copy_demo_project(tmp_path / "demo")
    r = cli("run", cwd=project)
    assert r.returncode == 0, r.stdout + r.stderr
    r = cli("monitor", cwd=project)  # nothing served yet: a clear error, not a traceback
    assert r.returncode == 1 and "no prediction log" in r.stderr and "Traceback" not in r.stderr, r.stderr
    r = cli("monitor", "--since", "yesterday-ish", cwd=project)
    assert r.returncode == 1 and r.stderr.startswith("error: --since 'yesterday-ish'"), r.stderr

    stable = make_demo_data(1000, seed=31)
    shifted = make_demo_data(400, seed=32, shift={"debt_ratio": 1.0}, new_categories={"employment": "gig_worker"})
    labels = tmp_path / "labels.parquet"
    stable[["customer_id", "defaulted"]].to_parquet(labels, index=False)
    env = {**os.environ, "BENTOML_HOME": str(BENTOML_HOME), "BENTOML_DO_NOT_TRACK": "True"}
    with Server(env, [CLI, "serve"], cwd=project) as server:
        for start in range(0, len(stable), 50):
            assert server.predict(records(stable.iloc[start:start + 50]))[0] == 200

        # traffic like the training data: no alert, exit 0, live quality within the offline intervals
        r = cli("monitor", "--labels", labels, cwd=project)
        assert r.returncode == 0 and "recommendation: none" in r.stdout and "ALERT" not in r.stdout, r.stdout
        report = last_report(project)
        assert report["rows"] == 1000 and report["labelled_rows"] == 1000
        assert {q["metric"] for q in report["quality"]} >= {"roc_auc", "recall"}
        assert not any(q["alert"] for q in report["quality"])

        time.sleep(1.1)
        boundary = pd.Timestamp.now(tz="UTC").isoformat()
        statuses = [server.post("/predict_one", json.dumps({"record": rec}).encode())[0] for rec in records(shifted)]
    assert set(statuses) == {200, 422}  # the unseen category is refused by the contract, and still logged

    r = cli("monitor", "--since", boundary, cwd=project)  # the shifted period alone
    assert r.returncode == 3, r.stdout + r.stderr
    assert alerted(r.stdout) == SHIFTED, r.stdout
    assert "never seen in training: ['gig_worker']" in r.stdout and "recommendation: retrain" in r.stdout
    assert "ALERT (prediction): prediction" in r.stdout  # a higher debt ratio means higher default scores
    report = last_report(project)
    assert report["rows"] == 400 and report["recommendation"] == "retrain" and report["judged"]
    stable_features = {d["feature"] for d in report["drift"]} - SHIFTED - {"(prediction)"}
    assert len(stable_features) == 6 and not any(d["alert"] for d in report["drift"] if d["feature"] in stable_features)

    r = cli("monitor", "--since", "1h", cwd=project)  # all the traffic: the shift still shows
    assert r.returncode == 3 and alerted(r.stdout) == SHIFTED, r.stdout
