"""Optimizers by name, with Keras's defaults so a tutorial's settings mean the same thing here.

Keras's RMSprop decays its square average with rho=0.9 and eps=1e-7; PyTorch's defaults are
alpha=0.99 and eps=1e-8, which trains noticeably differently at the tutorials' learning rates.
`foreach=True` updates all parameters in a few fused kernels instead of a Python loop over them.
"""

import torch

from ..errors import UnknownNameError

# name -> (default learning rate, factory(params, lr))
OPTIMIZERS = {
    "sgd": (1e-2, lambda params, lr: torch.optim.SGD(params, lr=lr, foreach=True)),
    "adam": (1e-3, lambda params, lr: torch.optim.Adam(params, lr=lr, eps=1e-7, foreach=True)),
    "rmsprop": (1e-3, lambda params, lr: torch.optim.RMSprop(params, lr=lr, alpha=0.9, eps=1e-7, foreach=True)),
}


def make_optimizer(name: str, params, lr=None):
    if name not in OPTIMIZERS:
        raise UnknownNameError(f"unknown optimizer {name!r}; expected one of {', '.join(OPTIMIZERS)}")
    default_lr, factory = OPTIMIZERS[name]
    return factory(params, default_lr if lr is None else lr)
