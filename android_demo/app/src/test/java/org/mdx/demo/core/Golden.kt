package org.mdx.demo.core

import java.nio.ByteBuffer
import java.nio.ByteOrder

/** One golden image: where it came from and what the Python harness computed for it. */
class GoldenImage(
    val source: String,
    val outputFloat: FloatArray,
    val probabilities: FloatArray,
    val classIndex: Int
)

/**
 * The golden vectors written by `mdx export android` into src/test/resources/golden, read from the
 * test classpath together with the exported assets/model_config.json (Gradle adds src/main/assets
 * to the test resources; the pytest runner puts both folders on the classpath).
 */
class Golden private constructor(
    val spec: ModelSpec,
    val index: Map<String, Any?>,
    val images: List<GoldenImage>,
    private val pixels: ByteArray,
    private val input: ByteArray,
    private val output: ByteArray
) {
    val count: Int get() = images.size
    val size: Int get() = (index["size"] as Double).toInt()

    /** ARGB pixels of image [k] at the model's size, as Android's Bitmap.getPixels returns them. */
    fun pixels(k: Int): IntArray {
        val n = size * size
        val buf = ByteBuffer.wrap(pixels, 4 * n * k, 4 * n).order(ByteOrder.LITTLE_ENDIAN)
        return IntArray(n) { buf.getInt() }
    }

    /** The exact input tensor bytes (little-endian) the Python harness fed the model for image [k]. */
    fun inputBytes(k: Int, length: Int): ByteArray = input.copyOfRange(k * length, (k + 1) * length)

    /** The raw output tensor bytes (little-endian) the model returned for image [k]. */
    fun outputBuffer(k: Int, length: Int): ByteBuffer =
        ByteBuffer.wrap(output.copyOfRange(k * length, (k + 1) * length)).order(ByteOrder.LITTLE_ENDIAN)

    companion object {
        private const val HINT = "run `mdx export android RUN --app android_demo` first"

        fun resource(path: String): ByteArray {
            val stream = Golden::class.java.getResourceAsStream(path)
                ?: throw AssertionError("no $path on the test classpath; $HINT")
            return stream.use { it.readBytes() }
        }

        @Suppress("UNCHECKED_CAST")
        fun load(): Golden {
            val spec = ModelSpec.fromJson(String(resource("/model_config.json"), Charsets.UTF_8))
            val index = MiniJson.parse(String(resource("/golden/golden.json"), Charsets.UTF_8)) as Map<String, Any?>
            val files = index["files"] as Map<String, Any?>
            fun file(key: String): ByteArray = resource("/golden/" + ((files[key] as Map<String, Any?>)["path"] as String))
            val images = (index["images"] as List<Any?>).map { item ->
                val m = item as Map<String, Any?>
                GoldenImage(
                    source = m["source"] as String,
                    outputFloat = floats(m["output_float"]),
                    probabilities = floats(m["probabilities"]),
                    classIndex = (m["class_index"] as Double).toInt()
                )
            }
            return Golden(spec, index, images, file("pixels"), file("input"), file("output"))
        }

        fun floats(value: Any?): FloatArray {
            val items = value as List<*>
            return FloatArray(items.size) { i -> (items[i] as Double).toFloat() }
        }
    }
}
