"""Data contracts and data-quality checks as a user meets them: `ml-lifecycle contract infer|check|diff`, warning
levels, leakage checks that stop the pipeline, and the contract gate against the champion."""
import json

import pandas as pd
import pytest
import yaml
from conftest import cli
from test_cli import one_line_error


def _edit_contract(project, fn):
    path = project / "contracts" / "credit_default.yaml"
    data = yaml.safe_load(path.read_text())
    fn(data)
    path.write_text(yaml.safe_dump(data, sort_keys=False))


def test_infer_drafts_a_contract_that_the_data_passes(tmp_path):
    assert cli("demo-data", tmp_path / "d.csv", "--rows", "300").returncode == 0
    r = cli("contract", "infer", tmp_path / "d.csv", "--target", "defaulted", "-o", tmp_path / "c.yaml")
    assert r.returncode == 0 and "target defaulted (binary), key customer_id" in r.stdout, r.stderr
    draft = yaml.safe_load((tmp_path / "c.yaml").read_text())
    assert draft["columns"]["region"]["allowed"] == ["east", "north", "south", "west"]
    r = cli("contract", "check", tmp_path / "d.csv", "--contract", tmp_path / "c.yaml")
    assert r.returncode == 0 and "300 rows checked against d v1: no violations" in r.stdout
    one_line_error(cli("contract", "infer", tmp_path / "d.csv", "--target", "defaulted", "-o", tmp_path / "c.yaml"),
                   "exists; pass --force")
    printed = cli("contract", "infer", tmp_path / "d.csv", "--target", "defaulted")
    # the positive class is drafted explicitly (the label 1), so what precision and recall mean is in the file
    assert printed.returncode == 0 and yaml.safe_load(printed.stdout)["target"] == {"column": "defaulted",
                                                                                     "task": "binary", "positive": 1}


def test_check_reports_every_violation_with_examples_and_exits_1(demo_project):
    path = demo_project / "data" / "demo.csv"
    df = pd.read_csv(path)
    df.loc[[3, 9], "age"] = 150
    df.loc[5, "region"] = "atlantis"
    df.to_csv(path, index=False)
    r = cli("contract", "check", path, cwd=demo_project)  # the project's contract by default
    one_line_error(r, "breaks contract credit_default v1 (")
    assert "age: max <= 100: 2 rows (0.03%)  e.g. row 3: 150, row 9: 150" in r.stdout, r.stdout
    assert "region: allowed ['east', 'north', 'south', 'west']: 1 rows" in r.stdout and "row 5: 'atlantis'" in r.stdout


@pytest.mark.parametrize("setup, text", [
    (lambda p: (p / "data" / "demo.csv").unlink(), "data file not found: "),
    (lambda p: (p / "contracts" / "credit_default.yaml").write_text("name: [unclosed"), "not valid YAML"),
    (lambda p: _edit_contract(p, lambda d: d["columns"]["age"].update(dtype="integer")),
     "columns.age.dtype is 'integer'"),
])
def test_check_bad_input_is_one_line(demo_project, setup, text):
    setup(demo_project)
    one_line_error(cli("contract", "check", demo_project / "data" / "demo.csv", cwd=demo_project), text)


