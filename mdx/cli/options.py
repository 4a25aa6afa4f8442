"""Help texts of the options several commands share, so that each option reads the same in every `--help`."""

RUNTIME_HELP = "Interpreter: auto (ai-edge-litert, then tflite-runtime, then tensorflow.lite), litert, tflite-runtime or tf."
THRESHOLD_HELP = "Binary: P(positive) at or above it is positive (default: the model's recorded threshold, else 0.5)."
PATCH_HELP = "Occlusion patch side in pixels (default: a seventh of the input side)."
STRIDE_HELP = "Pixels between patch positions (default: the patch; smaller is finer and slower)."
FILL_HELP = "Pixel value 0..255 the patch is filled with (default: the preprocessing mean, a grey)."
