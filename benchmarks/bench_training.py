"""Train a convgrad preset and the same network in PyTorch, side by side.

For each seed, the script trains the preset with convgrad's trainer (the code
behind ``convgrad train``), then builds the same architecture in PyTorch,
loads convgrad's initial weights into it and trains it with the same data
normalization, batch size, optimizer (AdamW), one-cycle schedule and number
of steps. It prints test accuracy and seconds per epoch for both, their means
and spreads over seeds, and the time ratio convgrad / PyTorch.

Usage::

    python benchmarks/bench_training.py --dataset mnist1d --seeds 0 1 2
    python benchmarks/bench_training.py --dataset fashion-mnist --seeds 0 --epochs 5

Both libraries get the same number of threads (``--threads``, default: the
OpenBLAS thread count). The runs are sequential, not interleaved, because
each lasts minutes; on a machine shared with other work, rerun when it is idle.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import statistics
import sys
import tempfile
import time

import numpy as np


def torch_equivalent(model):
    """Build a ``torch.nn.Sequential`` with the same layers and copies of the parameters."""
    import torch
    from torch import nn

    class GlobalAvgPool(nn.Module):
        def forward(self, x):
            return x.mean(dim=tuple(range(2, x.ndim)))

    layers = []
    for layer in model.children():
        kind = type(layer).__name__
        if kind in ("Conv1d", "Conv2d", "Conv3d"):
            cls = getattr(nn, kind)
            layers.append(cls(layer.in_channels, layer.out_channels, layer.kernel_size, stride=layer.stride,
                              padding=layer.padding, dilation=layer.dilation, groups=layer.groups,
                              bias=layer.bias is not None, padding_mode=layer.padding_mode))
        elif kind in ("BatchNorm1d", "BatchNorm2d"):
            layers.append(getattr(nn, kind)(layer.num_features, eps=layer.eps, momentum=layer.momentum))
        elif kind in ("MaxPool1d", "MaxPool2d"):
            layers.append(getattr(nn, kind)(layer.kernel_size, stride=layer.stride, padding=layer.padding))
        elif kind == "ReLU":
            layers.append(nn.ReLU())
        elif kind == "GlobalAvgPool":
            layers.append(GlobalAvgPool())
        elif kind == "Flatten":
            layers.append(nn.Flatten())
        elif kind == "Dropout":
            layers.append(nn.Dropout(layer.p))
        elif kind == "Linear":
            layers.append(nn.Linear(layer.in_features, layer.out_features, bias=layer.bias is not None))
        else:
            raise ValueError(f"no PyTorch equivalent is defined for layer type {kind}")

    torch_model = nn.Sequential(*layers)
    state = {key: torch.tensor(np.asarray(value)) for key, value in model.state_dict().items()}
    torch_model.load_state_dict(state, strict=True)
    return torch_model


def train_torch(model, dataset, epochs, batch_size, lr, weight_decay, seed):
    """Train ``model`` like convgrad's trainer does.

    Returns the final test accuracy, the median seconds per epoch and the total seconds.
    """
    import torch

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    x_train = torch.from_numpy(np.ascontiguousarray(dataset.x_train, dtype=np.float32))
    y_train = torch.from_numpy(dataset.y_train.astype(np.int64))
    x_test = torch.from_numpy(np.ascontiguousarray(dataset.x_test, dtype=np.float32))
    y_test = torch.from_numpy(dataset.y_test.astype(np.int64))
    steps_per_epoch = math.ceil(len(x_train) / batch_size)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=lr, total_steps=epochs * steps_per_epoch)
    loss_fn = torch.nn.CrossEntropyLoss()

    epoch_seconds = []
    begin = time.perf_counter()
    for _ in range(epochs):
        start = time.perf_counter()
        model.train()
        order = torch.from_numpy(rng.permutation(len(x_train)))
        for first in range(0, len(x_train), batch_size):
            index = order[first:first + batch_size]
            optimizer.zero_grad(set_to_none=False)
            loss = loss_fn(model(x_train[index]), y_train[index])
            loss.backward()
            optimizer.step()
            schedule.step()
        accuracy = evaluate_torch(model, x_test, y_test)
        epoch_seconds.append(time.perf_counter() - start)
    return accuracy, statistics.median(epoch_seconds), time.perf_counter() - begin


def evaluate_torch(model, x, y, batch_size=1000):
    import torch

    model.eval()
    correct = 0
    with torch.no_grad():
        for first in range(0, len(x), batch_size):
            correct += int((model(x[first:first + batch_size]).argmax(1) == y[first:first + batch_size]).sum())
    return correct / len(x)


def train_convgrad(config):
    """Train with convgrad's trainer.

    Returns the final test accuracy, the median seconds per epoch, the total
    seconds, the model reset to its initial weights, and the training run.
    """
    from convgrad.run import prepare_training

    run = prepare_training(config)
    initial = {key: value.copy() for key, value in run.trainer.model.state_dict().items()}
    start = time.perf_counter()
    history = run.trainer.fit()
    total = time.perf_counter() - start
    model = run.trainer.model
    model.load_state_dict(initial)
    accuracy = history[-1].test_acc
    seconds = [record.seconds for record in history]
    return accuracy, statistics.median(seconds), total, model, run


def blas_threads() -> int:
    try:
        from threadpoolctl import threadpool_info

        counts = [pool["num_threads"] for pool in threadpool_info() if pool.get("user_api") == "blas"]
        return counts[0] if counts else 1
    except ImportError:
        import os

        return int(os.environ.get("OPENBLAS_NUM_THREADS", os.cpu_count() or 1))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", default="mnist1d", help="dataset name as in `convgrad train` (default: mnist1d)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="seeds to train with (default: 0 1 2)")
    parser.add_argument("--epochs", type=int, default=None, help="epochs (default: the dataset's default)")
    parser.add_argument("--data-dir", default=None, help="directory of the IDX files for the image datasets")
    parser.add_argument("--limit-train", type=int, default=None, help="train on the first N samples only")
    parser.add_argument("--threads", type=int, default=None, help="threads for both libraries (default: BLAS threads)")
    parser.add_argument("--skip-torch", action="store_true", help="train only with convgrad")
    parser.add_argument("--torch-only", action="store_true",
                        help="build the convgrad preset for its initial weights but train only the PyTorch copy")
    parser.add_argument("--json", default=None, help="also write the results to this JSON file")
    args = parser.parse_args(argv)

    import torch

    from convgrad.run import TrainConfig

    threads = args.threads or blas_threads()
    torch.set_num_threads(threads)
    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(threads)
    except ImportError:
        pass

    print(f"# {time.strftime('%Y-%m-%d %H:%M %Z')}  python {platform.python_version()}  numpy {np.__version__}  "
          f"torch {torch.__version__}  threads {threads}  cpu {platform.processor() or platform.machine()}")
    rows = []
    for seed in args.seeds:
        with tempfile.TemporaryDirectory() as out:
            config = TrainConfig(dataset=args.dataset, epochs=args.epochs, seed=seed, out=out,
                                 data_dir=args.data_dir, limit_train=args.limit_train)
            if args.torch_only:
                from convgrad.run import prepare_training

                run = prepare_training(config)
                initial_model = run.trainer.model
                row = {"seed": seed}
            else:
                accuracy, seconds, total, initial_model, run = train_convgrad(config)
                row = {"seed": seed, "convgrad_accuracy": accuracy, "convgrad_epoch_seconds": seconds,
                       "convgrad_total_seconds": total}
        if not args.skip_torch:
            config = run.config
            torch_model = torch_equivalent(initial_model)
            # OpenBLAS threads still spinning after NumPy work slow PyTorch's own pool down.
            time.sleep(1.0)
            torch_accuracy, torch_seconds, torch_total = train_torch(torch_model, run.dataset, config.epochs, config.batch_size,
                                                        config.lr, config.weight_decay, seed)
            row.update(torch_accuracy=torch_accuracy, torch_epoch_seconds=torch_seconds,
                       torch_total_seconds=torch_total)
            if "convgrad_epoch_seconds" in row:
                row["time_ratio"] = row["convgrad_epoch_seconds"] / torch_seconds
        rows.append(row)
        print(json.dumps(row), flush=True)

    def spread(key):
        values = [row[key] for row in rows if key in row]
        if not values:
            return None
        return statistics.mean(values), (statistics.stdev(values) if len(values) > 1 else 0.0), min(values), max(values)

    print(f"\n{'':24} {'mean':>9} {'std':>9} {'min':>9} {'max':>9}")
    summary = {}
    keys = ("convgrad_accuracy", "torch_accuracy", "convgrad_epoch_seconds", "torch_epoch_seconds",
            "convgrad_total_seconds", "torch_total_seconds", "time_ratio")
    for key in keys:
        values = spread(key)
        if values is not None:
            summary[key] = dict(zip(("mean", "std", "min", "max"), values))
            print(f"{key:24} " + " ".join(f"{v:9.4f}" for v in values))
    if args.json:
        with open(args.json, "w") as handle:
            json.dump({"dataset": args.dataset, "threads": threads, "rows": rows, "summary": summary}, handle, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
