"""Diagnose checks on the data: test images that copy a training image, and training images the model
confidently labels as another class (likely label errors).

    import konbu
    konbu.diagnose("runs/deep", checks=["duplicates", "label-errors"])

    konbu diagnose runs/deep
    python -m pytest tests/diagnosis/test_data.py -q

Both read the run's dataset (and are skipped when it is not on this machine).

- `duplicates`: exact copies are found by hashing each image's bytes. Near copies (brightness or
  contrast changed, re-encoded, lightly noised, resized by a loader) by a perceptual hash: each image,
  grey, at HASH_SIDE x HASH_SIDE (or its own size when smaller: the digits are 8x8), goes through a
  2-D DCT, and its 8x8 lowest frequencies, each above or below their median, give 64 bits (pHash).
  Hashes within MAX_HASH_DISTANCE bits are found without comparing all pairs by a multi-index: the
  hash is cut into BANDS bands, and two hashes that differ in fewer bits than there are bands agree
  on at least one whole band (pigeonhole), so only images sharing a band value are compared. Each
  such pair is then confirmed on the pixels (MAX_PIXEL_DIFFERENCE), because the 64 bits of a small
  digit cannot tell two writers' plain 1s apart. Full MNIST (60,000 x 10,000) takes 1.5-2.5 s on 2
  CPUs. The answer depends on the images alone, so it is kept in `$KONBU_HOME/duplicates/`, named by
  a digest of the two splits' bytes (0.08 s for full MNIST): the next run on the same data reads it.
- `label-errors`: the model scores the training images (at most MAX_SCORED, a seeded sample beyond
  that); those to which it gives another class than their label a calibrated probability of at
  least LABEL_ERROR_PROBABILITY are likely mislabelled, shown as a grid worst first, once they are
  more than the few ambiguous writings every dataset has (LABEL_ERROR_SHARE) and a large part of the
  model's mistakes on its training images (CONFIDENT_SHARE: else it is the model that is unsure).
"""

import hashlib
import json
import math
import shlex

import torch
import torch.nn.functional as F

from .. import atomic
from ..data.download import konbu_home
from ..inspect.grids import plot_image_grid
from . import BETTER, NOTE, Finding, check
from .commands import train_command

# pHash's working size: enough to keep a digit's or a CIFAR picture's shape, small enough that a
# resized copy and its original reduce to the same picture. Smaller images are hashed as they are
# (upsampling would invent pixels, not information), but never below DCT_BLOCK.
HASH_SIDE = 32
DCT_BLOCK = 8                     # the 8x8 lowest DCT frequencies: a 64-bit hash
# Two images within 4 of 64 bits are near-duplicate candidates. Measured on 300 test images each of
# MNIST and the digits: a copy with its contrast and brightness changed, upscaled 2x, or re-saved as
# JPEG at quality 90 lands within 4 bits 98-100% of the time; with noise of 8 grey levels (sd) or a
# brightness shift that saturates the ink, 92-100%; different digits are 10 or more bits apart. (The
# hash's 64 bits are half ones, so distances are even: 4 admits 0, 2 and 4.)
MAX_HASH_DISTANCE = 4
# 5 bands (13, 13, 13, 13, 12 bits): a pair within 4 bits leaves at least one band untouched, so the
# index misses nothing within MAX_HASH_DISTANCE. 4 bands of 16 bits would guarantee only 3 bits;
# 8 bands of 8 bits make 135M candidate pairs on MNIST against 4.9M, as the 1s crowd a few values.
BANDS = 5
# Bit p of the hash holds coefficient BIT_ORDER[p] (row-major in the 8x8 block): band b takes every
# fifth coefficient from b. Neighbouring low frequencies are alike in most digits, so a band of
# consecutive ones would put half of MNIST in a few buckets: 22M candidate pairs instead of 4.9M.
BIT_ORDER = torch.cat([torch.arange(band, DCT_BLOCK ** 2, BANDS) for band in range(BANDS)])
CANDIDATES_PER_CHUNK = 2_000_000  # pairs compared at a time: ~50 MB of indices
# A candidate is a copy when, its brightness and contrast matched to the test image (least squares),
# no pixel differs by more than 15% of the range (38 grey levels). The closest images by different
# writers differ by 26% somewhere (full MNIST, where 1s match even at a 0.99 correlation), 20% on
# the digits; the copies measured above (contrast, saturating brightness, JPEG at quality 90, noise
# of 8 levels) stay within 14%, while JPEG at quality 75 reaches 17-19% on a few and is missed there.
MAX_PIXEL_DIFFERENCE = 0.15
# Candidate pairs whose pixels are compared at once: small enough that each pass of pixel_difference
# stays in the caches (4,096 MNIST pairs are 13 MB of floats a side; 50 MB on CIFAR). Full MNIST's
# 156,892 pairs took 1.65 s in all against 2.3 s in chunks of 20,000 (2-core AVX2 EPYC).
PAIRS_PER_CHECK = 4_096
# Accuracy is quoted to a tenth of a percent (99.2%); duplicates below that share cannot move it.
DUPLICATE_SHARE_WORTH_FIXING = 0.001
EXAMPLE_PAIRS = 12

