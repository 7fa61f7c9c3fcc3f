"""Selection cost per image vs the vision encoder it prunes, measured side by side in one run.

For each solver at T=576, D=1024 and B in {1, 8, 32}: the time per image of ``svd_select`` (batched), the
time per image of a Python loop of per-image ``torch.linalg.svd`` (what the reference implementations do),
and the forward time per image of a vision encoder with the exact shape of CLIP ViT-L/14-336 (random weights:
speed does not depend on them; bf16 on GPU, fp32 on CPU). Two feature sources, each printed as its own table:

* ``encoder``: that random-weight encoder's penultimate-layer output (CLS dropped). Random weights give an
  almost flat spectrum (rank ~250 at epsilon 0.9): the worst case for the randomized solver.
* ``powerlaw``: synthetic 576 x 1024 features with singular values ~ 1/i (a decaying spectrum like trained
  encoders'; labelled synthetic, not measured on CLIP weights, which cannot be downloaded here).

Targets: selection <= 1% of the encoder forward per image; batched >= 5x faster than the per-image SVD loop.

Usage: python benchmarks/bench_select.py [--batches 1,8,32] [--eps 0.9] [--budget 64]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from adaptive_svdprune.pruning import SVDPruneConfig, svd_select
from adaptive_svdprune.pruning.solvers import resolve_solver
from benchmarks._common import machine, timeit


def clip_l14_336(device: torch.device, dtype: torch.dtype) -> torch.nn.Module:
    from transformers import CLIPVisionConfig, CLIPVisionModel

    config = CLIPVisionConfig(hidden_size=1024, intermediate_size=4096, num_hidden_layers=24,
                              num_attention_heads=16, image_size=336, patch_size=14, projection_dim=768,
                              hidden_act="quick_gelu")
    torch.manual_seed(0)
    return CLIPVisionModel(config).to(device=device, dtype=dtype).eval()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batches", default="1,8,32")
    parser.add_argument("--eps", type=float, default=0.9)
    parser.add_argument("--budget", type=int, default=64)
    parser.add_argument("--encoder-images", type=int, default=2, help="images per encoder timing batch")
    parser.add_argument("--features", default="encoder,powerlaw")
    args = parser.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    batches = [int(b) for b in args.batches.split(",")]

    encoder = clip_l14_336(device, dtype)
    pixels = torch.randn(args.encoder_images, 3, 336, 336, device=device, dtype=dtype)

    @torch.inference_mode()
    def encode() -> torch.Tensor:
        return encoder(pixels, output_hidden_states=True).hidden_states[-2][:, 1:]

    feats = encode()
    encoder_per_image = timeit(encode, repeats=3) / args.encoder_images
    print(f"# machine: {machine()}")
    print(f"# encoder CLIP ViT-L/14-336 ({dtype}): {encoder_per_image * 1e3:.1f} ms/image; "
          f"features {tuple(feats.shape[1:])}; eps={args.eps}, budget={args.budget}")

    for source in args.features.split(","):
        print(f"\n## features: {source}")
        run_table(powerlaw_like(feats) if source == "powerlaw" else feats.float(), batches, args, encoder_per_image)


def powerlaw_like(feats: torch.Tensor) -> torch.Tensor:
    gen = torch.Generator().manual_seed(0)
    T, D = feats.shape[1], feats.shape[2]
    U = torch.linalg.qr(torch.randn(feats.shape[0], T, T, generator=gen)).Q
    V = torch.linalg.qr(torch.randn(feats.shape[0], D, T, generator=gen)).Q
    s = 100.0 / torch.arange(1, T + 1, dtype=torch.float32)
    return ((U * s) @ V.transpose(-1, -2)).to(feats.device)


def run_table(feats: torch.Tensor, batches: list[int], args: argparse.Namespace, encoder_per_image: float) -> None:
    print(f"{'B':>3} {'solver':>12} {'rank':>5} {'select ms/img':>14} {'% of encoder':>13} {'loop-SVD ms/img':>16} "
          f"{'speedup vs loop':>16} {'same as svd':>12}")
    for B in batches:
        reps = (B + feats.shape[0] - 1) // feats.shape[0]
        F = feats.repeat(reps, 1, 1)[:B].float()
        F = F + 1e-3 * F.std() * torch.randn_like(F)  # distinct images, same spectrum

        def loop(F: torch.Tensor = F, B: int = B) -> None:
            for b in range(B):
                torch.linalg.svd(F[b], full_matrices=False)

        loop_per_image = timeit(loop, repeats=3) / B
        exact = svd_select(F, SVDPruneConfig(args.eps, budget=args.budget, solver="svd"))
        for solver in ("svd", "gram", "lowrank", "auto"):
            config = SVDPruneConfig(args.eps, budget=args.budget, solver=solver)  # type: ignore[arg-type]
            sel = svd_select(F, config)
            per_image = timeit(lambda config=config, F=F: svd_select(F, config), repeats=3) / B
            same = all(torch.equal(a, b) for a, b in zip(sel.indices, exact.indices, strict=True))
            name = solver if solver != "auto" else f"auto={resolve_solver('auto', F)}"
            print(f"{B:>3} {name:>12} {int(sel.rank.float().mean()):>5} {per_image * 1e3:>14.2f} "
                  f"{100 * per_image / encoder_per_image:>12.2f}% {loop_per_image * 1e3:>16.2f} "
                  f"{loop_per_image / per_image:>15.1f}x {same!s:>12}")


if __name__ == "__main__":
    main()
