//! An owned BGR8 raster and the few drawing operations the generator needs (shapes, blur, shift,
//! crop-resize, masked paste). Pure Rust on purpose: drawing stays bit-exact across OpenCV builds,
//! so only encoding and decoding depend on the library.

// Channel loops index several parallel 3-element arrays at once, and shape functions take plain
// coordinates rather than point structs to stay allocation-free in the per-pixel path.
#![allow(clippy::needless_range_loop, clippy::too_many_arguments)]

use super::rng::mix;

/// A colour in OpenCV's channel order.
pub type Bgr = [u8; 3];

/// A packed BGR8 image, row-major, no padding (the layout `Mat` CV_8UC3 uses when continuous).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Image {
    pub width: usize,
    pub height: usize,
    pub data: Vec<u8>,
}

impl Image {
    pub fn new(width: usize, height: usize, fill: Bgr) -> Self {
        let mut data = Vec::with_capacity(width * height * 3);
        for _ in 0..width * height {
            data.extend_from_slice(&fill);
        }
        Image { width, height, data }
    }

    #[inline]
    pub fn get(&self, x: usize, y: usize) -> Bgr {
        let i = (y * self.width + x) * 3;
        [self.data[i], self.data[i + 1], self.data[i + 2]]
    }

    /// Nearest pixel with the border replicated, for shifts and patch cuts near an edge.
    #[inline]
    pub fn get_clamped(&self, x: i64, y: i64) -> Bgr {
        let x = x.clamp(0, self.width as i64 - 1) as usize;
        let y = y.clamp(0, self.height as i64 - 1) as usize;
        self.get(x, y)
    }

    /// Blends `c` over pixel (x, y) with opacity `a` in [0, 1]; out-of-frame pixels are ignored
    /// so shapes may cross the border.
    #[inline]
    pub fn blend(&mut self, x: i64, y: i64, c: Bgr, a: f64) {
        if x < 0 || y < 0 || x >= self.width as i64 || y >= self.height as i64 || a <= 0.0 {
            return;
        }
        let i = (y as usize * self.width + x as usize) * 3;
        let a = a.min(1.0);
        for k in 0..3 {
            let v = f64::from(self.data[i + k]) * (1.0 - a) + f64::from(c[k]) * a;
            self.data[i + k] = v.round().clamp(0.0, 255.0) as u8;
        }
    }

    pub fn fill_rect(&mut self, x0: f64, y0: f64, x1: f64, y1: f64, c: Bgr, a: f64) {
        let (xa, xb) = (x0.min(x1).floor() as i64, x0.max(x1).ceil() as i64);
        let (ya, yb) = (y0.min(y1).floor() as i64, y0.max(y1).ceil() as i64);
        for y in ya.max(0)..yb.min(self.height as i64) {
            for x in xa.max(0)..xb.min(self.width as i64) {
                self.blend(x, y, c, a);
            }
        }
    }

    /// A rotated filled ellipse; `angle` in radians. Edges get a one-pixel soft ramp so moving
    /// shapes do not flicker between whole pixels.
    pub fn fill_ellipse(&mut self, cx: f64, cy: f64, rx: f64, ry: f64, angle: f64, c: Bgr, a: f64) {
        let (rx, ry) = (rx.max(0.5), ry.max(0.5));
        let r = rx.max(ry) + 1.0;
        let (s, co) = angle.sin_cos();
        for y in (cy - r).floor() as i64..=(cy + r).ceil() as i64 {
            for x in (cx - r).floor() as i64..=(cx + r).ceil() as i64 {
                let (dx, dy) = (x as f64 - cx, y as f64 - cy);
                let u = (dx * co + dy * s) / rx;
                let v = (-dx * s + dy * co) / ry;
                let d = (u * u + v * v).sqrt();
                // Distance outside the boundary in pixels, roughly.
                let edge = (d - 1.0) * rx.min(ry);
                self.blend(x, y, c, a * (0.5 - edge).clamp(0.0, 1.0));
            }
        }
    }

