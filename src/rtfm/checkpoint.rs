//! Import of PyTorch `torch.save(model.state_dict())` files of the reference RTFM model, in both
//! the zip format (PyTorch >= 1.6) and the legacy pre-1.6 stream of pickles, which candle does
//! not read. This module owns file parsing and validation against the reference names and
//! shapes; it returns plain f32 tensors and leaves building the network to `net`.
//!
//! Nothing in a checkpoint is trusted: every length, offset and stride is checked against the
//! bytes actually present, so a corrupt or truncated file is a `CheckpointError::Read` naming the
//! reason, never a panic or an attempt to allocate what the file merely claims.

use super::pickle::{self, Value};
use super::{CheckpointError, RtfmWidths};
use candle_core::{DType, Device, Tensor};
use std::collections::{BTreeMap, HashMap};
use std::io::Read;
use std::path::Path;

/// A checkpoint read and validated: its widths (inferred from tensor shapes) and tensors.
pub struct ImportedCheckpoint {
    pub widths: RtfmWidths,
    /// The 42 float tensors, f32, under the reference names (no `module.` prefix), sorted.
    pub tensors: Vec<(String, candle_core::Tensor)>,
}

/// The legacy format's first pickle is this integer.
const LEGACY_MAGIC: u128 = 0x1950a86a20f9469cfc6c;
/// The legacy format's second pickle.
const LEGACY_PROTOCOL_VERSION: i64 = 1001;

/// Where a tensor's elements live: a storage (by key), an element offset, a size and strides.
#[derive(Debug, Clone)]
struct TensorRef {
    storage_key: String,
    storage_type: String,
    /// Element offset of a legacy storage view inside its root storage, plus the tensor's own.
    offset: usize,
    size: Vec<usize>,
    stride: Vec<usize>,
}

/// Reads a `torch.save(state_dict)` file (zip or legacy format) with the 47 reference names.
pub fn import_checkpoint(path: &Path) -> Result<ImportedCheckpoint, CheckpointError> {
    let shown = path.display().to_string();
    let read_err = |reason: String| CheckpointError::Read { path: shown.clone(), reason };
    let bytes = std::fs::read(path).map_err(|e| read_err(format!("cannot read: {e}")))?;
    let (entries, storages) = if bytes.starts_with(b"PK\x03\x04") {
        read_zip(&bytes).map_err(read_err)?
    } else {
        read_legacy(&bytes).map_err(read_err)?
    };
    validate_and_build(&shown, entries, &storages)
}

/// Storage bytes by key, each with its element size.
type Storages = HashMap<String, Vec<u8>>;

fn read_zip(bytes: &[u8]) -> Result<(Vec<(String, TensorRef)>, Storages), String> {
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(bytes))
        .map_err(|e| format!("zip-format checkpoint is unreadable (truncated or corrupt?): {e}"))?;
    let pkl_names: Vec<String> = zip.file_names().filter(|n| n.ends_with("data.pkl")).map(str::to_string).collect();
    let pkl_name = match pkl_names.as_slice() {
        [one] => one.clone(),
        [] => return Err("zip archive has no data.pkl: not a torch.save file".into()),
        many => return Err(format!("zip archive has several data.pkl entries: {many:?}")),
    };
    let prefix = pkl_name.trim_end_matches("data.pkl").to_string();
    let pkl = read_entry(&mut zip, &pkl_name)?;
    let mut pos = 0;
    let root = pickle::read(&pkl, &mut pos).map_err(|e| format!("{pkl_name}: {e}"))?;
    let entries = state_dict_entries(root)?;
    let mut storages = Storages::new();
    for (name, t) in &entries {
        if name.ends_with("num_batches_tracked") || storages.contains_key(&t.storage_key) {
            continue;
        }
        let entry = format!("{prefix}data/{}", t.storage_key);
        let data = read_entry(&mut zip, &entry).map_err(|e| format!("tensor {name}: {e}"))?;
        storages.insert(t.storage_key.clone(), data);
    }
    Ok((entries, storages))
}

