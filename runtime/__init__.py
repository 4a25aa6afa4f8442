"""The portable runtime harness: numpy + a TFLite interpreter (ai-edge-litert, tflite-runtime or
TensorFlow's tf.lite) and optionally pillow. Never TensorFlow itself, and no sibling package, so this
folder alone can be copied to a board and run with `python -m runtime`. Relative imports only.
"""
