"""On-device augmentation: batched tensor ops, random per sample, driven by a policy string.

    from konbu.train.augment import make_augment
    augment = make_augment("rotate=15,shift=0.1,zoom=0.1,hflip,crop=4", info=train.info)
    x, target = augment(x, y, num_classes)   # x float32 [B, C, H, W] in [0, 1], before mean/std

    konbu augment preview mnist-sample --augment digits --out grid.png

Every op draws its parameters for the whole batch in one call on x's device (torch.rand(...,
device=x.device)), so there is no Python loop over samples, no DataLoader worker, and the global
torch RNG decides everything: `torch.manual_seed` repeats an augmentation exactly, and a checkpoint
holding the RNG state makes a resumed run augment exactly as the uninterrupted one would have.

Policy syntax: comma-separated `op` or `op=value`; later items override earlier ones, and a named
policy may appear as an item (`cifar,cutout=8`).

    rotate=DEG       rotation by U(-DEG, DEG) degrees, counter-clockwise positive (like Keras)
    shift=FRAC       translation by U(-FRAC, FRAC) of the width and, separately, of the height
    zoom=FRAC        content scaled by U(1-FRAC, 1+FRAC), the same on both axes
    shear=K          horizontal shear x' = x + k*y, k ~ U(-K, K) (0.2 is about 11 degrees)
    fill=MODE        what rotate/shift/zoom/shear and crop show outside the image: zeros (default:
                     black, the background of MNIST-like data), border (repeat the edge pixel: Keras'
                     fill_mode="nearest") or reflection (airbench's crops)
    hflip[=P]        mirror left-right with probability P (default 0.5)
    altflip          mirror left-right a fixed random half of the images in odd epochs and the other
                     half in even ones (airbench's alternating flips: each image is seen both ways in
                     any two epochs); done by the training loop on the epoch's images (epoch.mirror_half),
                     not per batch, so instead of hflip
    vflip[=P]        mirror top-bottom with probability P (default 0.5)
    crop=PAD         pad PAD pixels on each side (black, or as fill says), then crop back at a random
                     offset: an integer shift of up to PAD pixels each way (CIFAR's "pad 4 + random crop")
    cutout=SIZE      set one SIZE x SIZE square, placed at random wholly inside the image, to black
    mixup=ALPHA      blend each image with another of the batch, weight ~ Beta(ALPHA, ALPHA)
    mixup_p=P        ... for a fraction P of the samples (default 1)
    cutmix=ALPHA     paste a box of another image of the batch, area fraction ~ 1 - Beta(ALPHA, ALPHA)
    cutmix_p=P       ... for a fraction P of the samples (default 1)

rotate, shift, zoom and shear make ONE affine matrix per sample, applied with one bilinear
F.affine_grid + F.grid_sample (align_corners=False: pixel centres land on pixel centres, so a
zero transform, or a 90-degree turn of a square image, is exact). Ops run in that order: affine,
crop, flips, cutout, mixup, cutmix. With mixup or cutmix the target becomes float32 [B, K] class
probabilities (the label's weight and the partner's), which F.cross_entropy accepts as they are;
count training accuracy against y, which is returned untouched only without them.

Named policies (POLICIES, in policies.py with why each):
    digits          rotate=10,shift=0.1,zoom=0.1
    cifar           crop=4,hflip
    keras-cifar10   shift=0.1,hflip,fill=border
"""

import math
import re
import warnings
from dataclasses import dataclass, fields

import torch
import torch.nn.functional as F

from ..errors import ConfigError
from .policies import POLICIES, POLICY_HELP  # noqa: F401  (POLICY_HELP: importable from here, as before)

FILL_MODES = {"zeros": "zeros", "border": "border", "reflection": "reflection"}   # grid_sample's padding_mode
PAD_MODES = {"zeros": "constant", "border": "replicate", "reflection": "reflect"}     # F.pad's, the same fills


