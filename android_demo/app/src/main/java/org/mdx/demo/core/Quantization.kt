package org.mdx.demo.core

/**
 * float <-> int8/uint8 exactly as the Python harness (mdx.runtime.classifier) and TFLite's reference
 * QUANTIZE kernel do it, in float32 arithmetic so the JVM produces the same bytes as numpy.
 */
object Quantization {
    /** round(x / scale) half away from zero, plus the zero point, clamped to the type's range. */
    fun quantize(x: Float, scale: Float, zeroPoint: Int, type: TensorType): Int {
        val scaled = x / scale
        val magnitude = Math.floor((Math.abs(scaled) + 0.5f).toDouble()).toFloat()
        val rounded = if (scaled < 0f) -magnitude else magnitude
        val shifted = rounded + zeroPoint.toFloat()
        return when {
            shifted.isNaN() -> zeroPoint
            shifted < type.min -> type.min
            shifted > type.max -> type.max
            else -> shifted.toInt()
        }
    }

    /** (q - zeroPoint) * scale. */
    fun dequantize(q: Int, scale: Float, zeroPoint: Int): Float = (q - zeroPoint).toFloat() * scale
}
