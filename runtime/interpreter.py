"""Find a TFLite interpreter and load a model with it, refusing bad files before the interpreter sees them.

Three packages provide the same `Interpreter` API; `auto` takes the first installed, in this order:
ai-edge-litert (`ai_edge_litert`), tflite-runtime (`tflite_runtime`, numpy<2 only), and TensorFlow's
`tensorflow.lite` as the last resort (it imports all of TensorFlow).
"""

from __future__ import annotations

import importlib
import json
import signal
import subprocess
import sys
import warnings
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from .errors import ModelLoadError, UsageError

RUNTIMES = ("auto", "litert", "tflite-runtime", "tf")
# name -> (module to import, distribution name for its version)
_PACKAGES = {
    "litert": ("ai_edge_litert.interpreter", "ai-edge-litert"),
    "tflite-runtime": ("tflite_runtime.interpreter", "tflite-runtime"),
    "tf": ("tensorflow", "tensorflow"),
}
_AUTO_ORDER = ("litert", "tflite-runtime", "tf")
_IDENTIFIER = b"TFL3"
# The smallest valid TFLite flatbuffer (root offset, identifier, a vtable and an empty table) is
# well over 16 bytes; below that it is certainly cut short.
_MIN_BYTES = 16
# Heap allowed to the probe child beyond 16x the model's size: a corrupt tensor shape can make
# allocate_tensors ask for many GB (12 GB seen for a fuzzed 2 KB model); capped, it fails at once.
PROBE_HEAP_BYTES = 4 << 30


@dataclass(frozen=True)
class RuntimeInfo:
    """Which interpreter ran: `name` as in RUNTIMES, its distribution `package` and `version`."""

    name: str
    package: str
    version: str

    def to_dict(self) -> dict[str, str]:
        return asdict(self)

    def __str__(self) -> str:
        return f"{self.package} {self.version}"


def validate_model_file(model_path: Path) -> Path:
    """Check that `model_path` is a plausible .tflite file: present, non-empty, "TFL3" at bytes 4..8.

    Raises:
        ModelLoadError: the file is missing, a folder, empty, truncated, or not a TFLite flatbuffer.
    """
    path = Path(model_path)
    if not path.exists():
        raise ModelLoadError(f"{path}: model file not found; check the path (expected a .tflite file)")
    if path.is_dir():
        raise ModelLoadError(f"{path}: is a folder; pass the .tflite file inside it (e.g. {path / 'model.tflite'})")
    size = path.stat().st_size
    if size == 0:
        raise ModelLoadError(f"{path}: model file is empty (0 bytes); re-export or copy it again")
    with open(path, "rb") as handle:
        head = handle.read(8)
    if size < 8 or head[4:8] != _IDENTIFIER:
        raise ModelLoadError(
            f"{path}: not a TFLite model (bytes 4..8 are {head[4:8]!r}, expected {_IDENTIFIER!r}); "
            "pass a .tflite file made by the TFLite converter"
        )
    root_offset = int.from_bytes(head[0:4], "little")
    if size < _MIN_BYTES or root_offset >= size:
        raise ModelLoadError(f"{path}: model file is truncated ({size} bytes); copy it again in full")
    return path


def _import_runtime(name: str) -> tuple[Any, Any, RuntimeInfo]:
    """(Interpreter class, OpResolverType enum or None, RuntimeInfo) of one runtime; ImportError if absent."""
    module_name, package = _PACKAGES[name]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        module = importlib.import_module(module_name)
    if name == "tf":
        version = str(module.__version__)
        interpreter_class = module.lite.Interpreter
        resolver = getattr(getattr(module.lite, "experimental", None), "OpResolverType", None)
    else:
        try:
            version = metadata.version(package)
        except metadata.PackageNotFoundError:
            version = "unknown"
        interpreter_class = module.Interpreter
        resolver = getattr(module, "OpResolverType", None)
    return interpreter_class, resolver, RuntimeInfo(name=name, package=package, version=version)


def resolve_runtime(runtime: str = "auto") -> tuple[Any, Any, RuntimeInfo]:
    """The interpreter class, its OpResolverType (or None) and RuntimeInfo for `runtime`.

    Raises:
        UsageError: `runtime` is not one of RUNTIMES.
        ModelLoadError: the requested runtime (or, for auto, every runtime) is not installed.
    """
    if runtime not in RUNTIMES:
        raise UsageError(f"runtime {runtime!r} is unknown; choose one of {', '.join(RUNTIMES)}")
    names = _AUTO_ORDER if runtime == "auto" else (runtime,)
    failures = []
    for name in names:
        try:
            return _import_runtime(name)
        except (ImportError, AttributeError) as exc:  # AttributeError: a numpy ABI mismatch inside the package
            failures.append(f"{_PACKAGES[name][1]}: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}")
    if runtime == "auto":
        raise ModelLoadError(
            f"no TFLite interpreter is installed (tried {'; '.join(failures)}); pip install ai-edge-litert"
        )
    hint = "pip install tflite-runtime in a numpy<2 environment" if runtime == "tflite-runtime" else (
        "pip install ai-edge-litert" if runtime == "litert" else "pip install tensorflow")
    raise ModelLoadError(f"runtime {runtime!r} is not usable ({failures[0]}); {hint}, or use --runtime auto")


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text[:300] + ("..." if len(text) > 300 else "")


