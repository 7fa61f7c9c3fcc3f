"""The predictions file (one JSON record per answered question) and strict JSON output.

``predictions.jsonl`` is appended to as answers are produced, so a killed run leaves at most one torn last
line. Reading it back keeps the first record of every question id (two writers, or a duplicate left by a
crash, never count twice); repairing it keeps a complete last record that only lacks its newline and cuts only
a tail that does not parse. Every JSON file of an evaluation is strict JSON: non-finite numbers become
``null`` (:func:`strict_json`).

Example:
    >>> import tempfile
    >>> path = Path(tempfile.mkdtemp()) / "predictions.jsonl"
    >>> _ = path.write_text('{"question_id": "1"}\\n{"question_id": "1"}\\n{"question_id": "2"}')
    >>> repair_predictions(path)
    'kept'
    >>> [r["question_id"] for r in read_predictions(path)]
    ['1', '2']
    >>> strict_json({"latency": float("nan")})
    '{"latency": null}'
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Literal

__all__ = ["append_records", "finite", "read_predictions", "repair_predictions", "strict_json", "write_json"]


def finite(value: Any) -> Any:
    """``value`` with every non-finite float (NaN, +-Infinity), however deeply nested, replaced by None.

    Example:
        >>> finite({"a": [1.0, float("inf")], "b": float("nan")})
        {'a': [1.0, None], 'b': None}
    """
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite(v) for v in value]
    return value


def strict_json(value: Any, **kwargs: Any) -> str:
    """``json.dumps`` that never writes NaN/Infinity (they become ``null``) and refuses anything else odd."""
    return json.dumps(finite(value), allow_nan=False, **kwargs)


def write_json(path: Path, value: Any) -> None:
    """Write ``value`` as indented strict JSON, atomically (temporary file + rename)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(strict_json(value, indent=2) + "\n")
    os.replace(tmp, path)


def _parse(line: str) -> dict[str, Any] | None:
    try:
        record = json.loads(line)
    except json.JSONDecodeError:
        return None
    return record if isinstance(record, dict) and "question_id" in record else None


def read_predictions(path: Path) -> list[dict[str, Any]]:
    """Records of a predictions JSONL file, first record per question id, in file order.

    A torn last line (a killed writer) is ignored; an unparseable line elsewhere is an error naming the line.
    """
    if not path.exists():
        return []
    lines = path.read_text().splitlines()
    records: list[dict[str, Any]] = []
    seen: set[str] = set()
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        record = _parse(line)
        if record is None:
            if number == len(lines):
                break
            raise ValueError(f"{path}:{number} is not a valid prediction record; the predictions file is corrupt "
                             f"(use another out folder, or overwrite)")
        qid = str(record["question_id"])
        if qid not in seen:  # first record wins: a duplicate never counts twice
            seen.add(qid)
            records.append(record)
    return records


def repair_predictions(path: Path) -> Literal["none", "kept", "cut"]:
    """Make the file end on a line boundary before appending: what happened to its last line.

    ``"kept"``: a complete record without its newline gets the newline; ``"cut"``: a torn record (it does not
    parse) is cut off; ``"none"``: nothing to do.
    """
    if not path.exists():
        return "none"
    data = path.read_bytes()
    if not data or data.endswith(b"\n"):
        return "none"
    start = data.rfind(b"\n") + 1
    if _parse(data[start:].decode("utf-8", errors="replace")) is not None:
        with path.open("ab") as handle:
            handle.write(b"\n")
        return "kept"
    with path.open("r+b") as handle:
        handle.truncate(start)
    return "cut"


def append_records(path: Path, records: Iterable[dict[str, Any]]) -> None:
    """Append records (strict JSON, one per line) and flush them to disk."""
    lines = [strict_json(r) + "\n" for r in records]
    if not lines:
        return
    with path.open("a") as handle:
        handle.writelines(lines)
        handle.flush()
        os.fsync(handle.fileno())
