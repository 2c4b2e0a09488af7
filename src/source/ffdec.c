/*
 * vigil's YUV decoder: a thin layer over FFmpeg's libavformat / libavcodec that hands out decoded
 * frames as planar YUV 4:2:0 (I420) without the BGR conversion OpenCV's capture always does.
 * The grey feature extractor needs only the luma plane and clips are written from I420, so the
 * conversion (about a third of the decode cost per frame) is skipped entirely.
 *
 * The Rust side (src/source/ffmpeg.rs) is the only caller. Every function reports failure through
 * its return value and a message written into the caller's buffer; nothing here prints or exits.
 * Frames of another pixel format (4:2:2, NV12, ...) are converted to I420 with libswscale.
 */
#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/imgutils.h>
#include <libavutil/time.h>
#include <libswscale/swscale.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

typedef struct vg_dec {
    AVFormatContext *fmt;
    AVCodecContext *codec;
    AVPacket *pkt;
    AVFrame *frame;
    AVFrame *conv; /* I420 copy for frames of another pixel format */
    struct SwsContext *sws;
    int stream;
    int draining;
    int64_t timeout_us;  /* 0: no deadline (files) */
    int64_t deadline_us; /* av_gettime_relative() deadline of the blocking call in progress */
} vg_dec;

typedef struct vg_frame {
    int width, height;
    const uint8_t *plane[3];
    int stride[3];
    int full_range;
    int has_pts;
    double pts_ms;
} vg_frame;

typedef struct vg_info {
    int width, height;
    double fps;
    int64_t frames; /* 0 when unknown */
} vg_info;

/* FFmpeg's log lines go to the caller's function (vigil: tracing, target "ffmpeg") instead of
 * stderr. Lines above `AV_LOG_WARNING` (info, verbose, debug) are not even formatted. */
typedef void (*vg_log_fn)(int level, const char *line);
static vg_log_fn log_fn;

static void log_callback(void *avcl, int level, const char *fmt, va_list vl) {
    if (level > av_log_get_level() || !log_fn) return;
    char line[1024];
    int print_prefix = 1;
    av_log_format_line2(avcl, level, fmt, vl, line, sizeof line, &print_prefix);
    size_t n = strlen(line);
    while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r')) line[--n] = 0;
    if (n > 0) log_fn(level, line);
}

/* Once per process, before the first vg_open: routes FFmpeg's log and initialises its network
 * layer (TLS for rtsps:// and https://). */
void vg_init(vg_log_fn fn) {
    log_fn = fn;
    av_log_set_level(AV_LOG_WARNING);
    av_log_set_callback(log_callback);
    avformat_network_init();
}

static void set_err(char *err, size_t len, const char *what, int code) {
    char msg[AV_ERROR_MAX_STRING_SIZE] = {0};
    if (code != 0) {
        av_strerror(code, msg, sizeof msg);
        snprintf(err, len, "%s: %s", what, msg);
    } else {
        snprintf(err, len, "%s", what);
    }
}

static int interrupted(void *opaque) {
    vg_dec *d = opaque;
    return d->deadline_us != 0 && av_gettime_relative() > d->deadline_us;
}

static void arm(vg_dec *d) {
    d->deadline_us = d->timeout_us > 0 ? av_gettime_relative() + d->timeout_us : 0;
}

void vg_close(vg_dec *d) {
    if (!d) return;
    sws_freeContext(d->sws);
    av_frame_free(&d->conv);
    av_frame_free(&d->frame);
    av_packet_free(&d->pkt);
    avcodec_free_context(&d->codec);
    avformat_close_input(&d->fmt);
    av_free(d);
}

/* Opens `url` (a path or a network URL), finds its best video stream and opens a decoder with
 * `threads` threads (0: FFmpeg's choice). `timeout_ms` > 0 bounds opening and every later read
 * (a stalled stream fails instead of blocking). Returns 0 and sets *out, or a negative code. */
