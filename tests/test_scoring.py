"""Batch scoring (`ml-lifecycle score`): the same answers as the BentoML server for the same rows, rows breaking the
model's contract set aside with their column and rule, the Dask path equal to the one-process path, provenance in
every file, one-line errors, and an executed notebook and MLflow run per job."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest
from conftest import Server, cli

BIN = Path(sys.executable).parent
BUILD = """
import ml_lifecycle as ml
from ml_lifecycle.packaging import build_bento
print(build_bento(ml.load_settings("settings.ini"), "1"))
"""
# rows that break version 1's contract, each in one known way (column, rule)
BAD = {3: ("age", "max <= 100"), 10: ("region", "allowed ['east', 'north', 'south', 'west']"),
       17: ("debt_ratio", "min >= 0")}


def _rows(project: Path, n: int = 300) -> pd.DataFrame:
    import ml_lifecycle as ml
    df = ml.read_table(project / "data" / "demo.csv").sample(n, random_state=3).reset_index(drop=True)
    df.loc[3, "age"], df.loc[10, "region"], df.loc[17, "debt_ratio"] = 130, "atlantis", -1.0
    return df


@pytest.fixture(scope="module")
def scored(demo_runs, tmp_path_factory):
    """`ml-lifecycle score` of 300 demo rows (3 of them bad), as a user types it, with version 1."""
    project, *_ = demo_runs
    folder = tmp_path_factory.mktemp("score")
    data = _rows(project)
    data.to_parquet(folder / "in.parquet", row_group_size=100)
    r = cli("score", folder / "in.parquet", "-o", folder / "out.parquet", "--version", "1", cwd=project)
    assert r.returncode == 0, r.stdout + r.stderr
    return project, folder, data, r


@pytest.mark.slow
def test_batch_scores_equal_the_served_scores_for_the_same_rows(scored, tmp_path_factory):
    project, folder, data, _ = scored
    home = tmp_path_factory.mktemp("bentoml")
    env = {**os.environ, "BENTOML_HOME": str(home), "BENTOML_DO_NOT_TRACK": "True",
           "ML_LIFECYCLE_MONITORING__PREDICTION_LOG": str(home / "predictions.jsonl")}
    r = subprocess.run([sys.executable, "-c", BUILD], cwd=project, env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    good = data.drop(index=list(BAD))
    records = json.loads(good.drop(columns="defaulted").to_json(orient="records"))
    with Server(env, [BIN / "bentoml", "serve", r.stdout.split()[-1], "--host", "127.0.0.1"]) as server:
        status, body = server.predict(records)
        bad_status, bad_body = server.predict(json.loads(data.loc[list(BAD)].drop(columns="defaulted")
                                                         .to_json(orient="records")))
    assert status == 200 and body["model_version"] == "1"
    out = pq.read_table(folder / "out.parquet").to_pandas().set_index("customer_id").loc[good.customer_id]
    assert out.label.tolist() == [p["label"] for p in body["predictions"]]
    for c in ("0", "1"):  # the same floats, not merely close
        assert out[f"score_{c}"].tolist() == [p["scores"][c] for p in body["predictions"]]
    # the server refuses the rows batch scoring set aside, naming the same columns and rules
    assert bad_status == 422
    assert {(v["column"], v["rule"]) for v in bad_body["violations"]} == set(BAD.values())


@pytest.mark.slow
def test_rejects_carry_column_and_rule_and_are_not_in_the_output(scored):
    _, folder, data, r = scored
    rejects = pq.read_table(folder / "out.rejects.parquet").to_pandas()
    assert dict(zip(rejects.input_row, zip(rejects.rejected_column, rejects.rejected_rule, strict=True),
                    strict=True)) == BAD
    assert rejects.loc[rejects.input_row == 3, "age"].item() == "130"  # the value as it was read
    out = pq.read_table(folder / "out.parquet").to_pandas()
    assert len(out) == len(data) - len(BAD) and not set(out.input_row) & set(BAD)
    assert set(out.customer_id) == set(data.customer_id) - set(data.customer_id[list(BAD)])
    assert "rejected: 3" in r.stdout and "scored: 297" in r.stdout


@pytest.mark.slow
def test_output_carries_model_name_version_run_and_time(scored):
    import ml_lifecycle as ml
    from ml_lifecycle.tracking import client
    project, folder, *_ = scored
    settings = ml.load_settings(project / "settings.ini", env={})
    run_id = client(settings).get_model_version("demo_model", "1").run_id
    table = pq.read_table(folder / "out.parquet")
    meta = {k.decode(): v.decode() for k, v in table.schema.metadata.items() if k.startswith(b"ml_lifecycle.")}
    assert meta["ml_lifecycle.model_name"] == "demo_model" and meta["ml_lifecycle.model_version"] == "1"
    assert meta["ml_lifecycle.run_id"] == run_id and meta["ml_lifecycle.contract"] == "credit_default v1"
    out = table.to_pandas()
    assert set(out.model_name) == {"demo_model"} and set(out.model_version) == {"1"} and set(out.run_id) == {run_id}
    assert out.scored_at.nunique() == 1 and out.scored_at.iloc[0].isoformat() == meta["ml_lifecycle.scored_at"]


@pytest.mark.slow
def test_each_job_leaves_an_executed_notebook_and_an_mlflow_run(scored):
    import nbformat

    import ml_lifecycle as ml
    from ml_lifecycle.tracking import client
    project, folder, _, r = scored
    notebook = Path(r.stdout.split("notebook: ")[1].split()[0])
    assert notebook.name == "01_score.ipynb" and notebook.is_file()
    nb = nbformat.read(notebook, as_version=4)
    assert any("297" in json.dumps(c.get("outputs", [])) for c in nb.cells)  # executed: its outputs are in it
    record = json.loads((notebook.parent / "run.json").read_text())
    run = client(ml.load_settings(project / "settings.ini", env={})).get_run(record["mlflow_run_id"])
    assert run.data.metrics["score.rows"] == 300 and run.data.metrics["score.rejected"] == 3
    assert run.data.params["score.model_version"] == "1" and run.data.params["score.output"] == str(folder / "out.parquet")


@pytest.mark.slow
def test_the_dask_path_equals_the_one_process_path(scored):
    import ml_lifecycle as ml
    from ml_lifecycle.scoring import load_scoring_model, score_file
    project, folder, data, _ = scored
    settings = ml.load_settings(project / "settings.ini", env={})
    sm = load_scoring_model(settings, "1")
    one = score_file(sm, folder / "in.parquet", folder / "one.parquet", dask=False, chunk_rows=64)
    on_dask = score_file(sm, folder / "in.parquet", folder / "dask.parquet", dask=True, ps=settings.pipeline)
    # above [pipeline] score_dask_rows rows, Dask is chosen without being asked
    auto = score_file(sm, folder / "in.parquet", folder / "auto.parquet",
                      ps=replace(settings.pipeline, score_dask_rows=100))
    assert (one.dask_workers, on_dask.dask_workers, auto.dask_workers) == (0, 2, 2)
    expected = pq.read_table(folder / "one.parquet").drop(["scored_at"])
    for name in ("dask", "auto"):
        assert pq.read_table(folder / f"{name}.parquet").drop(["scored_at"]).equals(expected), name
        assert pq.read_table(folder / f"{name}.rejects.parquet").equals(pq.read_table(folder / "one.rejects.parquet"))
    assert expected.num_rows == len(data) - len(BAD)


@pytest.mark.slow
def test_dask_workers_run_the_installed_package_not_the_models_copy(scored):
    """Regression: a loaded MLflow model puts its `code/` copy of ml_lifecycle first on sys.path, which spawned
    workers inherit; they imported that copy (older code) and returned the wrong types."""
    import ml_lifecycle as ml
    from ml_lifecycle.scoring import load_scoring_model, this_package_only
    from ml_lifecycle.sweep import dask_client
    project, *_ = scored
    settings = ml.load_settings(project / "settings.ini", env={})
    load_scoring_model(settings, "1")
    copies = [p for p in sys.path if (Path(p or ".") / "ml_lifecycle").is_dir()
              and (Path(p or ".") / "ml_lifecycle").resolve() != Path(ml.__file__).parent.resolve()]
    assert copies, "the model's code/ copy is on sys.path (the condition this guards against)"
    with this_package_only(), dask_client(replace(settings.pipeline, dask_workers=1), processes=True) as client:
        where = client.submit(lambda: __import__("ml_lifecycle").__file__).result()
    assert Path(where).resolve() == Path(ml.__file__).resolve()


def _bad_inputs(folder: Path, project: Path) -> dict[str, tuple[list, str]]:
    _rows(project, 50).drop(columns="age").to_parquet(folder / "noage.parquet")
    _rows(project, 50).to_csv(folder / "ok.csv", index=False)
    (folder / "garbage.parquet").write_bytes(b"PAR1 this is not parquet")
    return {
        "missing file": ([folder / "nope.parquet"], f"error: data file not found: {folder / 'nope.parquet'}"),
        "unreadable file": ([folder / "garbage.parquet"], f"error: cannot read {folder / 'garbage.parquet'}"),
        "absent column": ([folder / "noage.parquet"], f"error: column 'age' not found in {folder / 'noage.parquet'} "
                                                      "(model version 1 needs it)"),
        "unknown version": ([folder / "ok.csv", "--version", "99"], "error: model 'demo_model' has no version 99"),
        "unknown alias": ([folder / "ok.csv", "--alias", "nope"],
                          "error: model 'demo_model' has no version aliased 'nope'"),
    }


@pytest.mark.slow
@pytest.mark.parametrize("case", ["missing file", "unreadable file", "absent column", "unknown version",
                                  "unknown alias"])
def test_bad_input_is_one_line_and_exit_1(demo_runs, tmp_path, case):
    project, *_ = demo_runs
    args, said = _bad_inputs(tmp_path, project)[case]
    r = cli("score", *args, "-o", tmp_path / "out.parquet", cwd=project)
    assert r.returncode == 1, r.stdout + r.stderr
    assert r.stderr.startswith(said) and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert not (tmp_path / "out.parquet").exists() and "Traceback" not in r.stdout + r.stderr


@pytest.mark.slow
def test_the_facade_and_the_command_leave_the_same_files(scored):
    import ml_lifecycle as ml
    project, folder, *_ = scored
    # on Dask this time: the score notebook's kernel starts the LocalCluster; the files are the same
    result = ml.project(project).score(folder / "in.parquet", out=folder / "facade.parquet", version="1", dask=True)
    assert (result.rows, result.scored, result.rejected) == (300, 297, 3) and Path(result.notebook).is_file()
    assert result.dask_workers == 2
    for suffix in ("", ".rejects"):
        ours, theirs = (pq.read_table(folder / f"{name}{suffix}.parquet") for name in ("facade", "out"))
        if not suffix:
            ours, theirs = ours.drop(["scored_at"]), theirs.drop(["scored_at"])
        assert ours.equals(theirs), suffix
