"""advmed.models: every architecture builds, normalises inside, returns logits; errors list valid names."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from advmed.models import ARCHITECTURES, ImageClassifier, Normalize, build_model, input_channels
from advmed.models.channels import ChannelSummedConv, grey_first_conv
from advmed.models.mobilenet_v1 import TFConv2d

# Heavy networks run at batch 1 and their smallest size so the suite stays fast.
BATCH = {"small_cnn": 2, "resnet18": 2, "mobilenet_v1_075": 2}


@pytest.mark.parametrize("in_channels", [1, 3])
@pytest.mark.parametrize("arch", list(ARCHITECTURES))
def test_every_architecture_gives_logits(arch, in_channels):
    spec = ARCHITECTURES[arch]
    model = build_model(arch, 3, in_channels=in_channels, input_size=spec.min_size, seed=0).eval()
    assert isinstance(model, ImageClassifier) and isinstance(model.normalize, Normalize)
    assert model.meta == {"arch": arch, "init": "scratch", "requested_init": "scratch",
                          "in_channels": in_channels, "num_classes": 3, "input_size": spec.min_size,
                          "mean": model.meta["mean"], "std": model.meta["std"]}
    assert len(model.meta["mean"]) == len(model.meta["std"]) == in_channels
    n = BATCH.get(arch, 1)
    x = torch.rand(n, in_channels, spec.min_size, spec.min_size, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        logits = model(x)
        # Normalisation is the first layer: the model on pixels equals the bare net on normalised pixels.
        mean = torch.tensor(model.meta["mean"]).view(1, -1, 1, 1)
        std = torch.tensor(model.meta["std"]).view(1, -1, 1, 1)
        bare = model.net((x - mean) / std)
    assert logits.shape == (n, 3) and logits.dtype == torch.float32
    torch.testing.assert_close(logits, bare, rtol=1e-5, atol=1e-5)
    # Logits, not probabilities: no softmax module anywhere and rows do not sum to 1.
    assert not any(isinstance(m, (nn.Softmax, nn.LogSoftmax)) for m in model.modules())
    assert not torch.allclose(logits.sum(1), torch.ones(n), atol=1e-3)


def test_binary_task_has_two_logits_and_train_mode_runs():
    model = build_model("small_cnn", 2, in_channels=1, seed=0)
    assert model.training
    out = model(torch.rand(4, 1, 28, 28))
    assert out.shape == (4, 2)
    out.sum().backward()  # gradients flow to the input side too (attacks need them)


def test_inception_is_299_native_and_accepts_75():
    model = build_model("inception_v3", 2, seed=0).eval()
    assert model.meta["input_size"] == 299 and model.meta["mean"] == (0.5, 0.5, 0.5)
    assert model.net.AuxLogits is None and not model.net.transform_input
    with torch.no_grad():
        assert model(torch.rand(1, 3, 75, 75)).shape == (1, 2)
    with pytest.raises(ValueError, match="at least 75 px"):
        build_model("inception_v3", 2, input_size=64)
    with pytest.raises(ValueError, match="at least 75 px"):
        model(torch.rand(1, 3, 64, 64))


def test_seed_makes_init_reproducible_without_touching_global_rng():
    torch.manual_seed(123)
    before = torch.rand(1)
    torch.manual_seed(123)
    a = build_model("small_cnn", 2, seed=7)
    after = torch.rand(1)
    b = build_model("small_cnn", 2, seed=7)
    assert torch.equal(before, after)
    for (ka, va), (kb, vb) in zip(a.state_dict().items(), b.state_dict().items()):
        assert ka == kb and torch.equal(va, vb)


def test_unknown_names_list_the_valid_ones():
    with pytest.raises(KeyError, match="valid architectures: resnet18, resnet50"):
        build_model("resnet1000", 2)
    with pytest.raises(ValueError, match="valid inits: scratch, imagenet"):
        build_model("resnet18", 2, init="chexnet")
    with pytest.raises(ValueError, match="valid inits for small_cnn: scratch"):
        build_model("small_cnn", 2, init="imagenet")
    with pytest.raises(ValueError, match="in_channels must be 1 or 3"):
        build_model("small_cnn", 2, in_channels=4)
    with pytest.raises(ValueError, match="positive int"):
        build_model("small_cnn", 0)
    with pytest.raises(KeyError, match="valid architectures"):
        input_channels("nope", "scratch", 1)


def test_wrong_channel_count_says_what_to_do():
    model = build_model("small_cnn", 2, in_channels=3, seed=0)
    with pytest.raises(ValueError, match="input_channels"):
        model(torch.rand(1, 1, 28, 28))


def test_input_channels():
    assert input_channels("resnet18", "imagenet", 1) == 3
    assert input_channels("resnet18", "scratch", 1) == 1
    assert input_channels("small_cnn", "scratch", 3) == 3
    with pytest.raises(ValueError, match="1 or 3"):
        input_channels("resnet18", "scratch", 2)


@pytest.mark.parametrize("size", [9, 10])
@pytest.mark.parametrize("make", [
    lambda: nn.Conv2d(3, 8, 3, padding=1, bias=True),       # VGG-like, with bias
    lambda: nn.Conv2d(3, 8, 7, stride=2, padding=3, bias=False),  # ResNet-like
    lambda: TFConv2d(3, 8, 3, stride=2, bias=False),         # MobileNet, TF "same" padding
])
def test_summed_first_conv_equals_rgb_conv_on_replicated_grey(make, size):
    torch.manual_seed(0)
    conv = make()
    mean3, std3 = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
    mean1, std1 = sum(mean3) / 3, sum(std3) / 3
    grey = grey_first_conv(conv, pretrained=True, mean3=mean3, std3=std3, mean1=mean1, std1=std1)
    assert isinstance(grey, ChannelSummedConv)
    x = torch.rand(2, 1, size, size)
    with torch.no_grad():
        rgb = conv(Normalize(mean3, std3)(x.expand(-1, 3, -1, -1)))
        one = grey(Normalize((mean1,), (std1,))(x))
    torch.testing.assert_close(one, rgb, rtol=1e-5, atol=1e-5)  # borders included
    # Equal RGB statistics (MobileNet, Inception) need no offset: a plain summed conv.
    plain = grey_first_conv(conv, pretrained=True, mean3=(0.5,) * 3, std3=(0.5,) * 3, mean1=0.5, std1=0.5)
    assert type(plain) is type(conv)


def test_channels_last_gives_the_same_logits_and_input_gradients():
    from advmed.models import build_model

    model = build_model("mobilenet_v1_075", 2, input_size=64, seed=0).eval()
    assert model.channels_last  # where measured faster (advmed.models.build.prefers_channels_last)
    x = torch.rand(3, 3, 64, 64, requires_grad=True)
    out = model(x)
    (g,) = torch.autograd.grad(out.sum(), x)
    model.use_channels_last(False)
    x2 = x.detach().clone().requires_grad_(True)
    out2 = model(x2)
    (g2,) = torch.autograd.grad(out2.sum(), x2)
    assert torch.allclose(out, out2, atol=1e-5) and torch.allclose(g, g2, atol=1e-5)
    assert g.is_contiguous()  # the caller's layout comes back
    assert not build_model("small_cnn", 2, input_size=32).channels_last
