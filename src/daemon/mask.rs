//! Region masks: polygons in normalised 0..1 coordinates, rasterised once per frame size into
//! row spans and blanked (set to black) in a frame before preprocessing, so masked regions (a
//! timestamp overlay, a road outside the fence) never reach the feature extractor.

use crate::source::{Frame, PixelFormat};

/// A rasterised mask for one frame size: the pixel spans `[x0, x1)` of each row to blank.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mask {
    width: u32,
    height: u32,
    spans: Vec<(u32, u32, u32)>,
}

impl Mask {
    /// Rasterises `polygons` for a `width` x `height` frame. A pixel is masked when its centre
    /// lies inside any polygon (even-odd rule per polygon).
    pub fn new(polygons: &[Vec<[f32; 2]>], width: u32, height: u32) -> Mask {
        let mut spans = Vec::new();
        for y in 0..height {
            let yc = (f64::from(y) + 0.5) / f64::from(height);
            for poly in polygons {
                let mut xs: Vec<f64> = Vec::new();
                for (i, a) in poly.iter().enumerate() {
                    let b = poly[(i + 1) % poly.len()];
                    let (ax, ay, bx, by) = (f64::from(a[0]), f64::from(a[1]), f64::from(b[0]), f64::from(b[1]));
                    // Half-open rule on y so a vertex shared by two edges is counted once.
                    if (ay <= yc && yc < by) || (by <= yc && yc < ay) {
                        xs.push(ax + (yc - ay) / (by - ay) * (bx - ax));
                    }
                }
                xs.sort_by(f64::total_cmp);
                for pair in xs.chunks_exact(2) {
                    // Pixels whose centre (x + 0.5) / width lies in [pair[0], pair[1]).
                    let x0 = (pair[0] * f64::from(width) - 0.5).ceil().clamp(0.0, f64::from(width)) as u32;
                    let x1 = (pair[1] * f64::from(width) - 0.5).ceil().clamp(0.0, f64::from(width)) as u32;
                    if x1 > x0 {
                        spans.push((y, x0, x1));
                    }
                }
            }
        }
        Mask { width, height, spans }
    }

    /// Whether this mask was made for frames of this size.
    pub fn fits(&self, width: u32, height: u32) -> bool {
        self.width == width && self.height == height
    }

    /// Masked pixels.
    pub fn pixels(&self) -> u64 {
        self.spans.iter().map(|(_, a, b)| u64::from(b - a)).sum()
    }

    /// Sets the masked pixels of a frame of this mask's size to black: all three bytes of a BGR
    /// pixel, or the luma of an I420 pixel (16 in TV range, 0 in full range). The chroma of an
    /// I420 frame is left alone: only grey models read I420 frames, and they read luma only.
    pub fn apply(&self, frame: &mut Frame) {
        if !self.fits(frame.width, frame.height) || frame.data.len() < frame.format.frame_len(self.width, self.height) {
            return;
        }
        let (bytes, black) = match frame.format {
            PixelFormat::Bgr => (3, 0),
            PixelFormat::I420 { full_range } => (1, if full_range { 0 } else { 16 }),
        };
        let row = self.width as usize * bytes;
        for &(y, x0, x1) in &self.spans {
            let start = y as usize * row + x0 as usize * bytes;
            let end = y as usize * row + x1 as usize * bytes;
            frame.data[start..end].fill(black);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    fn frame(w: u32, h: u32) -> Frame {
        Frame {
            index: 0,
            pts_ms: 0.0,
            width: w,
            height: h,
            format: PixelFormat::Bgr,
            data: vec![200; (w * h * 3) as usize],
            captured: Instant::now(),
        }
    }

    #[test]
    fn rectangle_blanks_exactly_its_pixels() {
        let rect = vec![[0.0, 0.0], [0.2, 0.0], [0.2, 0.1], [0.0, 0.1]];
        let mask = Mask::new(&[rect], 100, 50);
        assert_eq!(mask.pixels(), 20 * 5);
        let mut f = frame(100, 50);
        mask.apply(&mut f);
        let px = |x: usize, y: usize| f.data[(y * 100 + x) * 3];
        assert_eq!(px(0, 0), 0);
        assert_eq!(px(19, 4), 0);
        assert_eq!(px(20, 4), 200);
        assert_eq!(px(19, 5), 200);
        assert_eq!(f.data.iter().filter(|v| **v == 0).count(), 20 * 5 * 3);
    }

    #[test]
    fn an_i420_frame_gets_black_luma_and_keeps_its_chroma() {
        let rect = vec![[0.0, 0.0], [0.2, 0.0], [0.2, 0.1], [0.0, 0.1]];
        let mask = Mask::new(&[rect], 100, 50);
        for (full_range, black) in [(false, 16u8), (true, 0)] {
            let format = PixelFormat::I420 { full_range };
            let mut f = Frame { format, data: vec![200; format.frame_len(100, 50)], ..frame(100, 50) };
            mask.apply(&mut f);
            let (luma, chroma) = f.data.split_at(100 * 50);
            assert_eq!(luma[0], black);
            assert_eq!(luma[4 * 100 + 19], black);
            assert_eq!(luma[4 * 100 + 20], 200);
            assert_eq!(luma.iter().filter(|v| **v == black).count(), 20 * 5);
            assert!(chroma.iter().all(|v| *v == 200));
        }
    }

    #[test]
    fn triangle_covers_half_its_box_and_polygons_add_up() {
        let tri = vec![[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]];
        let mask = Mask::new(&[tri], 200, 200);
        let half = 200.0 * 200.0 / 2.0;
        assert!((mask.pixels() as f64 - half).abs() < 201.0, "{}", mask.pixels());
        let left = vec![[0.0, 0.0], [0.5, 0.0], [0.5, 1.0], [0.0, 1.0]];
        let right = vec![[0.5, 0.0], [1.0, 0.0], [1.0, 1.0], [0.5, 1.0]];
        assert_eq!(Mask::new(&[left, right], 64, 48).pixels(), 64 * 48);
    }

    #[test]
    fn a_frame_of_another_size_is_left_alone() {
        let mask = Mask::new(&[vec![[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0]]], 10, 10);
        let mut f = frame(20, 10);
        mask.apply(&mut f);
        assert!(f.data.iter().all(|v| *v == 200));
    }
}
