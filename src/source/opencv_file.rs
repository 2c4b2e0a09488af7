//! OpenCV (FFmpeg backend) file and stream source. This is the only place that holds a
//! `VideoCapture` or a `Mat`; every frame ends up in an owned [`Frame`] buffer before it leaves, so
//! no OpenCV handle (whose ROI views alias shared buffers) ever crosses a thread. It must not
//! resize, convert or otherwise preprocess: that is the pure `preprocess` module's job.
//!
//! Threads: we leave OpenCV's `parallel_for` pool (`cv::setNumThreads`) at its default because
//! nothing here calls an OpenCV image function that uses it (the FFmpeg backend converts to BGR
//! with `sws_scale`), so changing it would only affect other code in the process. FFmpeg picks its
//! own decoder thread count; OpenCV 4.6 has no per-capture knob for it (`CAP_PROP_N_THREADS`
//! arrived in 4.7), and for this codec class decoding is cheap next to the BGR conversion and copy.

use super::{
    check_file, Frame, FrameBuffers, FrameSource, PixelFormat, PtsClock, SourceError, SourceInfo, FALLBACK_FPS,
};
use opencv::core::{Mat, Vector, CV_8UC3};
use opencv::prelude::*;
use opencv::videoio::{
    VideoCapture, CAP_FFMPEG, CAP_PROP_FPS, CAP_PROP_FRAME_COUNT, CAP_PROP_FRAME_HEIGHT, CAP_PROP_FRAME_WIDTH,
    CAP_PROP_OPEN_TIMEOUT_MSEC, CAP_PROP_POS_MSEC, CAP_PROP_READ_TIMEOUT_MSEC,
};
use std::path::Path;
use std::time::{Duration, Instant};

/// Connection and read timeout for network streams, so a dead camera errors instead of hanging.
const STREAM_TIMEOUT_MS: i32 = 10_000;

/// A video file (or URL) decoded with OpenCV's FFmpeg backend.
pub struct OpenCvSource {
    info: SourceInfo,
    cap: VideoCapture,
    /// The last frame OpenCV decoded into its own memory: the first frame, or one of a new size
    /// (copied out); its size and type tell `read_frame` what buffer to hand OpenCV next.
    mat: Mat,
    /// The first frame, read at open so corrupt files fail early; handed out by the first call.
    first: Option<Frame>,
    next_index: u64,
    clock: PtsClock,
    finished: bool,
    /// Files announce a frame count that lets us detect truncation; live streams do not.
    is_file: bool,
    /// Where frame buffers come from: a pool of the source's own (nobody hands buffers back, so
    /// each is new) unless the consumer's is set with `with_buffers`.
    buffers: FrameBuffers,
}

impl OpenCvSource {
    /// Opens a video file, checking existence and size first so errors are specific, then reads
    /// the first frame so that a file with no decodable frame fails here with
    /// [`SourceError::NoFrames`] rather than looking like an empty video later.
    pub fn open_file(path: &Path) -> Result<Self, SourceError> {
        check_file(path)?;
        let name = path.display().to_string();
        let cap = open_capture(path.as_os_str(), &name, &[])?;
        Self::from_capture(cap, name, true)
    }

    /// Opens a network stream (RTSP, HTTP, ...). `name` (a camera id) is what appears in errors and
    /// logs: the URL may carry credentials and is never logged or put in an error.
    pub fn open_url(url: &str, name: &str) -> Result<Self, SourceError> {
        Self::open_url_with_timeout(url, name, Duration::from_millis(STREAM_TIMEOUT_MS as u64))
    }

    /// [`OpenCvSource::open_url`] with its own open and read timeout: a read that gets no frame
    /// for `timeout` fails instead of waiting (the daemon's stall detection).
    pub fn open_url_with_timeout(url: &str, name: &str, timeout: Duration) -> Result<Self, SourceError> {
        let ms = timeout.as_millis().clamp(1, i32::MAX as u128) as i32;
        let params = [CAP_PROP_OPEN_TIMEOUT_MSEC, ms.max(STREAM_TIMEOUT_MS), CAP_PROP_READ_TIMEOUT_MSEC, ms];
        let cap = open_capture(std::ffi::OsStr::new(url), name, &params)?;
        Self::from_capture(cap, name.to_string(), false)
    }