@dataclass
class Policy:
    """One parsed policy: 0 means off for every field."""

    rotate: float = 0.0      # degrees, +-
    shift: float = 0.0       # fraction of width / height, +-
    zoom: float = 0.0        # fraction, scale in [1 - zoom, 1 + zoom]
    shear: float = 0.0       # shear factor, +-
    fill: str = "zeros"      # outside the image after an affine op: black, like MNIST's background
    hflip: float = 0.0       # probability
    altflip: bool = False    # alternating halves, by epoch (the training loop's; see the docstring)
    vflip: float = 0.0       # probability
    crop: int = 0            # padding in pixels
    cutout: int = 0          # side of the square in pixels
    mixup: float = 0.0       # Beta alpha
    mixup_p: float = 1.0     # fraction of samples mixed (when mixup > 0)
    cutmix: float = 0.0      # Beta alpha
    cutmix_p: float = 1.0    # fraction of samples cut-mixed (when cutmix > 0)

    def __str__(self):
        """The canonical policy string: only what is on, parseable back by parse_policy."""
        items = []
        for f in fields(self):
            value = getattr(self, f.name)
            unused = (f.name == "mixup_p" and not self.mixup) or (f.name == "cutmix_p" and not self.cutmix)
            if value == f.default or unused:
                continue
            if isinstance(value, bool):
                items.append(f.name)
            else:
                items.append(f"{f.name}={value:g}" if isinstance(value, float) else f"{f.name}={value}")
        return ",".join(items) or "none"

    @property
    def affine(self) -> bool:
        return bool(self.rotate or self.shift or self.zoom or self.shear)

    @property
    def soft_targets(self) -> bool:
        return bool(self.mixup or self.cutmix)


def _number(key, text, low, high, what, integer=False, low_open=False):
    """`text` as a number in [low, high] (or (low, high] with low_open), else a ConfigError saying so."""
    try:
        value = int(text) if integer else float(text)
    except ValueError:
        raise ConfigError(f"augment: {key}={text!r} is not {'a whole number' if integer else 'a number'}; "
                          f"expected {what}") from None
    if not (low < value if low_open else low <= value) or value > high or math.isnan(value):
        bound = f"{'(' if low_open else '['}{low:g}, {high:g}]"
        raise ConfigError(f"augment: {key}={text} is out of range; expected {what} in {bound}")
    return value


# op -> (parser of its value text, value when written without "=")
_OPS = {
    "rotate": (lambda t: _number("rotate", t, 0, 180, "degrees"), None),
    "shift": (lambda t: _number("shift", t, 0, 0.5, "a fraction of the image size"), None),
    "zoom": (lambda t: _number("zoom", t, 0, 0.9, "a fraction (0.1: scale 0.9 to 1.1)"), None),
    "shear": (lambda t: _number("shear", t, 0, 1, "a shear factor (0.2 is about 11 degrees)"), None),
    "hflip": (lambda t: _number("hflip", t, 0, 1, "a probability"), 0.5),
    "vflip": (lambda t: _number("vflip", t, 0, 1, "a probability"), 0.5),
    "altflip": (lambda t: _switch("altflip", t), True),
    "crop": (lambda t: _number("crop", t, 0, 64, "padding in pixels", integer=True), None),
    "cutout": (lambda t: _number("cutout", t, 0, 1024, "the square's side in pixels", integer=True), None),
    "mixup": (lambda t: _number("mixup", t, 0, 100, "a Beta alpha (0.2 is usual)", low_open=True), None),
    "mixup_p": (lambda t: _number("mixup_p", t, 0, 1, "a probability"), None),
    "cutmix": (lambda t: _number("cutmix", t, 0, 100, "a Beta alpha (1.0 is usual)", low_open=True), None),
    "cutmix_p": (lambda t: _number("cutmix_p", t, 0, 1, "a probability"), None),
    "fill": (lambda t: _fill(t), None),
}
_ALIASES = {"alternating_flip": "altflip", "rotation": "rotate", "translate": "shift", "random_erasing": "cutout",
            "erase": "cutout"}


def _switch(key, text):
    if text not in ("on", "off", "true", "false", "1", "0"):
        raise ConfigError(f"augment: {key}={text!r}; write {key} alone to switch it on (or {key}=off)")
    return text in ("on", "true", "1")


def _fill(text):
    if text not in FILL_MODES:
        raise ConfigError(f"augment: fill={text!r} is unknown; expected one of {', '.join(FILL_MODES)}")
    return text