int vg_open(const char *url, int timeout_ms, int threads, vg_dec **out, char *err, size_t errlen) {
    *out = NULL;
    vg_dec *d = av_mallocz(sizeof *d);
    if (!d) {
        set_err(err, errlen, "out of memory", 0);
        return AVERROR(ENOMEM);
    }
    /* Opening (connecting, the RTSP handshake, probing) gets at least 10 s; reads get timeout_ms. */
    int64_t read_timeout_us = timeout_ms > 0 ? (int64_t)timeout_ms * 1000 : 0;
    d->timeout_us = read_timeout_us > 0 && read_timeout_us < 10000000 ? 10000000 : read_timeout_us;
    d->fmt = avformat_alloc_context();
    if (!d->fmt) {
        vg_close(d);
        set_err(err, errlen, "out of memory", 0);
        return AVERROR(ENOMEM);
    }
    d->fmt->interrupt_callback.callback = interrupted;
    d->fmt->interrupt_callback.opaque = d;
    AVDictionary *opts = NULL;
    if (strncmp(url, "rtsp://", 7) == 0 || strncmp(url, "rtsps://", 8) == 0) {
        /* TCP: no lost packets (UDP loses them under load and smears frames). */
        av_dict_set(&opts, "rtsp_transport", "tcp", 0);
    }
    arm(d);
    int rc = avformat_open_input(&d->fmt, url, NULL, &opts);
    av_dict_free(&opts);
    if (rc < 0) {
        /* avformat_open_input frees the context on failure. */
        int timed_out = d->deadline_us != 0 && rc == AVERROR_EXIT;
        d->fmt = NULL;
        vg_close(d);
        set_err(err, errlen, timed_out ? "timed out opening" : "cannot open", timed_out ? 0 : rc);
        return rc;
    }
    arm(d);
    rc = avformat_find_stream_info(d->fmt, NULL);
    if (rc < 0) {
        vg_close(d);
        set_err(err, errlen, "cannot read the stream information", rc);
        return rc;
    }
    const AVCodec *dec = NULL;
    rc = av_find_best_stream(d->fmt, AVMEDIA_TYPE_VIDEO, -1, -1, &dec, 0);
    if (rc < 0 || !dec) {
        vg_close(d);
        set_err(err, errlen, rc == AVERROR_DECODER_NOT_FOUND ? "no decoder for its video codec" : "no video stream",
                0);
        return rc < 0 ? rc : AVERROR_DECODER_NOT_FOUND;
    }
    d->stream = rc;
    d->timeout_us = read_timeout_us;
    d->codec = avcodec_alloc_context3(dec);
    d->pkt = av_packet_alloc();
    d->frame = av_frame_alloc();
    if (!d->codec || !d->pkt || !d->frame) {
        vg_close(d);
        set_err(err, errlen, "out of memory", 0);
        return AVERROR(ENOMEM);
    }
    rc = avcodec_parameters_to_context(d->codec, d->fmt->streams[d->stream]->codecpar);
    if (rc >= 0) {
        d->codec->thread_count = threads;
        d->codec->pkt_timebase = d->fmt->streams[d->stream]->time_base;
        rc = avcodec_open2(d->codec, dec, NULL);
    }
    if (rc < 0) {
        vg_close(d);
        set_err(err, errlen, "cannot open the video decoder", rc);
        return rc;
    }
    *out = d;
    return 0;
}

void vg_get_info(const vg_dec *d, vg_info *info) {
    const AVStream *st = d->fmt->streams[d->stream];
    info->width = d->codec->width;
    info->height = d->codec->height;
    AVRational r = st->avg_frame_rate.num > 0 && st->avg_frame_rate.den > 0 ? st->avg_frame_rate : st->r_frame_rate;
    info->fps = r.num > 0 && r.den > 0 ? av_q2d(r) : 0.0;
    info->frames = st->nb_frames > 0 ? st->nb_frames : 0;
    if (info->frames == 0 && info->fps > 0.0) {
        double seconds = 0.0;
        if (st->duration > 0 && st->time_base.den > 0) {
            seconds = st->duration * av_q2d(st->time_base);
        } else if (d->fmt->duration > 0) {
            seconds = (double)d->fmt->duration / AV_TIME_BASE;
        }
        info->frames = (int64_t)(seconds * info->fps + 0.5);
    }
}

static int is_i420(int format) { return format == AV_PIX_FMT_YUV420P || format == AV_PIX_FMT_YUVJ420P; }

/* Full-range ("JPEG") luma: flagged on the frame, or one of the deprecated J formats. */
static int is_full_range(const AVFrame *f) {
    switch (f->format) {
    case AV_PIX_FMT_YUVJ420P:
    case AV_PIX_FMT_YUVJ422P:
    case AV_PIX_FMT_YUVJ444P:
    case AV_PIX_FMT_YUVJ440P:
    case AV_PIX_FMT_YUVJ411P:
        return 1;
    default:
        return f->color_range == AVCOL_RANGE_JPEG;
    }
}

