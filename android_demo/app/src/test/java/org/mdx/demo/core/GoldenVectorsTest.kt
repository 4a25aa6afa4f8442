package org.mdx.demo.core

import java.io.ByteArrayInputStream
import java.nio.ByteBuffer
import java.nio.ByteOrder
import javax.imageio.ImageIO
import org.junit.Assert.assertArrayEquals
import org.junit.Assert.assertEquals
import org.junit.Assert.assertTrue
import org.junit.Assert.fail
import org.junit.BeforeClass
import org.junit.Test

/**
 * The app's tensor code against what the Python harness computed for real test X-rays with the
 * exported model: pixels -> input tensor must be byte-identical, and the model's output must give the
 * same probabilities and the same decision.
 */
class GoldenVectorsTest {
    companion object {
        private lateinit var golden: Golden

        @BeforeClass
        @JvmStatic
        fun load() {
            golden = Golden.load()
        }

        /** Probabilities come from float32 exp in numpy and exp in Java: a few ulps apart at most. */
        const val PROBABILITY_TOLERANCE = 1e-6f
    }

    @Test
    fun goldenVectors_matchTheExportedModel_sameHashTypesAndSize() {
        val spec = golden.spec
        assertEquals("golden vectors were made for another model", golden.index["model_sha256"], spec.modelSha256)
        assertEquals("input dtype", golden.index["input_dtype"], spec.input.type.jsonName)
        assertEquals("output dtype", golden.index["output_dtype"], spec.output.type.jsonName)
        assertEquals("input size", golden.size, spec.size)
        assertTrue("no golden images", golden.count > 0)
    }

    @Test
    fun pixelsToInputTensor_realXrays_byteIdenticalToPythonHarness() {
        val pre = Preprocessor(golden.spec)
        // little-endian like the golden files (and like every Android ABI's native order)
        val buffer = ByteBuffer.allocate(pre.inputBytes).order(ByteOrder.LITTLE_ENDIAN)
        for (k in 0 until golden.count) {
            pre.fill(golden.pixels(k), buffer)
            val mine = ByteArray(pre.inputBytes)
            buffer.get(mine)
            val theirs = golden.inputBytes(k, pre.inputBytes)
            if (!mine.contentEquals(theirs)) fail(describeMismatch(k, mine, theirs))
        }
    }

    @Test
    fun outputToDecision_realXrays_matchesPythonHarness() {
        val post = Postprocessor(golden.spec)
        for (k in 0 until golden.count) {
            val image = golden.images[k]
            val raw = post.read(golden.outputBuffer(k, post.outputBytes))
            assertArrayEquals("dequantized output of image $k (${image.source})", image.outputFloat, raw, 0f)
            val probs = post.probabilities(raw)
            assertArrayEquals("probabilities of image $k (${image.source})", image.probabilities, probs, PROBABILITY_TOLERANCE)
            val prediction = post.decide(probs)
            assertEquals("decision for image $k (${image.source}) by ${prediction.rule}", image.classIndex, prediction.classIndex)
        }
    }

    @Test
    fun bundledSample_decodedOnTheJvm_isGoldenImageZero() {
        val sample = golden.spec.sample ?: return // an export without a sample has nothing to check here
        val image = ImageIO.read(ByteArrayInputStream(Golden.resource("/" + sample.file)))
            ?: throw AssertionError("${sample.file} is not a readable PNG")
        assertEquals("sample width", golden.size, image.width)
        assertEquals("sample height", golden.size, image.height)
        val argb = image.getRGB(0, 0, golden.size, golden.size, null, 0, golden.size)
        val expected = golden.pixels(0)
        for (i in argb.indices) {
            // compare RGB only: a PNG without alpha decodes as opaque, the golden pixels are opaque too
            if ((argb[i] and 0xFFFFFF) != (expected[i] and 0xFFFFFF)) fail("sample pixel $i differs from golden image 0")
        }
        assertArrayEquals("sample's expected probabilities", golden.images[0].probabilities, sample.probabilities, 0f)
        assertEquals("sample's expected class", golden.images[0].classIndex, sample.classIndex)
    }

    private fun describeMismatch(k: Int, mine: ByteArray, theirs: ByteArray): String {
        val type = golden.spec.input.type
        val width = type.bytes
        var differ = 0
        var first = -1
        for (i in 0 until mine.size / width) {
            var same = true
            for (b in 0 until width) if (mine[i * width + b] != theirs[i * width + b]) same = false
            if (!same) {
                differ++
                if (first < 0) first = i
            }
        }
        fun value(bytes: ByteArray, i: Int): String = when (type) {
            TensorType.FLOAT32 -> ByteBuffer.wrap(bytes).order(ByteOrder.LITTLE_ENDIAN).getFloat(4 * i).toString()
            TensorType.INT8 -> bytes[i].toString()
            TensorType.UINT8 -> (bytes[i].toInt() and 0xFF).toString()
        }
        return "pixels -> input tensor of image $k (${golden.images[k].source}): $differ of ${mine.size / width} values " +
            "differ from the Python harness, first at index $first (jvm ${value(mine, first)}, python ${value(theirs, first)}); " +
            "the preprocessing (mean/std/scale/zero point) in model_config.json or in Preprocessor.kt does not match the model's"
    }
}
