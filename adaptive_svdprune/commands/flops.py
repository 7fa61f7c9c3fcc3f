"""``adaptive-svdprune flops``: FLOPs, selection cost and KV cache per kept-token count, vs the unpruned model."""

from __future__ import annotations

import argparse
from typing import Any

__all__ = ["HELP", "add_arguments", "parse_tokens", "run"]

HELP = "FLOPs per component (vision, selection, projector, prefill, decode) and KV cache per kept-token count."

_DEFAULT_TOKENS = "576,192,128,64,32,16"
_SOLVERS = ("svd", "gram", "lowrank", "auto", "none")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``flops`` options to ``parser``."""
    # Defaults come from adaptive_svdprune.flops at run time (imported lazily, so --help stays fast).
    parser.add_argument(
        "--model",
        default="llava-1.5-7b",
        help="bundled architecture (llava-1.5-7b, llava-1.5-13b), or a local folder / hub id with a config",
    )
    parser.add_argument(
        "--tokens", default=_DEFAULT_TOKENS, help=f"comma-separated kept image-token counts (default {_DEFAULT_TOKENS})"
    )
    parser.add_argument(
        "--prompt-tokens", type=int, default=None, help="text tokens of the prompt (default 57, see README)"
    )
    parser.add_argument("--new-tokens", type=int, default=None, help="tokens generated (default 1)")
    parser.add_argument("--dtype", default="bf16", help="KV-cache dtype: bf16, fp16, fp32, fp8 (default bf16)")
    parser.add_argument(
        "--solver",
        choices=_SOLVERS,
        default="svd",
        help="solver whose selection cost is counted: svd (default, the paper's exact SVD), gram, lowrank, "
        "auto (gram at LLaVA size, as SVDPruneConfig's default), none (not counted)",
    )
    parser.add_argument("--rank", type=int, default=None, help="rank k used for the leverage scores, if known")
    parser.add_argument(
        "--method",
        choices=("counted", "analytic"),
        default="counted",
        help="counted: FlopCounterMode on meta-device modules (default); analytic: closed-form cross-check",
    )
    parser.add_argument("--json", action="store_true", help="print a JSON list, one object per token count")


def parse_tokens(text: str) -> list[int]:
    """Parse ``"576,16"`` into ``[576, 16]``.

    Example:
        >>> parse_tokens("576, 64,16")
        [576, 64, 16]
    """
    try:
        values = [int(part) for part in text.split(",") if part.strip()]
    except ValueError as err:
        raise ValueError(f"--tokens must be comma-separated integers, got {text!r}") from err
    if not values:
        raise ValueError(f"--tokens needs at least one count, got {text!r}")
    return values


def _rows(args: argparse.Namespace) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    from adaptive_svdprune.flops import (
        DEFAULT_NEW_TOKENS,
        DEFAULT_PROMPT_TOKENS,
        count_flops,
        image_token_count,
        load_arch_config,
    )

    tokens = parse_tokens(args.tokens)
    config = load_arch_config(args.model)
    settings = {
        "model": args.model,
        "prompt_tokens": DEFAULT_PROMPT_TOKENS if args.prompt_tokens is None else args.prompt_tokens,
        "new_tokens": DEFAULT_NEW_TOKENS if args.new_tokens is None else args.new_tokens,
        "dtype": args.dtype,
        "selection_solver": None if args.solver == "none" else args.solver,
        "method": args.method,
    }
    common = {k: settings[k] for k in ("prompt_tokens", "new_tokens", "dtype", "method")}
    baseline = count_flops(config, image_token_count(config), selection_solver=None, **common)
    rows = []
    for kept in tokens:
        breakdown = count_flops(
            config, kept, selection_solver=settings["selection_solver"], selection_rank=args.rank, **common
        )
        rows.append({**breakdown.as_dict(), "reduction_pct": round(breakdown.reduction_pct(baseline), 4)})
    return rows, settings


def _table_row(row: dict[str, Any]) -> dict[str, str]:
    def giga(key: str) -> str:
        return f"{row[key] / 1e9:,.1f}"

    return {
        "tokens": str(row["tokens"]),
        "vision": giga("vision"),
        "selection": giga("selection"),
        "projector": giga("projector"),
        "llm_prefill": giga("llm_prefill"),
        "decode": giga("decode"),
        "total": giga("total"),
        "reduction": f"{row['reduction_pct']:.1f}%",
        "kv_cache_MiB": f"{row['kv_cache_bytes'] / 2**20:,.1f}",
    }


def run(args: argparse.Namespace) -> int:
    """Print the FLOPs table (or JSON) for each kept-token count; returns the exit code."""
    from adaptive_svdprune.commands._output import format_table, print_json

    rows, settings = _rows(args)
    if args.json:
        print_json([{**row, "model": settings["model"], "dtype": settings["dtype"],
                     "selection_solver": settings["selection_solver"], "method": settings["method"]}
                    for row in rows])  # fmt: skip
        return 0
    print(
        f"{settings['model']}: GFLOPs per sample (2 FLOPs per multiply-add, {settings['method']}); "
        f"{settings['prompt_tokens']} prompt tokens, {settings['new_tokens']} new "
        f"token{'' if settings['new_tokens'] == 1 else 's'}; "
        f"selection: {settings['selection_solver'] or 'not counted'}; KV cache in {settings['dtype']}; "
        "reduction vs all image tokens"
    )
    print(format_table([_table_row(row) for row in rows]))
    return 0
