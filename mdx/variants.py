"""The one enum that names model variants everywhere: folder names, JSON values, CLI flags."""

from enum import Enum


class Quantization(str, Enum):
    FP32 = "fp32"
    FP16 = "fp16"
    DYNAMIC = "dynamic"
    INT8 = "int8"
    INT8_FALLBACK = "int8-fallback"

    def __str__(self) -> str:
        return self.value
