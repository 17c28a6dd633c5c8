"""Layers, losses, optimizers and schedules with explicit forward and backward passes.

Every layer is a :class:`Module`: ``forward`` stores what ``backward`` needs
on the layer itself, and ``backward(grad_output)`` adds parameter gradients
into each :class:`Parameter`'s ``grad`` and returns the input gradient.
"""

from convgrad.nn import init
from convgrad.nn.activation import GELU, LeakyReLU, ReLU, Sigmoid, Tanh
from convgrad.nn.container import Sequential
from convgrad.nn.conv import Conv1d, Conv2d, Conv3d, ConvTranspose1d, ConvTranspose2d, ConvTranspose3d
from convgrad.nn.dropout import Dropout
from convgrad.nn.linear import Linear
from convgrad.nn.losses import CrossEntropyLoss, MSELoss, log_softmax, softmax
from convgrad.nn.module import Module, Parameter
from convgrad.nn.normalization import BatchNorm1d, BatchNorm2d
from convgrad.nn.optim import SGD, Adam, AdamW, Optimizer
from convgrad.nn.pooling import AvgPool1d, AvgPool2d, GlobalAvgPool, MaxPool1d, MaxPool2d
from convgrad.nn.reshape import Flatten
from convgrad.nn.schedules import CosineAnnealingLR, LRScheduler, OneCycleLR, StepLR
from convgrad.nn.summary import summary

__all__ = [
    "Adam", "AdamW", "AvgPool1d", "AvgPool2d", "BatchNorm1d", "BatchNorm2d", "Conv1d", "Conv2d", "Conv3d",
    "ConvTranspose1d", "ConvTranspose2d", "ConvTranspose3d", "CosineAnnealingLR", "CrossEntropyLoss", "Dropout",
    "Flatten", "GELU", "GlobalAvgPool", "LRScheduler", "LeakyReLU", "Linear", "MSELoss", "MaxPool1d", "MaxPool2d",
    "Module", "OneCycleLR", "Optimizer", "Parameter", "ReLU", "SGD", "Sequential", "Sigmoid", "StepLR", "Tanh",
    "init", "log_softmax", "softmax", "summary",
]