# A calibrated 90% (softmax at the run's fitted temperature) means that about 9 in 10 of such images
# are the other class; below it, hard but correctly labelled images (a 4 written like a 9) make up
# much of the list. The model trained on these labels, so a mislabelled image it still disputes at 90%
# is one it refused to learn.
LABEL_ERROR_PROBABILITY = 0.9
# Reported when at least this share of the scored images is disputed. Every handwriting set holds a
# few writings a person would also read as another digit (the healthy digits MLP disputes 2-3 of
# 1,438 training images, 0.2%, at 97-99%; MNIST's test set has ~0.15% known label errors, Northcutt
# et al. 2021); a share above 0.5% is label noise that costs accuracy and is worth cleaning.
LABEL_ERROR_SHARE = 0.005
# ...and when at least this share of the training images the model gets wrong, it gets wrong with
# that confidence. Wrong labels make confident mistakes; a model still learning makes hesitant ones
# and is disputing its own errors: the digits and MNIST MLPs after 1-10 epochs (88-96% right on
# their training images) dispute 1-2% of them, but only 13-18% of their mistakes, the healthy digits
# run 0-19%; with 24 of the digits' labels swapped, 20 epochs dispute 61-65% of the mistakes.
CONFIDENT_SHARE = 0.4
# Training images scored at most: 5,000 estimates a 1% rate of disputed labels within +-0.3 points
# (10,000: +-0.2) for half the time, 2.2 s of a full-MNIST run's finish; beyond it a seeded sample is scored.
MAX_SCORED = 5_000
SAMPLE_SEED = 0
CANDIDATES_SHOWN = 24
GRID_COLUMNS = 6


# ---------------------------------------------------------------------------------------------
# The perceptual hash and its multi-index
# ---------------------------------------------------------------------------------------------

def _dct_basis(side: int) -> torch.Tensor:
    """The 2-D orthonormal DCT-II basis images of the DCT_BLOCK x DCT_BLOCK lowest frequencies, one
    per row, row-major by (vertical, horizontal) frequency: [64, side * side]."""
    frequency = torch.arange(DCT_BLOCK, dtype=torch.float64)[:, None]
    position = torch.arange(side, dtype=torch.float64)[None]
    rows = torch.cos(math.pi * (2 * position + 1) * frequency / (2 * side)) * math.sqrt(2 / side)   # (8, side)
    rows[0] /= math.sqrt(2)
    return torch.einsum("uy,vx->uvyx", rows, rows).reshape(DCT_BLOCK ** 2, side * side).float()


