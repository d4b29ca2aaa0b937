"""Grad-CAM: where in the image a conv model found the evidence for a class.

    from konbu.inspect.gradcam import gradcam, plot_gradcam
    heat = gradcam(run.model, x)                  # x: normalised float [C, H, W]; heat: [H, W] in [0, 1]
    heat = gradcam(run.model, x, target=3, layer="conv2d_1")
    plot_gradcam(run, "seven.png", run.path / "figures" / "gradcam.png")

    konbu show gradcam RUN IMAGE [--target LABEL]

Selvaraju et al., "Grad-CAM: Visual Explanations from Deep Networks via Gradient-based
Localization" (2017): take the feature maps A_k of a conv layer (after its activation) and the
gradient of the class score (the logit, before softmax) with respect to them; weigh each map by its
mean gradient, sum, keep the positive part, upsample to the input's size. Bright = the maps that
raise this class's score are active there. The last conv layer is the default: its maps are the
most class-specific that still have a spatial layout.
"""

from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..errors import ConfigError, ModelSpecError
from .canvas import display_image, new_figure, save_figure
from .features import model_batch
from .fonts import display_label, label_font


def cam_module(model, layer):
    """(name, module) whose output Grad-CAM reads: the conv layer's activation if it has one; a
    pretrained backbone's last feature map (Grad-CAM's usual layer for such networks)."""
    if hasattr(model, "layers") and hasattr(model, "module_named"):
        convs = [spec_layer for spec_layer in model.layers if spec_layer.type in ("Conv2D", "Functional")]
        names = [spec_layer.name for spec_layer in convs]
        chosen = convs[-1] if layer is None and convs else next((c for c in convs if c.name == layer), None)
        if chosen is not None:
            return chosen.name, model.module_named(chosen.modules[-1])
    else:
        convs = [(name, module) for name, module in model.named_modules() if isinstance(module, nn.Conv2d)]
        names = [name for name, _ in convs]
        if layer is None and convs:
            return convs[-1]
        for name, module in convs:
            if name == layer:
                return name, module
    if not names:
        raise ModelSpecError("Grad-CAM needs a conv layer, and this model has none (softmax regression and MLPs "
                             "have no feature maps); `konbu show weights` draws what such a model looks for")
    raise ModelSpecError(f"layer {layer!r} is not a conv layer of this model; its conv layers are {', '.join(names)}")


def gradcam(model: nn.Module, x: torch.Tensor, target: int | None = None, layer: str | None = None) -> torch.Tensor:
    """Grad-CAM heat map [H, W] in [0, 1] (CPU float) for one normalised input `x` [C, H, W] or
    [1, C, H, W], for class index `target` (default: the predicted class), read at conv layer
    `layer` (default: the last), scaled so the image's weakest evidence is 0 and its strongest 1.
    All zeros when nothing in the image raises the class's score.

    The model runs in eval mode and is returned to its previous mode; no parameter's `.grad` is
    touched (the gradient is taken with torch.autograd.grad with respect to the feature maps only).
    """
    name, module = cam_module(model, layer)
    if x.ndim == 3:
        x = x[None]
    if x.ndim != 4 or x.shape[0] != 1:
        raise ValueError(f"expected one input [C, H, W] or [1, C, H, W], got {tuple(x.shape)}")
    captured = {}

    def keep(_, inputs, output):
        captured["maps"] = output

    handle = module.register_forward_hook(keep)
    was_training = model.training
    model.eval()
    try:
        with torch.enable_grad():
            # requires_grad on the input: the maps then carry a graph even when every weight is frozen
            logits = model(x.detach().float().clone().requires_grad_(True))
            classes = logits.shape[1]
            target = int(logits.argmax(dim=1)) if target is None else int(target)
            if not 0 <= target < classes:
                raise ConfigError(f"target class index must be in [0, {classes - 1}], got {target}")
            maps = captured["maps"]                                       # (1, K, h, w)
            gradients, = torch.autograd.grad(logits[0, target], maps)     # (1, K, h, w)
    finally:
        handle.remove()
        model.train(was_training)
    weights = gradients.mean(dim=(2, 3), keepdim=True)                    # (1, K, 1, 1): alpha_k
    cam = F.relu((weights * maps.detach()).sum(dim=1, keepdim=True))     # (1, 1, h, w)
    cam = F.interpolate(cam, size=x.shape[-2:], mode="bilinear", align_corners=False)[0, 0]
    # min-max scaling, as pytorch-grad-cam does: the weakest evidence in this image reads 0, the strongest 1
    low, high = cam.min(), cam.max()
    return ((cam - low) / (high - low) if high > low else torch.zeros_like(cam)).float().cpu()


def plot_gradcam(run, image, path, target=None, layer: str | None = None) -> Path:
    """Three panels: the input as the model sees it, the Grad-CAM heat map, and the map over the
    input. `target` is a class index (default: the predicted class). `run` needs .model and
    .preprocess (a konbu Run). Returns the path written."""
    prepared, x = model_batch(image, run)
    classes = list(run.preprocess.get("classes") or [])
    was_training = run.model.training
    run.model.eval()
    try:
        with torch.no_grad():
            logits = run.model(x)[0].float().cpu()
    finally:
        run.model.train(was_training)
    probabilities = run.probabilities(logits=logits)
    predicted = int(probabilities.argmax())
    target = predicted if target is None else int(target)
    heat = gradcam(run.model, x, target=target, layer=layer).numpy()
    name, _ = cam_module(run.model, layer)

    def label(index):
        return display_label(classes[index]) if index < len(classes) else str(index)

    array, kwargs = display_image(prepared)
    figure = new_figure(11, 4.3)
    panels = figure.subplots(1, 3)
    panels[0].imshow(array, interpolation="nearest", **kwargs)
    panels[0].set_title("input as the model sees it", fontsize=10)
    shown = panels[1].imshow(heat, cmap="jet", vmin=0, vmax=1, interpolation="bilinear")
    panels[1].set_title(f"Grad-CAM at {name}", fontsize=10)
    figure.colorbar(shown, ax=panels[1], fraction=0.046, pad=0.03).set_label("evidence (weakest to strongest)")
    grey = array if array.ndim == 2 else array.mean(axis=2)
    panels[2].imshow(grey, cmap="gray", interpolation="nearest")
    panels[2].imshow(heat, cmap="jet", vmin=0, vmax=1, alpha=0.45, interpolation="bilinear")
    panels[2].set_title("heat map over the input", fontsize=10)
    for ax in panels:
        ax.set_xticks([])
        ax.set_yticks([])
    about = (f"class '{label(target)}' ({float(probabilities[target]):.1%})" if target == predicted else
             f"class '{label(target)}' ({float(probabilities[target]):.1%}; the model predicts "
             f"'{label(predicted)}' with {float(probabilities[predicted]):.1%})")
    figure.suptitle(f"Where the model found the evidence for {about}\nred: the feature maps that raise this "
                    "class's score are active there", fontsize=11, fontproperties=label_font(11))
    return save_figure(figure, path)
