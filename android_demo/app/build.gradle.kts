import org.jetbrains.kotlin.gradle.dsl.JvmTarget

plugins {
    id("com.android.application")
    id("org.jetbrains.kotlin.android")
}

android {
    namespace = "org.mdx.demo"
    compileSdk = 35

    defaultConfig {
        applicationId = "org.mdx.demo"
        minSdk = 23
        targetSdk = 35
        versionCode = 1
        versionName = "0.1.0"
    }

    buildTypes {
        release {
            isMinifyEnabled = false
        }
    }

    compileOptions {
        sourceCompatibility = JavaVersion.VERSION_17
        targetCompatibility = JavaVersion.VERSION_17
    }

    // The model is memory-mapped from the APK (AssetManager.openFd): that needs it stored, not deflated.
    // (AGP < 8: aaptOptions { noCompress "tflite" })
    androidResources {
        noCompress += "tflite"
    }

    // The JVM unit tests read the exported model_config.json and sample.png next to the golden vectors.
    sourceSets["test"].resources.srcDir("src/main/assets")
}

kotlin {
    compilerOptions {
        jvmTarget.set(JvmTarget.JVM_17)
    }
}

dependencies {
    // LiteRT (formerly TensorFlow Lite): org.tensorflow.lite.Interpreter
    implementation("com.google.ai.edge.litert:litert:1.4.1")
    testImplementation("junit:junit:4.13.2")
}

// The model, labels and golden vectors come from `mdx export android`, never by hand: fail early and say so.
val checkExport by tasks.registering {
    val config = layout.projectDirectory.file("src/main/assets/model_config.json").asFile
    val golden = layout.projectDirectory.file("src/test/resources/golden/golden.json").asFile
    doLast {
        if (!config.isFile || !golden.isFile) {
            throw GradleException(
                "no exported model in app/src/main/assets: run `mdx export android RUN --app android_demo` " +
                    "from the mdx repository first (see android_demo/README.md)"
            )
        }
    }
}
tasks.named("preBuild") { dependsOn(checkExport) }
