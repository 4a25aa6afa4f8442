"""Near-duplicate images by perceptual hash (imagehash's pHash): how many pairs each Hamming distance
finds within and across splits, so that a grouping threshold is chosen on the data, not guessed.

    .venv/bin/pip install imagehash
    .venv/bin/python benchmarks/near_duplicates.py data/chest_xray ../shared/data/brain_tumor_mri \
        --pairs-png /tmp/pairs     # -> benchmarks/results/<machine>/near_duplicates.json

For each data set (a folder of split folders, each of class folders): the 64-bit pHash of every image,
then for each distance 0..--max-distance the number of image pairs at exactly that distance, how many
of them cross two splits (leakage), and how many cross two classes. `--pairs-png` writes example
pairs at a few distances side by side, to look at.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import context, save

from mdx.train.near_duplicates import near_pairs_with_distance


def hashes(root: Path) -> tuple[list[Path], list[str], list[str], np.ndarray]:
    from mdx.train.audit import phash

    files, splits, classes, bits = [], [], [], []
    for split in sorted(p for p in root.iterdir() if p.is_dir()):
        for cls in sorted(p for p in split.iterdir() if p.is_dir()):
            for file in sorted(cls.iterdir()):
                if file.suffix.lower() not in (".jpg", ".jpeg", ".png"):
                    continue
                files.append(file)
                splits.append(split.name)
                classes.append(cls.name)
                bits.append(phash(file))
    return files, splits, classes, np.stack(bits)


def summarise(root: Path, max_distance: int, pairs_png: Path | None) -> dict:
    files, splits, classes, bits = hashes(root)
    pairs = near_pairs_with_distance(bits, max_distance)
    by_distance = {}
    for d in range(max_distance + 1):
        at = [(i, j) for i, j, dist in pairs if dist == d]
        by_distance[d] = {"pairs": len(at), "cross_split": sum(splits[i] != splits[j] for i, j in at),
                          "cross_class": sum(classes[i] != classes[j] for i, j in at),
                          "examples": [[str(files[i].relative_to(root)), str(files[j].relative_to(root))] for i, j in at[:3]]}
    if pairs_png is not None:
        _draw_pairs(root, files, pairs, pairs_png)
    return {"data": str(root), "images": len(files), "max_distance": max_distance, "by_distance": by_distance}


def _draw_pairs(root: Path, files: list[Path], pairs: list[tuple[int, int, int]], out: Path) -> None:
    from PIL import Image

    out.mkdir(parents=True, exist_ok=True)
    for d in sorted({dist for _, _, dist in pairs}):
        chosen = [(i, j) for i, j, dist in pairs if dist == d][:4]
        canvas = Image.new("L", (256 * 2, 128 * len(chosen)))
        for row, (i, j) in enumerate(chosen):
            for col, index in enumerate((i, j)):
                with Image.open(files[index]) as image:
                    canvas.paste(image.convert("L").resize((128, 128)), (col * 128 + (256 if col else 0) // 2, row * 128))
        canvas.save(out / f"{root.name}_d{d}.png")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("data", nargs="+", type=Path)
    parser.add_argument("--max-distance", type=int, default=12)
    parser.add_argument("--out", type=Path)
    parser.add_argument("--pairs-png", type=Path)
    args = parser.parse_args()
    import imagehash

    results = {**context(("imagehash",)), "hash": f"imagehash {imagehash.__version__} phash, 64 bits, greyscale",
               "command": " ".join(sys.argv),
               "sets": [summarise(root, args.max_distance, args.pairs_png) for root in args.data]}
    for data in results["sets"]:
        print(f"{data['data']}: {data['images']} images")
        for d, row in data["by_distance"].items():
            print(f"  distance {d:2d}: {row['pairs']:6d} pairs, {row['cross_split']:5d} across splits, "
                  f"{row['cross_class']:5d} across classes")
    print(f"wrote {save('near_duplicates', results, args.out)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