def parse_policy(text: str) -> Policy:
    """A policy string (syntax in the module docstring) -> Policy; ConfigError on any mistake."""
    policy = Policy()
    for item in (part.strip().lower() for part in text.split(",")):
        if not item:
            continue
        if item in POLICIES:
            named = parse_policy(POLICIES[item])
            for f in fields(Policy):
                if getattr(named, f.name) != f.default:
                    setattr(policy, f.name, getattr(named, f.name))
            continue
        key, has_value, value = (part.strip() for part in item.partition("="))
        key = _ALIASES.get(key, key)
        if key not in _OPS:
            raise ConfigError(f"augment: unknown op {item!r} in {text!r}; ops are {', '.join(_OPS)}, "
                              f"named policies {', '.join(POLICIES)}")
        parse, bare = _OPS[key]
        if not has_value:
            if bare is None:
                raise ConfigError(f"augment: {key} needs a value, e.g. {key}=" + POLICY_EXAMPLES[key])
            setattr(policy, key, bare)
        else:
            setattr(policy, key, parse(value))
    if policy.altflip and policy.hflip:
        raise ConfigError(f"augment: {text!r} mirrors twice, with hflip and altflip; keep one (altflip: a fixed "
                          "half in odd epochs and the other half in even ones)")
    return policy


POLICY_EXAMPLES = {"rotate": "15", "shift": "0.1", "zoom": "0.1", "shear": "0.2", "crop": "4", "cutout": "8",
                   "mixup": "0.2", "mixup_p": "0.5", "cutmix": "1.0", "cutmix_p": "0.5", "fill": "border"}


# ---------------------------------------------------------------- label safety

_DIGITS_WHY = "a mirrored digit is no digit (2, 3, 7 backwards) and past ±45° a 6 becomes a 9"
_SCRIPTS = [   # (pattern on the dataset name, what it holds, why flips and big turns change labels); first match wins
    (r"fashion|cifar", None, None),
    (r"kmnist|k49|kana|hiragana|katakana|kuzushiji|etl", "kana",
     "a mirrored kana is not one a reader writes, and turned ones read as others (く↔へ, し↔つ)"),
    (r"emnist-(digits|mnist)", "digits", _DIGITS_WHY),
    (r"emnist|letters", "letters", "mirrored or turned letters are other letters (b↔d, p↔q, n↔u, M↔W)"),
    (r"mnist|digits|usps|svhn", "digits", _DIGITS_WHY),
]


def label_risk(info) -> tuple[str, str] | None:
    """(what `info`'s dataset holds, why a flip or a big turn changes its labels), or None when
    neither can (photos, clothes) or the dataset is unknown."""
    if info is None:
        return None
    name = info.name.lower()
    for pattern, kind, why in _SCRIPTS:
        if re.search(pattern, name):
            return (kind, why) if kind else None
    if getattr(info, "ink", "") == "mnist":   # handwriting of an unlisted name
        return "handwriting", "mirrored or turned characters can become other characters, or none"
    return None


def label_safety_warning(policy: Policy, info) -> str | None:
    """Why `policy` may change what an image of `info`'s dataset shows, or None when it cannot."""
    risky = [op for op, on in (("hflip", policy.hflip), ("altflip", policy.altflip), ("vflip", policy.vflip),
                               (f"rotate={policy.rotate:g}", policy.rotate > 45)) if on]
    risk = label_risk(info) if risky else None
    if risk is None:
        return None
    kind, why = risk
    return (f"augment: {' and '.join(risky)} on {info.name} ({kind}) can change what an image shows, so its "
            f"label lies: {why}. Consider --augment digits (small turns and shifts, no flips).")


def tta_safety_warning(tta: str, info) -> str | None:
    """Why test-time flips (--tta flip, flip-shift) mislead on `info`'s dataset, or None."""
    risk = label_risk(info) if tta != "none" else None
    if risk is None:
        return None
    kind, why = risk
    return (f"--tta {tta} on {info.name} ({kind}) also scores each test image mirrored, and {why}: "
            "the test accuracy may drop. Consider --tta none.")


# ---------------------------------------------------------------- the ops, batched

