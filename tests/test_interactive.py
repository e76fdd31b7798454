"""Developing a step by hand, as a user does in JupyterLab: the pipeline notebooks run with nbval, in pipeline
order, on a copy of the demo project; `%ml_step` on a real run; notebooks re-executed from `runs/` refused; and
no MLflow run left RUNNING."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from conftest import BENTOML_HOME, REPO, cli, copy_demo_project
from mlflow import MlflowClient

pytestmark = pytest.mark.slow

def client_for(project: Path) -> MlflowClient:
    uri = f"sqlite:///{project.resolve()}/mlflow.db"
    return MlflowClient(uri, uri)


def nbval(notebook: Path) -> subprocess.CompletedProcess:
    """`pytest --nbval-lax NOTEBOOK` in the notebook's folder, as a user would check a notebook by hand."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ML_LIFECYCLE_")}
    env.update(BENTOML_HOME=str(BENTOML_HOME), BENTOML_DO_NOT_TRACK="True")
    return subprocess.run([sys.executable, "-m", "pytest", "--nbval-lax", "-x", "-p", "no:cacheprovider", "-q",
                           "--rootdir", str(notebook.parent), notebook.name], cwd=notebook.parent, env=env,
                          capture_output=True, text=True, timeout=900)


def set_parameter(notebook: Path, line: str, new: str) -> None:
    """Edit one line of a notebook's parameters cell, as a user does (e.g. `confirm: bool = True`)."""
    nb = nbformat.read(notebook, as_version=4)
    cell = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
    assert line in cell.source, cell.source
    cell.source = cell.source.replace(line, new)
    nbformat.write(nb, notebook)


def running(project: Path) -> list[str]:
    c = client_for(project)
    ids = [e.experiment_id for e in c.search_experiments()]
    return [f"{r.info.run_name} ({r.info.run_id})" for r in c.search_runs(ids, "attributes.status = 'RUNNING'")]


def interactive_runs(project: Path) -> list:
    c = client_for(project)
    ids = [e.experiment_id for e in c.search_experiments()]
    return c.search_runs(ids, "tags.`ml_lifecycle.interactive` = 'true'")


def test_pipeline_notebooks_run_by_hand_in_order(tmp_path):
    project = copy_demo_project(tmp_path / "demo")
    pipelines = project / "pipelines"

    # opened before any run: one line says which step to run first, no traceback
    early = nbval(pipelines / "evaluate.ipynb")
    assert early.returncode != 0
    assert "ArtifactError: evaluate needs validate's train_data" in early.stdout, early.stdout[-3000:]
    assert "(`%ml_run --until train`), then `%ml_step evaluate`" in early.stdout
    assert "FileNotFoundError" not in early.stdout and "NameError" not in early.stdout

    for name in ("validate", "train", "evaluate", "register"):
        done = nbval(pipelines / f"{name}.ipynb")
        assert done.returncode == 0, f"{name}.ipynb run by hand failed:\n{done.stdout[-4000:]}"
    scratch = project / "runs" / "interactive"
    assert (scratch / "evaluate" / "evaluation.json").is_file()
    # register without `confirm = True` is a dry run: nothing registered, nothing handed on
    assert client_for(project).search_registered_models() == []
    assert not (scratch / "register" / "registration.json").exists()

    for name in ("register", "package"):
        set_parameter(pipelines / f"{name}.ipynb", "confirm: bool = False", "confirm: bool = True")
    for name in ("register", "card", "package"):
        done = nbval(pipelines / f"{name}.ipynb")
        assert done.returncode == 0, f"{name}.ipynb run by hand failed:\n{done.stdout[-4000:]}"
    registered = json.loads((scratch / "register" / "registration.json").read_text())
    assert registered["version"] == "1" and "challenger" in registered["aliases"]
    assert (scratch / "card" / "model_card.md").is_file() and (scratch / "package" / "deployment.json").is_file()

    # every hand-run logged to its own interactive run under the one "interactive" parent, and none is RUNNING
    runs = interactive_runs(project)
    assert {r.data.tags.get("ml_lifecycle.step") for r in runs} >= {"validate", "train", "evaluate"}
    parents = {r.data.tags["mlflow.parentRunId"] for r in runs}
    assert len(parents) == 1
    assert client_for(project).get_run(parents.pop()).info.run_name == "interactive"
    assert running(project) == []


@pytest.fixture(scope="module")
def run_until_train(tmp_path_factory):
    project = copy_demo_project(tmp_path_factory.mktemp("interactive") / "demo")
    done = cli("run", "--until", "train", cwd=project)
    assert done.returncode == 0, done.stdout + done.stderr
    return project


