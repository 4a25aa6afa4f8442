package org.mdx.demo

import android.app.Activity
import android.content.Intent
import android.graphics.Bitmap
import android.os.Bundle
import android.widget.Button
import android.widget.ImageView
import android.widget.TextView
import java.util.Locale
import java.util.concurrent.ExecutorService
import java.util.concurrent.Executors
import org.mdx.demo.core.Sample

/**
 * Pick an image (or run the bundled sample X-ray) and show the class, its probability and the
 * inference time. A plain Activity, no AndroidX: the only dependency is LiteRT.
 */
class MainActivity : Activity() {
    private lateinit var pick: Button
    private lateinit var sampleButton: Button
    private lateinit var image: ImageView
    private lateinit var result: TextView
    private lateinit var details: TextView
    private val worker: ExecutorService = Executors.newSingleThreadExecutor()
    private var runner: ModelRunner? = null

    override fun onCreate(savedInstanceState: Bundle?) {
        super.onCreate(savedInstanceState)
        setContentView(R.layout.activity_main)
        pick = findViewById(R.id.pick)
        sampleButton = findViewById(R.id.sample)
        image = findViewById(R.id.image)
        result = findViewById(R.id.result)
        details = findViewById(R.id.details)
        pick.setOnClickListener {
            val intent = Intent(Intent.ACTION_GET_CONTENT).setType("image/*").addCategory(Intent.CATEGORY_OPENABLE)
            startActivityForResult(intent, PICK_IMAGE)
        }
        sampleButton.setOnClickListener { runSample() }
        worker.execute {
            try {
                val loaded = ModelRunner(applicationContext)
                runner = loaded
                runOnUiThread {
                    pick.isEnabled = true
                    sampleButton.isEnabled = loaded.spec.sample != null
                }
                runSample()
            } catch (e: Exception) {
                showError("cannot load the model: ${e.message}")
            }
        }
    }

    override fun onActivityResult(requestCode: Int, resultCode: Int, data: Intent?) {
        super.onActivityResult(requestCode, resultCode, data)
        val uri = data?.data
        if (requestCode != PICK_IMAGE || resultCode != RESULT_OK || uri == null) return
        val model = runner ?: return
        worker.execute {
            try {
                classify(model.loadImage(contentResolver, uri), null, uri.lastPathSegment ?: "picked image")
            } catch (e: Exception) {
                showError("cannot classify the image: ${e.message}")
            }
        }
    }

    private fun runSample() {
        val model = runner ?: return
        worker.execute {
            try {
                val bitmap = model.loadSample() ?: return@execute
                classify(bitmap, model.spec.sample, "sample ${model.spec.sample?.source}")
            } catch (e: Exception) {
                showError("cannot run the sample: ${e.message}")
            }
        }
    }

    /** Runs on the worker thread. */
    private fun classify(bitmap: Bitmap, sample: Sample?, name: String) {
        val model = runner ?: return
        val timed = model.classify(bitmap)
        val p = timed.prediction
        val spec = model.spec
        val lines = StringBuilder()
        lines.append(name).append('\n')
        lines.append("rule: ").append(p.rule).append('\n')
        for (k in p.topK(spec.labels.size)) {
            lines.append(String.format(Locale.ROOT, "  %-12s %.4f%n", spec.labels[k], p.probabilities[k]))
        }
        lines.append(String.format(Locale.ROOT, "inference %.1f ms, preprocessing %.1f ms%n", timed.inferenceMs, timed.preprocessMs))
        if (sample != null) {
            // The sample is golden image 0 at model size: the Python harness's result must reappear here.
            var worst = 0f
            for (k in sample.probabilities.indices) worst = maxOf(worst, Math.abs(sample.probabilities[k] - p.probabilities[k]))
            val same = sample.classIndex == p.classIndex
            lines.append(String.format(Locale.ROOT, "Python harness: %s, max |Δp| = %.5f (%s)%n",
                spec.labels[sample.classIndex], worst, if (same) "same class" else "DIFFERENT CLASS"))
        }
        lines.append("model: ${spec.variant}, ${spec.size}x${spec.size} ${spec.input.type.jsonName} in, sha256 ${spec.modelSha256.take(12)}…")
        val headline = String.format(Locale.ROOT, "%s  %.1f%%", p.label, 100f * p.probability)
        runOnUiThread {
            image.setImageBitmap(bitmap)
            result.text = headline
            details.text = lines.toString()
        }
    }

    private fun showError(message: String) = runOnUiThread {
        result.text = message
    }

    override fun onDestroy() {
        // close on the worker, after any running classification, never under it
        worker.execute { runner?.close() }
        worker.shutdown()
        super.onDestroy()
    }

    companion object {
        private const val PICK_IMAGE = 1
    }
}