fn read_entry(zip: &mut zip::ZipArchive<std::io::Cursor<&[u8]>>, name: &str) -> Result<Vec<u8>, String> {
    let mut f = zip.by_name(name).map_err(|e| format!("zip entry {name}: {e}"))?;
    // The declared size is a claim, not a fact: cap the pre-allocation and let read_to_end grow.
    let mut out = Vec::with_capacity(usize::try_from(f.size()).unwrap_or(0).min(1 << 28));
    f.read_to_end(&mut out).map_err(|e| format!("zip entry {name} is unreadable (truncated or corrupt?): {e}"))?;
    Ok(out)
}

fn read_legacy(bytes: &[u8]) -> Result<(Vec<(String, TensorRef)>, Storages), String> {
    let mut pos = 0;
    let not_torch = "neither a zip archive nor a legacy torch.save stream";
    let magic = pickle::read(bytes, &mut pos).map_err(|e| format!("{not_torch} ({e})"))?;
    let is_magic = match &magic {
        Value::BigInt(b) if b.len() <= 16 => {
            let mut a = [0u8; 16];
            a[..b.len()].copy_from_slice(b);
            u128::from_le_bytes(a) == LEGACY_MAGIC
        }
        _ => false,
    };
    if !is_magic {
        return Err(format!("{not_torch} (first pickle is {magic:?}, not the legacy magic number)"));
    }
    let version = pickle::read(bytes, &mut pos).map_err(|e| format!("legacy protocol version: {e}"))?;
    if version.as_int() != Some(LEGACY_PROTOCOL_VERSION) {
        return Err(format!("legacy protocol version {version:?}, expected {LEGACY_PROTOCOL_VERSION}"));
    }
    let sys_info = pickle::read(bytes, &mut pos).map_err(|e| format!("legacy sys_info: {e}"))?;
    if let Value::Dict(items) = &sys_info {
        let big_endian = items.iter().any(|(k, v)| k.as_str() == Some("little_endian") && *v == Value::Bool(false));
        if big_endian {
            return Err("checkpoint was written on a big-endian machine; only little-endian data is supported".into());
        }
    }
    let root = pickle::read(bytes, &mut pos).map_err(|e| format!("legacy state_dict pickle: {e}"))?;
    let entries = state_dict_entries(root)?;
    let keys = pickle::read(bytes, &mut pos).map_err(|e| format!("legacy storage key list: {e}"))?;
    let Value::List(keys) = keys else { return Err(format!("legacy storage key list is {keys:?}, not a list")) };

    // The data section gives only element counts, so the element size comes from the storage
    // type the tensors named for that key.
    let mut types: HashMap<&str, &str> = HashMap::new();
    for (_, t) in &entries {
        types.insert(&t.storage_key, &t.storage_type);
    }
    let mut storages = Storages::new();
    for key in keys {
        let key = match key {
            Value::Str(s) => s,
            other => return Err(format!("legacy storage key {other:?} is not a string")),
        };
        let ty = types.get(key.as_str()).ok_or_else(|| format!("storage {key} is not used by any tensor"))?;
        let elem = element_size(ty).ok_or_else(|| format!("storage {key} has unsupported type {ty}"))?;
        let count_bytes = bytes
            .get(pos..pos + 8)
            .ok_or_else(|| format!("truncated: storage {key}'s element count is missing at offset {pos}"))?;
        let mut c = [0u8; 8];
        c.copy_from_slice(count_bytes);
        let count = u64::from_le_bytes(c);
        pos += 8;
        let len = usize::try_from(count)
            .ok()
            .and_then(|n| n.checked_mul(elem))
            .filter(|&n| n <= bytes.len() - pos)
            .ok_or_else(|| {
                format!(
                    "truncated: storage {key} declares {count} elements of {elem} bytes at offset {pos}, {} bytes remain",
                    bytes.len() - pos
                )
            })?;
        storages.insert(key, bytes[pos..pos + len].to_vec());
        pos += len;
    }
    Ok((entries, storages))
}

/// Bytes per element of a torch storage class.
fn element_size(storage_type: &str) -> Option<usize> {
    Some(match storage_type {
        "DoubleStorage" | "LongStorage" => 8,
        "FloatStorage" | "IntStorage" => 4,
        "HalfStorage" | "BFloat16Storage" | "ShortStorage" => 2,
        "ByteStorage" | "CharStorage" | "BoolStorage" => 1,
        _ => return None,
    })
}

