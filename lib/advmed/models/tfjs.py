"""Convert the TensorFlow.js MobileNet v1 (Keras layers format) into :class:`MobileNetV1`.

The files: ``model.json`` (the Keras 2.1.4 topology and a ``weightsManifest``) and
float32 shard files ``groupN-shard1of1``; in each group the listed weights lie back to
back in little-endian float32, in manifest order (TF.js layers format,
https://www.tensorflow.org/js/guide/save_load, and tfjs-converter's
``write_weights.py``). Keras layouts become PyTorch ones:

- Conv2D kernel ``(kh, kw, in, out)`` (HWIO)  -> ``(out, in, kh, kw)``;
- DepthwiseConv2D kernel ``(kh, kw, C, 1)``    -> ``(C, 1, kh, kw)``;
- BatchNormalization gamma/beta/moving_mean/moving_variance -> weight/bias/running_mean/running_var.

The topology is read, not assumed: width (alpha), classes, strides, padding, dropout
and BatchNorm epsilon/momentum come from ``model.json`` and are checked against the
PyTorch module, so a different MobileNet v1 export fails loudly instead of silently.

Where the files come from (:func:`mobilenet_weights_dir`): ``$ADVMED_DATA_ROOT/weights/
mobilenet_v1_0.75_224_tfjs`` if present, else ``$ADVMED_CACHE/weights/...``, downloaded
there with pooch from the official TF.js models bucket :data:`TFJS_URL`, every file
checked against :data:`TFJS_SHA256`.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np
import torch

from .mobilenet_v1 import MobileNetV1, TFConv2d
from .normalize import SIGNED_UNIT_MEAN, SIGNED_UNIT_STD, ImageClassifier, Normalize
from .weights import DOWNLOAD_TIMEOUT_S, WeightsUnavailable, cache_dir, offline

TFJS_FOLDER = "mobilenet_v1_0.75_224_tfjs"
#: Official release of the Keras MobileNet v1 0.75/224 in TF.js format (tfjs-models).
TFJS_URL = "https://storage.googleapis.com/tfjs-models/tfjs/mobilenet_v1_0.75_224/"
#: sha256 of every file, as listed in the data mirror's SHA256SUMS.
TFJS_SHA256 = {
    "model.json": "a74c25424bd9939b1c245a58da417e35d1ca16f0b009490a1c44b43d982600d9",
    "group1-shard1of1": "410b3cc24d17aeabb2b0da4ba3b70383bbd40d7876c7c3d0e5184e1624f97370",
    "group2-shard1of1": "d81c61c33c32ddae0ff0a460efc326ebfdf5b44e7e4891feb12e9fadd09a56a3",
    "group3-shard1of1": "112908d83ad17ecaf849958cce3ca7bfed80157a51360ba879528b2435e2f082",
    "group4-shard1of1": "5e94d298bb9dbc3112e992466a03caac0b24f0438d3a9f1f6cd6bda9a54ae149",
    "group5-shard1of1": "9df642d8547369f3729945e24851a2e6b53151322d811a6ff056aa6cfade05ae",
    "group6-shard1of1": "1d4757b388337362ec777dfede8342c8a204d2fdcbdd05fedc2e8c043bc770d2",
    "group7-shard1of1": "2af6b4d2bd0445481274ee0c2c62f1c97c9b07358c1f242502d9399a33633462",
    "group8-shard1of1": "fedb2a393c7e5a9cd877a09a03cb173a6b5265c3f1c64996fa6eeb73caf281a2",
    "group9-shard1of1": "8c0dd6230a3dfd282624bd3ca3e288cb18bd8094a02a93cadd06107d7b0fdc76",
    "group10-shard1of1": "ffe87f44c0b246b0e3a2e8f7b4c8755df7e90083eab280046e1949f6d3094548",
    "group11-shard1of1": "d5422fd33b5b3a761b4872e350236445d006f5b024a8b50f1e19aec5df998e75",
    "group12-shard1of1": "21bcbe424326f5d44476b4116695842dfec1dc1c83257db7c300bdbd14cbcbe0",
    "group13-shard1of1": "cee9d1834e80e98e0f55cb40a654540f9e9b1fd18ab2f16afa1e8bd916addc75",
    "group14-shard1of1": "4851f5e477559b41db0e267878b86ccf2ea1cc7ed9f5d7599d661ba980718c65",
    "group15-shard1of1": "262efea5db1248f77ea109c628647afe8f1d2750812dd764de514bcb72fb5fbf",
    "group16-shard1of1": "2f4d993fb69caaabb060efcc347b54b0949e17a3d43cff315072e550775e993b",
    "group17-shard1of1": "d1518210ac84e0a713d01bebfbff1aa93c4ec16b4f43f98f2f4a2134f605324e",
    "group18-shard1of1": "c730ccf93ab504096fe2294c7bbbb66855a07f2480c0f72849cad9a90092729b",
    "group19-shard1of1": "d39c30fc0cb24c28dcf0a869ca8d6528e596599e70f7899f453dc5de775e5de2",
    "group20-shard1of1": "d94cd173f5b95be0a192333b6c5203123a35f8d5429b122eba46da5fd7d01e70",
    "group21-shard1of1": "982cbbfb5bc00408b67182a65140b8ca6793cb495ab94c6b83c71384435684e3",
    "group22-shard1of1": "64f8593a7e07081e8f0981393e5515a23153459f19685ebd69e8f4e64b6de258",
    "group23-shard1of1": "38be667fa3398643de8bae70b8693e2d895cfe099fd34e9c241bc572bb764ec8",
    "group24-shard1of1": "62c62d667246e8af09ed15b557add88ed9b0a9c7f058d8c9b8e20dc4183a3616",
    "group25-shard1of1": "b4e3ea0b6fb1c3e160cc673ce9c81d592ff233e608b2fc1dc0792125b867bd68",
    "group26-shard1of1": "0059826ac853f592c50ca5d07edb8feb1bd84a855eba47333cb834095acb6b2b",
    "group27-shard1of1": "3de17d3971bf39138917a87a4efa335c9cc82a33170f552361345f583a18b0cf",
    "group28-shard1of1": "3aaa10b8e1932a9eebf04d9f85a65050e2ecc5efb295bdcd262c2e4c560ff70c",
    "group29-shard1of1": "29e5c43deddd5033397f359611b840d130493c2eebb841b627de231a9a3a3133",
    "group30-shard1of1": "f95062a80935d493826eceb4e7d77655d10fe3be398653d7391beb282b16e105",
    "group31-shard1of1": "e4dbda049f2f49709fd4198b673fb5806e1e03d852645acdf4f1b0857f3cb561",
    "group32-shard1of1": "2af21d7664ffcbba5af49116fe97e643ac1761a0dff53af05ee0755fac487af7",
    "group33-shard1of1": "b082a0a4d7d18fcecbc0bd4d9bddfe52bd3b9d8bd375d0603201dfc8ce6d6c14",
    "group34-shard1of1": "f2053a6599e047de9e91fdf83a34097494e03f1467522797aab6ccf843ed6cb9",
    "group35-shard1of1": "fd2e5a79e02d66d381b115b5c4bb84495e4d6a9be613e33717edc8ed4c391a71",
    "group36-shard1of1": "24c244d8b8125eb206eacce88bf9b42748787b5a1f58899cd2e96e9094ba1a8d",
    "group37-shard1of1": "fa347a3052379e031c4aa71a7cde35e2c87f1907a2715fd2d01f05a901b35855",
    "group38-shard1of1": "f008795067a5c6d654c113c3c17c96db04b2a73f9246182c902eaccdd633b4e2",
    "group39-shard1of1": "d45475bd4af1c142501fd3df402f4d14fab9129d549a6b2ac07dd5c6f0751d91",
    "group40-shard1of1": "06e63442b82f9a9ee53c6623b9f075aaa92a286c35d8f37ec6b6e58ff6e4eec1",
    "group41-shard1of1": "1a31e532f7918b7c2abbf86bd4ba83357af06e13f9eecb431fcbfd43739be3e9",
    "group42-shard1of1": "6aee67f861139d308f8c3edbd83ae1efa398ee83108b5004bab57984e7128e66",
    "group43-shard1of1": "a9e74c49739a0a7b8668aa82ead0da33dc5ae5adab8fd30edbb64b9bfca341a5",
    "group44-shard1of1": "1a06e526debe9ece45ab3d5171ba0a82270187982cf74bb3f3e13bfb07e815d8",
    "group45-shard1of1": "9bf6693d9abd3272add6936b9582bdef043c5be9ffa3c34d0f55dd45d9c3eaa1",
    "group46-shard1of1": "cf5d3fa48f73a4e96fabf52369c4fd3944c66c174f9a0f0c32a74f85a652496d",
    "group47-shard1of1": "e74b658997342f16d95bb370052f62116150f5954c71f5f0bfc39b487016177f",
    "group48-shard1of1": "76df2c6b07777e7ac2fd2ccd50b72e5b7537a068198f896c458ef131c785f4c6",
    "group49-shard1of1": "9ffa2bc5a5dd357e2c224f390524508ed6eb7579e440ae70785167357da84c2a",
    "group50-shard1of1": "88858e48f4a3c8d953e281462f32971340d671f2e08e09be26ba140647264b0b",
    "group51-shard1of1": "3279efe417072ed8a64ee5bfd6122bf7bb952a846acec74d51af5c2938946f6f",
    "group52-shard1of1": "99bcebafa9bcb17c3045f9fb66bb956684a117a229c2b7ebb6b69800e1d0e158",
    "group53-shard1of1": "fb009466c7f22322df570d32f3d69d025c1450ed3226970939f69766ebeb05a5",
    "group54-shard1of1": "ec11ebd99a65e90d0f8a9e93d6edaa6473351553802c56d9869e433966e9b88b",
    "group55-shard1of1": "510435e7b0a4d458a47f9cfd024ef44bf9a4c5b64add54d35f4523bcda7a8efa",
}
#: Keras BatchNormalization variable -> PyTorch buffer or parameter name.
_BN_VARS = {"gamma": "weight", "beta": "bias", "moving_mean": "running_mean", "moving_variance": "running_var"}
_verified: set[Path] = set()


def read_tfjs_weights(folder: str | os.PathLike) -> dict[str, np.ndarray]:
    """All weights of a TF.js layers model as ``{"layer/variable": float32 array}``."""
    folder = _folder(folder)
    manifest = json.loads((folder / "model.json").read_text())["weightsManifest"]
    out: dict[str, np.ndarray] = {}
    for group in manifest:
        buf = b"".join((folder / p).read_bytes() for p in group["paths"])
        offset = 0
        for w in group["weights"]:
            if w.get("dtype", "float32") != "float32" or "quantization" in w:
                raise ValueError(f"{w['name']} in {folder / 'model.json'} is stored as {w.get('dtype')} "
                                 f"{w.get('quantization', '')}; only unquantised float32 TF.js weights are supported")
            count = int(np.prod(w["shape"], dtype=np.int64))
            if offset + 4 * count > len(buf):
                raise ValueError(f"shard files {group['paths']} in {folder} are too short for {w['name']}; "
                                 "the download is incomplete: delete the folder and fetch it again")
            arr = np.frombuffer(buf, dtype="<f4", count=count, offset=offset).reshape(w["shape"])
            out[w["name"].split(":")[0]] = arr.astype(np.float32)  # copy: frombuffer is read-only
            offset += 4 * count
        if offset != len(buf):
            raise ValueError(f"shard files {group['paths']} in {folder} hold {len(buf) - offset} bytes more "
                             "than the manifest lists")
    return out


def mobilenet_from_topology(model_json: dict) -> MobileNetV1:
    """An untrained :class:`MobileNetV1` shaped exactly as the Keras topology says."""
    layers = {layer["config"]["name"]: layer for layer in model_json["modelTopology"]["model_config"]["config"]["layers"]}
    try:
        conv1, bn1, preds = layers["conv1"]["config"], layers["conv1_bn"]["config"], layers["conv_preds"]["config"]
    except KeyError as err:
        raise ValueError(f"model.json is not a Keras MobileNet v1: no layer {err}") from None
    drop = next((l["config"]["rate"] for l in layers.values() if l["class_name"] == "Dropout"), 0.0)
    in_shape = next((l["config"]["batch_input_shape"] for l in layers.values() if l["class_name"] == "InputLayer"),
                    [None, None, None, 3])
    net = MobileNetV1(preds["filters"], alpha=conv1["filters"] / 32, in_channels=in_shape[-1], dropout=drop,
                      bn_eps=bn1["epsilon"], bn_momentum=1.0 - bn1["momentum"])
    modules = dict(net.named_modules())
    for name, layer in layers.items():
        cls, cfg = layer["class_name"], layer["config"]
        if cls == "BatchNormalization":
            mod = modules.get(f"features.{name}")
            if mod is None or abs(mod.eps - cfg["epsilon"]) > 1e-12:
                raise ValueError(f"model.json layer {name} ({cls}) has no match in MobileNetV1")
        if cls not in ("Conv2D", "DepthwiseConv2D") or name == "conv_preds":
            continue
        mod = modules.get(f"features.{name}")
        depthwise = cls == "DepthwiseConv2D"
        if (not isinstance(mod, TFConv2d) or list(mod.stride) != list(cfg["strides"])
                or list(mod.kernel_size) != list(cfg["kernel_size"]) or (mod.groups > 1) != depthwise
                or (not depthwise and mod.out_channels != cfg["filters"]) or bool(cfg.get("use_bias")) != (mod.bias is not None)):
            raise ValueError(f"model.json layer {name} ({cls}, strides {cfg['strides']}, kernel {cfg['kernel_size']}) "
                             "does not match the Keras 2.1.4 MobileNet v1 that advmed implements")
        mod.tf_padding = _padding(layer, layers)
    return net


def _padding(layer: dict, layers: dict) -> str | tuple[int, int, int, int]:
    # Keras >= 2.2 writes stride-2 convs as ZeroPadding2D(((0, 1), (0, 1))) + "valid";
    # 2.1.4 (this release) uses "same". Both are honoured exactly.
    if layer["config"]["padding"] == "same":
        return "same"
    inbound = layer["inbound_nodes"][0][0][0]
    prev = layers.get(inbound, {})
    if prev.get("class_name") == "ZeroPadding2D":
        (top, bottom), (left, right) = prev["config"]["padding"]
        return (left, right, top, bottom)
    return "valid"


def keras_to_torch(weights: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
    """Rename and transpose Keras MobileNet weights into a :class:`MobileNetV1` state dict."""
    state = {}
    for key, arr in weights.items():
        layer, _, var = key.rpartition("/")
        prefix = "conv_preds" if layer == "conv_preds" else f"features.{layer}"
        if var == "kernel":  # HWIO -> OIHW
            arr = arr.transpose(3, 2, 0, 1)
        elif var == "depthwise_kernel":  # (kh, kw, C, multiplier) -> (C * multiplier, 1, kh, kw)
            if arr.shape[3] != 1:
                raise ValueError(f"{key}: depth_multiplier {arr.shape[3]} is not supported (MobileNet v1 uses 1)")
            arr = arr.transpose(2, 3, 0, 1)
            var = "kernel"
        elif var in _BN_VARS:
            var = _BN_VARS[var]
        elif var != "bias":
            raise ValueError(f"unexpected Keras variable {key!r} in a MobileNet v1 model")
        state[f"{prefix}.{'weight' if var == 'kernel' else var}"] = torch.from_numpy(np.ascontiguousarray(arr))
    return state


def load_tfjs_mobilenet(path: str | os.PathLike) -> ImageClassifier:
    """The TF.js MobileNet v1 at ``path`` (folder or its ``model.json``) as an advmed model.

    Pixels in [0, 1] in (its first layer maps them to [-1, 1], as Keras'
    ``preprocess_input`` does with x/127.5 - 1), ImageNet logits out (1,000 classes in
    sorted-wnid order). Returned in eval mode.
    """
    folder = _folder(path)
    model_json = json.loads((folder / "model.json").read_text())
    net = mobilenet_from_topology(model_json)
    state = keras_to_torch(read_tfjs_weights(folder))
    expected = {k for k in net.state_dict() if not k.endswith("num_batches_tracked")}
    missing, unexpected = expected - set(state), set(state) - expected
    if missing or unexpected:
        raise ValueError(f"{folder / 'model.json'} does not fit MobileNetV1: missing {sorted(missing)[:5]}, "
                         f"unexpected {sorted(unexpected)[:5]}")
    net.load_state_dict(state, strict=False)  # strict except num_batches_tracked (not a Keras variable)
    alpha = net.alpha
    meta = {"arch": f"mobilenet_v1_{round(alpha * 100):03d}", "init": "imagenet", "requested_init": "imagenet",
            "in_channels": net.features.conv1.in_channels, "num_classes": net.conv_preds.out_channels,
            "input_size": 224, "mean": SIGNED_UNIT_MEAN, "std": SIGNED_UNIT_STD}
    return ImageClassifier(net, Normalize(SIGNED_UNIT_MEAN, SIGNED_UNIT_STD), meta).eval()


def mobilenet_weights_dir(*, timeout_s: float = DOWNLOAD_TIMEOUT_S, progress: bool = True) -> Path:
    """The folder with the checked TF.js MobileNet v1 0.75/224 files, fetching them if needed.

    Raises :class:`WeightsUnavailable` (with what to do) when they are neither under
    ``$ADVMED_DATA_ROOT/weights`` nor in the cache and cannot be downloaded.
    """
    root = os.environ.get("ADVMED_DATA_ROOT")
    local = Path(root) / "weights" / TFJS_FOLDER if root else None
    if local is not None and (local / "model.json").is_file():
        return _verify(local)
    cached = cache_dir() / "weights" / TFJS_FOLDER
    if all((cached / name).is_file() for name in TFJS_SHA256):
        return _verify(cached)
    where = f"$ADVMED_DATA_ROOT/weights/{TFJS_FOLDER} ({local})" if local else "$ADVMED_DATA_ROOT (unset)"
    if offline():
        raise WeightsUnavailable(f"the MobileNet v1 TF.js weights are neither in {where} nor in {cached}, and "
                                 f"ADVMED_OFFLINE is set; unset it to download them from {TFJS_URL}")
    import pooch

    downloader = pooch.HTTPDownloader(progressbar=progress, timeout=timeout_s)
    try:
        for name, sha in TFJS_SHA256.items():
            pooch.retrieve(TFJS_URL + name, known_hash=f"sha256:{sha}", fname=name, path=cached,
                           downloader=downloader)
    except Exception as err:
        raise WeightsUnavailable(f"could not download the MobileNet v1 TF.js weights from {TFJS_URL} "
                                 f"({type(err).__name__}: {err}); put the files in {where}") from err
    _verified.add(cached.resolve())
    return cached


def _verify(folder: Path) -> Path:
    """Check every file against TFJS_SHA256 once per process (11 MB: tens of ms)."""
    key = folder.resolve()
    if key in _verified:
        return folder
    for name, sha in TFJS_SHA256.items():
        path = folder / name
        if not path.is_file():
            raise FileNotFoundError(f"{path} is missing; the MobileNet v1 TF.js release has {len(TFJS_SHA256)} "
                                    f"files (model.json and group1..55-shard1of1, from {TFJS_URL})")
        if hashlib.sha256(path.read_bytes()).hexdigest() != sha:
            raise ValueError(f"checksum mismatch for {path}: expected sha256 {sha}; delete it and fetch it again "
                             f"from {TFJS_URL}{name}")
    _verified.add(key)
    return folder


def _folder(path: str | os.PathLike) -> Path:
    path = Path(path)
    folder = path.parent if path.name == "model.json" else path
    if not (folder / "model.json").is_file():
        raise FileNotFoundError(f"no model.json in {folder}; pass the folder of a TF.js layers model "
                                f"(e.g. $ADVMED_DATA_ROOT/weights/{TFJS_FOLDER})")
    return folder
