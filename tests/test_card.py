"""The evidence a reviewer reads after a demo run: the model card (plots, facts, limitations from the evidence) and
the executed notebooks as HTML in MLflow. Uses the session's `demo_runs`, so it adds no pipeline run of its own."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow


def _first_run(project: Path) -> dict:
    run_dir = sorted((project / "runs").glob("2*"))[0]
    return json.loads((run_dir / "run.json").read_text())


def _product(record: dict, step: str, name: str) -> Path:
    return Path(next(s for s in record["steps"] if s["name"] == step)["products"][name])


def test_the_card_embeds_the_plots_and_states_the_evidence(demo_runs):
    from ml_lifecycle.contracts import load_contract
    from ml_lifecycle.settings import load_settings
    from ml_lifecycle.tracking import client
    project, first, _ = demo_runs
    assert first.returncode == 0, first.stdout + first.stderr
    record = _first_run(project)
    md_path = _product(record, "card", "model_card")
    md, page = md_path.read_text(), md_path.with_suffix(".html").read_text()
    plots = sorted(p.name for p in (_product(record, "evaluate", "evaluation").parent / "plots").glob("*.png"))
    assert plots == ["calibration.png", "confusion_matrix.png", "learning_curve.png", "roc_pr.png"]
    # Markdown: the PNGs copied beside the card, referenced by relative path; HTML: the same plots embedded
    for name in plots:
        assert f"(plots/{name})" in md and (md_path.parent / "plots" / name).is_file()
    assert page.count('<img src="data:image/png;base64,') == len(plots) and 'src="plots/' not in page
    assert '<div class="table-scroll">' in page and "overflow-x:auto" in page and "img{max-width:100%" in page
    # the facts at the top: the commit and contract digest the model was trained from, positive class, threshold
    settings = load_settings(project / "settings.ini")
    params = client(settings).get_run(record["mlflow_run_id"]).data.params
    digest = load_contract(project / "contracts" / "credit_default.yaml").digest
    assert params["repro.contract_digest"] == digest
    assert f"<strong>git commit</strong>: {params['repro.git_commit']}" in page
    assert f"<strong>contract digest</strong>: {digest}" in page
    assert "<strong>positive class</strong>: <code>1</code>" in page
    assert "<strong>decision threshold</strong>: 0.5: <code>1</code> when its probability is over 0.5" in page
    assert re.search(r"<strong>written</strong>: \d{4}-\d\d-\d\d \d\d:\d\d UTC", page)
    # limitations read from the evidence: the calibration curve's worst bin, the slices too small to judge
    calibration = json.loads((_product(record, "evaluate", "evaluation").parent / "plots" / "plot_data.json")
                             .read_text())["calibration"]
    worst = max(calibration, key=lambda b: abs(b["predicted"] - b["observed"]))
    assert f"the model predicts {worst['predicted']:.2f} on average but {worst['observed']:.2f} are observed" in page
    evaluation = json.loads(_product(record, "evaluate", "evaluation").read_text())
    small = [s for s in evaluation["slices"] if s["rows"] < settings.gates.slice_min_rows]
    assert small  # the demo has them (e.g. employment=<missing>)
    for s in small:
        value = str(s["value"]).replace("<", "&lt;").replace(">", "&gt;")
        assert f"<code>{s['slice']}={value}</code> ({s['rows']} rows)" in page
    assert "Slices below slice_min_rows (50 test rows)" in page
    assert "_Not stated" not in page and "<em>Not stated: set <code>card.intended_use</code>" in page


def test_each_executed_notebook_is_logged_as_html(demo_runs):
    from ml_lifecycle.settings import load_settings
    from ml_lifecycle.tracking import client
    project, first, _ = demo_runs
    record = _first_run(project)
    store = client(load_settings(project / "settings.ini"))
    logged = {a.path for a in store.list_artifacts(record["mlflow_run_id"], "notebooks")}
    steps = ["01_validate", "02_train", "03_evaluate", "04_register", "05_card", "06_package"]
    assert logged == {f"notebooks/{s}.{ext}" for s in steps for ext in ("ipynb", "html")}
    page = Path(store.download_artifacts(record["mlflow_run_id"], "notebooks/03_evaluate.html")).read_text()
    assert page.lstrip().lower().startswith("<!doctype html>") and "jp-Notebook" in page
    assert "ml.evaluate_model" in page and 'src="data:image/png;base64,' in page  # the plots, embedded
