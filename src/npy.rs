//! NumPy `.npy` files: the RTFM feature layout `[T, crops, D]` (float32, or float64 as some
//! published files are) and ground-truth vectors. Object (pickled) arrays are refused: loading them
//! would mean running a pickle, and no feature file needs one.

use ndarray::{Array1, Array3};
use std::path::{Path, PathBuf};

/// Errors of reading or writing `.npy` files; each names the file.
#[derive(Debug, thiserror::Error)]
pub enum NpyError {
    #[error("feature file {0} does not exist")]
    Missing(PathBuf),
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is not a valid .npy file: {reason}")]
    Format { path: PathBuf, reason: String },
    #[error("{path} holds a {dtype} array; expected {expected}")]
    Dtype { path: PathBuf, dtype: String, expected: String },
    #[error("{path} has shape {shape:?}; expected {expected}")]
    Shape { path: PathBuf, shape: Vec<usize>, expected: String },
}

/// Element types this reader understands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Dtype {
    F4,
    F8,
    I8,
    I4,
    U1,
    Bool,
}

impl Dtype {
    fn size(self) -> usize {
        match self {
            Dtype::F8 | Dtype::I8 => 8,
            Dtype::F4 | Dtype::I4 => 4,
            Dtype::U1 | Dtype::Bool => 1,
        }
    }
}

/// A decoded `.npy` array: its shape and its values widened to f64.
#[derive(Debug, Clone)]
pub struct NpyArray {
    pub shape: Vec<usize>,
    pub dtype: String,
    values: Vec<f64>,
}

impl NpyArray {
    pub fn len(&self) -> usize {
        self.values.len()
    }
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }
    pub fn into_f64(self) -> Vec<f64> {
        self.values
    }
}

/// Reads any numeric `.npy` file (little- or big-endian f4/f8/i4/i8/u1/bool, C order).
pub fn read(path: &Path) -> Result<NpyArray, NpyError> {
    if !path.exists() {
        return Err(NpyError::Missing(path.to_path_buf()));
    }
    let bytes = std::fs::read(path).map_err(|source| NpyError::Io { path: path.to_path_buf(), source })?;
    parse(path, &bytes)
}

fn format_err(path: &Path, reason: impl Into<String>) -> NpyError {
    NpyError::Format { path: path.to_path_buf(), reason: reason.into() }
}

fn parse(path: &Path, bytes: &[u8]) -> Result<NpyArray, NpyError> {
    if bytes.len() < 10 || &bytes[..6] != b"\x93NUMPY" {
        return Err(format_err(path, "missing the \\x93NUMPY magic (not a .npy file)"));
    }
    let major = bytes[6];
    let (header_len, header_start) = match major {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        2 | 3 => {
            if bytes.len() < 12 {
                return Err(format_err(path, "truncated header"));
            }
            (u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize, 12)
        }
        v => return Err(format_err(path, format!("unsupported .npy version {v}"))),
    };
    let header_end = header_start + header_len;
    let header = bytes.get(header_start..header_end).ok_or_else(|| format_err(path, "truncated header"))?;
    let header = std::str::from_utf8(header).map_err(|_| format_err(path, "header is not text"))?;
    let descr = header_value(header, "descr").ok_or_else(|| format_err(path, "header has no 'descr'"))?;
    let fortran =
        header_value(header, "fortran_order").ok_or_else(|| format_err(path, "header has no 'fortran_order'"))?;
    let shape_text = header_value(header, "shape").ok_or_else(|| format_err(path, "header has no 'shape'"))?;
    let descr = descr.trim().trim_matches(|c| c == '\'' || c == '"').to_string();
    if descr.contains('O') {
        return Err(NpyError::Dtype {
            path: path.to_path_buf(),
            dtype: format!("object ('{descr}')"),
            expected: "a numeric array (float32 or float64); object arrays are pickles and are refused".into(),
        });
    }
    let (little, code) = match descr.as_bytes().first() {
        Some(b'<') | Some(b'|') | Some(b'=') => (true, &descr[1..]),
        Some(b'>') => (false, &descr[1..]),
        _ => (true, descr.as_str()),
    };
    let dtype = match code {
        "f4" => Dtype::F4,
        "f8" => Dtype::F8,
        "i8" => Dtype::I8,
        "i4" => Dtype::I4,
        "u1" => Dtype::U1,
        "b1" => Dtype::Bool,
        other => {
            return Err(NpyError::Dtype {
                path: path.to_path_buf(),
                dtype: format!("'{other}'"),
                expected: "float32 or float64".into(),
            })
        }
    };
    if fortran.trim() != "False" {
        return Err(format_err(path, "Fortran-order arrays are not supported; save with np.ascontiguousarray"));
    }
    let shape = parse_shape(shape_text.trim()).ok_or_else(|| format_err(path, format!("bad shape {shape_text}")))?;
    let count: usize = shape.iter().product();
    let data = &bytes[header_end..];
    let need = count.checked_mul(dtype.size()).ok_or_else(|| format_err(path, "shape too large"))?;
    if data.len() < need {
        return Err(format_err(
            path,
            format!("truncated: shape {shape:?} needs {need} data bytes, file has {}", data.len()),
        ));
    }
    let values = decode(&data[..need], dtype, little);
    Ok(NpyArray { shape, dtype: descr, values })
}

