"""Draw convgrad/PyTorch time ratios from a bench_conv.py JSON file.

Usage, from the repository root::

    python benchmarks/plot_ratios.py RESULTS.json [docs/benchmark_ratios.png]

One group of bars per case: forward, input gradient, weight gradient and
their total, as the ratio of medians. Lines mark 1 (parity), 1.5 (the
target for the total) and 2 (the limit for a single pass).
"""

from __future__ import annotations

import argparse
import json
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

PASSES = ("forward", "input_grad", "weight_grad", "total")


def build_parser() -> argparse.ArgumentParser:
    """Build the argument parser of this script."""
    parser = argparse.ArgumentParser(
        prog="plot_ratios.py",
        description=(
            "Draw one group of bars per case from a bench_conv.py JSON file: the convgrad/PyTorch ratio of "
            "median times for forward, input gradient, weight gradient and their total."
        ),
    )
    parser.add_argument("results", metavar="RESULTS.json", help="JSON file written by benchmarks/bench_conv.py")
    parser.add_argument(
        "target",
        metavar="OUTPUT.png",
        nargs="?",
        default="docs/benchmark_ratios.png",
        help="image file to write (default: docs/benchmark_ratios.png)",
    )
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    target = args.target
    try:
        with open(args.results) as handle:
            data = json.load(handle)
    except (OSError, json.JSONDecodeError) as error:
        parser.error(f"cannot read {args.results}: {error}")

    cases = list(dict.fromkeys(row["case"] for row in data["results"]))
    ratio = {(row["case"], row["pass_"]): row["convgrad_s"] / row["torch_s"] for row in data["results"]}
    positions = np.arange(len(cases))
    width = 0.2

    figure, axes = plt.subplots(figsize=(11, 4.5))
    for index, name in enumerate(PASSES):
        values = [ratio.get((case, name), np.nan) for case in cases]
        axes.bar(positions + (index - 1.5) * width, values, width, label=name.replace("_", " "))
    for level, style in ((1.0, "-"), (1.5, "--"), (2.0, ":")):
        axes.axhline(level, color="black", linewidth=0.8, linestyle=style)
    axes.set_xticks(positions)
    axes.set_xticklabels(cases, rotation=30, ha="right")
    axes.set_ylabel("convgrad time / PyTorch time (median)")
    axes.set_title("convgrad vs PyTorch, float32, equal thread counts (lower is better)")
    axes.legend(ncol=4, fontsize="small")
    figure.text(0.01, 0.01, data["machine"][:180], fontsize=6)
    figure.tight_layout(rect=(0, 0.03, 1, 1))
    figure.savefig(target, dpi=120)
    print(f"wrote {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
