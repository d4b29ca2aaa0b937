"""Optimizers by name, with Keras's defaults so a tutorial's settings mean the same thing here.

    optimizer = make_optimizer("sgd", model.parameters(), lr=0.1, momentum=0.9, nesterov=True)
    optimizer = make_optimizer("adamw", model.parameters())          # Keras: lr 1e-3, weight decay 0.004
    optimizer.zero_grad(); loss.backward(); optimizer.step()
    torch.save(optimizer.state_dict(), "optimizer.pt")               # torch.optim's format

Keras's RMSprop decays its square average with rho=0.9 and eps=1e-7; PyTorch's defaults are
alpha=0.99 and eps=1e-8, which trains noticeably differently at the tutorials' learning rates.
Adadelta keeps lr 1.0 (Keras 2's default, used by the Keras MNIST examples of the tutorials' era;
Keras 3's 1e-3 barely moves a model in a tutorial's few epochs) with Keras's rho 0.95, eps 1e-7.

Each rule is the same arithmetic as its torch.optim class, op for op (a test checks every rule
against torch.optim to the last bit): SGD, Adam and AdamW in PyTorch's fused kernels, RMSprop and
Adadelta in multi-tensor (`_foreach_`) ops. They are konbu's own because torch.optim.Optimizer
imports torch._dynamo (the compiler) when an optimizer is built and again in every step: 3.9 s of a
`konbu train` on a 2-core AVX2 CPU, as long as `import torch` itself. Without its bookkeeping a
step is also shorter: RMSprop for chollet-mnist 0.85 ms against 1.65, Adam 0.24 against 0.60.
The interface is torch.optim's: param_groups (dicts: "params", "lr", ...; the schedules set "lr"),
state (per parameter), step, zero_grad, and state_dict / load_state_dict in torch.optim's layout,
so checkpoints written by either load into the other.

`step(skip=flag)` (SGD, Adam, AdamW: `Optimizer.can_skip`) takes a 0-d float32 tensor on the
parameters' device and leaves every parameter and state as it is where the flag is 1.0, decided on
the device (the fused kernels' `found_inf`, as GradScaler uses it): the divergence guard's
device-side check (guard.DeviceGuard) stops a bad step on a GPU without waiting for its loss.
"""

import torch

from ..errors import ConfigError, UnknownNameError


class Optimizer:
    """Parameter groups, per-parameter state, and one update rule:
    `update(group, params, grads, states)` changes the parameters (and their states) in place;
    `new_state(param, group)` is a parameter's state before its first step."""

    def __init__(self, params, update, new_state, can_skip=False, **defaults):
        for key, what in (("lr", "learning rate"), ("eps", "epsilon"), ("weight_decay", "weight decay")):
            if key in defaults and not defaults[key] >= 0.0:     # also refuses NaN
                raise ValueError(f"invalid {what}: {defaults[key]}")
        self.defaults, self._update, self._new_state, self.can_skip = defaults, update, new_state, can_skip
        groups = list(params)
        if not groups:
            raise ValueError("the optimizer got an empty parameter list")
        self.param_groups, self.state = [], {}
        for group in groups if isinstance(groups[0], dict) else [{"params": groups}]:
            self.add_param_group(group)

    def add_param_group(self, group: dict):
        params = group["params"]
        group = {**self.defaults, **group, "params": [params] if isinstance(params, torch.Tensor) else list(params)}
        self.param_groups.append(group)

    @torch.no_grad()
    def step(self, closure=None, skip: torch.Tensor | None = None):
        """One update of every parameter that has a gradient; returns `closure()`'s loss, if given.
        `skip` (rules with can_skip only): 0-d float32 on the device; 1.0 leaves everything as it is."""
        if skip is not None and not self.can_skip:
            raise ValueError("this optimizer's rule cannot skip a step on the device")
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            for p in params:
                if p not in self.state:
                    self.state[p] = self._new_state(p, group)
            if params:
                grads, states = [p.grad for p in params], [self.state[p] for p in params]
                self._update(group, params, grads, states, **({"skip": skip} if skip is not None else {}))
        return loss

    def zero_grad(self, set_to_none: bool = True):
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    if set_to_none:
                        p.grad = None
                    else:
                        p.grad.detach_().zero_()

    def state_dict(self) -> dict:
        """torch.optim's layout: {"state": {index: {...}}, "param_groups": [{..., "params": [index]}]},
        parameters numbered in group order."""
        index, groups = {}, []
        for group in self.param_groups:
            numbers = [index.setdefault(id(p), len(index)) for p in group["params"]]
            groups.append({**{k: v for k, v in group.items() if k != "params"}, "params": numbers})
        return {"state": {index[id(p)]: state for p, state in self.state.items()}, "param_groups": groups}

    def load_state_dict(self, state_dict: dict):
        """Take the saved groups' settings and a copy of every parameter's state, on the parameter's
        device and in its dtype ("step" in float32: the fused kernels read it there)."""
        saved = state_dict["param_groups"]
        if [len(g["params"]) for g in saved] != [len(g["params"]) for g in self.param_groups]:
            raise ValueError("the saved optimizer state has other parameter groups than this optimizer "
                             f"({[len(g['params']) for g in saved]} parameters against "
                             f"{[len(g['params']) for g in self.param_groups]})")
        params = {number: p for old, group in zip(saved, self.param_groups)
                  for number, p in zip(old["params"], group["params"])}
        self.state = {}
        for number, state in state_dict["state"].items():
            p = params[int(number)]
            self.state[p] = {key: value.to(device=p.device, dtype=torch.float32 if key == "step" else p.dtype,
                                           copy=True) if torch.is_tensor(value) else value
                             for key, value in state.items()}
        for old, group in zip(saved, self.param_groups):
            group.update({key: value for key, value in old.items() if key != "params"})


