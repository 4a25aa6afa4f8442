"""Images whose given class a trained model doubts: cleanlab's `find_label_issues` on out-of-sample probabilities.

The probabilities come from the run's FP32 `.tflite` on its test split (images it never trained on):
the `predictions.npz` that `mdx pipeline` saved, or a fresh evaluation by the runtime harness.
cleanlab ranks the suspects by self-confidence (the probability of the given class, lowest first).
Nothing here imports TensorFlow.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mdx.errors import ArtifactError, ConfigError, DataError


@dataclass(frozen=True)
class LabelIssue:
    path: str
    given: str
    suggested: str
    p_given: float
    p_suggested: float


def out_of_sample_probabilities(run: Path, data_dir: Path) -> tuple[np.ndarray, np.ndarray, tuple[str, ...], tuple[str, ...]]:
    """(probs, labels, paths, class names) of RUN's FP32 model on the test split it did not train on."""
    from mdx.runtime.evaluate import EvaluateConfig, evaluate
    from mdx.runtime.manifest import MANIFEST_NAME
    from mdx.train.data import split_folders

    saved = run / "evaluate" / "fp32" / "predictions.npz"
    if saved.is_file():
        with np.load(saved) as npz:
            return (npz["probs"], npz["labels"], tuple(str(p) for p in npz["paths"]),
                    tuple(str(c) for c in npz["class_names"]))
    model = run / "convert" / "fp32" / "model.tflite"
    if not model.is_file():
        raise ArtifactError(f"{model}: not found; --labels RUN needs a converted run (mdx convert RUN, or mdx pipeline)")
    manifest = run / "train" / MANIFEST_NAME
    test = manifest if manifest.is_file() else split_folders(data_dir).get("test")
    if test is None:
        raise DataError(f"{data_dir}: no test split to find label issues in; give DATA/test/<class>/ or a run with a "
                        "split manifest")
    result = evaluate(model, test, EvaluateConfig())
    return result.probs, result.labels, result.paths, result.model_info.labels


def label_issues(run: Path, data_dir: Path) -> list[LabelIssue]:
    """The test images cleanlab suspects of a wrong class, most suspect first.

    Raises:
        ConfigError: cleanlab is not installed.
        ArtifactError: RUN has neither saved predictions nor an FP32 model.
    """
    try:
        from cleanlab.filter import find_label_issues
    except ModuleNotFoundError:
        raise ConfigError("--labels needs cleanlab; pip install 'mdx[train]' (or pip install cleanlab)") from None
    probs, labels, paths, classes = out_of_sample_probabilities(Path(run), Path(data_dir))
    if len(np.unique(labels)) < 2:
        raise DataError(f"{run}: the test split holds one class; label issues need every class present")
    ranked = find_label_issues(labels, probs, return_indices_ranked_by="self_confidence")
    return [LabelIssue(paths[i], classes[labels[i]], classes[int(np.argmax(probs[i]))],
                       round(float(probs[i, labels[i]]), 4), round(float(np.max(probs[i])), 4)) for i in ranked]
