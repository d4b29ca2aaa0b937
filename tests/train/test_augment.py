"""Augmentation: shapes, dtypes and labels kept; each op checked against a hand computation or a
torch reference (torch.flip, torch.rot90, zero padding); per-sample randomness; repeatability under
a seed; mixup/cutmix targets that match the pixels; policy errors; the label-safety warning."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from konbu.data import DatasetInfo, dataset_info
from konbu.errors import ConfigError
from konbu.train.augment import POLICIES, affine, make_augment, parse_policy, shift_crop, tta_safety_warning

ALL_OPS = "rotate=15,shift=0.1,zoom=0.1,shear=0.2,hflip,vflip,crop=4,cutout=8,mixup=0.2,cutmix=1.0"
CIFAR_LIKE = DatasetInfo(name="cifar10", classes=tuple("abcdefghij"), image_shape=(3, 32, 32),
                         split_sizes={"train": 10, "test": 10}, source="test")


def batch(b=16, c=1, h=28, w=28, seed=0):
    generator = torch.Generator().manual_seed(seed)
    x = torch.rand(b, c, h, w, generator=generator) * 0.9 + 0.1     # no zeros: padding shows as 0
    y = torch.randint(0, 10, (b,), generator=generator)
    return x, y


def run(policy, x, y, num_classes=10, seed=0):
    torch.manual_seed(seed)
    return make_augment(policy)(x.clone(), y.clone(), num_classes)


@pytest.mark.parametrize("policy", [*POLICIES, ALL_OPS, "rotate=30,fill=border", "shear=0.5,fill=reflection"])
@pytest.mark.parametrize("shape", [(8, 1, 28, 28), (8, 3, 32, 32), (5, 3, 20, 24)])
def test_shape_dtype_and_labels_kept(policy, shape):
    x, y = batch(*shape)
    out, target = run(policy, x, y)
    assert out.shape == x.shape and out.dtype == torch.float32
    assert torch.isfinite(out).all() and out.min() >= 0 and out.max() <= 1 + 1e-6
    if parse_policy(policy).soft_targets:
        assert target.shape == (shape[0], 10) and target.dtype == torch.float32
    else:
        assert target.dtype == torch.int64 and torch.equal(target, y)


def test_none_policies():
    for policy in (None, "", "none", " None "):
        assert make_augment(policy) is None


@pytest.mark.parametrize("policy", ["rotate=20", "shift=0.2", "zoom=0.2", "shear=0.3", "hflip", "vflip",
                                    "crop=4", "cutout=8", ALL_OPS])
def test_each_op_differs_per_sample(policy):
    # (mixup and cutmix draw a weight and a partner per sample: see their own tests below)
    x, y = batch(32)
    x, y = x[:1].repeat(32, 1, 1, 1), y[:1].repeat(32)          # 32 copies of one image
    out, _ = run(policy, x, y)
    distinct = {tuple(image.flatten().tolist()) for image in out}
    assert len(distinct) > 1


@pytest.mark.parametrize("policy", [ALL_OPS, "keras-cifar10", "cifar", "digits"])
def test_repeats_exactly_under_a_seed(policy):
    x, y = batch(16, 3, 32, 32)
    first, second, other = run(policy, x, y, seed=7), run(policy, x, y, seed=7), run(policy, x, y, seed=8)
    assert torch.equal(first[0], second[0]) and torch.equal(first[1], second[1])
    assert not torch.equal(first[0], other[0])


def test_resuming_the_rng_state_repeats_the_stream():
    x, y = batch(8)
    augment = make_augment(ALL_OPS)
    torch.manual_seed(3)
    augment(x, y, 10)
    state = torch.get_rng_state()                                # what a checkpoint stores
    expected = augment(x, y, 10)
    torch.manual_seed(99)
    torch.set_rng_state(state)
    again = augment(x, y, 10)
    assert torch.equal(expected[0], again[0]) and torch.equal(expected[1], again[1])


def test_identity_settings_return_the_input():
    x, y = batch(6, 3, 20, 24)
    out, target = run("rotate=0,shift=0,zoom=0,shear=0,hflip=0,vflip=0,crop=0,cutout=0", x, y)
    assert torch.equal(out, x) and torch.equal(target, y)
    # the affine path itself with a zero transform samples exactly at the pixel centres
    zeros = torch.zeros(6)
    out = affine(x, zeros, torch.zeros(6, 2), torch.ones(6), zeros)
    torch.testing.assert_close(out, x, atol=1e-5, rtol=0)
    out = shift_crop(x, 3, torch.full((6,), 3), torch.full((6,), 3))   # window at the unpadded origin
    assert torch.equal(out, x)


@pytest.mark.parametrize("fill, mode", [("zeros", "constant"), ("border", "replicate"), ("reflection", "reflect")])
def test_crops_pad_as_fill_says(fill, mode):
    """crop=2,fill=reflection is airbench's shift: the window reads reflected pixels past the edge."""
    x, y = batch(4, 3, 8, 10)
    x = x + 1                                                  # no black pixel of its own
    offsets = torch.tensor([0, 4, 1, 3])
    out = shift_crop(x, 2, offsets, offsets.flip(0), fill)
    padded = torch.nn.functional.pad(x, (2, 2, 2, 2), mode=mode)
    for i, (dy, dx) in enumerate(zip(offsets.tolist(), offsets.flip(0).tolist())):
        assert torch.equal(out[i], padded[i, :, dy:dy + 8, dx:dx + 10])
    shifted, _ = run(f"crop=2,fill={fill}", x, y)
    assert (shifted == 0).any() == (fill == "zeros")


