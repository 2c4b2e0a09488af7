#!/usr/bin/env bash
# Installs what vigil needs on a fresh Debian 12 machine (safe to run again: every step checks
# first). System packages: OpenCV 4.6 + clang (the opencv crate's bindings), FFmpeg, the sample
# clip vtest.avi (opencv-doc), a font for PNG plots, and for the daemon tests a mosquitto broker and
# GStreamer's RTSP server (python3-gst-1.0). Python: ONNX Runtime 1.31.1 (its shared
# library is what vigil loads at run time) and the model-building scripts' packages.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(pkg-config libopencv-dev clang libclang-dev libavformat-dev libavcodec-dev libavutil-dev libswscale-dev opencv-doc ffmpeg fonts-dejavu-core python3-pip mosquitto mosquitto-clients
  python3-gst-1.0 gir1.2-gst-rtsp-server-1.0 gstreamer1.0-plugins-good gstreamer1.0-plugins-bad)
missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "setup: installing Debian packages: ${missing[*]}"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

PY=${PYTHON:-python3}
if ! $PY -c "import onnxruntime, onnx, numpy, safetensors" >/dev/null 2>&1 \
   || [ "$($PY -c 'import onnxruntime; print(onnxruntime.__version__)')" != "1.31.1" ]; then
  echo "setup: installing Python packages from requirements.txt"
  $PY -m pip install -q --disable-pip-version-check -r requirements.txt \
    || $PY -m pip install -q --disable-pip-version-check --break-system-packages -r requirements.txt
fi

# Where ONNX Runtime's shared library is; vigil also searches these places itself.
ORT_LIB=$($PY -c 'import onnxruntime, os, glob; d=os.path.join(os.path.dirname(onnxruntime.__file__), "capi"); print(sorted(glob.glob(os.path.join(d, "libonnxruntime.so*")))[-1])')
echo "setup: ONNX Runtime library: $ORT_LIB"
mkdir -p target
echo "export ORT_DYLIB_PATH=$ORT_LIB" > target/ort-env.sh
