"""Where a training step's time goes, op by op: TensorFlow's profiler over one pass of a frozen or a
fine-tuning fit of the demo's classifier (float32, random pixels), summed by op type.

    .venv/bin/python benchmarks/train_op_profile.py [--size 128] [--images 320] [--phase fine-tuning]
    -> benchmarks/results/<hostname>-<simd>/train_op_profile_<phase>_<size>px.json

The figures are the profiler's op events on TensorFlow's compute threads. Its "Process" events are the
executor's wrappers around the ops and are left out, so the shares are of the time spent inside ops.
The profiler slows every op a little; the shares, not the milliseconds, are what to read.
"""

from __future__ import annotations

import argparse
import collections
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import context, save
from train_step_profile import _compiled, random_dataset

# Which op types belong to which group of the summary; the rest is "other".
GROUPS = {
    "conv 1x1/3x3 forward": ("_MklNativeFusedConv2D", "_MklNativeConv2D"),
    "conv backward (filter + input)": ("_MklNativeConv2DBackpropFilter", "_MklNativeConv2DBackpropInput"),
    "depthwise forward": ("_MklNativeDepthwiseConv2dNative",),
    "depthwise backward (filter + input)": ("_MklNativeDepthwiseConv2dNativeBackpropFilter",
                                            "_MklNativeDepthwiseConv2dNativeBackpropInput"),
    "batch norm forward + backward": ("_MklNativeFusedBatchNormV3", "_MklNativeFusedBatchNormGradV3"),
    "Pad (stride-2 blocks' ZeroPadding2D)": ("Pad",),
    "ReLU6 forward + backward": ("Relu6", "Relu6Grad"),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--images", type=int, default=320)
    parser.add_argument("--phase", choices=("frozen", "fine-tuning"), default="fine-tuning")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    import tensorflow as tf

    config, dataset = random_dataset(args.size, args.images)
    model = _compiled("float32", args.phase == "fine-tuning", config)
    model.fit(dataset.take(3), verbose=0)  # trace and compile outside the profile
    with tempfile.TemporaryDirectory() as logdir:
        started = time.perf_counter()
        tf.profiler.experimental.start(logdir)
        model.fit(dataset, verbose=0)
        tf.profiler.experimental.stop()
        wall = time.perf_counter() - started
        by_type = _op_ms_by_type(logdir)
    total = sum(by_type.values())
    grouped = {group: round(sum(by_type.get(op, 0.0) for op in ops), 1) for group, ops in GROUPS.items()}
    grouped["other"] = round(total - sum(grouped.values()), 1)
    figures = {"op_ms_total": round(total, 1), "profiled_fit_wall_s": round(wall, 2),
               "share_by_group": {group: round(ms / total, 3) for group, ms in grouped.items()},
               "ms_by_group": grouped,
               "ms_by_op_type": {op: round(ms, 1) for op, ms in by_type.most_common(25)}}
    for group, share in sorted(figures["share_by_group"].items(), key=lambda item: -item[1]):
        print(f"{share:6.1%}  {group}")
    payload = context()
    payload["settings"] = {"size": args.size, "images": args.images, "batch_size": 32, "phase": args.phase,
                           "dtype": "float32", "statistic": "sum of op event durations on tf_Compute threads"}
    payload["figures"] = figures
    print(f"saved {save(f'train_op_profile_{args.phase}_{args.size}px', payload, args.out)}")
    return 0


def _op_ms_by_type(logdir: str) -> collections.Counter:
    from tensorflow.tsl.profiler.protobuf import xplane_pb2

    space = xplane_pb2.XSpace()
    space.ParseFromString(next(Path(logdir).rglob("*.xplane.pb")).read_bytes())
    host = next(plane for plane in space.planes if plane.name == "/host:CPU")
    by_type: collections.Counter = collections.Counter()
    for line in host.lines:
        if not line.name.startswith("tf_Compute"):
            continue
        for event in line.events:
            name = host.event_metadata[event.metadata_id].name  # "layer/op:OpType", or "Process"
            if ":" in name and not name.endswith(":Process"):
                by_type[name.rsplit(":", 1)[1]] += event.duration_ps / 1e9
    return by_type


if __name__ == "__main__":
    raise SystemExit(main())
