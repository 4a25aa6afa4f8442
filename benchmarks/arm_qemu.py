"""The copied harness on emulated ARM boards: do arm64 and 32-bit armhf give the x86 outputs?

For each architecture: build a Debian rootfs with debootstrap (qemu-user-static runs its second stage
through binfmt_misc; /sys is never bind-mounted), install an interpreter there, copy `runtime/`, the
run's models and a few dozen preprocessed test images, run `python -m runtime evaluate` on each
model inside the rootfs and on this machine with the same runtime package and inputs, and compare
the probabilities.

- arm64: Python 3.11 venv with numpy, pillow and ai-edge-litert from PyPI (a 64-bit Raspberry Pi OS).
- armhf: Debian's python3-numpy (1.x) and tflite-runtime 2.14, its last release (32-bit Pi OS).

Timings under emulation are recorded as `emulated_p50_ms` only to show the model runs: they say
nothing about a device. Needs root (debootstrap, chroot, binfmt_misc) and the Debian packages
debootstrap and qemu-user-static:

    apt-get install debootstrap qemu-user-static
    .venv/bin/mdx convert runs/demo --fp16 --out runs/demo/convert-fp16     # when the run has no fp16
    .venv/bin/python benchmarks/arm_qemu.py runs/demo --extra-model runs/demo/convert-fp16/fp16/model.tflite
    -> benchmarks/results/<hostname>-<simd>/arm_qemu.json

Rootfs folders are kept under --work (about 600 MB each) and reused by the next run.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import ssl
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import context, load_test_split, run_files, save

REPO = Path(__file__).resolve().parent.parent
INSIDE = Path("/opt/mdx")  # the harness's folder inside each rootfs
ARCHES: dict[str, dict[str, Any]] = {
    "arm64": {"qemu": "aarch64", "include": ["python3-venv", "python3-pip"], "system_site": False,
              "pip": ["numpy", "pillow", "ai-edge-litert"], "runtime": "litert",
              "check": "import numpy, ai_edge_litert.interpreter"},
    "armhf": {"qemu": "arm", "include": ["python3-venv", "python3-pip", "python3-numpy", "python3-pil"],
              "system_site": True, "pip": ["tflite-runtime==2.14.0"], "runtime": "tflite-runtime",
              "check": "import numpy, tflite_runtime.interpreter"},
}


def _run(argv: list[str], what: str, timeout: float = 3600, **kwargs: Any) -> str:
    started = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False, **kwargs)
    if done.returncode != 0:
        raise SystemExit(f"error: {what} failed (exit {done.returncode}): {(done.stderr or done.stdout)[-1500:]}")
    print(f"arm: {what} in {time.perf_counter() - started:.0f} s", flush=True)
    return done.stdout


def _apt_source() -> tuple[str, str]:
    """This machine's Debian mirror and release, read from its apt sources (never a hard-coded host)."""
    codename = next(line.split("=", 1)[1].strip() for line in Path("/etc/os-release").read_text().splitlines()
                    if line.startswith("VERSION_CODENAME="))
    for path in sorted(Path("/etc/apt").glob("sources.list.d/*.sources")) + [Path("/etc/apt/sources.list")]:
        if not path.is_file():
            continue
        for line in path.read_text().splitlines():
            words = line.split()
            if line.startswith("URIs:") and len(words) > 1 and "security" not in words[1]:
                return words[1], codename
            if line.startswith("deb ") and len(words) > 2 and "security" not in words[1]:
                return words[1], codename
    raise SystemExit("error: no Debian mirror in /etc/apt; this script needs a Debian host")


def _enable_binfmt(qemu: str) -> None:
    """Register qemu-<arch> with the kernel (fix-binary), so the rootfs's binaries run in a chroot."""
    folder = Path("/proc/sys/fs/binfmt_misc")
    if not (folder / "register").exists():
        _run(["mount", "-t", "binfmt_misc", "binfmt_misc", str(folder)], "mounting binfmt_misc")
    if (folder / f"qemu-{qemu}").exists():
        return
    rule = Path(f"/usr/lib/binfmt.d/qemu-{qemu}.conf")
    if not rule.is_file():
        raise SystemExit(f"error: {rule} not found; apt-get install qemu-user-static")
    (folder / "register").write_text(rule.read_text().strip())


