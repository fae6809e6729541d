"""The borgstore version whose API the drop-in provides."""

__version__ = version = "0.7.0"