def perceptual_hash(images: torch.Tensor, batch_size: int = 4096) -> torch.Tensor:
    """64-bit pHash of each image of uint8 (or float) [N, C, H, W], as int64 [N]."""
    side = max(DCT_BLOCK, min(HASH_SIDE, *images.shape[-2:]))
    basis = _dct_basis(side)                                            # (64, side * side)
    weights = torch.ones(DCT_BLOCK ** 2, dtype=torch.int64) << torch.arange(DCT_BLOCK ** 2)   # bit 63: the sign
    hashes = []
    for start in range(0, images.shape[0], batch_size):
        grey = images[start:start + batch_size].float()
        grey = grey.mean(dim=1, keepdim=True) if grey.shape[1] > 1 else grey   # (B, 1, H, W)
        if grey.shape[-2:] != (side, side):
            grey = F.interpolate(grey, size=(side, side), mode="bilinear", antialias=True, align_corners=False)
        coefficients = grey.flatten(1) @ basis.T                          # (B, 64): the lowest frequencies
        bits = (coefficients > coefficients.median(dim=1, keepdim=True).values)[:, BIT_ORDER]
        hashes.append((bits.long() * weights).sum(dim=1))
    return torch.cat(hashes) if hashes else torch.empty(0, dtype=torch.int64)


_POPCOUNT16 = sum((torch.arange(1 << 16) >> bit) & 1 for bit in range(16)).to(torch.int16)


