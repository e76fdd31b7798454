"""Every benchmark in benchmarks/ runs, at a tiny size (`--quick`), so none can silently break again.

Each script must accept `--quick`, exit 0 and print its ratio line (a line starting with "ratio" and holding a
number): the comparison with its anchor that the benchmark exists for. Timings are not judged here; a smoke run
on a shared CI machine says nothing about them. A new script in benchmarks/ is picked up without touching this
file."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPTS = sorted(p.name for p in (REPO / "benchmarks").glob("*.py"))
RATIO = re.compile(r"^ratio\b.*?\d+\.\d+", re.M)


def test_every_benchmark_is_found():
    assert {"pipeline.py", "scale.py", "serving.py", "contracts.py"} <= set(SCRIPTS), SCRIPTS


@pytest.mark.slow
@pytest.mark.parametrize("script", SCRIPTS)
def test_benchmark_runs_quick(script: str, tmp_path: Path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("ML_LIFECYCLE_")}
    env.update(BENTOML_HOME=str(tmp_path / "bentoml"), BENTOML_DO_NOT_TRACK="True", MLFLOW_DISABLE_TELEMETRY="true")
    r = subprocess.run([sys.executable, str(REPO / "benchmarks" / script), "--quick"], cwd=tmp_path, env=env,
                       capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, f"{script} exited {r.returncode}:\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}"
    assert RATIO.search(r.stdout), f"{script} printed no ratio line:\n{r.stdout[-3000:]}"
