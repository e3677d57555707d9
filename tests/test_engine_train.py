"""Train loop: metrics callback, bitwise-exact resume (in-process, after SIGKILL/SIGTERM), 2-rank DDP."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent / "engine_scripts"))
from toy import ToyDataset, ToyModel, collate  # noqa: E402

from maskformer.engine import (  # noqa: E402
    TrainConfig,
    TrainingInterruptedError,
    find_last,
    list_checkpoints,
    train,
)

SCRIPT = Path(__file__).parent / "engine_scripts" / "run_toy.py"
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}
# what tests/engine_scripts/run_toy.py trains by default
SCRIPT_CFG = {"device": "cpu", "max_iters": 8, "batch_size": 2, "num_workers": 0, "checkpoint_period": 2,
              "log_period": 1}


@pytest.fixture(autouse=True)
def one_thread():
    """Same thread count as the subprocesses, so float reductions match bit for bit."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _run(tmp: Path, dropout: float = 0.1, **overrides) -> torch.nn.Module:
    torch.manual_seed(0)
    cfg = TrainConfig(**{**SCRIPT_CFG, "checkpoint_dir": str(tmp), **overrides})
    return train(ToyModel(dropout=dropout), ToyDataset(), cfg, collate)


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> dict[str, torch.Tensor]:
    """Weights after an uninterrupted 8-iteration run of the script's configuration."""
    torch.set_num_threads(1)
    return _run(tmp_path_factory.mktemp("reference")).state_dict()


def _assert_equal(state: dict[str, torch.Tensor], expected: dict[str, torch.Tensor]) -> None:
    assert state.keys() == expected.keys()
    for k, v in expected.items():
        assert torch.equal(state[k], v), k


def test_callback_metrics_and_learning(tmp_path):
    calls = []
    cfg = TrainConfig(device="auto", max_iters=30, batch_size=4, num_workers=0, lr=0.05, clip_grad_norm=0.0,
                      log_period=10)
    torch.manual_seed(0)
    train(ToyModel(dropout=0.0), ToyDataset(), cfg, collate, callback=lambda s, m: calls.append((s, m)))
    assert [s for s, _ in calls] == [10, 20, 30]
    for step, m in calls:
        assert set(m) == {"loss", "loss_ce", "loss_reg", "loss_unweighted", "lr", "img_per_s"}
        assert m["loss"] == pytest.approx(m["loss_ce"] + 2 * m["loss_reg"], rel=1e-5)  # weight_dict applied
        assert m["lr"] == pytest.approx(0.05 * (1 - (step - 1) / 30) ** 0.9)  # lr of the logged step
        assert m["img_per_s"] > 0
    assert calls[-1][1]["loss_ce"] < 0.5 * calls[0][1]["loss_ce"]  # it learns
    assert not list(tmp_path.iterdir())  # no checkpoint_dir: nothing written


class _NanData(ToyDataset):
    def __getitem__(self, index: int) -> tuple[torch.Tensor, dict]:
        image, target = super().__getitem__(index)
        return image * float("nan"), target


def test_bad_config_and_non_finite_loss_raise():
    with pytest.raises(ValueError, match="device"):
        TrainConfig(device="tpu")
    with pytest.raises(ValueError, match="max_iters"):
        TrainConfig(max_iters=0)
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="CUDA"):
            train(ToyModel(), ToyDataset(), TrainConfig(device="cuda"), collate)
    with pytest.raises(FloatingPointError, match="iteration 2"):
        cfg = TrainConfig(device="cpu", max_iters=5, batch_size=2, num_workers=0, log_period=2)
        train(ToyModel(), _NanData(), cfg, collate)


def test_in_process_sigterm_then_resume_is_exact(tmp_path, reference):
    handler = signal.getsignal(signal.SIGTERM)

    def stop_at_3(step, metrics):
        if step == 3:
            os.kill(os.getpid(), signal.SIGTERM)

    torch.manual_seed(0)
    cfg = TrainConfig(**{**SCRIPT_CFG, "checkpoint_dir": str(tmp_path)})
    with pytest.raises(TrainingInterruptedError) as info:
        train(ToyModel(), ToyDataset(), cfg, collate, callback=stop_at_3)
    assert info.value.iteration == 3 and info.value.checkpoint == find_last(tmp_path)
    assert [it for it, _ in list_checkpoints(tmp_path)] == [2, 3]
    assert signal.getsignal(signal.SIGTERM) is handler  # previous handler restored
    torch.manual_seed(123)  # a different init: everything must come from the checkpoint
    # resume in a fresh call, loading with two worker processes: the batches must not change
    resumed = train(ToyModel(), ToyDataset(), TrainConfig(**{**cfg.__dict__, "num_workers": 2}), collate)
    _assert_equal(resumed.state_dict(), reference)
    assert [it for it, _ in list_checkpoints(tmp_path)] == [4, 6, 8]  # keep_last=3


def test_finished_run_resumes_to_a_no_op(tmp_path, reference):
    _run(tmp_path)
    again = _run(tmp_path)
    _assert_equal(again.state_dict(), reference)


