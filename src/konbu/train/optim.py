"""Optimizers by name, with Keras's defaults so a tutorial's settings mean the same thing here.

    optimizer = make_optimizer("sgd", model.parameters(), lr=0.1, momentum=0.9, nesterov=True)
    optimizer = make_optimizer("adamw", model.parameters())          # Keras: lr 1e-3, weight decay 0.004

Keras's RMSprop decays its square average with rho=0.9 and eps=1e-7; PyTorch's defaults are
alpha=0.99 and eps=1e-8, which trains noticeably differently at the tutorials' learning rates.
Adadelta keeps lr 1.0 (Keras 2's default, used by the Keras MNIST examples of the tutorials' era;
Keras 3's 1e-3 barely moves a model in a tutorial's few epochs) with Keras's rho 0.95, eps 1e-7.
Parameters update in one fused kernel per optimizer where PyTorch has one for the device (Adam,
AdamW, SGD on CPU and CUDA: 0.08 ms a step for chollet-mnist against 0.21 ms for foreach Adam on the
2-core CPU), else with `foreach=True`: a few multi-tensor kernels instead of a Python loop.
"""

import torch

from ..errors import ConfigError, UnknownNameError


def _fused(params) -> tuple[list, dict]:
    """(params as a list, the fastest kernel option): fused when every tensor is on a CPU or CUDA."""
    params = list(params)
    tensors = [p for group in params for p in (group["params"] if isinstance(group, dict) else [group])]
    on = all(t.device.type in ("cpu", "cuda") and t.is_floating_point() for t in tensors)
    return params, {"fused": True} if on else {"foreach": True}


def _sgd(params, lr, momentum, nesterov, weight_decay):
    if nesterov and not momentum:
        raise ConfigError("--nesterov needs momentum; add e.g. --momentum 0.9")
    params, kernel = _fused(params)
    return torch.optim.SGD(params, lr=lr, momentum=momentum or 0.0, nesterov=nesterov,
                           weight_decay=weight_decay or 0.0, **kernel)


def _adam(params, lr, momentum, nesterov, weight_decay):
    params, kernel = _fused(params)
    return torch.optim.Adam(params, lr=lr, eps=1e-7, weight_decay=weight_decay or 0.0, **kernel)


def _adamw(params, lr, momentum, nesterov, weight_decay):
    # decoupled weight decay (Loshchilov & Hutter); Keras's AdamW default is 0.004
    params, kernel = _fused(params)
    return torch.optim.AdamW(params, lr=lr, eps=1e-7, weight_decay=0.004 if weight_decay is None else weight_decay,
                             **kernel)


def _rmsprop(params, lr, momentum, nesterov, weight_decay):
    return torch.optim.RMSprop(params, lr=lr, alpha=0.9, eps=1e-7, momentum=momentum or 0.0,
                               weight_decay=weight_decay or 0.0, foreach=True)


def _adadelta(params, lr, momentum, nesterov, weight_decay):
    return torch.optim.Adadelta(params, lr=lr, rho=0.95, eps=1e-7, weight_decay=weight_decay or 0.0, foreach=True)


# name -> (default learning rate, factory(params, lr, momentum, nesterov, weight_decay))
OPTIMIZERS = {
    "sgd": (1e-2, _sgd),
    "adam": (1e-3, _adam),
    "adamw": (1e-3, _adamw),
    "rmsprop": (1e-3, _rmsprop),
    "adadelta": (1.0, _adadelta),
}
USES_MOMENTUM = {"sgd", "rmsprop"}


def default_lr(name: str) -> float:
    check_name(name)
    return OPTIMIZERS[name][0]


def check_name(name: str):
    if name not in OPTIMIZERS:
        raise UnknownNameError(f"unknown optimizer {name!r}; expected one of {', '.join(OPTIMIZERS)}")


def make_optimizer(name: str, params, lr=None, momentum=None, nesterov=False, weight_decay=None):
    """A torch optimizer by name; None for lr/momentum/weight_decay means Keras's default."""
    check_name(name)
    if momentum is not None and not 0.0 <= momentum < 1.0:   # torch's own check lets NaN through
        raise ConfigError(f"--momentum must be in [0, 1), got {momentum!r}")
    if (momentum or nesterov) and name not in USES_MOMENTUM:
        raise ConfigError(f"--momentum/--nesterov apply to sgd and rmsprop, not {name} "
                          "(adam-style optimizers keep their own running averages)")
    default, factory = OPTIMIZERS[name]
    try:
        return factory(params, default if lr is None else lr, momentum, nesterov, weight_decay)
    except ValueError as error:   # torch's own range checks, for a caller that skipped TrainConfig.check
        raise ConfigError(f"{name}: {error} (lr {lr!r}, momentum {momentum!r}, "
                          f"weight decay {weight_decay!r})") from None
