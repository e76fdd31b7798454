#!/usr/bin/env python3
"""One entry point for the README's two commands (needs only Python 3.11 and pip).

    python3 dev.py demo   # install into .venv, run the pipeline on the demo data, serve the champion, send it
                          # traffic with a known drift and run `ml-lifecycle monitor` on it
    python3 dev.py test   # install into .venv (with test tools), then run every check and test

`test` runs, in order: nbdev-export must change nothing, notebooks must be clean (nbdev-clean changes
nothing), ruff on the package, nbdev-test on nbs/, and pytest on tests/ (slow end-to-end tests included, on two
workers). It installs Debian's chromium for the browser test and Debian's postgresql for the team-mode test
when they are missing (apt-get, as root).
"""
from __future__ import annotations

import glob
import hashlib
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / "bin"


START = time.monotonic()


def say(msg: str) -> None:
    print(f"\n==> [{time.monotonic() - START:6.0f} s] {msg}", flush=True)


def sh(*cmd: str | os.PathLike, check: bool = True, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([str(c) for c in cmd], cwd=kw.pop("cwd", ROOT), check=check, **kw)


def python311() -> str:
    """A Python 3.11 interpreter: this one, or python3.11 on PATH."""
    if sys.version_info[:2] == (3, 11):
        return sys.executable
    found = shutil.which("python3.11")
    if found:
        return found
    sys.exit(f"error: ml_lifecycle needs Python 3.11; this is {sys.version.split()[0]} and no python3.11 is on PATH")


def install(extras: str) -> None:
    """Create .venv and install the project with `extras`, unless pyproject.toml is unchanged since last time."""
    if not (BIN / "python").exists():
        say("creating .venv")
        sh(python311(), "-m", "venv", VENV)
    digest = hashlib.sha256((ROOT / "pyproject.toml").read_bytes() + extras.encode()).hexdigest()[:16]
    stamp = VENV / f".installed-{digest}"
    if stamp.exists():
        jupyter_hygiene()
        return
    say(f"installing ml_lifecycle[{extras}] into .venv (first time: a few minutes)")
    sh(BIN / "python", "-m", "pip", "install", "--disable-pip-version-check", "-q", "-e", f".[{extras}]")
    for old in VENV.glob(".installed-*"):
        old.unlink()
    stamp.touch()
    jupyter_hygiene()


KERNEL = VENV / "share" / "jupyter" / "kernels" / "python3" / "kernel.json"
SERVER_CONFIG = VENV / "etc" / "jupyter" / "jupyter_server_config.py"
NBDEV_SAVE_HOOK = """
def nbdev_clean_jupyter(**kwargs):
    try:
        from nbdev.clean import clean_jupyter
    except ModuleNotFoundError:
        return
    clean_jupyter(**kwargs)


c.ContentsManager.pre_save_hook = nbdev_clean_jupyter
"""


def jupyter_hygiene() -> None:
    """Make JupyterLab (started from .venv) and nbdev-clean agree, so notebooks stay clean when opened and saved.

    - nbdev-clean writes a notebook's kernelspec display_name as its name ("python3"); JupyterLab writes the
      kernelspec's display_name, "Python 3 (ipykernel)" for ipykernel's own, and so marked every committed
      notebook modified on opening. The venv's python3 kernelspec is named "python3" for display here.
    - nbdev's Jupyter hook (`jupyter_hooks = true` in pyproject.toml) cleans a notebook as JupyterLab saves it;
      it is installed in the venv's own Jupyter config (never the user's ~/.jupyter).
    """
    import json
    if KERNEL.is_file():
        spec = json.loads(KERNEL.read_text())
        if spec.get("display_name") != "python3":
            spec["display_name"] = "python3"
            KERNEL.write_text(json.dumps(spec, indent=1) + "\n")
    if not SERVER_CONFIG.is_file() or "nbdev_clean_jupyter" not in SERVER_CONFIG.read_text():
        SERVER_CONFIG.parent.mkdir(parents=True, exist_ok=True)
        with SERVER_CONFIG.open("a") as f:
            f.write(NBDEV_SAVE_HOOK)


def snapshot(*dirs: str) -> dict[str, str]:
    """Content hash of every file under `dirs`, to tell whether a tool changed anything."""
    return {str(p): hashlib.sha256(p.read_bytes()).hexdigest()
            for d in dirs for p in sorted((ROOT / d).rglob("*")) if p.is_file() and "__pycache__" not in p.parts}


def unchanged(before: dict[str, str], after: dict[str, str], what: str, fix: str) -> bool:
    """Report the files a tool changed; True if none."""
    diff = sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))
    for path in diff:
        print(f"  changed: {Path(path).relative_to(ROOT)}")
    if diff:
        print(f"error: {what} changed {len(diff)} file(s): {fix}")
    return not diff


TRAFFIC = r"""
import json, sys, time, urllib.request
from datetime import datetime, timezone
from ml_lifecycle.data import make_demo_data
port = sys.argv[1]

def post(route, body):
    req = urllib.request.Request(f"http://127.0.0.1:{port}{route}", data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"}, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code

for _ in range(180):  # the server's first start imports the model: up to 90 s
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2):
            break
    except OSError:
        time.sleep(0.5)
else:
    sys.exit(f"the server on port {port} did not become ready in 90 s")
print(datetime.now(timezone.utc).isoformat(), flush=True)  # where this demo's traffic starts
calm = make_demo_data(1000, seed=41).drop(columns="defaulted")
drifted = make_demo_data(400, seed=42, shift={"debt_ratio": 1.0},
                         new_categories={"employment": "gig_worker"}).drop(columns="defaulted")
codes = [post("/predict", {"records": json.loads(calm.iloc[i:i + 50].to_json(orient="records"))})
         for i in range(0, len(calm), 50)]
codes += [post("/predict_one", {"record": r}) for r in json.loads(drifted.to_json(orient="records"))]
print({c: codes.count(c) for c in sorted(set(codes))}, flush=True)
"""


