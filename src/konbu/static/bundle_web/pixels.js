// konbu/pixels.py in JavaScript: a decoded picture -> the uint8 [C, H, W] the model takes, the very
// bytes predict.py (pixels.model_input) hands it.
//
// Each function below mirrors the Python one of the same name, step for step, and borrows the
// arithmetic of the libraries pixels.py calls, because "close" is not enough: a pixel one grey
// level off moves the ink's centre of mass, and the digit lands a pixel away. So:
// - PIL's resampling (Resample.c): its filter coefficients, its two passes in Pillow 13's order, its
//   fixed-point rounding for 8-bit images and float32 storage between the passes for "F" images;
// - PIL's RGB -> L (ITU-R 601-2 in 16-bit fixed point) and alpha_composite (Convert.c, AlphaComposite.c);
// - PIL's RankFilter, whose border is the edge pixel repeated (ImagingExpand);
// - numpy's sums (pairwise, 8 accumulators per block of 128: the last bit of a centre of mass
//   decides where a digit lands) and round-half-to-even (np.round, Python's round).
// Plain functions on arrays, no DOM: node can run them too. A change to pixels.py needs the same
// change here: tests/test_bundle_web.py compares the two, byte for byte, through a real browser.

export const MAX_WORKING_SIDE = 1024;
export const NOISE_SIGMAS = 5.0;
export const INK_FLOOR = 0.15;
export const MIN_CONTRAST = 0.08;

export class PixelError extends Error {}
export class PixelShapeError extends Error {}
/** No stroke to normalise; the message starts "no digit found", as pixels.NoInkFound's. */
export class NoInkFound extends PixelError {}

// ---------------------------------------------------------------------------------------------
// Image modes: a browser's RGBA pixels -> RGB (the browser has already applied EXIF orientation)
// ---------------------------------------------------------------------------------------------

/** ImageData-like {width, height, data: RGBA bytes} -> {width, height, channels: 3, data: RGB bytes}.
 * A browser decodes every file to RGBA: grey files come as R = G = B, which converts back to the
 * same grey, so "L" and "RGB" need no telling apart. Transparency is flattened as _flatten_alpha does. */
export function toGreyOrRgb(rgba) {
  const { width, height, data } = rgba;
  const count = width * height;
  let opaque = true;
  for (let i = 3; i < data.length; i += 4) if (data[i] !== 255) { opaque = false; break; }
  const rgb = new Uint8Array(count * 3);
  if (opaque) {
    for (let i = 0; i < count; i++) {
      rgb[3 * i] = data[4 * i]; rgb[3 * i + 1] = data[4 * i + 1]; rgb[3 * i + 2] = data[4 * i + 2];
    }
    return { width, height, channels: 3, data: rgb };
  }
  return { width, height, channels: 3, data: flattenAlpha(data, count) };
}

/** PIL's "L" of one RGB pixel: 601-2 luma in 16-bit fixed point, rounded. */
function luma(r, g, b) {
  return (r * 19595 + g * 38470 + b * 7471 + 0x8000) >>> 16;
}

/** _flatten_alpha: onto white, unless the visible pixels are light, then onto black (see pixels.py). */
function flattenAlpha(data, count) {
  const alpha = new Float64Array(count);
  const weighted = new Float64Array(count);
  for (let i = 0; i < count; i++) {
    alpha[i] = data[4 * i + 3];
    weighted[i] = alpha[i] * luma(data[4 * i], data[4 * i + 1], data[4 * i + 2]);
  }
  const coverage = pairwiseSum(alpha);
  const lightInk = coverage > 0 && pairwiseSum(weighted) / coverage > 127.5;
  const background = lightInk ? 0 : 255;
  const rgb = new Uint8Array(count * 3);
  for (let i = 0; i < count; i++) {
    // Image.alpha_composite onto an opaque background, in its integer arithmetic (7 extra bits)
    const a = data[4 * i + 3];
    const coef1 = Math.floor((a * 255 * 255 * 128) / (a * 255 + 255 * (255 - a)));
    const coef2 = 255 * 128 - coef1;
    for (let c = 0; c < 3; c++) {
      const t = data[4 * i + c] * coef1 + background * coef2 + (0x80 << 7);
      rgb[3 * i + c] = ((((t >>> 8) + t) >>> 8) >>> 7);
    }
  }
  return rgb;
}

