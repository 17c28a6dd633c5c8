"""summary(): parameter counts against PyTorch, output shapes and mode handling."""

import numpy as np
import pytest
import torch

from convgrad.nn.activation import ReLU
from convgrad.nn.container import Sequential
from convgrad.nn.conv import Conv2d, ConvTranspose2d
from convgrad.nn.dropout import Dropout
from convgrad.nn.linear import Linear
from convgrad.nn.module import Module
from convgrad.nn.normalization import BatchNorm2d
from convgrad.nn.pooling import GlobalAvgPool, MaxPool2d
from convgrad.nn.reshape import Flatten
from convgrad.nn.summary import summary


class TorchGlobalAvgPool(torch.nn.Module):
    def forward(self, x):
        return x.mean(dim=(2, 3))


def build_models():
    ours = Sequential(
        Conv2d(3, 8, 3, padding=1),
        BatchNorm2d(8),
        ReLU(),
        MaxPool2d(2),
        Conv2d(8, 16, 3, groups=4, bias=False),
        ConvTranspose2d(16, 4, 2, stride=2),
        GlobalAvgPool(),
        Dropout(0.5),
        Linear(4, 10),
    )
    theirs = torch.nn.Sequential(
        torch.nn.Conv2d(3, 8, 3, padding=1),
        torch.nn.BatchNorm2d(8),
        torch.nn.ReLU(),
        torch.nn.MaxPool2d(2),
        torch.nn.Conv2d(8, 16, 3, groups=4, bias=False),
        torch.nn.ConvTranspose2d(16, 4, 2, stride=2),
        TorchGlobalAvgPool(),
        torch.nn.Dropout(0.5),
        torch.nn.Linear(4, 10),
    )
    return ours, theirs


def table_rows(text):
    # Rows between the two rules, split on runs of two or more spaces.
    lines = text.splitlines()
    rules = [i for i, line in enumerate(lines) if set(line) == {"-"}]
    return [[cell for cell in line.split("  ") if cell.strip()] for line in lines[rules[0] + 1 : rules[1]]]


def test_summary_parameter_counts_match_torch():
    ours, theirs = build_models()
    text = summary(ours, (3, 12, 12))

    rows = table_rows(text)
    torch_counts = [sum(p.numel() for p in module.parameters()) for module in theirs]
    assert [int(row[-1].strip().replace(",", "")) for row in rows] == torch_counts
    total = sum(p.numel() for p in theirs.parameters())
    assert f"Total params: {total:,}" in text


def test_summary_output_shapes_match_torch():
    ours, theirs = build_models()
    rows = table_rows(summary(ours, (3, 12, 12)))

    x = torch.zeros((1, 3, 12, 12))
    theirs.eval()
    expected = []
    with torch.no_grad():
        for module in theirs:
            x = module(x)
            expected.append(tuple(x.shape))
    assert [row[2].strip() for row in rows] == [str(shape) for shape in expected]
    assert [row[1].strip() for row in rows][:3] == ["Conv2d", "BatchNorm2d", "ReLU"]


def test_summary_restores_modes_and_running_stats():
    ours, _ = build_models()
    ours.train()
    ours[7].eval()
    running_mean = ours[1].running_mean.copy()
    summary(ours, (3, 8, 8))
    assert ours.training and ours[1].training
    assert not ours[7].training
    np.testing.assert_array_equal(ours[1].running_mean, running_mean)
    assert "forward" not in ours[0].__dict__


def test_summary_restores_forward_after_failure():
    model = Sequential(Linear(4, 2), Linear(3, 1))
    with pytest.raises(ValueError):
        summary(model, (4,))
    assert all("forward" not in module.__dict__ for module in model)
    assert model.training


def test_summary_of_nested_model_lists_leaves_once():
    class Block(Module):
        def __init__(self):
            super().__init__()
            self.conv = Conv2d(2, 2, 3, padding=1)
            self.act = ReLU()

        def forward(self, x):
            return self.act(self.conv(x))

    shared = Block()
    model = Sequential(shared, Flatten())
    text = summary(model, (2, 4, 4))
    names = [row[0].strip() for row in table_rows(text)]
    assert names == ["0.conv", "0.act", "1"]


def test_summary_rejects_bad_input_shape():
    with pytest.raises(ValueError, match="input_shape"):
        summary(Linear(2, 2), (0, 2))
