//! Writes the benchmark's text and NumPy files: lists (abnormal first, as RTFM expects),
//! `labels.csv`, per-video `gt/<name>.json`, the concatenated `gt-test.npy`, and a README.
//! Paths inside lists are relative to the output directory, so the folder can be moved.

use super::plan::{Part, Split, VideoSpec};
use super::{SynthError, SynthOptions, SynthSize};
use std::fmt::Write as _;
use std::path::Path;

/// RTFM snippet length in frames.
pub const SNIPPET: usize = 16;

fn write(path: &Path, bytes: &[u8]) -> Result<(), SynthError> {
    std::fs::write(path, bytes).map_err(|source| SynthError::Io { path: path.to_path_buf(), source })
}

/// Videos of a split in list order: abnormal first, then normal, each in catalogue order.
pub fn list_order(specs: &[VideoSpec], split: Split) -> Vec<&VideoSpec> {
    let of = |abn: bool| specs.iter().filter(move |s| s.split == split && s.abnormal() == abn);
    of(true).chain(of(false)).collect()
}

/// Per-frame labels padded to whole snippets by repeating the last label (RTFM's gt layout).
pub fn padded_labels(spec: &VideoSpec) -> Vec<f64> {
    let mut l: Vec<f64> = spec.labels().into_iter().map(f64::from).collect();
    let padded = spec.frames.div_ceil(SNIPPET) * SNIPPET;
    let last = l.last().copied().unwrap_or(0.0);
    l.resize(padded, last);
    l
}

/// Run-length form `[[value, count], ...]` of 0/1 labels.
fn rle(labels: &[u8]) -> Vec<[usize; 2]> {
    let mut out: Vec<[usize; 2]> = Vec::new();
    for &v in labels {
        match out.last_mut() {
            Some(run) if run[0] == usize::from(v) => run[1] += 1,
            _ => out.push([usize::from(v), 1]),
        }
    }
    out
}

/// A version 1.0 `.npy` file of a little-endian float64 vector.
pub fn write_all(out: &Path, specs: &[VideoSpec], opts: &SynthOptions) -> Result<(), SynthError> {
    for split in [Split::Train, Split::Val, Split::Test] {
        let mut text = String::new();
        for s in list_order(specs, split) {
            let _ = writeln!(text, "videos/{}.avi", s.name);
        }
        write(&out.join(format!("{}.list", split.name())), text.as_bytes())?;
    }
    // The benchmark's targets are per part (real footage, procedural scenes): one list and one
    // ground-truth vector per test part, same order rule, so `vigil eval` reports each alone.
    for part in [Part::Real, Part::Procedural] {
        let mut text = String::new();
        let mut gt = Vec::new();
        for s in list_order(specs, Split::Test).into_iter().filter(|s| s.part == part) {
            let _ = writeln!(text, "videos/{}.avi", s.name);
            gt.extend(padded_labels(s));
        }
        write(&out.join(format!("test-{}.list", part.name())), text.as_bytes())?;
        write(&out.join(format!("gt-test-{}.npy", part.name())), &crate::npy::encode_f64_vector(&gt))?;
    }

    let mut csv =
        String::from("video,split,label,part,event_kind,event_start_frame,event_end_frame,frames,fps,width,height\n");
    for s in specs {
        let (kind, start, end) = match s.event {
            Some(e) => (e.kind.name(), e.start.to_string(), e.end.to_string()),
            None => ("", String::new(), String::new()),
        };
        let _ = writeln!(
            csv,
            "videos/{}.avi,{},{},{},{},{},{},{},{},{},{}",
            s.name,
            s.split.name(),
            u8::from(s.abnormal()),
            s.part.name(),
            kind,
            start,
            end,
            s.frames,
            s.fps,
            s.width,
            s.height
        );
    }
    write(&out.join("labels.csv"), csv.as_bytes())?;

    let gt_dir = out.join("gt");
    std::fs::create_dir_all(&gt_dir).map_err(|source| SynthError::Io { path: gt_dir.clone(), source })?;
    // The validation split gets the same frame-level ground truth as the test split, so model
    // selection and threshold setting can use frame AUC without ever touching the test list.
    for (split, file) in [(Split::Val, "gt-val.npy"), (Split::Test, "gt-test.npy")] {
        let mut gt = Vec::new();
        for s in list_order(specs, split) {
            let events: Vec<serde_json::Value> = s
                .event
                .iter()
                .map(|e| serde_json::json!({"kind": e.kind.name(), "start_frame": e.start, "end_frame": e.end}))
                .collect();
            let doc = serde_json::json!({
                "video": format!("videos/{}.avi", s.name),
                "frames": s.frames,
                "fps": s.fps,
                "events": events,
                "labels_rle": rle(&s.labels()),
            });
            let path = gt_dir.join(format!("{}.json", s.name));
            let mut text = serde_json::to_string_pretty(&doc)
                .map_err(|e| SynthError::Io { path: path.clone(), source: e.into() })?;
            text.push('\n');
            write(&path, text.as_bytes())?;
            gt.extend(padded_labels(s));
        }
        write(&out.join(file), &crate::npy::encode_f64_vector(&gt))?;
    }
    write(&out.join("README.md"), readme(specs, opts).as_bytes())
}

