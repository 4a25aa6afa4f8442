"""The `make demo` figures quoted in the README, gathered from the run into one result file.

Reads the pipeline's summary and records (stage times, train config, threshold, versions, machine, the
int8 output correction) and runs `mdx check` int8 against FP32 at 0.5 under issue 4's gate, so that the
README's demo table and its parity line come from one file that a command rewrites.

    make demo && .venv/bin/python benchmarks/demo_record.py runs/demo [--out FILE]
    -> benchmarks/results/<hostname>-<simd>/demo.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ISSUE_4_GATE, check_figures, run_files, save, test_source


def _read(path: Path) -> dict:
    if not path.is_file():
        raise SystemExit(f"error: {path} not found; run `make demo` (or `mdx pipeline DATA --out RUN`) first")
    return json.loads(path.read_text(encoding="utf-8"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path, nargs="?", default=Path("runs/demo"))
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)

    from mdx.runtime.check import check
    from mdx.runtime.evaluate import EvaluateConfig
    from mdx.runtime.parity import Tolerances

    files = run_files(args.run)
    pipeline = _read(args.run / "record.json")
    train = files["record"]
    int8 = _read(args.run / "convert" / "int8" / "record.json")
    test_dir = test_source(train, files["train"])
    parity = check(files["models"]["int8"], files["models"]["fp32"], test_dir, EvaluateConfig(threshold=0.5, n_boot=0),
                   Tolerances(**ISSUE_4_GATE)).parity
    payload = {
        "command": f"make demo   (mdx pipeline data/chest_xray --out {args.run} --overwrite --input-size 128)",
        "run_created": pipeline["created"], "versions": pipeline["versions"], "machine": dict(pipeline["machine"]),
        "wall_seconds": pipeline["wall_seconds"], "stage_seconds": pipeline["metrics"]["stage_seconds"],
        "train_config": train["config"], "threshold": train["threshold"], "threshold_rule": train["threshold_rule"],
        "figures": {row["variant"]: row for row in pipeline["metrics"]["rows"]},
        "int8_output_correction": int8.get("output_offset"),
        "check_at_0.5": {**check_figures(parity), "gate": ISSUE_4_GATE,
                         "command": f"mdx check {files['models']['int8']} --reference {files['models']['fp32']} {test_dir} "
                                    "--max-acc-drop 0.5 --max-auc-drop 0.01 --min-agreement 0.99 --n-boot 0"},
        "validation_fp32_keras": {key: train["metrics"]["validation"][key]["value"] for key in ("accuracy", "auc")},
    }
    print(f"demo: {payload['wall_seconds']:.0f} s; fp32 accuracy {payload['figures']['fp32']['accuracy']:.3f}; "
          f"int8 vs fp32 at 0.5: {parity.summary()}")
    print(f"saved {save('demo', payload, args.out)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
