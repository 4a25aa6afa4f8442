"""The parity gate: a candidate .tflite against its reference on the same data, decided by tolerances.

The reference is another .tflite run by this harness, or anything the caller can turn into
probabilities (`reference_predict`, e.g. a Keras model in the full mdx install). Both models see
the same preprocessed inputs: the candidate's preprocessing and labels, which must agree with any
found beside the reference. Both are decided at the candidate's threshold (they come from one run);
a reference that records another one is named in `warnings`, not refused.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .decision import Decision
from .errors import InputDataError, UsageError
from .evaluate import (
    DataStream,
    EvaluateConfig,
    ParallelRunner,
    decision_for,
    is_npz,
    resolve_model_info,
    run_stream,
    stream_data,
)
from .explain import probability_fn
from .explain_parity import ExplanationCheck, ExplanationParity, SampleKeeper, compare_explanations
from .files import atomic_write_json, file_facts
from .interpreter import RuntimeInfo, validate_model_file
from .machine import machine_facts
from .model_info import ModelInfo, load_model_info
from .parity import ParityResult, Tolerances, compare

ReferencePredict = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True, eq=False)
class CheckResult:
    """The parity result plus which files, data and runtime it was measured on."""

    parity: ParityResult
    candidate: dict[str, Any]
    reference: dict[str, Any]
    data: dict[str, Any]
    runtime: RuntimeInfo
    model_info: ModelInfo
    config: EvaluateConfig
    seconds: float
    decision: Decision
    warnings: tuple[str, ...] = ()
    explanation: ExplanationParity | None = None

    @property
    def passed(self) -> bool:
        return self.parity.passed and (self.explanation is None or self.explanation.passed)

    def summary(self) -> str:
        """The parity summary, and the explanation agreement's when it was measured."""
        if self.explanation is None:
            return self.parity.summary()
        return f"{self.parity.summary()}; {self.explanation.summary()}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "stage": "check",
            "passed": self.passed,
            "summary": self.summary(),
            "candidate": self.candidate,
            "reference": self.reference,
            "data": self.data,
            "runtime": self.runtime.to_dict(),
            "model_info": self.model_info.to_dict(),
            "config": self.config.to_dict(),
            "decision": self.decision.to_dict(),
            "warnings": list(self.warnings),
            "seconds": round(self.seconds, 3),
            "machine": machine_facts(),
            "parity": self.parity.to_dict(),
            "explanation": None if self.explanation is None else self.explanation.to_dict(),
        }

    def save(self, path: Path) -> Path:
        """Write the result as JSON to `path`."""
        return atomic_write_json(Path(path), self.to_dict())


def _check_reference_info(reference_path: Path, info: ModelInfo, decision: Decision) -> tuple[str, ...]:
    """Refuse a reference whose own labels or preprocessing (if any are found beside it) differ; a warning
    when it records another threshold than the one both models are decided at."""
    try:
        ref = load_model_info(reference_path, need_preprocessing=False)
    except UsageError:
        return ()  # nothing beside the reference: it is run with the candidate's
    if ref.labels != info.labels:
        raise UsageError(
            f"reference labels {list(ref.labels)} ({ref.source}) differ from the candidate's {list(info.labels)} "
            f"({info.source}); compare models of the same classes"
        )
    if ref.preprocessing is not None and info.preprocessing is not None and ref.preprocessing != info.preprocessing:
        raise UsageError(
            f"reference preprocessing {ref.preprocessing.to_dict()} differs from the candidate's "
            f"{info.preprocessing.to_dict()}; both models must see the same inputs"
        )
    if ref.decision is not None and ref.decision != decision:
        warning = (f"reference {reference_path} records threshold {ref.decision.threshold:g} ({ref.decision.source}); "
                   f"both models are decided at {decision.describe()}")
        return (warning,)
    return ()


