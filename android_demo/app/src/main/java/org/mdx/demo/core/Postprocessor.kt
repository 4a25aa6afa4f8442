package org.mdx.demo.core

import java.nio.ByteBuffer
import java.nio.ByteOrder

/** One image's result: the decided class, every class's probability, and the rule that decided. */
class Prediction(val classIndex: Int, val label: String, val probabilities: FloatArray, val rule: String) {
    val probability: Float get() = probabilities[classIndex]

    /** Class indices by falling probability; ties keep the lower index first. */
    fun topK(k: Int): List<Int> =
        probabilities.indices.sortedWith(Comparator { a, b ->
            val byProb = probabilities[b].compareTo(probabilities[a])
            if (byProb != 0) byProb else a.compareTo(b)
        }).take(k)
}

/**
 * The model's output tensor -> probabilities -> a decision, by the same rules as the Python harness
 * (mdx.runtime.classifier.to_probabilities and mdx.runtime.metrics.predict_classes):
 * dequantize int8/uint8; softmax for logits (a 1-column head: sigmoid, giving [1 - p, p]);
 * with 2 classes the positive class wins when P(positive) >= threshold (0.5 when none), else argmax.
 */
class Postprocessor(private val spec: ModelSpec) {
    val outputBytes: Int = spec.columns * spec.output.type.bytes

    fun allocateOutput(): ByteBuffer = ByteBuffer.allocateDirect(outputBytes).order(ByteOrder.nativeOrder())

    /** The output tensor's values as float32 (dequantized), read from position 0 in [out]'s byte order. */
    fun read(out: ByteBuffer): FloatArray {
        if (out.capacity() < outputBytes) {
            throw IllegalArgumentException("output buffer holds ${out.capacity()} bytes; the model writes $outputBytes")
        }
        val t = spec.output
        return FloatArray(spec.columns) { i ->
            when (t.type) {
                TensorType.FLOAT32 -> out.getFloat(4 * i)
                TensorType.INT8 -> Quantization.dequantize(out.get(i).toInt(), t.scale, t.zeroPoint)
                TensorType.UINT8 -> Quantization.dequantize(out.get(i).toInt() and 0xFF, t.scale, t.zeroPoint)
            }
        }
    }

    fun probabilities(raw: FloatArray): FloatArray {
        if (raw.size != spec.columns) throw IllegalArgumentException("got ${raw.size} outputs; the model has ${spec.columns}")
        if (spec.columns == 1) {
            val p = if (spec.outputKind == OutputKind.PROBABILITIES) raw[0] else sigmoid(raw[0])
            return floatArrayOf(1f - p, p)
        }
        return if (spec.outputKind == OutputKind.PROBABILITIES) raw.copyOf() else softmax(raw)
    }

    fun decide(probabilities: FloatArray): Prediction {
        val index = if (probabilities.size == 2) {
            val positive = spec.positiveIndex
            // float32 comparison, as numpy compares a float32 array with a Python float threshold
            if (probabilities[positive] >= (spec.threshold ?: 0.5f)) positive else 1 - positive
        } else {
            argmax(probabilities)
        }
        return Prediction(index, spec.labels[index], probabilities, spec.ruleText())
    }

    /** read -> probabilities -> decide. */
    fun predict(out: ByteBuffer): Prediction = decide(probabilities(read(out)))

    companion object {
        /** First index of the largest value (numpy's argmax). */
        fun argmax(values: FloatArray): Int {
            var best = 0
            for (i in 1 until values.size) if (values[i] > values[best]) best = i
            return best
        }

        /** Shifted by the maximum so large logits do not overflow. */
        fun softmax(logits: FloatArray): FloatArray {
            val top = logits[argmax(logits)]
            val exp = FloatArray(logits.size) { i -> Math.exp((logits[i] - top).toDouble()).toFloat() }
            var sum = 0f
            for (e in exp) sum += e
            return FloatArray(exp.size) { i -> exp[i] / sum }
        }

        fun sigmoid(x: Float): Float = (1.0 / (1.0 + Math.exp(-x.toDouble()))).toFloat()
    }
}
