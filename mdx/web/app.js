// The page `mdx export web` writes: model_config.json + model.tflite, run by LiteRT.js in this tab.
// Preprocessing, quantization, probabilities and the decision follow the Python harness
// (runtime/preprocess.py, runtime/classifier.py, runtime/metrics.py) operation by operation in float32,
// so an image at the model's size gives the harness's probabilities; tests/web checks it in Chromium.
// Each image then gets runtime/'s occlusion map (occlusion.js), drawn beside it and kept in
// window.mdxHeatmaps for the tests, which compare it with the harness's.
import {loadAndCompile, loadLiteRt, Tensor} from './litert/core/index.js';
import {blend, checkOcclusion, occlusionMap} from './occlusion.js';

const FORMAT = 1; // model_contract.CONFIG_FORMAT
const MAX_BYTES = 64 * 1024 * 1024;
// A decoded image costs 4 bytes a pixel in the tab; 40 MP (160 MB) keeps a 20000 x 20000 bomb out.
const MAX_PIXELS = 40_000_000;
const HEADER_BYTES = 1024 * 1024; // JPEG dimensions sit after EXIF, which can be 64 KB or more
const f32 = Math.fround;

class PageError extends Error {}

const state = {config: null, model: null, threads: 1, queue: Promise.resolve(), pending: 0};
// one entry per drawn map, in the order the rows show: {file, target, base, map (size * size), runs, ms}
window.mdxHeatmaps = [];
const $ = (id) => document.getElementById(id);

function setStatus(text, name) {
  $('status').textContent = text;
  if (name) document.body.dataset.state = name;
}

function showError(message, file) {
  const item = document.createElement('li');
  item.textContent = message;
  if (file) item.dataset.file = file;
  $('errors').append(item);
}

async function fetchOk(url) {
  const response = await fetch(url);
  if (!response.ok) throw new PageError(`${url}: HTTP ${response.status}; re-export the page with mdx export web`);
  return response;
}

async function sha256Hex(bytes) {
  const digest = new Uint8Array(await crypto.subtle.digest('SHA-256', bytes));
  return Array.from(digest, (b) => b.toString(16).padStart(2, '0')).join('');
}

function checkConfig(config) {
  const input = config.input || {};
  const ok = config.format === FORMAT && Number.isInteger(input.size) && input.size > 0 &&
      [input.mean, input.std].every((v) => Array.isArray(v) && v.length === 3) &&
      Array.isArray(config.labels) && config.labels.length >= 2 && config.model && config.output;
  if (!ok) {
    throw new PageError(`model_config.json is not format ${FORMAT} with input size, mean, std, labels and ` +
                        'output: re-export the page with mdx export web');
  }
  const problem = checkOcclusion(config.occlusion, input.size);
  if (problem) throw new PageError(problem);
}

// The compiled model must be the one the config describes: shape, tensor types, output columns.
function checkModel(model, config) {
  const input = model.getInputDetails()[0];
  const output = model.getOutputDetails()[0];
  const size = config.input.size;
  const want = `1x${size}x${size}x3 ${config.input.dtype}`;
  const shape = Array.from(input.shape);
  if (shape[0] === -1) shape[0] = 1; // a resizable batch dimension takes one image
  const got = `${shape.join('x')} ${input.dtype}`;
  if (got !== want) {
    throw new PageError(`model.tflite input is ${got} but model_config.json says ${want}: re-export with mdx export web`);
  }
  const columns = output.shape[output.shape.length - 1];
  if (output.dtype !== config.output.dtype || columns !== config.output.columns) {
    throw new PageError(`model.tflite output is ${columns} ${output.dtype} columns but model_config.json says ` +
                        `${config.output.columns} ${config.output.dtype}: re-export with mdx export web`);
  }
}

function describeDecision(config) {
  const d = config.decision;
  if (d.threshold === null || d.threshold === undefined) {
    return config.labels.length === 2 ? `threshold 0.5 (${d.rule})` : 'the most probable class (argmax)';
  }
  return `threshold ${d.threshold} on ${config.labels[d.positive_index]} (${d.rule})`;
}

