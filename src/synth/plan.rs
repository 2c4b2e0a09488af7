//! The catalogue: which videos exist, their split, part, length, fps and event window, decided
//! from the seed alone before any pixel is drawn. Ground truth and lists come from here, so they
//! are exact by construction and renderers only have to honour the windows they are handed.

use super::rng::Rng;
use super::SynthSize;

/// Kinds of injected anomaly. Each is rendered on real footage and on procedural scenes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EventKind {
    /// A person crossing several times faster than walkers.
    Runner,
    /// The whole scene plays several times too fast (frames skipped).
    SpeedUp,
    /// Erratic jittering motion in one region (a fight).
    Scuffle,
    /// Someone moving against (or across) the dominant flow.
    CounterFlow,
    /// A walker falls, lies on the ground, gets up.
    Fall,
    /// A car driving through the pedestrian area.
    Vehicle,
    /// Camera tampering: the whole frame shaken.
    Shake,
    /// Camera tampering: something covers much of the lens.
    Occlusion,
    /// Camera tampering: strong defocus blur.
    Defocus,
}

impl EventKind {
    pub const ALL: [EventKind; 9] = [
        EventKind::Runner,
        EventKind::SpeedUp,
        EventKind::Scuffle,
        EventKind::CounterFlow,
        EventKind::Fall,
        EventKind::Vehicle,
        EventKind::Shake,
        EventKind::Occlusion,
        EventKind::Defocus,
    ];