/** An RGB image -> its "L" bytes. */
function toGrey(image) {
  const count = image.width * image.height;
  if (image.channels === 1) return image.data;
  const grey = new Uint8Array(count);
  for (let i = 0; i < count; i++) grey[i] = luma(image.data[3 * i], image.data[3 * i + 1], image.data[3 * i + 2]);
  return grey;
}

// ---------------------------------------------------------------------------------------------
// The model input
// ---------------------------------------------------------------------------------------------

/** model_input: {width, height, channels: 1 or 3, data} -> uint8 [C, H, W] (a Uint8Array). */
export function modelInput(image, preprocess) {
  const [channels, height, width] = preprocess.image_shape.map(Number);
  if (preprocess.ink === "mnist" && channels === 1) {
    const box = Math.trunc(preprocess.ink_box || roundHalfEven((Math.min(height, width) * 20) / 28));
    if (height !== width) {
      throw new PixelShapeError("MNIST-style ink needs a square input, found image_shape " +
                                `[${channels}, ${height}, ${width}]`);
    }
    return mnistNormalise(toGrey(image), image.width, image.height, height, box);
  }
  let data = channels === 1 ? toGrey(image) : image.data;
  if (image.width !== width || image.height !== height) {
    // PIL's bilinear widens its filter when shrinking, i.e. anti-aliases like torchvision's Resize
    data = resample(data, image.width, image.height, channels, width, height, bilinear, "uint8");
  }
  const out = new Uint8Array(channels * height * width);   // HWC -> CHW
  for (let c = 0; c < channels; c++) {
    for (let i = 0; i < height * width; i++) out[c * height * width + i] = data[i * channels + c];
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// MNIST-style ink normalisation
// ---------------------------------------------------------------------------------------------

/** mnist_normalise: grey bytes [height, width] -> uint8 [size * size], white ink on black, centred by mass. */
export function mnistNormalise(grey, width, height, size = 28, box = 20) {
  if (!(1 <= box && box <= size)) {
    throw new PixelShapeError(`expected 1 <= ink box <= canvas size, found box ${box} and size ${size}`);
  }
  if (!width || !height) throw new PixelShapeError(`expected a non-empty image, found ${height}x${width}`);
  const fullScale = 255;   // _grey_as_float of uint8 pixels
  let pixels = Float64Array.from(grey);
  [pixels, width, height] = shrinkToWorkingSize(pixels, width, height);

  const plane = paperPlane(pixels, width, height);
  const residual = pixels.map((value, i) => value - plane[i]);
  const noiseLevel = NOISE_SIGMAS * noiseSigma(pixels, width, height);
  const dark = residual.map((value) => Math.max(-value - noiseLevel, 0));
  const light = residual.map((value) => Math.max(value - noiseLevel, 0));
  let ink = pairwiseSum(dark) > pairwiseSum(light) ? residual.map((value) => -value) : residual;

  const contrast = strongestInk(ink, width, height);
  if (contrast < MIN_CONTRAST * fullScale || contrast <= 2 * noiseLevel) {
    throw new NoInkFound(`no digit found (no ink found: the strongest mark differs from the background by ` +
                         `${Math.round((100 * contrast) / fullScale)}% of full scale, needs ${100 * MIN_CONTRAST}% ` +
                         "and twice the noise); pass an image of a digit with visible strokes");
  }
  const floor = Math.max(noiseLevel, INK_FLOOR * contrast);
  const strokes = dropSpecks(ink.map((value) => (value >= floor ? 1 : 0)), width, height);
  const touching = countNeighbours(strokes, width, height);
  const kept = (value, i) => strokes[i] || (touching[i] > 0 && value > noiseLevel);   // strokes and their edges
  ink = ink.map((value, i) => (kept(value, i) ? Math.min(value / contrast, 1.0) : 0.0));

  // the ink's bounding box
  let top = height, bottom = -1, left = width, right = -1;
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      if (ink[y * width + x] !== 0) {
        top = Math.min(top, y); bottom = Math.max(bottom, y); left = Math.min(left, x); right = Math.max(right, x);
      }
    }
  }
  const cropWidth = right - left + 1, cropHeight = bottom - top + 1;
  const cropped = new Float64Array(cropWidth * cropHeight);
  for (let y = 0; y < cropHeight; y++) {
    cropped.set(ink.subarray((top + y) * width + left, (top + y) * width + right + 1), y * cropWidth);
  }
  return pasteCentredByMass(...fitInBox(cropped, cropWidth, cropHeight, box), size);
}

