//! A minimal, non-executing unpickler for the opcodes `torch.save` emits (protocols 2 to 4):
//! enough to read a state_dict's structure, never enough to run code. It owns only the
//! translation of pickle bytes into a `Value` tree; what the tree means (tensors, storages) is
//! `checkpoint`'s business.
//!
//! Candle has a pickle reader too, but it can panic on hostile input (a LONG1 wider than eight
//! bytes overflows its shift, which is exactly how the legacy format's magic number is stored)
//! and a checkpoint importer must turn every corrupt file into an error, so this one checks every
//! length against the bytes that remain.

use std::collections::HashMap;

/// A decoded pickle value. Classes are kept by name; nothing is ever instantiated.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Value {
    None,
    Bool(bool),
    Int(i64),
    /// An integer too wide for i64 (torch's legacy magic number); little-endian two's complement.
    BigInt(Vec<u8>),
    Float(f64),
    Str(String),
    Bytes(Vec<u8>),
    Tuple(Vec<Value>),
    List(Vec<Value>),
    Dict(Vec<(Value, Value)>),
    Global {
        module: String,
        name: String,
    },
    /// `callable(*args)`, unevaluated.
    Reduce {
        callable: Box<Value>,
        args: Box<Value>,
    },
    /// `obj.__setstate__(state)` for objects other than dicts, unevaluated.
    Build {
        obj: Box<Value>,
        state: Box<Value>,
    },
    /// A persistent id (torch uses it for storages).
    Persistent(Box<Value>),
    Mark,
}

impl Value {
    pub(crate) fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }
    pub(crate) fn as_int(&self) -> Option<i64> {
        match self {
            Value::Int(i) => Some(*i),
            Value::Bool(b) => Some(i64::from(*b)),
            _ => None,
        }
    }
}

/// Reads one pickle starting at `*pos`, leaving `*pos` just after its STOP opcode.
pub(crate) fn read(bytes: &[u8], pos: &mut usize) -> Result<Value, String> {
    let mut m = Machine { bytes, pos: *pos, stack: Vec::new(), memo: HashMap::new() };
    let v = m.run()?;
    *pos = m.pos;
    Ok(v)
}

struct Machine<'a> {
    bytes: &'a [u8],
    pos: usize,
    stack: Vec<Value>,
    memo: HashMap<u32, Value>,
}

