"""Training-time augmentation on uint8 batches: flip, zoom, stretch, shift, shear, rotation (one affine warp), brightness, contrast."""

from __future__ import annotations

import math

from mdx.train.config import Augmentation
from mdx.train.keras_shim import tf


def _affine_params(batch: int, size: int, aug: Augmentation, seed_pair) -> tf.Tensor:
    """Per-image output->input affine maps about the image centre, as ImageProjectiveTransformV3 wants."""
    seeds = tf.random.experimental.stateless_split(seed_pair, 4)
    angle = tf.random.stateless_uniform([batch], seeds[0], -1.0, 1.0) * (aug.rotation_degrees * math.pi / 180.0)
    zoom = 1.0 + tf.random.stateless_uniform([batch], seeds[1], -aug.zoom, aug.zoom)
    shear = tf.random.stateless_uniform([batch], seeds[2], -aug.shear, aug.shear)
    stretch = 1.0 + tf.random.stateless_uniform(
        [2, batch], tf.random.experimental.stateless_fold_in(seed_pair, 4), -aug.stretch, aug.stretch)  # older draws unchanged
    zoom_x, zoom_y = zoom * stretch[0], zoom * stretch[1]
    cos, sin = tf.cos(angle), tf.sin(angle)
    # A = R(angle) @ [[1, shear], [0, 1]] @ diag(zoom_x, zoom_y)
    a00, a01 = cos * zoom_x, (cos * shear - sin) * zoom_y
    a10, a11 = sin * zoom_x, (sin * shear + cos) * zoom_y
    centre = (size - 1) / 2.0
    a02 = centre - a00 * centre - a01 * centre
    a12 = centre - a10 * centre - a11 * centre
    if aug.shift:
        shift = tf.random.stateless_uniform(
            [2, batch], tf.random.experimental.stateless_fold_in(seed_pair, 5), -aug.shift, aug.shift) * size
        # in output pixels, whatever the zoom: input = A (output - shift) + offset
        a02, a12 = a02 - (a00 * shift[0] + a01 * shift[1]), a12 - (a10 * shift[0] + a11 * shift[1])
    zeros = tf.zeros([batch])
    return tf.stack([a00, a01, a02, a10, a11, a12, zeros, zeros], axis=1)


def augment_batch(images: tf.Tensor, aug: Augmentation, seed_pair) -> tf.Tensor:
    """uint8/float (B, S, S, 3) pixels in [0, 255] -> augmented float32 pixels in [0, 255]."""
    images = tf.cast(images, tf.float32)
    batch, size = tf.shape(images)[0], images.shape[1]
    seeds = tf.random.experimental.stateless_split(seed_pair, 4)
    if aug.horizontal_flip:
        flip = tf.random.stateless_uniform([batch], seeds[0]) < 0.5
        images = tf.where(flip[:, None, None, None], tf.reverse(images, axis=[2]), images)
    if aug.zoom or aug.stretch or aug.shift or aug.shear or aug.rotation_degrees:
        transforms = _affine_params(batch, size, aug, seeds[1])
        images = tf.raw_ops.ImageProjectiveTransformV3(
            images=images,
            transforms=transforms,
            output_shape=tf.constant([size, size], dtype=tf.int32),
            fill_value=0.0,
            interpolation="BILINEAR",
            fill_mode="CONSTANT",
        )
    if aug.brightness:
        factor = 1.0 + tf.random.stateless_uniform([batch, 1, 1, 1], seeds[2], -aug.brightness, aug.brightness)
        images = tf.clip_by_value(images * factor, 0.0, 255.0)
    if aug.contrast:
        factor = 1.0 + tf.random.stateless_uniform([batch, 1, 1, 1], seeds[3], -aug.contrast, aug.contrast)
        mean = tf.reduce_mean(images, axis=[1, 2, 3], keepdims=True)
        images = tf.clip_by_value((images - mean) * factor + mean, 0.0, 255.0)
    return images