def test_hflip_and_vflip_equal_torch_flip():
    x, y = batch(4, 3, 8, 10)
    assert not torch.equal(x, x.flip(3))                       # the image is asymmetric
    assert torch.equal(run("hflip=1", x, y)[0], torch.flip(x, [3]))
    assert torch.equal(run("vflip=1", x, y)[0], torch.flip(x, [2]))
    flipped, _ = run("hflip", x.repeat(16, 1, 1, 1), y.repeat(16))
    kinds = [torch.equal(a, b) for a, b in zip(flipped, x.repeat(16, 1, 1, 1))]
    assert 0 < sum(kinds) < len(kinds)                        # p=0.5: some flipped, some not


def test_rotation_by_90_moves_a_planted_pixel_where_a_hand_computation_says():
    # 5x5, centre (row 2, col 2). With x right and y down, a counter-clockwise turn by 90 degrees
    # maps (x, y) -> (y, -x): the pixel 2 above the centre (x=0, y=-2) goes 2 left of it (row 2,
    # col 0); the one at (row 1, col 4) (x=2, y=-1) goes to (x=-1, y=-2): row 0, col 1.
    x = torch.zeros(1, 1, 5, 5)
    x[0, 0, 0, 2], x[0, 0, 1, 4] = 1.0, 0.5
    out = affine(x, torch.tensor([90.0]), torch.zeros(1, 2), torch.ones(1), torch.zeros(1))
    expected = torch.zeros(1, 1, 5, 5)
    expected[0, 0, 2, 0], expected[0, 0, 0, 1] = 1.0, 0.5
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=0)
    # numpy's rot90 (counter-clockwise as displayed) agrees, on a whole random image too
    image = torch.rand(2, 3, 9, 9)
    out = affine(image, torch.tensor([90.0, -90.0]), torch.zeros(2, 2), torch.ones(2), torch.zeros(2))
    torch.testing.assert_close(out[0], torch.from_numpy(np.rot90(image[0].numpy(), 1, axes=(1, 2)).copy()),
                               atol=1e-5, rtol=0)
    torch.testing.assert_close(out[1], torch.from_numpy(np.rot90(image[1].numpy(), -1, axes=(1, 2)).copy()),
                               atol=1e-5, rtol=0)


def test_translation_zoom_and_shear_by_hand():
    x = torch.zeros(1, 1, 7, 9)
    x[0, 0, 3, 4] = 1.0                                       # the centre pixel
    x[0, 0, 1, 4] = 0.5                                       # 2 above it (y = -2)
    one, zero = torch.ones(1), torch.zeros(1)
    moved = affine(x, zero, torch.tensor([[2.0, -1.0]]), one, zero)   # 2 right, 1 up
    torch.testing.assert_close(moved[0, 0], F.pad(x, (2, 0, 0, 1))[0, 0, 1:, :9], atol=1e-5, rtol=0)
    doubled = affine(x, zero, torch.zeros(1, 2), 2 * one, zero)        # y = -2 -> y = -4: off the image
    assert doubled[0, 0, 1, 4] < 0.3 and doubled[0, 0, 3, 4] == pytest.approx(1.0, abs=1e-5)
    sheared = affine(x, zero, torch.zeros(1, 2), one, one)             # x' = x + y: (0, -2) -> (-2, -2)
    assert sheared[0, 0, 1, 2] == pytest.approx(0.5, abs=1e-5) and sheared[0, 0, 3, 4] == pytest.approx(1.0, abs=1e-5)