    pub fn fill_circle(&mut self, cx: f64, cy: f64, r: f64, c: Bgr, a: f64) {
        self.fill_ellipse(cx, cy, r, r, 0.0, c, a);
    }

    /// A thick segment with round caps (a limb, a pole).
    pub fn fill_capsule(&mut self, ax: f64, ay: f64, bx: f64, by: f64, r: f64, c: Bgr, a: f64) {
        let r = r.max(0.5);
        let (x0, x1) = (ax.min(bx) - r - 1.0, ax.max(bx) + r + 1.0);
        let (y0, y1) = (ay.min(by) - r - 1.0, ay.max(by) + r + 1.0);
        let (vx, vy) = (bx - ax, by - ay);
        let len2 = (vx * vx + vy * vy).max(1e-9);
        for y in y0.floor() as i64..=y1.ceil() as i64 {
            for x in x0.floor() as i64..=x1.ceil() as i64 {
                let (px, py) = (x as f64 - ax, y as f64 - ay);
                let t = ((px * vx + py * vy) / len2).clamp(0.0, 1.0);
                let (dx, dy) = (px - t * vx, py - t * vy);
                let d = (dx * dx + dy * dy).sqrt();
                self.blend(x, y, c, a * (r + 0.5 - d).clamp(0.0, 1.0));
            }
        }
    }

    /// Per-pixel gain/bias (lighting change, contrast), saturating.
    pub fn adjust(&mut self, gain: f64, bias: f64) {
        let lut: Vec<u8> = (0..256).map(|v| (f64::from(v) * gain + bias).round().clamp(0.0, 255.0) as u8).collect();
        for v in &mut self.data {
            *v = lut[usize::from(*v)];
        }
    }