fn decode(data: &[u8], dtype: Dtype, little: bool) -> Vec<f64> {
    macro_rules! conv {
        ($t:ty, $n:expr) => {
            data.chunks_exact($n)
                .map(|c| {
                    let mut b = [0u8; $n];
                    b.copy_from_slice(c);
                    (if little { <$t>::from_le_bytes(b) } else { <$t>::from_be_bytes(b) }) as f64
                })
                .collect()
        };
    }
    match dtype {
        Dtype::F4 => conv!(f32, 4),
        Dtype::F8 => conv!(f64, 8),
        Dtype::I4 => conv!(i32, 4),
        Dtype::I8 => conv!(i64, 8),
        Dtype::U1 | Dtype::Bool => data.iter().map(|&b| b as f64).collect(),
    }
}

/// Extracts the text after `'key':` up to the next top-level comma or closing brace.
fn header_value<'a>(header: &'a str, key: &str) -> Option<&'a str> {
    let pat = format!("'{key}':");
    let start = header.find(&pat)? + pat.len();
    let rest = &header[start..];
    let mut depth = 0i32;
    for (i, ch) in rest.char_indices() {
        match ch {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' | '}' if depth == 0 => return Some(&rest[..i]),
            _ => {}
        }
    }
    None
}

fn parse_shape(text: &str) -> Option<Vec<usize>> {
    let inner = text.strip_prefix('(')?.strip_suffix(')')?;
    inner.split(',').map(str::trim).filter(|s| !s.is_empty()).map(|s| s.trim_end_matches('L').parse().ok()).collect()
}

/// Reads a feature file as `[T, crops, D]` f32. Rank 2 `[T, D]` is taken as one crop.
/// `dim`, when given, is the width the model expects.
pub fn read_features(path: &Path, dim: Option<usize>) -> Result<Array3<f32>, NpyError> {
    let arr = read(path)?;
    let float = arr.dtype.ends_with("f4") || arr.dtype.ends_with("f8");
    if !float {
        return Err(NpyError::Dtype {
            path: path.to_path_buf(),
            dtype: format!("'{}'", arr.dtype),
            expected: "float32 or float64 features".into(),
        });
    }
    let expected = || match dim {
        Some(d) => format!("[T, crops, {d}] (or [T, {d}]) with T >= 1"),
        None => "[T, crops, D] (or [T, D]) with T >= 1".to_string(),
    };
    let (t, c, d) = match arr.shape.as_slice() {
        [t, c, d] => (*t, *c, *d),
        [t, d] => (*t, 1, *d),
        _ => return Err(NpyError::Shape { path: path.to_path_buf(), shape: arr.shape.clone(), expected: expected() }),
    };
    if t == 0 || c == 0 || d == 0 || dim.is_some_and(|want| want != d) {
        return Err(NpyError::Shape { path: path.to_path_buf(), shape: arr.shape.clone(), expected: expected() });
    }
    if let Some(bad) = arr.values.iter().position(|v| !v.is_finite()) {
        return Err(format_err(path, format!("value #{bad} is not finite")));
    }
    let values: Vec<f32> = arr.values.into_iter().map(|v| v as f32).collect();
    Array3::from_shape_vec((t, c, d), values).map_err(|e| format_err(path, e.to_string()))
}

/// Reads a rank-1 numeric vector (ground truth) as f64.
pub fn read_vector(path: &Path) -> Result<Array1<f64>, NpyError> {
    let arr = read(path)?;
    if arr.shape.len() != 1 {
        return Err(NpyError::Shape {
            path: path.to_path_buf(),
            shape: arr.shape,
            expected: "a vector [frames]".into(),
        });
    }
    Ok(Array1::from(arr.values))
}

