"""The common sample record shared by every task, and image loading that names the file on failure.

Example:
    >>> from pathlib import Path
    >>> s = VQASample("q1", Path("img.jpg"), "What color is the circle?", ["red"], task="gqa")
    >>> s.question_id, s.answers, s.ocr_tokens
    ('q1', ['red'], None)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from PIL import Image

# A skipped entry: (question_id, reason).
SkippedEntry = tuple[str, str]


@dataclass(frozen=True)
class VQASample:
    """One question about one image, in the same form for GQA, TextVQA and generic JSONL sets.

    Attributes:
        question_id: the dataset's question id, as a string (TextVQA's integer ids are converted).
        image_path: absolute or data-dir-relative path of the image file.
        question: the raw question text (no instruction, no OCR line).
        answers: reference answers: GQA has one, TextVQA ten human answers, JSONL any non-empty list.
        ocr_tokens: OCR tokens shipped with the dataset (TextVQA), or None when the set has none.
        task: the task name (``"gqa"``, ``"textvqa"`` or ``"jsonl"``).
    """

    question_id: str
    image_path: Path
    question: str
    answers: list[str]
    ocr_tokens: list[str] | None = None
    task: str = "jsonl"


@dataclass(frozen=True)
class VQAExample:
    """What a dataset yields: the record, its decoded RGB image and the question text given to the model.

    ``question_text`` already holds the protocol's additions (OCR line, answer instruction); the chat template is
    applied later by :func:`adaptive_svdprune.data.prompts.build_prompt`.
    """

    sample: VQASample
    image: Image.Image
    question_text: str


def to_rgb(img: Image.Image) -> Image.Image:
    """An 8-bit RGB copy of ``img`` whatever its mode.

    ``convert("RGB")`` clips 16- and 32-bit integer pixels to 255 (a 16-bit PNG becomes solid white), so
    high-bit-depth grey levels are scaled to 8 bits first: ``I;16*`` by 1/257, ``I`` by its range (1/257 when
    it holds 16-bit values), ``F`` from [0, 1] or its range. Transparent images (RGBA, LA, PA, P with
    transparency) are composited on white; CMYK, YCbCr, 1 and the rest go through PIL's own conversion.

    Example:
        >>> import numpy as np
        >>> grey16 = Image.fromarray(np.array([[0, 32896, 65535]], dtype=np.uint16))
        >>> np.asarray(to_rgb(grey16))[0, :, 0].tolist()
        [0, 128, 255]
    """
    import numpy as np

    mode = img.mode
    if mode == "RGB":
        return img.copy()
    if mode.startswith("I;16") or mode in ("I", "F"):
        values = np.asarray(img, dtype=np.float64)
        finite = values[np.isfinite(values)]
        low, high = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 0.0)
        if mode.startswith("I;16") or (mode == "I" and low >= 0 and high <= 65535 and high > 255):
            scaled = values / 257.0
        elif mode == "I" and low >= 0 and high <= 255:
            scaled = values
        elif mode == "F" and low >= 0 and high <= 1:
            scaled = values * 255.0
        elif high > low:
            scaled = (values - low) * (255.0 / (high - low))
        else:
            scaled = np.zeros_like(values)
        grey = np.clip(np.nan_to_num(np.rint(scaled)), 0, 255).astype(np.uint8)
        return Image.fromarray(grey).convert("RGB")
    if mode == "P" and "transparency" in img.info:
        img, mode = img.convert("RGBA"), "RGBA"
    if mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return img.convert("RGB")


def load_image(path: Path | str, question_id: str | None = None) -> Image.Image:
    """Open an image with PIL, decode it fully and convert it to 8-bit RGB (see :func:`to_rgb`).

    Args:
        path: the image file.
        question_id: named in the error message when given.

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: the file exists but cannot be decoded as an image (message names the file).

    Example:
        >>> import tempfile, os
        >>> from PIL import Image
        >>> p = os.path.join(tempfile.mkdtemp(), "a.png")
        >>> Image.new("L", (4, 3)).save(p)
        >>> load_image(p).mode, load_image(p).size
        ('RGB', (4, 3))
    """
    path = Path(path)
    where = f" (question {question_id})" if question_id is not None else ""
    if not path.is_file():
        raise FileNotFoundError(f"image file not found: {path}{where}")
    try:
        with Image.open(path) as img:
            img.load()
            return to_rgb(img)
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as err:
        raise ValueError(f"cannot decode image {path}{where}: {err}") from err


def image_problem(path: Path, decode: bool) -> str | None:
    """Why an image cannot be used (``"missing: ..."`` / ``"unreadable: ..."``), or None when it looks fine.

    With ``decode=True`` JPEGs are decoded at reduced scale (PIL draft mode), which catches truncated or corrupt
    files for a fraction of the full decoding cost.

    Example:
        >>> image_problem(Path("/nonexistent/x.jpg"), decode=False)
        'missing: /nonexistent/x.jpg'
    """
    if not path.is_file():
        return f"missing: {path}"
    if not decode:
        return None
    try:
        with Image.open(path) as img:
            if img.format == "JPEG":
                img.draft("RGB", (max(1, img.width // 8), max(1, img.height // 8)))
            img.load()
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as err:
        return f"unreadable: {path}: {err}"
    return None


__all__ = ["SkippedEntry", "VQAExample", "VQASample", "image_problem", "load_image", "to_rgb"]
