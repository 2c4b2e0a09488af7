//! Stick-and-blob people and a boxy vehicle, drawn the same way on procedural scenes and over real
//! footage. A figure is anchored at its feet so perspective (height from ground row) and falls
//! (rotation about the feet) need no other bookkeeping.

use super::raster::{Bgr, Image};
use super::rng::Rng;

/// How one person looks; drawn once per video so a walker keeps its clothes.
#[derive(Debug, Clone, Copy)]
pub struct Look {
    pub shirt: Bgr,
    pub pants: Bgr,
    pub head: Bgr,
}

impl Look {
    /// Muted clothing colours like those on a plaza camera; saturated colours would make colour
    /// alone a cue the model could latch on to.
    pub fn random(rng: &mut Rng) -> Self {
        let base = |rng: &mut Rng, lo: f64, hi: f64| -> Bgr {
            let v = rng.range_f(lo, hi);
            let tint = [rng.range_f(-25.0, 25.0), rng.range_f(-25.0, 25.0), rng.range_f(-25.0, 25.0)];
            [
                (v + tint[0]).clamp(0.0, 255.0) as u8,
                (v + tint[1]).clamp(0.0, 255.0) as u8,
                (v + tint[2]).clamp(0.0, 255.0) as u8,
            ]
        };
        let skin = rng.range_f(60.0, 200.0);
        Look {
            shirt: base(rng, 20.0, 200.0),
            pants: base(rng, 15.0, 110.0),
            head: [(skin * 0.7) as u8, (skin * 0.8) as u8, skin as u8],
        }
    }

    /// A dark silhouette for insertions into real footage, where a bright synthetic figure would
    /// stand out by rendering style rather than by behaviour.
    pub fn dark(rng: &mut Rng) -> Self {
        let v = |rng: &mut Rng| rng.range_f(20.0, 70.0) as u8;
        Look { shirt: [v(rng), v(rng), v(rng)], pants: [v(rng), v(rng), v(rng)], head: [v(rng), v(rng), v(rng)] }
    }
}

/// The pose of a person at one frame.
#[derive(Debug, Clone, Copy)]
pub struct Pose {
    /// Feet position in pixels.
    pub x: f64,
    pub y: f64,
    /// Standing height in pixels.
    pub height: f64,
    /// Gait phase in radians; limbs swing with its sine.
    pub phase: f64,
    /// Stride amplitude: 0 standing, 1 walking, up to ~1.8 running.
    pub stride: f64,
    /// Rotation about the feet in radians (+-pi/2 lying down).
    pub tilt: f64,
    /// Arm angles overriding the gait swing (fighting), radians from hanging down.
    pub arms: Option<(f64, f64)>,
}

impl Pose {
    pub fn walking(x: f64, y: f64, height: f64, phase: f64) -> Self {
        Pose { x, y, height, phase, stride: 1.0, tilt: 0.0, arms: None }
    }
}

/// Draws a person: shadow, legs, torso, arms, head.
pub fn draw_person(img: &mut Image, p: &Pose, look: &Look, alpha: f64) {
    let h = p.height;
    if h < 2.0 {
        return;
    }
    let (s, c) = p.tilt.sin_cos();
    // Local coordinates: origin at the feet, y up is negative, then rotated by the tilt.
    let at = |lx: f64, ly: f64| (p.x + lx * c - ly * s, p.y + lx * s + ly * c);
    let swing = p.phase.sin() * 0.17 * h * p.stride;
    let bob = -0.025 * h * p.stride * p.phase.cos().abs();
    let hip = at(0.0, -0.5 * h + bob);
    let neck = at(0.0, -0.8 * h + bob);
    let shoulder = at(0.0, -0.77 * h + bob);
    let head = at(0.0, -0.91 * h + bob);

    let lying = p.tilt.abs() > 0.6;
    let shadow_w = if lying { 0.55 * h } else { 0.2 * h };
    let shadow_x = if lying { hip.0 } else { p.x };
    img.fill_ellipse(shadow_x, p.y, shadow_w, 0.05 * h, 0.0, [20, 20, 20], 0.3 * alpha);

    let leg_r = 0.05 * h;
    for side in [-1.0, 1.0] {
        let foot = at(side * swing, 0.0);
        img.fill_capsule(hip.0, hip.1, foot.0, foot.1, leg_r, look.pants, alpha);
    }
    img.fill_capsule(hip.0, hip.1, neck.0, neck.1, 0.085 * h, look.shirt, alpha);
    let arm_r = 0.035 * h;
    for (k, side) in [-1.0f64, 1.0].iter().enumerate() {
        let angle = match p.arms {
            Some((a, b)) => {
                if k == 0 {
                    a
                } else {
                    b
                }
            }
            None => -side * p.phase.sin() * 0.5 * p.stride,
        };
        let len = 0.33 * h;
        let hand = at(angle.sin() * len, -0.77 * h + bob + angle.cos() * len);
        img.fill_capsule(shoulder.0, shoulder.1, hand.0, hand.1, arm_r, look.shirt, alpha);
    }
    img.fill_circle(head.0, head.1, 0.075 * h, look.head, alpha);
}

/// Draws a car or van seen from the side, wheels on the ground row `y`, centred on `x`.
pub fn draw_vehicle(img: &mut Image, x: f64, y: f64, length: f64, body: Bgr, alpha: f64) {
    let l = length;
    img.fill_ellipse(x, y, 0.55 * l, 0.06 * l, 0.0, [20, 20, 20], 0.35 * alpha);
    let wheel_r = 0.09 * l;
    let bottom = y - wheel_r * 0.9;
    img.fill_rect(x - 0.5 * l, bottom - 0.22 * l, x + 0.5 * l, bottom, body, alpha);
    img.fill_rect(x - 0.3 * l, bottom - 0.4 * l, x + 0.28 * l, bottom - 0.21 * l, body, alpha);
    let glass: Bgr = [70, 60, 50];
    img.fill_rect(x - 0.26 * l, bottom - 0.37 * l, x - 0.03 * l, bottom - 0.23 * l, glass, alpha);
    img.fill_rect(x + 0.0 * l, bottom - 0.37 * l, x + 0.24 * l, bottom - 0.23 * l, glass, alpha);
    for wx in [-0.32, 0.32] {
        img.fill_circle(x + wx * l, y - wheel_r, wheel_r, [25, 25, 25], alpha);
        img.fill_circle(x + wx * l, y - wheel_r, wheel_r * 0.45, [120, 120, 120], alpha);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn person_changes_pixels_near_feet_only() {
        let mut img = Image::new(64, 64, [200, 200, 200]);
        let mut rng = Rng::new(1);
        draw_person(&mut img, &Pose::walking(32.0, 60.0, 40.0, 0.3), &Look::random(&mut rng), 1.0);
        assert_ne!(img.get(32, 40), [200, 200, 200]);
        assert_eq!(img.get(2, 2), [200, 200, 200]);
    }
}