def test_fill_modes():
    x = torch.ones(2, 1, 12, 12)
    black = affine(x, torch.full((2,), 45.0), torch.zeros(2, 2), torch.ones(2), torch.zeros(2))
    border = affine(x, torch.full((2,), 45.0), torch.zeros(2, 2), torch.ones(2), torch.zeros(2), fill="border")
    assert black[:, :, 0, 0].max() == 0                       # the corners show the black background
    torch.testing.assert_close(border, x)                     # Keras' fill_mode="nearest" repeats the edge


def test_crop_with_padding_is_an_integer_shift_with_black_borders():
    x, y = batch(24, 2, 12, 12)
    out, _ = run("crop=3", x, y)
    shifts = set()
    padded = F.pad(x, (3, 3, 3, 3))
    for i in range(24):
        matches = [(dy, dx) for dy in range(7) for dx in range(7)
                   if torch.equal(out[i], padded[i, :, dy:dy + 12, dx:dx + 12])]
        assert len(matches) == 1, i
        shifts.add(matches[0])
    assert len(shifts) > 5                                    # offsets differ per sample


def test_cutout_zeroes_exactly_a_square():
    x, y = batch(20, 3, 16, 16)
    out, _ = run("cutout=5", x, y)
    for i in range(20):
        zero = (out[i] == 0).all(0)                           # (H, W): zero in every channel
        rows, cols = zero.nonzero(as_tuple=True)
        assert zero.sum() == 25
        assert rows.max() - rows.min() == 4 and cols.max() - cols.min() == 4
        kept = ~zero
        assert torch.equal(out[i][:, kept], x[i][:, kept])    # and nothing else changed


def constant_batch(b):
    """Image i is constant value (i+1)/b, label i: every output pixel and target names its source."""
    values = (torch.arange(b, dtype=torch.float32) + 1) / b
    x = values[:, None, None, None].expand(b, 1, 10, 12).clone()
    return x, torch.arange(b), values


def test_mixup_targets_mix_exactly_the_pair_shown():
    x, y, values = constant_batch(16)
    out, target = run("mixup=0.4", x, y, num_classes=16)
    torch.testing.assert_close(target.sum(1), torch.ones(16))
    assert (target >= 0).all()
    for i in range(16):
        weights = target[i]
        assert (weights > 0).sum() <= 2
        # the image is exactly the target-weighted mixture of the images it names
        torch.testing.assert_close(out[i], torch.full_like(out[i], float(weights @ values)))
    assert (target.max(1).values < 0.999).sum() >= 8             # most samples were really mixed
    assert len(set(target[:, :].max(1).values.tolist())) >= 8      # each with its own weight


def test_mixup_probability_leaves_some_samples_alone():
    x, y, _ = constant_batch(64)
    out, target = run("mixup=1.0,mixup_p=0.5", x, y, num_classes=64)
    untouched = (target.max(1).values == 1).sum()
    assert 10 < untouched < 54
    kept = target.max(1).values == 1
    assert torch.equal(out[kept], x[kept])


def test_cutmix_weight_is_the_area_actually_pasted():
    x, y, values = constant_batch(32)
    out, target = run("cutmix=1.0", x, y, num_classes=32)
    torch.testing.assert_close(target.sum(1), torch.ones(32))
    mixed = 0
    for i in range(32):
        for j in range(32):
            share = (out[i] == values[j]).float().mean()          # the fraction of pixels from image j
            assert target[i, j] == pytest.approx(float(share), abs=1e-6)
        pasted = out[i] != values[i]
        if pasted.any():
            mixed += 1
            rows, cols = pasted[0].nonzero(as_tuple=True)      # the pasted pixels form one box
            assert pasted[0].sum() == (rows.max() - rows.min() + 1) * (cols.max() - cols.min() + 1)
    assert mixed >= 16


def test_mixup_and_cutmix_together_keep_targets_consistent_with_pixels():
    x, y, values = constant_batch(16)
    out, target = run("mixup=0.5,cutmix=1.0", x, y, num_classes=16)
    torch.testing.assert_close(target.sum(1), torch.ones(16))
    # every op is linear in the images and the targets: an image's mean is its target's mixture
    torch.testing.assert_close(out.mean((1, 2, 3)), target @ values, atol=1e-5, rtol=0)