    /// Opens a local capture device (USB / V4L2 camera `index`) through OpenCV's V4L2 backend.
    pub fn open_device(index: u32, name: &str) -> Result<Self, SourceError> {
        let open_err = |reason: String| SourceError::Open { name: name.to_string(), reason };
        let cap = VideoCapture::new(index as i32, opencv::videoio::CAP_V4L2)
            .map_err(|e| open_err(format!("OpenCV error: {e}")))?;
        if !cap.is_opened().unwrap_or(false) {
            return Err(open_err(format!("no capture device /dev/video{index} (or it is busy)")));
        }
        Self::from_capture(cap, name.to_string(), false)
    }

    /// Reads frames into buffers taken from `buffers` (which the consumer hands back when done
    /// with a frame) instead of a new allocation each.
    pub fn with_buffers(mut self, buffers: FrameBuffers) -> Self {
        self.buffers = buffers;
        self
    }

    fn from_capture(cap: VideoCapture, name: String, is_file: bool) -> Result<Self, SourceError> {
        let prop = |id: i32| cap.get(id).unwrap_or(0.0);
        let fps = prop(CAP_PROP_FPS);
        // Some containers report 0 or absurd rates (e.g. 90000 for raw streams); timestamps and
        // snippet times derive from fps, so fall back to a documented default instead.
        let fps = if fps.is_finite() && fps > 0.0 && fps <= 1000.0 { fps } else { FALLBACK_FPS };
        let count = prop(CAP_PROP_FRAME_COUNT);
        let frame_count = (count.is_finite() && count >= 1.0).then_some(count as u64);
        let mut source = Self {
            info: SourceInfo {
                name,
                width: prop(CAP_PROP_FRAME_WIDTH).max(0.0) as u32,
                height: prop(CAP_PROP_FRAME_HEIGHT).max(0.0) as u32,
                fps,
                frame_count,
            },
            cap,
            mat: Mat::default(),
            first: None,
            next_index: 0,
            clock: PtsClock::new(fps),
            finished: false,
            is_file,
            buffers: FrameBuffers::new(1),
        };
        let decoded = source.decode_next();
        source.first = Some(super::first_frame(&mut source.info, decoded)?);
        Ok(source)
    }

    /// Reads one frame from the capture into an owned `Frame`.
    fn decode_next(&mut self) -> Result<Option<Frame>, SourceError> {
        if self.finished {
            return Ok(None);
        }
        let index = self.next_index;
        let read = self.read_frame();
        let decode_err = |reason: String| SourceError::Decode { name: self.info.name.clone(), frame: index, reason };
        let (got, owned) = read.map_err(|e| decode_err(e.to_string()))?;
        if !got || self.mat.empty() {
            self.finished = true;
            return match self.truncation(index) {
                Some(err) => Err(err),
                None => Ok(None),
            };
        }
        let captured = Instant::now();
        if self.mat.typ() != CV_8UC3 {
            return Err(decode_err(format!("decoder returned OpenCV type {} instead of 8-bit BGR", self.mat.typ())));
        }
        let (width, height) = (self.mat.cols() as u32, self.mat.rows() as u32);
        let data = match owned {
            Some(data) => data,
            None => copy_bgr(&self.mat).map_err(|e| decode_err(e.to_string()))?,
        };
        let reported = self.cap.get(CAP_PROP_POS_MSEC).ok();
        let pts_ms = self.clock.next(index, reported);
        self.next_index += 1;
        Ok(Some(Frame { index, pts_ms, width, height, format: PixelFormat::Bgr, data, captured }))
    }

    /// Reads the next frame. While the frame size stays that of the previous frame, OpenCV writes
    /// it straight into a new owned buffer (a `Mat` header over it: `VideoCapture::read` reuses a
    /// destination of the right size and type), which saves a copy of every frame; the buffer is
    /// returned when OpenCV really used it. Otherwise the frame is in `self.mat` to be copied.
    fn read_frame(&mut self) -> opencv::Result<(bool, Option<Vec<u8>>)> {
        let (rows, cols) = (self.mat.rows(), self.mat.cols());
        if rows <= 0 || cols <= 0 || self.mat.typ() != CV_8UC3 {
            let got = self.cap.read(&mut self.mat)?;
            return Ok((got, None));
        }
        let len = rows as usize * cols as usize * 3;
        let mut buf: Vec<u8> = self.buffers.take(len);
        // SAFETY: the header covers exactly `len` bytes of `buf`'s allocation, which outlives it
        // (`target` is dropped or replaced below before `buf` is touched again); a Mat made over
        // user data never frees it.
        let mut target =
            unsafe { Mat::new_rows_cols_with_data_unsafe_def(rows, cols, CV_8UC3, buf.as_mut_ptr().cast()) }?;
        let got = self.cap.read(&mut target)?;
        let filled = got && target.data() == buf.as_ptr() && target.rows() == rows && target.cols() == cols;
        if filled {
            // SAFETY: OpenCV wrote every byte of the continuous rows x cols x 3 frame into `buf`.
            unsafe { buf.set_len(len) };
            return Ok((true, Some(buf)));
        }
        // A new size (or nothing): OpenCV allocated its own data, or left the header empty.
        self.mat = if got { target.try_clone()? } else { Mat::default() };
        drop(target);
        Ok((got, None))
    }

