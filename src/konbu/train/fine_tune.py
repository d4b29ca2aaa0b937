"""`--fine-tune`: the Keras book's two stages in one run, on a pretrained backbone.

    konbu train --model pretrained:resnet18 --dataset cifar10 --image-size 64 \\
        --fine-tune --freeze-epochs 2 --epochs 6 --unfreeze top:2 --backbone-lr-ratio 0.1

Stage 1 (epochs 1..--freeze-epochs): the backbone is frozen, no gradient and its BatchNorm layers in
eval mode, and only the new head trains. Stage 2 (the rest of --epochs): the top K blocks of the
backbone (`--unfreeze top:K`, or `all`) train too, at --backbone-lr-ratio times the head's rate;
the blocks below stay frozen. Each stage runs the learning-rate schedule from its start (fastai's
fine_tune: a new one-cycle per stage), so stage 2 does not begin where stage 1's curve ended.

Which stage an epoch is in depends on the epoch alone: a run resumed in either stage, or across
the boundary, trains exactly as one that never stopped.
"""

from dataclasses import dataclass

from .config import unfreeze_blocks


@dataclass
class Stages:
    backbone: object           # models.backbones.Backbone
    freeze_epochs: int
    unfreeze: int              # blocks trained in stage 2 (all of them for --unfreeze all)
    unfreeze_text: str         # --unfreeze as given, for run.json and the messages

    def stage(self, epoch: int) -> int:
        return 1 if epoch <= self.freeze_epochs else 2

    def enter(self, epoch: int) -> bool:
        """Freeze or unfreeze for `epoch`; True when that changed what trains."""
        top = 0 if self.stage(epoch) == 1 else self.unfreeze
        if top == self.backbone.trainable_blocks:
            return False
        self.backbone.set_trainable(top)
        return True

    def describe(self, model, last_epoch: int) -> list:
        """Per stage: its epochs, what trains, and trainable vs frozen parameter counts."""
        was = self.backbone.trainable_blocks
        out = []
        for stage, (first, last) in ((1, (1, self.freeze_epochs)), (2, (self.freeze_epochs + 1, last_epoch))):
            self.backbone.set_trainable(0 if stage == 1 else self.unfreeze)
            out.append({"stage": stage, "epochs": [first, last], **counts(model),
                        "backbone": "frozen" if stage == 1 else f"{self.unfreeze_text} unfrozen "
                        f"({self.unfreeze} of {len(self.backbone.freeze_blocks)} blocks)",
                        "frozen_blocks": self.backbone.frozen_names(), "trained_blocks": self.backbone.trained_names()})
        self.backbone.set_trainable(was)
        return out


def counts(model) -> dict:
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return {"trainable": trainable, "frozen": sum(p.numel() for p in model.parameters()) - trainable}


def backbone_of(model):
    """The model's pretrained Backbone, or None."""
    from ..models.backbones import Backbone

    return next((module for module in model.modules() if isinstance(module, Backbone)), None)


def make_stages(config, model) -> Stages | None:
    """The run's Stages with --fine-tune, else None."""
    if not config.fine_tune:
        return None
    backbone = backbone_of(model)
    top = unfreeze_blocks(config.unfreeze)
    blocks = len(backbone.freeze_blocks)
    return Stages(backbone, config.freeze_epochs, blocks if top is None else min(top, blocks), config.unfreeze)


def param_groups(model, backbone_lr_ratio: float, norm_bias_lr_scale: float = 1.0):
    """The optimizer's groups: the head (and every non-backbone weight) first, at the scheduled rate;
    with `norm_bias_lr_scale` other than 1, the BatchNorm biases outside a backbone next, at that
    multiple of it (airbench's bias_scaler; build_parts divides their weight decay by it, so they
    decay as much per step); then the backbone, at `backbone_lr_ratio` of it (Schedule multiplies
    each group's rate by its "lr_scale"). A model with neither is one group."""
    from torch.nn.modules.batchnorm import _BatchNorm

    backbone = backbone_of(model)
    inside = {id(p) for p in backbone.parameters()} if backbone is not None else set()
    biases = [] if norm_bias_lr_scale == 1.0 else [
        m.bias for m in model.modules() if isinstance(m, _BatchNorm)
        and m.bias is not None and m.bias.requires_grad and id(m.bias) not in inside]
    if backbone is None and not biases:
        return list(model.parameters())
    apart = inside | {id(p) for p in biases}
    groups = [{"params": [p for p in model.parameters() if id(p) not in apart], "lr_scale": 1.0}]
    if biases:
        groups.append({"params": biases, "lr_scale": norm_bias_lr_scale, "norm_biases": True})
    if backbone is not None:
        groups.append({"params": list(backbone.parameters()), "lr_scale": backbone_lr_ratio})
    return groups