def check(
    candidate_path: Path,
    reference_path: Path,
    data: Path,
    config: EvaluateConfig = EvaluateConfig(),
    tolerances: Tolerances = Tolerances(),
    *,
    reference_predict: ReferencePredict | None = None,
    explanations: ExplanationCheck = ExplanationCheck(),
) -> CheckResult:
    """Run both models on DATA and compare them (raising on failure is the caller's job).

    Args:
        candidate_path: the .tflite under test.
        reference_path: the model it must match; a .tflite unless `reference_predict` is given.
        data: folder-per-class tree or .npz, as for `evaluate`.
        config: how to run the models and score them.
        tolerances: the parity limits.
        reference_predict: maps preprocessed inputs to the reference's probabilities (N, classes).
        explanations: when enabled, occlusion maps of both models on a sample (explain_parity.py).

    Raises:
        ModelLoadError, InputDataError, UsageError: as `evaluate`.
    """
    started = time.perf_counter()
    candidate_path = validate_model_file(candidate_path)
    reference_path = Path(reference_path)
    classifier = config.classifier(candidate_path)
    info = resolve_model_info(candidate_path, config, classifier, need_preprocessing=not is_npz(data))
    decision = decision_for(info, config)
    warnings = _check_reference_info(reference_path, info, decision)
    stream = stream_data(data, info, skip_unreadable=config.skip_unreadable)
    if explanations.enabled:
        explanations.occlusion(classifier.input_shape[0])  # a patch larger than the input fails before any work
    keeper = SampleKeeper(explanations.sample, len(info.labels)) if explanations.enabled else None
    chunks = stream.chunks if keeper is None else keeper.wrap(stream.chunks)
    runners = [ParallelRunner(classifier, config)]
    if reference_predict is None:
        reference = config.classifier(validate_model_file(reference_path))
        runners.append(ParallelRunner(reference, config))
        reference_facts = {**file_facts(reference_path), "kind": "tflite", "runtime": reference.runtime.to_dict()}
        models = [runner.raw for runner in runners]
    else:
        if not reference_path.exists():
            raise UsageError(f"{reference_path}: reference model not found; check the --reference path")
        facts = file_facts(reference_path) if reference_path.is_file() else {"path": str(reference_path)}
        reference_facts = {**facts, "kind": reference_path.suffix.lstrip(".") or "folder"}
        models = [runners[0].raw, reference_predict]
    explanation = None
    try:
        # both models see each chunk: the inputs are decoded once
        outputs = run_stream(DataStream(chunks, stream.class_names, stream.facts), models)
        candidate_probs = classifier.to_probabilities(outputs.raw[0])
        reference_probs = outputs.raw[1] if reference_predict is not None else reference.to_probabilities(outputs.raw[1])
        if keeper is not None:
            reference_fn = reference_predict or probability_fn(runners[1].raw, reference)
            explanation = compare_explanations(probability_fn(runners[0].raw, classifier), reference_fn, *keeper.kept(),
                                               info.labels, decision, explanations)
    finally:
        for runner in runners:
            runner.close()
    if reference_probs.shape != candidate_probs.shape:
        raise InputDataError(
            f"reference outputs {reference_probs.shape} but candidate {candidate_probs.shape}; "
            "compare models with the same classes"
        )
    parity = compare(reference_probs, candidate_probs, outputs.labels, info.labels, tolerances,
                     threshold=decision.threshold, positive_index=decision.positive_index,
                     n_boot=config.n_boot, seed=config.seed)
    return CheckResult(
        parity=parity,
        candidate={**file_facts(candidate_path), "kind": "tflite", **classifier.describe()},
        reference=reference_facts,
        data=stream.facts,
        runtime=classifier.runtime,
        model_info=info,
        config=config,
        seconds=time.perf_counter() - started,
        decision=decision,
        warnings=warnings + tuple(w for w in [explanation and explanation.shortcut_warning()] if w),
        explanation=explanation,
    )
