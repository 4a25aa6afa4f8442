package org.mdx.demo.core

import java.nio.ByteBuffer
import java.nio.ByteOrder

/**
 * ARGB pixels at the model's size (resizing is Android's job, done before this) -> the model's input
 * tensor: RGB, NHWC, `(pixel - mean) / std`, quantized when the input is int8/uint8.
 *
 * Alpha is ignored: the exported sample and chest X-rays are opaque. The float value of each channel
 * depends on the 8-bit pixel value alone, so it is computed once per value into a table: the same
 * float32 arithmetic as numpy, 256 times instead of size*size*3 times.
 */
class Preprocessor(private val spec: ModelSpec) {
    val pixelCount: Int = spec.size * spec.size
    val inputBytes: Int = pixelCount * 3 * spec.input.type.bytes
    private val floats = FloatArray(3 * 256)
    private val quantized = ByteArray(3 * 256)

    init {
        for (c in 0 until 3) {
            for (v in 0 until 256) {
                val f = (v.toFloat() - spec.mean[c]) / spec.std[c]
                floats[c * 256 + v] = f
                if (spec.input.type.quantized) {
                    quantized[c * 256 + v] = Quantization.quantize(f, spec.input.scale, spec.input.zeroPoint, spec.input.type).toByte()
                }
            }
        }
    }

    /** A direct buffer in native byte order, as the interpreter wants it. */
    fun allocateInput(): ByteBuffer = ByteBuffer.allocateDirect(inputBytes).order(ByteOrder.nativeOrder())

    /** The normalized float input (before any quantization), H*W*3 values in RGB order. */
    fun normalize(pixels: IntArray): FloatArray {
        checkSize(pixels)
        val out = FloatArray(pixelCount * 3)
        for (i in 0 until pixelCount) {
            val p = pixels[i]
            out[3 * i] = floats[(p shr 16) and 0xFF]
            out[3 * i + 1] = floats[256 + ((p shr 8) and 0xFF)]
            out[3 * i + 2] = floats[512 + (p and 0xFF)]
        }
        return out
    }

    /** Write the model input for [pixels] into [out] from position 0, in [out]'s byte order; returns [out] rewound. */
    fun fill(pixels: IntArray, out: ByteBuffer): ByteBuffer {
        checkSize(pixels)
        if (out.capacity() < inputBytes) {
            throw IllegalArgumentException("input buffer holds ${out.capacity()} bytes; the model needs $inputBytes")
        }
        out.clear()
        val table = if (spec.input.type.quantized) null else floats
        for (i in 0 until pixelCount) {
            val p = pixels[i]
            val r = (p shr 16) and 0xFF
            val g = 256 + ((p shr 8) and 0xFF)
            val b = 512 + (p and 0xFF)
            if (table != null) {
                out.putFloat(table[r]).putFloat(table[g]).putFloat(table[b])
            } else {
                out.put(quantized[r]).put(quantized[g]).put(quantized[b])
            }
        }
        out.rewind()
        return out
    }

    private fun checkSize(pixels: IntArray) {
        if (pixels.size != pixelCount) {
            throw IllegalArgumentException("got ${pixels.size} pixels; the model takes ${spec.size}x${spec.size} = $pixelCount (resize first)")
        }
    }
}
