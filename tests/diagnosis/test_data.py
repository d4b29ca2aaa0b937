"""The data checks: test images planted in the training split (exact copies and re-lit ones) and
training images with deliberately swapped labels, each in a folder dataset made from the embedded
digits and found by a run trained on it; neither check fires on the healthy run. The hash and its
band index are checked against a resized or re-lit copy and against brute force over all pairs; the
answer kept per pair of splits is read back only for the very same images.

    .venv/bin/python -m pytest -q tests/diagnosis/test_data.py
"""

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from konbu.data import load_data
from konbu.diagnosis import BETTER, Context
import konbu.diagnosis.data as data
from konbu.diagnosis.data import (BANDS, MAX_HASH_DISTANCE, duplicates, find_duplicates, hamming, hash_neighbours,
                                 known_duplicates, label_errors, likely_label_errors, perceptual_hash)


def relit(images):
    """The same pictures with less contrast and more light: a near copy, not an exact one."""
    return (images.float() * 0.8 + 20).round().to(torch.uint8)


def write_folder(root: Path, train: tuple, test: tuple) -> str:
    """`folder:` dataset with root/train/<label>/<n>.png and root/test/<label>/<n>.png from
    (images, labels): the train/test layout keeps each image in the split it is written to."""
    for split, (images, labels) in {"train": train, "test": test}.items():
        for number, (image, label) in enumerate(zip(images, labels)):
            path = root / split / str(int(label)) / f"{number:05d}.png"   # zero-padded: files sort in order
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(image[0].numpy()).save(path)
    return f"folder:{root}"


@pytest.fixture(scope="module")
def digits():
    return load_data("digits")


# ---------------------------------------------------------------------------------------------
# The perceptual hash and its band index
# ---------------------------------------------------------------------------------------------

def test_hash_matches_a_resized_or_relit_copy_not_another_digit(digits):
    images = digits[1].images                                          # 359 test digits, 8x8
    original = perceptual_hash(images)
    bigger = F.interpolate(images.float(), scale_factor=2, mode="bilinear").round().to(torch.uint8)   # 16x16
    for copy in (relit(images), bigger):
        assert hamming(original, perceptual_hash(copy)).max() <= MAX_HASH_DISTANCE
    labels = digits[1].labels
    for first, second in ((0, 1), (3, 9), (5, 9)):     # different digits, including the look-alikes
        distance = hamming(original[labels == first][:, None], original[labels == second][None])
        assert distance.min() > MAX_HASH_DISTANCE


def test_band_index_finds_the_pairs_brute_force_finds():
    generator = torch.Generator().manual_seed(0)
    indexed = torch.randint(-2**62, 2**62, (3000,), generator=generator)
    queries = torch.randint(-2**62, 2**62, (400,), generator=generator)
    for query in range(200):   # half the queries: a copy of an indexed hash with 0-6 bits flipped
        bits = torch.randperm(64, generator=generator)[:query % 7]
        queries[query] = indexed[query * 7] ^ (torch.ones_like(bits) << bits).sum()   # bit 63: the sign
    query, candidate, distance = hash_neighbours(queries, indexed)
    expected = (hamming(queries[:, None], indexed[None]) <= MAX_HASH_DISTANCE).nonzero()   # all pairs: the answer key
    assert torch.equal(torch.stack([query, candidate], dim=1), expected)
    assert torch.equal(distance, hamming(queries[query], indexed[candidate]).long())
    found = set(zip(query.tolist(), candidate.tolist()))
    assert {(query, query * 7) for query in range(200) if query % 7 <= MAX_HASH_DISTANCE} <= found
    with pytest.raises(ValueError, match=f"{BANDS} bands"):
        hash_neighbours(queries, indexed, max_distance=BANDS)


def test_find_duplicates_names_each_planted_copy_and_nothing_else(digits):
    train, test = digits
    noise = torch.randint(-4, 5, (10, 1, 8, 8), generator=torch.Generator().manual_seed(0))   # +-4 grey levels
    noisy = (relit(test.images[10:20]) + noise).clamp(0, 255).to(torch.uint8)   # 2-3% off: within the tolerance
    planted = torch.cat([train.images, test.images[:10], noisy])
    found = find_duplicates(planted, test.images)
    assert found["exact"] == [(i, len(train) + i) for i in range(10)]
    assert [(t, r) for t, r, _, _ in found["near"]] == [(i, len(train) + i) for i in range(10, 20)]
    assert find_duplicates(train.images, test.images) == {"exact": [], "near": [], "candidates": 18}


def test_find_duplicates_is_the_same_whatever_the_chunk_of_pairs(digits, monkeypatch):
    """The pairs are compared PAIRS_PER_CHECK at a time; a test image whose candidates fall in
    several chunks still gets its closest copy."""
    train, test = digits
    noise = torch.randint(-4, 5, (12, 1, 8, 8), generator=torch.Generator().manual_seed(0))
    noisy = (relit(test.images[:12]) + noise).clamp(0, 255).to(torch.uint8)
    planted = torch.cat([train.images, noisy, relit(test.images[:12])])   # the relit copies are the closer
    whole = find_duplicates(planted, test.images)
    assert [(t, r) for t, r, _, _ in whole["near"]] == [(i, len(train) + 12 + i) for i in range(12)]
    monkeypatch.setattr(data, "PAIRS_PER_CHECK", 1)
    assert find_duplicates(planted, test.images) == whole


