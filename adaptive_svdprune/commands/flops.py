"""``adaptive-svdprune flops``: FLOPs, selection cost and KV cache per kept-token count, vs the unpruned model."""

from __future__ import annotations

import argparse
import re
from typing import Any

__all__ = ["HELP", "add_arguments", "parse_image_size", "parse_tokens", "run"]

HELP = "FLOPs per component (vision, selection, projector, prefill, decode) and KV cache per kept-token count."

_DEFAULT_TOKENS = "576,192,128,64,32,16"
_SOLVERS = ("svd", "gram", "lowrank", "auto", "none")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``flops`` options to ``parser``."""
    # Defaults come from adaptive_svdprune.flops at run time (imported lazily, so --help stays fast).
    parser.add_argument(
        "--model",
        default="llava-1.5-7b",
        help="bundled architecture (llava-1.5-7b, llava-1.5-13b, llava-v1.6-7b, llava-onevision-7b, qwen2.5-vl-7b), "
        "or a local folder / hub id with a config",
    )
    parser.add_argument(
        "--tokens", default=None,
        help=f"comma-separated kept image-token counts (default {_DEFAULT_TOKENS}, with the image's full count "
        "first for models whose count is not 576)",
    )
    parser.add_argument(
        "--image-size", default=None, metavar="WxH",
        help="image width x height in pixels (or one int for a square image) for the models whose token count "
        "follows the image: LLaVA-NeXT and OneVision (anyres views; default 672x672) and Qwen2(.5)-VL (native "
        "resolution; default 672x1008)",
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


def parse_image_size(text: str) -> tuple[int, int]:
    """Parse ``"WxH"`` (or ``"N"`` for a square) into ``(height, width)``, the order ``count_flops`` takes.

    Example:
        >>> parse_image_size("640x480"), parse_image_size("336")
        ((480, 640), (336, 336))
        >>> parse_image_size("640x")
        Traceback (most recent call last):
        ...
        ValueError: --image-size must be WIDTHxHEIGHT in pixels (e.g. 640x480) or one int for a square, got '640x'
    """
    match = re.fullmatch(r"\s*(\d+)\s*(?:[xX*,]\s*(\d+)\s*)?", text)
    if match is None:
        raise ValueError(f"--image-size must be WIDTHxHEIGHT in pixels (e.g. 640x480) or one int for a square, "
                         f"got {text!r}")
    width = int(match.group(1))
    height = width if match.group(2) is None else int(match.group(2))
    if width < 1 or height < 1:
        raise ValueError(f"--image-size must be positive, got {text!r}")
    return height, width


def _image_size(args: argparse.Namespace, config: Any) -> tuple[int, int] | None:
    from adaptive_svdprune.flops import is_anyres, is_qwen_vl

    if args.image_size is None:
        return None
    size = parse_image_size(args.image_size)
    if not (is_anyres(config) or is_qwen_vl(config)):
        raise ValueError(f"--image-size applies to the models whose token count follows the image (LLaVA-NeXT, "
                         f"LLaVA-OneVision, Qwen2(.5)-VL); {args.model} ({config.model_type}) always sees a fixed "
                         "square view")
    return size


def _default_image_size(config: Any) -> tuple[int, int]:
    """``(height, width)`` counted without ``--image-size``: the family's default, or LLaVA-1.5's fixed view."""
    from adaptive_svdprune.flops import is_anyres, is_qwen_vl
    from adaptive_svdprune.flops._anyres import DEFAULT_ANYRES_IMAGE_SIZE
    from adaptive_svdprune.flops._qwen import DEFAULT_QWEN_IMAGE_SIZE

    if is_anyres(config):
        return DEFAULT_ANYRES_IMAGE_SIZE
    if is_qwen_vl(config):
        return DEFAULT_QWEN_IMAGE_SIZE
    side = int(config.vision_config.image_size)
    return side, side


def _rows(args: argparse.Namespace) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    from adaptive_svdprune.flops import (
        DEFAULT_NEW_TOKENS,
        DEFAULT_PROMPT_TOKENS,
        count_flops,
        load_arch_config,
    )

    config = load_arch_config(args.model)
    image_size = _image_size(args, config)
    settings = {
        "model": args.model,
        "prompt_tokens": DEFAULT_PROMPT_TOKENS if args.prompt_tokens is None else args.prompt_tokens,
        "new_tokens": DEFAULT_NEW_TOKENS if args.new_tokens is None else args.new_tokens,
        "dtype": args.dtype,
        "selection_solver": None if args.solver == "none" else args.solver,
        "method": args.method,
    }
    common: dict[str, Any] = {k: settings[k] for k in ("prompt_tokens", "new_tokens", "dtype", "method")}
    common["image_size"] = image_size
    baseline = count_flops(config, None, selection_solver=None, **common)  # every token of the image
    full = baseline.tokens
    tokens = parse_tokens(args.tokens) if args.tokens is not None else \
        [full, *(t for t in parse_tokens(_DEFAULT_TOKENS) if t < full)]
    settings["image_tokens"] = full
    height, width = image_size or _default_image_size(config)
    settings["image_size"] = f"{width}x{height}"
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
                     "selection_solver": settings["selection_solver"], "method": settings["method"],
                     "image_size": settings["image_size"], "image_tokens": settings["image_tokens"]}
                    for row in rows])  # fmt: skip
        return 0
    print(
        f"{settings['model']}: GFLOPs per sample (2 FLOPs per multiply-add, {settings['method']}); "
        f"{settings['prompt_tokens']} prompt tokens, {settings['new_tokens']} new "
        f"token{'' if settings['new_tokens'] == 1 else 's'}; "
        f"selection: {settings['selection_solver'] or 'not counted'}; KV cache in {settings['dtype']}; "
        f"image {settings['image_size']} (WxH): {settings['image_tokens']} image tokens; reduction vs all of them"
    )
    print(format_table([_table_row(row) for row in rows]))
    return 0
