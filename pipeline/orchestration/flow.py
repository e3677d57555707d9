"""The Prefect flow, built from dvc.yaml: one task per DVC stage in DVC's order, each running
`dvc repro --single-item <stage>`, so DVC's lock, skipping and dvc.lock hold for Prefect runs too.

Every flow run runs in its own workspace (pipeline.orchestration.workspace: HEAD plus uncommitted changes,
the overrides written into its params.yaml as `dvc exp run -S` does) and is saved as the DVC experiment
named after the flow run; `apply` then brings it into the working copy (`dvc exp apply`). Run from the
repository root (where dvc.yaml is). No postponed annotations here: a served flow run resolves the flow's
parameter types from them at run time.
"""

import json
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import (
    create_link_artifact,
    create_markdown_artifact,
    create_progress_artifact,
    create_table_artifact,
    update_progress_artifact,
)
from prefect.cache_policies import NO_CACHE
from prefect.runtime import flow_run
from prefect.tasks import exponential_backoff
from pydantic import ValidationError

from pipeline import outputs as out
from pipeline.orchestration.deployment import RunSettings
from pipeline.orchestration.dvc_cli import dvc_command, stage_env, stage_order
from pipeline.orchestration.overrides import validate_overrides, write_overrides
from pipeline.orchestration.process import stream
from pipeline.orchestration.workspace import has_changes, head_commit, workspace
from pipeline.params import ParamsError, load_params

FLOW_NAME = "maskformer-pipeline"
PARAMS = out.PARAMS
# stage -> (retries, delay in seconds between tries); a download may hit a flaky server: back off
RETRIES: dict[str, tuple[int, Any]] = {"download": (3, exponential_backoff(backoff_factor=10))}
DEFAULT_RETRIES = (1, 10)
# what `dvc repro` prints for a stage it does not run: up to date, or restored from the cache
SKIPPED = ("didn't change, skipping", "is cached - skipping run")
NO_CHANGES = RunSettings()  # a form, not None, so the Prefect UI shows its fields at once


def run_name(overrides: dict[str, Any], unique: str = "") -> str:
    """The run name (pipeline.outputs.run_name) of params.yaml with the overrides applied."""
    return out.run_name(validate_overrides(PARAMS, overrides), unique)


def _flow_run_name() -> str:
    """The flow run's name from its parameters (a short run id keeps experiment names unique)."""
    try:
        settings = RunSettings.model_validate(flow_run.parameters.get("settings") or {})
        return run_name(settings.overrides(), str(flow_run.id)[:4])
    except (ParamsError, ValidationError):  # bad params fail in the flow, with the key named
        return f"invalid-params-{str(flow_run.id)[:4]}"


def _train_progress(root: Path) -> float | None:
    """Fraction of training done, from the resume log the train stage appends to while it runs."""
    params = load_params(root / PARAMS)
    log = out.resume_log(params)
    try:
        last = log.read_text().strip().splitlines()[-1]
        return min(1.0, int(last.split(",")[0]) / params.train.max_iters)
    except (OSError, IndexError, ValueError):
        return None


@task(cache_policy=NO_CACHE)
def run_stage(stage: str, root: Path, env: dict[str, str], progress_id: Any, position: tuple[int, int]
              ) -> str:
    """Run one DVC stage (skipped by DVC when nothing changed), streaming its output into the task log."""
    logger = get_run_logger()
    done, total = position
    reported: list[float] = []

    def tick() -> None:  # training prints nothing while it runs: report its progress instead
        fraction = _train_progress(root) if stage == "train" else None
        if fraction is not None and fraction not in reported:
            reported.append(fraction)
            logger.info("%s: %.0f%% of the iterations done", stage, 100 * fraction)
            update_progress_artifact(progress_id, 100.0 * (done + fraction) / total,
                                     description=f"{stage}: {100 * fraction:.0f}%")

    command = dvc_command("repro", "--single-item", stage)
    lines = stream(command, logger.info, cwd=root, env=stage_env(env), on_tick=tick)
    update_progress_artifact(progress_id, 100.0 * (done + 1) / total, description=f"{stage} done")
    return "skipped" if any(s in line for line in lines for s in SKIPPED) else "ran"


@task(cache_policy=NO_CACHE, retries=1, retry_delay_seconds=5)
def record_experiment(name: str, root: Path, untracked: list[str], env: dict[str, str]) -> str:
    """Save the run's workspace (params, dvc.lock, cached outs, new files) as the DVC experiment `name`."""
    include = [arg for path in untracked for arg in ("--include-untracked", path)]
    stream(dvc_command("exp", "save", "--name", name, *include), get_run_logger().info, cwd=root,
           env=stage_env(env))
    return name


@task(cache_policy=NO_CACHE)
def apply_experiment(name: str) -> str:
    """Bring the experiment's params, dvc.lock and outputs into the working copy (`dvc exp apply`)."""
    stream(dvc_command("exp", "apply", name), get_run_logger().info, env=stage_env())
    return name


def headline_metrics(root: Path) -> list[dict[str, Any]]:
    """Rows `{metric, value}` of metrics/*.json ("sem_seg/mIoU", "panoptic_seg/PQ", ...) in `root`."""
    rows = []
    for relative in out.METRICS_FILES:
        if (root / relative).exists():
            rows += [{"metric": k, "value": round(v, 3) if isinstance(v, float) else v}
                     for k, v in out.metric_values(json.loads((root / relative).read_text())).items()]
    return rows


