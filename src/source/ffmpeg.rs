//! FFmpeg's own decoder API (through `ffdec.c`, compiled by `build.rs`): files and network
//! streams decoded to I420 frames. OpenCV's capture converts every frame to BGR with `sws_scale`
//! and copies it out, about a third of the decode cost of a vtest.avi frame on this project's
//! machine, which the daemon's grey model never needs (it reads the luma plane; clips are I420).
//!
//! One decoder thread per source (`threads = 1`): the daemon runs one source per camera on a few
//! cores, where FFmpeg's frame threads would add a frame of latency per thread and contend.

use super::{
    check_file, Frame, FrameBuffers, FrameSource, PixelFormat, PtsClock, SourceError, SourceInfo, FALLBACK_FPS,
};
use std::ffi::{c_char, c_int, CString};
use std::path::Path;
use std::time::{Duration, Instant};

#[repr(C)]
struct VgDec {
    _opaque: [u8; 0],
}

#[repr(C)]
struct VgFrame {
    width: c_int,
    height: c_int,
    plane: [*const u8; 3],
    stride: [c_int; 3],
    full_range: c_int,
    has_pts: c_int,
    pts_ms: f64,
}

#[repr(C)]
#[derive(Default)]
struct VgInfo {
    width: c_int,
    height: c_int,
    fps: f64,
    frames: i64,
}

extern "C" {
    fn vg_open(
        url: *const c_char,
        timeout_ms: c_int,
        threads: c_int,
        out: *mut *mut VgDec,
        err: *mut c_char,
        errlen: usize,
    ) -> c_int;
    fn vg_get_info(d: *const VgDec, info: *mut VgInfo);
    fn vg_next(d: *mut VgDec, out: *mut VgFrame, skipped: *mut c_int, err: *mut c_char, errlen: usize) -> c_int;
    fn vg_close(d: *mut VgDec);
    fn vg_init(f: extern "C" fn(c_int, *const c_char));
}

/// FFmpeg's own log lines (a refused connection, a damaged packet it concealed), to tracing at
/// debug level under target "ffmpeg": vigil reports what matters through its own errors, and an
/// unreachable camera retried every few seconds must not flood the log.
extern "C" fn ffmpeg_log(level: c_int, line: *const c_char) {
    if line.is_null() {
        return;
    }
    // SAFETY: ffdec.c passes a NUL-terminated line that lives for the duration of the call.
    let text = unsafe { std::ffi::CStr::from_ptr(line) }.to_string_lossy();
    tracing::debug!(target: "ffmpeg", level, "{}", redact_credentials(&text));
}

/// `scheme://user:password@host` anywhere in a line becomes `scheme://***@host`: FFmpeg's
/// messages may quote the URL a camera was opened with, and credentials never reach a log.
fn redact_credentials(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut rest = line;
    while let Some(at) = rest.find("://") {
        let (head, tail) = rest.split_at(at + 3);
        out.push_str(head);
        let end = tail.find(|c: char| c == '/' || c.is_whitespace()).unwrap_or(tail.len());
        match tail[..end].rfind('@') {
            Some(user_end) => {
                out.push_str("***");
                rest = &tail[user_end..];
            }
            None => rest = tail,
        }
    }
    out.push_str(rest);
    out
}

/// Routes FFmpeg's log to [`ffmpeg_log`] and initialises its network layer, once.
fn init() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    // SAFETY: sets a process-wide callback to a function that lives as long as the program.
    ONCE.call_once(|| unsafe { vg_init(ffmpeg_log) });
}

/// Owns a `vg_dec`; closes it on drop.
struct Decoder(*mut VgDec);

// SAFETY: a `vg_dec` is used by one thread at a time (every call takes `&mut self` or happens in
// `drop`); FFmpeg's demuxer and decoder contexts carry no thread affinity.
unsafe impl Send for Decoder {}

impl Drop for Decoder {
    fn drop(&mut self) {
        // SAFETY: `self.0` came from a successful `vg_open` and is closed exactly once.
        unsafe { vg_close(self.0) }
    }
}

const ERR_LEN: usize = 512;

