//! List files: one video or feature path per line, order significant, abnormal videos first
//! (the RTFM layout). A line may carry a label after a comma (`path,1`, `path,abnormal`).
//! Relative paths are taken relative to the list file's directory when they exist there,
//! otherwise relative to the current directory. Published UCF-Crime lists carry Windows paths
//! (`G:\UCF\Abuse001_x264.npy`): `--remap 'G:\UCF\=/data/ucf/'` rewrites a prefix, and
//! backslashes are turned into slashes.

use std::path::{Path, PathBuf};

/// Errors of list files; each names the file and, where it applies, the line.
#[derive(Debug, thiserror::Error)]
pub enum ListError {
    #[error("list file {0} does not exist")]
    Missing(PathBuf),
    #[error("cannot read list {path}: {reason}")]
    Read { path: PathBuf, reason: String },
    #[error("{path}:{line}: {reason}")]
    Line { path: PathBuf, line: usize, reason: String },
    #[error("list {path}: {reason}")]
    Invalid { path: PathBuf, reason: String },
}

/// Video-level label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Label {
    Normal,
    Abnormal,
}

/// One line of a list.
#[derive(Debug, Clone, PartialEq)]
pub struct ListEntry {
    pub path: PathBuf,
    /// 1-based line number in the list file (for messages).
    pub line: usize,
    /// The label column, when the line has one.
    pub label: Option<Label>,
}

/// A prefix rewrite `FROM=TO` for lists made on another machine.
#[derive(Debug, Clone, PartialEq)]
pub struct Remap {
    pub from: String,
    pub to: String,
}

impl std::str::FromStr for Remap {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.split_once('=') {
            Some((from, to)) if !from.is_empty() => Ok(Remap { from: from.to_string(), to: to.to_string() }),
            _ => Err(format!("expected FROM=TO, got '{s}'")),
        }
    }
}

fn parse_label(text: &str) -> Option<Label> {
    match text.trim().to_ascii_lowercase().as_str() {
        "0" | "normal" | "n" => Some(Label::Normal),
        "1" | "abnormal" | "anomaly" | "a" => Some(Label::Abnormal),
        _ => None,
    }
}

/// Reads a list file. Empty lines and lines starting with `#` are skipped.
pub fn read_list(path: &Path, remaps: &[Remap]) -> Result<Vec<ListEntry>, ListError> {
    if !path.is_file() {
        return Err(ListError::Missing(path.to_path_buf()));
    }
    let text = std::fs::read_to_string(path)
        .map_err(|e| ListError::Read { path: path.to_path_buf(), reason: e.to_string() })?;
    let base = path.parent().unwrap_or(Path::new("."));
    let mut out = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (p, label) = match line.rsplit_once(',') {
            Some((p, l)) => match parse_label(l) {
                Some(lab) => (p.trim(), Some(lab)),
                None => {
                    return Err(ListError::Line {
                        path: path.to_path_buf(),
                        line: i + 1,
                        reason: format!("label '{l}' is not one of 0, 1, normal, abnormal"),
                    })
                }
            },
            None => (line, None),
        };
        let mut p = p.to_string();
        for r in remaps {
            if let Some(rest) = p.strip_prefix(&r.from) {
                p = format!("{}{}", r.to, rest);
                break;
            }
        }
        if p.contains('\\') {
            p = p.replace('\\', "/");
        }
        let pb = PathBuf::from(&p);
        let resolved = if pb.is_absolute() || !base.join(&pb).exists() { pb } else { base.join(&pb) };
        out.push(ListEntry { path: resolved, line: i + 1, label });
    }
    if out.is_empty() {
        return Err(ListError::Invalid { path: path.to_path_buf(), reason: "holds no entries".into() });
    }
    Ok(out)
}

/// Names that mark a normal video in published and synthetic lists: UCF-Crime's
/// `Normal_Videos…`, XD-Violence's `…_label_A`, vigil synth's `_nor_`.
fn looks_normal(path: &Path) -> bool {
    let name = path.file_name().map(|n| n.to_string_lossy().to_ascii_lowercase()).unwrap_or_default();
    name.contains("normal") || name.contains("_label_a") || name.contains("_nor_") || name.starts_with("nor_")
}

/// Video-level labels for a list: the label column when every line has one; otherwise the first
/// `abnormal_first` lines when given (the RTFM convention); otherwise inferred from names.
pub fn labels(path: &Path, entries: &[ListEntry], abnormal_first: Option<usize>) -> Result<Vec<Label>, ListError> {
    if entries.iter().all(|e| e.label.is_some()) {
        return Ok(entries.iter().filter_map(|e| e.label).collect());
    }
    if let Some(n) = abnormal_first {
        if n > entries.len() {
            return Err(ListError::Invalid {
                path: path.to_path_buf(),
                reason: format!("--abnormal {n} exceeds the list's {} entries", entries.len()),
            });
        }
        return Ok((0..entries.len()).map(|i| if i < n { Label::Abnormal } else { Label::Normal }).collect());
    }
    Ok(entries.iter().map(|e| if looks_normal(&e.path) { Label::Normal } else { Label::Abnormal }).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_labels_remaps_and_relative_paths() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.npy"), b"").unwrap();
        let list = dir.path().join("l.list");
        std::fs::write(&list, "# comment\na.npy,1\n\nG:\\UCF\\Normal_Videos_1.npy,normal\n").unwrap();
        let remap: Remap = "G:\\UCF\\=/data/ucf/".parse().unwrap();
        let e = read_list(&list, &[remap]).unwrap();
        assert_eq!(e.len(), 2);
        assert_eq!(e[0].path, dir.path().join("a.npy"));
        assert_eq!(e[0].line, 2);
        assert_eq!(e[1].path, PathBuf::from("/data/ucf/Normal_Videos_1.npy"));
        assert_eq!(labels(&list, &e, None).unwrap(), vec![Label::Abnormal, Label::Normal]);
    }

    #[test]
    fn bad_label_names_the_line() {
        let dir = tempfile::tempdir().unwrap();
        let list = dir.path().join("l.list");
        std::fs::write(&list, "a.npy\nb.npy,maybe\n").unwrap();
        let err = read_list(&list, &[]).unwrap_err().to_string();
        assert!(err.contains("l.list:2") && err.contains("maybe"), "{err}");
    }

    #[test]
    fn labels_by_count_and_by_name() {
        let e: Vec<ListEntry> = ["x/01_001.npy", "x/01_002.npy", "x/Normal_Videos_3.npy"]
            .iter()
            .enumerate()
            .map(|(i, p)| ListEntry { path: p.into(), line: i + 1, label: None })
            .collect();
        let l = Path::new("l");
        assert_eq!(labels(l, &e, Some(1)).unwrap(), vec![Label::Abnormal, Label::Normal, Label::Normal]);
        assert_eq!(labels(l, &e, None).unwrap(), vec![Label::Abnormal, Label::Abnormal, Label::Normal]);
        assert!(labels(l, &e, Some(4)).is_err());
    }

    #[test]
    fn empty_and_missing_lists() {
        let dir = tempfile::tempdir().unwrap();
        let list = dir.path().join("e.list");
        std::fs::write(&list, "\n# nothing\n").unwrap();
        assert!(matches!(read_list(&list, &[]), Err(ListError::Invalid { .. })));
        assert!(matches!(read_list(&dir.path().join("none"), &[]), Err(ListError::Missing(_))));
    }
}