def hamming(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Bits in which int64 hashes `a` and `b` differ, elementwise (int16)."""
    different = a ^ b
    return sum(_POPCOUNT16[(different >> shift) & 0xFFFF] for shift in (0, 16, 32, 48))


def _bands() -> list:
    """[(shift, width)] of BANDS bands covering the 64 bits, in BIT_ORDER's groups."""
    widths = [len(range(band, DCT_BLOCK ** 2, BANDS)) for band in range(BANDS)]
    return [(sum(widths[:band]), width) for band, width in enumerate(widths)]


def _candidate_chunks(first: torch.Tensor, counts: torch.Tensor, order: torch.Tensor):
    """(query index, indexed index) pairs: query i against order[first[i]:first[i] + counts[i]], in
    chunks of about CANDIDATES_PER_CHUNK pairs (one query with more gets a chunk of its own)."""
    ends = torch.cumsum(counts, 0)
    start = 0
    while start < len(counts):
        budget = int(ends[start] - counts[start]) + CANDIDATES_PER_CHUNK
        stop = max(start + 1, int(torch.searchsorted(ends, torch.tensor(budget), right=True)))
        chunk = counts[start:stop]
        query = torch.repeat_interleave(torch.arange(start, stop), chunk)
        offset = torch.arange(len(query)) - torch.repeat_interleave(torch.cumsum(chunk, 0) - chunk, chunk)
        yield query, order[torch.repeat_interleave(first[start:stop], chunk) + offset]
        start = stop


def hash_neighbours(queries: torch.Tensor, indexed: torch.Tensor, max_distance: int = MAX_HASH_DISTANCE):
    """(query index, indexed index, bits) of every pair of int64 hashes within `max_distance` bits,
    sorted by query then indexed index, found through BANDS band indexes instead of all pairs."""
    if max_distance >= BANDS:
        raise ValueError(f"{BANDS} bands find every pair within {BANDS - 1} bits, not {max_distance}")
    found = []
    for shift, width in _bands():
        mask = (1 << width) - 1
        key = (indexed >> shift) & mask
        order = torch.argsort(key)
        sorted_key, query_key = key[order], (queries >> shift) & mask
        first = torch.searchsorted(sorted_key, query_key)
        counts = torch.searchsorted(sorted_key, query_key, right=True) - first
        for query, candidate in _candidate_chunks(first, counts, order):
            bits = hamming(queries[query], indexed[candidate])
            near = bits <= max_distance
            found.append(query[near] * len(indexed) + candidate[near])   # one number per pair
    # a pair sharing several bands was found by each; unique also sorts by query, then indexed
    pairs = torch.unique(torch.cat(found)) if found else torch.empty(0, dtype=torch.int64)
    query, candidate = pairs // max(len(indexed), 1), pairs % max(len(indexed), 1)
    return query, candidate, hamming(queries[query], indexed[candidate]).long()


# ---------------------------------------------------------------------------------------------
# Duplicates between the splits
# ---------------------------------------------------------------------------------------------

def _digests(images: torch.Tensor) -> list:
    """A 128-bit digest of each image's bytes (shape and dtype are the split's, shared by all)."""
    rows = images.reshape(images.shape[0], -1).contiguous().cpu().numpy()
    return [hashlib.blake2b(row.tobytes(), digest_size=16).digest() for row in rows]


def exact_copies(train_images: torch.Tensor, test_images: torch.Tensor) -> dict:
    """{test index: the first training index with the very same bytes}."""
    if train_images.shape[1:] != test_images.shape[1:]:
        return {}
    first_seen = {}
    for index, digest in enumerate(_digests(train_images)):
        first_seen.setdefault(digest, index)
    return {index: first_seen[digest] for index, digest in enumerate(_digests(test_images)) if digest in first_seen}


def pixel_difference(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per pair of images [N, C, H, W]: the largest |a - (s b + t)| over the pixels, in units of the
    0-255 range, with s and t fitted by least squares (how far b is from a re-lit copy of a)."""
    a, b = a.flatten(1).float(), b.flatten(1).float()
    a -= a.mean(dim=1, keepdim=True)
    b -= b.mean(dim=1, keepdim=True)
    scale = torch.einsum("np,np->n", a, b) / torch.einsum("np,np->n", b, b).clamp_min(1e-6)
    return a.sub_(b.mul_(scale[:, None])).abs_().amax(dim=1) / 255


def find_duplicates(train_images: torch.Tensor, test_images: torch.Tensor) -> dict:
    """{"exact": [(test, train)], "near": [(test, train, hash bits, pixel difference)], "candidates": n}:
    each test image that copies a training image, with its copy (for near ones, the closest)."""
    exact = exact_copies(train_images, test_images)
    near = {}
    candidates = 0
    if train_images.shape[1:] == test_images.shape[1:] and len(train_images) and len(test_images):
        test_index, train_index, bits = hash_neighbours(perceptual_hash(test_images), perceptual_hash(train_images))
        copied = torch.zeros(len(test_images), dtype=torch.bool)
        copied[list(exact)] = True
        fresh = ~copied[test_index]     # an exact copy is reported as that, not again as a near one
        test_index, train_index, bits = test_index[fresh], train_index[fresh], bits[fresh]
        candidates = len(test_index)
        for start in range(0, candidates, PAIRS_PER_CHECK):
            part = slice(start, start + PAIRS_PER_CHECK)
            difference = pixel_difference(test_images[test_index[part]], train_images[train_index[part]])
            close = difference <= MAX_PIXEL_DIFFERENCE
            for test, train, distance, value in zip(test_index[part][close].tolist(), train_index[part][close].tolist(),
                                                    bits[part][close].tolist(), difference[close].tolist()):
                if test not in near or value < near[test][3]:
                    near[test] = (test, train, distance, value)
    return {"exact": sorted(exact.items()), "near": [near[test] for test in sorted(near)], "candidates": candidates}


# what find_duplicates' answer depends on besides the images; a change here makes new cache entries
DUPLICATES_KEY = {"version": 1, "hash_side": HASH_SIDE, "bands": BANDS, "max_hash_distance": MAX_HASH_DISTANCE,
                  "max_pixel_difference": MAX_PIXEL_DIFFERENCE}


def _duplicates_entry(train_images: torch.Tensor, test_images: torch.Tensor):
    digest = hashlib.blake2b(json.dumps(DUPLICATES_KEY, sort_keys=True).encode(), digest_size=20)
    for images in (train_images, test_images):
        digest.update(repr((tuple(images.shape), str(images.dtype))).encode())
        digest.update(images.contiguous().cpu().numpy())   # the buffer itself: no copy of the bytes
    return konbu_home() / "duplicates" / f"{digest.hexdigest()}.json"


def known_duplicates(train_images: torch.Tensor, test_images: torch.Tensor) -> dict:
    """find_duplicates' answer, kept per pair of splits: read when these very images were checked
    before, else found and written (atomically; a cache that can't be written is skipped)."""
    path = _duplicates_entry(train_images, test_images)
    try:
        kept = json.loads(path.read_text())
        return {"exact": [tuple(pair) for pair in kept["exact"]], "near": [tuple(pair) for pair in kept["near"]],
                "candidates": int(kept["candidates"])}
    except (OSError, ValueError, KeyError, TypeError):
        pass   # none yet, or damaged: found again and written over
    found = find_duplicates(train_images, test_images)
    try:
        atomic.write_json(path, found)
    except OSError:
        pass
    return found


def _plot_pairs(ctx, train, test, exact: list, near: list):
    """Example pairs side by side (test left, its training copy right), exact ones first; the figure's
    path relative to the run, as findings give it."""
    near_shown = min(len(near), EXAMPLE_PAIRS - min(len(exact), EXAMPLE_PAIRS // 2))   # both kinds, when both
    shown = [(t, r, "exact") for t, r in exact[:EXAMPLE_PAIRS - near_shown]]
    shown += [(t, r, f"{bits} bits, {difference:.0%}") for t, r, bits, difference in
              sorted(near, key=lambda pair: pair[3])[:near_shown]]
    images = torch.stack([image for t, r, _ in shown for image in (test.images[t], train.images[r])])
    titles = [title for t, r, how in shown for title in (f"test #{t}", f"train #{r}\n{how}")]
    heading = f"{len(exact) + len(near)} test images copy a training image: test (left), its copy (right)"
    path = plot_image_grid(images, titles, ctx.figure("duplicates"), columns=8 if len(shown) > 2 else 2 * len(shown),
                           title=heading)
    return str(path.relative_to(ctx.path))


def _folder_source(dataset: str) -> str | None:
    """The folder (or CSV) of a `folder:` dataset, else None."""
    return dataset[len("folder:"):] if dataset.startswith("folder:") else None


@check("duplicates")
def duplicates(ctx) -> list:
    train, test = ctx.data
    found = known_duplicates(train.images, test.images)
    exact, near = found["exact"], found["near"]
    pairs = [(t, r) for t, r in exact] + [(t, r) for t, r, _, _ in near]
    if not pairs:
        return []
    share = len(pairs) / len(test)
    same_label = sum(int(test.labels[t]) == int(train.labels[r]) for t, r in pairs)
    run = shlex.quote(str(ctx.path))
    source = _folder_source(ctx.info.get("dataset", ""))
    if source is not None:
        next_steps = [f"remove from {source} the test images that copy a training image (their "
                      "indices are this finding's data: test, train), then train again: "
                      + train_command(ctx.config)]
    else:   # a published dataset: its split is fixed; what can change is how its test accuracy is read
        next_steps = [f"konbu evaluate {run}  # read its test accuracy as up to {share:.1%} optimistic"]
    return [Finding(
        id="duplicates",
        severity=BETTER if share >= DUPLICATE_SHARE_WORTH_FIXING else NOTE,
        title=f"{len(pairs):,} test images ({share:.1%}) are copies of training images",
        evidence=(f"{len(exact):,} exact copies (the same bytes) and {len(near):,} near copies (perceptual hash "
                  f"within {MAX_HASH_DISTANCE} of 64 bits, no pixel more than {MAX_PIXEL_DIFFERENCE:.0%} off once "
                  f"brightness and contrast are matched) among {len(test):,} test and {len(train):,} training "
                  f"images; {same_label:,} share their copy's label. The model has seen these answers: its test "
                  f"accuracy is optimistic by up to {share:.1%}."),
        next=next_steps,
        data={"exact": len(exact), "near": len(near), "test": len(test), "train": len(train), "share": share,
              "same_label": same_label, "max_hash_distance": MAX_HASH_DISTANCE,
              "max_pixel_difference": MAX_PIXEL_DIFFERENCE,
              "pairs": [{"test": t, "train": r, "exact": True} for t, r in exact]
              + [{"test": t, "train": r, "exact": False, "hash_bits": bits, "pixel_difference": difference}
                 for t, r, bits, difference in near]},
        figure=_plot_pairs(ctx, train, test, exact, near),
    )]


# ---------------------------------------------------------------------------------------------
# Likely label errors in the training split
# ---------------------------------------------------------------------------------------------

def likely_label_errors(run, dataset, limit: int = MAX_SCORED) -> dict:
    """{"suspects": [{"index", "label", "predicted", "probability"}], "scored": n, "wrong": n}: the
    training images to which the run gives another class a calibrated probability of at least
    LABEL_ERROR_PROBABILITY, most disputed first, out of the images scored (at most `limit`, a seeded
    sample of a larger split), and how many of those the model's top class gets wrong at all."""
    count = len(dataset)
    if count > limit:
        scored = torch.randperm(count, generator=torch.Generator().manual_seed(SAMPLE_SEED))[:limit].sort().values
    else:
        scored = torch.arange(count)
    labels = dataset.labels[scored]
    probabilities = run.probabilities(dataset.images[scored])   # (n, K), calibrated
    wrong = int((probabilities.argmax(dim=1) != labels).sum())
    others = probabilities.clone()
    others[torch.arange(len(scored)), labels] = 0     # the best class other than the label
    probability, predicted = others.max(dim=1)
    disputed = (probability >= LABEL_ERROR_PROBABILITY).nonzero().flatten()
    disputed = disputed[torch.sort(probability[disputed], descending=True, stable=True).indices]
    suspects = [{"index": int(scored[i]), "label": int(labels[i]), "predicted": int(predicted[i]),
                 "probability": float(probability[i])} for i in disputed.tolist()]
    return {"suspects": suspects, "scored": len(scored), "wrong": wrong}


@check("label-errors")
def label_errors(ctx, limit: int = MAX_SCORED) -> list:
    train = ctx.data[0]
    scoring = likely_label_errors(ctx.run, train, limit)
    suspects, scored, wrong = scoring["suspects"], scoring["scored"], scoring["wrong"]
    if not suspects or len(suspects) < LABEL_ERROR_SHARE * scored or len(suspects) < CONFIDENT_SHARE * wrong:
        return []
    classes = ctx.run.classes
    shown = suspects[:CANDIDATES_SHOWN]
    titles = [f"labelled {classes[s['label']]},\nmodel says {classes[s['predicted']]}\n({s['probability']:.0%})"
              for s in shown]
    figure = plot_image_grid(train.images[torch.tensor([s["index"] for s in shown])], titles,
                             ctx.figure("label-errors"), columns=min(GRID_COLUMNS, len(shown)),
                             title=f"{len(suspects)} training images the model confidently labels as another class")
    sampled = f" (a random sample of {scored:,} of the {len(train):,})" if scored < len(train) else ""
    run = shlex.quote(str(ctx.path))
    source = _folder_source(ctx.info.get("dataset", ""))
    next_steps = [f"konbu show mistakes {run}"]
    if source is not None:
        next_steps.insert(0, f"check the labels of these files in {source} (training indices in this finding's "
                             "data, pictured in its figure), move the wrong ones, then train again: "
                             + train_command(ctx.config))
    top = shown[0]
    return [Finding(
        id="label-errors",
        severity=BETTER if source is not None else NOTE,
        title=f"{len(suspects):,} training images look mislabelled: the model is sure they are another class",
        evidence=(f"of {scored:,} training images scored{sampled}, the model gets {wrong:,} wrong, and "
                  f"{len(suspects):,} of them ({len(suspects) / scored:.1%} of the images) with a calibrated "
                  f"probability of at least {LABEL_ERROR_PROBABILITY:.0%} for a class other than their label; "
                  f"the most disputed, #{top['index']}, is labelled {classes[top['label']]} and given "
                  f"{top['probability']:.1%} {classes[top['predicted']]}."),
        next=next_steps,
        data={"count": len(suspects), "scored": scored, "wrong": wrong, "train": len(train),
              "threshold": LABEL_ERROR_PROBABILITY, "min_share": LABEL_ERROR_SHARE,
              "confident_share": CONFIDENT_SHARE,
              "candidates": [{**s, "label_name": classes[s["label"]], "predicted_name": classes[s["predicted"]]}
                             for s in suspects]},
        figure=str(figure.relative_to(ctx.path)),
    )]
