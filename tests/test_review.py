"""The review panel's buttons on a real registry (no browser): `Button.click()` runs the same handlers as a click in
JupyterLab. A small project: v1 passed and is champion, v2 (trained on 40 rows) fails the floor and is challenger."""
from __future__ import annotations

import tempfile
from dataclasses import replace
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def small_project():
    from ml_lifecycle.contracts import fingerprint, infer_contract, save_contract
    from ml_lifecycle.data import make_demo_data, read_table, write_table
    from ml_lifecycle.experiment import Experiment
    from ml_lifecycle.project import Project
    from ml_lifecycle.promotion import evaluate_model, project_split
    from ml_lifecycle.registry import register_model
    from ml_lifecycle.tracking import log_model, start_run
    from ml_lifecycle.training import train_model

    root = Path(tempfile.mkdtemp(prefix="ml-lifecycle-review-"))
    write_table(make_demo_data(1200), root / "d.csv")
    contract = replace(infer_contract(read_table(root / "d.csv"), "defaulted"), slices=("region",),
                       sensitive=("region",))
    save_contract(contract, root / "c.yaml")
    (root / "settings.ini").write_text("[project]\nname = t\n[data]\npath = d.csv\ncontract = c.yaml\n"
                                       "[registry]\nmodel_name = credit\n[gates]\nmin_roc_auc = 0.7\nbootstrap = 100\n")
    s = Project(root).settings
    train, test = project_split(s, contract, Experiment())
    for rows in (train, train.head(40)):
        run_id = start_run(s, "t")
        model = train_model(rows, contract)
        info = log_model(run_id, model, contract, tags={"train.fingerprint": fingerprint(train)})
        register_model(s, info.model_uri, run_id, evaluate_model(s, contract, model, test).verdict,
                       {"train.fingerprint": fingerprint(train)})
    return root


def test_review_panel_buttons_on_a_real_registry(small_project):
    from ml_lifecycle.project import Project
    from ml_lifecycle.promotion import promote
    from ml_lifecycle.registry import alias_version, champion_history, current_user
    from ml_lifecycle.review import ACTIONS

    p = Project(small_project)
    s = p.settings
    panel = p.review("challenger", deploy=False)
    state = panel.state
    assert (state.version, state.champion, state.passed, state.can_roll_back) == ("2", "1", False, False)
    assert "Review of v2 (challenger): gates FAILED; champion v1" in panel.header.value
    assert panel.tabs.titles == ("Verdict and metrics", "Fairness", "v2 vs champion v1", "Contract diff", "Model card")
    evidence = {t: w.value for t, w in zip(panel.tabs.titles, panel.tabs.children, strict=True)}
    assert "Fairness across region" in evidence["Fairness"] and "demographic parity difference" in evidence["Fairness"]
    assert "roc_auc &gt;= 0.7" in evidence["Verdict and metrics"] and ">FAIL</td>" in evidence["Verdict and metrics"]
    assert "paired change" in evidence["v2 vs champion v1"] and "<img" in evidence["v2 vs champion v1"]  # curves
    assert "region" in evidence["v2 vs champion v1"] and "compatible" in evidence["Contract diff"]
    assert "has no model card: run the pipeline&#x27;s card step" in evidence["Model card"]  # one line
    b = panel.buttons
    assert [b[k].disabled for k in ACTIONS] == [True, True, True, False]

    # Promote is refused (a gate failed); Force promote needs a reason, then moves the champion with it
    b["promote"].click()
    assert "not every gate passed" in panel.outcome.value and alias_version(s, "champion") == "1"
    b["force"].click()
    assert "type a reason first" in panel.outcome.value and alias_version(s, "champion") == "1"
    reason = panel.reason.value = "reviewed: the floor is too strict for this pilot"
    assert not b["force"].disabled and b["promote"].disabled
    b["force"].click()
    assert alias_version(s, "champion") == "2" and "FORCED" in panel.outcome.value, panel.outcome.value
    last = champion_history(s).events[-1]
    assert (last.to_version, last.forced, last.reason, last.by) == ("2", True, reason, current_user())
    assert panel.reason.value == ""  # a reason goes with one action
    assert panel.state.champion == "2" and not b["rollback"].disabled and b["force"].disabled  # v2 is champion
    assert "press Refresh to judge again" in panel.header.value

    b["rollback"].click()
    assert alias_version(s, "champion") == "1" and "rolled back" in panel.outcome.value, panel.outcome.value
    last = champion_history(s).events[-1]
    assert (last.action, last.reason) == ("rollback", "rolled back from version 2")

    # someone else moves the champion after the panel was drawn: the panel refuses and says so
    promote(s, "2", force=True, reason="from the command line", deploy=False)
    panel.reason.value = "ship it"
    b["force"].click()  # the panel still shows champion v1
    assert "the champion changed since this panel was drawn (it showed v1, it is now v2)" in panel.outcome.value
    assert alias_version(s, "champion") == "2" and champion_history(s).events[-1].reason == "from the command line"
    b["refresh"].click()
    assert panel.state.champion == "2" and "Review of v2 (challenger): gates FAILED; champion v2" in panel.header.value
    assert b["force"].disabled and b["promote"].disabled and not b["rollback"].disabled
    assert panel.tabs.titles == ("Verdict and metrics", "Fairness", "Comparison", "Model card")
    assert "Traceback" not in panel.outcome.value + panel.header.value

    # a version that passes every gate: Promote is enabled and promotes it unforced, as `ml-lifecycle promote 1`
    panel = p.review("1", deploy=False)
    assert (panel.state.version, panel.state.champion, panel.state.passed) == ("1", "2", True)
    assert "Review of v1: every gate passed; champion v2" in panel.header.value
    b = panel.buttons
    assert not b["promote"].disabled
    b["promote"].click()
    last = champion_history(s).events[-1]
    assert alias_version(s, "champion") == "1" and (last.action, last.forced, last.to_version) == ("promote", False, "1")
    assert "(all gates passed)" in panel.outcome.value and b["promote"].disabled
