"""The architecture registry and :func:`build_model`, the one way advmed makes a model.

Every model is ``ImageClassifier(net, Normalize(mean, std), meta)``: pixels in [0, 1]
in, logits out, the head sized to the task (two logits for a binary task).
"""
from __future__ import annotations

import contextlib
import warnings
from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

from . import channels
from .mobilenet_v1 import MobileNetV1
from .normalize import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    SIGNED_UNIT_MEAN,
    SIGNED_UNIT_STD,
    ImageClassifier,
    Normalize,
)
from .resize import ResizeInput
from .small_cnn import SmallCNN
from .weights import (
    TIMM_WEIGHTS,
    PretrainedWeightsWarning,
    WeightsUnavailable,
    fetch_timm_state_dict,
    fetch_torchvision_state_dict,
)

INITS = ("scratch", "imagenet")


@dataclass(frozen=True)
class ArchSpec:
    """What build_model needs to know about one architecture.

    ``mean``/``std``: RGB normalisation in [0, 1] pixel units, the one its ImageNet
    weights were trained with (also used from scratch, so both inits see the same
    input scale). ``first_conv``: dotted path of the RGB input convolution.
    ``native_size`` / ``min_size``: input side in px it was designed for / the smallest
    it accepts.
    """

    name: str
    make: Callable[[int], nn.Module]  # num_classes -> randomly initialised RGB net
    head: Callable[[nn.Module, int], None]  # replace the classifier with a fresh one
    first_conv: str
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    native_size: int
    min_size: int
    inits: tuple[str, ...] = INITS
    source: str = ""


def _tv(name: str, **kwargs) -> Callable[[int], nn.Module]:
    def make(num_classes: int) -> nn.Module:
        import torchvision.models as tvm

        return getattr(tvm, name)(weights=None, num_classes=num_classes, **kwargs)
    return make


def _timm(name: str) -> Callable[[int], nn.Module]:
    def make(num_classes: int) -> nn.Module:
        import timm

        return timm.create_model(name, pretrained=False, num_classes=num_classes)
    return make


def _set_linear(attr: str) -> Callable[[nn.Module, int], None]:
    def head(net: nn.Module, num_classes: int) -> None:
        old = net.get_submodule(attr)
        channels.replace_module(net, attr, nn.Linear(old.in_features, num_classes))
    return head


ARCHITECTURES: dict[str, ArchSpec] = {s.name: s for s in [
    ArchSpec("resnet18", _tv("resnet18"), _set_linear("fc"), "conv1", IMAGENET_MEAN, IMAGENET_STD, 224, 28,
             source="He et al. 2016, arXiv:1512.03385; torchvision"),
    ArchSpec("resnet50", _tv("resnet50"), _set_linear("fc"), "conv1", IMAGENET_MEAN, IMAGENET_STD, 224, 28,
             source="He et al. 2016, arXiv:1512.03385; torchvision"),
    ArchSpec("densenet121", _tv("densenet121"), _set_linear("classifier"), "features.conv0",
             IMAGENET_MEAN, IMAGENET_STD, 224, 32, source="Huang et al. 2017, arXiv:1608.06993; torchvision"),
    ArchSpec("densenet169", _tv("densenet169"), _set_linear("classifier"), "features.conv0",
             IMAGENET_MEAN, IMAGENET_STD, 224, 32, source="Huang et al. 2017, arXiv:1608.06993; torchvision"),
    ArchSpec("vgg16_bn", _tv("vgg16_bn"), _set_linear("classifier.6"), "features.0",
             IMAGENET_MEAN, IMAGENET_STD, 224, 32, source="Simonyan & Zisserman 2015, arXiv:1409.1556; torchvision"),
    ArchSpec("vgg19_bn", _tv("vgg19_bn"), _set_linear("classifier.6"), "features.0",
             IMAGENET_MEAN, IMAGENET_STD, 224, 32, source="Simonyan & Zisserman 2015, arXiv:1409.1556; torchvision"),
    # torchvision has no Inception-ResNet-v2: timm's (pinned in requirements.txt), whose
    # ImageNet weights (ported from TensorFlow) expect [-1, 1] input like Inception v3's
    ArchSpec("inception_resnet_v2", _timm("inception_resnet_v2"), lambda net, n: net.reset_classifier(n),
             "conv2d_1a.conv", SIGNED_UNIT_MEAN, SIGNED_UNIT_STD, 299, 75,
             source="Szegedy et al. 2017, arXiv:1602.07261; timm"),
    # torchvision's Inception weights were ported from TensorFlow and expect [-1, 1]
    # input (its transform_input=True re-scales ImageNet-normalised input to exactly
    # that); here Normalize does it and transform_input stays False.
    ArchSpec("inception_v3", _tv("inception_v3", aux_logits=False, transform_input=False, init_weights=True),
             _set_linear("fc"), "Conv2d_1a_3x3.conv", SIGNED_UNIT_MEAN, SIGNED_UNIT_STD, 299, 75,
             source="Szegedy et al. 2016, arXiv:1512.00567; torchvision"),
    ArchSpec("mobilenet_v1_075", lambda n: MobileNetV1(n, alpha=0.75), lambda net, n: net.reset_head(n),
             # 28 px (MedMNIST's native size) still leaves a 1x1 map after the five
             # stride-2 stages under TensorFlow "same" padding.
             "features.conv1", SIGNED_UNIT_MEAN, SIGNED_UNIT_STD, 224, 28,
             source="Howard et al. 2017, arXiv:1704.04861; Keras 2.1.4 / TF.js weights"),
    ArchSpec("small_cnn", lambda n: SmallCNN(n), _set_linear("fc"), "features.0",
             SIGNED_UNIT_MEAN, SIGNED_UNIT_STD, 28, 28, inits=("scratch",),
             source="advmed: a tiny CNN for smoke runs"),
]}


