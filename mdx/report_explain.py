"""The report's explanation section, from RUN/explain/record.json (mdx/explain_run.py): int8's maps against
FP32's, the border share per class (the shortcut check), and the overlay grid."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mdx.report_facts import RunFacts
    from mdx.report_plots import Figure
    from mdx.report_render import Table


def _explanation(facts: RunFacts) -> dict[str, Any] | None:
    return ((facts.records.get("explain") or {}).get("metrics") or {}).get("explanation")


def explanation_table(facts: RunFacts) -> Table | None:
    """Spearman, top-10% IoU and border share by class, or None when the run was not explained."""
    from mdx.report_render import Table, num

    found = _explanation(facts)
    if found is None:
        return None
    config = facts.records["explain"].get("config", {})
    candidate, reference = config.get("candidate", "int8"), config.get("reference", "fp32")
    border = found["border_share"]
    rows = [("map Spearman, mean / median / min", "", " / ".join(num(found["spearman"][k]) for k in ("mean", "median", "min"))),
            ("top-10% IoU, mean / median / min", "", " / ".join(num(found["top10_iou"][k]) for k in ("mean", "median", "min"))),
            ("border share (outer 10%), all", num(border["reference"]), num(border["candidate"]))]
    rows += [(f"border share, true {name}", num(border["reference_by_class"].get(name)), num(value))
             for name, value in border["candidate_by_class"].items()]
    rows.append(("shortcut flagged (border share above " + f"{border['limit']:g})", "", "yes" if border["shortcut"] else "no"))
    title = (f"Where the models look: occlusion maps of {candidate} against {reference} on {found['n']} test images "
             f"(patch {found['occlusion']['patch']}, stride {found['occlusion']['stride']}; an even map has border share 0.36)")
    return Table("explanation", title, ("measure", reference, candidate),
                 tuple(rows))


def explain_figures(facts: RunFacts, folder: Path, notes: list[str]) -> list[Figure]:
    """The overlay grid copied beside the other figures; a note when a shortcut was flagged or the grid is missing."""
    from mdx.report_plots import Figure

    found = _explanation(facts)
    if found is None:
        notes.append(f"no explain/record.json: no occlusion maps (run `mdx pipeline`, or mdx.explain_run on {facts.run})")
        return []
    notes += [f"explain: {w}" for w in facts.records["explain"].get("warnings", [])]
    grid = facts.run / "explain" / "grid.png"
    if not grid.is_file():
        notes.append(f"{grid} is missing: the overlay grid is not shown")
        return []
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / "explain_grid.png"
    shutil.copyfile(grid, target)
    config = facts.records["explain"].get("config", {})
    return [Figure("explain_grid", "Where the models look: FP32 beside INT8", target,
                   f"A few test images per class that {config.get('reference', 'fp32')} gets right and wrong, its "
                   f"occlusion map beside {config.get('candidate', 'int8')}'s (explain/grid.png; maps in explain/maps.npz). "
                   "Bright: hiding those pixels lowers the probability of the class shown.")]
