"""The report's overlay grid, from RUN/explain/ (mdx/explain_run.py); its tables are `report_render.explanation_table`
and `report_render.gradcam_table`."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mdx.report_facts import RunFacts
    from mdx.report_plots import Figure


def explanation_of(facts: RunFacts) -> dict[str, Any] | None:
    return ((facts.records.get("explain") or {}).get("metrics") or {}).get("explanation")


def gradcam_of(facts: RunFacts) -> dict[str, Any] | None:
    """Grad-CAM's agreement with the reference's occlusion maps on the grid images, when the stage measured it."""
    return ((facts.records.get("explain") or {}).get("metrics") or {}).get("gradcam")


def explain_figures(facts: RunFacts, folder: Path, notes: list[str]) -> list[Figure]:
    """The overlay grid copied beside the other figures; a note when a shortcut was flagged or the grid is missing."""
    from mdx.report_plots import Figure

    found = explanation_of(facts)
    if found is None:
        notes.append(f"no explain/record.json: no occlusion maps (run `mdx pipeline`, or mdx.explain_run on {facts.run})")
        return []
    notes += [f"explain: {w}" for w in facts.records["explain"].get("warnings", [])]
    skipped = facts.records["explain"].get("gradcam_skipped")
    if skipped:
        notes.append(f"explain: {skipped}")
    grid = facts.run / "explain" / "grid.png"
    if not grid.is_file():
        notes.append(f"{grid} is missing: the overlay grid is not shown")
        return []
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / "explain_grid.png"
    shutil.copyfile(grid, target)
    config = facts.records["explain"].get("config", {})
    gradcam = gradcam_of(facts)
    title = "Where the models look: FP32 beside INT8" + (" and Grad-CAM" if gradcam else "")
    caption = (f"A few test images per class that {config.get('reference', 'fp32')} gets right and wrong, its "
               f"occlusion map beside {config.get('candidate', 'int8')}'s (explain/grid.png; maps in explain/maps.npz). "
               "Bright: hiding those pixels lowers the probability of the class shown.")
    if gradcam:
        caption += (f" Right: Grad-CAM of the float Keras model on {gradcam['layer']} for the same class, with its "
                    f"Spearman correlation (rho) against {config.get('reference', 'fp32')}'s occlusion map.")
    return [Figure("explain_grid", title, target, caption)]
