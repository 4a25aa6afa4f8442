"""Facts about the machine and the packages, recorded with every measured figure."""

from __future__ import annotations

import os
import platform
import sys
from importlib import metadata
from typing import Any


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as handle:
            for line in handle:
                key, _, value = line.partition(":")
                if key.strip() in ("model name", "Hardware", "Model"):
                    return value.strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


# The instruction-set extensions that decide which XNNPACK kernels run, and so whether int8 beats fp32:
# VNNI (x86) and dot-product / i8mm (ARM) are int8 multiply-accumulate instructions; AVX512-BF16 and AMX-BF16
# decide whether bfloat16 training is native or emulated (benchmarks/train_step_profile.py).
KERNEL_FLAGS = ("avx2", "fma", "avx512f", "avx512_vnni", "avx_vnni", "amx_int8", "avx512_bf16", "amx_bf16", "neon",
                "asimd", "asimddp", "i8mm", "sve")


def cpu_flags() -> list[str]:
    """Which of KERNEL_FLAGS /proc/cpuinfo lists (empty where there is no /proc/cpuinfo)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as handle:
            for line in handle:
                key, _, value = line.partition(":")
                if key.strip() in ("flags", "Features"):
                    present = set(value.split())
                    return [flag for flag in KERNEL_FLAGS if flag in present]
    except OSError:
        pass
    return []


def machine_facts() -> dict[str, Any]:
    return {
        "hostname": platform.node(),
        "cpu": cpu_model(),
        "cpu_flags": cpu_flags(),
        "cores": os.cpu_count(),
        "arch": platform.machine(),
        "os": f"{platform.system()} {platform.release()}",
        "python": sys.version.split()[0],
    }


def package_versions(names: tuple[str, ...]) -> dict[str, str | None]:
    """Installed distribution versions, None for those not installed."""
    versions: dict[str, str | None] = {}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


RELEVANT_PACKAGES = (
    "mdx",
    "numpy",
    "pillow",
    "tensorflow",
    "tensorflow-cpu",
    "tf-keras",
    "tensorflow-model-optimization",
    "ai-edge-litert",
    "tflite-runtime",
)
