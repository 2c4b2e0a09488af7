//! The real part: clips cut from the source video (vtest.avi) with varied crop, mirror, exposure
//! and offset, and events injected into the footage. Scene-level events are drawn in source
//! coordinates before the crop, so crop and mirror apply to them exactly as to the real people;
//! tampering is applied after, on the output frame, as a camera would suffer it.

use super::actors::{draw_all, Actor, Episode, Perspective, Sprite};
use super::effects::Tamper;
use super::figure::{draw_vehicle, Look};
use super::plan::{EventKind, VideoSpec};
use super::procedural::scene_clock;
use super::raster::Image;
use super::rng::{mix, Rng};
use super::SynthError;

/// Walking speed in person-heights per second.
const WALK: f64 = 0.82;

/// The decoded source, at a working size somewhat above the output size so crops stay sharp.
pub struct Source {
    pub frames: Vec<Image>,
    /// Per-pixel median over the whole clip: the empty plaza, used to cut people out.
    pub background: Image,
    pub fps: f64,
}

impl Source {
    pub fn new(frames: Vec<Image>, fps: f64) -> Self {
        let background = median(&frames);
        Source { frames, background, fps }
    }

    /// Height of a pedestrian whose feet are at row `y` on the plaza (fitted by eye to vtest.avi:
    /// about 9 % of the frame height on the far path, 16 % at mid-frame).
    fn perspective(&self) -> Perspective {
        let h = self.background.height as f64;
        Perspective { horizon: -0.144 * h, slope: 0.21, min_height: 3.0 }
    }

    /// Cuts a pedestrian out of some frame in `range` (avoiding `avoid`, the clip itself):
    /// the window with most foreground pixels, masked by the foreground so only the person moves.
    fn cut_person(&self, rng: &mut Rng, range: (usize, usize), avoid: (usize, usize)) -> Option<Sprite> {
        let bg = &self.background;
        let (w, h) = (bg.width, bg.height);
        let bh = ((0.15 * h as f64) as usize).max(8);
        let bw = ((0.42 * bh as f64) as usize).max(3);
        for attempt in 0..16 {
            let f = rng.usize_in(range.0, range.1.saturating_sub(1)).min(self.frames.len().saturating_sub(1));
            if attempt < 8 && f >= avoid.0 && f < avoid.1 {
                continue;
            }
            let frame = &self.frames[f];
            let fg: Vec<u32> = (0..w * h)
                .map(|i| {
                    let d =
                        (0..3).map(|k| (i32::from(frame.data[i * 3 + k]) - i32::from(bg.data[i * 3 + k])).abs()).max();
                    u32::from(d.unwrap_or(0) > 35)
                })
                .collect();
            // Integral image for O(1) window sums.
            let mut integ = vec![0u32; (w + 1) * (h + 1)];
            for y in 0..h {
                let mut row = 0;
                for x in 0..w {
                    row += fg[y * w + x];
                    integ[(y + 1) * (w + 1) + x + 1] = integ[y * (w + 1) + x + 1] + row;
                }
            }
            let sum = |x: usize, y: usize| {
                integ[(y + bh) * (w + 1) + x + bw] + integ[y * (w + 1) + x]
                    - integ[y * (w + 1) + x + bw]
                    - integ[(y + bh) * (w + 1) + x]
            };
            let mut best = (0u32, 0usize, 0usize);
            for y in ((0.15 * h as f64) as usize..h.saturating_sub(bh + 1)).step_by(2) {
                for x in (0..w.saturating_sub(bw + 1)).step_by(2) {
                    let s = sum(x, y);
                    if s > best.0 {
                        best = (s, x, y);
                    }
                }
            }
            if (best.0 as usize) * 10 < bw * bh * 3 {
                continue;
            }
            let (_, x, y) = best;
            let patch = frame.cut(x as i64, y as i64, bw, bh);
            let mut mask = Image::new(bw, bh, [0, 0, 0]);
            for py in 0..bh {
                for px in 0..bw {
                    if fg[(y + py) * w + x + px] == 1 {
                        let i = (py * bw + px) * 3;
                        mask.data[i..i + 3].copy_from_slice(&[255, 255, 255]);
                    }
                }
            }
            return Some(Sprite::Patch { img: patch, mask: mask.blurred(1) });
        }
        None
    }
}

/// Per-pixel median of up to 48 evenly spaced frames.
fn median(frames: &[Image]) -> Image {
    let Some(first) = frames.first() else {
        return Image::new(1, 1, [0, 0, 0]);
    };
    let step = (frames.len() / 48).max(1);
    let picked: Vec<&Image> = frames.iter().step_by(step).collect();
    let mut out = first.clone();
    let mut vals = Vec::with_capacity(picked.len());
    for i in 0..out.data.len() {
        vals.clear();
        vals.extend(picked.iter().map(|f| f.data[i]));
        vals.sort_unstable();
        out.data[i] = vals[vals.len() / 2];
    }
    out
}

