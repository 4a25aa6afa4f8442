"""Near-duplicate images, by imagehash's perceptual hash (pHash), merged into the groups a split keeps whole.

A re-encoded or re-windowed copy of an image, or the neighbouring slice of one scan, on both sides of a
split makes validation (or test) look better than a new patient would. Hamming distance 2 of the 64-bit
pHash is the default: on the brain MRI set, pairs at 0 and 2 are the same slice; on the chest X-rays,
pairs at 2 are mostly different children in the same pose, which a split can keep together at no cost
(benchmarks/near_duplicates.py, benchmarks/README.md).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

# bits set in each byte value, for the Hamming distance of packed hashes
_POPCOUNT = np.unpackbits(np.arange(256, dtype=np.uint8)[:, None], axis=1).sum(axis=1).astype(np.uint8)


def phash_bits(images: np.ndarray) -> np.ndarray:
    """The 64-bit pHash of each decoded image (N, H, W, 3) uint8, packed as (N, 8) uint8."""
    import imagehash
    from PIL import Image

    return np.stack([np.packbits(imagehash.phash(Image.fromarray(image).convert("L")).hash.flatten())
                     for image in images]) if len(images) else np.zeros((0, 8), dtype=np.uint8)


def near_pairs(bits: np.ndarray, distance: int, block: int = 512) -> list[tuple[int, int]]:
    """Pairs (i, j), i < j, whose hashes differ in at most `distance` bits; memory bounded by `block` rows."""
    return [(i, j) for i, j, _ in near_pairs_with_distance(bits, distance, block)]


def merge_groups(groups: Sequence[str], pairs: Sequence[tuple[int, int]]) -> list[str]:
    """Each image's group after joining the groups of every pair: the smallest group name of its component."""
    parent = list(range(len(groups)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    first: dict[str, int] = {}
    for index, group in enumerate(groups):  # images of one group start joined
        if group in first:
            parent[find(index)] = find(first[group])
        else:
            first[group] = index
    for i, j in pairs:
        parent[find(i)] = find(j)
    name: dict[int, str] = {}
    for index, group in enumerate(groups):
        root = find(index)
        name[root] = min(name.get(root, group), group)
    return [name[find(index)] for index in range(len(groups))]


def near_pairs_with_distance(bits: np.ndarray, distance: int, block: int = 512) -> list[tuple[int, int, int]]:
    """(i, j, bits differing), i < j, for the pairs whose hashes differ in at most `distance` bits."""
    found: list[tuple[int, int, int]] = []
    for start in range(0, len(bits), block):
        differing = _POPCOUNT[bits[start:start + block, None, :] ^ bits[None, :, :]].sum(axis=2)
        rows, cols = np.nonzero(differing <= distance)
        found.extend((start + int(r), int(c), int(differing[r, c])) for r, c in zip(rows, cols) if start + int(r) < int(c))
    return found
