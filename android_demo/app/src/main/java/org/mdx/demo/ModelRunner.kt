package org.mdx.demo

import android.content.ContentResolver
import android.content.Context
import android.graphics.Bitmap
import android.graphics.BitmapFactory
import android.net.Uri
import android.os.SystemClock
import java.io.Closeable
import java.io.FileInputStream
import java.nio.MappedByteBuffer
import java.nio.channels.FileChannel
import java.util.Locale
import org.mdx.demo.core.ModelSpec
import org.mdx.demo.core.Postprocessor
import org.mdx.demo.core.Prediction
import org.mdx.demo.core.Preprocessor
import org.mdx.demo.core.TensorSpec
import org.tensorflow.lite.Interpreter
import org.tensorflow.lite.Tensor

/** One classification: the decision and how long each step took. */
class Timed(val prediction: Prediction, val preprocessMs: Double, val inferenceMs: Double)

/**
 * The Android-only half: assets, bitmaps and the LiteRT interpreter. Every tensor rule lives in
 * org.mdx.demo.core (plain Kotlin, unit-tested on the JVM against the Python harness's golden vectors).
 * Not thread-safe: use it from one worker thread.
 */
class ModelRunner(private val context: Context) : Closeable {
    val spec: ModelSpec = ModelSpec.fromJson(
        context.assets.open("model_config.json").bufferedReader().use { it.readText() }
    )
    private val preprocessor = Preprocessor(spec)
    private val postprocessor = Postprocessor(spec)
    private val input = preprocessor.allocateInput()
    private val output = postprocessor.allocateOutput()
    private val pixels = IntArray(spec.size * spec.size)
    private val interpreter: Interpreter = Interpreter(mapModel(), Interpreter.Options().setNumThreads(2))

    init {
        checkTensor(interpreter.getInputTensor(0), spec.input, "input")
        checkTensor(interpreter.getOutputTensor(0), spec.output, "output")
        val shape = interpreter.getInputTensor(0).shape()
        if (shape.size != 4 || shape[1] != spec.size || shape[2] != spec.size || shape[3] != 3) {
            throw IllegalStateException("model input ${shape.contentToString()} is not [1, ${spec.size}, ${spec.size}, 3]")
        }
    }

    /** Memory-maps the model from the APK; openFd works only because build.gradle.kts keeps .tflite uncompressed. */
    private fun mapModel(): MappedByteBuffer =
        context.assets.openFd(spec.modelFile).use { fd ->
            FileInputStream(fd.fileDescriptor).use { stream ->
                stream.channel.map(FileChannel.MapMode.READ_ONLY, fd.startOffset, fd.declaredLength)
            }
        }

    /** The exported config and the model file must describe the same tensors, or every result is wrong. */
    private fun checkTensor(tensor: Tensor, expected: TensorSpec, what: String) {
        val type = tensor.dataType().name.lowercase(Locale.ROOT)
        val params = tensor.quantizationParams()
        val sameQuantization = !expected.type.quantized ||
            (params.scale == expected.scale && params.zeroPoint == expected.zeroPoint)
        if (type != expected.type.jsonName || !sameQuantization) {
            throw IllegalStateException(
                "model $what is $type (scale ${params.scale}, zero point ${params.zeroPoint}) but model_config.json " +
                    "says ${expected.type.jsonName} (${expected.scale}, ${expected.zeroPoint}); re-run mdx export android"
            )
        }
    }

    fun loadSample(): Bitmap? {
        val sample = spec.sample ?: return null
        return context.assets.open(sample.file).use { decode(it) }
    }

    fun loadImage(resolver: ContentResolver, uri: Uri): Bitmap =
        resolver.openInputStream(uri)?.use { decode(it) } ?: throw IllegalArgumentException("cannot open $uri")

    private fun decode(stream: java.io.InputStream): Bitmap {
        val options = BitmapFactory.Options().apply { inPreferredConfig = Bitmap.Config.ARGB_8888 }
        return BitmapFactory.decodeStream(stream, null, options)
            ?: throw IllegalArgumentException("not an image Android can decode")
    }

    fun classify(bitmap: Bitmap): Timed {
        val started = SystemClock.elapsedRealtimeNanos()
        // Android's bilinear resize is not PIL's (the harness's), so a picked image can differ slightly
        // from `mdx predict`; the exported sample is already at model size and skips this step.
        val scaled = if (bitmap.width == spec.size && bitmap.height == spec.size) bitmap
        else Bitmap.createScaledBitmap(bitmap, spec.size, spec.size, true)
        val argb = if (scaled.config == Bitmap.Config.ARGB_8888) scaled else scaled.copy(Bitmap.Config.ARGB_8888, false)
        argb.getPixels(pixels, 0, spec.size, 0, 0, spec.size, spec.size)
        preprocessor.fill(pixels, input)
        val prepared = SystemClock.elapsedRealtimeNanos()
        output.clear()
        interpreter.run(input, output)
        val done = SystemClock.elapsedRealtimeNanos()
        return Timed(postprocessor.predict(output), (prepared - started) / 1e6, (done - prepared) / 1e6)
    }

    override fun close() = interpreter.close()
}