def affine(x, angle, translate, scale, shear, fill="zeros"):
    """Rotate, shear, scale and translate each image of x about its centre, in one grid_sample.

    x float [B, C, H, W]; angle [B] degrees (counter-clockwise on screen); translate [B, 2] pixels
    (right, down); scale [B] (>1 enlarges the content); shear [B] factor (x' = x + shear * y).
    The content map is p_out = R(angle) @ Shear @ Scale @ p_in + t with p in pixels from the image
    centre, y pointing down. grid_sample needs the inverse (where to read each output pixel from),
    in normalised coordinates (-1..1 across the image: divide pixels by W/2 and H/2).
    """
    B, _, H, W = x.shape
    radians = torch.deg2rad(angle)
    cos, sin = torch.cos(radians), torch.sin(radians)
    # A = R @ Sh @ S, with R = [[c, s], [-s, c]] (y down, so this turns counter-clockwise on screen)
    a, b = cos * scale, (cos * shear + sin) * scale
    c, d = -sin * scale, (-sin * shear + cos) * scale
    det = a * d - b * c
    inv = torch.stack([torch.stack([d, -b], -1), torch.stack([-c, a], -1)], -2) / det[:, None, None]   # (B, 2, 2)
    # filled, not torch.tensor([...]): on a GPU a copy from the host's memory waits for every queued step
    to_norm = torch.full((2,), 2.0 / W, device=x.device, dtype=x.dtype)
    to_norm[1] = 2.0 / H
    # theta = D A^-1 D^-1 (on normalised output coords) and -D A^-1 t (the offset)
    linear = inv * to_norm[None, :, None] / to_norm[None, None, :]
    offset = -(inv @ translate.to(x.dtype)[:, :, None])[:, :, 0] * to_norm
    theta = torch.cat([linear, offset[:, :, None]], 2)                          # (B, 2, 3)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode=FILL_MODES[fill], align_corners=False)


def shift_crop(x, padding, dy, dx, fill="zeros"):
    """Pad with `padding` pixels (black, or the edge repeated or reflected: `fill`), then take the
    H x W window at (dy, dx) in [0, 2*padding] per sample.

    Two gathers on the padded batch (rows, then columns) instead of a loop over samples."""
    B, C, H, W = x.shape
    padded = F.pad(x, (padding, padding, padding, padding), mode=PAD_MODES[fill])   # (B, C, H+2p, W+2p)
    rows = dy[:, None] + torch.arange(H, device=x.device)                       # (B, H)
    cols = dx[:, None] + torch.arange(W, device=x.device)                       # (B, W)
    padded = padded.gather(2, rows[:, None, :, None].expand(B, C, H, W + 2 * padding))
    return padded.gather(3, cols[:, None, None, :].expand(B, C, H, W))


def box_mask(top, left, height, width, H, W):
    """Boolean [B, 1, H, W]: True inside each sample's box (rows top..top+height, columns left..left+width)."""
    rows = torch.arange(H, device=top.device)[None, :]
    cols = torch.arange(W, device=top.device)[None, :]
    inside_rows = (rows >= top[:, None]) & (rows < (top + height)[:, None])
    inside_cols = (cols >= left[:, None]) & (cols < (left + width)[:, None])
    return (inside_rows[:, :, None] & inside_cols[:, None, :])[:, None]


def _beta(alpha, size, device):
    concentration = torch.full((size,), float(alpha), device=device)
    return torch.distributions.Beta(concentration, concentration).sample()


