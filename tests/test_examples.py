"""The example notebooks run as a user runs them: executed with papermill on a real kernel, on a fresh copy of the
demo project, keeping their rich outputs."""
from __future__ import annotations

import os
from pathlib import Path

import nbformat
import pytest
from conftest import BENTOML_HOME, REPO, copy_demo_project

pytestmark = pytest.mark.slow


def outputs(nb: nbformat.NotebookNode, mime: str) -> list[str]:
    return [o["data"][mime] for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
            if mime in o.get("data", {})]


def test_the_lifecycle_notebook(tmp_path, monkeypatch):
    import papermill
    project = copy_demo_project(tmp_path / "demo")
    for var in [v for v in os.environ if v.startswith("ML_LIFECYCLE_")]:
        monkeypatch.delenv(var)
    monkeypatch.setenv("BENTOML_HOME", str(BENTOML_HOME))  # the kernel inherits it: Bentos built here stay here
    monkeypatch.setenv("BENTOML_DO_NOT_TRACK", "True")
    executed = tmp_path / "lifecycle.ipynb"
    papermill.execute_notebook(str(REPO / "examples" / "lifecycle.ipynb"), str(executed),
                               parameters={"project_dir": str(project)}, cwd=str(tmp_path), kernel_name="python3",
                               progress_bar=False)
    nb = nbformat.read(executed, as_version=4)
    page = "\n".join(outputs(nb, "text/html"))
    # the rich outputs are kept: the run summaries, the comparison with its plot, the promotion and rollback,
    # the history and the drift report, each as HTML with its key facts
    assert "Comparison: v2 vs v1" in page and "paired change" in page and "data:image/png;base64," in page
    assert "FAIL" in page and "roc_auc &gt;= 0.99" in page  # the challenger's failed gate
    assert "try the oversampled model on live traffic" in page  # the forced promotion's reason, in the history
    assert "ALERT" in page and "debt_ratio" in page
    assert any("application/vnd.jupyter.widget-view+json" in o.get("data", {})
               for c in nb.cells for o in c.get("outputs", []))  # the live step table of project.run()
    text = "\n".join("".join(o.get("text", "")) for c in nb.cells for o in c.get("outputs", []))
    assert "champion: version 1; challenger 2 kept for the record; drift: retrain" in text
    print(f"executed notebook kept at {executed}")
    assert Path(project / "deploy" / "champion.json").exists()