async function init() {
  try {
    const config = await (await fetchOk('model_config.json')).json();
    checkConfig(config);
    const bytes = new Uint8Array(await (await fetchOk(config.model.file)).arrayBuffer());
    const sha = await sha256Hex(bytes);
    if (sha !== config.model.sha256) {
      throw new PageError(`${config.model.file} sha256 ${sha.slice(0, 12)}… differs from model_config.json's ` +
                          `${String(config.model.sha256).slice(0, 12)}…: this is not the exported model; ` +
                          're-export the page with mdx export web');
    }
    // Threaded wasm needs SharedArrayBuffer, which needs cross-origin isolation (COOP/COEP: mdx serve sends them).
    const isolated = self.crossOriginIsolated === true;
    state.threads = isolated ? Math.max(1, Math.min(navigator.hardwareConcurrency || 1, 4)) : 1;
    await loadLiteRt('./litert/wasm/', {threads: state.threads > 1});
    const model = await loadAndCompile(bytes, {accelerator: 'wasm', cpuOptions: {numThreads: state.threads}});
    checkModel(model, config);
    state.config = config;
    state.model = model;
    const how = isolated ? 'cross-origin isolated' : 'not cross-origin isolated: serve with `mdx serve` for threads';
    const {patch, stride} = config.occlusion;
    $('facts').textContent = `${config.variant} model (${config.input.size} px, ${config.input.dtype} input), ` +
        `LiteRT.js wasm, ${state.threads} thread${state.threads > 1 ? 's' : ''} (${how}); ` +
        `decision: ${describeDecision(config)}; heatmap: occlusion patch ${patch} px, stride ${stride} px.`;
    setStatus('Ready: choose or drop images.', 'ready');
  } catch (error) {
    showError(`The model did not load: ${error.message}`);
    setStatus('The model did not load (see the error below); the page cannot classify until it is fixed.', 'error');
  }
}

const be32 = (b, i) => ((b[i] << 24) | (b[i + 1] << 16) | (b[i + 2] << 8) | b[i + 3]) >>> 0;
const be16 = (b, i) => (b[i] << 8) | b[i + 1];

// Width and height from the file's header, so an oversized image is refused before it is decoded.
function imageDimensions(b, name) {
  if (b.length >= 24 && be32(b, 0) === 0x89504e47 && be32(b, 4) === 0x0d0a1a0a && be32(b, 12) === 0x49484452) {
    return {kind: 'PNG', width: be32(b, 16), height: be32(b, 20)};
  }
  if (b.length >= 4 && b[0] === 0xff && b[1] === 0xd8) {
    let i = 2;
    while (i + 9 < b.length) {
      if (b[i] !== 0xff) break;
      const marker = b[i + 1];
      if (marker === 0xff) { i += 1; continue; }
      const isFrame = marker >= 0xc0 && marker <= 0xcf && ![0xc4, 0xc8, 0xcc].includes(marker);
      if (isFrame) return {kind: 'JPEG', width: be16(b, i + 7), height: be16(b, i + 5)};
      i += 2 + be16(b, i + 2);
    }
    throw new PageError(`${name}: a JPEG whose size is not in its first ${HEADER_BYTES >> 20} MB; re-save it as PNG`);
  }
  if (b.length >= 132 && String.fromCharCode(...b.subarray(128, 132)) === 'DICM') {
    throw new PageError(`${name}: DICOM is not read by this page; export the image as PNG first`);
  }
  throw new PageError(`${name}: not a PNG or JPEG image; choose a .png or .jpg file`);
}

async function decodePixels(file, size) {
  const head = new Uint8Array(await file.slice(0, HEADER_BYTES).arrayBuffer());
  const {kind, width, height} = imageDimensions(head, file.name);
  if (width * height > MAX_PIXELS) {
    throw new PageError(`${file.name}: ${width} x ${height} pixels is more than this page's ` +
                        `${MAX_PIXELS / 1e6} megapixel limit; downscale it first`);
  }
  let bitmap;
  try {
    // no colour management: the harness (PIL) ignores embedded ICC profiles too
    bitmap = await createImageBitmap(file, {colorSpaceConversion: 'none', premultiplyAlpha: 'none'});
  } catch {
    throw new PageError(`${file.name}: the ${kind} could not be decoded (truncated or damaged); replace the file`);
  }
  const canvas = new OffscreenCanvas(size, size);
  const context = canvas.getContext('2d', {willReadFrequently: true});
  context.fillStyle = '#000'; // transparency composites on black, as the harness does
  context.fillRect(0, 0, size, size);
  // At the model's size this is a copy; otherwise the browser's bilinear resize, close to PIL's but not bit-equal.
  context.imageSmoothingQuality = 'medium';
  context.drawImage(bitmap, 0, 0, size, size);
  bitmap.close();
  return {rgba: context.getImageData(0, 0, size, size).data, width, height};
}

