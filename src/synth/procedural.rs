//! Procedural scenes drawn from scratch: a plaza with buildings, paving and street furniture under
//! a perspective camera, walkers with a dominant flow, lighting drift and sensor noise, and the
//! same event kinds as the real part. Every scene differs (camera height, crowd density, flow
//! direction, colours), so normality is a distribution and not one memorised picture.

use super::actors::{draw_all, Actor, Episode, Perspective, Sprite};
use super::effects::Tamper;
use super::figure::{draw_vehicle, Look};
use super::plan::{EventKind, VideoSpec};
use super::raster::{Bgr, Image};
use super::rng::Rng;
use super::SynthError;

/// Walking speed in person-heights per second (1.4 m/s for a 1.7 m person).
const WALK: f64 = 0.82;

/// Maps output frame index to scene time in seconds; a speed-up runs the clock `factor` times
/// faster inside its window.
pub fn scene_clock(spec: &VideoSpec, t: usize) -> f64 {
    let frames = match spec.event {
        Some(e) if e.kind == EventKind::SpeedUp => {
            let inside = t.clamp(e.start, e.end) - e.start;
            t + inside * (e.factor - 1)
        }
        _ => t,
    };
    frames as f64 / spec.fps
}

pub fn render(spec: &VideoSpec, emit: &mut dyn FnMut(&Image) -> Result<(), SynthError>) -> Result<(), SynthError> {
    let mut rng = Rng::derive(spec.seed, "procedural", 0);
    let (w, h) = (spec.width as f64, spec.height as f64);
    let horizon = rng.range_f(0.2, 0.42) * h;
    let near = rng.range_f(0.25, 0.45) * h;
    let persp = Perspective { horizon, slope: near / (h - horizon), min_height: 3.0 };
    let background = background(&mut rng, spec.width, spec.height, &persp);

    let kind = spec.event.map(|e| e.kind);
    let flow = if rng.chance(0.5) { 1.0 } else { -1.0 };
    let drift = rng.range_f(-0.2, 0.2);
    // One-way scenes make walking against the flow meaningful; two-way scenes (like the real
    // plaza) teach that opposite directions alone are normal.
    let one_way = kind == Some(EventKind::CounterFlow) || rng.chance(0.65);
    let lane = |rng: &mut Rng| horizon + rng.range_f(0.15, 1.0) * (h - horizon) + 0.05 * h;
    let duration = scene_clock(spec, spec.frames) + 1.0;
    let crowd = rng.range_f(1.0, 12.0);
    let typical_cross = w / (WALK * persp.height(horizon + 0.6 * (h - horizon)));
    let count = (crowd * (duration + typical_cross) / typical_cross).ceil() as usize;
    let mut actors = Vec::new();
    for _ in 0..count {
        let y = lane(&mut rng);
        let ph = persp.height(y);
        let dir = if one_way {
            flow
        } else if rng.chance(0.5) {
            1.0
        } else {
            -1.0
        };
        let v = WALK * ph * rng.range_f(0.75, 1.25) * dir;
        let spawn = rng.range_f(-typical_cross * 1.5, duration);
        let x_spawn = if dir > 0.0 { -ph } else { w + ph };
        let look = Sprite::Figure(Look::random(&mut rng));
        let mut a = Actor::walker(look, x_spawn - v * spawn, y, v, v * drift * 0.3, &mut rng);
        a.y0 -= a.vy * spawn;
        let pair = rng.chance(0.2);
        actors.push(a.clone());
        if pair {
            // Friends walking side by side: close pairs are normal, so a scuffle's closeness
            // alone is no cue.
            let mut b = a;
            b.sprite = Sprite::Figure(Look::random(&mut rng));
            b.x0 += rng.range_f(0.3, 0.5) * ph * dir;
            b.y0 += rng.range_f(0.05, 0.15) * ph;
            b.phase0 += 1.3;
            b.key = rng.next_u64();
            actors.push(b);
        }
    }
    for _ in 0..rng.usize_in(0, 2) {
        let y = lane(&mut rng);
        let mut a =
            Actor::walker(Sprite::Figure(Look::random(&mut rng)), rng.range_f(0.1, 0.9) * w, y, 0.0, 0.0, &mut rng);
        a.stride = 0.0;
        actors.push(a);
    }

    let mut vehicle: Option<(f64, f64, f64, f64, Bgr)> = None;
    if let Some(e) = spec.event {
        let t0 = scene_clock(spec, e.start);
        let t1 = scene_clock(spec, e.end);
        let dur = (t1 - t0).max(0.1);
        // For crossing events the event window is the time on screen, so the crossing speed is
        // fixed and the depth (hence size) is chosen to give the intended multiple of walking.
        let crossing_row = |rng: &mut Rng, multiple: f64, extra: f64| -> (f64, f64) {
            let denom = (WALK * multiple * dur - extra).max(1.0);
            let hh = (w / denom).clamp(persp.height(horizon + 0.15 * (h - horizon)), near);
            let y = persp.row_for_height(hh) + rng.range_f(-0.03, 0.03) * h;
            (y, persp.height(y))
        };
        match e.kind {
            EventKind::Runner | EventKind::CounterFlow => {
                let (multiple, dir, extra) = if e.kind == EventKind::Runner {
                    (rng.range_f(3.0, 6.0), if rng.chance(0.5) { 1.0 } else { -1.0 }, 1.2)
                } else {
                    (rng.range_f(0.9, 1.4), -flow, 1.2)
                };
                let (y, ph) = crossing_row(&mut rng, multiple, extra);
                let v = (w + 1.2 * ph) / dur * dir;
                let x_start = if dir > 0.0 { -0.6 * ph } else { w + 0.6 * ph };
                let mut a =
                    Actor::walker(Sprite::Figure(Look::random(&mut rng)), x_start - v * t0, y, v, 0.0, &mut rng);
                a.size = 1.0;
                if e.kind == EventKind::Runner {
                    a.stride = 1.7;
                    a.step_hz = rng.range_f(2.8, 3.4);
                }
                actors.push(a);
            }
            EventKind::Fall | EventKind::Scuffle => {
                let y = lane(&mut rng);
                let ph = persp.height(y);
                let v = WALK * ph * rng.range_f(0.8, 1.2) * flow;
                let x_at = rng.range_f(0.25, 0.75) * w;
                let mut a = Actor::walker(Sprite::Figure(Look::random(&mut rng)), x_at - v * t0, y, v, 0.0, &mut rng);
                a.size = 1.0;
                if e.kind == EventKind::Fall {
                    a.episode = Some((Episode::Fall { dir: flow }, t0, t1));
                    actors.push(a);
                } else {
                    a.episode = Some((Episode::Scuffle, t0, t1));
                    let mut b = a.clone();
                    b.sprite = Sprite::Figure(Look::random(&mut rng));
                    b.x0 += 0.45 * ph * flow;
                    b.key = rng.next_u64();
                    actors.push(a);
                    actors.push(b);
                }
            }
            EventKind::Vehicle => {
                let multiple = rng.range_f(2.5, 5.0);
                let (y, ph) = crossing_row(&mut rng, multiple, 3.0);
                let len = 2.6 * ph;
                let dir = if rng.chance(0.5) { 1.0 } else { -1.0 };
                let v = (w + 1.2 * len) / dur * dir;
                let x_start = if dir > 0.0 { -0.6 * len } else { w + 0.6 * len };
                let body =
                    [rng.range_f(20.0, 230.0) as u8, rng.range_f(20.0, 230.0) as u8, rng.range_f(20.0, 230.0) as u8];
                vehicle = Some((x_start - v * t0, v, y, len, body));
            }
            _ => {}
        }
    }

    let tamper = Tamper::new(spec.event, spec.width, &mut rng);
    let gain0 = rng.range_f(0.8, 1.15);
    let bias = rng.range_f(-15.0, 15.0);
    let period = rng.range_f(4.0, 15.0);
    let phase = rng.range_f(0.0, std::f64::consts::TAU);
    let noise = rng.range_i(1, 5) as i32;
    let noise_key = rng.next_u64();
    for t in 0..spec.frames {
        let clock = scene_clock(spec, t);
        let mut img = background.clone();
        draw_all(&mut img, &actors, clock, &persp);
        if let Some((x0, v, y, len, body)) = vehicle {
            let x = x0 + v * clock;
            if x > -len && x < w + len {
                draw_vehicle(&mut img, x, y, len, body, 1.0);
                // Walkers nearer the camera than the car pass in front of it.
                let nearer: Vec<Actor> = actors.iter().filter(|a| a.y0 + a.vy * clock > y).cloned().collect();
                draw_all(&mut img, &nearer, clock, &persp);
            }
        }
        // Lighting drifts with wall-clock time (not scene time): a speed-up must not also be a
        // lighting change.
        let secs = t as f64 / spec.fps;
        img.adjust(gain0 * (1.0 + 0.04 * (std::f64::consts::TAU * secs / period + phase).sin()), bias);
        img.add_noise(noise_key ^ (t as u64).wrapping_mul(0x2545_F491_4F6C_DD1D), noise);
        let img = match &tamper {
            Some(fx) => fx.apply(img, t),
            None => img,
        };
        emit(&img)?;
    }
    Ok(())
}

