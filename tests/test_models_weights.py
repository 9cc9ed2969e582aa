"""ImageNet weights for the torchvision architectures: the hub cache, the offline fallback."""
from __future__ import annotations

import urllib.error
import urllib.request

import pytest
import torch

from advmed.models import PretrainedWeightsWarning, build_model, get_arch
from advmed.models import weights as W


@pytest.fixture
def torch_home(tmp_path, monkeypatch):
    """An empty torch hub cache, so that no weights can be found."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    return tmp_path / "torch"


def _save_fake_resnet18(torch_home, seed=1):
    """A random resnet18 state dict under torchvision's file name in the hub cache."""
    torch.manual_seed(seed)
    state = get_arch("resnet18").make(1000).state_dict()
    path = W.hub_checkpoint_path(W.torchvision_weights("resnet18").url)
    assert path.parent == torch_home / "hub" / "checkpoints" and path.name == "resnet18-f37072fd.pth"
    path.parent.mkdir(parents=True)
    torch.save(state, path)
    return state


def test_offline_falls_back_to_scratch_with_a_warning(torch_home, monkeypatch):
    monkeypatch.setenv("ADVMED_OFFLINE", "1")
    monkeypatch.setattr(urllib.request, "urlopen", lambda *a, **k: pytest.fail("tried to download offline"))
    with pytest.warns(PretrainedWeightsWarning, match="ADVMED_OFFLINE.*resnet18-f37072fd.pth"):
        model = build_model("resnet18", 2, init="imagenet")
    assert model.meta["init"] == "scratch" and model.meta["requested_init"] == "imagenet"
    assert model.net.fc.out_features == 2


def test_failed_download_falls_back_and_uses_a_timeout(torch_home, monkeypatch):
    monkeypatch.setenv("ADVMED_OFFLINE", "0")
    calls = []

    def unreachable(url, timeout=None):
        calls.append((url, timeout))
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(urllib.request, "urlopen", unreachable)
    with pytest.warns(PretrainedWeightsWarning, match="could not download"):
        model = build_model("resnet18", 2, init="imagenet")
    assert model.meta["init"] == "scratch"
    assert calls == [("https://download.pytorch.org/models/resnet18-f37072fd.pth", W.DOWNLOAD_TIMEOUT_S)]
    assert not list((torch_home / "hub" / "checkpoints").glob("*"))  # no partial file left


def test_cached_weights_are_loaded_and_the_head_replaced(torch_home, monkeypatch):
    monkeypatch.setenv("ADVMED_OFFLINE", "1")
    state = _save_fake_resnet18(torch_home)
    full = build_model("resnet18", 1000, init="imagenet")
    assert full.meta["init"] == "imagenet"
    for key, value in full.net.state_dict().items():
        assert torch.equal(value, state[key]), key
    two = build_model("resnet18", 2, init="imagenet")
    assert two.meta["init"] == "imagenet" and two.net.fc.weight.shape == (2, 512)
    assert torch.equal(two.net.conv1.weight, state["conv1.weight"])
    assert torch.equal(two.net.layer4[1].bn2.running_var, state["layer4.1.bn2.running_var"])


def test_one_channel_pretrained_equals_rgb_on_replicated_grey(torch_home, monkeypatch):
    monkeypatch.setenv("ADVMED_OFFLINE", "1")
    _save_fake_resnet18(torch_home)
    rgb = build_model("resnet18", 2, init="imagenet", seed=3).eval()
    grey = build_model("resnet18", 2, in_channels=1, init="imagenet", seed=3).eval()
    assert grey.meta["in_channels"] == 1 and grey.meta["mean"] == pytest.approx((0.449,))
    x = torch.rand(2, 1, 33, 33)  # odd size: borders and stride-2 padding both matter
    with torch.no_grad():
        torch.testing.assert_close(grey(x), rgb(x.expand(-1, 3, -1, -1)), rtol=1e-4, atol=1e-4)


def test_state_dict_layout_does_not_depend_on_init(torch_home, monkeypatch):
    # Checkpoints are restored into a model rebuilt with init="scratch" (advmed.train).
    monkeypatch.setenv("ADVMED_OFFLINE", "1")
    _save_fake_resnet18(torch_home)
    for in_channels in (1, 3):
        tuned = build_model("resnet18", 2, in_channels=in_channels, init="imagenet").eval()
        assert tuned.meta["init"] == "imagenet"
        rebuilt = build_model("resnet18", 2, in_channels=in_channels, init="scratch").eval()
        rebuilt.load_state_dict(tuned.state_dict(), strict=True)
        x = torch.rand(1, in_channels, 40, 40)
        with torch.no_grad():
            torch.testing.assert_close(rebuilt(x), tuned(x))


