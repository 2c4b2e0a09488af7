//! The JSON-lines sink: one event per line on stdout or appended to a file. Not durable beyond
//! the write itself (no outbox): it is the local log, not a delivery channel.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::alert::AlertEvent;

use super::{Sink, SinkError};

/// JSON lines to stdout (`path = "-"`) or a file.
pub struct JsonlSink {
    path: PathBuf,
    out: Box<dyn Write + Send>,
}

impl JsonlSink {
    /// `"-"` is stdout; anything else is opened for append (created if missing).
    pub fn open(path: impl AsRef<Path>) -> Result<JsonlSink, SinkError> {
        let path = path.as_ref().to_path_buf();
        let out: Box<dyn Write + Send> = if path.as_os_str() == "-" {
            Box::new(std::io::stdout())
        } else {
            Box::new(
                OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&path)
                    .map_err(|source| SinkError::Jsonl { path: path.clone(), source })?,
            )
        };
        Ok(JsonlSink { path, out })
    }

    /// A sink writing to any writer (tests, golden files).
    pub fn to_writer(out: Box<dyn Write + Send>) -> JsonlSink {
        JsonlSink { path: PathBuf::from("<writer>"), out }
    }
}

impl Sink for JsonlSink {
    fn name(&self) -> &'static str {
        "jsonl"
    }

    fn send(&mut self, ev: &AlertEvent) -> Result<(), SinkError> {
        let mut line = serde_json::to_vec(ev).map_err(SinkError::Encode)?;
        line.push(b'\n');
        // One write per line so concurrent appenders do not interleave within a line.
        self.out
            .write_all(&line)
            .and_then(|()| self.out.flush())
            .map_err(|source| SinkError::Jsonl { path: self.path.clone(), source })
    }

    fn flush(&mut self, _timeout: Duration) -> Result<(), SinkError> {
        self.out.flush().map_err(|source| SinkError::Jsonl { path: self.path.clone(), source })
    }
}