    /// The name used in file names, labels.csv and gt JSON.
    pub fn name(self) -> &'static str {
        match self {
            EventKind::Runner => "runner",
            EventKind::SpeedUp => "speedup",
            EventKind::Scuffle => "scuffle",
            EventKind::CounterFlow => "counterflow",
            EventKind::Fall => "fall",
            EventKind::Vehicle => "vehicle",
            EventKind::Shake => "shake",
            EventKind::Occlusion => "occlusion",
            EventKind::Defocus => "defocus",
        }
    }

    /// Event duration range in seconds. Crossing events are short because their speed is what
    /// makes them abnormal; the rest span the 2..8 s range of real incidents.
    fn seconds(self) -> (f64, f64) {
        match self {
            EventKind::Runner => (1.5, 3.5),
            EventKind::Vehicle => (1.5, 4.0),
            EventKind::CounterFlow => (4.0, 8.0),
            EventKind::Fall => (2.5, 7.0),
            EventKind::SpeedUp => (2.0, 6.0),
            _ => (2.0, 8.0),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Split {
    Train,
    Val,
    Test,
}

impl Split {
    pub fn name(self) -> &'static str {
        match self {
            Split::Train => "train",
            Split::Val => "val",
            Split::Test => "test",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    Real,
    Procedural,
}

impl Part {
    pub fn name(self) -> &'static str {
        match self {
            Part::Real => "real",
            Part::Procedural => "proc",
        }
    }
}

/// One injected event: frames `start..end` (half-open) are abnormal.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Event {
    pub kind: EventKind,
    pub start: usize,
    pub end: usize,
    /// Speed-up factor (frames advanced per output frame) for [`EventKind::SpeedUp`], else 1.
    pub factor: usize,
}

/// Everything needed to render one video, and to label it.
#[derive(Debug, Clone)]
pub struct VideoSpec {
    pub name: String,
    pub split: Split,
    pub part: Part,
    pub event: Option<Event>,
    pub frames: usize,
    pub fps: f64,
    pub width: usize,
    pub height: usize,
    /// Seed of this video's own generator (scene, crop, event geometry).
    pub seed: u64,
    /// Real part only: first source frame of the clip in the cached source.
    pub source_offset: usize,
    /// Real part only: the source range `lo..hi` this split may draw from (clip and patches).
    pub source_range: (usize, usize),
}

impl VideoSpec {
    pub fn abnormal(&self) -> bool {
        self.event.is_some()
    }

    /// Per-frame 0/1 labels.
    pub fn labels(&self) -> Vec<u8> {
        let mut l = vec![0u8; self.frames];
        if let Some(e) = self.event {
            for v in &mut l[e.start.min(self.frames)..e.end.min(self.frames)] {
                *v = 1;
            }
        }
        l
    }

    /// Source frames the clip consumes (more than `frames` when a speed-up skips frames).
    pub fn source_frames(&self) -> usize {
        match self.event {
            Some(e) if e.kind == EventKind::SpeedUp => self.frames + (e.end - e.start) * (e.factor - 1),
            _ => self.frames,
        }
    }
}

/// Counts and frame geometry per size.
#[derive(Debug, Clone, Copy)]
pub struct Shape {
    pub train: (usize, usize),
    pub val: (usize, usize),
    pub test: (usize, usize),
    pub frames: (usize, usize),
    pub width: usize,
    pub height: usize,
}

impl Shape {
    pub fn of(size: SynthSize) -> Self {
        match size {
            // (abnormal, normal) per split. Small still holds >= 9 abnormal videos so every kind
            // appears at least once.
            SynthSize::Small => {
                Shape { train: (7, 7), val: (2, 2), test: (4, 4), frames: (96, 160), width: 160, height: 120 }
            }
            SynthSize::Full => {
                Shape { train: (100, 100), val: (20, 20), test: (50, 50), frames: (96, 240), width: 320, height: 240 }
            }
        }
    }
}

/// Frame ranges of the real source per split. The test range is disjoint from the train/val
/// range, with a 4 s gap so a pedestrian seen in a training clip has mostly left before a test
/// clip starts. Validation shares the training range (different offsets, crops and seeds):
/// the source is too short to hold out a third range long enough for 8 s events.
pub fn source_ranges(source_frames: usize) -> [(Split, (usize, usize)); 3] {
    let train_hi = source_frames * 540 / 795;
    let test_lo = source_frames * 580 / 795;
    [(Split::Train, (0, train_hi)), (Split::Val, (0, train_hi)), (Split::Test, (test_lo, source_frames))]
}

/// Builds the whole catalogue. `source_frames` is the decodable length of the real source.
pub fn catalogue(seed: u64, size: SynthSize, source_fps: f64, source_frames: usize) -> Vec<VideoSpec> {
    let shape = Shape::of(size);
    let mut rng = Rng::derive(seed, "catalogue", 0);
    let mut kinds = EventKind::ALL.to_vec();
    rng.shuffle(&mut kinds);
    // One cycle over all abnormal videos of every split, so even Small covers every kind.
    let mut kind_cursor = 0usize;
    let mut specs = Vec::new();
    let mut counters = std::collections::HashMap::new();
    for (split, range) in source_ranges(source_frames) {
        let (n_abn, n_nor) = match split {
            Split::Train => shape.train,
            Split::Val => shape.val,
            Split::Test => shape.test,
        };
        for (abnormal, count) in [(true, n_abn), (false, n_nor)] {
            for i in 0..count {
                // Alternate parts so each split and label is half real, half procedural.
                let part = if i % 2 == 0 { Part::Real } else { Part::Procedural };
                let kind = if abnormal {
                    let k = kinds[kind_cursor % kinds.len()];
                    kind_cursor += 1;
                    Some(k)
                } else {
                    None
                };
                let vseed = rng.next_u64();
                let mut vrng = Rng::new(vseed);
                let fps = match part {
                    Part::Real => source_fps,
                    // Varied frame rates change per-frame motion, which a detector must not
                    // mistake for speed.
                    Part::Procedural => *vrng.pick(&[10.0, 12.5, 15.0, 20.0]),
                };
                let Some((frames, event, offset)) = place(&mut vrng, kind, fps, shape.frames, part, range) else {
                    continue;
                };
                let n = counters.entry((split.name(), part.name(), abnormal)).or_insert(0usize);
                *n += 1;
                let name = format!(
                    "{}_{}_{}_{:04}{}",
                    split.name(),
                    part.name(),
                    if abnormal { "abn" } else { "nor" },
                    n,
                    kind.map(|k| format!("_{}", k.name())).unwrap_or_default()
                );
                specs.push(VideoSpec {
                    name,
                    split,
                    part,
                    event,
                    frames,
                    fps,
                    width: shape.width,
                    height: shape.height,
                    seed: vseed,
                    source_offset: offset,
                    source_range: range,
                });
            }
        }
    }
    specs
}

/// Chooses length, event window and source offset; `None` only if the source range is too short
/// for any clip.
fn place(
    rng: &mut Rng,
    kind: Option<EventKind>,
    fps: f64,
    (min_frames, max_frames): (usize, usize),
    part: Part,
    range: (usize, usize),
) -> Option<(usize, Option<Event>, usize)> {
    let avail = if part == Part::Real { range.1.saturating_sub(range.0) } else { usize::MAX };
    let mut frames = rng.usize_in(min_frames, max_frames);
    let event = match kind {
        None => None,
        Some(kind) => {
            let (lo, hi) = kind.seconds();
            let mut len = ((rng.range_f(lo, hi) * fps).round() as usize).max(8);
            let factor = if kind == EventKind::SpeedUp { rng.usize_in(3, 6) } else { 1 };
            // Never at the very start: at least 2 s (and 15 %) of normal footage come first, so
            // the model sees the scene before it changes; half a second of normal after it.
            let lead = ((2.0 * fps) as usize).max(frames * 15 / 100);
            let tail = (0.5 * fps) as usize;
            frames = frames.max(lead + len + tail);
            if part == Part::Real {
                // The clip plus the frames a speed-up skips must fit the split's source range.
                while frames + len * (factor - 1) > avail && frames > min_frames.min(avail) {
                    frames -= 1;
                }
                while frames + len * (factor - 1) > avail || lead + len + tail > frames {
                    if len <= 8 {
                        return None;
                    }
                    len -= 1;
                }
            }
            let latest = frames - len - tail;
            let start = rng.usize_in(lead.min(latest), latest);
            Some(Event { kind, start, end: start + len, factor })
        }
    };
    let frames = if part == Part::Real { frames.min(avail) } else { frames };
    let consumed = frames + event.map(|e| (e.end - e.start) * (e.factor - 1)).unwrap_or(0);
    if part == Part::Real && consumed > avail {
        return None;
    }
    let offset = if part == Part::Real { range.0 + rng.usize_in(0, avail - consumed) } else { 0 };
    Some((frames, event, offset))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_catalogue_covers_kinds_and_fits_ranges() {
        let specs = catalogue(3, SynthSize::Full, 10.0, 795);
        assert_eq!(specs.len(), 340);
        for k in EventKind::ALL {
            assert!(specs.iter().filter(|s| s.split == Split::Test && s.event.map(|e| e.kind) == Some(k)).count() >= 4);
        }
        for s in &specs {
            if let Some(e) = s.event {
                assert!(e.start >= 16 && e.end <= s.frames && e.start < e.end, "{s:?}");
            }
            if s.part == Part::Real {
                assert!(s.source_offset >= s.source_range.0);
                assert!(s.source_offset + s.source_frames() <= s.source_range.1, "{s:?}");
            }
        }
    }

    #[test]
    fn small_catalogue_has_every_kind() {
        let specs = catalogue(1, SynthSize::Small, 10.0, 795);
        for k in EventKind::ALL {
            assert!(specs.iter().any(|s| s.event.map(|e| e.kind) == Some(k)), "{k:?}");
        }
    }
}
