"""The review panel in a real browser: JupyterLab from this venv, Debian's chromium driven by Playwright; a reviewer
forces a failing challenger with a reason, then rolls back, and the registry, the history and the deployment
pointer follow."""
from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from conftest import BENTOML_HOME, free_port, wait_for_http

pytestmark = pytest.mark.slow
CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
REASON = "browser review: v2 accepted for the pilot"
USER = "browser-reviewer"
NOTEBOOK = "import ml_lifecycle as ml\n\npanel = ml.project().review(\"challenger\")\npanel"


@pytest.fixture
def review_project(demo_runs, tmp_path):
    """A private copy of the demo project after its two runs (v1 champion, v2 failed a gate) with the notebook."""
    project, *_ = demo_runs
    dest = Path(shutil.copytree(project, tmp_path / "review", ignore=shutil.ignore_patterns("runs", "deploy")))
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(NOTEBOOK)])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "python3", "language": "python"}  # as committed
    nbformat.write(nb, dest / "review.ipynb")
    return dest


@contextlib.contextmanager
def jupyterlab(root: Path, home: Path):
    """JupyterLab of this venv on 127.0.0.1 and a free port, no token or password; stopped by PID."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ML_LIFECYCLE_", "JUPYTER"))}
    env.update(ML_LIFECYCLE_USER=USER, ML_LIFECYCLE_GATES__MIN_ROC_AUC="0.99",  # the gate v2 failed in its run
               BENTOML_HOME=str(BENTOML_HOME), BENTOML_DO_NOT_TRACK="True", JUPYTER_CONFIG_DIR=str(home / "config"),
               JUPYTER_DATA_DIR=str(home / "data"), JUPYTER_RUNTIME_DIR=str(home / "runtime"),
               JUPYTERLAB_SETTINGS_DIR=str(home / "settings"), JUPYTERLAB_WORKSPACES_DIR=str(home / "workspaces"))
    news = home / "settings" / "@jupyterlab" / "apputils-extension" / "notification.jupyterlab-settings"
    news.parent.mkdir(parents=True, exist_ok=True)
    news.write_text(json.dumps({"fetchNews": "false", "checkForUpdates": False}))  # no pop-up over the panel
    log = (home / "jupyterlab.log").open("w")
    proc = subprocess.Popen([sys.executable, "-m", "jupyter", "lab", "--no-browser", "--ip=127.0.0.1",
                             f"--port={port}", "--IdentityProvider.token=", "--ServerApp.password=", "--allow-root",
                             f"--ServerApp.root_dir={root}", "--LabApp.news_url=None"],
                            env=env, cwd=root, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_for_http(f"http://127.0.0.1:{port}/api/status", proc, timeout=120)
        yield f"http://127.0.0.1:{port}"
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
        log.close()


def _run_first_cell(page, attempts: int = 3) -> None:
    """Run the notebook's first cell as a user does (click it, Shift+Enter) once the kernel is idle, accepting
    JupyterLab's "Select Kernel" dialog if it asks (it may while the kernel connects); bounded attempts."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout
    from playwright.sync_api import expect
    first = page.locator(".jp-Notebook .jp-Cell").first
    for _ in range(attempts):
        expect(page.get_by_role("button", name=re.compile(r"(python3|ipykernel\)) \| Idle"))).to_be_visible(timeout=180_000)
        first.locator(".cm-content").click()
        page.keyboard.press("Shift+Enter")
        with contextlib.suppress(PlaywrightTimeout):
            page.locator(".jp-Dialog .jp-mod-accept").click(timeout=5_000)
        try:
            expect(first.locator(".jp-InputPrompt")).not_to_have_text("[ ]:", timeout=20_000)  # [*]: or [1]:
            return
        except AssertionError:
            continue
    raise AssertionError(f"JupyterLab did not run the review cell in {attempts} attempts")


def _state(project: Path) -> tuple[str, object, str]:
    """(champion version, last history event, deployed Bento) as the registry and the pointer say."""
    import ml_lifecycle as ml
    from ml_lifecycle.registry import alias_version, champion_history
    settings = ml.project(project).settings
    pointer = json.loads((project / "deploy" / "champion.json").read_text())
    return alias_version(settings, "champion"), champion_history(settings).events[-1], pointer["bento"]


