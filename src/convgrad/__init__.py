"""convgrad: N-dimensional convolution in NumPy with exact gradients."""

__version__ = "0.1.0"