// classifier.quantize of model-input values (float32 passes through), as numpy computes it.
function toInputDtype(values, config) {
  const {dtype, scale, zero_point: zeroPoint} = config.input;
  if (dtype === 'float32') return Float32Array.from(values);
  const qScale = f32(scale);
  return Uint8Array.from(values, (x) => {
    const scaled = f32(f32(x) / qScale);
    const rounded = Math.sign(scaled) * Math.floor(f32(Math.abs(scaled) + 0.5)); // half away from zero
    return Math.min(255, Math.max(0, rounded + zeroPoint));
  });
}

// Preprocessing.normalize then classifier.quantize, in float32 as numpy computes them.
function inputTensorData(rgba, config) {
  const {size, mean, std} = config.input;
  const m = mean.map(f32);
  const s = std.map(f32);
  const n = size * size;
  const x = new Float32Array(n * 3);
  for (let p = 0; p < n; p++) {
    for (let c = 0; c < 3; c++) x[p * 3 + c] = f32(f32(rgba[p * 4 + c] - m[c]) / s[c]);
  }
  return toInputDtype(x, config);
}

// One model run on one input tensor's data: the raw output values.
async function runModel(data) {
  const size = state.config.input.size;
  const input = new Tensor(data, [1, size, size, 3]);
  try {
    const outputs = await state.model.run(input);
    const raw = outputs[0].toTypedArray();
    outputs.forEach((t) => t.delete());
    return raw;
  } finally {
    input.delete();
  }
}

// classifier.to_probabilities with the kind the export recorded, then metrics.predict_classes.
function decide(raw, config) {
  const {dtype, scale, zero_point: zeroPoint, kind} = config.output;
  const values = Array.from(raw, (q) => (dtype === 'float32' ? q : f32(f32(q - zeroPoint) * f32(scale))));
  let probabilities;
  if (values.length === 1) {
    const p = kind === 'probabilities' ? values[0] : f32(1 / (1 + Math.exp(-values[0])));
    probabilities = [f32(1 - p), p];
  } else if (kind === 'probabilities') {
    probabilities = values;
  } else {
    const top = Math.max(...values);
    const exp = values.map((v) => f32(Math.exp(f32(v - top))));
    const sum = exp.reduce((a, b) => f32(a + b), 0);
    probabilities = exp.map((e) => f32(e / sum));
  }
  let index;
  if (probabilities.length === 2) {
    const positive = config.decision.positive_index ?? 1;
    const threshold = config.decision.threshold ?? 0.5;
    index = probabilities[positive] >= threshold ? positive : 1 - positive;
  } else {
    index = probabilities.indexOf(Math.max(...probabilities));
  }
  return {probabilities, index};
}

async function classify(file) {
  const {config, model} = state;
  if (!model) throw new PageError(`${file.name}: not classified, the model did not load (see the first error)`);
  if (file.size > MAX_BYTES) {
    throw new PageError(`${file.name}: ${(file.size / 1e6).toFixed(1)} MB is more than this page's ` +
                        `${MAX_BYTES / 1e6} MB limit; downscale or re-compress it`);
  }
  const {rgba, width, height} = await decodePixels(file, config.input.size);
  const data = inputTensorData(rgba, config);
  // the tensor's digest, compared with the harness's in tests: preprocessing must be bit-exact
  const inputSha256 = await sha256Hex(new Uint8Array(data.buffer));
  const started = performance.now();
  const raw = await runModel(data);
  const ms = performance.now() - started;
  return {...decide(raw, config), ms, width, height, inputSha256, rgba, data};
}