def test_diff_classifies_changes_and_exits_1_on_breaking(demo_project, tmp_path):
    old = demo_project / "contracts" / "credit_default.yaml"
    data = yaml.safe_load(old.read_text())
    data["columns"]["score"] = {"dtype": "float", "nullable": True}
    data["columns"]["age"]["max"] = 110
    (tmp_path / "compatible.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    r = cli("contract", "diff", old, tmp_path / "compatible.yaml")
    assert r.returncode == 0, r.stderr
    assert "COMPATIBLE age: max 100 -> 110 (widened)" in " ".join(r.stdout.split())
    assert "COMPATIBLE score: column added (nullable)" in " ".join(r.stdout.split())
    del data["columns"]["credit_lines"]
    data["columns"]["region"]["allowed"] = ["north", "south", "east"]
    (tmp_path / "breaking.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    r = cli("contract", "diff", old, tmp_path / "breaking.yaml")
    one_line_error(r, "2 breaking change(s)")
    out = " ".join(r.stdout.split())
    assert "BREAKING credit_lines: column removed" in out and "BREAKING region: categories removed ['west']" in out


def _validation(project):
    """The newest validation report: in the step cache when it succeeded, in the run folder when it failed."""
    newest = max(project.glob("runs/**/validation.json"), key=lambda p: p.stat().st_mtime)
    return json.loads(newest.read_text())


@pytest.mark.slow
def test_a_warning_level_rule_is_reported_but_does_not_stop_the_run(demo_project):
    _edit_contract(demo_project, lambda d: d["columns"]["region"].update(severity={"allowed": "warning"}))
    path = demo_project / "data" / "demo.csv"
    df = pd.read_csv(path)
    df.loc[df.index[:30], "region"] = "central"
    df.to_csv(path, index=False)
    r = cli("run", cwd=demo_project)
    assert r.returncode == 0, r.stderr
    report = _validation(demo_project)
    assert report["ok"] and [(v["column"], v["kind"], v["severity"], v["count"]) for v in report["violations"]] == \
        [("region", "allowed", "warning", 30)]


@pytest.mark.slow
def test_a_leaked_target_stops_the_run_at_validate_with_evidence(demo_project):
    path = demo_project / "data" / "demo.csv"
    df = pd.read_csv(path)
    df["recovered"] = df["defaulted"] * 3 + 1  # the target in disguise (e.g. a collections flag set after default)
    df.to_csv(path, index=False)
    _edit_contract(demo_project, lambda d: d["columns"].update(recovered={"dtype": "int", "nullable": False}))
    r = cli("run", cwd=demo_project)
    one_line_error(r, "step 'validate'")
    assert "target_leak on recovered: predicts 'defaulted' on its own (score 1.000 >= 0.95): each value of " \
           "`recovered` maps to one class of `defaulted` in 100.0% of training rows" in r.stderr
    quality = _validation(demo_project)["quality"]
    assert [(f["check"], f["column"], f["evidence"]["score"]) for f in quality["findings"]] == \
        [("target_leak", "recovered", 1.0)]
    assert not list(demo_project.glob("runs/.cache/train/*"))  # nothing trained on leaky data
    r = cli("run", cwd=demo_project, env={"ML_LIFECYCLE_QUALITY__TARGET_LEAK": "warning"})
    assert r.returncode == 0, r.stderr  # the level is the user's call


@pytest.mark.slow
def test_a_contract_that_breaks_the_champions_is_a_failed_gate(demo_project):
    assert cli("run", cwd=demo_project).returncode == 0
    _edit_contract(demo_project, lambda d: d["columns"]["age"].update(max=90))  # narrowed: breaking
    r = cli("run", cwd=demo_project)
    assert r.returncode == 0 and "registered demo_model version 2 as challenger (gates failed" in r.stdout, r.stdout
    newest = max(demo_project.glob("runs/**/evaluation.json"), key=lambda p: p.stat().st_mtime)
    verdict = json.loads(newest.read_text())["verdict"]
    gate = next(g for g in verdict["results"] if g["metric"] == "contract.breaking_changes")
    assert not gate["passed"] and gate["detail"] == "age: max 100 -> 90 (narrowed)"
    assert gate["gate"] == "contract compatible with champion v1 (credit_default v1)"
    # registering it as champion needs the same --force --reason as any failed gate, and is recorded
    r = cli("promote", "2", "--no-deploy", cwd=demo_project)
    assert r.returncode == 1 and "version 2 of 'demo_model' failed 1 gate(s): contract compatible with champion v1" \
        in r.stderr and "--force --reason" in r.stderr, r.stderr
    row = next(line for line in r.stdout.splitlines() if "contract compatible with champion v1" in line)
    assert row.split()[0] == "FAIL" and "age: max 100 -> 90 (narrowed)" in row, r.stdout
    assert cli("promote", "2", "--force", "--no-deploy", cwd=demo_project).returncode == 1  # no reason: refused
    r = cli("package", "1", "--canary", "2", cwd=demo_project)  # v1's requests would include ages v2 rejects
    assert r.returncode == 1 and "version 2 cannot serve beside version 1" in r.stderr \
        and "age: max 100 -> 90 (narrowed)" in r.stderr, r.stderr
    r = cli("promote", "2", "--force", "--reason", "age > 90 is out of scope now", "--no-deploy", cwd=demo_project)
    assert r.returncode == 0 and "champion: v1 -> v2  FORCED" in r.stdout, r.stdout + r.stderr
    events = [json.loads(line) for line in cli("history", "--json", cwd=demo_project).stdout.splitlines()]
    assert [(e["action"], e["from_version"], e["to_version"], e["forced"]) for e in events] == \
        [("promote", None, "1", False), ("promote", "1", "2", True)]
    assert events[1]["reason"] == "age > 90 is out of scope now" and not events[1]["verdict"]["passed"]
