#!/usr/bin/env bash
# End-to-end check of a model on real footage that `vigil synth` did not make: vtest.avi with
# one stretch played four times faster (frames 300..539 shown as 60 frames, i.e. 6 s at 10 fps
# from 30.0 s on), replayed by `vigil replay` in the manifest's scorer mode at its thresholds.
# Prints the per-snippet scores, the alert events and the delay from the edit to the alert.
#
#   models/check_alert_on_edit.sh [MODEL_DIR] [WORK_DIR]
#
# Needs ffmpeg, python3 and target/release/vigil (or $VIGIL).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
MODEL=$(realpath -m "${1:-$ROOT/models/default}")
WORK=$(realpath -m "${2:-$(mktemp -d -t vigil-check-edit.XXXXXX)}")
VIGIL=$(realpath -m "${VIGIL:-${CARGO_TARGET_DIR:-$ROOT/target}/release/vigil}")
VTEST=${VTEST:-/usr/share/doc/opencv-doc/examples/data/vtest.avi}
[ -x "$VIGIL" ] || { echo "error: $VIGIL not found: cargo build --release first (or set VIGIL)" >&2; exit 1; }
[ -f "$VTEST" ] || { echo "error: $VTEST not found (Debian package opencv-doc)" >&2; exit 1; }
if [ -z "${ORT_DYLIB_PATH:-}" ] && [ -f "${CARGO_TARGET_DIR:-$ROOT/target}/ort-env.sh" ]; then
    # shellcheck disable=SC1091
    source "${CARGO_TARGET_DIR:-$ROOT/target}/ort-env.sh"
fi
mkdir -p "$WORK"
clip="$WORK/vtest_speedup4x.avi"
ffmpeg -v error -y -i "$VTEST" -filter_complex \
    "[0:v]trim=start_frame=0:end_frame=300,setpts=PTS-STARTPTS[a];\
[0:v]trim=start_frame=300:end_frame=540,setpts=PTS-STARTPTS,select='not(mod(n\,4))',setpts=N/10/TB[b];\
[0:v]trim=start_frame=540:end_frame=795,setpts=PTS-STARTPTS[c];[a][b][c]concat=n=3:v=1[out]" \
    -map "[out]" -r 10 -c:v mjpeg -q:v 3 "$clip"
"$VIGIL" --log warn replay "$clip" --model "$MODEL" --scores "$WORK/scores.jsonl" > "$WORK/alerts.jsonl"
python3 - "$WORK/scores.jsonl" "$WORK/alerts.jsonl" <<'EOF'
import json, sys
scores = [json.loads(l) for l in open(sys.argv[1])]
alerts = [json.loads(l) for l in open(sys.argv[2]) if l.strip()]
print("scores per snippet (1.6 s each; the edit covers 30.0-36.0 s):")
print(" ".join(f"{s['score']:.2f}" for s in scores))
starts = [a for a in alerts if a["event"] == "start"]
for a in starts:
    print(f"alert at {a['time_start_s']:.1f} s (peak {a['peak_score']:.2f})")
inside = [a for a in starts if 30.0 <= a["time_start_s"] <= 40.0]
others = [a for a in starts if a not in inside]
print(f"edit detected: {'yes, ' + format(inside[0]['time_start_s'] - 30.0, '.1f') + ' s after it began' if inside else 'no'}; "
      f"alerts elsewhere: {len(others)}")
EOF
