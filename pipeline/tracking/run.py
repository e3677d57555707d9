"""MLflow run lifecycle: one run per pipeline execution, shared by the stage processes through a state file.

An execution is a flow run (PIPELINE_RUN_NAME), else the `dvc repro` / `dvc exp run` process the stage runs
under, else the stage process alone. Its first stage opens the run and writes the id to `.pipeline_run.json`
in the workspace; every stage ends the run as it leaves (FINISHED, FAILED on an error, KILLED on SIGTERM or
Ctrl-C) and the next stage of the same execution reopens it, so the run is closed whichever stages ran, and
a stage that Prefect retries stays in its run.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import mlflow
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from pipeline.locks import exclusive
from pipeline.outputs import params_hash, project_root, run_name
from pipeline.params import Params
from pipeline.tracking.identity import data_hash, dvc_process, git_commit, param_dict
from pipeline.tracking.log import log_dataset

STATE_FILE = Path(".pipeline_run.json")
LOCK_FILE = Path(".pipeline_run.json.lock")
# stages whose process MLflow samples (CPU, memory, GPU when pynvml is there) as system/* metrics
MONITORED_STAGES = ("train",)
# env vars set by the Prefect flow and `dvc exp run`: they name the execution and become run tags
ENV_TAGS = {"pipeline_run_name": "PIPELINE_RUN_NAME", "prefect_flow_run_id": "PREFECT_FLOW_RUN_ID",
            "dvc_experiment": "DVC_EXP_NAME"}
PARAM_BATCH = 100  # MLflow's limit of params per log_batch call


class StageInterrupted(BaseException):
    """Raised by the SIGTERM handler; a BaseException so that `except Exception` cannot swallow it."""

    def __init__(self, signum: int) -> None:
        super().__init__(f"stopped by {signal.Signals(signum).name}")
        self.signum = signum


def tracking_uri(params: Params) -> str:
    """MLFLOW_TRACKING_URI, else params tracking.uri, else sqlite at an absolute path in the project."""
    uri = os.environ.get("MLFLOW_TRACKING_URI") or params.tracking.uri or "sqlite:///mlflow.db"
    if uri.startswith("sqlite:///") and not uri.startswith("sqlite:////"):  # relative: pin to the project
        uri = f"sqlite:///{project_root() / uri.removeprefix('sqlite:///')}"
    return uri


def setup(params: Params) -> str:
    """Point MLflow at the store and return the experiment's id (created on first use)."""
    uri = tracking_uri(params)
    mlflow.set_tracking_uri(uri)
    client, name = MlflowClient(), params.tracking.experiment
    experiment = client.get_experiment_by_name(name)
    if experiment is not None:
        if experiment.lifecycle_stage == "deleted":
            client.restore_experiment(experiment.experiment_id)
        return experiment.experiment_id
    # MLflow's default artifact root (./mlruns) follows the cwd: keep a sqlite store's artifacts beside it
    location = (Path(uri.removeprefix("sqlite:///")).parent / "mlartifacts").as_uri() \
        if uri.startswith("sqlite:///") else None
    try:
        return client.create_experiment(name, artifact_location=location)
    except MlflowException:  # a parallel stage created it first
        return client.get_experiment_by_name(name).experiment_id


def _execution() -> dict[str, str | None]:
    """What tells this execution from others: the flow run's names, else also the DVC process running the
    stage, else this process."""
    names: dict[str, str | None] = {var: os.environ.get(var) for var in ENV_TAGS.values()}
    if not names["PIPELINE_RUN_NAME"]:
        names["process"] = dvc_process() or f"pid:{os.getpid()}"
    return names


def _tags(params: Params) -> dict[str, str]:
    """Run tags: git commit, Prefect/DVC names of the execution, data set and its hash."""
    tags = {name: os.environ[var] for name, var in ENV_TAGS.items() if os.environ.get(var)}
    commit = git_commit()
    if commit:
        tags |= {"git_commit": commit, "mlflow.source.git.commit": commit}
    digest = data_hash(params)
    return tags | {"dataset": params.data.dataset, **({"data_hash": digest} if digest else {})}