fn message(buf: &[u8]) -> String {
    let end = buf.iter().position(|b| *b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

/// A video file or network stream decoded to I420 with FFmpeg.
pub struct FfmpegSource {
    info: SourceInfo,
    dec: Decoder,
    /// The first frame, read at open so corrupt files fail early; handed out by the first call.
    first: Option<Frame>,
    next_index: u64,
    clock: PtsClock,
    finished: bool,
    is_file: bool,
    /// Damaged packets the decoder skipped (concealed by FFmpeg, as OpenCV's backend does too).
    skipped: c_int,
    /// Where frame buffers come from: a pool of the source's own (nobody hands buffers back, so
    /// each is new) unless the consumer's is set with `with_buffers`.
    buffers: FrameBuffers,
}

impl FfmpegSource {
    /// Opens a video file, checking existence and size first so errors are specific, then decodes
    /// the first frame (a file with no decodable frame fails here with `NoFrames`).
    pub fn open_file(path: &Path) -> Result<Self, SourceError> {
        check_file(path)?;
        let name = path.display().to_string();
        let target = path.to_str().ok_or_else(|| SourceError::Open {
            name: name.clone(),
            reason: "the path is not valid UTF-8, which FFmpeg's file names need".into(),
        })?;
        Self::open(target, name, None, true)
    }

    /// Opens a network stream (RTSP, HTTP, ...). `name` (a camera id) is what appears in errors
    /// and logs: the URL may carry credentials and is never logged or put in an error. A read that
    /// gets no data for `timeout` fails (the daemon's stall detection); opening gets at least 10 s.
    pub fn open_url(url: &str, name: &str, timeout: Duration) -> Result<Self, SourceError> {
        Self::open(url, name.to_string(), Some(timeout), false)
    }

    fn open(target: &str, name: String, timeout: Option<Duration>, is_file: bool) -> Result<Self, SourceError> {
        init();
        let open_err = |reason: String| SourceError::Open { name: name.clone(), reason };
        let c_target = CString::new(target).map_err(|_| open_err("the name contains a NUL byte".into()))?;
        let timeout_ms = timeout.map_or(0, |t| t.as_millis().clamp(1, i32::MAX as u128) as c_int);
        let mut raw: *mut VgDec = std::ptr::null_mut();
        let mut err = [0u8; ERR_LEN];
        // SAFETY: valid NUL-terminated string, out-pointer and error buffer of the given length.
        let rc = unsafe { vg_open(c_target.as_ptr(), timeout_ms, 1, &mut raw, err.as_mut_ptr().cast(), ERR_LEN) };
        if rc < 0 || raw.is_null() {
            return Err(open_err(format!("FFmpeg: {}", message(&err))));
        }
        let dec = Decoder(raw);
        let mut vi = VgInfo::default();
        // SAFETY: `dec.0` is an open decoder; `vi` is a valid out-pointer.
        unsafe { vg_get_info(dec.0, &mut vi) };
        let fps = if vi.fps.is_finite() && vi.fps > 0.0 && vi.fps <= 1000.0 { vi.fps } else { FALLBACK_FPS };
        let info = SourceInfo {
            name,
            width: vi.width.max(0) as u32,
            height: vi.height.max(0) as u32,
            fps,
            frame_count: (vi.frames > 0).then_some(vi.frames as u64),
        };
        let mut source = Self {
            clock: PtsClock::new(fps),
            info,
            dec,
            first: None,
            next_index: 0,
            finished: false,
            is_file,
            skipped: 0,
            buffers: FrameBuffers::new(1),
        };
        let decoded = source.decode_next();
        source.first = Some(super::first_frame(&mut source.info, decoded)?);
        Ok(source)
    }

    /// Fills frames into buffers taken from `buffers` (which the consumer hands back when done
    /// with a frame) instead of a new allocation each.
    pub fn with_buffers(mut self, buffers: FrameBuffers) -> Self {
        self.buffers = buffers;
        self
    }

    fn decode_next(&mut self) -> Result<Option<Frame>, SourceError> {
        if self.finished {
            return Ok(None);
        }
        let index = self.next_index;
        let mut vf = VgFrame {
            width: 0,
            height: 0,
            plane: [std::ptr::null(); 3],
            stride: [0; 3],
            full_range: 0,
            has_pts: 0,
            pts_ms: 0.0,
        };
        let mut err = [0u8; ERR_LEN];
        // SAFETY: open decoder, valid out-pointers and error buffer.
        let rc = unsafe { vg_next(self.dec.0, &mut vf, &mut self.skipped, err.as_mut_ptr().cast(), ERR_LEN) };
        let decode_err = |reason: String| SourceError::Decode { name: self.info.name.clone(), frame: index, reason };
        if rc < 0 {
            self.finished = true;
            return Err(decode_err(format!("FFmpeg: {}", message(&err))));
        }
        if rc == 0 {
            self.finished = true;
            return match super::truncation(&self.info, self.is_file, index) {
                Some(e) => Err(e),
                None => Ok(None),
            };
        }
        let captured = Instant::now();
        if vf.width <= 0 || vf.height <= 0 || vf.plane.iter().any(|p| p.is_null()) {
            return Err(decode_err(format!("the decoder returned an empty {}x{} frame", vf.width, vf.height)));
        }
        let (w, h) = (vf.width as usize, vf.height as usize);
        let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
        let format = PixelFormat::I420 { full_range: vf.full_range != 0 };
        let len = format.frame_len(vf.width as u32, vf.height as u32);
        let mut data = self.buffers.take(len);
        for (p, (pw, ph)) in [(w, h), (cw, ch), (cw, ch)].into_iter().enumerate() {
            let stride = vf.stride[p];
            if stride < pw as c_int {
                return Err(decode_err(format!("plane {p} has a stride of {stride} bytes for {pw} pixels")));
            }
            for y in 0..ph {
                // SAFETY: FFmpeg's plane `p` holds `ph` rows of `stride` bytes, each with at least
                // `pw` valid bytes (checked above); they stay valid until the next `vg_next`.
                let row = unsafe { std::slice::from_raw_parts(vf.plane[p].offset(y as isize * stride as isize), pw) };
                data.extend_from_slice(row);
            }
        }
        let pts_ms = self.clock.next(index, (vf.has_pts != 0).then_some(vf.pts_ms));
        self.next_index += 1;
        Ok(Some(Frame { index, pts_ms, width: vf.width as u32, height: vf.height as u32, format, data, captured }))
    }
}

impl FrameSource for FfmpegSource {
    fn info(&self) -> &SourceInfo {
        &self.info
    }

    fn next_frame(&mut self) -> Result<Option<Frame>, SourceError> {
        if let Some(first) = self.first.take() {
            return Ok(Some(first));
        }
        self.decode_next()
    }

    fn damaged_packets(&self) -> u64 {
        self.skipped.max(0) as u64
    }
}

/// Decodes every frame of `path` to I420 (copied out, as the daemon gets them) and returns
/// (frames, seconds): the YUV decoder's floor, beside [`super::decode_only`]'s OpenCV one.
pub fn decode_only_yuv(path: &Path) -> Result<(u64, f64), SourceError> {
    let mut src = FfmpegSource::open_file(path)?;
    let start = Instant::now();
    let mut frames = 0u64;
    loop {
        match src.next_frame() {
            Ok(Some(_)) => frames += 1,
            Ok(None) | Err(SourceError::Truncated { .. }) => break,
            Err(e) => return Err(e),
        }
    }
    Ok((frames, start.elapsed().as_secs_f64()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const VTEST: &str = "/usr/share/doc/opencv-doc/examples/data/vtest.avi";

    #[test]
    fn credentials_in_ffmpeg_log_lines_are_redacted() {
        assert_eq!(
            redact_credentials("[rtsp @ 0x1] method DESCRIBE rtsp://admin:s3cret@10.0.0.5:554/s failed"),
            "[rtsp @ 0x1] method DESCRIBE rtsp://***@10.0.0.5:554/s failed"
        );
        assert_eq!(redact_credentials("a http://u:p@h/x and rtsp://v:q@k b"), "a http://***@h/x and rtsp://***@k b");
        assert_eq!(redact_credentials("tcp://127.0.0.1:9?timeout=0 failed"), "tcp://127.0.0.1:9?timeout=0 failed");
        assert_eq!(redact_credentials("no url, a@b"), "no url, a@b");
    }

    #[test]
    fn vtest_decodes_to_i420_with_its_header_facts() {
        let mut src = FfmpegSource::open_file(Path::new(VTEST)).expect("vtest.avi opens");
        let info = src.info().clone();
        assert_eq!((info.width, info.height), (768, 576));
        assert!((info.fps - 10.0).abs() < 1e-9, "fps {}", info.fps);
        assert_eq!(info.frame_count, Some(795));
        let mut n = 0u64;
        let mut last = f64::NEG_INFINITY;
        while let Some(f) = src.next_frame().expect("decodes") {
            assert_eq!(f.index, n);
            assert_eq!(f.format, PixelFormat::I420 { full_range: false });
            assert_eq!(f.data.len(), 768 * 576 * 3 / 2);
            assert!(f.pts_ms > last);
            last = f.pts_ms;
            n += 1;
        }
        assert_eq!(n, 795);
        assert!((last - 79_400.0).abs() < 1.0, "last pts {last}");
    }

    #[test]
    fn missing_and_non_video_files_are_named() {
        let err = FfmpegSource::open_file(Path::new("/nonexistent/x.avi")).err().map(|e| e.to_string());
        assert_eq!(err.as_deref(), Some("video file /nonexistent/x.avi does not exist"));
        let dir = tempfile::tempdir().expect("tempdir");
        let bad = dir.path().join("notes.avi");
        std::fs::write(&bad, b"this is not a video at all").expect("write");
        let err = FfmpegSource::open_file(&bad).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(err.contains("notes.avi") && err.contains("FFmpeg"), "{err}");
    }

    #[test]
    fn a_dead_stream_fails_within_its_timeout() {
        // A port nobody listens on: refused at once; the name, not the URL, is in the error.
        let started = Instant::now();
        let err = FfmpegSource::open_url("rtsp://user:pw@127.0.0.1:9/x", "cam-9", Duration::from_secs(2))
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("cam-9") && !err.contains("pw"), "{err}");
        assert!(started.elapsed() < Duration::from_secs(12));
    }
}
