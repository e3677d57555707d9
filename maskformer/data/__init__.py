"""Training data: the canonical layout and its Dataset, aligned v2 transforms and a padding collate."""

from maskformer._lazy import lazy_exports

_EXPORTS = {  # name -> the submodule that defines it
    "CanonicalDataset": ".dataset",
    "TASKS": ".dataset",
    "collate_fn": ".dataset",
    "CanonicalLayout": ".layout",
    "IGNORE": ".layout",
    "id_to_rgb": ".layout",
    "rgb_to_id": ".layout",
    "IMAGENET_MEAN": ".transforms",
    "IMAGENET_STD": ".transforms",
    "PAD_ID": ".transforms",
    "build_detr_train_transforms": ".transforms",
    "build_eval_transforms": ".transforms",
    "build_train_transforms": ".transforms",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
