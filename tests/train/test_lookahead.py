"""konbu.train.lookahead: airbench's lookahead, by hand on a small model and in a whole run."""

import pytest
import torch
from safetensors.torch import load_file

import konbu
from konbu.errors import ConfigError
from konbu.train.lookahead import EVERY, Lookahead


def small_model():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.BatchNorm1d(2))


def test_every_fifth_step_the_average_moves_by_the_rising_decay_and_the_model_takes_it():
    model = small_model()
    start = {k: v.clone() for k, v in model.state_dict().items()}
    lookahead = Lookahead(model, base=0.9, last_step=50)
    with torch.no_grad():
        for tensor in model.state_dict().values():
            tensor.add_(1)                               # a "step": everything moves, the step count too
    moved = {k: v.clone() for k, v in model.state_dict().items()}
    for step in range(1, EVERY):
        lookahead.update(model, step)                    # not a pull step: nothing changes
        assert all(torch.equal(moved[k], v) for k, v in model.state_dict().items())
    lookahead.update(model, EVERY)
    decay = 0.9 ** 5 * (5 / 50) ** 3
    assert lookahead.decay(EVERY) == pytest.approx(decay)
    for name, value in model.state_dict().items():
        if name.endswith("num_batches_tracked"):         # a count, not averaged
            assert torch.equal(value, moved[name])
            continue
        expected = start[name] + (1 - decay) * (moved[name] - start[name])
        torch.testing.assert_close(value, expected)       # weights and BatchNorm's running statistics
        torch.testing.assert_close(lookahead.average[name], expected)
    assert lookahead.decay(50) == pytest.approx(0.9 ** 5)  # the end: base ** 5


def test_settle_gives_the_model_the_average_and_the_state_round_trips():
    model = small_model()
    lookahead = Lookahead(model, base=0.95, last_step=10)
    average = {k: v.clone() for k, v in lookahead.average.items()}
    with torch.no_grad():
        model[0].weight.mul_(3)
    other = Lookahead(small_model(), base=0.95, last_step=10)
    other.load_state_dict(lookahead.state_dict())
    other.settle(model)
    assert torch.equal(model[0].weight, average["0.weight"])


def test_a_run_ends_each_epoch_on_the_average_and_saves_it(tmp_path):
    # 7 steps an epoch: each ends 2 steps after a pull, so only settle() puts the average back
    settings = dict(model="chollet-mnist", dataset="tiny-mnist", epochs=2, batch_size=48, val_fraction=0.0,
                    precision="fp32", device="cpu", threads=2, seed=0, quiet=True)
    run = konbu.fit(**settings, lookahead=0.95, out=str(tmp_path / "la"))
    plain = konbu.fit(**settings, out=str(tmp_path / "plain"))
    model, average = (load_file(run.path / "last.ckpt" / f"{name}.safetensors") for name in ("model", "lookahead"))
    assert set(average) == {f"lookahead.{k}" for k in model if not k.endswith("num_batches_tracked")}
    assert all(torch.equal(model[k], average[f"lookahead.{k}"]) for k in model if f"lookahead.{k}" in average)
    saved = load_file(run.path / "weights.safetensors")
    assert all(torch.equal(saved[k], model[k]) for k in saved)
    other = load_file(plain.path / "weights.safetensors")
    assert not all(torch.equal(saved[k], other[k]) for k in saved)
    assert run.info["config"]["lookahead"] == 0.95


@pytest.mark.parametrize("bad", [0.0, 1.0, 1.5, float("nan")])
def test_a_decay_outside_0_1_is_refused(bad, tmp_path):
    with pytest.raises(ConfigError, match="--lookahead"):
        konbu.fit(model="softmax", dataset="tiny-mnist", lookahead=bad, out=str(tmp_path / "r"), quiet=True)