    fn truncation(&self, decoded: u64) -> Option<SourceError> {
        super::truncation(&self.info, self.is_file, decoded)
    }
}

impl FrameSource for OpenCvSource {
    fn info(&self) -> &SourceInfo {
        &self.info
    }

    fn next_frame(&mut self) -> Result<Option<Frame>, SourceError> {
        if let Some(first) = self.first.take() {
            return Ok(Some(first));
        }
        self.decode_next()
    }
}

/// Copies an 8-bit BGR `Mat` into a tightly packed `Vec`. Decoded frames are normally continuous
/// (one memcpy); a non-continuous Mat (a padded or ROI buffer) is copied row by row, since a
/// single row is always contiguous.
fn copy_bgr(mat: &Mat) -> opencv::Result<Vec<u8>> {
    if mat.is_continuous() {
        return Ok(mat.data_bytes()?.to_vec());
    }
    let row_bytes = mat.cols() as usize * 3;
    let mut data = Vec::with_capacity(row_bytes * mat.rows() as usize);
    for r in 0..mat.rows() {
        let row = mat.row(r)?;
        data.extend_from_slice(&row.data_bytes()?[..row_bytes]);
    }
    Ok(data)
}

/// Opens a capture on the FFmpeg backend with `params` (pairs of property id and value).
fn open_capture(target: &std::ffi::OsStr, name: &str, params: &[i32]) -> Result<VideoCapture, SourceError> {
    let open_err = |reason: String| SourceError::Open { name: name.to_string(), reason };
    let params = Vector::<i32>::from_slice(params);
    let cap = VideoCapture::from_file_with_params(target, CAP_FFMPEG, &params)
        .map_err(|e| open_err(format!("OpenCV error: {e}")))?;
    if !cap.is_opened().unwrap_or(false) {
        return Err(open_err(
            "OpenCV's FFmpeg backend cannot open it (not a video, unsupported container or codec, \
             or unreachable stream)"
                .into(),
        ));
    }
    Ok(cap)
}

/// Decodes every frame of `path` with OpenCV alone and returns (frames, seconds): the decode floor
/// that `vigil bench` compares the pipeline against. Frames are decoded into one reused `Mat` and
/// never copied, so this measures OpenCV + FFmpeg only. The clock starts after the file is open.
pub fn decode_only(path: &Path) -> Result<(u64, f64), SourceError> {
    check_file(path)?;
    let name = path.display().to_string();
    let mut cap = open_capture(path.as_os_str(), &name, &[])?;
    let mut mat = Mat::default();
    let mut frames = 0u64;
    let start = Instant::now();
    loop {
        let decode_err =
            |e: opencv::Error| SourceError::Decode { name: name.clone(), frame: frames, reason: e.to_string() };
        if !cap.grab().map_err(decode_err)? {
            break;
        }
        if !cap.retrieve(&mut mat, 0).map_err(decode_err)? || mat.empty() {
            break;
        }
        frames += 1;
    }
    let seconds = start.elapsed().as_secs_f64();
    if frames == 0 {
        return Err(SourceError::NoFrames { name });
    }
    Ok((frames, seconds))
}

/// Strips `user:password@` from a URL so it can be shown; for callers that want to log where a
/// camera points without leaking its credentials.
pub fn redact_url(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return url.to_string();
    };
    let rest = &url[scheme_end + 3..];
    let authority_end = rest.find('/').unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => format!("{}://***@{}", &url[..scheme_end], &rest[at + 1..]),
        None => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redact_url_hides_credentials() {
        assert_eq!(redact_url("rtsp://admin:s3cret@10.0.0.5:554/stream1"), "rtsp://***@10.0.0.5:554/stream1");
        assert_eq!(redact_url("rtsp://10.0.0.5/s"), "rtsp://10.0.0.5/s");
        assert_eq!(redact_url("http://cam/a@b"), "http://cam/a@b");
        assert_eq!(redact_url("/dev/video0"), "/dev/video0");
    }
}