def test_corrupt_cached_file_says_delete_it(torch_home, monkeypatch):
    monkeypatch.setenv("ADVMED_OFFLINE", "1")
    path = W.hub_checkpoint_path(W.torchvision_weights("resnet18").url)
    path.parent.mkdir(parents=True)
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(RuntimeError, match="delete the file"):
        build_model("resnet18", 2, init="imagenet")


def test_densenet_checkpoint_keys_are_renamed():
    net = get_arch("densenet121").make(1000)
    keys = net.state_dict()
    # torchvision's published file (2017) uses the old 'norm.1' style names and has no
    # num_batches_tracked buffers.
    old = {k.replace("norm1", "norm.1").replace("conv1.", "conv.1.").replace("norm2", "norm.2")
           .replace("conv2.", "conv.2.") if "denselayer" in k else k: v for k, v in keys.items()
           if not k.endswith("num_batches_tracked")}
    assert any(".norm.1." in k for k in old)
    fixed = W._densenet_keys(old)
    assert {k for k in keys if not k.endswith("num_batches_tracked")} == set(fixed)
    net.load_state_dict(fixed, strict=True)  # BatchNorm fills in the missing counters


def test_inception_checkpoint_drops_aux_logits():
    import torchvision.models as tvm

    published = tvm.inception_v3(weights=None, aux_logits=True, init_weights=False).state_dict()
    ours = get_arch("inception_v3").make(1000).state_dict()
    assert set(W._inception_keys(published)) == set(ours)


def test_weights_enum_names_exist():
    for arch in W.TORCHVISION_WEIGHTS:
        assert W.torchvision_weights(arch).url.startswith("https://download.pytorch.org/models/")
    with pytest.raises(KeyError, match="resnet18"):
        W.torchvision_weights("small_cnn")


def test_download_checks_the_hash_and_writes_atomically(tmp_path):
    import hashlib

    src = tmp_path / "src.bin"
    src.write_bytes(b"weights" * 1000)
    prefix = hashlib.sha256(src.read_bytes()).hexdigest()[:8]
    dest = tmp_path / "hub" / f"net-{prefix}.pth"
    W.download(src.as_uri(), dest, sha256_prefix=prefix, progress=False)
    assert dest.read_bytes() == src.read_bytes()
    bad = tmp_path / "hub" / "net-00000000.pth"
    with pytest.raises(W.WeightsUnavailable, match="checksum mismatch for net-00000000.pth"):
        W.download(src.as_uri(), bad, sha256_prefix="00000000", progress=False)
    assert sorted(p.name for p in dest.parent.iterdir()) == [dest.name]  # no partial file left


def test_timm_weights_offline_fall_back_without_asking_the_hub(monkeypatch):
    import sys

    monkeypatch.setenv("ADVMED_OFFLINE", "1")
    monkeypatch.setitem(sys.modules, "timm.models._hub", None)  # any hub access would fail loudly
    with pytest.raises(W.WeightsUnavailable, match="ADVMED_OFFLINE.*inception_resnet_v2.tf_in1k"):
        W.fetch_timm_state_dict("inception_resnet_v2")


def test_timm_pretrained_weights_are_loaded_and_the_head_replaced(monkeypatch):
    """What timm's loader returns goes into the model as it is, the head then sized to the task."""
    spec = get_arch("inception_resnet_v2")
    state = spec.make(1000).state_dict()
    state = {k: torch.full_like(v, 0.25) if v.is_floating_point() else v for k, v in state.items()}
    monkeypatch.setattr(W, "fetch_timm_state_dict", lambda arch: state)
    import advmed.models.build as B

    monkeypatch.setattr(B, "fetch_timm_state_dict", lambda arch: state)
    model = build_model("inception_resnet_v2", 2, init="imagenet", input_size=75)
    assert model.meta["init"] == "imagenet"
    assert torch.equal(model.net.conv2d_1a.conv.weight, state["conv2d_1a.conv.weight"])
    assert model.net.get_classifier().out_features == 2
