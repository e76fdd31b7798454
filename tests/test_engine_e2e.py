"""The pipeline engine end to end: incremental runs, their five triggers, resume after SIGKILL, parallel steps.

A tiny three-step pipeline (a -> b -> c) runs in real kernels through the real `ml-lifecycle run`.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import papermill
import psutil
import pytest
import yaml
from conftest import REPO, cli

from ml_lifecycle.pipeline import notebook_parameters, write_notebook
from ml_lifecycle.scaffold import render_settings

pytestmark = pytest.mark.slow
P = "settings_path: str = ''\nmlflow_run_id: str = ''\n"
A = ("import time\nfrom pathlib import Path\nimport ml_lifecycle as ml\n"
     "s = ml.load_settings(settings_path)\nrows = s.path(s.data.path).read_text().split()[1:]\n"
     "if (s.root / 'slow_a').exists():\n    time.sleep(60)\n"
     "Path(numbers).write_text(' '.join(str(int(r) * scale) for r in rows))")
B = ("import time\nfrom pathlib import Path\n"
     "if (Path(settings_path).parent.parent.parent / 'slow_b').exists():\n    time.sleep(60)\n"
     "Path(total).write_text(str(sum(map(int, Path(numbers).read_text().split()))))")
C = "from pathlib import Path\nPath(report).write_text('total=' + Path(total).read_text())"


def write_pipeline(project: Path, **overrides) -> None:
    spec = {"steps": {
        "a": {"notebook": "a.ipynb", "settings": ["data"], "parameters": {"scale": 1}, "products": {"numbers": "n.txt"}},
        "b": {"notebook": "b.ipynb", "needs": ["a"], "settings": [], "products": {"total": "t.txt"}},
        "c": {"notebook": "c.ipynb", "needs": ["b"], "settings": ["gates"], "products": {"report": "r.txt"}}}}
    for step, changes in overrides.items():
        spec["steps"][step].update(changes)
    (project / "pipelines" / "pipeline.yaml").write_text(yaml.safe_dump(spec))


@pytest.fixture
def tiny(tmp_path: Path) -> Path:
    """A project whose pipeline has run once, completely."""
    project = tmp_path / "tiny"
    (project / "pipelines").mkdir(parents=True)
    (project / "data").mkdir()
    (project / "contracts").mkdir()
    (project / "data" / "d.csv").write_text("n\n1\n2\n3\n")
    (project / "contracts" / "c.yaml").write_text(yaml.safe_dump(
        {"name": "tiny", "target": {"column": "n", "task": "regression"}, "columns": {"n": {"dtype": "int"}}}))
    ini = render_settings("tiny", "data/d.csv", "contracts/c.yaml", "binary")
    (project / "settings.ini").write_text(ini.replace("preload = ml_lifecycle.registry,", "preload = ml_lifecycle.settings\n#"))
    write_notebook(project / "pipelines" / "a.ipynb", P + "numbers = ''\nscale: int = 1", A)
    write_notebook(project / "pipelines" / "b.ipynb", P + "numbers = ''\ntotal = ''", B)
    write_notebook(project / "pipelines" / "c.ipynb", P + "total = ''\nreport = ''", C)
    write_pipeline(project)
    r = run(project)
    assert r.returncode == 0, r.stdout + r.stderr
    assert last(project)["status"] == "done" and statuses(project) == ["done", "done", "done"]
    return project


def run(project: Path, *args: str, **kw) -> subprocess.CompletedProcess:
    return cli("run", "--project", project, *args, **kw)


def last(project: Path) -> dict:
    return json.loads((sorted((project / "runs").glob("2*"))[-1] / "run.json").read_text())


def statuses(project: Path) -> list[str]:
    return [s["status"] for s in last(project)["steps"]]


def report(project: Path) -> str:
    return Path(last(project)["steps"][-1]["products"]["report"]).read_text()


def test_unchanged_rerun_executes_nothing(tiny):
    r = run(tiny)
    assert r.returncode == 0 and "no step executed" in r.stdout
    assert statuses(tiny) == ["cached", "cached", "cached"] and report(tiny) == "total=6"
    assert last(tiny)["mlflow_run_id"] is None and not list((sorted((tiny / "runs").glob("2*"))[-1]).glob("*.ipynb"))


def test_notebook_source_change_reruns_it_and_downstream(tiny):
    nb = tiny / "pipelines" / "b.ipynb"
    data = json.loads(nb.read_text())
    data["cells"][1]["outputs"] = [{"output_type": "stream", "name": "stdout", "text": ["noise\n"]}]
    data["cells"][1]["metadata"]["scrolled"] = True
    nb.write_text(json.dumps(data))
    assert run(tiny).returncode == 0 and statuses(tiny) == ["cached", "cached", "cached"]  # outputs ignored
    write_notebook(nb, P + "numbers = ''\ntotal = ''", B.replace("sum(", "10 * sum("))
    assert run(tiny).returncode == 0 and statuses(tiny) == ["cached", "done", "done"]
    assert report(tiny) == "total=60"


def test_parameter_change_reruns_it_and_downstream(tiny):
    write_pipeline(tiny, a={"parameters": {"scale": 2}})
    assert run(tiny).returncode == 0 and statuses(tiny) == ["done", "done", "done"] and report(tiny) == "total=12"


def test_upstream_product_content_decides(tiny):
    # a re-runs (its code changed) but writes the same bytes: b and c stay cached
    write_notebook(tiny / "pipelines" / "a.ipynb", P + "numbers = ''\nscale: int = 1", "# same output\n" + A)
    assert run(tiny).returncode == 0 and statuses(tiny) == ["done", "cached", "cached"]
    # a cached product that no longer matches its manifest is not trusted: a re-runs and restores it
    numbers = Path(last(tiny)["steps"][0]["products"]["numbers"])
    numbers.write_text("100 200")
    assert run(tiny).returncode == 0 and statuses(tiny) == ["done", "cached", "cached"]
    assert numbers.read_text() == "1 2 3" and report(tiny) == "total=6"


def test_settings_change_reruns_only_the_steps_that_read_them(tiny):
    r = run(tiny, env={"ML_LIFECYCLE_SERVING__PORT": "4000"})  # no step reads [serving]
    assert r.returncode == 0 and statuses(tiny) == ["cached", "cached", "cached"]
    r = run(tiny, env={"ML_LIFECYCLE_GATES__MIN_ROC_AUC": "0.9"})  # c reads [gates]
    assert r.returncode == 0 and statuses(tiny) == ["cached", "cached", "done"]
    (tiny / "data" / "d.csv").write_text("n\n1\n2\n3\n4\n")  # the file [data] points to
    assert run(tiny).returncode == 0 and statuses(tiny) == ["done", "done", "done"] and report(tiny) == "total=10"


def test_package_code_change_reruns_everything(tiny, tmp_path):
    copy = tmp_path / "pkg"
    shutil.copytree(REPO / "ml_lifecycle", copy / "ml_lifecycle", ignore=shutil.ignore_patterns("__pycache__"))
    env = {**os.environ, "PYTHONPATH": str(copy)}
    cmd = [sys.executable, "-m", "ml_lifecycle.cli", "run", "--project", str(tiny)]
    first = subprocess.run(cmd, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert first.returncode == 0, first.stderr
    assert statuses(tiny) == ["cached", "cached", "cached"]  # the same code, imported from elsewhere
    assert "import ml_lifecycle" in A and str(copy) in subprocess.run(
        [sys.executable, "-c", "import ml_lifecycle; print(ml_lifecycle.__file__)"], env=env, cwd=tmp_path,
        capture_output=True, text=True).stdout
    with open(copy / "ml_lifecycle" / "data.py", "a") as f:
        f.write("\n# a change to the library\n")
    second = subprocess.run(cmd, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert second.returncode == 0, second.stderr
    assert statuses(tiny) == ["done", "done", "done"]


def test_force_from_and_only(tiny):
    assert run(tiny, "--force").returncode == 0 and statuses(tiny) == ["done", "done", "done"]
    assert run(tiny, "--from", "b").returncode == 0 and statuses(tiny) == ["cached", "done", "done"]
    assert run(tiny, "--only", "b").returncode == 0 and statuses(tiny) == ["cached", "done"]
    r = run(tiny, "--only", "nope")
    assert r.returncode == 1 and "no step named 'nope'" in r.stderr


def test_only_refuses_without_cached_upstream(tiny):
    write_pipeline(tiny, a={"parameters": {"scale": 3}})
    r = run(tiny, "--only", "b")
    assert r.returncode == 1 and "needs the products of step 'a'" in r.stderr and "Traceback" not in r.stderr


def _kernels_in(project: Path) -> list[psutil.Process]:
    """Kernel processes working in `project`: launched ones, and ones forked from the preloaded zygote."""
    found = []
    for p in psutil.process_iter(["cmdline"]):
        try:
            cmd = " ".join(p.info["cmdline"] or [])
            if ("ipykernel_launcher" in cmd or "zygote_main" in cmd) and Path(p.cwd()) == project:
                found.append(p)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            pass
    return found


def test_sigkill_mid_step_leaves_nothing_complete_and_next_run_resumes(tiny):
    write_pipeline(tiny, a={"parameters": {"scale": 5}})  # a, b and c must all run again
    (tiny / "slow_b").write_text("")
    proc = subprocess.Popen([str(Path(sys.executable).parent / "ml-lifecycle"), "run", "--project", str(tiny)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 120
    while not list((tiny / "runs" / ".cache" / "b").glob(".tmp-*")) or not _kernels_in(tiny):
        assert time.monotonic() < deadline and proc.poll() is None, "step b never started"
        time.sleep(0.2)
    time.sleep(1.0)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)

    killed = last(tiny)
    assert killed["status"] == "running" and [st["status"] for st in killed["steps"]] == ["done", "running", "pending"]
    entries = [p.name for p in (tiny / "runs" / ".cache" / "b").iterdir()]
    finished = [e for e in entries if not e.startswith(".tmp-") and (tiny / "runs/.cache/b" / e / "manifest.json").exists()]
    assert len(finished) == 1  # only the first fixture run's entry; the killed run left a .tmp- folder
    assert any(e.startswith(".tmp-") for e in entries)
    deadline = time.monotonic() + 30
    while _kernels_in(tiny) and time.monotonic() < deadline:  # orphaned kernels notice their parent died
        time.sleep(0.5)
    assert not _kernels_in(tiny)

    (tiny / "slow_b").unlink()
    r = run(tiny)
    assert r.returncode == 0, r.stderr
    assert statuses(tiny) == ["cached", "done", "done"] and report(tiny) == "total=30"


def test_independent_steps_run_in_parallel(tiny):
    stamp = ("import time\nfrom pathlib import Path\nt0 = time.time()\ntime.sleep(3)\n"
             "Path(span).write_text(f'{t0} {time.time()}')")
    write_notebook(tiny / "pipelines" / "x.ipynb", P + "span = ''", stamp)
    write_notebook(tiny / "pipelines" / "y.ipynb", P + "span2 = ''", stamp.replace("span)", "span2)"))
    (tiny / "pipelines" / "pipeline.yaml").write_text(yaml.safe_dump({"steps": {
        "x": {"notebook": "x.ipynb", "settings": [], "products": {"span": "s.txt"}},
        "y": {"notebook": "y.ipynb", "settings": [], "products": {"span2": "s.txt"}}}}))
    assert run(tiny).returncode == 0 and statuses(tiny) == ["done", "done"]
    (x0, x1), (y0, y1) = [map(float, Path(s["products"][k]).read_text().split())
                          for s, k in zip(last(tiny)["steps"], ["span", "span2"], strict=True)]
    assert x0 < y1 and y0 < x1, "the two independent steps did not overlap"


@pytest.mark.parametrize("notebook", sorted((REPO / "pipelines").glob("*.ipynb")), ids=lambda p: p.name)
def test_parameter_parsing_agrees_with_papermill(notebook):
    assert notebook_parameters(notebook) == set(papermill.inspect_notebook(str(notebook)))