/// Buildings above the horizon, paving in perspective, lawn patches and street furniture.
fn background(rng: &mut Rng, width: usize, height: usize, persp: &Perspective) -> Image {
    let (w, h) = (width as f64, height as f64);
    let hz = persp.horizon;
    let grey = |rng: &mut Rng, lo: f64, hi: f64| -> Bgr {
        let v = rng.range_f(lo, hi);
        [(v * rng.range_f(0.85, 1.1)).min(255.0) as u8, (v * rng.range_f(0.9, 1.1)).min(255.0) as u8, v as u8]
    };
    let ground = grey(rng, 90.0, 180.0);
    let mut img = Image::new(width, height, ground);
    img.fill_rect(0.0, 0.0, w, hz, grey(rng, 150.0, 230.0), 1.0);
    let mut x = -rng.range_f(0.0, 0.2) * w;
    while x < w {
        let bw = rng.range_f(0.15, 0.45) * w;
        let top = rng.range_f(0.0, 0.8) * hz;
        let wall = grey(rng, 60.0, 190.0);
        img.fill_rect(x, top, x + bw, hz, wall, 1.0);
        let win = grey(rng, 30.0, 90.0);
        let step = rng.range_f(0.03, 0.06) * w;
        let mut wy = top + step * 0.5;
        while wy + step * 0.5 < hz {
            let mut wx = x + step * 0.4;
            while wx + step * 0.5 < x + bw {
                img.fill_rect(wx, wy, wx + step * 0.5, wy + step * 0.5, win, 0.9);
                wx += step;
            }
            wy += step;
        }
        x += bw + rng.range_f(0.0, 0.1) * w;
    }
    // Lawn or paving patches of another tone on the ground.
    for _ in 0..rng.usize_in(0, 3) {
        let tone: Bgr = if rng.chance(0.5) { [60, 130, 80] } else { grey(rng, 80.0, 200.0) };
        let cy = rng.range_f(hz, h);
        img.fill_ellipse(
            rng.range_f(0.0, w),
            cy,
            rng.range_f(0.1, 0.5) * w,
            rng.range_f(0.05, 0.2) * h,
            0.0,
            tone,
            0.8,
        );
    }
    // Paving joints: rows evenly spaced in inverse depth, columns converging on the vanishing point.
    let line: Bgr = [ground[0] / 2, ground[1] / 2, ground[2] / 2];
    let vp = rng.range_f(0.2, 0.8) * w;
    let rows = rng.usize_in(6, 14);
    for i in 1..=rows {
        let y = hz + (h - hz) * (i as f64 / rows as f64).powi(2);
        img.fill_rect(0.0, y, w, y + 1.0, line, 0.35);
    }
    for i in 0..rng.usize_in(6, 16) {
        let xb = -w + 3.0 * w * i as f64 / 16.0;
        img.fill_capsule(vp, hz, xb, h, 0.5, line, 0.3);
    }
    // Street furniture; static, so it is part of normality.
    for _ in 0..rng.usize_in(2, 6) {
        let y = hz + rng.range_f(0.05, 1.0) * (h - hz);
        let ph = persp.height(y);
        let x = rng.range_f(0.0, w);
        match rng.usize_in(0, 3) {
            0 => {
                img.fill_capsule(x, y, x, y - 1.5 * ph, 0.04 * ph, [40, 40, 40], 1.0);
                img.fill_circle(x, y - 1.5 * ph, 0.08 * ph, [200, 220, 230], 1.0);
            }
            1 => img.fill_rect(x, y - 0.25 * ph, x + 0.8 * ph, y, grey(rng, 40.0, 120.0), 1.0),
            2 => {
                img.fill_rect(x, y - 0.3 * ph, x + 0.6 * ph, y, grey(rng, 90.0, 160.0), 1.0);
                img.fill_ellipse(x + 0.3 * ph, y - 0.35 * ph, 0.35 * ph, 0.15 * ph, 0.0, [50, 120, 60], 1.0);
            }
            _ => {
                img.fill_capsule(x, y, x, y - 0.9 * ph, 0.06 * ph, [40, 60, 80], 1.0);
                img.fill_circle(x, y - 1.2 * ph, 0.45 * ph, [40, 110, 50], 1.0);
            }
        }
    }
    img.add_noise(rng.next_u64(), 6);
    img.blurred(1)
}