def test_review_panel_force_promote_and_roll_back(review_project, tmp_path):
    if not CHROMIUM.is_file():
        pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium with `apt-get install chromium` "
                    "(.ci/run does this in CI)")
    from playwright.sync_api import expect, sync_playwright

    project = review_project
    ARTIFACTS.mkdir(exist_ok=True)
    with jupyterlab(project, tmp_path / "jupyter") as url, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, timeout=60_000,
                                     args=["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                                           "--disable-background-networking", "--disable-component-update",
                                           "--disable-sync"])
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 2400})
            page.set_default_timeout(60_000)
            page.goto(f"{url}/lab/tree/review.ipynb", timeout=120_000)
            expect(page.locator(".jp-Notebook .jp-Cell .cm-content").first).to_contain_text("review(", timeout=120_000)
            _run_first_cell(page)

            panel = page.locator(".ml-lifecycle-review")
            expect(panel).to_be_visible(timeout=420_000)  # the kernel starts, judges both versions, draws
            expect(panel).to_contain_text("gates FAILED; champion v1", timeout=60_000)
            promote = panel.get_by_role("button", name="Promote", exact=True)
            force = panel.get_by_role("button", name="Force promote", exact=True)
            rollback = panel.get_by_role("button", name="Roll back", exact=True)
            expect(promote).to_be_disabled()  # a gate failed
            expect(force).to_be_disabled()  # no reason yet
            expect(rollback).to_be_disabled()  # v1 is the first champion
            expect(panel).to_contain_text("roc_auc >= 0.99")  # the verdict with its gates is on show

            panel.locator("textarea").fill(REASON)
            expect(force).to_be_enabled(timeout=30_000)
            force.click()
            outcome = panel.locator(".ml-lifecycle-review-outcome")
            expect(outcome).to_contain_text("FORCED", timeout=600_000)  # judged again, Bento built and deployed
            panel.screenshot(path=str(ARTIFACTS / "review_panel.png"))
            print(f"screenshot: {ARTIFACTS / 'review_panel.png'}")
            assert "Traceback" not in panel.inner_text()

            champion, event, bento = _state(project)
            assert champion == "2" and bento.startswith("demo_model:v2-"), (champion, bento)
            assert (event.action, event.to_version, event.forced, event.reason, event.by) == \
                ("promote", "2", True, REASON, USER), event

            expect(rollback).to_be_enabled(timeout=30_000)
            rollback.click()
            expect(outcome).to_contain_text("rolled back", timeout=600_000)
            champion, event, bento = _state(project)
            assert champion == "1" and bento.startswith("demo_model:v1-"), (champion, bento)
            assert (event.action, event.from_version, event.to_version, event.by) == ("rollback", "2", "1", USER)
            assert event.reason == "rolled back from version 2"  # the reason box was emptied after the promotion
            page.screenshot(path=str(ARTIFACTS / "review_notebook.png"), full_page=True)

            # a committed step notebook opened as a data scientist would is not marked modified once its kernel
            # is up (JupyterLab rewrites metadata it disagrees with, which marks the notebook dirty)
            committed = (project / "pipelines" / "evaluate.ipynb").read_bytes()
            page.goto(f"{url}/lab/tree/pipelines/evaluate.ipynb", timeout=120_000)
            tab = page.locator(".lm-TabBar-tab", has_text="evaluate.ipynb")
            expect(tab).to_be_visible(timeout=120_000)
            expect(page.get_by_role("button", name=re.compile(r"(python3|ipykernel\)) \| Idle"))).to_be_visible(
                timeout=180_000)
            page.wait_for_timeout(3_000)  # metadata from the kernel's info reply lands just after it is idle
            assert "jp-mod-dirty" not in (tab.first.get_attribute("class") or ""), "opening marked it modified"
            assert (project / "pipelines" / "evaluate.ipynb").read_bytes() == committed
        finally:
            browser.close()
