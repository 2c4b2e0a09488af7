//! The on-disk outbox: a durable FIFO of alert events for one sink.
//!
//! One file per event, `<seq:020>-<id>.json` (the sequence number makes names sort in arrival
//! order; the id makes them readable), written to a `.tmp` name, fsynced, renamed, and the
//! directory fsynced, so a crash leaves either the whole event or nothing. A file is removed
//! only when the sink reports delivery acknowledged ([`Outbox::ack`]). On open, stray temp
//! files are deleted and pending files are queued again in sequence order: a restart delivers
//! what the previous run did not. The outbox knows files, not networks.

use std::collections::VecDeque;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use crate::alert::AlertEvent;
use crate::telemetry::SinkMetrics;

use super::SinkError;

/// One pending event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxEntry {
    /// Position in the outbox; strictly increasing, also across restarts.
    pub seq: u64,
    /// The event id (from the file name).
    pub id: String,
    pub path: PathBuf,
}

/// A durable queue of events in one directory.
#[derive(Debug)]
pub struct Outbox {
    dir: PathBuf,
    next_seq: u64,
    pending: VecDeque<OutboxEntry>,
    max_events: usize,
    metrics: Option<Arc<SinkMetrics>>,
}

fn io_err<'a>(path: &'a Path, what: &'static str) -> impl FnOnce(std::io::Error) -> SinkError + 'a {
    move |source| SinkError::Outbox { path: path.to_path_buf(), what, source }
}

impl Outbox {
    /// Opens (creating) `dir`, removes leftover temp files and queues the pending events.
    pub fn open(dir: impl Into<PathBuf>, max_events: usize) -> Result<Outbox, SinkError> {
        let dir = dir.into();
        fs::create_dir_all(&dir).map_err(io_err(&dir, "creating outbox directory"))?;
        let mut pending = Vec::new();
        for entry in fs::read_dir(&dir).map_err(io_err(&dir, "listing outbox"))? {
            let entry = entry.map_err(io_err(&dir, "listing outbox"))?;
            let path = entry.path();
            let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
                continue;
            };
            if name.ends_with(".tmp") {
                // An interrupted write: the event was never acknowledged to the caller.
                fs::remove_file(&path).map_err(io_err(&path, "removing temp file"))?;
                continue;
            }
            let Some(stem) = name.strip_suffix(".json") else {
                continue;
            };
            let Some((seq, id)) = stem.split_once('-') else {
                continue;
            };
            let Ok(seq) = seq.parse::<u64>() else {
                continue;
            };
            pending.push(OutboxEntry { seq, id: id.to_string(), path });
        }
        pending.sort_by_key(|e| e.seq);
        let next_seq = pending.last().map_or(1, |e| e.seq + 1);
        Ok(Outbox { dir, next_seq, pending: pending.into(), max_events: max_events.max(1), metrics: None })
    }

    /// Counts pushes and acks in `m` (events found pending at open count as pushed).
    pub fn set_metrics(&mut self, m: Arc<SinkMetrics>) {
        m.enqueued.fetch_add(self.pending.len() as u64, Ordering::Relaxed);
        self.metrics = Some(m);
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Undelivered events.
    pub fn depth(&self) -> usize {
        self.pending.len()
    }

    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }

    /// Pending events, oldest first.
    pub fn pending(&self) -> impl Iterator<Item = &OutboxEntry> {
        self.pending.iter()
    }

    /// The pending entry at `index` (0 = oldest).
    pub fn get(&self, index: usize) -> Option<&OutboxEntry> {
        self.pending.get(index)
    }

    /// Durably stores `ev`; returns its sequence number. Refuses when `max_events` are pending.
    pub fn push(&mut self, ev: &AlertEvent) -> Result<u64, SinkError> {
        if self.pending.len() >= self.max_events {
            if let Some(m) = &self.metrics {
                m.refused.fetch_add(1, Ordering::Relaxed);
            }
            return Err(SinkError::OutboxFull { dir: self.dir.clone(), max: self.max_events });
        }
        let body = serde_json::to_vec(ev).map_err(SinkError::Encode)?;
        let seq = self.next_seq;
        // The id goes into a file name: keep it to safe characters.
        let id: String = ev
            .id
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '_' })
            .take(64)
            .collect();
        let name = format!("{seq:020}-{id}.json");
        let path = self.dir.join(&name);
        let tmp = self.dir.join(format!("{name}.tmp"));
        {
            let mut f = fs::File::create(&tmp).map_err(io_err(&tmp, "creating"))?;
            f.write_all(&body).map_err(io_err(&tmp, "writing"))?;
            f.sync_all().map_err(io_err(&tmp, "syncing"))?;
        }
        fs::rename(&tmp, &path).map_err(io_err(&path, "renaming into place"))?;
        sync_dir(&self.dir)?;
        self.next_seq += 1;
        self.pending.push_back(OutboxEntry { seq, id, path });
        if let Some(m) = &self.metrics {
            m.enqueued.fetch_add(1, Ordering::Relaxed);
        }
        Ok(seq)
    }

    /// The stored JSON of `entry`.
    pub fn read(&self, entry: &OutboxEntry) -> Result<Vec<u8>, SinkError> {
        fs::read(&entry.path).map_err(io_err(&entry.path, "reading"))
    }

    /// Delivery of `seq` is acknowledged: forget it. Unknown (already acked) `seq`s are ignored,
    /// since a resent event may be acknowledged twice.
    pub fn ack(&mut self, seq: u64) -> Result<(), SinkError> {
        let Some(pos) = self.pending.iter().position(|e| e.seq == seq) else {
            return Ok(());
        };
        let Some(e) = self.pending.remove(pos) else {
            return Ok(());
        };
        match fs::remove_file(&e.path) {
            Ok(()) => {}
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
            Err(err) => {
                // Keep it queued: the file is still there and would come back on restart.
                self.pending.insert(pos, e.clone());
                return Err(io_err(&e.path, "removing delivered event")(err));
            }
        }
        if let Some(m) = &self.metrics {
            m.delivered.fetch_add(1, Ordering::Relaxed);
        }
        Ok(())
    }
}

fn sync_dir(dir: &Path) -> Result<(), SinkError> {
    // Makes the rename durable; directories open read-only on Unix.
    fs::File::open(dir).and_then(|d| d.sync_all()).map_err(io_err(dir, "syncing outbox directory"))
}