/// Encodes a version-1.0 `.npy` file: the header for `descr` (e.g. `<f4`) and `shape`, padded so
/// the data starts on a 64-byte boundary as NumPy does, then `payload` as given (callers that
/// test malformed files pass payloads that do not match the shape).
pub fn encode(descr: &str, shape: &[usize], payload: &[u8]) -> Vec<u8> {
    let shape_txt = match shape {
        [one] => format!("({one},)"),
        dims => format!("({})", dims.iter().map(|d| d.to_string()).collect::<Vec<_>>().join(", ")),
    };
    let mut header = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape_txt}, }}");
    // Magic (6) + version (2) + length (2) + header + '\n' is a multiple of 64.
    let total = 10 + header.len() + 1;
    header.push_str(&" ".repeat((64 - total % 64) % 64));
    header.push('\n');
    let mut out = Vec::with_capacity(10 + header.len() + payload.len());
    out.extend_from_slice(b"\x93NUMPY\x01\x00");
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(payload);
    out
}

/// A little-endian float32 `.npy` file of `shape` (C order).
pub fn encode_f32(shape: &[usize], data: &[f32]) -> Vec<u8> {
    let payload: Vec<u8> = data.iter().flat_map(|v| v.to_le_bytes()).collect();
    encode("<f4", shape, &payload)
}

/// A little-endian float64 `.npy` vector (ground truth).
pub fn encode_f64_vector(data: &[f64]) -> Vec<u8> {
    let payload: Vec<u8> = data.iter().flat_map(|v| v.to_le_bytes()).collect();
    encode("<f8", &[data.len()], &payload)
}

/// Writes a C-order little-endian float32 `.npy` file (version 1.0).
pub fn write_f32(path: &Path, shape: &[usize], data: &[f32]) -> std::io::Result<()> {
    std::fs::write(path, encode_f32(shape, data))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip_f32() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.npy");
        let data: Vec<f32> = (0..24).map(|i| i as f32 * 0.5).collect();
        write_f32(&p, &[2, 3, 4], &data).unwrap();
        let a = read_features(&p, Some(4)).unwrap();
        assert_eq!(a.shape(), &[2, 3, 4]);
        assert_eq!(a[[1, 2, 3]], 11.5);
    }

    #[test]
    fn float64_and_rank2_accepted() {
        let data: Vec<u8> = [1.0f64, 2.0, 3.0, 4.0].iter().flat_map(|v| v.to_le_bytes()).collect();
        let arr = parse(Path::new("x.npy"), &encode("<f8", &[2, 2], &data)).unwrap();
        assert_eq!(arr.shape, vec![2, 2]);
        assert_eq!(arr.into_f64(), vec![1.0, 2.0, 3.0, 4.0]);
    }

    #[test]
    fn big_endian_decoded() {
        let data: Vec<u8> = [1.5f32, -2.0].iter().flat_map(|v| v.to_be_bytes()).collect();
        let arr = parse(Path::new("x.npy"), &encode(">f4", &[2], &data)).unwrap();
        assert_eq!(arr.into_f64(), vec![1.5, -2.0]);
    }

    #[test]
    fn object_array_refused() {
        let err = parse(Path::new("o.npy"), &encode("|O", &[1], &[0; 8])).unwrap_err();
        assert!(matches!(err, NpyError::Dtype { .. }), "{err}");
        assert!(err.to_string().contains("object"));
    }

    #[test]
    fn truncated_data_refused() {
        let err = parse(Path::new("t.npy"), &encode("<f4", &[4, 1, 2], &[0; 12])).unwrap_err();
        assert!(err.to_string().contains("truncated"), "{err}");
    }

    #[test]
    fn not_npy_refused() {
        let err = parse(Path::new("t.npy"), b"hello world, not numpy").unwrap_err();
        assert!(matches!(err, NpyError::Format { .. }));
    }

    #[test]
    fn wrong_width_and_rank_refused() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("w.npy");
        write_f32(&p, &[3, 1, 8], &[0.0; 24]).unwrap();
        let err = read_features(&p, Some(16)).unwrap_err();
        assert!(err.to_string().contains("[T, crops, 16]"), "{err}");
        write_f32(&p, &[24], &[0.0; 24]).unwrap();
        assert!(matches!(read_features(&p, None), Err(NpyError::Shape { .. })));
        write_f32(&p, &[0, 1, 8], &[]).unwrap();
        assert!(matches!(read_features(&p, None), Err(NpyError::Shape { .. })));
    }

    #[test]
    fn int_features_refused() {
        let err = parse(Path::new("i.npy"), &encode("<i4", &[1, 1, 1], &[0; 4])).unwrap();
        assert_eq!(err.dtype, "<i4");
    }
}
