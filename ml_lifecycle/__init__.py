"""ml_lifecycle: notebook-to-production lifecycle for tabular ML.

The public API is re-exported here and loaded lazily, so `import ml_lifecycle` is cheap and
`ml-lifecycle --help` does not pay for MLflow or scikit-learn. The modules themselves are exported
from the numbered notebooks in `nbs/`; this file is the only hand-written one.
"""

import os as _os

__version__ = "0.1.0"

# Nothing leaves the machine: MLflow's and BentoML's usage telemetry stay off unless the user turns them on.
# (MLflow's telemetry thread also sets and unsets an environment variable while other threads copy the
# environment to start kernels, which failed a run with a KeyError.)
_os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
_os.environ.setdefault("BENTOML_DO_NOT_TRACK", "True")

_EXPORTS = {
    "errors": ["LifecycleError", "SettingsError", "DataError", "DataNotFound", "EmptyData", "UnreadableData",
               "DataQualityFailed", "ExperimentError", "ContractError", "ContractInvalid", "ContractViolation", "TrainingError", "GateFailed",
               "RegistryError", "ModelNotFound", "PipelineError", "PipelineSpecError", "StepFailed"],
    "settings": ["Settings", "load_settings"],
    "files": ["atomic_write_text"],
    "data": ["read_table", "write_table", "split", "make_demo_data"],
    "contracts": ["Contract", "load_contract", "save_contract", "infer_contract", "validate", "fingerprint",
                  "diff_contracts"],
    "schemas": ["request_model", "model_signature"],
    "experiment": ["Experiment", "FeatureSpec", "load_experiment", "project_experiment"],
    "quality": ["split_data", "check_quality"],
    "features": ["build_features"],
    "training": ["train_model", "xy", "model_params", "training_curves"],
    "evals": ["predict", "compute_metrics", "check_gates", "contract_gate", "Verdict"],
    "registry": ["register_model", "alias_version", "champion_contract", "resolve_version", "history"],
    "promotion": ["evaluate_model", "promote", "rollback"],
    "pipeline": ["load_pipeline"],
    "runner": ["run_pipeline"],
    "scaffold": ["init_project"],
}
# `project` is both a module and the function users call (`ml.project()`). Importing the (light) module here,
# before anything else can, keeps the name bound to the function: Python sets a submodule as an attribute of
# its package only when it first loads it.
from ml_lifecycle.project import Project, project  # noqa: E402

_WHERE = {name: module for module, names in _EXPORTS.items() for name in names}
_MODULES = ("display", "errors", "predlog", "settings", "files", "data", "contracts", "schemas", "experiment", "quality", "features", "training", "mlp", "evals",
            "tracking", "registry", "promotion", "search", "reports", "monitoring", "pipeline", "kernels", "runner", "runs", "sweep", "scaffold", "serving", "packaging", "cli")

__all__ = [
    "Contract",
    "ContractError",
    "ContractInvalid",
    "ContractViolation",
    "DataError",
    "DataNotFound",
    "DataQualityFailed",
    "EmptyData",
    "Experiment",
    "ExperimentError",
    "FeatureSpec",
    "GateFailed",
    "LifecycleError",
    "ModelNotFound",
    "PipelineError",
    "PipelineSpecError",
    "Project",
    "RegistryError",
    "Settings",
    "SettingsError",
    "StepFailed",
    "TrainingError",
    "UnreadableData",
    "Verdict",
    "alias_version",
    "atomic_write_text",
    "build_features",
    "champion_contract",
    "check_gates",
    "check_quality",
    "compute_metrics",
    "contract_gate",
    "diff_contracts",
    "evaluate_model",
    "fingerprint",
    "history",
    "infer_contract",
    "init_project",
    "load_contract",
    "load_experiment",
    "load_pipeline",
    "load_settings",
    "make_demo_data",
    "model_params",
    "model_signature",
    "predict",
    "project",
    "project_experiment",
    "promote",
    "read_table",
    "register_model",
    "request_model",
    "resolve_version",
    "rollback",
    "run_pipeline",
    "save_contract",
    "split",
    "split_data",
    "train_model",
    "training_curves",
    "validate",
    "write_table",
    "xy",
]


def __getattr__(name: str):
    import importlib
    if name in _WHERE:
        return getattr(importlib.import_module(f"ml_lifecycle.{_WHERE[name]}"), name)
    if name in _MODULES:
        return importlib.import_module(f"ml_lifecycle.{name}")
    raise AttributeError(f"module 'ml_lifecycle' has no attribute {name!r}")


def __dir__():
    return sorted([*__all__, *_MODULES, "__version__"])
