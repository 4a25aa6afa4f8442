"""`mdx.runtime` and `mdx --help` import no TensorFlow or Keras: proven in a subprocess where importing them fails."""

from __future__ import annotations

import pkgutil
import subprocess
import sys
from pathlib import Path

import mdx.runtime

BLOCKER = '''
import sys

class _Blocker:
    """Refuses tensorflow*, tf_keras*, keras* the way a board without them would."""

    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("tensorflow", "tf_keras", "keras"):
            raise ImportError(f"blocked import of {name}")
        return None

sys.meta_path.insert(0, _Blocker())
'''

RUNTIME_MODULES = sorted(m.name for m in pkgutil.iter_modules(mdx.runtime.__path__) if m.name != "__main__")


def _run(code: str, tmp_path: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", BLOCKER + code], cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False)


def test_blocker_really_blocks_tensorflow(tmp_path: Path) -> None:
    done = _run("import tensorflow", tmp_path)
    assert done.returncode != 0 and "blocked import of tensorflow" in done.stderr


def test_runtime_modules_import_without_tensorflow(tmp_path: Path) -> None:
    assert {"classifier", "evaluate", "interpreter", "metrics", "parity", "bench", "cli"} <= set(RUNTIME_MODULES)
    imports = "; ".join(f"import mdx.runtime.{name}" for name in RUNTIME_MODULES)
    done = _run(imports + "; print('ok', sorted(m for m in sys.modules if m.startswith(('tensorflow', 'keras', 'tf_keras'))))", tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok []"


def test_mdx_cli_app_and_help_without_tensorflow(tmp_path: Path) -> None:
    code = (
        "from mdx.cli import app, main\n"
        "sys.argv = ['mdx', '--help']\n"
        "try:\n"
        "    main()\n"
        "except SystemExit as exc:\n"
        "    print('exit', exc.code)\n"
    )
    done = _run(code, tmp_path)
    assert done.returncode == 0, done.stderr
    assert "evaluate" in done.stdout and "check" in done.stdout
    assert done.stdout.strip().endswith("exit 0")


def test_runtime_evaluate_runs_without_tensorflow(tmp_path: Path) -> None:
    golden = Path(__file__).resolve().parents[1] / "fixtures" / "golden"
    code = (
        "from mdx.runtime.cli import main\n"
        f"sys.exit(main(['evaluate', {str(golden / 'binary_int8' / 'model.tflite')!r}, {str(golden / 'golden.npz')!r}, "
        "'--labels', 'NORMAL,PNEUMONIA', '--n-boot', '0']))\n"
    )
    # golden.npz has no `labels` key: the error proves the run got past loading the model with litert
    done = _run(code, tmp_path)
    assert done.returncode == 1
    assert "golden.npz: lacks ['labels']" in done.stderr