def test_policy_parsing():
    policy = parse_policy("rotate=15, shift=0.1,zoom=0.1,shear=0.2,hflip,crop=4,cutout=8,mixup=0.2,cutmix=1.0")
    assert (policy.rotate, policy.shift, policy.crop, policy.cutout, policy.hflip, policy.vflip) == (15, 0.1, 4, 8, 0.5, 0)
    assert parse_policy(str(policy)) == policy                 # the canonical string parses back
    assert parse_policy("cifar,cutout=8") == parse_policy("crop=4,hflip,cutout=8")
    assert parse_policy("keras-cifar10") == parse_policy("translate=0.1,hflip=0.5,fill=border")
    assert parse_policy("digits").hflip == 0 and parse_policy("digits").vflip == 0
    assert str(make_augment("cifar")) == "hflip=0.5,crop=4"
    assert parse_policy("HFlip, Rotate=10") == parse_policy("hflip,rotate=10")


@pytest.mark.parametrize("bad, says", [
    ("rotat=10", "unknown op"), ("rotate=abc", "not a number"), ("rotate=200", "out of range"),
    ("shift=-0.1", "out of range"), ("crop=2.5", "whole number"), ("hflip=1.5", "probability"),
    ("mixup=0", "out of range"), ("rotate", "needs a value"), ("fill=wrap", "fill"), ("cifar10", "unknown op"),
    ("zoom=nan", "out of range"),
])
def test_bad_policies_raise_config_errors(bad, says):
    with pytest.raises(ConfigError, match=says):
        make_augment(bad)


def test_cutout_larger_than_the_images_is_a_config_error():
    with pytest.raises(ConfigError, match="larger"):
        make_augment("cutout=10", dataset_info("digits"))           # 8 x 8 images
    with pytest.raises(ConfigError, match="larger"):
        make_augment("cutout=10")(torch.rand(2, 1, 8, 8), torch.zeros(2, dtype=torch.long), 10)


def test_label_safety_warning():
    warnings = []
    make_augment("hflip", dataset_info("mnist-sample"), warn=warnings.append)
    assert len(warnings) == 1 and "mnist-sample" in warnings[0] and "6 becomes a 9" in warnings[0]
    make_augment("rotate=60", dataset_info("mnist"), warn=warnings.append)
    assert len(warnings) == 2 and "rotate=60" in warnings[1]
    for policy in ("digits", "rotate=45,shift=0.2", "crop=2,cutout=4,mixup=0.2"):
        make_augment(policy, dataset_info("mnist-sample"), warn=warnings.append)
    make_augment("cifar", CIFAR_LIKE, warn=warnings.append)
    make_augment("keras-cifar10", CIFAR_LIKE, warn=warnings.append)
    make_augment("hflip", None, warn=warnings.append)
    assert len(warnings) == 2
    for name, why in (("k49", "kana"), ("etl-hiragana", "kana"), ("emnist-letters", "b↔d"),
                      ("emnist-digits", "6 becomes a 9"), ("kmnist", "kana")):
        info = DatasetInfo(name=name, classes=("a", "b"), image_shape=(1, 28, 28), split_sizes={}, source="")
        make_augment("vflip", info, warn=warnings.append)
        assert why in warnings[-1]
    fashion = DatasetInfo(name="fashion-mnist", classes=("a", "b"), image_shape=(1, 28, 28), split_sizes={}, source="")
    count = len(warnings)
    make_augment("hflip", fashion, warn=warnings.append)
    assert len(warnings) == count


def test_test_time_flips_warn_where_a_mirror_changes_the_label():
    assert "6 becomes a 9" in tta_safety_warning("flip", dataset_info("mnist-sample"))
    assert "Consider --tta none" in tta_safety_warning("flip-shift", dataset_info("digits"))
    assert tta_safety_warning("none", dataset_info("mnist-sample")) is None
    assert tta_safety_warning("flip-shift", CIFAR_LIKE) is None and tta_safety_warning("flip", None) is None


def test_the_default_warn_is_a_python_warning():
    with pytest.warns(UserWarning, match="mirrored digit"):
        make_augment("hflip", dataset_info("digits"))


def test_altflip_is_a_switch_of_its_own_that_the_training_loop_applies():
    policy = parse_policy("crop=2,altflip,fill=reflection")
    assert policy.altflip and not policy.hflip and str(policy) == "fill=reflection,altflip,crop=2"
    assert parse_policy(str(policy)) == policy and parse_policy("alternating_flip=off") == parse_policy("")
    x, y = batch()
    assert torch.equal(run("altflip", x, y)[0], x)        # per batch it does nothing: the loop mirrors (test_epoch)
    with pytest.raises(ConfigError, match="mirrors twice"):
        make_augment("hflip,altflip")
    with pytest.raises(ConfigError, match="altflip alone"):
        make_augment("altflip=0.5")
    heard = []
    make_augment("altflip", dataset_info("mnist-sample"), warn=heard.append)
    assert len(heard) == 1 and "altflip on mnist-sample" in heard[0]
