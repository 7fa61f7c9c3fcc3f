"""``adaptive-svdprune shapes``: write a procedural shapes question set in the official GQA or TextVQA layout."""

from __future__ import annotations

import argparse

__all__ = ["HELP", "add_arguments", "run"]

HELP = "Generate a shapes-world VQA split (GQA or TextVQA layout, with per-object patch masks in objects.json)."

_FORMATS = ("gqa", "textvqa")
_SPLITS = ("train", "val", "test")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``shapes`` options to ``parser``."""
    parser.add_argument("--out", required=True, help="output folder (created); pass it as --data to eval/search")
    parser.add_argument("--format", choices=_FORMATS, default="gqa",
                        help="gqa: DIR/{split}_questions.json + DIR/images/; textvqa: DIR/TextVQA_0.5.1_{split}.json "
                        "+ DIR/train_images/ (default gqa)")
    parser.add_argument("--split", choices=_SPLITS, default="test",
                        help="test (default) writes the file each loader reads by default: GQA testdev_balanced, "
                        "TextVQA val; val -> GQA val_balanced / TextVQA val; train -> train_balanced / train")
    parser.add_argument("--n", type=int, default=400, help="number of questions (default 400)")
    parser.add_argument("--seed", type=int, default=0, help="data seed: same seed, same files (default 0)")
    parser.add_argument("--json", action="store_true", help="print what was written as JSON")


def run(args: argparse.Namespace) -> int:
    """Write the split and print where it went."""
    from adaptive_svdprune.commands._output import print_json
    from adaptive_svdprune.shapes.writer import write_split

    written = write_split(args.out, args.format, args.split, n=args.n, seed=args.seed)
    summary = {"out": str(written.root), "format": args.format, "split": args.split,
               "questions_file": str(written.questions_file), "objects_file": str(written.objects_file),
               "questions": written.n_questions, "images": written.n_images, "seed": args.seed}
    if args.json:
        print_json(summary)
    else:
        print(f"wrote {written.n_questions} {args.format} questions on {written.n_images} images to "
              f"{written.root} ({written.questions_file.name}, {written.objects_file.name}); "
              f"evaluate with: --task {args.format} --data {written.root}")
    return 0
