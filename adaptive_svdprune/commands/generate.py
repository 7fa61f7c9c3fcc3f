"""``adaptive-svdprune generate``: answer one question about one image with a pruned LLaVA model."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

__all__ = ["HELP", "add_arguments", "build_config", "run"]

HELP = "Answer a question about an image with SVD-Prune (or a baseline) in a LLaVA model; print the kept tokens."

_METHODS = ("svd", "none", "random", "uniform", "l2norm", "cls_attention", "fastv")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``generate`` options to ``parser``."""
    parser.add_argument(
        "--model", default="tiny",
        help="hub id or local folder of a LLaVA checkpoint; 'tiny' (default) builds/reuses the offline tiny model",
    )
    parser.add_argument("--image", default=None, help="image file (default: the bundled demo image 'shapes')")
    parser.add_argument("--question", default="What is in the image?", help="the question (default: %(default)s)")
    parser.add_argument(
        "--method", choices=_METHODS, default="svd", help="selector: SVD-Prune (default) or a baseline"
    )
    parser.add_argument("--budget", type=int, default=None, help="keep exactly K tokens per image")
    parser.add_argument(
        "--variance-threshold", type=float, default=None,
        help="SVD-Prune epsilon in (0, 1] (default 0.9); without --budget the kept count is adaptive",
    )
    parser.add_argument("--anyres-split", choices=("global", "per_view"), default=None,
                        help="LLaVA-NeXT/OneVision: one selection over base view and crops (global, default) or one "
                        "per view with the budget shared in proportion (per_view); other models: global only; "
                        "default: the profile's, else global")
    parser.add_argument("--profile", default=None, help="deployment profile (from `adaptive-svdprune profile`)")
    parser.add_argument("--task", default=None, help="task whose settings to take from --profile")
    parser.add_argument("--max-new-tokens", type=int, default=16, help="tokens to generate (default 16)")
    parser.add_argument("--dtype", choices=("auto", "float32", "bfloat16", "float16"), default=None,
                        help="weight dtype (default: as saved)")
    parser.add_argument("--device", default=None, help="torch device (default cpu)")
    parser.add_argument("--save-overlay", default=None, metavar="PNG",
                        help="write the model's view of the image with the dropped tokens shaded (LLaVA-NeXT/"
                        "OneVision: base view and crops side by side; Qwen2(.5)-VL: one cell per merged 28x28-px "
                        "token)")
    parser.add_argument("--center", action="store_true",
                        help="SVD-Prune on mean-centred features (off in the paper; see SVDPruneConfig.center)")
    parser.add_argument("--json", action="store_true", help="print a JSON object")


def build_config(args: argparse.Namespace, profile: Any = None) -> Any:
    """The selector config described by ``args`` (``--profile``/``--task``, ``--method``, budget, epsilon).

    ``profile``: the already loaded ``--profile`` (read from its file when ``None``).
    """
    from adaptive_svdprune.pruning.config import BaselineConfig, SVDPruneConfig

    if (args.profile is None) != (args.task is None):
        raise ValueError("--profile and --task go together")
    if getattr(args, "center", False) and args.method != "svd":
        raise ValueError(f"--center applies to SVD-Prune only, not --method {args.method}")
    if args.profile is not None:
        if args.method != "svd":
            raise ValueError(f"--profile gives SVD-Prune settings; it cannot be combined with --method {args.method}")
        overrides: dict[str, Any] = {}
        if args.budget is not None:
            overrides["budget"] = args.budget
        if args.variance_threshold is not None:
            overrides["variance_threshold"] = args.variance_threshold
        if getattr(args, "center", False):
            overrides["center"] = True
        if profile is None:
            from adaptive_svdprune.profiles import load_profile

            profile = load_profile(args.profile)
        return profile.config_for(args.task, **overrides)
    if args.method == "svd":
        eps = 0.9 if args.variance_threshold is None else args.variance_threshold
        return SVDPruneConfig(variance_threshold=eps, budget=args.budget, center=bool(getattr(args, "center", False)))
    if args.variance_threshold is not None:
        raise ValueError(f"--variance-threshold applies to SVD-Prune only, not --method {args.method}")
    if args.method != "none" and args.budget is None:
        raise ValueError(f"--method {args.method} needs --budget K")
    return BaselineConfig(args.method, budget=args.budget)


