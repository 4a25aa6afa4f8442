package org.mdx.demo.core

import java.util.Locale

/** The tensor element types the exporter allows (float32, int8, uint8), as the interpreters name them. */
enum class TensorType(val jsonName: String, val bytes: Int, val min: Int, val max: Int) {
    FLOAT32("float32", 4, 0, 0),
    INT8("int8", 1, -128, 127),
    UINT8("uint8", 1, 0, 255);

    val quantized: Boolean get() = this != FLOAT32

    companion object {
        fun of(name: String, where: String): TensorType =
            values().firstOrNull { it.jsonName == name }
                ?: throw SpecException("$where is '$name'; the app runs float32, int8 or uint8 tensors")
    }
}

/** A model_config.json that the app cannot use; the message names the key and the fix. */
class SpecException(message: String) :
    IllegalArgumentException("model_config.json: $message; re-run `mdx export android RUN --app android_demo`")

/** One tensor's type and per-tensor quantization (scale 0 and zero point 0 for float32). */
class TensorSpec(val type: TensorType, val scale: Float, val zeroPoint: Int)

/** How the model's output columns become probabilities (decided once by the exporter, not per image). */
enum class OutputKind(val jsonName: String) { PROBABILITIES("probabilities"), LOGITS("logits") }

/** The bundled sample image and what the Python harness predicted for it. */
class Sample(val file: String, val source: String, val probabilities: FloatArray, val classIndex: Int)

/**
 * Everything the app needs to turn pixels into a model input and the output into a decision, as
 * written by `mdx export android` into assets/model_config.json. Nothing here is a hand-copied
 * constant: a changed mean or scale must come from a new export.
 */