pub fn render(
    spec: &VideoSpec,
    src: &Source,
    emit: &mut dyn FnMut(&Image) -> Result<(), SynthError>,
) -> Result<(), SynthError> {
    let mut rng = Rng::derive(spec.seed, "real", 0);
    let (sw, sh) = (src.background.width as f64, src.background.height as f64);
    let persp = src.perspective();
    // Crop: a random window of 45..100 % of the frame at the output aspect ratio, so the same
    // plaza is seen from near and far: people from about 9 % to 35 % of the frame height.
    let zoom = rng.range_f(0.45, 1.0);
    let aspect = spec.width as f64 / spec.height as f64;
    let (cw, ch) = if sw / sh > aspect { (sh * zoom * aspect, sh * zoom) } else { (sw * zoom, sw * zoom / aspect) };
    let (cx, cy) = (rng.range_f(0.0, sw - cw), rng.range_f(0.0, sh - ch));
    let mirror = rng.chance(0.5);
    let gain = rng.range_f(0.75, 1.25);
    let bias = rng.range_f(-20.0, 20.0);
    let clip = (spec.source_offset, spec.source_offset + spec.source_frames());

    // People walk on the plaza's paths: feet between 30 % and 95 % of the frame height.
    let feet_row = |rng: &mut Rng| {
        let lo = (cy + 0.3 * ch).max(0.3 * sh);
        let hi = (cy + ch).min(0.95 * sh);
        rng.range_f(lo.min(hi), hi.max(lo))
    };
    let sprite = |rng: &mut Rng, real: bool| -> Sprite {
        if real {
            if let Some(s) = src.cut_person(rng, spec.source_range, clip) {
                return s;
            }
        }
        Sprite::Figure(Look::dark(rng))
    };

    let mut actors = Vec::new();
    // Inserted walkers that behave normally, in normal and abnormal clips alike, so that pasted
    // pixels and silhouettes are not themselves a cue for "abnormal".
    let distractors = if rng.chance(if spec.abnormal() { 0.3 } else { 0.5 }) { rng.usize_in(1, 2) } else { 0 };
    let seconds = spec.frames as f64 / spec.fps;
    for _ in 0..distractors {
        let y = feet_row(&mut rng);
        let ph = persp.height(y);
        let dir = if rng.chance(0.5) { 1.0 } else { -1.0 };
        let v = WALK * ph * rng.range_f(0.8, 1.2) * dir;
        let at = rng.range_f(0.0, seconds);
        let x_at = rng.range_f(cx, cx + cw);
        let real = rng_chance_real(&mut rng);
        let s = sprite(&mut rng, real);
        actors.push(Actor::walker(s, x_at - v * at, y, v, 0.0, &mut rng));
    }

    let mut vehicle = None;
    let mut shake_zone = None;
    if let Some(e) = spec.event {
        let t0 = scene_clock(spec, e.start);
        let t1 = scene_clock(spec, e.end);
        let dur = (t1 - t0).max(0.1);
        match e.kind {
            EventKind::Runner => {
                let y = feet_row(&mut rng);
                let ph = persp.height(y);
                let dir = if rng.chance(0.5) { 1.0 } else { -1.0 };
                let v = (cw + 1.2 * ph) / dur * dir;
                let x_start = if dir > 0.0 { cx - 0.6 * ph } else { cx + cw + 0.6 * ph };
                let real = rng_chance_real(&mut rng);
                let s = sprite(&mut rng, real);
                let mut a = Actor::walker(s, x_start - v * t0, y, v, 0.0, &mut rng);
                a.size = 1.0;
                a.stride = 1.7;
                a.step_hz = rng.range_f(2.8, 3.4);
                actors.push(a);
            }
            EventKind::CounterFlow => {
                // The plaza's flow runs left-right along the paths in both directions; moving
                // across it, down or up through the lawn, is the "against the flow" case here.
                let x = rng.range_f(cx + 0.15 * cw, cx + 0.85 * cw);
                let down = rng.chance(0.5);
                let (top, bottom) = (cy - 0.02 * ch, cy + ch + persp.height(cy + ch));
                let (ya, yb) = if down { (top, bottom) } else { (bottom, top) };
                let vy = (yb - ya) / dur;
                let s = sprite(&mut rng, true);
                let mut a = Actor::walker(s, x, ya - vy * t0, 0.0, vy, &mut rng);
                a.size = 1.0;
                actors.push(a);
            }
            EventKind::Fall | EventKind::Scuffle => {
                let y = feet_row(&mut rng);
                let ph = persp.height(y);
                let dir = if rng.chance(0.5) { 1.0 } else { -1.0 };
                let v = WALK * ph * rng.range_f(0.8, 1.2) * dir;
                let x_at = rng.range_f(cx + 0.25 * cw, cx + 0.75 * cw);
                let mut a = Actor::walker(Sprite::Figure(Look::dark(&mut rng)), x_at - v * t0, y, v, 0.0, &mut rng);
                a.size = 1.0;
                if e.kind == EventKind::Fall {
                    a.episode = Some((Episode::Fall { dir }, t0, t1));
                    actors.push(a);
                } else {
                    a.episode = Some((Episode::Scuffle, t0, t1));
                    let mut b = a.clone();
                    b.sprite = Sprite::Figure(Look::dark(&mut rng));
                    b.x0 += 0.45 * ph * dir;
                    b.key = rng.next_u64();
                    actors.push(a);
                    actors.push(b);
                    // The real pixels around the pair are shaken too, like a camera seeing a
                    // tussle of real people.
                    shake_zone = Some((x_at + 0.22 * ph * dir, y - 0.5 * ph, ph, rng.next_u64()));
                }
            }
            EventKind::Vehicle => {
                let y = feet_row(&mut rng);
                let len = 2.6 * persp.height(y);
                let dir = if rng.chance(0.5) { 1.0 } else { -1.0 };
                let v = (cw + 1.2 * len) / dur * dir;
                let x_start = if dir > 0.0 { cx - 0.6 * len } else { cx + cw + 0.6 * len };
                let body =
                    [rng.range_f(20.0, 230.0) as u8, rng.range_f(20.0, 230.0) as u8, rng.range_f(20.0, 230.0) as u8];
                vehicle = Some((x_start - v * t0, v, y, len, body));
            }
            _ => {}
        }
    }

    let tamper = Tamper::new(spec.event, spec.width, &mut rng);
    for t in 0..spec.frames {
        let clock = scene_clock(spec, t);
        // Source frame: the speed-up skips frames by advancing the clock faster.
        let idx = spec.source_offset + (clock * spec.fps).round() as usize;
        let frame = src.frames.get(idx).or_else(|| src.frames.last()).ok_or_else(|| SynthError::Source {
            path: spec.name.clone().into(),
            reason: "the source decoded to no frames".into(),
        })?;
        let mut img = frame.clone();
        if let (Some(e), Some((zx, zy, ph, key))) = (spec.event, shake_zone) {
            if t >= e.start && t < e.end {
                let mut r = Rng::new(mix(key ^ t as u64));
                let (zw, zh) = ((1.6 * ph) as usize, (1.3 * ph) as usize);
                let (x, y) = ((zx - 0.8 * ph) as i64, (zy - 0.65 * ph) as i64);
                let patch = img.cut(x, y, zw.max(1), zh.max(1));
                let mask = soft_ellipse(zw.max(1), zh.max(1));
                let (dx, dy) = ((r.range_f(-0.15, 0.15) * ph) as i64, (r.range_f(-0.1, 0.1) * ph) as i64);
                img.paste_masked(&patch, &mask, x + dx, y + dy);
            }
        }
        draw_all(&mut img, &actors, clock, &persp);
        if let Some((x0, v, y, len, body)) = vehicle {
            let x = x0 + v * clock;
            if x > -len && x < sw + len {
                draw_vehicle(&mut img, x, y, len, body, 1.0);
            }
        }
        let mut out = img.crop_resize(cx, cy, cw, ch, spec.width, spec.height, mirror);
        out.adjust(gain, bias);
        let out = match &tamper {
            Some(fx) => fx.apply(out, t),
            None => out,
        };
        emit(&out)?;
    }
    Ok(())
}

/// Real cut-outs look most like the footage; silhouettes add shape variety.
fn rng_chance_real(rng: &mut Rng) -> bool {
    rng.chance(0.7)
}

/// An elliptical opacity mask with soft edges, for moving a region without a visible box.
fn soft_ellipse(w: usize, h: usize) -> Vec<u8> {
    let mut m = vec![0u8; w * h];
    for y in 0..h {
        for x in 0..w {
            let u = (x as f64 + 0.5) / w as f64 * 2.0 - 1.0;
            let v = (y as f64 + 0.5) / h as f64 * 2.0 - 1.0;
            let d = (u * u + v * v).sqrt();
            m[y * w + x] = ((1.0 - d) * 3.0).clamp(0.0, 1.0).mul_add(255.0, 0.0) as u8;
        }
    }
    m
}
