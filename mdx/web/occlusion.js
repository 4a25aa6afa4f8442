// Occlusion sensitivity in the page: runtime/occlusion.py's occlusion_map line for line (docs/explain.md
// states the algorithm; a change there must change this file too), and runtime/overlay.py's colours.
// The model takes one image per run here (the page's model has its batch fixed at 1), so the sweep
// runs one occluded copy at a time and yields to the browser between slices of runs: the page stays
// responsive and can show progress. The map does not depend on how copies are grouped.

// Patch starts along one axis: 0, stride, 2*stride, ... and `length - patch` last, so the edge is covered.
export function positions(length, patch, stride) {
  const starts = [];
  for (let s = 0; s <= length - patch; s += stride) starts.push(s);
  if (starts[starts.length - 1] !== length - patch) starts.push(length - patch);
  return starts;
}

// All (y, x) patch corners, y-major, as the Python list comprehension orders them.
export function corners(height, width, patch, stride) {
  const out = [];
  for (const y of positions(height, patch, stride)) {
    for (const x of positions(width, patch, stride)) out.push([y, x]);
  }
  return out;
}

// Refuses what runtime's Occlusion and check_fits refuse, in the page's words.
export function checkOcclusion(occlusion, size) {
  const {patch, stride, fill} = occlusion || {};
  const whole = (v) => Number.isInteger(v) && v >= 1;
  if (!whole(patch) || !whole(stride) || stride > patch || patch > size ||
      !Array.isArray(fill) || fill.length !== 3 || !fill.every(Number.isFinite)) {
    return `model_config.json occlusion ${JSON.stringify(occlusion)} is not a patch of 1..${size} px, a stride ` +
           'of 1..patch and 3 fill values: re-export the page with mdx export web';
  }
  return null;
}

const nextTurn = () => new Promise((resolve) => setTimeout(resolve, 0));

/**
 * How much p(target) drops when each pixel is occluded (runtime/occlusion.py's occlusion_map).
 *
 * @param {(data: ArrayLike<number>) => Promise<number[]>} predict one model-input tensor -> probabilities
 * @param {Float32Array|Uint8Array} input the unoccluded model input (size x size x 3, quantized if the model is)
 * @param {number} size the input side
 * @param {number} target the class index followed
 * @param {number} base p(target) of the unoccluded input
 * @param {{patch: number, stride: number, fill: ArrayLike<number>}} occlusion fill in the input's own units
 * @param {(done: number, total: number) => void} onProgress called after every slice
 * @param {number} sliceMs run copies back to back for about this long, then let the browser draw
 * @returns {Promise<{map: Float32Array, runs: number}>} map (size * size, row-major), model runs (copies + 1)
 */
export async function occlusionMap(predict, input, size, target, base, occlusion, onProgress, sliceMs = 40) {
  const {patch: p, stride, fill} = occlusion;
  const all = corners(size, size, p, stride);
  // float64 sums, as numpy's total and count; the mean is float32 at the end, as the harness returns it
  const total = new Float64Array(size * size);
  const count = new Float64Array(size * size);
  const copy = new input.constructor(input.length);
  let since = performance.now();
  for (let k = 0; k < all.length; k++) {
    const [y, x] = all[k];
    copy.set(input);
    for (let r = y; r < y + p; r++) {
      for (let c = x; c < x + p; c++) {
        const at = (r * size + c) * 3;
        copy[at] = fill[0];
        copy[at + 1] = fill[1];
        copy[at + 2] = fill[2];
      }
    }
    const drop = base - (await predict(copy))[target];
    for (let r = y; r < y + p; r++) {
      for (let c = x; c < x + p; c++) {
        total[r * size + c] += drop;
        count[r * size + c] += 1;
      }
    }
    if (performance.now() - since >= sliceMs || k === all.length - 1) {
      onProgress(k + 1, all.length);
      await nextTurn();
      since = performance.now();
    }
  }
  return {map: Float32Array.from(total, (t, i) => t / count[i]), runs: all.length + 1};
}

// runtime/overlay.py's ramp: (value, R, G, B), dark red to yellow
const RAMP = [[0.0, 80, 0, 0], [0.4, 200, 30, 0], [0.7, 255, 140, 0], [1.0, 255, 255, 90]];

function interp(v, channel) {
  let i = 1;
  while (i < RAMP.length - 1 && v > RAMP[i][0]) i += 1;
  const [a, b] = [RAMP[i - 1], RAMP[i]];
  const t = Math.min(1, Math.max(0, (v - a[0]) / (b[0] - a[0])));
  return a[channel] + t * (b[channel] - a[channel]);
}

// overlay.blend: the positive part scaled to its maximum, opacity 0.6 x value, over the model-size pixels.
export function blend(rgba, map) {
  let top = 0;
  for (const v of map) top = Math.max(top, v);
  const out = new Uint8ClampedArray(rgba.length);
  for (let i = 0; i < map.length; i++) {
    const value = top > 0 ? Math.max(0, map[i]) / top : 0;
    const alpha = 0.6 * value;
    for (let c = 0; c < 3; c++) {
      const mixed = rgba[i * 4 + c] * (1 - alpha) + interp(value, c + 1) * alpha;
      out[i * 4 + c] = Math.floor(Math.min(255, Math.max(0, mixed + 0.5)));
    }
    out[i * 4 + 3] = 255;
  }
  return out;
}