function shrinkToWorkingSize(pixels, width, height) {
  const scale = MAX_WORKING_SIDE / Math.max(height, width);
  if (scale >= 1) return [pixels, width, height];
  const newWidth = Math.max(1, roundHalfEven(width * scale)), newHeight = Math.max(1, roundHalfEven(height * scale));
  const shrunk = resample(Float32Array.from(pixels), width, height, 1, newWidth, newHeight, boxFilter, "float32");
  return [Float64Array.from(shrunk), newWidth, newHeight];
}

function borderWidth(width, height) {
  return Math.max(1, roundHalfEven(0.04 * Math.min(height, width)));
}

function isBorder(x, y, width, height, strip) {
  // pixels.py's mask[strip:-strip, strip:-strip] = False: empty when the image is thinner than 2 strips
  const inside = y >= strip && y < height - strip && x >= strip && x < width - strip;
  return !inside;
}

/** _paper_plane: the paper's brightness as a plane, from medians of the border. */
function paperPlane(pixels, width, height) {
  const strip = borderWidth(width, height);
  const rowsMedian = (from, to) => median(pixels.subarray(from * width, to * width));
  const columnsMedian = (from, to) => {
    const values = [];
    for (let y = 0; y < height; y++) for (let x = from; x < to; x++) values.push(pixels[y * width + x]);
    return median(values);
  };
  const slopeY = (rowsMedian(Math.max(height - strip, 0), height) - rowsMedian(0, Math.min(strip, height))) /
                 Math.max(height - strip, 1);
  const slopeX = (columnsMedian(Math.max(width - strip, 0), width) - columnsMedian(0, Math.min(strip, width))) /
                 Math.max(width - strip, 1);
  const tilt = new Float64Array(width * height);
  const border = [];
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const i = y * width + x;
      tilt[i] = slopeY * (y - (height - 1) / 2) + slopeX * (x - (width - 1) / 2);
      if (isBorder(x, y, width, height, strip)) border.push(pixels[i] - tilt[i]);
    }
  }
  const level = median(border);
  return tilt.map((value) => level + value);
}

/** _noise_sigma: the deviation of pixel noise, from the median absolute difference of neighbours. */
function noiseSigma(pixels, width, height) {
  const differences = [];
  for (let y = 0; y + 1 < height; y++) {
    for (let x = 0; x < width; x++) differences.push(Math.abs(pixels[(y + 1) * width + x] - pixels[y * width + x]));
  }
  for (let y = 0; y < height; y++) {
    for (let x = 0; x + 1 < width; x++) differences.push(Math.abs(pixels[y * width + x + 1] - pixels[y * width + x]));
  }
  return differences.length ? (1.4826 * median(differences)) / Math.sqrt(2) : 0.0;
}

/** _strongest_ink: the largest second-largest of any 3x3 window (PIL's RankFilter(3, 7) on float32). */
function strongestInk(ink, width, height) {
  const values = Float32Array.from(ink);
  const at = (x, y) => values[Math.min(Math.max(y, 0), height - 1) * width + Math.min(Math.max(x, 0), width - 1)];
  const window = new Float32Array(9);
  let strongest = -Infinity;
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      let k = 0;
      for (let dy = -1; dy <= 1; dy++) for (let dx = -1; dx <= 1; dx++) window[k++] = at(x + dx, y + dy);
      window.sort();
      strongest = Math.max(strongest, window[7]);
    }
  }
  return strongest;
}