impl Machine<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], String> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.bytes.len()).ok_or_else(|| {
            format!("truncated pickle: needs {n} bytes at offset {}, file has {}", self.pos, self.bytes.len())
        })?;
        let s = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(s)
    }
    fn u8(&mut self) -> Result<u8, String> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> Result<u16, String> {
        let b = self.take(2)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }
    fn u32(&mut self) -> Result<u32, String> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn u64(&mut self) -> Result<u64, String> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_le_bytes(a))
    }
    fn line(&mut self) -> Result<String, String> {
        let rest = &self.bytes[self.pos.min(self.bytes.len())..];
        let n = rest.iter().position(|&b| b == b'\n').ok_or("truncated pickle: unterminated GLOBAL name")?;
        let s = String::from_utf8(rest[..n].to_vec()).map_err(|_| "GLOBAL name is not UTF-8")?;
        self.pos += n + 1;
        Ok(s)
    }
    fn len_usize(&mut self, n: u64) -> Result<usize, String> {
        usize::try_from(n).map_err(|_| format!("length {n} does not fit in memory"))
    }
    fn pop(&mut self) -> Result<Value, String> {
        self.stack.pop().ok_or_else(|| format!("pickle stack underflow at offset {}", self.pos))
    }
    fn pop_mark(&mut self) -> Result<Vec<Value>, String> {
        let i = self.stack.iter().rposition(|v| *v == Value::Mark).ok_or("pickle MARK not found")?;
        let items = self.stack.split_off(i + 1);
        self.stack.pop();
        Ok(items)
    }
    fn top(&mut self) -> Result<&mut Value, String> {
        let pos = self.pos;
        self.stack.last_mut().ok_or_else(|| format!("pickle stack underflow at offset {pos}"))
    }
    fn memo_get(&self, id: u32) -> Result<Value, String> {
        self.memo.get(&id).cloned().ok_or_else(|| format!("pickle memo entry {id} missing"))
    }
    fn memo_put(&mut self, id: u32) -> Result<(), String> {
        let v = self.stack.last().cloned().ok_or("pickle PUT on an empty stack")?;
        self.memo.insert(id, v);
        Ok(())
    }
    fn set_items(&mut self, mut items: Vec<Value>) -> Result<(), String> {
        if items.len() % 2 != 0 {
            return Err("pickle SETITEMS with an odd number of items".into());
        }
        let Value::Dict(d) = self.top()? else {
            return Err("pickle SETITEM(S) on a non-dict".into());
        };
        let mut it = items.drain(..);
        while let (Some(k), Some(v)) = (it.next(), it.next()) {
            d.push((k, v));
        }
        Ok(())
    }

    fn run(&mut self) -> Result<Value, String> {
        loop {
            let at = self.pos;
            let op = self.u8().map_err(|_| format!("truncated pickle: no STOP opcode by offset {at}"))?;
            match op {
                0x80 => {
                    let proto = self.u8()?;
                    if proto > 5 {
                        return Err(format!("unsupported pickle protocol {proto}"));
                    }
                }
                0x95 => {
                    // FRAME: a length hint only.
                    self.u64()?;
                }
                b'.' => return self.pop(),
                b'(' => self.stack.push(Value::Mark),
                b'N' => self.stack.push(Value::None),
                0x88 => self.stack.push(Value::Bool(true)),
                0x89 => self.stack.push(Value::Bool(false)),
                b'K' => {
                    let v = self.u8()?;
                    self.stack.push(Value::Int(i64::from(v)))
                }
                b'M' => {
                    let v = self.u16()?;
                    self.stack.push(Value::Int(i64::from(v)))
                }
                b'J' => {
                    let v = self.u32()? as i32;
                    self.stack.push(Value::Int(i64::from(v)))
                }
                0x8a => {
                    let n = usize::from(self.u8()?);
                    let b = self.take(n)?.to_vec();
                    self.stack.push(long_value(b));
                }
                b'G' => {
                    let b = self.take(8)?;
                    let mut a = [0u8; 8];
                    a.copy_from_slice(b);
                    // BINFLOAT is big-endian, unlike every integer opcode.
                    self.stack.push(Value::Float(f64::from_be_bytes(a)))
                }
                b'X' | 0x8c | 0x8d => {
                    let n = match op {
                        b'X' => u64::from(self.u32()?),
                        0x8c => u64::from(self.u8()?),
                        _ => self.u64()?,
                    };
                    let n = self.len_usize(n)?;
                    let s = String::from_utf8(self.take(n)?.to_vec()).map_err(|_| "pickle string is not UTF-8")?;
                    self.stack.push(Value::Str(s))
                }
                b'T' | b'U' | b'B' | b'C' | 0x8e => {
                    let n = match op {
                        b'T' | b'B' => u64::from(self.u32()?),
                        b'U' | b'C' => u64::from(self.u8()?),
                        _ => self.u64()?,
                    };
                    let n = self.len_usize(n)?;
                    let b = self.take(n)?.to_vec();
                    // Python 2 strings (T, U) are almost always ASCII names.
                    let v = if matches!(op, b'T' | b'U') {
                        String::from_utf8(b.clone()).map(Value::Str).unwrap_or(Value::Bytes(b))
                    } else {
                        Value::Bytes(b)
                    };
                    self.stack.push(v)
                }
                b'c' => {
                    let module = self.line()?;
                    let name = self.line()?;
                    self.stack.push(Value::Global { module, name })
                }
                0x93 => {
                    let name = self.pop()?;
                    let module = self.pop()?;
                    match (module, name) {
                        (Value::Str(module), Value::Str(name)) => self.stack.push(Value::Global { module, name }),
                        _ => return Err("pickle STACK_GLOBAL with non-string names".into()),
                    }
                }
                b')' => self.stack.push(Value::Tuple(Vec::new())),
                b't' => {
                    let items = self.pop_mark()?;
                    self.stack.push(Value::Tuple(items))
                }
                0x85..=0x87 => {
                    let n = usize::from(op - 0x84);
                    if self.stack.len() < n {
                        return Err(format!("pickle stack underflow at offset {at}"));
                    }
                    let items = self.stack.split_off(self.stack.len() - n);
                    self.stack.push(Value::Tuple(items))
                }
                b']' => self.stack.push(Value::List(Vec::new())),
                b'l' => {
                    let items = self.pop_mark()?;
                    self.stack.push(Value::List(items))
                }
                b'a' => {
                    let v = self.pop()?;
                    let Value::List(l) = self.top()? else {
                        return Err("pickle APPEND on a non-list".into());
                    };
                    l.push(v)
                }
                b'e' => {
                    let items = self.pop_mark()?;
                    let Value::List(l) = self.top()? else {
                        return Err("pickle APPENDS on a non-list".into());
                    };
                    l.extend(items)
                }
                b'}' => self.stack.push(Value::Dict(Vec::new())),
                b'd' => {
                    let items = self.pop_mark()?;
                    self.stack.push(Value::Dict(Vec::new()));
                    self.set_items(items)?
                }
                b's' => {
                    let v = self.pop()?;
                    let k = self.pop()?;
                    self.set_items(vec![k, v])?
                }
                b'u' => {
                    let items = self.pop_mark()?;
                    self.set_items(items)?
                }
                b'q' => {
                    let id = u32::from(self.u8()?);
                    self.memo_put(id)?
                }
                b'r' => {
                    let id = self.u32()?;
                    self.memo_put(id)?
                }
                0x94 => {
                    let id = u32::try_from(self.memo.len()).map_err(|_| "pickle memo overflow")?;
                    self.memo_put(id)?
                }
                b'h' => {
                    let id = u32::from(self.u8()?);
                    let v = self.memo_get(id)?;
                    self.stack.push(v)
                }
                b'j' => {
                    let id = self.u32()?;
                    let v = self.memo_get(id)?;
                    self.stack.push(v)
                }
                b'Q' => {
                    let id = self.pop()?;
                    self.stack.push(Value::Persistent(Box::new(id)))
                }
                b'R' | 0x81 => {
                    let args = self.pop()?;
                    let callable = self.pop()?;
                    // An OrderedDict is built empty and then filled by SETITEMS: model it as a dict.
                    let v = match &callable {
                        Value::Global { module, name } if module == "collections" && name == "OrderedDict" => {
                            Value::Dict(Vec::new())
                        }
                        _ => Value::Reduce { callable: Box::new(callable), args: Box::new(args) },
                    };
                    self.stack.push(v)
                }
                b'b' => {
                    let state = self.pop()?;
                    let obj = self.pop()?;
                    // A dict's BUILD state is its attributes (state_dict's `_metadata`), not items.
                    let v = match obj {
                        Value::Dict(_) => obj,
                        obj => Value::Build { obj: Box::new(obj), state: Box::new(state) },
                    };
                    self.stack.push(v)
                }
                b'0' => {
                    self.pop()?;
                }
                b'2' => {
                    let v = self.stack.last().cloned().ok_or("pickle DUP on an empty stack")?;
                    self.stack.push(v)
                }
                other => return Err(format!("unsupported pickle opcode 0x{other:02x} at offset {at}")),
            }
        }
    }
}