// The image's occlusion map for its decided class (what `mdx explain` follows), drawn over the
// model-size pixels in the row's heatmap cell, which shows progress meanwhile.
async function explain(file, result, row) {
  const {config} = state;
  const cell = row.querySelector('.heatmap');
  const note = cell.querySelector('span');
  if (!$('heatmaps').checked) {
    row.dataset.heatmap = 'off';
    note.textContent = 'off';
    return;
  }
  row.dataset.heatmap = 'running';
  const {size} = config.input;
  // the fill is in model-input units: quantized like any input value, so each copy equals the harness's
  const occlusion = {...config.occlusion, fill: toInputDtype(config.occlusion.fill, config)};
  const predict = async (data) => decide(await runModel(data), config).probabilities;
  const base = result.probabilities[result.index];
  const started = performance.now();
  const {map, runs} = await occlusionMap(predict, result.data, size, result.index, base, occlusion,
                                         (done, total) => { note.textContent = `heatmap ${done}/${total}`; });
  const ms = performance.now() - started;
  const canvas = document.createElement('canvas');
  canvas.width = size;
  canvas.height = size;
  canvas.title = `occlusion map of ${config.labels[result.index]}: brighter = hiding it lowers the probability more`;
  canvas.getContext('2d').putImageData(new ImageData(blend(result.rgba, map), size, size), 0, 0);
  cell.prepend(canvas);
  note.textContent = `${(ms / 1000).toFixed(1)} s, ${runs} runs`;
  window.mdxHeatmaps.push({file: file.name, target: result.index, base, map, runs, ms});
  row.dataset.heatmap = 'done';
  row.dataset.heatmapMs = String(ms);
  row.dataset.heatmapRuns = String(runs);
}

function showResult(file, result) {
  const {config} = state;
  const row = document.createElement('tr');
  row.dataset.file = file.name;
  row.dataset.classIndex = String(result.index);
  row.dataset.probabilities = JSON.stringify(result.probabilities);
  row.dataset.ms = String(result.ms);
  row.dataset.inputSha256 = result.inputSha256;
  const thumb = document.createElement('img');
  thumb.className = 'thumb';
  thumb.alt = file.name;
  thumb.src = URL.createObjectURL(file);
  const every = config.labels.map((label, k) => `${label} ${result.probabilities[k].toFixed(4)}`).join(', ');
  const heatmap = document.createElement('div');
  heatmap.className = 'heatmap';
  heatmap.append(document.createElement('span'));
  const cells = [thumb, heatmap, `${file.name} (${result.width} x ${result.height})`, config.labels[result.index],
                 result.probabilities[result.index].toFixed(4), every, result.ms.toFixed(2)];
  for (const cell of cells) {
    const td = document.createElement('td');
    if (typeof cell === 'string') td.textContent = cell; else td.append(cell);
    if (/^[\d.]+$/.test(td.textContent)) td.className = 'num';
    row.append(td);
  }
  $('results').tBodies[0].append(row);
  return row;
}

// One image at a time, in the order given; a failure shows its message and the queue goes on.
function enqueue(files) {
  for (const file of files) {
    state.pending += 1;
    document.body.dataset.pending = String(state.pending);
    state.queue = state.queue.then(async () => {
      try {
        const result = await classify(file);
        await explain(file, result, showResult(file, result));
      } catch (error) {
        showError(error instanceof PageError ? error.message : `${file.name}: ${error.message || error}`, file.name);
      } finally {
        state.pending -= 1;
        document.body.dataset.pending = String(state.pending);
      }
    });
  }
}

function wire() {
  const input = $('files');
  input.addEventListener('change', () => {
    enqueue(Array.from(input.files));
    input.value = '';
  });
  const drop = $('drop');
  for (const name of ['dragenter', 'dragover']) {
    drop.addEventListener(name, (event) => { event.preventDefault(); drop.classList.add('over'); });
  }
  drop.addEventListener('dragleave', () => drop.classList.remove('over'));
  drop.addEventListener('drop', (event) => {
    event.preventDefault();
    drop.classList.remove('over');
    enqueue(Array.from(event.dataTransfer.files));
  });
  window.addEventListener('unhandledrejection', (event) => showError(`unexpected: ${event.reason}`));
}

wire();
state.queue = init();