def _script(ckpt: Path, out: Path, *extra: str) -> list[str]:
    return [sys.executable, str(SCRIPT), "--checkpoint-dir", str(ckpt), "--out", str(out), *extra]


def _start(ckpt: Path, out: Path, sleep: float, workers: int = 0) -> subprocess.Popen:
    command = _script(ckpt, out, "--sleep", str(sleep), "--num-workers", str(workers))
    return subprocess.Popen(command, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)


def _wait_for_checkpoint(proc: subprocess.Popen, ckpt: Path) -> None:
    deadline = time.monotonic() + 60
    while find_last(ckpt) is None:
        assert proc.poll() is None, proc.stdout.read()
        assert time.monotonic() < deadline, "no checkpoint within 60 s"
        time.sleep(0.02)


def test_sigkill_then_restart_matches_uninterrupted(tmp_path, reference):
    ckpt, out = tmp_path / "ckpt", tmp_path / "final.pt"
    proc = _start(ckpt, out, sleep=0.25)
    _wait_for_checkpoint(proc, ckpt)
    proc.kill()
    proc.wait()
    assert not out.exists() and find_last(ckpt) is not None
    restarted = subprocess.run(_script(ckpt, out), env=ENV, capture_output=True, text=True, timeout=120)
    assert restarted.returncode == 0, restarted.stdout + restarted.stderr
    assert "step 1 " not in restarted.stdout  # it resumed instead of starting over
    _assert_equal(torch.load(out, weights_only=True), reference)


@pytest.mark.parametrize("workers", [0, 2])
def test_sigterm_subprocess_checkpoints_and_exits_cleanly(tmp_path, reference, workers):
    """With loader workers the SIGTERM goes to the whole group, as a cancelled flow run sends it: the
    workers leave stopping to the main process, which checkpoints first."""
    ckpt, out = tmp_path / "ckpt", tmp_path / "final.pt"
    proc = _start(ckpt, out, sleep=0.25, workers=workers)
    _wait_for_checkpoint(proc, ckpt)
    os.killpg(proc.pid, signal.SIGTERM)  # its own session: the group is the run and its workers
    stdout, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, stdout
    stopped = int(stdout.split("INTERRUPTED ")[1].split()[0])
    assert 2 <= stopped < 8 and find_last(ckpt).name == f"model_{stopped:07d}.pth"
    _assert_equal(_run(ckpt).state_dict(), reference)  # resume in this process


def test_two_rank_gloo_ddp_with_global_batch_4_equals_one_process_with_batch_4(tmp_path):
    """batch_size is the global batch (the paper's IMS_PER_BATCH): 2 ranks take 2 images each."""
    ckpt, out, marks = tmp_path / "ckpt", tmp_path / "final.pt", tmp_path / "marks"
    marks.mkdir()
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", str(SCRIPT),
           "--checkpoint-dir", str(ckpt), "--out", str(out), "--max-iters", "4", "--dropout", "0",
           "--batch-size", "4", "--record-saves", str(marks)]
    run = subprocess.run(cmd, env=ENV, capture_output=True, text=True, timeout=180)
    assert run.returncode == 0, run.stdout + run.stderr
    assert sorted(p.name for p in marks.iterdir()) == ["rank0_iter2", "rank0_iter4"]  # only rank 0 writes
    assert [it for it, _ in list_checkpoints(ckpt)] == [2, 4]
    single = _run(tmp_path / "single", dropout=0.0, max_iters=4, batch_size=4).state_dict()
    ddp = torch.load(out, weights_only=True)
    for k, v in single.items():
        torch.testing.assert_close(ddp[k], v, rtol=1e-4, atol=1e-6)


def test_sigterm_to_one_ddp_rank_stops_all_ranks_at_the_same_step(tmp_path):
    ckpt, out = tmp_path / "ckpt", tmp_path / "final.pt"
    marks, status = tmp_path / "marks", tmp_path / "status"
    marks.mkdir()
    status.mkdir()
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", str(SCRIPT),
           "--checkpoint-dir", str(ckpt), "--out", str(out), "--max-iters", "100", "--sleep", "0.05",
           "--record-saves", str(marks), "--status-dir", str(status)]
    proc = subprocess.Popen(cmd, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    _wait_for_checkpoint(proc, ckpt)
    os.kill(int((status / "rank1.pid").read_text()), signal.SIGTERM)  # rank 1 only: rank 0 must follow
    stdout, _ = proc.communicate(timeout=120)
    assert proc.returncode == 0, stdout
    stops = [int((status / f"rank{r}.stopped").read_text()) for r in (0, 1)]
    assert stops[0] == stops[1], stdout  # both ranks stopped after the same step
    stopped = stops[0]
    assert stopped < 100 and find_last(ckpt).name == f"model_{stopped:07d}.pth" and not out.exists()
    assert all(p.name.startswith("rank0_") for p in marks.iterdir())


def test_the_global_batch_must_split_evenly_across_processes():
    from maskformer.engine.trainer import per_process_batch

    assert (per_process_batch(16, 1), per_process_batch(16, 2), per_process_batch(16, 8)) == (16, 8, 2)
    with pytest.raises(ValueError, match="batch_size=3 .* across 2 processes"):
        per_process_batch(3, 2)