/** _count_neighbours: how many of each pixel's 8 neighbours are set. */
function countNeighbours(mask, width, height) {
  const counts = new Uint8Array(width * height);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      let count = 0;
      for (let dy = -1; dy <= 1; dy++) {
        for (let dx = -1; dx <= 1; dx++) {
          const ny = y + dy, nx = x + dx;
          if ((dy || dx) && ny >= 0 && ny < height && nx >= 0 && nx < width) count += mask[ny * width + nx];
        }
      }
      counts[y * width + x] = count;
    }
  }
  return counts;
}

/** _drop_specks: unset pixels with no set neighbour, unless only specks are set. */
function dropSpecks(strokes, width, height) {
  const neighbours = countNeighbours(strokes, width, height);
  const kept = strokes.map((set, i) => (set && neighbours[i] > 0 ? 1 : 0));
  return kept.some((set) => set) ? kept : strokes;
}

/** _fit_in_box: resize (float32, bilinear) so the longer side is `box`, aspect kept; clipped to [0, 1]. */
function fitInBox(ink, width, height, boxSide) {
  const scale = boxSide / Math.max(height, width);
  const newWidth = Math.max(1, roundHalfEven(width * scale)), newHeight = Math.max(1, roundHalfEven(height * scale));
  const resized = resample(Float32Array.from(ink), width, height, 1, newWidth, newHeight, bilinear, "float32");
  return [Float64Array.from(resized, (value) => Math.min(Math.max(value, 0), 1)), newWidth, newHeight];
}

/** _paste_centred_by_mass: the integer shift putting the centre of mass at size / 2, clipped inside. */
function pasteCentredByMass(digit, width, height, size) {
  const mass = pairwiseSum(digit);
  if (!(mass > 0)) {
    throw new NoInkFound("no digit found (no ink found after resizing); pass an image of a digit with visible strokes");
  }
  // digit.sum(axis=1): numpy sums each row pairwise; digit.sum(axis=0): row after row, in order
  const rowSums = new Float64Array(height), columnSums = new Float64Array(width);
  for (let y = 0; y < height; y++) {
    rowSums[y] = pairwiseSum(digit.subarray(y * width, (y + 1) * width));
    for (let x = 0; x < width; x++) columnSums[x] += digit[y * width + x];
  }
  const centreY = pairwiseSum(rowSums.map((sum, y) => sum * y)) / mass;
  const centreX = pairwiseSum(columnSums.map((sum, x) => sum * x)) / mass;
  const top = Math.min(Math.max(Math.floor(size / 2 - centreY + 0.5), 0), size - height);
  const left = Math.min(Math.max(Math.floor(size / 2 - centreX + 0.5), 0), size - width);
  const canvas = new Uint8Array(size * size);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) canvas[(top + y) * size + left + x] = roundHalfEven(digit[y * width + x] * 255);
  }
  return canvas;
}

// ---------------------------------------------------------------------------------------------
// numpy's arithmetic
// ---------------------------------------------------------------------------------------------

/** Python's round() and np.round: halves go to the even neighbour. */
export function roundHalfEven(value) {
  const rounded = Math.round(value);   // halves go up
  return Math.abs(value % 1) === 0.5 && rounded % 2 !== 0 ? rounded - 1 : rounded;
}

/** np.median: the middle value, or the mean of the two middle ones. */
function median(values) {
  const sorted = Float64Array.from(values).sort();
  const half = sorted.length >> 1;
  return sorted.length % 2 ? sorted[half] : (sorted[half - 1] + sorted[half]) / 2;
}

/** np.sum of a contiguous float64 array: numpy's pairwise summation (loops_utils.h). */
export function pairwiseSum(values, start = 0, count = values.length - start) {
  if (count < 8) {
    let sum = 0.0;
    for (let i = 0; i < count; i++) sum += values[start + i];
    return sum;
  }
  if (count <= 128) {
    const r = Array.from({ length: 8 }, (_, j) => values[start + j]);
    let i = 8;
    for (; i < count - (count % 8); i += 8) for (let j = 0; j < 8; j++) r[j] += values[start + i + j];
    let sum = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
    for (; i < count; i++) sum += values[start + i];
    return sum;
  }
  let half = Math.floor(count / 2);
  half -= half % 8;
  return pairwiseSum(values, start, half) + pairwiseSum(values, start + half, count - half);
}

