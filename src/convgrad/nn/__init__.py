"""Layers, losses and optimizers with explicit forward and backward passes."""

from convgrad.nn.module import Module, Parameter

__all__ = ["Module", "Parameter"]