/* Fills `out` from d->frame, converting to I420 when the decoder gave another format. */
static int export_frame(vg_dec *d, vg_frame *out, char *err, size_t errlen) {
    AVFrame *f = d->frame;
    out->width = f->width;
    out->height = f->height;
    out->full_range = is_full_range(f);
    const AVStream *st = d->fmt->streams[d->stream];
    int64_t ts = f->best_effort_timestamp;
    out->has_pts = ts != AV_NOPTS_VALUE;
    if (out->has_pts) {
        if (st->start_time != AV_NOPTS_VALUE) ts -= st->start_time;
        out->pts_ms = ts * av_q2d(st->time_base) * 1000.0;
    }
    if (is_i420(f->format)) {
        for (int i = 0; i < 3; i++) {
            out->plane[i] = f->data[i];
            out->stride[i] = f->linesize[i];
        }
        return 0;
    }
    /* The J output format keeps full-range luma full range (swscale would squeeze it into
     * 16-235 on the way to plain yuv420p). */
    enum AVPixelFormat dst = out->full_range ? AV_PIX_FMT_YUVJ420P : AV_PIX_FMT_YUV420P;
    if (!d->conv || d->conv->width != f->width || d->conv->height != f->height || d->conv->format != dst) {
        av_frame_free(&d->conv);
        d->conv = av_frame_alloc();
        if (!d->conv) {
            set_err(err, errlen, "out of memory", 0);
            return AVERROR(ENOMEM);
        }
        d->conv->format = dst;
        d->conv->width = f->width;
        d->conv->height = f->height;
        int rc = av_frame_get_buffer(d->conv, 0);
        if (rc < 0) {
            set_err(err, errlen, "cannot allocate a conversion frame", rc);
            return rc;
        }
    }
    d->sws = sws_getCachedContext(d->sws, f->width, f->height, f->format, f->width, f->height, dst, SWS_BILINEAR,
                                  NULL, NULL, NULL);
    if (!d->sws) {
        set_err(err, errlen, "no conversion from the decoder's pixel format to YUV 4:2:0", 0);
        return AVERROR(EINVAL);
    }
    sws_scale(d->sws, (const uint8_t *const *)f->data, f->linesize, 0, f->height, d->conv->data, d->conv->linesize);
    for (int i = 0; i < 3; i++) {
        out->plane[i] = d->conv->data[i];
        out->stride[i] = d->conv->linesize[i];
    }
    return 0;
}

/* Decodes the next frame. Returns 1 with `out` filled (its planes stay valid until the next call),
 * 0 at the end of the stream, or a negative code with a message. Damaged packets are skipped, as
 * FFmpeg's own tools do; `*skipped` counts them. */
int vg_next(vg_dec *d, vg_frame *out, int *skipped, char *err, size_t errlen) {
    av_frame_unref(d->frame);
    for (;;) {
        int rc = avcodec_receive_frame(d->codec, d->frame);
        if (rc == 0) return export_frame(d, out, err, errlen) < 0 ? -1 : 1;
        if (rc == AVERROR_EOF) return 0;
        if (rc != AVERROR(EAGAIN)) {
            set_err(err, errlen, "decoding failed", rc);
            return rc;
        }
        if (d->draining) return 0;
        arm(d);
        rc = av_read_frame(d->fmt, d->pkt);
        if (rc == AVERROR_EXIT && d->deadline_us) {
            set_err(err, errlen, "no data within the read timeout (stalled stream)", 0);
            return rc;
        }
        if (rc < 0) {
            if (rc != AVERROR_EOF && !(d->fmt->pb && avio_feof(d->fmt->pb))) {
                set_err(err, errlen, "reading the stream failed", rc);
                return rc;
            }
            /* End of input: flush the frames the decoder still holds. */
            d->draining = 1;
            avcodec_send_packet(d->codec, NULL);
            continue;
        }
        if (d->pkt->stream_index != d->stream) {
            av_packet_unref(d->pkt);
            continue;
        }
        rc = avcodec_send_packet(d->codec, d->pkt);
        av_packet_unref(d->pkt);
        if (rc == AVERROR_INVALIDDATA) {
            (*skipped)++;
            continue;
        }
        if (rc < 0 && rc != AVERROR(EAGAIN)) {
            set_err(err, errlen, "decoding failed", rc);
            return rc;
        }
    }
}