// ---------------------------------------------------------------------------------------------
// PIL's resampling (Resample.c)
// ---------------------------------------------------------------------------------------------

const bilinear = { support: 1.0, filter: (x) => { x = Math.abs(x); return x < 1.0 ? 1.0 - x : 0.0; } };
const boxFilter = { support: 0.5, filter: (x) => (x > -0.5 && x <= 0.5 ? 1.0 : 0.0) };
const PRECISION_BITS = 32 - 8 - 2;

/** precompute_coeffs: per output pixel, the first input pixel, how many, and their weights. */
function coefficients(inSize, outSize, filter) {
  const scale = inSize / outSize;
  const filterScale = Math.max(scale, 1.0);
  const support = filter.support * filterScale;
  const bounds = [];
  for (let xx = 0; xx < outSize; xx++) {
    const centre = (xx + 0.5) * scale;
    const xmin = Math.max(Math.trunc(centre - support + 0.5), 0);
    const count = Math.min(Math.trunc(centre + support + 0.5), inSize) - xmin;
    const weights = [];
    let total = 0.0;
    for (let x = 0; x < count; x++) {
      const w = filter.filter((x + xmin - centre + 0.5) * (1.0 / filterScale));
      weights.push(w);
      total += w;
    }
    bounds.push({ xmin, weights: weights.map((w) => (total !== 0.0 ? w / total : w)) });
  }
  return bounds;
}

/** One pass along one axis; "uint8": PIL's 8-bit fixed point, "float32": double sums stored as float32. */
function pass(data, width, height, channels, outSize, filter, kind, horizontal) {
  const inSize = horizontal ? width : height;
  const outWidth = horizontal ? outSize : width, outHeight = horizontal ? height : outSize;
  const out = kind === "uint8" ? new Uint8Array(outWidth * outHeight * channels)
                               : new Float32Array(outWidth * outHeight);
  // normalize_coeffs_8bpc: 8-bit images sum integer weights of PRECISION_BITS bits, rounded half away from 0
  const fixed = (w) => Math.trunc((w < 0 ? -0.5 : 0.5) + w * (1 << PRECISION_BITS));
  const bounds = coefficients(inSize, outSize, filter).map(({ xmin, weights }) => ({
    xmin, weights: kind === "uint8" ? weights.map(fixed) : weights,
  }));
  for (let y = 0; y < outHeight; y++) {
    for (let x = 0; x < outWidth; x++) {
      const { xmin, weights } = bounds[horizontal ? x : y];
      for (let c = 0; c < channels; c++) {
        let sum = kind === "uint8" ? 1 << (PRECISION_BITS - 1) : 0.0;
        for (let k = 0; k < weights.length; k++) {
          const source = horizontal ? y * width + xmin + k : (xmin + k) * width + x;
          sum += data[source * channels + c] * weights[k];
        }
        out[(y * outWidth + x) * channels + c] =
          kind === "uint8" ? Math.min(Math.max(Math.floor(sum / (1 << PRECISION_BITS)), 0), 255) : sum;
      }
    }
  }
  return out;
}

/** Image.resize: two passes, each only when its size changes; same size: a copy. Pillow 13 runs the
 * vertical pass first when the height shrinks by more than twice as many pixels as the width does
 * (python-pillow/Pillow#9549; found by experiment to hold for "L", "RGB" and "F" images), else the
 * horizontal one; the order changes the rounding between the passes. */
function resample(data, width, height, channels, newWidth, newHeight, filter, kind) {
  if (newWidth === width && newHeight === height) return data.slice();
  const verticalFirst = newHeight < height && height - newHeight > 2 * (width - newWidth);
  let out = data;
  if (verticalFirst) {
    out = pass(out, width, height, channels, newHeight, filter, kind, false);
    if (newWidth !== width) out = pass(out, width, newHeight, channels, newWidth, filter, kind, true);
    return out;
  }
  if (newWidth !== width) out = pass(out, width, height, channels, newWidth, filter, kind, true);
  if (newHeight !== height) out = pass(out, newWidth, height, channels, newHeight, filter, kind, false);
  return out;
}
