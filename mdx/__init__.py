"""mdx: medical image classifiers from training to a phone or a Raspberry Pi, with parity proven at every step."""

__version__ = "0.1.0"
