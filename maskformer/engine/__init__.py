"""Training engine: train_step, AdamW + poly schedule, atomic checkpoints with exact resume, DDP, callback."""

from maskformer._lazy import lazy_exports

_EXPORTS = {  # name -> the submodule that defines it
    "atomic_save": ".checkpoint",
    "capture_rng_state": ".checkpoint",
    "checkpoint_path": ".checkpoint",
    "find_last": ".checkpoint",
    "list_checkpoints": ".checkpoint",
    "load_checkpoint": ".checkpoint",
    "restore_rng_state": ".checkpoint",
    "save_checkpoint": ".checkpoint",
    "get_rank": ".dist",
    "get_world_size": ".dist",
    "init_distributed": ".dist",
    "is_distributed": ".dist",
    "is_main_process": ".dist",
    "resolve_device": ".runtime",
    "seed_everything": ".runtime",
    "InfiniteShardedSampler": ".sampler",
    "SeededDataset": ".sampler",
    "build_lr_scheduler": ".solver",
    "build_optimizer": ".solver",
    "clip_grad_norm": ".solver",
    "is_norm": ".solver",
    "warmup_multistep_factor": ".solver",
    "warmup_poly_factor": ".solver",
    "train_step": ".step",
    "TrainConfig": ".config",
    "Callback": ".trainer",
    "TrainingInterruptedError": ".trainer",
    "train": ".trainer",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
