"""Streaming evaluation: memory is bounded by the chunk, not the data, and results equal the all-at-once ones."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import mdx.runtime.images as images_module
from mdx.runtime.classifier import TfliteClassifier
from mdx.runtime.errors import InputDataError
from mdx.runtime.evaluate import CHUNK_SIZE, EvaluateConfig, evaluate
from mdx.runtime.images import iter_folder, load_folder
from mdx.runtime.metrics import classification_metrics
from mdx.runtime.model_info import load_model_info

FAST = EvaluateConfig(n_boot=0)


def _repeat(xray_folder: Path, target: Path, times: int) -> Path:
    """A folder of the same images linked `times` over (hardlinks: cheap and real files)."""
    for class_dir in sorted(p for p in xray_folder.iterdir() if p.is_dir()):
        out = target / class_dir.name
        out.mkdir(parents=True)
        for i in range(times):
            for image in sorted(class_dir.iterdir()):
                (out / f"{i:04d}_{image.name}").hardlink_to(image)
    return target


def test_iter_folder_many_images_never_holds_more_than_two_chunks(xray_folder, tmp_path, monkeypatch) -> None:
    folder = _repeat(xray_folder, tmp_path / "many", 50)  # 300 images
    real_decode = images_module.load_image
    live: list[int] = [0]
    peak: list[int] = [0]

    def counting(path, size):
        live[0] += 1
        peak[0] = max(peak[0], live[0])
        return real_decode(path, size)

    monkeypatch.setattr(images_module, "load_image", counting)
    seen = 0
    for chunk in iter_folder(folder, 16, chunk_size=8):
        assert len(chunk.labels) <= 8
        seen += len(chunk.labels)
        live[0] -= len(chunk.labels)  # the consumer is done with this chunk
    assert seen == 300
    assert peak[0] <= 2 * 8  # the chunk yielded and the one decoded ahead, never the folder


def test_evaluate_many_images_decodes_in_bounded_chunks(model_path, xray_folder, tmp_path, monkeypatch) -> None:
    folder = _repeat(xray_folder, tmp_path / "many", 50)
    sizes: list[int] = []
    real_predict_raw = TfliteClassifier.predict_raw

    def recording(self, inputs):
        sizes.append(len(inputs))
        return real_predict_raw(self, inputs)

    monkeypatch.setattr(TfliteClassifier, "predict_raw", recording)
    result = evaluate(model_path("binary_fp32"), folder, FAST)
    assert result.metrics["n"] == 300 and len(result.paths) == 300
    assert max(sizes) <= CHUNK_SIZE and sum(sizes) == 300


def test_evaluate_int8_model_streams_int8_inputs(model_path, xray_folder, tmp_path, monkeypatch) -> None:
    folder = _repeat(xray_folder, tmp_path / "many", 20)
    seen: list[tuple[np.dtype, bool]] = []
    real_predict_raw = TfliteClassifier.predict_raw

    def recording(self, inputs, *, encoded=False):
        seen.append((inputs.dtype, encoded))
        return real_predict_raw(self, inputs, encoded=encoded)

    monkeypatch.setattr(TfliteClassifier, "predict_raw", recording)
    result = evaluate(model_path("binary_int8"), folder, FAST)
    assert result.metrics["n"] == 120
    assert set(seen) == {(np.dtype(np.int8), True)}  # pixels looked up into int8, never a float32 chunk


@pytest.mark.parametrize("workers", [1, 2])
def test_evaluate_streamed_equals_all_at_once(model_path, xray_folder, tmp_path, workers) -> None:
    folder = _repeat(xray_folder, tmp_path / "many", 30)  # 180 images: several chunks and a short last one
    model = model_path("binary_int8")
    config = EvaluateConfig(n_boot=200, workers=workers)
    result = evaluate(model, folder, config)
    # the old path: decode every image into one array, one predict_proba, the same metrics
    info = load_model_info(model)
    whole = load_folder(folder, info.preprocessing.size, info.labels)
    classifier = config.classifier(model)
    probs = classifier.predict_proba(info.preprocessing.normalize(whole.images))
    np.testing.assert_array_equal(result.probs, probs)
    np.testing.assert_array_equal(result.labels, whole.labels)
    assert result.paths == whole.paths
    expected = classification_metrics(whole.labels, probs, info.labels, result.decision.threshold,
                                      result.decision.positive_index, 200, 0)
    assert result.metrics == expected


def test_iter_folder_unreadable_image_is_skipped_in_order_or_refused(xray_folder, tmp_path) -> None:
    folder = _repeat(xray_folder, tmp_path / "many", 5)
    bad = folder / "NORMAL" / "0002_broken.png"
    bad.write_bytes(b"not a png")
    skipped: list[str] = []
    chunks = list(iter_folder(folder, 16, on_skip=lambda p, r: skipped.append(str(p)), chunk_size=4))
    assert skipped == [str(bad)] and sum(len(c.labels) for c in chunks) == 30
    with pytest.raises(InputDataError, match=r"0002_broken\.png: not a readable image"):
        list(iter_folder(folder, 16, skip_unreadable=False, chunk_size=4))


def test_evaluate_split_manifest_streams_its_test_rows_only(model_path, xray_folder: Path, tmp_path: Path) -> None:
    """A run's split_manifest.csv as DATA: only its test rows are evaluated, resolved under the record's data.root."""
    import json

    from mdx.runtime.evaluate import EvaluateConfig, evaluate
    from mdx.runtime.files import sha256_file
    from mdx.runtime.manifest import ManifestRow, write_manifest

    files = sorted(p for p in xray_folder.rglob("*") if p.is_file())
    rows = [ManifestRow(f.relative_to(xray_folder).as_posix(), sha256_file(f), f.parent.name,
                        "test" if i % 2 else "train", f.name) for i, f in enumerate(files)]
    run = tmp_path / "train"
    run.mkdir()
    manifest = write_manifest(rows, run / "split_manifest.csv")
    (run / "record.json").write_text(json.dumps({"data": {"root": str(xray_folder)}}))
    result = evaluate(model_path("binary_fp32"), manifest, EvaluateConfig(n_boot=0))
    assert result.metrics["n"] == sum(row.split == "test" for row in rows) == 3
    assert result.to_dict()["data"]["kind"] == "manifest"


def test_the_folder_stream_lists_str_paths_in_the_order_of_the_path_listing(tmp_path) -> None:
    """`iter_folder` lists an archive as str (no Path object per file): same files, same order, same skips."""
    from mdx.runtime.images import class_file_texts, class_files

    for name in ("b", "a"):
        (tmp_path / name).mkdir()
        for file in ("2.png", "10.JPG", "1.jpeg", "notes.txt", ".jpg"):
            (tmp_path / name / file).write_bytes(b"")
        (tmp_path / name / "folder.png").mkdir()
    paths, labels = class_files(tmp_path, ("b", "a"))
    texts, text_labels = class_file_texts(tmp_path, ("b", "a"))
    assert texts == [str(p) for p in paths] and text_labels == labels
    assert [p.rsplit("/", 2)[-2:] for p in texts[:3]] == [["b", "1.jpeg"], ["b", "10.JPG"], ["b", "2.png"]]


# After an 8 MB block is freed, glibc's dynamic threshold serves the next 2 MB block from the heap;
# with bound_heap_growth it is still mmapped (and unmapped when freed). Prints the mmapped-block count
# of glibc's mallinfo2 while the 2 MB block lives, and bound_heap_growth's answer.
_MMAP_PROBE = """
import ctypes, sys
import numpy as np
from mdx.runtime.heap import bound_heap_growth

class MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in
                ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]

libc = ctypes.CDLL(None)
libc.mallinfo2.restype = MallInfo2
fixed = bound_heap_growth() if sys.argv[1] == "fixed" else None
big = np.ones(8 << 20, np.uint8)
del big
before = libc.mallinfo2().hblks
mid = np.ones(2 << 20, np.uint8)
print(fixed, libc.mallinfo2().hblks - before)
"""


def _mallinfo2_available() -> bool:
    import ctypes

    try:
        ctypes.CDLL(None).mallinfo2  # noqa: B018 (glibc >= 2.33)
    except (OSError, AttributeError):
        return False
    return True


@pytest.mark.skipif(not _mallinfo2_available(), reason="needs glibc's mallinfo2")
def test_bound_heap_growth_keeps_freed_image_sized_blocks_out_of_the_heap() -> None:
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}

    def probe(mode: str, **extra: str) -> list[str]:
        done = subprocess.run([sys.executable, "-c", _MMAP_PROBE, mode], capture_output=True, text=True,
                              env={**env, **extra}, check=True)
        return done.stdout.split()

    assert probe("dynamic") == ["None", "0"]  # glibc's default: the 2 MB block lands in the heap
    assert probe("fixed") == ["True", "1"]
    # a threshold the user set is obeyed, not overridden
    assert probe("fixed", MALLOC_MMAP_THRESHOLD_="33554432") == ["False", "0"]