def _rootfs(arch: str, spec: dict[str, Any], work: Path) -> Path:
    """A Debian rootfs for `arch` with a venv at INSIDE/venv that imports the interpreter."""
    root = work / arch
    venv_python = root / str(INSIDE / "venv" / "bin" / "python").lstrip("/")
    if not (root / "usr" / "bin" / "python3").exists():
        mirror, codename = _apt_source()
        shutil.rmtree(root, ignore_errors=True)
        _run(["debootstrap", f"--arch={arch}", "--variant=minbase", "--include=" + ",".join(spec["include"]),
              codename, str(root), mirror], f"{arch}: debootstrap {codename}", timeout=5400)
    shutil.copy("/etc/resolv.conf", root / "etc" / "resolv.conf")  # pip inside the rootfs reaches PyPI
    # ... trusting what this machine trusts (a TLS-inspecting proxy's CA may be only in the host's bundle); the
    # bundle goes where the inherited SSL_CERT_FILE / PIP_CERT / REQUESTS_CA_BUNDLE variables point
    bundle = Path(ssl.get_default_verify_paths().cafile or "/etc/ssl/certs/ca-certificates.crt")
    (root / "etc" / "ssl" / "certs").mkdir(parents=True, exist_ok=True)
    shutil.copy(bundle, root / "etc" / "ssl" / "certs" / "ca-certificates.crt")
    if not venv_python.exists():
        venv = ["python3", "-m", "venv", str(INSIDE / "venv")] + (["--system-site-packages"] if spec["system_site"] else [])
        _run(["chroot", str(root), *venv], f"{arch}: venv")
    works = ["chroot", str(root), str(INSIDE / "venv" / "bin" / "python"), "-c", spec["check"]]
    if subprocess.run(works, capture_output=True, check=False).returncode != 0:
        _run(["chroot", str(root), str(INSIDE / "venv" / "bin" / "pip"), "install", "--quiet", *spec["pip"]], f"{arch}: pip install {' '.join(spec['pip'])}", timeout=5400)
    return root


def _versions(root: Path) -> dict[str, str]:
    code = ("import json, platform, numpy; from importlib import metadata as m\n"
            "names = ('ai-edge-litert', 'tflite-runtime')\n"
            "found = {n: m.version(n) for n in names if any(d.metadata['Name'] == n for d in m.distributions())}\n"
            "print(json.dumps({'python': platform.python_version(), 'machine': platform.machine(), "
            "'numpy': numpy.__version__, **found}))")
    return json.loads(_run(["chroot", str(root), str(INSIDE / "venv" / "bin" / "python"), "-c", code], "versions"))


def _on_board(arch: str, root: Path, models: dict[str, Path], inputs: np.ndarray, labels: np.ndarray,
              flags: str) -> dict[str, float]:
    """Copy the harness, models and inputs into the rootfs and run evaluate and bench there; emulated p50s."""
    inside = root / str(INSIDE).lstrip("/")
    shutil.rmtree(inside / "runtime", ignore_errors=True)
    shutil.copytree(REPO / "runtime", inside / "runtime", ignore=shutil.ignore_patterns("__pycache__"))
    (inside / "models").mkdir(exist_ok=True)
    for name, model in models.items():
        shutil.copy(model, inside / "models" / f"{name}.tflite")
    np.savez(inside / "inputs.npz", inputs=inputs, labels=labels)
    shutil.rmtree(inside / "out", ignore_errors=True)
    runtime = ARCHES[arch]["runtime"]
    emulated = {}
    for name in models:
        harness = f"cd {INSIDE} && venv/bin/python -m runtime"
        _run(["chroot", str(root), "/bin/sh", "-c", (f"{harness} evaluate models/{name}.tflite inputs.npz "
              f"--runtime {runtime} --n-boot 0 --out out/{name}{flags}")], f"{arch}: evaluate {name}")
        _run(["chroot", str(root), "/bin/sh", "-c", (f"{harness} bench models/{name}.tflite --runtime {runtime} "
              f"--warmup 1 --runs 5 --json out/{name}/bench.json{flags}")], f"{arch}: bench {name}")
        emulated[name] = json.loads((inside / "out" / name / "bench.json").read_text())["timings"][0]["p50_ms"]
    return emulated