fn float_dtype(storage_type: &str) -> Option<DType> {
    Some(match storage_type {
        "FloatStorage" => DType::F32,
        "DoubleStorage" => DType::F64,
        "HalfStorage" => DType::F16,
        "BFloat16Storage" => DType::BF16,
        _ => return None,
    })
}

/// The (name, tensor) entries of a state_dict pickle. Accepts a bare state_dict or a training
/// checkpoint dict that holds one under `state_dict`.
fn state_dict_entries(root: Value) -> Result<Vec<(String, TensorRef)>, String> {
    let Value::Dict(items) = root else {
        return Err(format!("top-level object is not a state_dict (a dict of tensors): {}", short(&root)));
    };
    if let Some((_, Value::Dict(_))) = items.iter().find(|(k, _)| k.as_str() == Some("state_dict")) {
        let inner = items.into_iter().find(|(k, _)| k.as_str() == Some("state_dict")).map(|(_, v)| v);
        return state_dict_entries(inner.unwrap_or(Value::None));
    }
    items
        .into_iter()
        .map(|(k, v)| {
            let name = k.as_str().ok_or_else(|| format!("state_dict key {} is not a string", short(&k)))?.to_string();
            let t = tensor_ref(v).map_err(|e| format!("entry {name}: {e}"))?;
            Ok((name, t))
        })
        .collect()
}

/// A bounded debug rendering for error messages.
fn short(v: &Value) -> String {
    let s = format!("{v:?}");
    if s.len() > 120 {
        format!("{}...", &s[..s.char_indices().nth(117).map_or(s.len(), |(i, _)| i)])
    } else {
        s
    }
}

/// Decodes `torch._utils._rebuild_tensor_v2(storage, offset, size, stride, ...)`, possibly
/// wrapped in `_rebuild_parameter`.
fn tensor_ref(v: Value) -> Result<TensorRef, String> {
    let Value::Reduce { callable, args } = v else { return Err(format!("not a tensor: {}", short(&v))) };
    let Value::Global { module, name } = *callable else { return Err("not a tensor: callable is not a global".into()) };
    let Value::Tuple(mut args) = *args else { return Err("tensor arguments are not a tuple".into()) };
    match (module.as_str(), name.as_str()) {
        ("torch._utils", "_rebuild_parameter") if !args.is_empty() => tensor_ref(args.swap_remove(0)),
        ("torch._utils", "_rebuild_tensor_v2") | ("torch._utils", "_rebuild_tensor") if args.len() >= 4 => {
            let stride = int_tuple(&args[3]).ok_or("tensor stride is not a tuple of integers")?;
            let size = int_tuple(&args[2]).ok_or("tensor size is not a tuple of integers")?;
            if size.len() != stride.len() {
                return Err(format!("tensor size {size:?} and stride {stride:?} differ in rank"));
            }
            let offset = args[1]
                .as_int()
                .and_then(|o| usize::try_from(o).ok())
                .ok_or("tensor offset is not a non-negative integer")?;
            let Value::Persistent(pid) = std::mem::replace(&mut args[0], Value::None) else {
                return Err("tensor storage is not a persistent reference".into());
            };
            let Value::Tuple(pid) = *pid else { return Err("storage reference is not a tuple".into()) };
            // ('storage', storage_type, key, location, numel[, view_metadata])
            if pid.len() < 5 || pid[0].as_str() != Some("storage") {
                return Err(format!(
                    "storage reference {} is not ('storage', type, key, location, numel)",
                    short(&Value::Tuple(pid))
                ));
            }
            let storage_type = match &pid[1] {
                Value::Global { name, .. } => name.clone(),
                other => return Err(format!("storage type {} is not a class", short(other))),
            };
            let key = pid[2].as_str().ok_or("storage key is not a string")?.to_string();
            let mut offset = offset;
            // Legacy storage views: (view_key, element offset, view_size) inside the root storage.
            if let Some(Value::Tuple(view)) = pid.get(5) {
                let view_offset = view.get(1).and_then(Value::as_int).and_then(|o| usize::try_from(o).ok());
                offset = view_offset.and_then(|v| v.checked_add(offset)).ok_or("storage view offset is invalid")?;
            }
            Ok(TensorRef { storage_key: key, storage_type, offset, size, stride })
        }
        _ => Err(format!("not a tensor: built by {module}.{name}")),
    }
}

