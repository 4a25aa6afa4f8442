"""A heatmap over its image as PNG bytes, with Pillow alone (a core dependency: no matplotlib on a board).

Only the positive part of the map is drawn (what supports the class), scaled to its own maximum, in
a dark-red-to-yellow ramp whose opacity grows with the value, so unimportant regions show the image.
"""

from __future__ import annotations

import io

import numpy as np

from .images import _pil

MIN_SIDE = 256  # small inputs (128 px) are enlarged by a whole factor so the title and the map stay legible
TITLE_HEIGHT = 22
# (value, R, G, B): black-body-like ramp, readable on grey X-rays
_RAMP = np.array([[0.0, 80, 0, 0], [0.4, 200, 30, 0], [0.7, 255, 140, 0], [1.0, 255, 255, 90]], dtype=np.float64)


def colorize(heatmap: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(RGB float (H, W, 3) in 0..255, opacity (H, W) in 0..0.6) for the positive part of `heatmap`."""
    positive = np.clip(np.asarray(heatmap, dtype=np.float64), 0.0, None)
    top = positive.max()
    value = positive / top if top > 0 else positive
    rgb = np.stack([np.interp(value, _RAMP[:, 0], _RAMP[:, c]) for c in (1, 2, 3)], axis=-1)
    return rgb, 0.6 * value


def blend(pixels: np.ndarray, heatmap: np.ndarray) -> np.ndarray:
    """uint8 (H, W, 3): the image with the map drawn over it (map and image of the same H x W)."""
    rgb, alpha = colorize(heatmap)
    mixed = pixels.astype(np.float64) * (1.0 - alpha[..., None]) + rgb * alpha[..., None]
    return np.clip(mixed + 0.5, 0, 255).astype(np.uint8)


def overlay_image(pixels: np.ndarray, heatmap: np.ndarray, title: str):
    """A PIL image: the title on a black band above the blended image, enlarged to at least MIN_SIDE."""
    Image, _ = _pil()
    from PIL import ImageDraw, ImageFont

    picture = Image.fromarray(blend(pixels, heatmap))
    factor = max(1, -(-MIN_SIDE // max(picture.size)))
    if factor > 1:
        picture = picture.resize((picture.width * factor, picture.height * factor), Image.Resampling.NEAREST)
    canvas = Image.new("RGB", (picture.width, picture.height + TITLE_HEIGHT), (0, 0, 0))
    canvas.paste(picture, (0, TITLE_HEIGHT))
    try:
        font = ImageFont.load_default(size=15)
    except TypeError:  # Pillow < 10.1: the bitmap font has one size
        font = ImageFont.load_default()
    ImageDraw.Draw(canvas).text((4, 3), title, fill=(255, 255, 255), font=font)
    return canvas


def overlay_png(pixels: np.ndarray, heatmap: np.ndarray, title: str) -> bytes:
    """`overlay_image` encoded as PNG."""
    buffer = io.BytesIO()
    overlay_image(pixels, heatmap, title).save(buffer, format="PNG")
    return buffer.getvalue()
