"""The app as a user opens it: manifest and resources link against Android's framework resources
(Debian's aapt2 and framework-res.apk), the model is stored uncompressed, and the Gradle files say so."""

from __future__ import annotations

import re
import subprocess
import zipfile
from pathlib import Path

from mdx.export_android import ASSETS

GRADLE = Path("app/build.gradle.kts")


def _link(android, app: Path, out: Path, *extra: str) -> zipfile.ZipFile:
    """aapt2 compile + link, as AGP's resource step does; AGP adds the package from `namespace`."""
    aapt2, framework = android.tool("aapt2"), android.tool("framework-res")
    out.mkdir()
    manifest_text = (app / "app/src/main/AndroidManifest.xml").read_text(encoding="utf-8")
    namespace = re.search(r'namespace\s*=\s*"([\w.]+)"', (app / GRADLE).read_text(encoding="utf-8")).group(1)
    manifest = out / "AndroidManifest.xml"
    manifest.write_text(manifest_text.replace("<manifest ", f'<manifest package="{namespace}" ', 1), encoding="utf-8")
    compiled = out / "res.zip"
    done = subprocess.run([str(aapt2), "compile", "--dir", str(app / "app/src/main/res"), "-o", str(compiled)],
                          check=False, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    apk = out / "app.apk"
    done = subprocess.run([str(aapt2), "link", "-o", str(apk), "-I", str(framework), "--manifest", str(manifest),
                           "--min-sdk-version", "23", "--target-sdk-version", "35", "--java", str(out / "gen"),
                           "-A", str(app / ASSETS), *extra, str(compiled)], check=False, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return zipfile.ZipFile(apk)


def test_aapt2_manifestAndResources_linkAgainstFrameworkRes(exported_apps, android, tmp_path):
    with _link(android, exported_apps["int8"], tmp_path / "out") as apk:
        names = set(apk.namelist())
    assert {"AndroidManifest.xml", "resources.arsc", "res/layout/activity_main.xml", "assets/model_config.json"} <= names
    r_java = (tmp_path / "out/gen/org/mdx/demo/R.java").read_text()
    for view in ("pick", "sample", "image", "result", "details"):  # the ids MainActivity finds
        assert re.search(rf"\bint {view}=", r_java), view


def test_aapt2_noCompressTflite_modelStoredOthersDeflated(exported_apps, android, tmp_path):
    # This aapt2 (Debian 10.0.0) matches -0 against ".tflite" with the dot; AGP matches "tflite" as a suffix.
    with _link(android, exported_apps["int8"], tmp_path / "stored", "-0", ".tflite") as apk:
        assert apk.getinfo("assets/model.tflite").compress_type == zipfile.ZIP_STORED
        assert apk.getinfo("assets/model_config.json").compress_type == zipfile.ZIP_DEFLATED
    # without the option the model is deflated, and AssetManager.openFd (the memory map) would fail on it
    with _link(android, exported_apps["int8"], tmp_path / "default") as apk:
        assert apk.getinfo("assets/model.tflite").compress_type == zipfile.ZIP_DEFLATED


def test_gradle_appModule_noCompressTfliteMinSdkAndLitert(android):
    text = (android.APP / GRADLE).read_text(encoding="utf-8")
    assert re.search(r'noCompress\s*\+=\s*"tflite"', text)
    assert int(re.search(r"minSdk\s*=\s*(\d+)", text).group(1)) >= 23
    assert 'applicationId = "org.mdx.demo"' in text
    assert re.search(r'implementation\("com\.google\.ai\.edge\.litert:litert:[\d.]+"\)', text)
    # the JVM tests read the exported config from the assets, in Gradle as here
    assert 'sourceSets["test"].resources.srcDir("src/main/assets")' in text


def test_core_sources_noAndroidImports(android):
    sources = sorted(android.CORE_MAIN.glob("*.kt")) + sorted(android.CORE_TEST.glob("*.kt"))
    assert len(sources) >= 6
    for source in sources:
        imports = re.findall(r"^import\s+([\w.]+)", source.read_text(encoding="utf-8"), flags=re.MULTILINE)
        assert not [i for i in imports if i.startswith(("android.", "androidx.", "org.tensorflow."))], source


def test_gitignore_exportedFiles_ignored(android):
    lines = (android.APP / ".gitignore").read_text(encoding="utf-8").splitlines()
    assert "app/src/main/assets/" in lines and "app/src/test/resources/golden/" in lines
