"""The portable runtime harness: numpy + a TFLite interpreter (ai-edge-litert, tflite-runtime or
TensorFlow's tf.lite) and optionally pillow. Never TensorFlow itself, and no sibling package, so this
folder alone can be copied to a board and run with `python -m runtime`. Relative imports only.

On a board (copy this folder and a variant folder holding model.tflite, labels.txt, record.json):

    pip install numpy pillow ai-edge-litert        # or tflite-runtime with numpy<2
    python -m runtime evaluate variant/model.tflite data/test --json eval.json
    python -m runtime bench variant/model.tflite --threads 1,2,4
    python -m runtime check variant/model.tflite data/test --reference fp32/model.tflite   # exit 3 on failure

Modules: interpreter (load, probe), classifier (TfliteClassifier), model_info (preprocessing, labels and the
recorded threshold), decision (which threshold applies), metrics, evaluate, predict, bench, parity (compare),
check (the parity gate), cli. evaluate, check and predict decide at the model's recorded threshold (in the
.tflite and its record.json), else 0.5; --threshold overrides it.
Nothing heavy is imported here, so `import mdx.runtime.errors` stays cheap for the mdx CLI.
"""