/// LONG1 payload: little-endian two's complement of any width.
fn long_value(b: Vec<u8>) -> Value {
    if b.is_empty() {
        return Value::Int(0);
    }
    if b.len() <= 8 {
        let negative = b[b.len() - 1] & 0x80 != 0;
        let mut a = if negative { [0xffu8; 8] } else { [0u8; 8] };
        a[..b.len()].copy_from_slice(&b);
        Value::Int(i64::from_le_bytes(a))
    } else {
        Value::BigInt(b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_nested_structures() {
        // pickle.dumps({'a': (1, -2, 300, 'x'), 'b': [True, None, 1.5]}, protocol=2)
        let bytes: &[u8] = b"\x80\x02}q\x00(X\x01\x00\x00\x00aq\x01(K\x01J\xfe\xff\xff\xffM,\x01X\x01\x00\x00\x00xq\x02tq\x03X\x01\x00\x00\x00bq\x04]q\x05(\x88NG?\xf8\x00\x00\x00\x00\x00\x00eu.";
        let mut pos = 0;
        let v = read(bytes, &mut pos).unwrap();
        assert_eq!(pos, bytes.len());
        let Value::Dict(d) = v else { panic!("{v:?}") };
        assert_eq!(d[0].0, Value::Str("a".into()));
        assert_eq!(d[0].1, Value::Tuple(vec![Value::Int(1), Value::Int(-2), Value::Int(300), Value::Str("x".into())]));
        assert_eq!(d[1].1, Value::List(vec![Value::Bool(true), Value::None, Value::Float(1.5)]));
    }

    #[test]
    fn reads_torch_legacy_magic_without_overflow() {
        // pickle.dumps(0x1950a86a20f9469cfc6c, protocol=2)
        let bytes: &[u8] = b"\x80\x02\x8a\x0al\xfc\x9cF\xf9 j\xa8P\x19.";
        let mut pos = 0;
        let v = read(bytes, &mut pos).unwrap();
        assert_eq!(v, Value::BigInt(vec![0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19]));
    }

    #[test]
    fn truncation_is_an_error_at_every_length() {
        let bytes: &[u8] =
            b"\x80\x02}q\x00(X\x01\x00\x00\x00aq\x01(K\x01J\xfe\xff\xff\xffM,\x01X\x01\x00\x00\x00xq\x02tq\x03u.";
        for n in 0..bytes.len() {
            let mut pos = 0;
            assert!(read(&bytes[..n], &mut pos).is_err(), "prefix of {n} bytes");
        }
    }
}