def _on_x86(work: Path, models: dict[str, Path], inputs: np.ndarray, labels: np.ndarray, runtime: str,
            flags: str) -> Path:
    """The same `python -m runtime evaluate` of each model here with the board's runtime; the output folder.

    tflite-runtime runs in the side venv that `make test` builds (.venv-tflite), as it needs numpy<2.
    """
    python = sys.executable if runtime == "litert" else str(REPO / ".venv-tflite" / "bin" / "python")
    if not Path(python).is_file():
        raise SystemExit(f"error: {python} not found; run .ci/install-side-runtimes.sh first")
    folder = work / f"x86-{runtime}"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    np.savez(folder / "inputs.npz", inputs=inputs, labels=labels)
    shutil.copytree(REPO / "runtime", folder / "runtime", ignore=shutil.ignore_patterns("__pycache__"))
    for name, model in models.items():
        _run([python, "-m", "runtime", "evaluate", str(model.resolve()), "inputs.npz", "--runtime", runtime,
              "--n-boot", "0", "--out", f"out/{name}", *flags.split()], f"x86 {runtime}: evaluate {name}", cwd=folder)
    return folder / "out"


def _compare(x86_out: Path, board_out: Path, name: str) -> dict[str, Any]:
    with np.load(x86_out / name / "predictions.npz") as mine, np.load(board_out / name / "predictions.npz") as theirs:
        here, there = mine["probs"], theirs["probs"]
    diff = np.abs(here.astype(np.float64) - there.astype(np.float64))
    return {"images": len(here), "bit_identical": bool(np.array_equal(here, there)), "max_abs_diff": float(diff.max()),
            "top1_agreement": float(np.mean(here.argmax(1) == there.argmax(1)))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path, help="an `mdx pipeline` --out folder")
    parser.add_argument("--arch", default="arm64,armhf", help="comma-separated: arm64, armhf")
    parser.add_argument("--extra-model", type=Path, action="append", default=[], help="more .tflite files (e.g. fp16)")
    parser.add_argument("--images", type=int, default=32, help="test images to compare (evenly spaced; emulation is slow)")
    parser.add_argument("--no-xnnpack", action="store_true",
                        help="run both sides on TFLite's builtin kernels (is int8 bit-exact without XNNPACK?)")
    parser.add_argument("--work", type=Path, default=Path("/var/tmp/mdx-arm"), help="where the rootfs folders live")
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("error: needs root (debootstrap, chroot, binfmt_misc); run it with sudo")
    files = run_files(args.run)
    models = dict(files["models"]) | {extra.parent.name: extra for extra in args.extra_model}
    inputs, labels, _ = load_test_split(files, limit=args.images)
    facts = context()
    results: dict[str, Any] = {}
    flags = " --no-xnnpack" if args.no_xnnpack else ""
    for arch in args.arch.split(","):
        _enable_binfmt(ARCHES[arch]["qemu"])
        root = _rootfs(arch, ARCHES[arch], args.work)
        emulated = _on_board(arch, root, models, inputs, labels, flags)
        board_out = root / str(INSIDE).lstrip("/") / "out"
        x86_out = _on_x86(args.work, models, inputs, labels, ARCHES[arch]["runtime"], flags)
        variants = {name: {**_compare(x86_out, board_out, name), "emulated_p50_ms": emulated[name]} for name in models}
        results[arch] = {"versions": _versions(root), "runtime": ARCHES[arch]["runtime"], "variants": variants}
        for name, figures in variants.items():
            print(f"arm: {arch} {name}: bit-identical {figures['bit_identical']}, max |dp| {figures['max_abs_diff']:.3g}, "
                  f"top-1 agreement {figures['top1_agreement']:.4f}", flush=True)
    payload = {**facts, "run": str(args.run), "models": {k: str(v) for k, v in models.items()},
               "xnnpack": not args.no_xnnpack, "figures": results, "note": "emulated_p50_ms is qemu user-mode emulation, never device latency"}
    print(f"arm: saved {save('arm_qemu_no_xnnpack' if args.no_xnnpack else 'arm_qemu', payload)}")


if __name__ == "__main__":
    main()
