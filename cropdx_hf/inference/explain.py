"""Where the model looked: Grad-CAM (captum's LayerGradCam) on the last convolution, over the photo."""

from __future__ import annotations

import numpy as np
import torch
from captum.attr import LayerAttribution, LayerGradCam
from matplotlib import colormaps
from PIL import Image

from cropdx_hf.inference.predictor import Predictor


def gradcam_overlay(predictor: Predictor, image: Image.Image, class_index: int, alpha: float = 0.45) -> Image.Image:
    """The photo as the model saw it (resized and cropped), tinted by Grad-CAM for `class_index`."""
    pixels = predictor.pixels([image]).requires_grad_(True)
    cam = LayerGradCam(predictor.model, predictor.model.conv_head)
    with torch.enable_grad():
        attribution = cam.attribute(pixels, target=class_index, relu_attributions=True)
    heat = LayerAttribution.interpolate(attribution, pixels.shape[-2:], interpolate_mode="bilinear")[0, 0]
    heat = heat.detach().numpy()
    heat = heat / heat.max() if heat.max() > 0 else heat
    mean = np.asarray(predictor.model.pretrained_cfg["mean"])[:, None, None]
    std = np.asarray(predictor.model.pretrained_cfg["std"])[:, None, None]
    photo = np.clip(pixels[0].detach().numpy() * std + mean, 0, 1).transpose(1, 2, 0)
    colored = colormaps["jet"](heat)[..., :3]
    return Image.fromarray((255 * ((1 - alpha) * photo + alpha * colored)).astype(np.uint8))
