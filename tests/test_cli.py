"""The command line as a user types it: help everywhere, and one-line errors for bad input."""
import pandas as pd
import pytest
from conftest import cli


@pytest.mark.parametrize("args", [["--help"], ["run", "--help"], ["sweep", "--help"], ["init", "--help"],
                                  ["demo-data", "--help"]])
def test_help(args):
    r = cli(*args)
    assert r.returncode == 0 and r.stdout.startswith("usage: ml-lifecycle")


def test_no_command_is_a_usage_error():
    r = cli()
    assert r.returncode == 2 and "usage: ml-lifecycle" in r.stderr


def one_line_error(r, text):
    assert r.returncode == 1, (r.stdout, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and text in lines[0], r.stderr
    assert "Traceback" not in r.stdout + r.stderr


def test_missing_data_file(demo_project):
    (demo_project / "data" / "demo.csv").unlink()
    one_line_error(cli("run", cwd=demo_project), "data file not found: ")


def test_empty_data_file(demo_project):
    (demo_project / "data" / "demo.csv").write_text("")
    one_line_error(cli("run", cwd=demo_project), "data file is empty: ")


def test_header_only_data_file(demo_project):
    path = demo_project / "data" / "demo.csv"
    path.write_text(path.read_text().splitlines()[0] + "\n")
    one_line_error(cli("run", cwd=demo_project), "data file has a header but no rows: ")


def test_unknown_target_column(demo_project):
    path = demo_project / "data" / "demo.csv"
    pd.read_csv(path).rename(columns={"defaulted": "default_flag"}).to_csv(path, index=False)
    one_line_error(cli("run", cwd=demo_project), "column 'defaulted' not found in")


def test_bad_settings_override(demo_project):
    r = cli("run", cwd=demo_project, env={"ML_LIFECYCLE_SERVING__PORT": "http"})
    one_line_error(r, "settings [serving] port = 'http'")


def test_unknown_settings_key(demo_project):
    ini = demo_project / "settings.ini"
    ini.write_text(ini.read_text().replace("contract = ", "contracts = "))
    one_line_error(cli("run", cwd=demo_project), "settings [data] contracts = 'contracts/credit_default.yaml': unknown key")


def test_bad_experiment_key_names_file_and_key(demo_project):
    exp = demo_project / "experiment.yaml"
    exp.write_text(exp.read_text().replace("strategy: auto", "strategy: shuffled"))
    one_line_error(cli("run", cwd=demo_project), f"{exp}: split.strategy = 'shuffled': use one of")
    assert not (demo_project / "runs").exists()  # checked before anything ran


def test_missing_project(tmp_path):
    one_line_error(cli("run", "--project", tmp_path / "nowhere"), "settings file not found")


def test_init_refuses_to_overwrite(demo_project, tmp_path):
    one_line_error(cli("init", demo_project), "already holds a settings.ini")
    mine = tmp_path / "mine"  # a folder holding the user's own files: init writes nothing there
    (mine / "data").mkdir(parents=True)
    (mine / "data" / "demo.csv").write_text("my,own\n1,2\n")
    one_line_error(cli("init", mine), "is not empty (data); init writes settings.ini")
    assert (mine / "data" / "demo.csv").read_text() == "my,own\n1,2\n" and not (mine / "settings.ini").exists()
    r = cli("init", mine, "--force")
    assert r.returncode == 0 and (mine / "settings.ini").exists(), r.stdout + r.stderr


def test_init_with_unknown_target(tmp_path):
    pd.DataFrame({"x": [1, 2, 3], "y": [0, 1, 0]}).to_csv(tmp_path / "t.csv", index=False)
    one_line_error(cli("init", tmp_path / "p", "--data", tmp_path / "t.csv", "--target", "label"),
                   "column 'label' not found in")


def test_demo_data_command(tmp_path):
    r = cli("demo-data", tmp_path / "d.parquet", "--rows", "100")
    assert r.returncode == 0 and len(pd.read_parquet(tmp_path / "d.parquet")) == 100
