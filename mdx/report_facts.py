"""What `mdx report` reads from a run folder (its variants, records and histories), in a module of its own so
that report, report_plots and report_render share these types without importing each other in a cycle."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mdx.errors import ArtifactError
from mdx.records import RECORD_NAME

MODEL_NAME = "model.tflite"


@dataclass(frozen=True)
class Variant:
    """One converted model and whatever the run measured on it."""

    name: str
    folder: Path
    convert: dict[str, Any]
    evaluation: dict[str, Any] | None = None
    predictions: Path | None = None
    bench: dict[str, Any] | None = None

    @property
    def model(self) -> dict[str, Any]:
        for output in self.convert.get("outputs", []):
            if Path(output["path"]).name == MODEL_NAME:
                return output
        raise ArtifactError(f"{self.folder / RECORD_NAME} lists no {MODEL_NAME}; rerun mdx convert --overwrite")


@dataclass(frozen=True)
class RunFacts:
    """Everything the report shows, as read from the run folder."""

    run: Path
    variants: tuple[Variant, ...]
    records: dict[str, dict[str, Any]]  # "pipeline", "train", "prune-0.5": their record.json
    histories: dict[str, dict[str, list[float]]]  # "train", "prune-0.5": history.json
    notes: tuple[str, ...] = ()