def load_interpreter(
    model_path: Path,
    runtime: str = "auto",
    threads: int | None = None,
    xnnpack: bool = True,
) -> tuple[Any, RuntimeInfo]:
    """Load `model_path` into an interpreter with tensors allocated.

    Args:
        model_path: a .tflite file.
        runtime: one of RUNTIMES; `auto` takes ai-edge-litert, then tflite-runtime, then tensorflow.lite.
        threads: interpreter threads; None lets the runtime decide.
        xnnpack: False applies no default delegate (OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES).

    Returns:
        (interpreter, RuntimeInfo)

    Raises:
        ModelLoadError: the file is not a loadable model, or the runtime is missing or refuses it.
        UsageError: bad `runtime` or `threads`, or `xnnpack=False` on a runtime that cannot disable it.
    """
    if threads is not None and (not isinstance(threads, int) or threads < 1):
        raise UsageError(f"threads={threads!r} is invalid; expected a positive integer (or leave it unset)")
    path = validate_model_file(model_path)
    interpreter_class, resolver, info = resolve_runtime(runtime)
    kwargs: dict[str, Any] = {"model_path": str(path), "num_threads": threads}
    if not xnnpack:
        if resolver is None:
            raise UsageError(f"{info} cannot disable XNNPACK (no OpResolverType); drop --no-xnnpack or use ai-edge-litert")
        kwargs["experimental_op_resolver_type"] = resolver.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # tf.lite.Interpreter's deprecation notice
            interpreter = interpreter_class(**kwargs)
        interpreter.allocate_tensors()
    except (ValueError, RuntimeError) as exc:
        raise ModelLoadError(
            f"{path}: {info} cannot load this model ({_one_line(exc)}); re-export it, or try another --runtime"
        ) from None
    return interpreter, info


def probe_loadable(model_path: Path, runtime: str = "auto", timeout: float = 120.0) -> RuntimeInfo:
    """Load `model_path` and invoke it once on zeros in a subprocess, so a crash cannot take the caller down.

    Returns:
        The RuntimeInfo of the runtime that loaded it.

    Raises:
        ModelLoadError: the model cannot be loaded, or it crashed or hung the interpreter.
    """
    path = validate_model_file(model_path).resolve()
    package = __package__ or "runtime"
    # The child gets this process's import path: `python -c` would put the working folder first, and a
    # folder named `mdx/` there (the mdx source tree, say) would shadow the installed package.
    search_path = [str(Path(__file__).resolve().parent.parent), *sys.path] if "." not in package else list(sys.path)
    code = (f"import sys; sys.path[:] = {search_path!r}; "
            f"import importlib; importlib.import_module({package + '.interpreter'!r})._probe_main()")
    try:
        done = subprocess.run(
            [sys.executable, "-c", code, str(path), runtime],
            capture_output=True, text=True, timeout=timeout, check=False,
        )
    except subprocess.TimeoutExpired:
        raise ModelLoadError(f"{path}: loading and one invoke took over {timeout:.0f} s; the model or runtime hangs") from None
    if done.returncode < 0:
        try:
            name = signal.Signals(-done.returncode).name
        except ValueError:
            name = f"signal {-done.returncode}"
        raise ModelLoadError(f"{path}: the interpreter crashed ({name}) loading or running this model; "
                             "re-export it, or try another --runtime")
    replies = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    if not replies:
        raise ModelLoadError(f"{path}: probe failed (exit code {done.returncode}: {_one_line(Exception(done.stderr[-300:]))})")
    reply = replies[-1]
    if "error" in reply:
        raise (UsageError if reply["exit_code"] == UsageError.exit_code else ModelLoadError)(reply["error"])
    return RuntimeInfo(**reply)


def _cap_heap(model: Path) -> None:
    """Limit this (probe) process's heap to PROBE_HEAP_BYTES + 16x the model, where the OS allows it."""
    try:
        import resource

        limit = PROBE_HEAP_BYTES + 16 * model.stat().st_size
        _, hard = resource.getrlimit(resource.RLIMIT_DATA)
        if hard != resource.RLIM_INFINITY:
            limit = min(limit, hard)
        resource.setrlimit(resource.RLIMIT_DATA, (limit, hard))
    except (ImportError, ValueError, OSError):  # no `resource` (Windows), or the OS refuses: probe uncapped
        pass


def _probe_main() -> None:
    """Child side of probe_loadable: argv = [model, runtime]; prints one JSON line, RuntimeInfo or the error."""
    import numpy as np

    model, runtime = sys.argv[1], sys.argv[2]
    _cap_heap(Path(model))
    try:
        interpreter, info = load_interpreter(Path(model), runtime)
        for detail in interpreter.get_input_details():
            interpreter.set_tensor(detail["index"], np.zeros(detail["shape"], dtype=detail["dtype"]))
        interpreter.invoke()
    except (ModelLoadError, UsageError) as exc:
        print(json.dumps({"error": str(exc), "exit_code": exc.exit_code}))
        return
    except (ValueError, RuntimeError) as exc:
        message = f"{model}: {runtime} loaded the model but invoke failed ({_one_line(exc)}); re-export it"
        print(json.dumps({"error": message, "exit_code": ModelLoadError.exit_code}))
        return
    print(json.dumps(info.to_dict()))
