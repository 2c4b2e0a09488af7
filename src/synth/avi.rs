//! A minimal AVI (RIFF) muxer for one Motion-JPEG video stream: the container around the JPEG
//! frames the generator encodes. Layout (Microsoft's AVI RIFF reference): `RIFF 'AVI '` holding
//! `LIST 'hdrl'` (`avih`, then `LIST 'strl'` with `strh` and a `BITMAPINFOHEADER` `strf`),
//! `LIST 'movi'` with one `00dc` chunk per frame, and the `idx1` index (offsets relative to the
//! `movi` fourcc, every frame a key frame). Sizes that are only known at the end are patched in
//! [`AviWriter::finish`]. Plain RIFF limits a file to 1 GiB here, far above a synth video.

use std::fs::File;
use std::io::{BufWriter, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// Plain (non-OpenDML) AVI readers take 32-bit sizes; stay well inside them.
const MAX_BYTES: u64 = 1 << 30;
const AVIF_HASINDEX: u32 = 0x10;
const AVIIF_KEYFRAME: u32 = 0x10;

/// Byte offsets of the fields patched at the end.
const RIFF_SIZE_AT: u64 = 4;
const AVIH_TOTAL_FRAMES_AT: u64 = 48;
const AVIH_BUFFER_AT: u64 = 60;
const STRH_LENGTH_AT: u64 = 140;
const STRH_BUFFER_AT: u64 = 144;
/// Where `LIST <size> movi` starts: right after the fixed-size header list.
const MOVI_LIST_AT: u64 = 212;

pub struct AviWriter {
    file: BufWriter<File>,
    path: PathBuf,
    /// (offset from the `movi` fourcc, size) of every frame chunk.
    index: Vec<(u32, u32)>,
    /// Bytes written so far, i.e. the position of the next chunk.
    pos: u64,
    largest: u32,
}

fn fourcc(s: &[u8; 4]) -> u32 {
    u32::from_le_bytes(*s)
}

impl AviWriter {
    /// Creates `path` and writes the headers for a `width` x `height` MJPG stream at `fps`.
    pub fn create(path: &Path, fps: f64, width: usize, height: usize) -> std::io::Result<Self> {
        let invalid = |m: String| std::io::Error::new(std::io::ErrorKind::InvalidInput, m);
        if !(fps.is_finite() && fps > 0.0) {
            return Err(invalid(format!("frame rate must be positive, got {fps}")));
        }
        let (w, h) = (
            u32::try_from(width).map_err(|_| invalid(format!("width {width} too large")))?,
            u32::try_from(height).map_err(|_| invalid(format!("height {height} too large")))?,
        );
        // Frame rate as rate / scale with a millisecond-exact scale (10 fps -> 10000 / 1000).
        let scale = 1000u32;
        let rate = (fps * f64::from(scale)).round().max(1.0) as u32;
        let us_per_frame = (1e6 / fps).round() as u32;

        let mut h_bytes = Vec::with_capacity(MOVI_LIST_AT as usize + 12);
        let mut put = |v: u32| h_bytes.extend_from_slice(&v.to_le_bytes());
        put(fourcc(b"RIFF"));
        put(0); // RIFF size, patched
        put(fourcc(b"AVI "));
        put(fourcc(b"LIST"));
        put(4 + (8 + 56) + (12 + (8 + 56) + (8 + 40))); // hdrl size: 'hdrl' + avih + strl
        put(fourcc(b"hdrl"));
        put(fourcc(b"avih"));
        put(56);
        put(us_per_frame);
        put(0); // max bytes per second (unknown, optional)
        put(0); // padding granularity
        put(AVIF_HASINDEX);
        put(0); // total frames, patched
        put(0); // initial frames
        put(1); // streams
        put(0); // suggested buffer size, patched
        put(w);
        put(h);
        for _ in 0..4 {
            put(0);
        }
        put(fourcc(b"LIST"));
        put(4 + (8 + 56) + (8 + 40));
        put(fourcc(b"strl"));
        put(fourcc(b"strh"));
        put(56);
        put(fourcc(b"vids"));
        put(fourcc(b"MJPG"));
        put(0); // flags
        put(0); // priority, language
        put(0); // initial frames
        put(scale);
        put(rate);
        put(0); // start
        put(0); // length in frames, patched
        put(0); // suggested buffer size, patched
        put(u32::MAX); // quality: default
        put(0); // sample size: varies
        put(0); // rcFrame left, top (two i16)
        put((w & 0xffff) | ((h & 0xffff) << 16)); // rcFrame right, bottom
        put(fourcc(b"strf"));
        put(40);
        put(40); // BITMAPINFOHEADER size
        put(w);
        put(h);
        put(1 | (24 << 16)); // planes 1, 24 bits per pixel
        put(fourcc(b"MJPG"));
        put(w.saturating_mul(h).saturating_mul(3)); // image size
        for _ in 0..4 {
            put(0); // pixels per metre x/y, colours used, important
        }
        debug_assert_eq!(h_bytes.len() as u64, MOVI_LIST_AT);
        h_bytes.extend_from_slice(&fourcc(b"LIST").to_le_bytes());
        h_bytes.extend_from_slice(&0u32.to_le_bytes()); // movi size, patched
        h_bytes.extend_from_slice(&fourcc(b"movi").to_le_bytes());

        let mut file = BufWriter::new(File::create(path)?);
        file.write_all(&h_bytes)?;
        Ok(AviWriter { file, path: path.to_path_buf(), index: Vec::new(), pos: h_bytes.len() as u64, largest: 0 })
    }

    /// Appends one JPEG frame.
    pub fn write_frame(&mut self, jpeg: &[u8]) -> std::io::Result<()> {
        let len = u32::try_from(jpeg.len()).ok().filter(|_| self.pos + 8 + jpeg.len() as u64 + 1 < MAX_BYTES);
        let Some(len) = len else {
            return Err(std::io::Error::other(format!("{} would exceed {MAX_BYTES} bytes", self.path.display())));
        };
        // Offsets count from the `movi` fourcc, 8 bytes into the movi list.
        let offset = (self.pos - (MOVI_LIST_AT + 8)) as u32;
        self.file.write_all(&fourcc(b"00dc").to_le_bytes())?;
        self.file.write_all(&len.to_le_bytes())?;
        self.file.write_all(jpeg)?;
        self.pos += 8 + u64::from(len);
        if len % 2 == 1 {
            // RIFF chunks are word aligned.
            self.file.write_all(&[0])?;
            self.pos += 1;
        }
        self.index.push((offset, len));
        self.largest = self.largest.max(len);
        Ok(())
    }

    /// Frames written so far.
    pub fn frames(&self) -> usize {
        self.index.len()
    }

    /// Writes the index and the sizes; returns the number of frames.
    pub fn finish(mut self) -> std::io::Result<usize> {
        let movi_size = (self.pos - (MOVI_LIST_AT + 8)) as u32;
        self.file.write_all(&fourcc(b"idx1").to_le_bytes())?;
        self.file.write_all(&((self.index.len() * 16) as u32).to_le_bytes())?;
        for &(offset, len) in &self.index {
            for v in [fourcc(b"00dc"), AVIIF_KEYFRAME, offset, len] {
                self.file.write_all(&v.to_le_bytes())?;
            }
        }
        let end = self.pos + 8 + self.index.len() as u64 * 16;
        let frames = self.index.len() as u32;
        let buffer = self.largest + 8;
        for (at, v) in [
            (RIFF_SIZE_AT, (end - 8) as u32),
            (AVIH_TOTAL_FRAMES_AT, frames),
            (AVIH_BUFFER_AT, buffer),
            (STRH_LENGTH_AT, frames),
            (STRH_BUFFER_AT, buffer),
            (MOVI_LIST_AT + 4, movi_size),
        ] {
            self.file.seek(SeekFrom::Start(at))?;
            self.file.write_all(&v.to_le_bytes())?;
        }
        self.file.flush()?;
        Ok(self.index.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn u32_at(b: &[u8], at: usize) -> u32 {
        u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
    }

    #[test]
    fn layout_sizes_and_index_are_consistent() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.avi");
        let mut w = AviWriter::create(&path, 10.0, 32, 24).unwrap();
        let frames: [&[u8]; 3] = [b"abc", b"defg", b"h"];
        for f in frames {
            w.write_frame(f).unwrap();
        }
        assert_eq!(w.finish().unwrap(), 3);
        let b = std::fs::read(&path).unwrap();
        assert_eq!(&b[0..4], b"RIFF");
        assert_eq!(u32_at(&b, 4) as usize, b.len() - 8);
        assert_eq!(&b[8..12], b"AVI ");
        assert_eq!(&b[12..16], b"LIST");
        // hdrl ends where movi starts.
        assert_eq!(20 + u32_at(&b, 16) as usize, MOVI_LIST_AT as usize);
        assert_eq!(u32_at(&b, 32), 100_000, "microseconds per frame");
        assert_eq!(u32_at(&b, AVIH_TOTAL_FRAMES_AT as usize), 3);
        assert_eq!(u32_at(&b, STRH_LENGTH_AT as usize), 3);
        assert_eq!(u32_at(&b, 64), 32);
        assert_eq!(u32_at(&b, 68), 24);
        let m = MOVI_LIST_AT as usize;
        assert_eq!(&b[m..m + 4], b"LIST");
        assert_eq!(&b[m + 8..m + 12], b"movi");
        let movi_end = m + 8 + u32_at(&b, m + 4) as usize;
        assert_eq!(&b[movi_end..movi_end + 4], b"idx1");
        assert_eq!(u32_at(&b, movi_end + 4), 48);
        // Each index entry points at its chunk (relative to the movi fourcc), odd sizes padded.
        let mut expected_offset = 4;
        for (i, f) in frames.iter().enumerate() {
            let e = movi_end + 8 + 16 * i;
            assert_eq!(&b[e..e + 4], b"00dc");
            assert_eq!(u32_at(&b, e + 4), AVIIF_KEYFRAME);
            let off = u32_at(&b, e + 8) as usize;
            assert_eq!(off, expected_offset);
            assert_eq!(u32_at(&b, e + 12) as usize, f.len());
            let chunk = m + 8 + off;
            assert_eq!(&b[chunk..chunk + 4], b"00dc");
            assert_eq!(&b[chunk + 8..chunk + 8 + f.len()], *f);
            expected_offset += 8 + f.len() + f.len() % 2;
        }
        assert_eq!(movi_end + 8 + 48, b.len());
    }

    #[test]
    fn rejects_a_non_positive_frame_rate() {
        let dir = tempfile::tempdir().unwrap();
        let e = AviWriter::create(&dir.path().join("a.avi"), 0.0, 32, 24).err().unwrap();
        assert!(e.to_string().contains("frame rate"), "{e}");
    }
}
