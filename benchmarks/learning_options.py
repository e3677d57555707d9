"""Learning curves of candidate default configs on the synthetic set (project issue 12).

For a named option (dotted params overrides over the repo's params.yaml) this makes a temporary project
folder, runs the pipeline stages `download` and `preprocess` there, then ONE `train` of the full length
with every checkpoint kept (train.keep_last=0; a watcher thread hard-links each checkpoint as it appears,
since the stage removes its resume folder at the end), and finally `evaluate_semantic` + `evaluate_instance`
on the chosen intermediate checkpoints and on the final model. One JSON line per evaluation point goes to
benchmarks/results/learning_options.jsonl.

Intermediate points are checkpoints of the full-length poly schedule (lr not yet decayed), so they
under-estimate what a shorter run of that length would reach; the last point is the real run.
`train_cpu_s` of an intermediate point is the run's train CPU time scaled by the wall time at which that
checkpoint appeared.

    python -m benchmarks learning_options baseline --eval-at 400 800
    python -m benchmarks learning_options small96 --set data.synthetic.image_size=96 input.crop_size=96 \
        evaluate.test_size=96 train.max_iters=2000 --eval-at 1000
    python -m benchmarks learning_options s64 --eval-at 500 1000 1500 --train-timeout 330 \
        --eval-set object_mask_threshold=0.5
    python -m benchmarks learning_options --list

--train-timeout stops training (SIGTERM: the engine checkpoints its last iteration) after that many seconds
and evaluates what was saved: equal wall budgets per option (noisy when other jobs share the CPUs; rows
carry train_cpu_s and the median img/s of the train log to tell). --eval-set re-evaluates the last point
with inference-only model fields patched (option name gets "+eval").
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
PYTHON = REPO / ".venv" / "bin" / "python"
RESULTS = REPO / "benchmarks" / "results" / "learning_options.jsonl"

# named options: overrides over params.yaml (tried in the issue-12 session; see the jsonl for results)
_S64 = {"data.synthetic.image_size": 64, "input.crop_size": 64, "evaluate.test_size": 64,
        "data.synthetic.min_object_size": 8, "data.synthetic.max_object_size": 20}
_S96 = {"data.synthetic.image_size": 96, "input.crop_size": 96, "evaluate.test_size": 96,
        "data.synthetic.min_object_size": 12, "data.synthetic.max_object_size": 30}
_BIG = {"data.synthetic.min_object_size": 28, "data.synthetic.max_object_size": 56,
        "data.synthetic.min_instances": 3, "data.synthetic.max_instances": 6}
_LR2 = {"train.lr": 0.002, "train.warmup_iters": 100, "train.warmup_factor": 0.01}
OPTIONS: dict[str, dict[str, Any]] = {
    "baseline": {},
    "base128": {"train.max_iters": 1200},
    "s64": {**_S64, "train.max_iters": 3000},
    "s96": {**_S96, "train.max_iters": 2000},
    "big128": {**_BIG, "train.max_iters": 1100},
    "big128_lr2e-3": {**_BIG, **_LR2, "train.max_iters": 1100},
    "base128_lr2e-3": {**_LR2, "train.max_iters": 1200},
    "res3_128": {"model.transformer_in_feature": "res3", "train.max_iters": 1200},
    "res4_128": {"model.transformer_in_feature": "res4", "train.max_iters": 1200},
    "pix128": {"model.transformer_in_feature": "pixel_embedding", "train.max_iters": 1200},
    "scale1_128": {"input.min_scale": 1.0, "input.max_scale": 1.0, "train.max_iters": 1200},
    "w32s1_128": {"model.backbone_width": 32, "input.min_scale": 1.0, "input.max_scale": 1.0,
                  "train.max_iters": 1800},
    "n1000s1_128": {"data.synthetic.num_train": 1000, "input.min_scale": 1.0, "input.max_scale": 1.0,
                    "train.max_iters": 1200},
    "s1_1800": {"input.min_scale": 1.0, "input.max_scale": 1.0, "train.max_iters": 1800},
    "n1000s1_1800": {"data.synthetic.num_train": 1000, "input.min_scale": 1.0, "input.max_scale": 1.0,
                     "train.max_iters": 1800},
    "n1000s1_b4": {"data.synthetic.num_train": 1000, "input.min_scale": 1.0, "input.max_scale": 1.0,
                   "train.batch_size": 4, "train.max_iters": 2400},
    "pix_n1000s1": {"data.synthetic.num_train": 1000, "input.min_scale": 1.0, "input.max_scale": 1.0,
                    "model.transformer_in_feature": "pixel_embedding", "train.max_iters": 1200},
    "default_bf16cpu": {"train.amp_cpu": True},
}

# not learning parameters: keep every checkpoint (for the curve), skip the MLflow model upload
_ALWAYS = {"train.keep_last": 0, "tracking.log_model": False}


def _set(tree: dict, dotted: str, value: Any) -> None:
    node = tree
    *parents, leaf = dotted.split(".")
    for key in parents:
        node = node.setdefault(key, {})
    node[leaf] = value


def _overridden(tree: dict, overrides: dict[str, Any]) -> dict:
    """A copy of a params tree with dotted overrides applied (the tree itself is left as it was)."""
    tree = copy.deepcopy(tree)
    for key, value in overrides.items():
        _set(tree, key, copy.deepcopy(value))
    return tree


def _get(tree: dict, dotted: str) -> Any:
    node = tree
    for key in dotted.split("."):
        node = node[key]
    return node


def _env(workdir: Path, threads: int) -> dict[str, str]:
    env = dict(os.environ)
    env.update({
        "PYTHONPATH": str(REPO),
        "MLFLOW_TRACKING_URI": f"sqlite:///{workdir}/mlflow.db",
        "DO_NOT_TRACK": "true",
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "DVC_NO_ANALYTICS": "1",
        "OMP_NUM_THREADS": str(threads),
        "MKL_NUM_THREADS": str(threads),
    })
    return env


def _stage(name: str, workdir: Path, env: dict[str, str], log, timeout: float | None = None
           ) -> tuple[float, float, bool]:
    """Run one stage; returns (wall s, CPU s of the stage process and its children, stopped early).

    Past `timeout` seconds the stage gets SIGTERM (train then writes a checkpoint of its last finished
    iteration and exits non-zero): that is not an error here."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.Popen([str(PYTHON), "-m", "pipeline", name, "--params", "params.yaml"], cwd=workdir,
                            env=env, stdout=log, stderr=subprocess.STDOUT)
    _CHILDREN.append(proc)
    stopped = False
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        stopped = True
        proc.terminate()
        try:
            proc.wait(timeout=120)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    finally:
        _CHILDREN.remove(proc)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode and not stopped:
        raise RuntimeError(f"stage {name} failed (rc {proc.returncode}); see {log.name}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, stopped


_CHILDREN: list[subprocess.Popen] = []


def _on_sigterm(signum, frame) -> None:  # stop our stage process too, then unwind (finally blocks run)
    for proc in list(_CHILDREN):
        proc.terminate()
    raise SystemExit(128 + signum)


class _Snapshots(threading.Thread):
    """Hard-links every checkpoint that appears under models/checkpoints/*/ into `dest`, noting when."""

    def __init__(self, root: Path, dest: Path) -> None:
        super().__init__(daemon=True)
        self.root, self.dest = root, dest
        self.seen: dict[int, float] = {}  # iteration -> seconds since start
        self.stop = threading.Event()
        self.start_time = time.perf_counter()

    def run(self) -> None:
        while not self.stop.is_set():
            self.poll()
            self.stop.wait(1.0)
        self.poll()

    def poll(self) -> None:
        for path in self.root.glob("*/model_*.pth"):
            try:
                it = int(path.stem.split("_")[-1])
            except ValueError:
                continue
            if it in self.seen:
                continue
            target = self.dest / f"ckpt_{it:07d}.pth"
            try:
                os.link(path, target)
            except FileNotFoundError:
                continue
            except OSError:
                shutil.copy2(path, target)
            self.seen[it] = time.perf_counter() - self.start_time


def _metrics(workdir: Path) -> dict[str, float]:
    sem = json.loads((workdir / "metrics" / "semantic.json").read_text())
    ins = json.loads((workdir / "metrics" / "instance.json").read_text())

    def pick(d: dict, *keys: str) -> float | None:
        for k in keys:
            if k in d:
                return d[k]
            if "/" in k:
                a, b = k.split("/", 1)
                if isinstance(d.get(a), dict) and b in d[a]:
                    return d[a][b]
        return None

    return {
        "mIoU": pick(sem, "sem_seg/mIoU"),
        "PQ": pick(ins, "panoptic_seg/PQ"),
        "PQ_st": pick(ins, "panoptic_seg/PQ_st"),
        "PQ_th": pick(ins, "panoptic_seg/PQ_th"),
        "AP": pick(ins, "segm/AP"),
    }


def _record(workdir: Path) -> dict[str, Any]:
    """What models/model.pt holds besides the weights (config, categories, params)."""
    from maskformer.data import CanonicalDataset
    from pipeline.params import load_params

    params = load_params(workdir / "params.yaml")
    data = CanonicalDataset(workdir / "data" / "processed" / params.data.dataset, "val", task="panoptic")
    cfg = params.model.replace(num_classes=data.num_classes)
    return {"config": cfg.to_dict(), "categories": data.categories, "params": params.model_dump(mode="json")}


def _img_per_s(workdir: Path) -> float | None:
    """Median training throughput from the train log (metrics/train_log.csv or the resume folder's)."""
    import csv
    import statistics

    resume_logs = (workdir / "models" / "checkpoints").glob("*/train_log.csv")
    logs = [workdir / "metrics" / "train_log.csv", *resume_logs]
    for path in logs:
        if path.exists():
            with path.open(newline="") as f:
                vals = [float(r["img_per_s"]) for r in csv.DictReader(f) if r.get("img_per_s")]
            if vals:
                return round(statistics.median(vals), 2)
    return None


def run_option(name: str, overrides: dict[str, Any], eval_at: list[int], threads: int = 2,
               keep: bool = False, extra_eval: dict[str, Any] | None = None,
               train_timeout: float | None = None) -> list[dict[str, Any]]:
    """Train once, evaluate at `eval_at` and the end; `extra_eval` (model config fields used only at
    inference, e.g. object_mask_threshold) re-evaluates the final model with those fields patched."""
    import torch

    from benchmarks.common import cpu_model

    params = _overridden(yaml.safe_load((REPO / "params.yaml").read_text()), {**overrides, **_ALWAYS})
    max_iters = int(_get(params, "train.max_iters"))
    period = sorted({i for i in eval_at if 0 < i < max_iters})
    if period:  # every evaluation point must be a checkpoint: period = gcd of the points
        import math
        g = math.gcd(*period, max_iters)
        _set(params, "train.checkpoint_period", g)
    workdir = Path(tempfile.mkdtemp(prefix=f"lo_{name}_", dir="/tmp"))
    (workdir / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    snapdir = workdir / "snapshots"
    snapdir.mkdir()
    env = _env(workdir, threads)
    rows = []
    t_all = time.perf_counter()
    with (workdir / "stages.log").open("w") as log:
        try:
            prep_wall = 0.0
            for stage in ("download", "preprocess"):
                prep_wall += _stage(stage, workdir, env, log)[0]
            watcher = _Snapshots(workdir / "models" / "checkpoints", snapdir)
            watcher.start()
            train_wall, train_cpu, stopped = _stage("train", workdir, env, log, train_timeout)
            watcher.stop.set()
            watcher.join()
            final = workdir / "models" / "model.pt"
            if stopped:  # no model.pt: build its record as the train stage would
                record = _record(workdir)
                done = max(watcher.seen) if watcher.seen else 0
                points = [(i, snapdir / f"ckpt_{i:07d}.pth", watcher.seen[i]) for i in sorted(watcher.seen)
                          if i in period or i == done]
                final.parent.mkdir(parents=True, exist_ok=True)
            else:
                record = torch.load(final, map_location="cpu", weights_only=True)
                shutil.copy2(final, workdir / "final_model.pt")
                points = [(i, snapdir / f"ckpt_{i:07d}.pth", watcher.seen.get(i)) for i in period]
                points.append((max_iters, None, train_wall))
            speed = _img_per_s(workdir)
            for it, ckpt, at in points:
                if ckpt is not None:
                    if not ckpt.exists():
                        print(f"{name}: no checkpoint at {it}; skipped", file=sys.stderr)
                        continue
                    state = torch.load(ckpt, map_location="cpu", weights_only=True)["model"]
                    torch.save({**record, "model": state, "iteration": it}, final)
                else:
                    shutil.copy2(workdir / "final_model.pt", final)
                eval_wall = 0.0
                for stage in ("evaluate_semantic", "evaluate_instance"):
                    eval_wall += _stage(stage, workdir, env, log)[0]
                frac = min(1.0, (at or train_wall) / train_wall)
                row = {"option": name, "overrides": overrides, "iteration": it,
                       "max_iters": max_iters, "final": ckpt is None, "stopped_early": stopped,
                       "median_img_per_s": speed,
                       "train_cpu_s": round(train_cpu * frac, 1), "train_wall_s": round(train_wall * frac, 1),
                       "wall_s": round(prep_wall + train_wall * frac + eval_wall, 1),
                       "eval_wall_s": round(eval_wall, 1), **_metrics(workdir), "cpu": cpu_model(),
                       "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
                rows.append(row)
                RESULTS.parent.mkdir(parents=True, exist_ok=True)
                with RESULTS.open("a") as f:
                    f.write(json.dumps(row) + "\n")
                print(json.dumps(row), flush=True)
            if extra_eval and rows:  # inference-only model fields: patch the last record, evaluate again
                last = torch.load(final, map_location="cpu", weights_only=True)
                torch.save({**last, "config": {**last["config"], **extra_eval}}, final)
                eval_wall = 0.0
                for stage in ("evaluate_semantic", "evaluate_instance"):
                    eval_wall += _stage(stage, workdir, env, log)[0]
                row = {**rows[-1], "option": f"{name}+eval", "eval_overrides": extra_eval,
                       "eval_wall_s": round(eval_wall, 1), **_metrics(workdir),
                       "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
                rows.append(row)
                with RESULTS.open("a") as f:
                    f.write(json.dumps(row) + "\n")
                print(json.dumps(row), flush=True)
        finally:
            if not keep:
                shutil.rmtree(workdir, ignore_errors=True)
    print(f"{name}: done in {time.perf_counter() - t_all:.0f}s", flush=True)
    return rows


def _parse_value(text: str) -> Any:
    return yaml.safe_load(text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("option", nargs="?", help="a named option (see --list) or a new name with --set")
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                        help="dotted overrides (YAML values)")
    parser.add_argument("--eval-at", nargs="*", type=int, default=[],
                        help="intermediate iterations to evaluate")
    parser.add_argument("--eval-set", nargs="*", default=[], metavar="FIELD=VALUE",
                        help="inference-only model fields to re-evaluate the final model with")
    parser.add_argument("--train-timeout", type=float, default=None,
                        help="stop training (SIGTERM) after this many seconds and evaluate what was saved")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--keep", action="store_true", help="keep the temp project folder")
    parser.add_argument("--list", action="store_true")
    args = parser.parse_args(argv)
    import signal

    signal.signal(signal.SIGTERM, _on_sigterm)
    if args.list or not args.option:
        for k, v in OPTIONS.items():
            print(k, json.dumps(v))
        return 0
    overrides = dict(OPTIONS.get(args.option, {}))
    for item in args.set:
        key, _, value = item.partition("=")
        overrides[key] = _parse_value(value)
    extra = {k: _parse_value(v) for k, _, v in (i.partition("=") for i in args.eval_set)}
    run_option(args.option, overrides, args.eval_at, args.threads, args.keep, extra or None,
               args.train_timeout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