fn int_tuple(v: &Value) -> Option<Vec<usize>> {
    match v {
        Value::Tuple(items) => items.iter().map(|i| i.as_int().and_then(|x| usize::try_from(x).ok())).collect(),
        _ => None,
    }
}

/// Gathers a tensor's elements (any strides) from its storage and converts them to f32.
fn materialise(name: &str, t: &TensorRef, storages: &Storages) -> Result<Tensor, String> {
    let dtype = float_dtype(&t.storage_type)
        .ok_or_else(|| format!("tensor {name} is stored as {}, expected a floating-point storage", t.storage_type))?;
    let elem = dtype.size_in_bytes();
    let data =
        storages.get(&t.storage_key).ok_or_else(|| format!("tensor {name}: storage {} is missing", t.storage_key))?;
    let storage_len = data.len() / elem;
    let numel: usize = t.size.iter().try_fold(1usize, |a, &s| a.checked_mul(s)).ok_or("tensor size overflows")?;
    let out_of_bounds = || {
        format!(
            "tensor {name}: size {:?} stride {:?} offset {} reach past its storage of {storage_len} elements",
            t.size, t.stride, t.offset
        )
    };
    if numel > 0 {
        // The furthest element read bounds every index, so checking it once makes the loop safe.
        let last = t
            .size
            .iter()
            .zip(&t.stride)
            .try_fold(t.offset, |a, (&s, &st)| (s - 1).checked_mul(st).and_then(|x| a.checked_add(x)));
        if last.is_none_or(|l| l >= storage_len) {
            return Err(out_of_bounds());
        }
    }
    let mut gathered = Vec::with_capacity(numel * elem);
    let mut index = vec![0usize; t.size.len()];
    for _ in 0..numel {
        let e = t.offset + index.iter().zip(&t.stride).map(|(i, s)| i * s).sum::<usize>();
        gathered.extend_from_slice(&data[e * elem..(e + 1) * elem]);
        // Odometer increment, last axis fastest: row-major order as the shape describes.
        for axis in (0..index.len()).rev() {
            index[axis] += 1;
            if index[axis] < t.size[axis] {
                break;
            }
            index[axis] = 0;
        }
    }
    Tensor::from_raw_buffer(&gathered, dtype, &t.size, &Device::Cpu)
        .and_then(|x| x.to_dtype(DType::F32))
        .map_err(|e| format!("tensor {name}: {e}"))
}

/// Symbolic widths: distinct primes stand in for D, C, NL, H1, H2 so that each dimension of the
/// reference table says which width it carries (the kernel sizes 1 and 3 never collide with them).
const SYMBOLS: RtfmWidths = RtfmWidths {
    feature_dim: 1_000_003,
    temporal_width: 1_000_033,
    nonlocal_width: 1_000_037,
    head: [1_000_039, 1_000_081],
};

/// Infers the widths by majority vote over every dimension that carries each width, so one
/// mis-shaped tensor is reported as that tensor rather than making every other tensor look wrong.
fn infer_widths(shapes: &HashMap<&str, Vec<usize>>) -> RtfmWidths {
    let mut votes: HashMap<usize, BTreeMap<usize, usize>> = HashMap::new();
    for (name, symbolic) in SYMBOLS.tensor_shapes() {
        let Some(got) = shapes.get(name.as_str()) else { continue };
        if got.len() != symbolic.len() {
            continue;
        }
        for (&sym, &value) in symbolic.iter().zip(got) {
            if sym > 3 {
                *votes.entry(sym).or_default().entry(value).or_default() += 1;
            }
        }
    }
    let pick = |sym: usize| {
        votes
            .get(&sym)
            .and_then(|v| v.iter().max_by_key(|(value, count)| (**count, usize::MAX - **value)))
            .map_or(0, |(v, _)| *v)
    };
    RtfmWidths {
        feature_dim: pick(SYMBOLS.feature_dim),
        temporal_width: pick(SYMBOLS.temporal_width),
        nonlocal_width: pick(SYMBOLS.nonlocal_width),
        head: [pick(SYMBOLS.head[0]), pick(SYMBOLS.head[1])],
    }
}

