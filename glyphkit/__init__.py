"""glyphkit: learn handwritten-character recognition hands-on, on EMNIST, with PyTorch."""

__version__ = "0.2.0"

from glyphkit.config import PRESETS, Config, ConfigError, apply_preset  # noqa: E402,F401