class Augment:
    """A parsed policy, callable on a batch: `x, target = augment(x, y, num_classes)`."""

    def __init__(self, policy: Policy):
        self.policy = policy

    def __repr__(self):
        return f"Augment({str(self.policy)!r})"

    def __str__(self):
        return str(self.policy)

    @property
    def soft_targets(self) -> bool:
        """True when targets come back as float [B, K] probabilities (mixup or cutmix on)."""
        return self.policy.soft_targets

    @torch.no_grad()
    def __call__(self, x, y, num_classes: int):
        p = self.policy
        B, C, H, W = x.shape
        device = x.device
        if p.affine:
            angle = (torch.rand(B, device=device) * 2 - 1) * p.rotate
            translate = (torch.rand(B, 2, device=device) * 2 - 1) * p.shift
            translate[:, 0] *= W                     # in pixels (scalars: no copy from the host, see affine)
            translate[:, 1] *= H
            scale = 1 + (torch.rand(B, device=device) * 2 - 1) * p.zoom
            shear = (torch.rand(B, device=device) * 2 - 1) * p.shear
            x = affine(x, angle, translate, scale, shear, p.fill)
        if p.crop:
            dy, dx = torch.randint(0, 2 * p.crop + 1, (2, B), device=device)
            x = shift_crop(x, p.crop, dy, dx, p.fill)
        if p.hflip:
            x = torch.where((torch.rand(B, device=device) < p.hflip)[:, None, None, None], x.flip(3), x)
        if p.vflip:
            x = torch.where((torch.rand(B, device=device) < p.vflip)[:, None, None, None], x.flip(2), x)
        if p.cutout:
            if p.cutout > min(H, W):
                raise ConfigError(f"augment: cutout={p.cutout} is larger than the {H}x{W} images")
            # wholly inside the image, so every sample loses the same area (DeVries & Taylor let
            # the square hang over the border; a fixed area is easier to reason about)
            top = torch.randint(0, H - p.cutout + 1, (B,), device=device)
            left = torch.randint(0, W - p.cutout + 1, (B,), device=device)
            side = torch.full_like(top, p.cutout)
            x = x.masked_fill(box_mask(top, left, side, side, H, W), 0)
        if not p.soft_targets:
            return x, y
        target = F.one_hot(y, num_classes).to(torch.float32)                    # (B, K)
        if p.mixup:
            weight = _beta(p.mixup, B, device)                                   # the sample's own share
            weight = torch.where(torch.rand(B, device=device) < p.mixup_p, weight, torch.ones_like(weight))
            partner = torch.randperm(B, device=device)
            x = weight[:, None, None, None] * x + (1 - weight[:, None, None, None]) * x[partner]
            target = weight[:, None] * target + (1 - weight[:, None]) * target[partner]
        if p.cutmix:
            # CutMix (Yun et al. 2019): box of area (1 - lambda) H W, centre uniform, clipped at the
            # border; the target weight is the area actually pasted, after clipping
            share = _beta(p.cutmix, B, device)
            apply = torch.rand(B, device=device) < p.cutmix_p
            side = torch.sqrt(1 - share)
            box_h, box_w = (side * H).round().long(), (side * W).round().long()
            cy, cx = torch.randint(0, H, (B,), device=device), torch.randint(0, W, (B,), device=device)
            top, left = (cy - box_h // 2).clamp(0, H), (cx - box_w // 2).clamp(0, W)
            bottom, right = (cy - box_h // 2 + box_h).clamp(0, H), (cx - box_w // 2 + box_w).clamp(0, W)
            mask = box_mask(top, left, bottom - top, right - left, H, W) & apply[:, None, None, None]
            partner = torch.randperm(B, device=device)
            x = torch.where(mask, x[partner], x)
            pasted = mask.flatten(1).float().mean(1)                             # (B,) fraction from the partner
            target = (1 - pasted[:, None]) * target + pasted[:, None] * target[partner]
        return x, target


def make_augment(policy: str | None, info=None, warn=warnings.warn) -> Augment | None:
    """Parse `policy` into an Augment (None for None, "" or "none"); ConfigError for a bad policy.

    With `info` (a DatasetInfo), checks that the images fit (cutout) and calls `warn(message)` when a
    flip or a turn beyond 45 degrees would change the labels of digits, letters or kana."""
    if policy is not None and not isinstance(policy, str):
        raise ConfigError(f"augment: a policy is a string such as 'digits' or 'rotate=10,shift=0.1', "
                          f"got {type(policy).__name__} {policy!r}")
    if policy is None or policy.strip().lower() in ("", "none"):
        return None
    parsed = parse_policy(policy.strip())
    if info is not None:
        _, height, width = info.image_shape
        if parsed.cutout > min(height, width):
            raise ConfigError(f"augment: cutout={parsed.cutout} is larger than {info.name}'s {height}x{width} images")
        message = label_safety_warning(parsed, info)
        if message:
            warn(message)
    return Augment(parsed)
