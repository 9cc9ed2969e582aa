#!/usr/bin/env bash
# The compact bundle gpu_check.sh works from (the data mirror is larger than a GPU machine's
# 64 MiB of files): the Kermany 224 px JPEGs, the MobileNet v1 0.75 TF.js weights, their lines
# of SHA256SUMS, and the wheels of the packages a bare PyTorch image lacks (about 59 MiB).
#
#   benchmarks/make_gpu_bundle.sh [DATA_ROOT]      # -> .gpu-bundle/ (git-ignored)
#
# DATA_ROOT defaults to $ADVMED_DATA_ROOT, else ../shared/data beside the repository. Wheels are
# fetched with pip for CPython 3.12 on manylinux x86-64 (the GPU image's Python); skipped with
# NO_WHEELS=1.
set -euo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
SRC=${1:-${ADVMED_DATA_ROOT:-$REPO/../shared/data}}
DEST=$REPO/.gpu-bundle
PY=${PYTHON:-python3}
rm -rf "$DEST"
mkdir -p "$DEST/data/weights" "$DEST/wheels"
EXCLUDE=$(cd "$REPO" && git rev-parse --git-path info/exclude)
case $EXCLUDE in /*) ;; *) EXCLUDE=$REPO/$EXCLUDE ;; esac
mkdir -p "$(dirname "$EXCLUDE")"
grep -qx '/.gpu-bundle/' "$EXCLUDE" 2>/dev/null || echo '/.gpu-bundle/' >> "$EXCLUDE"
cp -r "$SRC/chest_xray_kermany_224" "$DEST/data/"
cp -r "$SRC/weights/mobilenet_v1_0.75_224_tfjs" "$DEST/data/weights/"
grep -E '  (\./)?(chest_xray_kermany_224|weights/mobilenet_v1_0.75_224_tfjs)/' "$SRC/SHA256SUMS" > "$DEST/data/SHA256SUMS"
[ -f "$SRC/README.md" ] && cp "$SRC/README.md" "$DEST/data/"
if [ "${NO_WHEELS:-0}" != 1 ]; then
  "$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    -d "$DEST/wheels" kornia==0.9.0 kornia_rs==0.2.0 pooch==1.9.0 platformdirs torchattacks==3.5.1
fi
du -sh "$DEST" "$DEST"/data/* "$DEST/wheels"
