//! What replay and score write besides alert events: per-snippet score files (JSONL or CSV, by
//! extension) and plots (SVG or PNG, by extension).

mod plot;

pub(crate) use plot::font_available;
pub use plot::{plot_scores, PlotInput};

use serde::Serialize;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

/// Errors writing outputs; each names the file.
#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    #[error("cannot write {path}: {reason}")]
    Write { path: PathBuf, reason: String },
    #[error("{path}: unsupported extension; expected {expected}")]
    Extension { path: PathBuf, expected: &'static str },
}

impl OutputError {
    pub fn write(path: &Path, e: impl std::fmt::Display) -> Self {
        OutputError::Write { path: path.to_path_buf(), reason: e.to_string() }
    }
}

/// One snippet's score, as written to `--scores`.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ScoreRecord {
    /// Video file or camera id.
    pub source: String,
    pub snippet: u64,
    pub frame_start: u64,
    pub frame_end: u64,
    pub time_start_s: f64,
    pub time_end_s: f64,
    pub score: f32,
    pub magnitude: f32,
}

/// Score file format, chosen by extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScoreFormat {
    Jsonl,
    Csv,
}

impl ScoreFormat {
    pub fn from_path(path: &Path) -> Result<Self, OutputError> {
        match path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase).as_deref() {
            Some("jsonl") | Some("json") | Some("ndjson") => Ok(ScoreFormat::Jsonl),
            Some("csv") => Ok(ScoreFormat::Csv),
            _ => Err(OutputError::Extension { path: path.to_path_buf(), expected: ".jsonl or .csv" }),
        }
    }
}

/// Writes score records to a file (created or truncated).
pub fn write_scores(path: &Path, records: &[ScoreRecord]) -> Result<(), OutputError> {
    let format = ScoreFormat::from_path(path)?;
    let file = std::fs::File::create(path).map_err(|e| OutputError::write(path, e))?;
    let mut w = BufWriter::new(file);
    let res: std::io::Result<()> = (|| {
        match format {
            ScoreFormat::Jsonl => {
                for r in records {
                    serde_json::to_writer(&mut w, r)?;
                    w.write_all(b"\n")?;
                }
            }
            ScoreFormat::Csv => {
                writeln!(w, "source,snippet,frame_start,frame_end,time_start_s,time_end_s,score,magnitude")?;
                for r in records {
                    writeln!(
                        w,
                        "{},{},{},{},{:.3},{:.3},{},{}",
                        csv_field(&r.source),
                        r.snippet,
                        r.frame_start,
                        r.frame_end,
                        r.time_start_s,
                        r.time_end_s,
                        r.score,
                        r.magnitude
                    )?;
                }
            }
        }
        w.flush()
    })();
    res.map_err(|e| OutputError::write(path, e))
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// Replaces `{stem}` in an output path template with a video's file stem, or, when several
/// videos share one output path without the placeholder, inserts `.<stem>` before the extension.
pub fn per_video_path(template: &Path, video: &Path, many: bool) -> PathBuf {
    let stem = video.file_stem().and_then(|s| s.to_str()).unwrap_or("video");
    let text = template.to_string_lossy();
    if text.contains("{stem}") {
        return PathBuf::from(text.replace("{stem}", stem));
    }
    if !many {
        return template.to_path_buf();
    }
    let ext = template.extension().and_then(|e| e.to_str()).unwrap_or("");
    let base = template.with_extension("");
    PathBuf::from(format!("{}.{stem}.{ext}", base.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(i: u64) -> ScoreRecord {
        ScoreRecord {
            source: "a,b.avi".into(),
            snippet: i,
            frame_start: i * 16,
            frame_end: i * 16 + 15,
            time_start_s: i as f64 * 1.6,
            time_end_s: (i + 1) as f64 * 1.6,
            score: 0.25,
            magnitude: 3.5,
        }
    }

    #[test]
    fn jsonl_and_csv() {
        let dir = tempfile::tempdir().unwrap();
        let j = dir.path().join("s.jsonl");
        write_scores(&j, &[rec(0), rec(1)]).unwrap();
        let text = std::fs::read_to_string(&j).unwrap();
        let lines: Vec<serde_json::Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[1]["snippet"], 1);
        assert_eq!(lines[1]["score"], 0.25);
        let c = dir.path().join("s.csv");
        write_scores(&c, &[rec(0)]).unwrap();
        let text = std::fs::read_to_string(&c).unwrap();
        assert_eq!(text.lines().nth(1).unwrap(), "\"a,b.avi\",0,0,15,0.000,1.600,0.25,3.5");
    }

    #[test]
    fn bad_extension_and_unwritable() {
        assert!(matches!(write_scores(Path::new("x.txt"), &[]), Err(OutputError::Extension { .. })));
        assert!(matches!(write_scores(Path::new("/nonexistent/dir/x.csv"), &[]), Err(OutputError::Write { .. })));
    }

    #[test]
    fn per_video_paths() {
        assert_eq!(per_video_path(Path::new("o/{stem}.svg"), Path::new("v/a.avi"), true), PathBuf::from("o/a.svg"));
        assert_eq!(per_video_path(Path::new("o/p.svg"), Path::new("v/a.avi"), false), PathBuf::from("o/p.svg"));
        assert_eq!(per_video_path(Path::new("o/p.svg"), Path::new("v/a.avi"), true), PathBuf::from("o/p.a.svg"));
    }
}
