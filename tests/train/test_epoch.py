"""One epoch's machinery: the batch loss, EpochProgress as the one place counters live (its
checkpoint state round trip), records that do not change state, Ctrl-C held over an epoch's
close, and the `interrupted` event's documented payload."""

import os
import signal

import pytest
import torch

import konbu
from konbu.train.epoch import (CtrlC, EpochProgress, StepSettings, alternating_halves, epoch_record, mirror_half,
                                 train_one_epoch)
from konbu.train.parts import build_parts, prepare_data
from konbu.train import TrainConfig

CPU = torch.device("cpu")


def parts_and_data(**settings):
    config = TrainConfig.from_overrides(**{"dataset": "tiny-mnist", "model": "softmax", "device": "cpu",
                                           "precision": "fp32", "batch_size": 32, **settings})
    train, _, _ = prepare_data(config)
    return build_parts(config, train, CPU, "fp32"), train


def run(parts, train, progress, last_step):
    return train_one_epoch(parts.model, parts.optimizer, parts.schedule, parts.loss, train.images, train.labels,
                           progress, StepSettings(32, last_step), lambda event: None)


def test_progress_counts_steps_images_and_time_and_its_records_are_pure():
    parts, train = parts_and_data()
    progress = EpochProgress.begin(1, torch.randperm(len(train)), CPU, step=10, seconds=2.0, images=100)
    assert run(parts, train, progress, last_step=14) is None
    assert (progress.step, progress.batch, progress.seen) == (14, 4, 128)
    assert progress.total_images == 228 and progress.total_seconds > 2.0 and progress.seconds > 0
    first = progress.batch_records()
    assert first == progress.batch_records() and len(progress.pending) == 4     # reading changes nothing
    assert [r["step"] for r in first] == [11, 12, 13, 14]
    record = epoch_record(progress, first, (0.5, 0.9), seconds=progress.seconds + 0.1)
    assert record["val_loss"] == 0.5 and record["images_per_second"] == pytest.approx(128 / progress.seconds, rel=1e-3)


def test_checkpoint_state_round_trip_continues_the_same_epoch():
    parts, train = parts_and_data()
    progress = EpochProgress.begin(2, torch.randperm(len(train)), CPU, step=9, seconds=1.0, images=270)
    run(parts, train, progress, last_step=12)
    state, tensors = progress.state(done=False)
    again = EpochProgress.restore(state, tensors, CPU, new_order=lambda: pytest.fail("mid-epoch: keep the order"))
    assert (again.epoch, again.step, again.batch, again.seen) == (2, 12, 3, 96)
    assert torch.equal(again.order, progress.order) and again.batch_records() == progress.batch_records()
    assert again.total_seconds == pytest.approx(progress.total_seconds) and again.total_images == 366
    state, tensors = progress.state(done=True)
    following = EpochProgress.restore(state, tensors, CPU, new_order=lambda: torch.arange(len(train)))
    assert (following.epoch, following.step, following.seen, following.total_images) == (3, 12, 0, 366)


def test_a_ctrl_c_during_an_epochs_close_waits_for_its_end():
    handler = CtrlC()
    with handler.held():
        handler(signal.SIGINT, None)
        handler(signal.SIGINT, None)          # a second press, too, waits
    assert handler.pressed
    with pytest.raises(KeyboardInterrupt):
        handler(signal.SIGINT, None)          # outside the close a second press stops at once


def test_the_interrupted_event_carries_step_epoch_and_run_dir(tmp_path):
    events = []

    def interrupt_at_step_5(event):
        events.append(event)
        if event.kind == "batch" and event.data["step"] == 5:
            os.kill(os.getpid(), signal.SIGINT)

    with pytest.raises(KeyboardInterrupt):
        konbu.fit(model="softmax", dataset="tiny-mnist", epochs=2, batch_size=32, threads=1, quiet=True,
                  listeners=[interrupt_at_step_5], out=str(tmp_path / "r"))
    interrupted = [event.data for event in events if event.kind == "interrupted"]
    assert interrupted == [{"step": 5, "epoch": 1, "run_dir": str(tmp_path / "r")}]


def test_where_the_device_runs_ahead_a_step_never_waits_for_it(monkeypatch):
    """On a GPU, reading a device value (item, tolist, bool, float) or copying from the host's memory
    makes the host wait for every queued step. With the device made to run ahead, as a GPU does:
    30 steps of SGD with the digits augmentation and the divergence guard read it at the sync points
    only, the guard's verdict every 10 steps."""
    import konbu.device
    from konbu.train import epoch as epoch_module
    monkeypatch.setattr(konbu.device, "IN_HOST_TIME", ())
    monkeypatch.setattr(epoch_module, "SYNC_EVERY", 10)
    parts, train = parts_and_data(model="chollet-mnist", optimizer="sgd", momentum=0.9, augment="digits")
    assert parts.guard.on_device
    reads = []

    def counted(name, original):
        def read(*args, **kwargs):
            reads.append(name)
            return original(*args, **kwargs)
        return read
    for name in ("item", "tolist", "__bool__", "__float__", "__int__"):
        monkeypatch.setattr(torch.Tensor, name, counted(name, getattr(torch.Tensor, name)))
    monkeypatch.setattr(torch, "tensor", counted("tensor", torch.tensor))
    progress = EpochProgress.begin(1, torch.randperm(len(train)), CPU)
    assert train_one_epoch(parts.model, parts.optimizer, parts.schedule, parts.loss, train.images, train.labels,
                           progress, StepSettings(8, 30), lambda event: None, guard=parts.guard) is None
    assert progress.step == 30 and reads == ["tolist"] * 3


def test_altflip_mirrors_a_seeded_half_in_odd_epochs_and_the_other_half_in_even_ones():
    with pytest.warns(UserWarning, match="altflip"):           # mirrored digits: the label warning
        parts, train = parts_and_data(augment="altflip", seed=3)
    halves = parts.flip_halves
    assert torch.equal(halves, alternating_halves(len(train), 3)) and 0.35 < halves.float().mean() < 0.65
    seen = []

    def recording(model, x, y):                                   # what each step trains on
        seen.append(x.clone())
        return parts.loss(model, x, y)
    for epoch, mirrored in ((1, halves), (2, ~halves)):
        order = torch.randperm(len(train))
        seen.clear()
        train_one_epoch(parts.model, parts.optimizer, parts.schedule, recording, train.images, train.labels,
                        EpochProgress.begin(epoch, order, CPU), StepSettings(32, 1000), lambda event: None,
                        flip_halves=halves)
        images = train.images[order]
        expected = torch.where(mirrored[order][:, None, None, None], images.flip(3), images)
        assert torch.equal(torch.cat(seen), expected)
        assert not torch.equal(images, expected)                  # some were mirrored
    flipped = torch.arange(2 * 1 * 2 * 3, dtype=torch.uint8).view(2, 1, 2, 3)
    assert torch.equal(mirror_half(flipped.clone(), torch.tensor([True, False]), 1)[0], flipped[0].flip(2))
    assert torch.equal(mirror_half(flipped.clone(), torch.tensor([True, False]), 2)[1], flipped[1].flip(2))