def get_arch(arch: str) -> ArchSpec:
    try:
        return ARCHITECTURES[arch]
    except KeyError:
        raise KeyError(f"unknown architecture {arch!r}; valid architectures: {', '.join(ARCHITECTURES)}") from None


def _check_init(spec: ArchSpec, init: str) -> None:
    if init not in INITS:
        raise ValueError(f"unknown init {init!r}; valid inits: {', '.join(INITS)}")
    if init not in spec.inits:
        raise ValueError(f"{spec.name} has no {init} weights; valid inits for {spec.name}: {', '.join(spec.inits)}")


def input_channels(arch: str, init: str, native_channels: int) -> int:
    """How many channels the data loader should give this model.

    3 for ImageNet-initialised models (greyscale images replicated to RGB, the input
    their weights were trained on), else the data's own ``native_channels`` (1 or 3).
    """
    _check_init(get_arch(arch), init)
    if native_channels not in (1, 3):
        raise ValueError(f"native_channels must be 1 or 3, got {native_channels}")
    return 3 if init == "imagenet" else native_channels


def _pretrained_net(spec: ArchSpec, num_classes: int, progress: bool) -> nn.Module:
    """The ImageNet-trained RGB net with a fresh head for ``num_classes`` (kept if 1000)."""
    if spec.name == "mobilenet_v1_075":
        from .tfjs import load_tfjs_mobilenet, mobilenet_weights_dir

        net = load_tfjs_mobilenet(mobilenet_weights_dir(progress=progress)).net
    else:
        state = (fetch_timm_state_dict(spec.name) if spec.name in TIMM_WEIGHTS else
                 fetch_torchvision_state_dict(spec.name, progress=progress))
        net = spec.make(1000)
        net.load_state_dict(state, strict=True)
    if num_classes != 1000:
        spec.head(net, num_classes)
    return net


@contextlib.contextmanager
def _seeded(seed: int | None):
    if seed is None:
        yield
        return
    with torch.random.fork_rng(devices=[]):  # leave the caller's random stream untouched
        torch.manual_seed(seed)
        yield


