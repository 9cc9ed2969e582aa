"""Where pretrained ImageNet weights come from, and what happens when they cannot come.

torchvision architectures take the weights of torchvision's own weights API
(``ResNet18_Weights.IMAGENET1K_V1`` etc., https://pytorch.org/vision/stable/models.html)
from the torch hub cache, ``torch.hub.get_dir()/checkpoints/<file>`` (``$TORCH_HOME``
moves it), downloading them there when they are missing. Nothing here may hang a
machine without internet: ``ADVMED_OFFLINE=1`` skips every download, and a download
that is tried gives up after ``DOWNLOAD_TIMEOUT_S`` seconds without an answer. When no
weights can be had, :class:`WeightsUnavailable` says why and how to provide them;
``build_model`` then falls back to random initialisation with a warning.
"""
from __future__ import annotations

import hashlib
import os
import re
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Callable

import torch

#: Seconds without an answer from the server before a download is abandoned.
DOWNLOAD_TIMEOUT_S = 10.0

#: torchvision weights per architecture: (enum class name in torchvision.models, member).
#: IMAGENET1K_V1 everywhere: the classic weights the seed studies' era fine-tuned from.
TORCHVISION_WEIGHTS = {
    "resnet18": ("ResNet18_Weights", "IMAGENET1K_V1"),
    "resnet50": ("ResNet50_Weights", "IMAGENET1K_V1"),
    "densenet121": ("DenseNet121_Weights", "IMAGENET1K_V1"),
    "vgg16_bn": ("VGG16_BN_Weights", "IMAGENET1K_V1"),
    "inception_v3": ("Inception_V3_Weights", "IMAGENET1K_V1"),
    "densenet169": ("DenseNet169_Weights", "IMAGENET1K_V1"),
    "vgg19_bn": ("VGG19_BN_Weights", "IMAGENET1K_V1"),
}

#: timm weights per architecture (its pretrained tag, from the Hugging Face hub).
TIMM_WEIGHTS = {"inception_resnet_v2": "inception_resnet_v2.tf_in1k"}


class WeightsUnavailable(RuntimeError):
    """Pretrained weights could be neither found locally nor downloaded."""


class PretrainedWeightsWarning(UserWarning):
    """ImageNet weights were asked for but the model was initialised at random."""


def offline() -> bool:
    """True when ``ADVMED_OFFLINE`` is set to 1/true/yes/on: never try to download."""
    return os.environ.get("ADVMED_OFFLINE", "").strip().lower() in {"1", "true", "yes", "on"}


def cache_dir() -> Path:
    """``$ADVMED_CACHE`` (default ``~/.cache/advmed``), as in DESIGN.md."""
    from ..cache import cache_root

    return cache_root()


def torchvision_weights(arch: str):
    """The torchvision ``WeightsEnum`` member used for ``arch``'s ImageNet weights."""
    import torchvision.models as tvm

    try:
        enum_name, member = TORCHVISION_WEIGHTS[arch]
    except KeyError:
        raise KeyError(f"no torchvision weights for {arch!r}; architectures with torchvision weights: "
                       f"{', '.join(TORCHVISION_WEIGHTS)}") from None
    return getattr(getattr(tvm, enum_name), member)


def hub_checkpoint_path(url: str) -> Path:
    """Where ``torch.hub`` keeps the file downloaded from ``url``."""
    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(urllib.parse.urlparse(url).path)


def download(url: str, dest: Path, *, timeout_s: float = DOWNLOAD_TIMEOUT_S, sha256_prefix: str | None = None,
             progress: bool = True) -> Path:
    """Download ``url`` to ``dest`` atomically (temp file + ``os.replace``).

    ``timeout_s`` bounds every wait for the server (connect and each read), so an
    unreachable host fails in seconds instead of hanging. ``sha256_prefix`` (the hash
    part of torchvision file names, e.g. ``f37072fd``) is checked before the file is
    put in place.
    """
    from tqdm.auto import tqdm

    from ..cache import atomic_write

    def write(tmp: Path) -> None:
        digest = hashlib.sha256()
        with urllib.request.urlopen(url, timeout=timeout_s) as response, open(tmp, "wb") as out:
            total = int(response.headers.get("Content-Length") or 0) or None
            with tqdm(total=total, unit="B", unit_scale=True, desc=dest.name, disable=not progress) as bar:
                while chunk := response.read(1 << 20):
                    out.write(chunk)
                    digest.update(chunk)
                    bar.update(len(chunk))
        if sha256_prefix and not digest.hexdigest().startswith(sha256_prefix):
            raise WeightsUnavailable(f"checksum mismatch for {dest.name} downloaded from {url}: sha256 "
                                     f"{digest.hexdigest()[:12]}... does not start with {sha256_prefix}")

    atomic_write(dest, write)
    return dest