fn validate_and_build(
    path: &str,
    entries: Vec<(String, TensorRef)>,
    storages: &Storages,
) -> Result<ImportedCheckpoint, CheckpointError> {
    let read_err = |reason: String| CheckpointError::Read { path: path.to_string(), reason };
    // Names only: the table's names do not depend on the widths.
    let expected_names: Vec<String> = RtfmWidths::REFERENCE.tensor_shapes().into_iter().map(|(n, _)| n).collect();
    let bn_counters: Vec<String> = expected_names
        .iter()
        .filter_map(|n| n.strip_suffix(".running_mean").map(|p| format!("{p}.num_batches_tracked")))
        .collect();

    let mut refs: BTreeMap<String, TensorRef> = BTreeMap::new();
    let mut extra = Vec::new();
    for (raw, t) in entries {
        // nn.DataParallel saves every name under `module.`.
        let name = raw.strip_prefix("module.").unwrap_or(&raw).to_string();
        if bn_counters.contains(&name) {
            continue;
        }
        if !expected_names.contains(&name) {
            extra.push(raw);
            continue;
        }
        if refs.insert(name.clone(), t).is_some() {
            return Err(read_err(format!("tensor {name} appears twice (with and without the `module.` prefix?)")));
        }
    }
    if !extra.is_empty() {
        extra.sort();
        return Err(CheckpointError::Extra { path: path.to_string(), extra });
    }
    let missing: Vec<String> = expected_names.iter().filter(|n| !refs.contains_key(*n)).cloned().collect();
    if !missing.is_empty() {
        return Err(CheckpointError::Missing { path: path.to_string(), missing });
    }

    let shapes: HashMap<&str, Vec<usize>> = refs.iter().map(|(n, t)| (n.as_str(), t.size.clone())).collect();
    let widths = infer_widths(&shapes);
    for (name, want) in widths.tensor_shapes() {
        let got = &refs[&name].size;
        if *got != want {
            return Err(CheckpointError::Shape { path: path.to_string(), name, got: got.clone(), expected: want });
        }
    }
    if widths.validate().is_err() {
        // Every shape agrees with the widths, but the concatenation of the four branches (4 C
        // channels) is not as wide as the residual input (D): conv_5 cannot take it.
        let name = "Aggregate.conv_5.0.weight".to_string();
        let got = refs[&name].size.clone();
        let expected = vec![widths.feature_dim, 4 * widths.temporal_width, 3];
        return Err(CheckpointError::Shape { path: path.to_string(), name, got, expected });
    }
    let mut tensors = Vec::with_capacity(refs.len());
    for (name, t) in &refs {
        tensors.push((name.clone(), materialise(name, t, storages).map_err(read_err)?));
    }
    Ok(ImportedCheckpoint { widths, tensors })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn widths_are_inferred_by_majority_despite_one_bad_tensor() {
        let widths = RtfmWidths { feature_dim: 64, temporal_width: 16, nonlocal_width: 8, head: [32, 16] };
        let mut shapes: Vec<(String, Vec<usize>)> = widths.tensor_shapes();
        // One conv_1 weight with a wrong input width must not change the inferred D.
        for (name, shape) in &mut shapes {
            if name == "Aggregate.conv_1.0.weight" {
                shape[1] = 63;
            }
        }
        let map: HashMap<&str, Vec<usize>> = shapes.iter().map(|(n, s)| (n.as_str(), s.clone())).collect();
        assert_eq!(infer_widths(&map), widths);
        assert_eq!(infer_widths(&HashMap::new()).feature_dim, 0);
    }

    #[test]
    fn strided_tensors_are_gathered_in_row_major_order() {
        // A 2 x 3 tensor stored transposed (stride [1, 2]) at element offset 1.
        let data: Vec<u8> = (0..7).flat_map(|i| (i as f32).to_le_bytes()).collect();
        let storages = Storages::from([("k".to_string(), data)]);
        let t = TensorRef {
            storage_key: "k".into(),
            storage_type: "FloatStorage".into(),
            offset: 1,
            size: vec![2, 3],
            stride: vec![1, 2],
        };
        let x = materialise("x", &t, &storages).unwrap().to_vec2::<f32>().unwrap();
        assert_eq!(x, vec![vec![1.0, 3.0, 5.0], vec![2.0, 4.0, 6.0]]);
        let past_end = TensorRef { offset: 2, ..t };
        assert!(materialise("x", &past_end, &storages).unwrap_err().contains("past its storage"));
    }
}