def _step_count(param) -> dict:
    return {"step": torch.zeros((), dtype=torch.float32, device=param.device)}


def _zeros(param, *names) -> dict:
    return {name: torch.zeros_like(param, memory_format=torch.preserve_format) for name in names}


def _count_step(states):
    torch._foreach_add_([state["step"] for state in states], 1)


def _sgd_update(group, params, grads, states, skip=None):
    momentum = group["momentum"]
    kernel = dict(weight_decay=group["weight_decay"], momentum=momentum, lr=group["lr"], dampening=0.0,
                  nesterov=group["nesterov"], maximize=False, grad_scale=None, found_inf=skip)
    if not momentum:
        torch._fused_sgd_(params, grads, [], is_first_step=False, **kernel)
        return
    # A parameter's first step starts its velocity at its gradient (the kernel's is_first_step); a
    # fine-tuned backbone's parameters get theirs later than the head's. Zeros, not empty: a skipped
    # first step leaves the buffer as it was, and the next step's 0 * momentum + gradient is the same
    # velocity a first step starts with.
    going = [i for i, state in enumerate(states) if "momentum_buffer" in state]
    first = [i for i, state in enumerate(states) if "momentum_buffer" not in state]
    for i in first:
        states[i]["momentum_buffer"] = torch.zeros_like(grads[i])
    for chosen, is_first in ((first, True), (going, False)):
        if chosen:
            torch._fused_sgd_([params[i] for i in chosen], [grads[i] for i in chosen],
                              [states[i]["momentum_buffer"] for i in chosen], is_first_step=is_first, **kernel)


def _adam_update(group, params, grads, states, skip=None):
    _count_step(states)
    kernel = torch._fused_adamw_ if group["decoupled_weight_decay"] else torch._fused_adam_
    beta1, beta2 = group["betas"]
    steps = [s["step"] for s in states]
    kernel(params, grads, [s["exp_avg"] for s in states], [s["exp_avg_sq"] for s in states], [],
           steps, amsgrad=False, lr=group["lr"], beta1=beta1, beta2=beta2,
           weight_decay=group["weight_decay"], eps=group["eps"], maximize=False, grad_scale=None, found_inf=skip)
    if skip is not None:   # a skipped step is not counted (torch.optim's fused Adam does the same)
        torch._foreach_sub_(steps, [skip] * len(steps))


def _rmsprop_update(group, params, grads, states):
    _count_step(states)
    alpha, lr = group["alpha"], group["lr"]
    if group["weight_decay"]:
        grads = torch._foreach_add(grads, params, alpha=group["weight_decay"])
    square_avgs = [s["square_avg"] for s in states]
    torch._foreach_mul_(square_avgs, alpha)
    torch._foreach_addcmul_(square_avgs, grads, grads, value=1 - alpha)
    avg = torch._foreach_sqrt(square_avgs)
    torch._foreach_add_(avg, group["eps"])                 # outside the root, as torch and Keras have it
    if group["momentum"] > 0:
        buffers = [s["momentum_buffer"] for s in states]
        torch._foreach_mul_(buffers, group["momentum"])
        torch._foreach_addcdiv_(buffers, grads, avg)
        torch._foreach_add_(params, buffers, alpha=-lr)
    else:
        torch._foreach_addcdiv_(params, grads, avg, value=-lr)