def fetch_torchvision_state_dict(arch: str, *, timeout_s: float = DOWNLOAD_TIMEOUT_S,
                                 progress: bool = True) -> dict[str, torch.Tensor]:
    """ImageNet state dict of ``arch`` from the torch hub cache, downloading it if allowed.

    Raises :class:`WeightsUnavailable` (with what to do) when the file is not cached
    and ``ADVMED_OFFLINE`` is set or the download fails.
    """
    weights = torchvision_weights(arch)
    path = hub_checkpoint_path(weights.url)
    if not path.is_file():
        how = (f"put {path.name} (from {weights.url}) into {path.parent} "
               "(set $TORCH_HOME to move that folder)")
        if offline():
            raise WeightsUnavailable(f"{path.name} is not in the torch hub cache {path.parent} and "
                                     f"ADVMED_OFFLINE is set; {how}, or unset ADVMED_OFFLINE to download it")
        match = torch.hub.HASH_REGEX.search(path.name)
        try:
            download(weights.url, path, timeout_s=timeout_s, progress=progress,
                     sha256_prefix=match.group(1) if match else None)
        except Exception as err:  # no network, HTTP error, timeout, bad checksum
            raise WeightsUnavailable(f"could not download {weights.url} ({type(err).__name__}: {err}); "
                                     f"{how}") from err
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise RuntimeError(f"cannot read the cached weights {path} ({err}); delete the file and build "
                           "the model again to download it afresh") from err
    return _FIX_KEYS.get(arch, lambda s: s)(state)


def fetch_timm_state_dict(arch: str) -> dict[str, torch.Tensor]:
    """ImageNet state dict of a timm architecture (:data:`TIMM_WEIGHTS`) through timm's own
    loader (the Hugging Face hub and its cache, ``$HF_HOME``). Raises :class:`WeightsUnavailable`
    when ``ADVMED_OFFLINE`` is set (the hub is then not asked at all) or the hub cannot be
    reached and the file is not cached."""
    tag = TIMM_WEIGHTS[arch]
    how = (f"run `python -c \"import timm; timm.create_model('{tag}', pretrained=True)\"` on a machine "
           "with internet and copy its Hugging Face cache ($HF_HOME) here")
    if offline():  # before timm (and the hub client, which reads its settings once) is imported
        raise WeightsUnavailable(f"ADVMED_OFFLINE is set and timm's weights {tag} come from the Hugging Face "
                                 f"hub; unset it to download them, or {how}")
    os.environ.setdefault("HF_HUB_DOWNLOAD_TIMEOUT", str(int(DOWNLOAD_TIMEOUT_S)))
    try:
        import timm

        return timm.create_model(tag, pretrained=True).state_dict()
    except Exception as err:  # no network, not cached, offline
        raise WeightsUnavailable(f"timm weights {tag} unavailable ({type(err).__name__}: {err}); {how}") from err


def _densenet_keys(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    # The torchvision DenseNet checkpoints predate the ban on '.' in module names:
    # 'denselayer1.norm.1.weight' is now 'denselayer1.norm1.weight'
    # (torchvision.models.densenet._load_state_dict, same pattern).
    pattern = re.compile(r"^(.*denselayer\d+\.(?:norm|relu|conv))\.((?:[12])\.(?:weight|bias|running_mean|running_var))$")
    out = {}
    for key, value in state.items():
        m = pattern.match(key)
        out[m.group(1) + m.group(2) if m else key] = value
    return out


def _inception_keys(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    # advmed builds Inception v3 without the auxiliary classifier (aux_logits=False).
    return {k: v for k, v in state.items() if not k.startswith("AuxLogits.")}


_FIX_KEYS: dict[str, Callable[[dict], dict]] = {"densenet121": _densenet_keys, "densenet169": _densenet_keys,
                                                 "inception_v3": _inception_keys}