def free_port() -> int:
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def demo() -> int:
    install("test")
    say("running the pipeline on the demo data: ml-lifecycle run")
    if sh(BIN / "ml-lifecycle", "run", check=False).returncode:
        return 1
    port = free_port()
    say(f"serving the champion (ml-lifecycle serve --port {port}) and sending it traffic: 1,000 records like the "
        "training data, then 400 with debt_ratio moved by one standard deviation and a new employment category")
    server = subprocess.Popen([str(BIN / "ml-lifecycle"), "serve", "--port", str(port)], cwd=ROOT,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        out = sh(BIN / "python", "-c", TRAFFIC, str(port), capture_output=True, text=True, timeout=300, check=False)
        if out.returncode:
            print(f"error: sending traffic failed: {(out.stderr.strip().splitlines() or ['?'])[-1]}")
            return 1
        since, codes = out.stdout.strip().splitlines()[:2]
        print(f"  HTTP statuses {codes} (422: records the contract refused, the new category among them)")
    finally:
        os.killpg(server.pid, 15)
        server.wait(timeout=30)
    say(f"monitoring that traffic: ml-lifecycle monitor --since {since}")
    code = sh(BIN / "ml-lifecycle", "monitor", "--since", since, check=False).returncode
    if code == 3:
        print("\nmonitoring caught the injected drift (exit code 3, as a cron job or CI would see it)")
        return 0
    print(f"\nerror: monitoring should have alerted on the injected drift (exit code {code})")
    return 1


CHROMIUM = Path("/usr/bin/chromium")


def ensure_chromium() -> bool:
    """Debian's chromium, which the browser test drives with Playwright (it never downloads a browser of its own):
    installed with apt-get when missing and this user may."""
    if CHROMIUM.exists():
        return True
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        print(f"error: {CHROMIUM} is missing: install it with `sudo apt-get install chromium` (tests/test_browser.py)")
        return False
    say("installing Debian's chromium for the browser test (apt-get)")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    ok = sh("apt-get", "update", "-qq", check=False, env=env).returncode == 0 and sh(
        "apt-get", "install", "-y", "-qq", "chromium", check=False, env=env, stdout=subprocess.DEVNULL).returncode == 0
    return ok and CHROMIUM.exists()


def ensure_postgresql() -> bool:
    """Debian's postgresql server binaries, which tests/test_team.py starts on 127.0.0.1 (initdb in a temporary
    folder) for team mode: installed with apt-get when missing and this user may."""
    if glob.glob("/usr/lib/postgresql/*/bin/initdb"):
        return True
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        print("error: PostgreSQL is missing: install it with `sudo apt-get install postgresql` (tests/test_team.py)")
        return False
    say("installing Debian's postgresql for the team-mode test (apt-get)")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    ok = sh("apt-get", "update", "-qq", check=False, env=env).returncode == 0 and sh(
        "apt-get", "install", "-y", "-qq", "postgresql", check=False, env=env, stdout=subprocess.DEVNULL).returncode == 0
    return ok and bool(glob.glob("/usr/lib/postgresql/*/bin/initdb"))


def test() -> int:
    install("test")
    if not ensure_chromium() or not ensure_postgresql():
        return 1
    say("nbdev-export must not change the library")
    before = snapshot("ml_lifecycle", "nbs")
    sh(BIN / "nbdev-export")
    if not unchanged(before, snapshot("ml_lifecycle", "nbs"), "nbdev-export",
                     "edit nbs/*.ipynb, run nbdev-export and commit both"):
        return 1
    say("notebooks must be committed clean (nbdev-clean)")
    before = snapshot("nbs", "pipelines", "examples")
    sh(BIN / "nbdev-clean")
    sh(BIN / "nbdev-clean", "--fname", "pipelines")
    sh(BIN / "nbdev-clean", "--fname", "examples")
    if not unchanged(before, snapshot("nbs", "pipelines", "examples"), "nbdev-clean",
                     "run nbdev-clean and commit the result"):
        return 1
    say("ruff on the package, notebooks, tests and benchmarks")
    if sh(BIN / "ruff", "check", "ml_lifecycle", "nbs", "pipelines", "examples", "tests", "benchmarks", "dev.py",
          check=False).returncode:
        return 1
    say("nbdev-test on nbs/")
    if sh(BIN / "nbdev-test", check=False).returncode:
        return 1
    say("pytest on tests/ (slow end-to-end tests included)")
    # two workers (the machines have 2 cores; steps are single-threaded kernels): the tests that share the demo
    # runs stay on one worker (tests/conftest.py groups them), the others spread over both
    code = sh(BIN / "pytest", "tests", "-n", "2", "--dist", "loadgroup", "--durations=25", check=False).returncode
    say(f"done: exit {code}")
    return code


def main(argv: list[str]) -> int:
    commands = {"demo": demo, "test": test, "install": lambda: install("test") or 0}
    if len(argv) != 1 or argv[0] not in commands:
        print(__doc__)
        return 2
    return commands[argv[0]]()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
