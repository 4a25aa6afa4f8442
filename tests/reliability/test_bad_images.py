"""Bad and odd image files through `mdx predict` / `mdx evaluate` / `python -m runtime predict`.

Unusable files: a single image given to predict fails in one line naming it (exit 1); inside a data
folder it is skipped with a warning naming it, and the rest is evaluated (exit 0). Odd but valid
files (RGBA, 16-bit, grey, palette, EXIF-rotated, a PNG named .jpg) are converted, and the pixels
the model sees are checked against what the image shows.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageOps
from reliability_support import BAD_IMAGES, JPEG, assert_fails, dicom_bytes, golden, mdx, python_m_runtime

from mdx.runtime.errors import InputDataError
from mdx.runtime.images import load_image

SIZE = 16  # the golden models' input: images made at this size are not resampled, so pixels compare exactly


@pytest.mark.parametrize("case", list(BAD_IMAGES), ids=list(BAD_IMAGES))
def test_mdx_predict_bad_image_exits_1_naming_file(case: str, tmp_path: Path, no_probe: None) -> None:
    bad = BAD_IMAGES[case]
    path = tmp_path / bad.name
    path.write_bytes(bad.content())
    line = assert_fails(mdx("predict", golden(), path), 1, str(path), bad.says)
    assert line.count(str(path)) >= 1


def test_mdx_predict_missing_image_exits_1_naming_file(tmp_path: Path, no_probe: None) -> None:
    assert_fails(mdx("predict", golden(), tmp_path / "gone.png"), 1, f"{tmp_path / 'gone.png'}: no such file")


@pytest.mark.parametrize("case", list(BAD_IMAGES), ids=list(BAD_IMAGES))
def test_mdx_evaluate_bad_image_in_folder_skipped_with_warning(case: str, xray_dir: Path, no_probe: None) -> None:
    bad = BAD_IMAGES[case]
    path = xray_dir / "NORMAL" / bad.name
    path.write_bytes(bad.content())
    result = mdx("evaluate", golden(), xray_dir, "--n-boot", "0")
    assert result.exit_code == 0, result.output
    warnings = [line for line in result.output.splitlines() if line.startswith("skipped")]
    assert len(warnings) == 1 and str(path) in warnings[0] and bad.says in warnings[0], result.output
    assert "4 samples" in result.output  # the four real X-rays were still evaluated


def test_mdx_evaluate_non_image_suffix_in_folder_named_in_warning(xray_dir: Path, no_probe: None) -> None:
    (xray_dir / "NORMAL" / "readme.txt").write_text("where these came from")
    (xray_dir / "NORMAL" / ".DS_Store").write_bytes(b"\0")  # hidden files are not data: no warning
    result = mdx("evaluate", golden(), xray_dir, "--n-boot", "0")
    assert result.exit_code == 0, result.output
    warnings = [line for line in result.output.splitlines() if line.startswith("skipped")]
    assert len(warnings) == 1, result.output
    assert "readme.txt: not an image file (suffix '.txt'); images end in .jpg" in warnings[0]


def test_python_m_runtime_predict_truncated_image_exits_1_one_line(tmp_path: Path) -> None:
    path = tmp_path / "truncated.jpeg"
    path.write_bytes(JPEG[: len(JPEG) // 3])
    assert_fails(python_m_runtime("predict", golden(), path), 1, str(path), "image file is truncated")


# ---- odd but valid images: converted, and the pixels are right ------------------------------------------

def _pattern() -> np.ndarray:
    """16x16 RGB with four differently coloured quadrants and a gradient: every orientation differs."""
    image = np.zeros((SIZE, SIZE, 3), np.uint8)
    image[:8, :8] = (200, 30, 30)
    image[:8, 8:] = (30, 200, 30)
    image[8:, :8] = (30, 30, 200)
    image[8:, 8:] = (230, 230, 230)
    image[:, :, 0] += np.arange(SIZE, dtype=np.uint8)[None, :]
    return image


def _grey() -> np.ndarray:
    return (np.arange(SIZE * SIZE).reshape(SIZE, SIZE) % 251).astype(np.uint8)


def _save(image: Image.Image, fmt: str, **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def _rgba() -> tuple[bytes, np.ndarray]:
    rgb = _pattern()
    alpha = np.full((SIZE, SIZE), 255, np.uint8)
    alpha[:4, :] = 0  # transparent rows become black: X-ray backgrounds are black
    rgba = np.dstack([rgb, alpha])
    expected = rgb.copy()
    expected[:4, :] = 0
    return _save(Image.fromarray(rgba, "RGBA"), "PNG"), expected


def _grey_la() -> tuple[bytes, np.ndarray]:
    grey = _grey()
    alpha = np.full((SIZE, SIZE), 255, np.uint8)
    alpha[-2:, :] = 0
    expected = np.repeat(grey[..., None], 3, axis=2)
    expected[-2:, :] = 0
    return _save(Image.fromarray(np.dstack([grey, alpha]), "LA"), "PNG"), expected


def _sixteen_bit() -> tuple[bytes, np.ndarray]:
    grey = _grey()
    wide = grey.astype(np.uint16) * 257  # 8-bit v -> 16-bit v*257: rescaling by 65535 gives v back exactly
    return _save(Image.fromarray(wide), "PNG"), np.repeat(grey[..., None], 3, axis=2)


def _grey_l() -> tuple[bytes, np.ndarray]:
    return _save(Image.fromarray(_grey(), "L"), "PNG"), np.repeat(_grey()[..., None], 3, axis=2)


def _palette() -> tuple[bytes, np.ndarray]:
    indices = (np.arange(SIZE * SIZE).reshape(SIZE, SIZE) % 4).astype(np.uint8)
    colours = np.array([[0, 0, 0], [255, 0, 0], [12, 200, 99], [250, 250, 250]], np.uint8)
    image = Image.fromarray(indices, "P")
    image.putpalette(colours.flatten().tolist() + [0] * (768 - 12))
    return _save(image, "PNG"), colours[indices]


def _palette_transparent() -> tuple[bytes, np.ndarray]:
    data, expected = _palette()
    image = Image.open(io.BytesIO(data))
    expected = expected.copy()
    expected[np.asarray(image) == 2] = 0  # colour 2 is declared transparent: black
    return _save(image, "PNG", transparency=2), expected


def _one_bit() -> tuple[bytes, np.ndarray]:
    bits = (_grey() % 2).astype(bool)
    return _save(Image.fromarray(bits), "PNG"), np.repeat((bits * 255).astype(np.uint8)[..., None], 3, axis=2)


def _png_named_jpg() -> tuple[bytes, np.ndarray]:
    return _save(Image.fromarray(_pattern()), "PNG"), _pattern()


def _exif(orientation: int, undo: Callable[[np.ndarray], np.ndarray]) -> Callable[[], tuple[bytes, np.ndarray]]:
    """A JPEG whose pixels are stored turned, with the EXIF tag that says how to show them.

    The expectation is the same JPEG decoded without the tag, then turned by numpy: exact, although
    JPEG itself is lossy."""

    def make() -> tuple[bytes, np.ndarray]:
        stored = Image.fromarray(_pattern())
        plain = _save(stored, "JPEG", quality=95)
        exif = Image.Exif()
        exif[0x0112] = orientation
        tagged = _save(stored, "JPEG", quality=95, exif=exif.tobytes())
        decoded = np.asarray(Image.open(io.BytesIO(plain)).convert("RGB"))
        return tagged, undo(decoded)

    return make


HANDLED = {
    "rgba_png": ("rgba.png", _rgba),
    "grey_alpha_png": ("la.png", _grey_la),
    "sixteen_bit_png": ("sixteen.png", _sixteen_bit),
    "grey_png": ("grey.png", _grey_l),
    "palette_png": ("palette.png", _palette),
    "palette_transparent_png": ("palette_t.png", _palette_transparent),
    "one_bit_png": ("bits.png", _one_bit),
    "png_named_jpg": ("actually_png.jpg", _png_named_jpg),
    "exif_rotate_180": ("exif3.jpg", _exif(3, lambda a: np.rot90(a, 2))),
    "exif_rotate_90_cw": ("exif6.jpg", _exif(6, lambda a: np.rot90(a, -1))),
    "exif_rotate_90_ccw": ("exif8.jpg", _exif(8, lambda a: np.rot90(a, 1))),
    "exif_mirrored": ("exif2.jpg", _exif(2, lambda a: a[:, ::-1])),
}


@pytest.mark.parametrize("case", list(HANDLED), ids=list(HANDLED))
def test_load_image_odd_format_converted_to_expected_pixels(case: str, tmp_path: Path) -> None:
    name, make = HANDLED[case]
    data, expected = make()
    path = tmp_path / name
    path.write_bytes(data)
    pixels = load_image(path, SIZE)
    assert pixels.shape == (SIZE, SIZE, 3) and pixels.dtype == np.uint8
    np.testing.assert_array_equal(pixels, expected)


def test_load_image_exif_rotation_really_turns_the_image(tmp_path: Path) -> None:
    data, _ = _exif(6, lambda a: np.rot90(a, -1))()
    (tmp_path / "exif6.jpg").write_bytes(data)
    pixels = load_image(tmp_path / "exif6.jpg", SIZE).astype(int)
    # stored top-left is red; turned 90 degrees clockwise, red is top-right and blue (bottom-left) top-left
    assert pixels[:8, 8:, 0].mean() > 150 and pixels[:8, 8:, 2].mean() < 80
    assert pixels[:8, :8, 2].mean() > 150 and pixels[:8, :8, 0].mean() < 100
    assert not np.array_equal(pixels, np.asarray(Image.open(tmp_path / "exif6.jpg").convert("RGB")))


def test_mdx_predict_odd_formats_same_probabilities_as_plain_rgb(tmp_path: Path, no_probe: None) -> None:
    """End to end: each odd file gives the model exactly the input its plain-RGB twin gives."""
    odd, plain = [], []
    for case, (name, make) in HANDLED.items():
        data, expected = make()
        (tmp_path / name).write_bytes(data)
        Image.fromarray(expected, "RGB").save(tmp_path / f"{case}_plain.png")
        odd.append(tmp_path / name)
        plain.append(tmp_path / f"{case}_plain.png")
    result = mdx("predict", golden(), *odd, *plain, "--top", "2", "--json", tmp_path / "p.json")
    assert result.exit_code == 0, result.output
    rows = json.loads((tmp_path / "p.json").read_text())["predictions"]
    probs = [{t["label"]: t["probability"] for t in row["top"]} for row in rows]
    for case, a, b in zip(HANDLED, probs[: len(odd)], probs[len(odd):]):
        assert a == pytest.approx(b, abs=1e-6), case


def test_load_image_without_exif_transpose_fails_rotation_check(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Protection removed: with EXIF orientation ignored, the pixel check above catches it."""
    data, expected = _exif(6, lambda a: np.rot90(a, -1))()
    (tmp_path / "exif6.jpg").write_bytes(data)
    monkeypatch.setattr(ImageOps, "exif_transpose", lambda image: image)
    assert not np.array_equal(load_image(tmp_path / "exif6.jpg", SIZE), expected)


def test_load_image_dicom_without_suffix_named_as_dicom(tmp_path: Path) -> None:
    (tmp_path / "IM0001").write_bytes(dicom_bytes())
    with pytest.raises(InputDataError, match=r"IM0001: DICOM is not supported by this build; export the image as PNG"):
        load_image(tmp_path / "IM0001", SIZE)
