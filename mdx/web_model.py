"""The model file the web page runs: the converted model with its batch dimension fixed at 1.

`mdx convert` leaves the batch dimension dynamic (shape_signature -1), and LiteRT.js 2.5.3 compares
an input tensor's type against the signature, so [1, S, S, 3] is refused as not [-1, S, S, 3] and it
has no resize call. Rewriting each -1 batch entry of every tensor's shape_signature to 1 (same bytes,
same length, in place) makes the signature the shape the model was built with; weights and ops are
untouched, and the export checks that the Python harness gets the same raw outputs from both files.
"""

from __future__ import annotations

import struct

from mdx.runtime.flatbuffer_table import root_table

# tflite schema field indices: Model.subgraphs, SubGraph.tensors, Tensor.shape, Tensor.shape_signature
_SUBGRAPHS, _TENSORS, _SHAPE, _SHAPE_SIGNATURE = 2, 0, 0, 7


def fix_batch(model: bytes) -> tuple[bytes, int]:
    """`model` with every shape_signature whose batch is -1 (and shape's batch 1) set to 1.

    Returns:
        The new bytes and how many tensors were changed.
    """
    buf = bytearray(model)
    changed = 0
    for subgraph in root_table(bytes(model)).tables(_SUBGRAPHS):
        for tensor in subgraph.tables(_TENSORS):
            at = tensor.vector_position(_SHAPE_SIGNATURE)
            shape = tensor.vector(_SHAPE, "i")
            dynamic = at and struct.unpack_from("<I", buf, at)[0] > 0 and struct.unpack_from("<i", buf, at + 4)[0] == -1
            if dynamic and shape[:1] == (1,):
                struct.pack_into("<i", buf, at + 4, 1)
                changed += 1
    return bytes(buf), changed