def _read_state() -> dict[str, Any] | None:
    try:
        return json.loads(STATE_FILE.read_text())
    except (OSError, ValueError):
        return None


def _is_current(state: dict[str, Any], params: Params, experiment_id: str) -> bool:
    """Whether the state file belongs to this execution (else another one, or a SIGKILLed one, left it)."""
    keys = ("tracking_uri", "experiment_id", "params_hash", "execution")
    now = (mlflow.get_tracking_uri(), experiment_id, params_hash(params), _execution())
    if tuple(map(state.get, keys)) != now:
        return False
    try:
        return MlflowClient().get_run(state["run_id"]).info.lifecycle_stage == "active"
    except MlflowException:
        return False


def _open(stage: str, params: Params, experiment_id: str) -> mlflow.ActiveRun:
    """Reopen this execution's run, or start it (ending a stale RUNNING one KILLED); record the stage."""
    with exclusive(LOCK_FILE):
        state = _read_state()
        monitored = stage in MONITORED_STAGES
        if state and _is_current(state, params, experiment_id):
            run = mlflow.start_run(run_id=state["run_id"], log_system_metrics=monitored)
        else:
            if state:
                with contextlib.suppress(MlflowException):
                    if MlflowClient().get_run(state["run_id"]).info.status == "RUNNING":
                        MlflowClient().set_terminated(state["run_id"], "KILLED")
            run = _start(params, experiment_id, monitored)
            state = {"run_id": run.info.run_id, "tracking_uri": mlflow.get_tracking_uri(),
                     "experiment_id": experiment_id, "params_hash": params_hash(params),
                     "execution": _execution(), "stages": []}
        state["stages"].append(stage)  # a retried stage appears twice
        STATE_FILE.write_text(json.dumps(state, indent=2))
        mlflow.set_tag("pipeline_stages", ",".join(state["stages"]))
        return run


def _start(params: Params, experiment_id: str, monitored: bool) -> mlflow.ActiveRun:
    """A new run named after the execution (the flow run, else the DVC experiment `dvc exp run` names in
    DVC_EXP_NAME, else the params), with all params and the resolved params file."""
    name = os.environ.get("PIPELINE_RUN_NAME") or os.environ.get("DVC_EXP_NAME") or run_name(params)
    run = mlflow.start_run(experiment_id=experiment_id, run_name=name, log_system_metrics=monitored)
    items = list(param_dict(params).items())
    for i in range(0, len(items), PARAM_BATCH):
        mlflow.log_params(dict(items[i:i + PARAM_BATCH]))
    mlflow.log_dict(params.model_dump(mode="json"), "params.yaml")
    return run


def _on_sigterm(signum: int, frame: Any) -> None:
    raise StageInterrupted(signum)


@contextlib.contextmanager
def stage_run(stage: str, params: Params, interrupted: tuple[type[BaseException], ...] = ()
              ) -> Iterator[mlflow.ActiveRun | None]:
    """Run one stage inside this execution's MLflow run and end it: FINISHED, FAILED on error, KILLED on
    SIGTERM/Ctrl-C or `interrupted` exceptions (exit status 128 + signal).
    Yields None (no tracking) on the other ranks of a torchrun launch."""
    if os.environ.get("RANK", "0") != "0":
        yield None
        return
    run = _open(stage, params, setup(params))
    main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _on_sigterm) if main_thread else None
    try:
        mlflow.set_tags(_tags(params))
        log_dataset(params)
        yield run
    except (StageInterrupted, KeyboardInterrupt, *interrupted) as exc:
        mlflow.end_run("KILLED")
        print(f"{stage}: {exc or type(exc).__name__}; MLflow run {run.info.run_id} ended KILLED",
              file=sys.stderr)
        signum = exc.signum if isinstance(exc, StageInterrupted) else \
            signal.SIGINT if isinstance(exc, KeyboardInterrupt) else signal.SIGTERM
        raise SystemExit(128 + signum) from exc
    except BaseException:
        mlflow.end_run("FAILED")
        raise
    else:
        mlflow.end_run("FINISHED")
    finally:
        if main_thread:
            signal.signal(signal.SIGTERM, previous)
