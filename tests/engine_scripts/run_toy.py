"""Train the toy model in a subprocess (plain or under torchrun) for the kill/resume and DDP tests."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import torch
from toy import ToyDataset, ToyModel, collate

from maskformer.engine import TrainConfig, TrainingInterruptedError, train


def main() -> int:
    """Parse flags, train, write the final weights (rank 0); exit 0 after a SIGTERM checkpoint too."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--checkpoint-dir", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--max-iters", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=2)
    parser.add_argument("--period", type=int, default=2)
    parser.add_argument("--sleep", type=float, default=0.0)
    parser.add_argument("--num-workers", type=int, default=0)
    parser.add_argument("--dropout", type=float, default=0.1)
    parser.add_argument("--record-saves", default=None, help="folder where each checkpoint writer marks")
    parser.add_argument("--status-dir", default=None, help="folder for each rank's pid and stop iteration")
    args = parser.parse_args()
    rank = os.environ.get("RANK", "0")
    if args.status_dir:
        Path(args.status_dir, f"rank{rank}.pid").write_text(str(os.getpid()))
    torch.manual_seed(0)
    if args.record_saves:
        from maskformer.engine import trainer as engine_train

        original = engine_train.save_checkpoint

        def recording_save(directory, iteration, state, keep_last=3):
            Path(args.record_saves, f"rank{rank}_iter{iteration}").touch()
            return original(directory, iteration, state, keep_last)

        engine_train.save_checkpoint = recording_save
    cfg = TrainConfig(device="cpu", max_iters=args.max_iters, batch_size=args.batch_size,
                      num_workers=args.num_workers, checkpoint_period=args.period,
                      checkpoint_dir=args.checkpoint_dir, log_period=1)
    try:
        model = train(ToyModel(dropout=args.dropout), ToyDataset(sleep=args.sleep), cfg, collate,
                      callback=lambda step, m: print(f"step {step} loss {m['loss']:.6f}", flush=True))
    except TrainingInterruptedError as exc:
        print(f"INTERRUPTED {exc.iteration} rank {rank}", flush=True)
        if args.status_dir:
            Path(args.status_dir, f"rank{rank}.stopped").write_text(str(exc.iteration))
        return 0
    if rank == "0":  # the process group is gone after train(), so ask the launcher's env
        torch.save(model.state_dict(), args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
