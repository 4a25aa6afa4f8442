"""The preprocessing spec shared by training, calibration, evaluation and the Android app.

One definition of "image -> model input" is the first condition of parity: the same decoder, the same
resize, the same normalization `(pixel - mean) / std` everywhere.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .errors import UsageError


@dataclass(frozen=True)
class Preprocessing:
    """Input size (square, pixels) and per-channel normalization `(pixel - mean) / std` of RGB pixels."""

    size: int = 224
    mean: tuple[float, float, float] = (127.5, 127.5, 127.5)
    std: tuple[float, float, float] = (127.5, 127.5, 127.5)

    def __post_init__(self) -> None:
        if not isinstance(self.size, int) or not 16 <= self.size <= 4096:
            raise UsageError(f"preprocessing size {self.size!r} is invalid; expected an integer from 16 to 4096")
        for name in ("mean", "std"):
            values = tuple(float(v) for v in getattr(self, name))
            if len(values) != 3:
                raise UsageError(f"preprocessing {name} {values} must have 3 values (R, G, B)")
            object.__setattr__(self, name, values)
        if any(s <= 0 for s in self.std):
            raise UsageError(f"preprocessing std {self.std} must be positive")

    def normalize(self, images: np.ndarray) -> np.ndarray:
        """uint8 (N, H, W, 3) or (H, W, 3) pixels -> float32 model input."""
        mean = np.asarray(self.mean, dtype=np.float32)
        std = np.asarray(self.std, dtype=np.float32)
        out = np.array(images, dtype=np.float32)  # a copy: subtracted from and divided in place
        if out.ndim == 0 or out.shape[-1] != mean.shape[0]:  # broadcasting would change the shape
            return (out - mean) / std
        out -= mean
        out /= std
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"size": self.size, "mean": list(self.mean), "std": list(self.std)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Preprocessing:
        unknown = sorted(set(data) - {"size", "mean", "std"})
        if unknown:
            raise UsageError(f"unknown preprocessing key(s) {unknown}; expected size, mean, std")
        return cls(size=int(data.get("size", 224)), mean=tuple(data.get("mean", (127.5,) * 3)),
                   std=tuple(data.get("std", (127.5,) * 3)))


# MobileNetV2's own preprocessing: pixels scaled to [-1, 1].
MOBILENET_V2 = Preprocessing(size=224, mean=(127.5, 127.5, 127.5), std=(127.5, 127.5, 127.5))

# Named conventions for a model that records no preprocessing (`--preset`), in pixel units (0..255):
# "tf" is Keras' preprocess_input mode "tf" (MobileNet, EfficientNet-Lite: [-1, 1]), "unit" scales to
# [0, 1], "imagenet" is the ImageNet mean/std of torchvision and Keras' "torch" mode.
PRESETS: dict[str, tuple[tuple[float, float, float], tuple[float, float, float]]] = {
    "tf": ((127.5, 127.5, 127.5), (127.5, 127.5, 127.5)),
    "unit": ((0.0, 0.0, 0.0), (255.0, 255.0, 255.0)),
    "imagenet": ((123.675, 116.28, 103.53), (58.395, 57.12, 57.375)),
}
PRESET_HELP = ("Normalization of a model that records none: tf ([-1, 1]), unit ([0, 1]) or imagenet "
               "(ImageNet mean/std); conflicts with --mean/--std.")


def preset_mean_std(name: str) -> tuple[tuple[float, float, float], tuple[float, float, float]]:
    """(mean, std) of a named preset.

    Raises:
        UsageError: the name is not one of PRESETS.
    """
    if name not in PRESETS:
        raise UsageError(f"--preset {name!r} is unknown; choose one of {', '.join(PRESETS)}")
    return PRESETS[name]
