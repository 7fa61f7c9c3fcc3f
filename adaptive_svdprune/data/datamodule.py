"""``VQADataModule``: one task's dataset, collate and ordered (never shuffled) test/predict loaders.

Example:
    >>> class Tok:
    ...     padding_side = "right"
    >>> class Proc:
    ...     tokenizer = Tok()
    >>> from pathlib import Path
    >>> fixtures = Path(__file__).resolve().parents[2] / "tests" / "fixtures"
    >>> dm = VQADataModule("gqa", fixtures / "gqa", Proc(), batch_size=4)
    >>> dm.setup("test")
    >>> dm.protocol, len(dm.dataset) >= 8
    ('llava-1.5/gqa/testdev-balanced', True)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lightning.pytorch import LightningDataModule
from torch.utils.data import DataLoader

from adaptive_svdprune.data.collate import make_collate
from adaptive_svdprune.data.dataset import VQADataset, check_limit
from adaptive_svdprune.data.registry import load_task


class VQADataModule(LightningDataModule):
    """Lightning data module for evaluation on one task.

    Args:
        task: ``"gqa"``, ``"textvqa"`` or ``"jsonl"`` (see :func:`~adaptive_svdprune.data.registry.load_task`).
        data_dir: the task's folder (official layout) or, for JSONL, the file.
        processor: a ``LlavaProcessor`` (or alike); its tokenizer is switched to left padding.
        batch_size: samples per batch.
        num_workers: DataLoader worker processes (images are decoded there).
        limit: keep the first ``limit`` questions of the file.
        ocr: TextVQA/JSONL: put the OCR tokens in the prompt.
        skip_bad: skip bad images (counted in ``dataset.skipped``) instead of raising.
        split: the task's split; None for the LLaVA-1.5 protocol's.
    """

    def __init__(
        self,
        task: str,
        data_dir: Path | str,
        processor: Any,
        batch_size: int = 1,
        num_workers: int = 0,
        limit: int | None = None,
        ocr: bool = False,
        skip_bad: bool = False,
        split: str | None = None,
    ) -> None:
        super().__init__()
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
        if isinstance(num_workers, bool) or not isinstance(num_workers, int) or num_workers < 0:
            raise ValueError(f"num_workers must be an int >= 0, got {num_workers!r}")
        self.task = task
        self.data_dir = Path(data_dir)
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.limit = check_limit(limit)
        self.ocr = ocr
        self.skip_bad = skip_bad
        self.split = split
        self.collate = make_collate(processor)
        self.dataset: VQADataset | None = None

    def setup(self, stage: str | None = None) -> None:
        """Build (once) and validate the dataset."""
        if self.dataset is None:
            self.dataset = load_task(self.task, self.data_dir, split=self.split, limit=self.limit, ocr=self.ocr,
                                     skip_bad=self.skip_bad)

    @property
    def protocol(self) -> str:
        """The evaluation protocol string of the dataset (builds it if needed)."""
        self.setup()
        assert self.dataset is not None
        return self.dataset.protocol

    def _loader(self) -> DataLoader[Any]:
        self.setup()
        return DataLoader(
            self.dataset,  # type: ignore[arg-type]
            batch_size=self.batch_size,
            shuffle=False,  # results are matched to question ids and compared across runs: keep file order
            num_workers=self.num_workers,
            collate_fn=self.collate,
        )

    def test_dataloader(self) -> DataLoader[Any]:
        """Ordered loader over the whole dataset."""
        return self._loader()

    def predict_dataloader(self) -> DataLoader[Any]:
        """Same as :meth:`test_dataloader`."""
        return self._loader()


__all__ = ["VQADataModule"]
