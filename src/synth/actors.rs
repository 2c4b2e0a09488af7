//! Moving things shared by both parts: walkers on a straight path whose pose follows a clock,
//! optionally interrupted by an episode (a fall, a scuffle) during which they stay in place.
//! Keeping one model of motion for real and procedural scenes means an event looks the same
//! wherever it is injected, and only its context differs.

use super::figure::{draw_person, Look, Pose};
use super::raster::Image;
use super::rng::{mix, Rng};

/// Height of a standing person as a linear function of the ground row (pinhole camera over a
/// flat ground plane: size grows linearly with distance below the horizon).
#[derive(Debug, Clone, Copy)]
pub struct Perspective {
    pub horizon: f64,
    /// Pixels of height per pixel below the horizon.
    pub slope: f64,
    pub min_height: f64,
}

impl Perspective {
    pub fn height(&self, y: f64) -> f64 {
        (self.slope * (y - self.horizon)).max(self.min_height)
    }

    /// The ground row where a person is `h` pixels tall.
    pub fn row_for_height(&self, h: f64) -> f64 {
        self.horizon + h / self.slope.max(1e-6)
    }
}

/// What an actor looks like.
#[derive(Debug, Clone)]
pub enum Sprite {
    Figure(Look),
    /// A real person cut out of the source: pixels and opacity (grey image used as a mask).
    Patch {
        img: Image,
        mask: Image,
    },
}

/// An interruption of walking.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Episode {
    /// Falls over (towards `dir` = +-1), lies, gets up.
    Fall { dir: f64 },
    /// Flails and lurches in place.
    Scuffle,
}

/// A walker: position `(x0, y0)` at time 0 (seconds), constant velocity while walking.
#[derive(Debug, Clone)]
pub struct Actor {
    pub sprite: Sprite,
    pub x0: f64,
    pub y0: f64,
    pub vx: f64,
    pub vy: f64,
    /// Multiplier on the perspective height (people differ in size).
    pub size: f64,
    /// Steps per second and initial phase of the gait.
    pub step_hz: f64,
    pub phase0: f64,
    pub stride: f64,
    /// Episode and its window in seconds.
    pub episode: Option<(Episode, f64, f64)>,
    pub key: u64,
}

impl Actor {
    pub fn walker(sprite: Sprite, x0: f64, y0: f64, vx: f64, vy: f64, rng: &mut Rng) -> Self {
        Actor {
            sprite,
            x0,
            y0,
            vx,
            vy,
            size: rng.range_f(0.88, 1.12),
            step_hz: rng.range_f(1.6, 2.1),
            phase0: rng.range_f(0.0, std::f64::consts::TAU),
            stride: 1.0,
            episode: None,
            key: rng.next_u64(),
        }
    }

    /// The pose at time `t` seconds (scene clock), or `None` if the actor is far off frame.
    pub fn pose(&self, t: f64, persp: &Perspective, width: f64, height: f64) -> Option<Pose> {
        // Walking time: the clock stops during an episode, so the actor resumes where it stopped.
        let (walk_t, in_episode) = match self.episode {
            Some((_, a, b)) if t >= b => (t - (b - a), None),
            Some((e, a, b)) if t >= a => (a, Some((e, t - a, b - a))),
            _ => (t, None),
        };
        let x = self.x0 + self.vx * walk_t;
        let y = self.y0 + self.vy * walk_t;
        let h = persp.height(y) * self.size;
        if x < -2.0 * h || x > width + 2.0 * h || y < -h || y > height + 2.0 * h {
            return None;
        }
        let mut pose = Pose::walking(x, y, h, self.phase0 + std::f64::consts::TAU * self.step_hz * walk_t);
        pose.stride = self.stride;
        match in_episode {
            Some((Episode::Fall { dir }, dt, len)) => {
                // 0.4 s to go down, 0.8 s to get up; lying still in between.
                let down = (dt / 0.4).min(1.0);
                let up = ((len - dt) / 0.8).min(1.0);
                pose.tilt = dir * std::f64::consts::FRAC_PI_2 * down.min(up).powf(1.5);
                pose.stride = 0.15;
            }
            Some((Episode::Scuffle, dt, _)) => {
                // A fresh random jolt every frame-ish (every 60 ms of scene time).
                let tick = (dt / 0.06) as u64;
                let mut r = Rng::new(mix(self.key ^ tick.wrapping_mul(0x9E37_79B9)));
                pose.x += r.range_f(-0.18, 0.18) * h;
                pose.y += r.range_f(-0.05, 0.05) * h;
                pose.tilt = r.range_f(-0.35, 0.35);
                pose.arms = Some((r.range_f(-2.8, 2.8), r.range_f(-2.8, 2.8)));
                pose.phase = r.range_f(0.0, std::f64::consts::TAU);
                pose.stride = 0.8;
            }
            None => {}
        }
        Some(pose)
    }

    pub fn draw(&self, img: &mut Image, t: f64, persp: &Perspective) {
        let Some(pose) = self.pose(t, persp, img.width as f64, img.height as f64) else {
            return;
        };
        match &self.sprite {
            Sprite::Figure(look) => draw_person(img, &pose, look, 1.0),
            Sprite::Patch { img: patch, mask } => {
                // Cut-outs cannot bend; they bob with the gait and keep their real limbs.
                let scale = pose.height / patch.height as f64;
                let w = ((patch.width as f64 * scale).round() as usize).max(1);
                let h = ((patch.height as f64 * scale).round() as usize).max(1);
                let mirror = self.vx < 0.0;
                let p = patch.crop_resize(0.0, 0.0, patch.width as f64, patch.height as f64, w, h, mirror);
                let m = mask.crop_resize(0.0, 0.0, mask.width as f64, mask.height as f64, w, h, mirror);
                let alpha: Vec<u8> = m.data.chunks_exact(3).map(|c| c[0]).collect();
                let bob = (0.02 * pose.height * pose.phase.cos().abs()).round() as i64;
                img.fill_ellipse(pose.x, pose.y, 0.2 * pose.height, 0.05 * pose.height, 0.0, [20, 20, 20], 0.25);
                img.paste_masked(
                    &p,
                    &alpha,
                    (pose.x - w as f64 / 2.0).round() as i64,
                    pose.y.round() as i64 - h as i64 - bob,
                );
            }
        }
    }
}

/// Draws actors far-to-near so nearer people overlap farther ones.
pub fn draw_all(img: &mut Image, actors: &[Actor], t: f64, persp: &Perspective) {
    let mut order: Vec<(f64, usize)> = actors
        .iter()
        .enumerate()
        .filter_map(|(i, a)| a.pose(t, persp, img.width as f64, img.height as f64).map(|p| (p.y, i)))
        .collect();
    order.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    for (_, i) in order {
        actors[i].draw(img, t, persp);
    }
}