def _adadelta_update(group, params, grads, states):
    _count_step(states)
    rho, eps = group["rho"], group["eps"]
    if group["weight_decay"]:
        grads = torch._foreach_add(grads, params, alpha=group["weight_decay"])
    square_avgs, acc_deltas = [s["square_avg"] for s in states], [s["acc_delta"] for s in states]
    torch._foreach_mul_(square_avgs, rho)
    torch._foreach_addcmul_(square_avgs, grads, grads, value=1 - rho)
    std = torch._foreach_add(square_avgs, eps)
    torch._foreach_sqrt_(std)
    deltas = torch._foreach_add(acc_deltas, eps)
    torch._foreach_sqrt_(deltas)
    torch._foreach_div_(deltas, std)
    torch._foreach_mul_(deltas, grads)
    torch._foreach_mul_(acc_deltas, rho)
    torch._foreach_addcmul_(acc_deltas, deltas, deltas, value=1 - rho)
    torch._foreach_add_(params, deltas, alpha=-group["lr"])


def _sgd(params, lr, momentum, nesterov, weight_decay):
    if nesterov and not momentum:
        raise ConfigError("--nesterov needs momentum; add e.g. --momentum 0.9")
    return Optimizer(params, _sgd_update, lambda p, group: {}, can_skip=True, lr=lr, momentum=momentum or 0.0,
                     nesterov=nesterov, weight_decay=weight_decay or 0.0)


def _adam_state(param, group):
    return {**_step_count(param), **_zeros(param, "exp_avg", "exp_avg_sq")}


def _adam(params, lr, momentum, nesterov, weight_decay):
    return Optimizer(params, _adam_update, _adam_state, can_skip=True, lr=lr, betas=(0.9, 0.999), eps=1e-7,
                     weight_decay=weight_decay or 0.0, decoupled_weight_decay=False)


def _adamw(params, lr, momentum, nesterov, weight_decay):
    # decoupled weight decay (Loshchilov & Hutter); Keras's AdamW default is 0.004
    return Optimizer(params, _adam_update, _adam_state, can_skip=True, lr=lr, betas=(0.9, 0.999), eps=1e-7,
                     weight_decay=0.004 if weight_decay is None else weight_decay, decoupled_weight_decay=True)


def _rmsprop_state(param, group):
    return {**_step_count(param), **_zeros(param, "square_avg", *(["momentum_buffer"] if group["momentum"] else []))}


def _rmsprop(params, lr, momentum, nesterov, weight_decay):
    return Optimizer(params, _rmsprop_update, _rmsprop_state, lr=lr, alpha=0.9, eps=1e-7, momentum=momentum or 0.0,
                     weight_decay=weight_decay or 0.0)


def _adadelta(params, lr, momentum, nesterov, weight_decay):
    return Optimizer(params, _adadelta_update, lambda p, group: {**_step_count(p), **_zeros(p, "square_avg", "acc_delta")},
                     lr=lr, rho=0.95, eps=1e-7, weight_decay=weight_decay or 0.0)


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


def make_optimizer(name: str, params, lr=None, momentum=None, nesterov=False, weight_decay=None) -> Optimizer:
    """An optimizer by name; None for lr/momentum/weight_decay means Keras's default."""
    check_name(name)
    if momentum is not None and not 0.0 <= momentum < 1.0:   # also refuses NaN
        raise ConfigError(f"--momentum must be in [0, 1), got {momentum!r}")
    if (momentum or nesterov) and name not in USES_MOMENTUM:
        raise ConfigError(f"--momentum/--nesterov apply to sgd and rmsprop, not {name} "
                          "(adam-style optimizers keep their own running averages)")
    default, factory = OPTIMIZERS[name]
    try:
        return factory(params, default if lr is None else lr, momentum, nesterov, weight_decay)
    except ValueError as error:   # the range checks, for a caller that skipped TrainConfig.check
        raise ConfigError(f"{name}: {error} (lr {lr!r}, momentum {momentum!r}, "
                          f"weight decay {weight_decay!r})") from None
