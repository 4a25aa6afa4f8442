package org.mdx.demo.core

import java.nio.ByteBuffer
import java.nio.ByteOrder
import org.junit.Assert.assertArrayEquals
import org.junit.Assert.assertEquals
import org.junit.Assert.assertTrue
import org.junit.Assert.fail
import org.junit.Test

/** The tensor rules on hand-computed cases; GoldenVectorsTest checks them against real model outputs. */
class CoreTest {
    private fun config(
        input: String = """{"dtype": "float32", "scale": 0.0, "zero_point": 0}""",
        output: String = """{"dtype": "float32", "scale": 0.0, "zero_point": 0, "columns": 2, "kind": "probabilities"}""",
        threshold: String = "null",
        labels: String = """["NORMAL", "PNEUMONIA"]"""
    ): String {
        val inputFields = input.trim().removePrefix("{").removeSuffix("}")
        return """
        {"format": 1, "variant": "int8", "model": {"file": "model.tflite", "sha256": "ab", "bytes": 1},
         "labels": $labels,
         "input": {"size": 16, "channels": 3, "mean": [127.5, 127.5, 127.5], "std": [127.5, 127.5, 127.5], $inputFields},
         "output": $output,
         "decision": {"threshold": $threshold, "positive_index": 1},
         "sample": null}
        """
    }

    private fun expectSpecError(text: String, fragment: String) {
        try {
            ModelSpec.fromJson(text)
            fail("expected a SpecException mentioning '$fragment'")
        } catch (e: SpecException) {
            assertTrue("message '${e.message}' should mention '$fragment'", e.message!!.contains(fragment))
        }
    }

    @Test
    fun miniJson_nestedValuesAndEscapes_parsed() {
        val value = MiniJson.parse("""{"a": [1, -2.5e1, true, null], "b": "x\"\u00e9\n"}""") as Map<*, *>
        assertEquals(listOf(1.0, -25.0, true, null), value["a"])
        assertEquals("x\"\u00e9\n", value["b"])
    }

    @Test
    fun miniJson_trailingComma_rejectedWithOffset() {
        try {
            MiniJson.parse("[1, 2,]")
            fail("expected an error")
        } catch (e: IllegalArgumentException) {
            assertTrue(e.message!!, e.message!!.contains("offset 6"))
        }
    }

    @Test
    fun quantize_halfwayValues_roundAwayFromZero() {
        // 0.5 and -0.5 steps: TFLite rounds half away from zero, not to even
        assertEquals(1, Quantization.quantize(0.5f, 1f, 0, TensorType.INT8))
        assertEquals(-1, Quantization.quantize(-0.5f, 1f, 0, TensorType.INT8))
        assertEquals(3, Quantization.quantize(2.5f, 1f, 0, TensorType.INT8))
        assertEquals(-128, Quantization.quantize(-1000f, 1f, 0, TensorType.INT8))
        assertEquals(255, Quantization.quantize(1000f, 1f, 0, TensorType.UINT8))
        assertEquals(128 + 3, Quantization.quantize(0.75f, 0.25f, 128, TensorType.UINT8))
    }

    @Test
    fun preprocessor_int8Input_tableMatchesFormula() {
        val spec = ModelSpec.fromJson(config(input = """{"dtype": "int8", "scale": 0.0078125, "zero_point": -1}"""))
        val pre = Preprocessor(spec)
        val pixels = IntArray(16 * 16) { 0xFF000000.toInt() or (255 shl 16) or (0 shl 8) or 128 }
        val out = pre.fill(pixels, pre.allocateInput())
        // R=255 -> 1.0 -> 128 - 1 = 127; G=0 -> -1.0 -> -128 - 1 -> clamp -128; B=128 -> 0.0039 -> round(0.5)=1 - 1 = 0
        assertEquals(127, out.get(0).toInt())
        assertEquals(-128, out.get(1).toInt())
        assertEquals(0, out.get(2).toInt())
        assertEquals(16 * 16 * 3, pre.inputBytes)
    }

