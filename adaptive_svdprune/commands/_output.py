"""Shared printing helpers for commands: aligned text tables and ``--json`` output."""

from __future__ import annotations

import contextlib
import json
import math
import sys
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, TextIO

__all__ = ["format_table", "json_output", "print_json"]

#: Where :func:`print_json` writes while :func:`json_output` is active (the real stdout); ``None``: ``sys.stdout``.
_json_stream: TextIO | None = None


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if value != 0 and (abs(value) >= 1e6 or abs(value) < 1e-3):
            return f"{value:.3e}"
        return f"{value:.4g}"
    return str(value)


def format_table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str] | None = None) -> str:
    """Format ``rows`` (dicts) as an aligned plain-text table.

    Example:
        >>> print(format_table([{"a": 1, "b": 0.5}, {"a": 22, "b": 1.25}]))
        a   b
        --  ----
        1   0.5
        22  1.25
    """
    if not rows:
        return "(no rows)"
    columns = list(columns or rows[0].keys())
    cells = [[_fmt(row.get(c, "")) for c in columns] for row in rows]
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip()]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip() for r in cells]
    return "\n".join(lines)


def _strict(obj: Any) -> Any:
    """``obj`` with NaN and infinities as ``None``: what strict JSON parsers (and ``jq``) accept."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, Mapping):
        return {str(k): _strict(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_strict(v) for v in obj]
    return obj


def print_json(obj: Any) -> None:
    """Print ``obj`` as indented strict JSON (the machine-readable output of every ``--json`` flag).

    Example:
        >>> print_json({"accuracy": float("nan"), "n": 2})
        {
          "accuracy": null,
          "n": 2
        }
    """
    stream = _json_stream if _json_stream is not None else sys.stdout
    print(json.dumps(_strict(obj), indent=2, default=str, allow_nan=False), file=stream, flush=True)


@contextlib.contextmanager
def json_output(stream: TextIO | None = None) -> Iterator[TextIO]:
    """Everything printed to ``sys.stdout`` goes to stderr, except :func:`print_json`, which goes to ``stream``.

    ``stream`` defaults to the current stdout, so ``--json`` output stays parseable whatever a library prints
    (progress bars, banners, log lines). Yields the stream the JSON goes to.
    """
    global _json_stream
    previous, target = _json_stream, stream if stream is not None else sys.stdout
    _json_stream = target
    try:
        with contextlib.redirect_stdout(sys.stderr):
            yield target
    finally:
        _json_stream = previous