def _anyres_split(args: argparse.Namespace, profile: Any) -> str:
    """``--anyres-split`` if given, else ``profile``'s entry for ``--task`` (a search that tuned it), else global."""
    if args.anyres_split is not None:
        return str(args.anyres_split)
    if profile is not None and args.task is not None:
        return profile.task(args.task).anyres_split or "global"
    return "global"


def _open_image(path: Path) -> Any:
    """The image at ``path`` as 8-bit RGB, fully decoded now; a broken file is a ``ValueError`` that names it.

    High-bit-depth and transparent images go through the data loaders' :func:`~adaptive_svdprune.data.records.to_rgb`
    (``convert("RGB")`` alone turns a 16-bit PNG white).
    """
    from PIL import Image

    from adaptive_svdprune.data.records import to_rgb

    try:
        with Image.open(path) as image:
            image.load()  # decode now: truncated files fail here, not deep inside the processor
            return to_rgb(image)
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as err:
        # PIL reports broken files as UnidentifiedImageError/OSError, and some broken PNGs as SyntaxError
        raise ValueError(f"--image {str(path)!r} is not a readable image: {err}") from None


def _prompt(processor: Any, question: str) -> str:
    if getattr(processor, "chat_template", None):
        messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": question}]}]
        return str(processor.apply_chat_template(messages, add_generation_prompt=True))
    return f"USER: {processor.image_token}\n{question} ASSISTANT:"


def run(args: argparse.Namespace) -> int:
    """Run the command; returns the exit code."""
    import torch
    from transformers.utils import logging as hf_logging

    from adaptive_svdprune.assets import demo_image_path
    from adaptive_svdprune.commands._checks import check_device, check_model_source, check_writable_file
    from adaptive_svdprune.commands._output import print_json
    from adaptive_svdprune.models.families import check_split, load_model, model_class_name, prune_model
    from adaptive_svdprune.models.names import resolve_model_path
    from adaptive_svdprune.models.overlay import draw_selection_overlay

    if args.max_new_tokens < 1:
        raise ValueError(f"--max-new-tokens must be >= 1, got {args.max_new_tokens}")
    profile = None
    if args.profile is not None and args.task is not None:  # read once: the selector config and the split
        from adaptive_svdprune.profiles import load_profile

        profile = load_profile(args.profile)
    config = build_config(args, profile)
    image_path = Path(args.image) if args.image else demo_image_path("shapes")
    if not image_path.is_file():
        raise FileNotFoundError(f"--image {str(image_path)!r} does not exist")
    check_device(args.device)
    check_model_source(args.model)
    if args.save_overlay:
        check_writable_file(args.save_overlay, "--save-overlay")
    image = _open_image(image_path)
    model_name = resolve_model_path(args.model)
    requested = _anyres_split(args, profile)
    split = check_split(requested, model_class_name(model_name), "--anyres-split") \
        if requested != "global" else "global"
    dtype = None if args.dtype is None else args.dtype if args.dtype == "auto" else getattr(torch, args.dtype)
    hf_logging.disable_progress_bar()  # keep stdout/stderr to the answer (and --json parseable)
    model, processor = load_model(model_name, dtype=dtype, device=args.device)
    pruned = prune_model(model, config, split=split)
    inputs = processor(images=image, text=_prompt(processor, args.question), return_tensors="pt")
    tokens = pruned.generate(**inputs, max_new_tokens=args.max_new_tokens, do_sample=False)
    answer = processor.batch_decode(tokens, skip_special_tokens=True)[0].strip()
    selection = pruned.last_selection
    assert selection is not None
    kept, total = selection.counts[0], selection.num_tokens
    overlay = None
    if args.save_overlay:
        overlay = Path(args.save_overlay)
        overlay.parent.mkdir(parents=True, exist_ok=True)
        draw_selection_overlay(pruned, image, inputs, processor).save(overlay)
    result = {
        "model": args.model,
        "image": str(image_path),
        "question": args.question,
        "answer": answer,
        "kept_tokens": kept,
        "image_tokens": total,
        "kept_ratio": kept / total,
        "config": config.to_dict(),
        "anyres_split": split,
        "overlay": str(overlay) if overlay else None,
    }
    if args.json:
        print_json(result)
        return 0
    print(f"answer: {answer}")
    print(f"kept tokens: {kept} / {total} ({100 * kept / total:.1f}%), method {config.method}")
    if overlay:
        print(f"overlay: {overlay}")
    return 0