def mlflow_run_link(name: str) -> tuple[str | None, str] | None:
    """(URL on the tracking server or None for a local store, where) of the MLflow run the stages logged
    for this flow run, or None when there is none."""
    import mlflow  # late: slow import, only at the end of a run

    from pipeline import tracking

    tracking.setup(load_params(PARAMS))
    runs = mlflow.search_runs(search_all_experiments=True, output_format="list", max_results=1,
                              filter_string=f"tags.pipeline_run_name = '{name}'")
    if not runs:
        return None
    info = runs[0].info
    where = tracking.run_location(info.run_id)
    return (where if where.startswith("http") else None), where


def publish_artifacts(name: str, root: Path, ran: bool, report: Path | None) -> str | None:
    """Prefect artifacts of the run from its workspace `root`: headline metrics table, the report, links to
    the report (`report`, where the run left it for the user) and to MLflow; returns where the MLflow run
    is. When no stage ran, nothing new exists: it says so, publishes nothing older under this run's name
    and returns None."""
    if not ran:
        text = ("Every stage was up to date or restored from DVC's cache: nothing ran, so this run has no "
                "new metrics, report or MLflow run (its DVC experiment holds the cached results)")
        create_markdown_artifact(text, key="up-to-date", description=f"{name}: nothing ran")
        return None
    rows = headline_metrics(root)
    if rows:
        create_table_artifact(rows, key="headline-metrics", description=f"Headline metrics of {name}")
    if (root / out.REPORT_MD).exists():
        create_markdown_artifact((root / out.REPORT_MD).read_text(), key="report",
                                 description=f"Report of {name}")
    if report is not None:
        create_link_artifact(report.resolve().as_uri(), link_text="report.html", key="report-html",
                             description=f"HTML report of {name}")
    link = mlflow_run_link(name)
    if link and link[0]:  # a tracking server: its page of the run
        create_link_artifact(link[0], link_text=f"MLflow run {name}", key="mlflow-run", description=link[1])
    elif link:  # a local store has no URL until someone starts `mlflow ui` on it: say how
        create_markdown_artifact(f"MLflow {link[1]}", key="mlflow-run", description=f"MLflow run of {name}")
    return link[1] if link else None


@flow(name=FLOW_NAME, flow_run_name=_flow_run_name, log_prints=True,
      description="MaskFormer pipeline: the stages of dvc.yaml, run through DVC in the run's own workspace, "
                  "saved as a DVC experiment named after the flow run.")
def pipeline_flow(settings: RunSettings = NO_CHANGES, apply: bool = False, revision: str | None = None
                  ) -> dict[str, Any]:
    """Validate the overrides, make the run's workspace, run every DVC stage there as a task, save the
    experiment, publish.

    Args:
        settings: what to change in params.yaml for this run; an empty field keeps params.yaml's value
        apply: when the run ends, bring its experiment into the working copy (dvc exp apply), as make run does
        revision: a git commit to run as committed (to reproduce an earlier run); empty: HEAD plus the
            working copy's uncommitted changes
    """
    overrides = settings.overrides()
    validate_overrides(PARAMS, overrides)  # before any work: a bad key fails here, named
    logger = get_run_logger()
    name = flow_run.name or run_name(overrides)
    env = {"PIPELINE_RUN_NAME": name, "PREFECT_FLOW_RUN_ID": str(flow_run.id or ""), "DVC_EXP_NAME": name}
    progress_id = create_progress_artifact(0.0, key="pipeline-progress", description="stages done")
    results: dict[str, str] = {}
    with workspace(name, revision=revision) as (root, untracked):
        validate_overrides(root / PARAMS, overrides)  # the commit's params.yaml when `revision` is given
        changes = has_changes(root)  # the working copy's, before the overrides are written
        write_overrides(root / PARAMS, overrides)
        stages, commit = stage_order(root), head_commit(root)
        logger.info("workspace %s at %s%s%s", root, commit, " + uncommitted changes" if changes else "",
                    "".join(f", set {k}={v!r}" for k, v in overrides.items()))
        for i, stage in enumerate(stages):
            retries, delay = RETRIES.get(stage, DEFAULT_RETRIES)
            runner = run_stage.with_options(name=stage, task_run_name=f"{stage} [{name}]", retries=retries,
                                            retry_delay_seconds=delay)
            results[stage] = runner(stage, root, env, progress_id, (i, len(stages)))
        saver = record_experiment.with_options(task_run_name=f"record_experiment [{name}]")
        experiment = saver(name, root, untracked, env)
        if apply:
            apply_experiment.with_options(task_run_name=f"apply_experiment [{name}]")(name)
        report = out.REPORT_HTML if apply and out.REPORT_HTML.exists() else None
        logger.info("stages: %s", ", ".join(f"{s} {r}" for s, r in results.items()))
        mlflow_run = publish_artifacts(name, root, any(r == "ran" for r in results.values()), report)
    return {"run_name": name, "commit": commit, "changes": changes, "stages": results,
            "experiment": experiment,
            "mlflow": mlflow_run, "report": str(report.resolve()) if report else None}