    /// Zero-mean sensor noise of amplitude `amp` grey levels, a pure function of (key, pixel), so
    /// frames are reproducible without threading an RNG through every pixel.
    pub fn add_noise(&mut self, key: u64, amp: i32) {
        if amp <= 0 {
            return;
        }
        let span = (2 * amp + 1) as u64;
        for (i, v) in self.data.iter_mut().enumerate() {
            let h = mix(key ^ (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
            let n = (h % span) as i32 - amp;
            *v = (i32::from(*v) + n).clamp(0, 255) as u8;
        }
    }

    /// Whole image translated by (dx, dy) with the border replicated (a shaken camera).
    pub fn shifted(&self, dx: i64, dy: i64) -> Image {
        let mut out = self.clone();
        for y in 0..self.height {
            for x in 0..self.width {
                let c = self.get_clamped(x as i64 - dx, y as i64 - dy);
                let i = (y * self.width + x) * 3;
                out.data[i..i + 3].copy_from_slice(&c);
            }
        }
        out
    }

    /// Box blur of the given radius, three passes (close to a Gaussian): a defocused lens.
    pub fn blurred(&self, radius: usize) -> Image {
        let mut img = self.clone();
        for _ in 0..3 {
            img = img.box_pass(radius, true).box_pass(radius, false);
        }
        img
    }

    fn box_pass(&self, radius: usize, horizontal: bool) -> Image {
        let (w, h) = (self.width as i64, self.height as i64);
        let r = radius as i64;
        let n = (2 * r + 1) as u32;
        let mut out = self.clone();
        let (outer, inner) = if horizontal { (h, w) } else { (w, h) };
        for o in 0..outer {
            let at = |i: i64| -> usize {
                let i = i.clamp(0, inner - 1);
                let (x, y) = if horizontal { (i, o) } else { (o, i) };
                ((y * w + x) * 3) as usize
            };
            let mut sum = [0u32; 3];
            for i in -r..=r {
                let p = at(i);
                for k in 0..3 {
                    sum[k] += u32::from(self.data[p + k]);
                }
            }
            for i in 0..inner {
                let p = at(i);
                for k in 0..3 {
                    out.data[p + k] = ((sum[k] + n / 2) / n) as u8;
                }
                let (add, sub) = (at(i + r + 1), at(i - r));
                for k in 0..3 {
                    sum[k] = sum[k] + u32::from(self.data[add + k]) - u32::from(self.data[sub + k]);
                }
            }
        }
        out
    }

    /// Bilinear resample of the window (x, y, w, h) of `self` (source pixels, may be fractional)
    /// to `out_w` x `out_h`, optionally mirrored left-right.
    pub fn crop_resize(&self, x: f64, y: f64, w: f64, h: f64, out_w: usize, out_h: usize, mirror: bool) -> Image {
        let mut out = Image::new(out_w, out_h, [0, 0, 0]);
        let sx = w / out_w as f64;
        let sy = h / out_h as f64;
        let maxx = self.width as f64 - 1.0;
        let maxy = self.height as f64 - 1.0;
        for oy in 0..out_h {
            let fy = (y + (oy as f64 + 0.5) * sy - 0.5).clamp(0.0, maxy);
            let y0 = fy.floor() as usize;
            let y1 = (y0 + 1).min(self.height - 1);
            let ty = fy - y0 as f64;
            for ox in 0..out_w {
                let col = if mirror { out_w - 1 - ox } else { ox };
                let fx = (x + (col as f64 + 0.5) * sx - 0.5).clamp(0.0, maxx);
                let x0 = fx.floor() as usize;
                let x1 = (x0 + 1).min(self.width - 1);
                let tx = fx - x0 as f64;
                let (a, b, c, d) = (self.get(x0, y0), self.get(x1, y0), self.get(x0, y1), self.get(x1, y1));
                let i = (oy * out_w + ox) * 3;
                for k in 0..3 {
                    let top = f64::from(a[k]) * (1.0 - tx) + f64::from(b[k]) * tx;
                    let bot = f64::from(c[k]) * (1.0 - tx) + f64::from(d[k]) * tx;
                    out.data[i + k] = (top * (1.0 - ty) + bot * ty).round() as u8;
                }
            }
        }
        out
    }

    /// Pastes `patch` with its per-pixel opacity `mask` (0..=255) at top-left (x, y).
    pub fn paste_masked(&mut self, patch: &Image, mask: &[u8], x: i64, y: i64) {
        for py in 0..patch.height {
            for px in 0..patch.width {
                let m = mask[py * patch.width + px];
                if m > 0 {
                    self.blend(x + px as i64, y + py as i64, patch.get(px, py), f64::from(m) / 255.0);
                }
            }
        }
    }

    /// A copy of the window at (x, y) of size w x h, border replicated where it leaves the frame.
    pub fn cut(&self, x: i64, y: i64, w: usize, h: usize) -> Image {
        let mut out = Image::new(w, h, [0, 0, 0]);
        for py in 0..h {
            for px in 0..w {
                let c = self.get_clamped(x + px as i64, y + py as i64);
                let i = (py * w + px) * 3;
                out.data[i..i + 3].copy_from_slice(&c);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shift_replicates_border() {
        let mut img = Image::new(4, 1, [0, 0, 0]);
        img.data[0..3].copy_from_slice(&[9, 9, 9]);
        let s = img.shifted(2, 0);
        assert_eq!(s.get(0, 0), [9, 9, 9]);
        assert_eq!(s.get(2, 0), [9, 9, 9]);
        assert_eq!(s.get(3, 0), [0, 0, 0]);
    }

    #[test]
    fn blur_keeps_flat_image_flat() {
        let img = Image::new(10, 8, [50, 100, 150]);
        assert_eq!(img.blurred(3), img);
    }

    #[test]
    fn identity_resize_is_exact() {
        let mut img = Image::new(5, 4, [0, 0, 0]);
        for (i, v) in img.data.iter_mut().enumerate() {
            *v = (i * 7 % 256) as u8;
        }
        assert_eq!(img.crop_resize(0.0, 0.0, 5.0, 4.0, 5, 4, false), img);
    }
}
