"""The shipped shapes reference model: a small LLaVA-1.5-geometry checkpoint trained on the shapes world.

The checkpoint (safetensors, config, tokenizer, processor with the LLaVA-1.5 chat template, and
``training_log.json``) lives inside the package and loads offline with
:func:`adaptive_svdprune.models.llava.load_llava`. It was trained by ``tools/train_shapes_model.py``
(``make shapes-model``); the package itself never trains anything.

Example:
    >>> SHAPES_CHECKPOINT_DIR.name
    'checkpoint'
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["SHAPES_CHECKPOINT_DIR", "shapes_llava_path"]

SHAPES_CHECKPOINT_DIR: Path = Path(__file__).resolve().parent / "checkpoint"


def shapes_llava_path() -> Path:
    """Folder of the shipped reference checkpoint (pass it to ``load_llava`` or as ``--model``).

    Raises:
        FileNotFoundError: the checkpoint files are missing (a source tree where it was never built: run
            ``make shapes-model``).
    """
    for name in ("config.json", "model.safetensors", "processor_config.json"):
        if not (SHAPES_CHECKPOINT_DIR / name).is_file():
            raise FileNotFoundError(f"the shapes reference checkpoint is incomplete ({name} missing in "
                                    f"{SHAPES_CHECKPOINT_DIR}); run `make shapes-model` to train it")
    return SHAPES_CHECKPOINT_DIR