    @Test
    fun preprocessor_floatInput_rgbOrderAndFormula() {
        val pre = Preprocessor(ModelSpec.fromJson(config()))
        val pixels = IntArray(16 * 16) { 0xFF000000.toInt() or (0 shl 16) or (255 shl 8) or 51 }
        val values = pre.normalize(pixels)
        assertArrayEquals(floatArrayOf(-1f, 1f, (51f - 127.5f) / 127.5f), values.copyOfRange(0, 3), 0f)
        val buffer = pre.fill(pixels, ByteBuffer.allocate(pre.inputBytes).order(ByteOrder.LITTLE_ENDIAN))
        assertEquals(1f, buffer.getFloat(4), 0f)
    }

    @Test
    fun preprocessor_wrongPixelCount_rejected() {
        val pre = Preprocessor(ModelSpec.fromJson(config()))
        try {
            pre.normalize(IntArray(10))
            fail("expected an error")
        } catch (e: IllegalArgumentException) {
            assertTrue(e.message!!, e.message!!.contains("16x16"))
        }
    }

    @Test
    fun postprocessor_logits_softmaxApplied() {
        val spec = ModelSpec.fromJson(config(output = """{"dtype": "float32", "scale": 0.0, "zero_point": 0, "columns": 2, "kind": "logits"}"""))
        val probs = Postprocessor(spec).probabilities(floatArrayOf(0f, Math.log(3.0).toFloat()))
        assertArrayEquals(floatArrayOf(0.25f, 0.75f), probs, 1e-6f)
    }

    @Test
    fun postprocessor_oneSigmoidColumn_givesTwoClasses() {
        val spec = ModelSpec.fromJson(config(output = """{"dtype": "float32", "scale": 0.0, "zero_point": 0, "columns": 1, "kind": "logits"}"""))
        val probs = Postprocessor(spec).probabilities(floatArrayOf(0f))
        assertArrayEquals(floatArrayOf(0.5f, 0.5f), probs, 0f)
    }

    @Test
    fun postprocessor_int8Output_dequantized() {
        val spec = ModelSpec.fromJson(config(output = """{"dtype": "int8", "scale": 0.00390625, "zero_point": -128, "columns": 2, "kind": "probabilities"}"""))
        val post = Postprocessor(spec)
        val out = post.allocateOutput()
        out.put(0, (-128 + 64).toByte()).put(1, (-128 + 192).toByte())
        assertArrayEquals(floatArrayOf(0.25f, 0.75f), post.read(out), 0f)
    }

    @Test
    fun decide_probabilityEqualToThreshold_isPositive() {
        val post = Postprocessor(ModelSpec.fromJson(config(threshold = "0.25")))
        assertEquals(1, post.decide(floatArrayOf(0.75f, 0.25f)).classIndex)
        assertEquals(0, post.decide(floatArrayOf(0.76f, 0.24f)).classIndex)
        assertEquals("PNEUMONIA", post.decide(floatArrayOf(0.75f, 0.25f)).label)
    }

    @Test
    fun decide_threeClasses_argmaxAndTopK() {
        val spec = ModelSpec.fromJson(config(
            output = """{"dtype": "float32", "scale": 0.0, "zero_point": 0, "columns": 3, "kind": "probabilities"}""",
            labels = """["A", "B", "C"]"""))
        val prediction = Postprocessor(spec).decide(floatArrayOf(0.2f, 0.5f, 0.3f))
        assertEquals("B", prediction.label)
        assertEquals(listOf(1, 2, 0), prediction.topK(3))
    }

    @Test
    fun modelSpec_quantizedInputWithoutScale_rejected() {
        expectSpecError(config(input = """{"dtype": "int8", "scale": 0.0, "zero_point": 0}"""), "input.scale")
    }

    @Test
    fun modelSpec_thresholdWithThreeClasses_rejected() {
        expectSpecError(config(
            output = """{"dtype": "float32", "scale": 0.0, "zero_point": 0, "columns": 3, "kind": "probabilities"}""",
            labels = """["A", "B", "C"]""", threshold = "0.5"), "decision.threshold")
    }

    @Test
    fun modelSpec_unknownInputType_rejected() {
        expectSpecError(config(input = """{"dtype": "float16", "scale": 0.0, "zero_point": 0}"""), "float16")
    }

    @Test
    fun modelSpec_labelCountDiffersFromOutputs_rejected() {
        expectSpecError(config(labels = """["A", "B", "C"]"""), "labels has 3 names for 2 classes")
    }
}