fn readme(specs: &[VideoSpec], opts: &SynthOptions) -> String {
    let size = match opts.size {
        SynthSize::Small => "small",
        SynthSize::Full => "full",
    };
    let n = |split: Split, abn: bool| specs.iter().filter(|s| s.split == split && s.abnormal() == abn).count();
    format!(
        "# vigil synthetic anomaly benchmark\n\n\
Generated by `vigil synth --size {size} --seed {seed}` from `{src}`. The same seed, size and source\n\
give the same lists, labels and ground truth byte for byte, and the same decoded frames.\n\n\
| split | abnormal | normal |\n|---|---|---|\n| train | {ta} | {tn} |\n| val | {va} | {vn} |\n| test | {sa} | {sn} |\n\n\
## Files\n\
- `videos/<split>_<part>_<abn|nor>_<nnnn>[_<kind>].avi`: MJPG in AVI. `part` is `real` (cut from the\n  source clip; crop of 45-100 % of the frame, mirror, exposure varied) or `proc` (drawn from scratch).\n\
- `train.list`, `val.list`, `test.list`: one video path per line, relative to this folder, abnormal\n  videos first, then normal (RTFM's layout). `val` is for model selection; never select on `test`.\n\
- `labels.csv`: `video,split,label,part,event_kind,event_start_frame,event_end_frame,frames,fps,width,height`;\n  events cover frames `start..end`, end exclusive (0-based).\n\
- `gt/<name>.json` (test videos): frames, fps, events, and `labels_rle` as `[value, run]` pairs.\n\
- `test-real.list`, `test-proc.list` and `gt-test-real.npy`, `gt-test-proc.npy`: the test split by part.\n- `gt-val.npy`: the same for the validation videos in `val.list` order (model selection).\n- `gt-test.npy`: float64 per-frame 0/1 labels of the test videos in `test.list` order, each padded\n  to a multiple of 16 frames by repeating its last label, concatenated (RTFM's gt layout).\n\n\
## Event kinds\n\
runner (crossing at 3-6x walking speed), speedup (scene plays 3-6x fast), scuffle (two people\n\
flailing; on real footage the region is also shaken), counterflow (against a one-way flow; on real\n\
footage across the plaza's left-right flow), fall (falls, lies, gets up; only the fall-to-rise\n\
window is abnormal), vehicle (a car through the pedestrian area), shake, occlusion, defocus\n\
(camera tampering).\n\n\
## Splits of the real source\n\
Train and val clips come from source frames before 68 % of the clip; test clips from after 73 %,\n\
so no test clip shares footage with a training clip. Val shares the training range with other\n\
offsets, crops and seeds (the source is too short for a third range). Procedural videos never\n\
share a seed.\n",
        seed = opts.seed,
        src = opts.source_video.display(),
        ta = n(Split::Train, true),
        tn = n(Split::Train, false),
        va = n(Split::Val, true),
        vn = n(Split::Val, false),
        sa = n(Split::Test, true),
        sn = n(Split::Test, false),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn npy_header_is_aligned() {
        let b = crate::npy::encode_f64_vector(&[1.0, 0.0]);
        let hl = usize::from(u16::from_le_bytes([b[8], b[9]]));
        assert_eq!((10 + hl) % 64, 0);
        assert_eq!(b.len(), 10 + hl + 16);
        assert_eq!(b[10 + hl - 1], b'\n');
    }

    #[test]
    fn rle_runs() {
        assert_eq!(rle(&[0, 0, 1, 1, 1, 0]), vec![[0, 2], [1, 3], [0, 1]]);
    }
}
