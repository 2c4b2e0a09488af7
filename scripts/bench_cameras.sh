#!/usr/bin/env bash
# The daemon's N-camera benchmark (README "Performance: the daemon"): `vigil bench-cameras` on
# N copies of vtest.avi (768x576, 10 fps) and of the same clip re-encoded as H.264 1080p at 30 fps,
# each camera paced in real time and looping, recording on. One JSON line per run on stdout.
# Run on an otherwise idle machine:  cargo build --release && scripts/bench_cameras.sh
# Knobs: DURATION (default 60s), VTEST_NS (default "16 32 48 64"), HD_NS (default "2 4 6 8"),
# DECODER (auto, ffmpeg or opencv; default auto: FFmpeg to YUV for the grey default model).
set -euo pipefail
cd "$(dirname "$0")/.."
[ -n "${ORT_DYLIB_PATH:-}" ] || { [ -f target/ort-env.sh ] && . target/ort-env.sh; }
VIGIL=${VIGIL:-target/release/vigil}
DURATION=${DURATION:-60s}
VTEST=/usr/share/doc/opencv-doc/examples/data/vtest.avi
HD=target/bench/vtest-1080p30.mp4
mkdir -p target/bench
if [ ! -f "$HD" ]; then
  ffmpeg -v error -y -i "$VTEST" -vf "scale=1920:1080,fps=30" -c:v libx264 -preset veryfast -crf 23 \
    -g 30 -bf 0 -pix_fmt yuv420p "$HD"
fi
for n in ${VTEST_NS:-16 32 48 64}; do
  "$VIGIL" --log warn bench-cameras "$VTEST" --cameras "$n" --duration "$DURATION" --decoder "${DECODER:-auto}" --json
done
for n in ${HD_NS:-2 4 6 8}; do
  "$VIGIL" --log warn bench-cameras "$HD" --cameras "$n" --duration "$DURATION" --decoder "${DECODER:-auto}" --json
done
