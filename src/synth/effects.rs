//! Camera tampering applied to a finished frame (shake, occlusion, defocus): these act on the
//! lens, not the scene, so both parts share them unchanged.

use super::plan::{Event, EventKind};
use super::raster::{Bgr, Image};
use super::rng::{mix, Rng};

/// Parameters of one tampering event, drawn once per video.
#[derive(Debug, Clone)]
pub struct Tamper {
    event: Event,
    /// Shake amplitude or blur radius in pixels.
    amount: f64,
    /// Occluder centre, radii (fractions of the frame), colour and entry side.
    cover: (f64, f64, f64, f64, Bgr, f64),
    key: u64,
}

impl Tamper {
    /// `None` for events that are not camera tampering.
    pub fn new(event: Option<Event>, width: usize, rng: &mut Rng) -> Option<Self> {
        let event = event?;
        let w = width as f64;
        let amount = match event.kind {
            EventKind::Shake => rng.range_f(0.02, 0.06) * w,
            EventKind::Defocus => (rng.range_f(0.012, 0.03) * w).max(2.0),
            EventKind::Occlusion => 0.0,
            _ => return None,
        };
        let v = rng.range_f(10.0, 80.0);
        let cover = (
            rng.range_f(0.3, 0.7),
            rng.range_f(0.3, 0.7),
            rng.range_f(0.45, 0.8),
            rng.range_f(0.5, 0.9),
            [(v * rng.range_f(0.8, 1.2)) as u8, (v * rng.range_f(0.8, 1.2)) as u8, v as u8],
            if rng.chance(0.5) { -1.0 } else { 1.0 },
        );
        Some(Tamper { event, amount, cover, key: rng.next_u64() })
    }

    /// Applies the tampering to frame `t` (a no-op outside the event window).
    pub fn apply(&self, img: Image, t: usize) -> Image {
        let e = &self.event;
        if t < e.start || t >= e.end {
            return img;
        }
        // Occluders and focus changes take ~3 frames to arrive and leave, as a hand or a
        // twisted lens would, rather than switching in one frame.
        let ramp = (((t - e.start + 1).min(e.end - t)) as f64 / 3.0).min(1.0);
        match e.kind {
            EventKind::Shake => {
                let mut r = Rng::new(mix(self.key ^ t as u64));
                let dx = (r.range_f(-1.0, 1.0) * self.amount).round() as i64;
                let dy = (r.range_f(-1.0, 1.0) * self.amount * 0.75).round() as i64;
                img.shifted(dx, dy)
            }
            EventKind::Defocus => img.blurred(((self.amount * ramp).round() as usize).max(1)),
            EventKind::Occlusion => {
                let (cx, cy, rx, ry, colour, side) = self.cover;
                let (w, h) = (img.width as f64, img.height as f64);
                let mut out = img;
                let x = cx * w + side * (1.0 - ramp) * 1.5 * w;
                out.fill_ellipse(x, cy * h, rx * w, ry * h, 0.3 * side, colour, 0.97);
                out.add_noise(self.key ^ t as u64, 3);
                out
            }
            _ => out_of_kind(img),
        }
    }
}

fn out_of_kind(img: Image) -> Image {
    img
}