def build_model(arch: str, num_classes: int, *, in_channels: int = 3, init: str = "scratch",
                input_size: int | None = None, seed: int | None = None, progress: bool = True,
                net_size: int | None = None) -> ImageClassifier:
    """A model for ``num_classes`` classes taking pixels in [0, 1], returning logits.

    ``init="imagenet"`` loads ImageNet weights (torchvision's for the torchvision
    architectures, the TF.js release for ``mobilenet_v1_075``) and replaces the head
    with a fresh one unless ``num_classes == 1000``; when the weights cannot be found
    or downloaded it warns (:class:`PretrainedWeightsWarning`) and initialises at
    random; ``model.meta["init"]`` says what was used. ``in_channels=1`` with ImageNet
    weights sums the first convolution over RGB, exactly (see
    :mod:`advmed.models.channels`). ``input_size`` (px; default the native size) is
    checked against the architecture's minimum and recorded in ``meta``. ``seed``
    makes the random initialisation reproducible without touching the global stream.
    ``net_size`` (px; default: the input size) makes the network run at that side: the
    model resizes its ``input_size`` input inside (:class:`~advmed.models.resize.ResizeInput`;
    Inception v3 at 299 px on 224 px images), and the architecture's minimum applies to
    ``net_size``. The model is returned in train mode on the CPU.
    """
    spec = get_arch(arch)
    _check_init(spec, init)
    if in_channels not in (1, 3):
        raise ValueError(f"in_channels must be 1 or 3, got {in_channels}")
    if not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError(f"num_classes must be a positive int (2 for a binary task), got {num_classes!r}")
    size = spec.native_size if input_size is None else int(input_size)
    resized = net_size is not None and int(net_size) != size
    if net_size is not None and (isinstance(net_size, bool) or int(net_size) != net_size
                                 or net_size < spec.min_size):
        raise ValueError(f"{arch} needs a net_size of at least {spec.min_size} px, got net_size={net_size!r}")
    if not resized and size < spec.min_size:
        raise ValueError(f"{arch} needs inputs of at least {spec.min_size} px, got input_size={size}; "
                         f"use a larger size or an architecture with a smaller minimum "
                         f"({', '.join(f'{a}: {s.min_size}' for a, s in ARCHITECTURES.items())})")

    used = init
    with _seeded(seed):
        net = None
        if init == "imagenet":
            try:
                net = _pretrained_net(spec, num_classes, progress)
            except WeightsUnavailable as err:
                warnings.warn(f"{arch}: no ImageNet weights, initialising at random instead ({err})",
                              PretrainedWeightsWarning, stacklevel=2)
                used = "scratch"
        if net is None:
            net = spec.make(num_classes)

    mean, std = spec.mean, spec.std
    if in_channels == 1:
        # Grey statistics: the mean of the RGB ones (ImageNet: 0.449 / 0.226).
        mean1, std1 = sum(mean) / 3, sum(std) / 3
        conv = net.get_submodule(spec.first_conv)
        new = channels.grey_first_conv(conv, pretrained=used == "imagenet", mean3=mean, std3=std,
                                       mean1=mean1, std1=std1)
        channels.replace_module(net, spec.first_conv, new)
        mean, std = (mean1,), (std1,)

    min_size = spec.min_size
    if resized:  # the network sees net_size px whatever the input's side
        net, min_size = ResizeInput(net, int(net_size)), 1
    net.train()  # the TF.js loader hands back an eval-mode net; every build starts in train mode
    meta = {"arch": arch, "init": used, "requested_init": init, "in_channels": in_channels,
            "num_classes": num_classes, "input_size": size, "mean": tuple(mean), "std": tuple(std)}
    if resized:
        meta["net_size"] = int(net_size)
    model = ImageClassifier(net, Normalize(mean, std), meta, min_size=min_size)
    if prefers_channels_last(arch, int(net_size) if resized else size):  # the side the network runs at
        model.use_channels_last()
    return model


def prefers_channels_last(arch: str, size: int) -> bool:
    """Whether the channels-last memory layout makes this architecture faster at this size.

    Measured on the project's 2-core CPU (attack step = forward + input gradient, batch 64,
    ``benchmarks/README.md``): MobileNet v1 0.75 at 128 px 168 -> 251 images/s, at 64 px
    training 340 -> 525; ResNet-18 at 128 px 82 -> 105, but at 64 px training 193 -> 162
    (slower). Depthwise MobileNets gain at every size, the others from about 96 px up;
    the small CNN is left as it is.
    """
    if arch == "small_cnn":
        return False
    return arch == "mobilenet_v1_075" or int(size) >= 96