class ModelSpec(
    val variant: String,
    val modelFile: String,
    val modelSha256: String,
    val labels: List<String>,
    val size: Int,
    val mean: FloatArray,
    val std: FloatArray,
    val input: TensorSpec,
    val output: TensorSpec,
    val columns: Int,
    val outputKind: OutputKind,
    val threshold: Float?,
    val positiveIndex: Int,
    val sample: Sample?
) {
    val numClasses: Int get() = if (columns == 1) 2 else columns

    /** The decision rule in words, e.g. "P(PNEUMONIA) >= 0.731, else NORMAL". */
    fun ruleText(): String {
        if (numClasses != 2) return "argmax over ${labels.size} classes"
        val t = threshold ?: 0.5f
        return "P(${labels[positiveIndex]}) >= ${String.format(Locale.ROOT, "%.3f", t)}, else ${labels[1 - positiveIndex]}"
    }

    companion object {
        const val FORMAT = 1

        /** Parse and validate model_config.json; throws SpecException naming the bad key. */
        fun fromJson(text: String): ModelSpec {
            val root = try {
                MiniJson.parse(text)
            } catch (e: IllegalArgumentException) {
                throw SpecException(e.message ?: "invalid JSON")
            }
            val top = obj(root, "the top level")
            val format = int(top, "format", "format")
            if (format != FORMAT) throw SpecException("format is $format; this app reads format $FORMAT")
            val model = obj(top["model"], "model")
            val inp = obj(top["input"], "input")
            val out = obj(top["output"], "output")
            val decision = obj(top["decision"], "decision")
            val labels = list(top["labels"], "labels").mapIndexed { i, v -> v as? String ?: throw SpecException("labels[$i] is not a string") }

            val size = int(inp, "size", "input.size")
            if (size < 16 || size > 4096) throw SpecException("input.size is $size; expected 16 to 4096")
            val channels = int(inp, "channels", "input.channels")
            if (channels != 3) throw SpecException("input.channels is $channels; the app feeds RGB (3 channels)")
            val mean = floats(inp["mean"], "input.mean", 3)
            val std = floats(inp["std"], "input.std", 3)
            if (std.any { it <= 0f }) throw SpecException("input.std has a value <= 0")
            val input = tensor(inp, "input")
            val output = tensor(out, "output")
            val columns = int(out, "columns", "output.columns")
            if (columns < 1) throw SpecException("output.columns is $columns; expected 1 or more")
            val kindName = str(out, "kind", "output.kind")
            val kind = OutputKind.values().firstOrNull { it.jsonName == kindName }
                ?: throw SpecException("output.kind is '$kindName'; expected probabilities or logits")
            val classes = if (columns == 1) 2 else columns
            if (labels.size != classes) throw SpecException("labels has ${labels.size} names for $classes classes")

            val threshold = optFloat(decision["threshold"], "decision.threshold")
            if (threshold != null && (classes != 2 || threshold < 0f || threshold > 1f)) {
                throw SpecException("decision.threshold $threshold needs 2 classes and a value from 0 to 1")
            }
            val positive = if (decision["positive_index"] == null) 1 else int(decision, "positive_index", "decision.positive_index")
            if (classes == 2 && positive != 0 && positive != 1) throw SpecException("decision.positive_index is $positive; expected 0 or 1")

            return ModelSpec(
                variant = str(top, "variant", "variant"),
                modelFile = str(model, "file", "model.file"),
                modelSha256 = str(model, "sha256", "model.sha256"),
                labels = labels,
                size = size, mean = mean, std = std,
                input = input, output = output, columns = columns, outputKind = kind,
                threshold = threshold, positiveIndex = positive,
                sample = sample(top["sample"], classes)
            )
        }

        private fun sample(value: Any?, classes: Int): Sample? {
            if (value == null) return null
            val s = obj(value, "sample")
            val probs = floats(s["probabilities"], "sample.probabilities", classes)
            val index = int(s, "class_index", "sample.class_index")
            if (index < 0 || index >= classes) throw SpecException("sample.class_index is $index; expected 0 to ${classes - 1}")
            return Sample(str(s, "file", "sample.file"), str(s, "source", "sample.source"), probs, index)
        }

        private fun tensor(m: Map<String, Any?>, where: String): TensorSpec {
            val type = TensorType.of(str(m, "dtype", "$where.dtype"), "$where.dtype")
            if (!type.quantized) return TensorSpec(type, 0f, 0)
            val scale = optFloat(m["scale"], "$where.scale") ?: 0f
            if (!(scale > 0f) || scale.isInfinite()) throw SpecException("$where.scale is $scale; a ${type.jsonName} tensor needs a positive scale")
            val zp = int(m, "zero_point", "$where.zero_point")
            if (zp < type.min || zp > type.max) throw SpecException("$where.zero_point $zp is outside ${type.jsonName}")
            return TensorSpec(type, scale, zp)
        }

        @Suppress("UNCHECKED_CAST")
        private fun obj(value: Any?, where: String): Map<String, Any?> =
            value as? Map<String, Any?> ?: throw SpecException("$where is missing or not an object")

        private fun list(value: Any?, where: String): List<Any?> =
            value as? List<Any?> ?: throw SpecException("$where is missing or not a list")

        private fun str(m: Map<String, Any?>, key: String, where: String): String =
            m[key] as? String ?: throw SpecException("$where is missing or not a string")

        private fun int(m: Map<String, Any?>, key: String, where: String): Int {
            val d = m[key] as? Double ?: throw SpecException("$where is missing or not a number")
            if (d != Math.floor(d) || Math.abs(d) > Int.MAX_VALUE) throw SpecException("$where is $d; expected an integer")
            return d.toInt()
        }

        // JSON holds the float32 values as exact doubles (Python floats), so toFloat() gives back the same float32.
        private fun optFloat(value: Any?, where: String): Float? {
            if (value == null) return null
            val d = value as? Double ?: throw SpecException("$where is not a number")
            return d.toFloat()
        }

        private fun floats(value: Any?, where: String, count: Int): FloatArray {
            val items = list(value, where)
            if (items.size != count) throw SpecException("$where has ${items.size} values; expected $count")
            return FloatArray(count) { i -> optFloat(items[i], "$where[$i]") ?: throw SpecException("$where[$i] is null") }
        }
    }
}
