"""Models: every one takes pixels in [0, 1], normalises in its first layer, returns logits.

- :data:`ARCHITECTURES`: resnet18, resnet50, densenet121, densenet169, vgg16_bn, vgg19_bn,
  inception_v3, inception_resnet_v2 (timm), mobilenet_v1_075, small_cnn (name -> :class:`ArchSpec`).
- :func:`build_model` (``arch, num_classes, *, in_channels, init, input_size``) and
  :func:`input_channels` (how many channels the data loader should give).
- :func:`load_tfjs_mobilenet`: the TF.js MobileNet v1 weights as a PyTorch model.
- :func:`as_pixels`, :func:`predict_proba`: images in, class probabilities out;
  :func:`model_device` (``advmed.device.module_device``): where a model lives.
"""
from ..device import module_device as model_device
from .build import ARCHITECTURES, INITS, ArchSpec, build_model, get_arch, input_channels
from .gray import GrayInput, as_rgb, gray_view, is_gray
from .inference import as_module, as_pixels, predict_proba
from .mobilenet_v1 import MobileNetV1, TFConv2d
from .normalize import IMAGENET_MEAN, IMAGENET_STD, ImageClassifier, Normalize
from .small_cnn import SmallCNN
from .tfjs import load_tfjs_mobilenet, mobilenet_weights_dir
from .weights import PretrainedWeightsWarning, WeightsUnavailable

__all__ = [
    "ARCHITECTURES", "INITS", "ArchSpec", "build_model", "get_arch", "input_channels",
    "MobileNetV1", "TFConv2d", "IMAGENET_MEAN", "IMAGENET_STD", "ImageClassifier", "Normalize",
    "SmallCNN", "load_tfjs_mobilenet", "mobilenet_weights_dir",
    "PretrainedWeightsWarning", "WeightsUnavailable", "GrayInput", "as_module", "as_pixels", "as_rgb", "gray_view", "is_gray", "model_device", "predict_proba",
]