def test_ml_step_then_run_all_on_the_pipelines_inputs(run_until_train):
    project = run_until_train
    run_dir = sorted((project / "runs").glob("2*"))[-1]
    record = json.loads((run_dir / "run.json").read_text())
    cached_model = next(s for s in record["steps"] if s["name"] == "train")["products"]["model_info"]
    # the user's first cell: `%load_ext ml_lifecycle` and `%ml_step evaluate`, then Run All
    nb = nbformat.read(project / "pipelines" / "evaluate.ipynb", as_version=4)
    nb.cells[:0] = [nbformat.v4.new_code_cell("%load_ext ml_lifecycle\n%ml_step evaluate"),
                    nbformat.v4.new_code_cell("assert model_info.endswith('runs/interactive/train/model.json')\n"
                                              "assert set(experiment) == {'metrics', 'slices'}")]
    mine = project / "pipelines" / "my_evaluate.ipynb"
    nbformat.write(nb, mine)
    done = nbval(mine)
    assert done.returncode == 0, done.stdout[-4000:]
    scratch = project / "runs" / "interactive"
    assert (scratch / "train" / "model.json").read_text() == Path(cached_model).read_text()  # the run's model
    assert json.loads((scratch / "evaluate" / "evaluation.json").read_text())["metrics"]
    pipeline_run = client_for(project).get_run(record["mlflow_run_id"])
    assert "test.roc_auc" not in pipeline_run.data.metrics  # the finished pipeline run is untouched
    assert running(project) == []


def test_a_notebook_re_executed_from_runs_is_refused(run_until_train):
    project = run_until_train
    run_dir = sorted((project / "runs").glob("2*"))[-1]
    record = json.loads((run_dir / "run.json").read_text())
    before = client_for(project).get_run(record["mlflow_run_id"]).data
    executed = sorted(run_dir.glob("*_train.ipynb"))[0]
    done = nbval(executed)
    assert done.returncode != 0
    assert "finished pipeline run" in done.stdout, done.stdout[-3000:]
    after = client_for(project).get_run(record["mlflow_run_id"]).data
    assert after.metrics == before.metrics and after.params == before.params
    assert not list((project / "runs" / ".cache").rglob(".tmp-*"))
    assert running(project) == []


def test_committed_notebooks_have_jupyterlabs_kernelspec():
    """Opening a committed notebook in JupyterLab (started from .venv) must not mark it modified: JupyterLab
    writes the kernelspec of the kernel it starts, nbdev-clean writes display_name = name; they must agree."""
    from jupyter_client.kernelspec import KernelSpecManager
    spec = KernelSpecManager().get_kernel_spec("python3")
    jupyterlab = {"display_name": spec.display_name, "language": spec.language, "name": "python3"}
    assert jupyterlab["display_name"] == "python3", "run `python3 dev.py install`: it names .venv's kernel python3"
    notebooks = sorted([*REPO.glob("nbs/*.ipynb"), *REPO.glob("pipelines/*.ipynb"), *REPO.glob("examples/*.ipynb")])
    assert notebooks
    wrong = [str(p.relative_to(REPO)) for p in notebooks
             if json.loads(p.read_text()).get("metadata", {}).get("kernelspec") != jupyterlab]
    assert wrong == []
    # and the language_info the kernel reports when JupyterLab starts it (kept by nbdev-clean: pyproject.toml)
    import platform
    stale = [str(p.relative_to(REPO)) for p in notebooks
             if json.loads(p.read_text())["metadata"].get("language_info", {}).get("version") != platform.python_version()]
    assert stale == [], f"language_info missing or not Python {platform.python_version()}"


def test_jupyterlab_saves_notebooks_clean(tmp_path, monkeypatch):
    """nbdev's Jupyter hook is on (pyproject) and installed in .venv's Jupyter config: a save is cleaned."""
    import shutil

    from jupyter_core.paths import jupyter_config_path
    from nbdev.clean import clean_jupyter
    assert any("nbdev_clean_jupyter" in (Path(d) / "jupyter_server_config.py").read_text()
               for d in jupyter_config_path() if (Path(d) / "jupyter_server_config.py").is_file())
    monkeypatch.setenv("JUPYTER_DATA_DIR", str(tmp_path / "jupyter"))  # the hook signs the notebook: not in ~
    shutil.copy(REPO / "pyproject.toml", tmp_path / "pyproject.toml")  # the hook reads [tool.nbdev] from here
    (tmp_path / "pipelines").mkdir()
    where = shutil.copy(REPO / "pipelines" / "evaluate.ipynb", tmp_path / "pipelines" / "evaluate.ipynb")
    nb = json.loads(Path(where).read_text())
    saved = json.loads(json.dumps(nb))
    saved["metadata"]["kernelspec"]["display_name"] = "Python 3 (ipykernel)"  # what JupyterLab may hand over
    saved["metadata"]["language_info"] = dict(nb["metadata"]["language_info"])  # the kernel's: kept, committed so
    saved["cells"][2]["execution_count"] = 7
    clean_jupyter(path=str(where), model={"type": "notebook", "content": saved})
    assert saved == nb