def test_the_duplicates_answer_is_kept_for_the_same_images_only(digits, monkeypatch, tmp_path):
    train, test = digits
    planted = torch.cat([train.images, test.images[:3], relit(test.images[3:6])])
    monkeypatch.setenv("KONBU_HOME", str(tmp_path / "home"))
    calls = []
    monkeypatch.setattr(data, "find_duplicates", lambda *splits: calls.append(1) or find_duplicates(*splits))
    found = known_duplicates(planted, test.images)
    assert found == find_duplicates(planted, test.images) and len(found["exact"]) == 3 and len(found["near"]) == 3
    entries = list((tmp_path / "home" / "duplicates").glob("*.json"))
    assert len(entries) == 1 and len(calls) == 1
    assert known_duplicates(planted, test.images) == found and len(calls) == 1      # read back, not searched
    changed = planted.clone()
    changed[0, 0, 0, 0] ^= 1                                                         # one bit of one pixel
    assert known_duplicates(changed, test.images) == found and len(calls) == 2
    entries[0].write_text('{"exact": [[0')                                          # a damaged entry
    assert known_duplicates(planted, test.images) == found and len(calls) == 3
    assert known_duplicates(planted, test.images) == found and len(calls) == 3      # written whole again
    (tmp_path / "file").write_text("")
    monkeypatch.setenv("KONBU_HOME", str(tmp_path / "file"))                        # a home that can't be written
    assert known_duplicates(planted, test.images) == found and len(calls) == 4


# ---------------------------------------------------------------------------------------------
# The findings, each from a run made to show it
# ---------------------------------------------------------------------------------------------

def test_test_images_copied_into_training_are_reported(tmp_path, train, digits):
    digits_train, digits_test = digits
    images = torch.cat([digits_train.images, digits_test.images[:20], relit(digits_test.images[20:35])])
    labels = torch.cat([digits_train.labels, digits_test.labels[:35]])
    dataset = write_folder(tmp_path / "copied", (images, labels), (digits_test.images, digits_test.labels))
    run = train("copied", model="mlp", dataset=dataset, epochs=1)   # the check reads the data, not the model

    [finding] = duplicates(Context(run))
    assert finding.id == "duplicates" and finding.severity == BETTER
    assert (finding.data["exact"], finding.data["near"], finding.data["same_label"]) == (20, 15, 35)
    assert finding.data["share"] == pytest.approx(35 / 359)
    assert "35 test images (9.7%)" in finding.title and "optimistic by up to 9.7%" in finding.evidence
    loaded_train, loaded_test = Context(run).data
    for pair in finding.data["pairs"]:
        copy, original = loaded_train.images[pair["train"]], loaded_test.images[pair["test"]]
        assert torch.equal(copy, original if pair["exact"] else relit(original[None])[0])
    assert finding.figure == "figures/diagnose-duplicates.png" and (run.path / finding.figure).is_file()
    assert str(tmp_path / "copied") in finding.next[0] and "konbu train --model mlp" in finding.next[0]
    # after one epoch the model's mistakes on its training images are hesitant: its own, not the labels'
    assert label_errors(Context(run)) == []


def test_swapped_labels_are_among_the_reported_label_errors(tmp_path, train, digits):
    digits_train, digits_test = digits
    swapped = torch.randperm(len(digits_train), generator=torch.Generator().manual_seed(0))[:24].tolist()
    labels = digits_train.labels.clone()
    for number, index in enumerate(swapped):   # each to another digit, spread over the nine others
        labels[index] = (labels[index] + 1 + number % 9) % 10
    dataset = write_folder(tmp_path / "swapped", (digits_train.images, labels),
                           (digits_test.images, digits_test.labels))
    # a cosine at Keras's 1e-3: the default one-cycle's higher peak lets the MLP learn more of the swaps
    run = train("swapped", model="mlp", dataset=dataset, epochs=20, lr_schedule="cosine", lr=1e-3)
    context = Context(run)

    # the folder lists class by class, each in file order: where each written image lands
    order = sorted(range(len(labels)), key=lambda index: (int(labels[index]), index))
    position = {index: place for place, index in enumerate(order)}
    loaded = context.data[0]
    assert all(int(loaded.labels[position[index]]) == int(labels[index]) for index in swapped)
    planted = {position[index] for index in swapped}

    [finding] = label_errors(context)
    assert finding.id == "label-errors" and finding.severity == BETTER
    reported = [candidate["index"] for candidate in finding.data["candidates"]]
    assert len(planted & set(reported)) >= 2 * len(planted) // 3               # most swaps are found
    assert len(planted & set(reported[:len(planted)])) >= len(planted) // 2    # and they lead the list
    assert all(candidate["probability"] >= 0.9 for candidate in finding.data["candidates"])
    assert finding.next[-1] == f"konbu show mistakes {run.path}" and str(tmp_path / "swapped") in finding.next[0]
    assert finding.figure == "figures/diagnose-label-errors.png" and (run.path / finding.figure).is_file()

    # a cap on the images scored: a seeded sample, whose suspects are those of the full scoring
    sample = likely_label_errors(run, loaded, limit=700)
    assert sample["scored"] == 700 and {s["index"] for s in sample["suspects"]} <= set(reported)
    [capped] = label_errors(context, limit=len(loaded) - 1)
    assert f"a random sample of {len(loaded) - 1:,} of the {len(loaded):,}" in capped.evidence


def test_healthy_run_has_no_data_finding(healthy):
    context = Context(healthy)
    assert duplicates(context) == [] and label_errors(context) == []
