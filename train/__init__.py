"""Training stages (TensorFlow, tf-keras, tfmot). Import `keras`/`tf` from `mdx.train.keras_shim`."""
