// Video decoding through FFmpeg's libraries (libavformat, libavcodec, libswscale, libswresample), in process, from
// a file or a memory buffer (docs/video.md). Include it only where FFmpeg is linked (the meson feature `video`,
// G4_HAVE_VIDEO). One demuxing pass counts the video stream's frames (packets) and their timestamps, and decodes
// the audio track; then only the sampled frames are decoded: seek to the keyframe before each (unless decoding
// forward from the last one gets there), decode forward to its timestamp, convert to RGB. Streams without
// timestamps are decoded from the start, counting frames. Every failure is a g4::Error naming the input.
#pragma once
extern "C" {
#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/channel_layout.h>
#include <libavutil/error.h>
#include <libavutil/opt.h>
#include <libavutil/pixdesc.h>
#include <libswresample/swresample.h>
#include <libswscale/swscale.h>
}

#include <algorithm>
#include <cstring>
#include <functional>
#include <limits>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "g4/core/error.hpp"
#include "g4/core/mapped_file.hpp"
#include "g4/media/audio.hpp"
#include "g4/media/resample.hpp"
#include "g4/media/video.hpp"
#include "g4/media/wav.hpp"

namespace g4 {

// Receives each sampled frame as it is decoded (i: its place among the sampled frames; its timestamp); the frames
// are then not kept in DecodedVideo::frames. A 4K frame is 25 MB of RGB; a sink that embeds at once keeps ~1 MB.
using VideoFrameSink = std::function<void(size_t i, double seconds, RgbImage frame)>;

namespace video_detail {

inline std::string AvError(int err) {
  char buf[AV_ERROR_MAX_STRING_SIZE] = {};
  av_strerror(err, buf, sizeof buf);
  return buf;
}

// FFmpeg's own log lines would repeat (less clearly) what the g4::Error says; only fatal ones are printed.
inline void QuietLog() {
  static const bool once = (av_log_set_level(AV_LOG_FATAL), true);
  (void)once;
}

struct MemoryReader {
  const uint8_t* data = nullptr;
  int64_t size = 0, pos = 0;

  static int Read(void* opaque, uint8_t* buf, int n) {
    auto* r = static_cast<MemoryReader*>(opaque);
    const int64_t k = std::min<int64_t>(n, r->size - r->pos);
    if (k <= 0) return AVERROR_EOF;
    std::memcpy(buf, r->data + r->pos, static_cast<size_t>(k));
    r->pos += k;
    return static_cast<int>(k);
  }
  static int64_t Seek(void* opaque, int64_t offset, int whence) {
    auto* r = static_cast<MemoryReader*>(opaque);
    if (whence & AVSEEK_SIZE) return r->size;
    whence &= ~AVSEEK_FORCE;
    int64_t p = offset;
    if (whence == SEEK_CUR) p = r->pos + offset;
    else if (whence == SEEK_END) p = r->size + offset;
    else if (whence != SEEK_SET) return AVERROR(EINVAL);
    if (p < 0 || p > r->size) return AVERROR(EINVAL);
    return r->pos = p;
  }
};

struct IoDeleter {
  void operator()(AVIOContext* io) const {
    av_freep(&io->buffer);
    avio_context_free(&io);
  }
};
struct FormatDeleter {
  void operator()(AVFormatContext* f) const { avformat_close_input(&f); }  // leaves a custom AVIOContext alone
};
struct CodecDeleter {
  void operator()(AVCodecContext* c) const { avcodec_free_context(&c); }
};

// An opened container over memory, its streams found.
class Input {
 public:
  Input(std::span<const std::byte> bytes, std::string_view where) : where_(where) {
    QuietLog();
    Require(!bytes.empty(), where, "empty video file");
    reader_ = {reinterpret_cast<const uint8_t*>(bytes.data()), static_cast<int64_t>(bytes.size()), 0};
    constexpr int kBuffer = 1 << 16;
    auto* buffer = static_cast<uint8_t*>(av_malloc(kBuffer));
    Require(buffer != nullptr, where, "out of memory");
    io_.reset(avio_alloc_context(buffer, kBuffer, 0, &reader_, &MemoryReader::Read, nullptr, &MemoryReader::Seek));
    if (!io_) av_free(buffer);
    Require(io_ != nullptr, where, "out of memory");
    AVFormatContext* fmt = avformat_alloc_context();
    Require(fmt != nullptr, where, "out of memory");
    fmt->pb = io_.get();
    fmt->flags |= AVFMT_FLAG_CUSTOM_IO;
    if (const int err = avformat_open_input(&fmt, nullptr, nullptr, nullptr); err < 0)  // frees fmt on failure
      Fail(where, "cannot read as a video file: " + AvError(err));
    fmt_.reset(fmt);
    if (const int err = avformat_find_stream_info(fmt, nullptr); err < 0) Fail(where, "cannot read the streams: " + AvError(err));
    const int audio = av_find_best_stream(fmt, AVMEDIA_TYPE_AUDIO, -1, -1, nullptr, 0);
    audio_ = audio >= 0 ? fmt->streams[audio] : nullptr;
    const int video = av_find_best_stream(fmt, AVMEDIA_TYPE_VIDEO, -1, -1, nullptr, 0);
    // A cover picture (attached to an audio file) is no video.
    Require(video >= 0 && !(fmt->streams[video]->disposition & AV_DISPOSITION_ATTACHED_PIC), where,
            audio_ ? "has no video stream (audio only: pass it as audio)" : "has no video stream");
    video_ = fmt->streams[video];
  }

  Input(Input&&) = delete;  // the reader's address is in the AVIOContext
  AVFormatContext* fmt() const { return fmt_.get(); }
  AVStream* video() const { return video_; }
  AVStream* audio() const { return audio_; }
  const std::string& where() const { return where_; }

 private:
  std::string where_;
  MemoryReader reader_;
  std::unique_ptr<AVIOContext, IoDeleter> io_;          // declared before fmt_: closed after it
  std::unique_ptr<AVFormatContext, FormatDeleter> fmt_;
  AVStream *video_ = nullptr, *audio_ = nullptr;
};

struct PacketDeleter {
  void operator()(AVPacket* p) const { av_packet_free(&p); }
};
struct FrameDeleter {
  void operator()(AVFrame* f) const { av_frame_free(&f); }
};
using Packet = std::unique_ptr<AVPacket, PacketDeleter>;
using Frame = std::unique_ptr<AVFrame, FrameDeleter>;

inline Packet NewPacket() {
  Packet p(av_packet_alloc());
  Require(p != nullptr, "video", "out of memory");
  return p;
}
inline Frame NewFrame() {
  Frame f(av_frame_alloc());
  Require(f != nullptr, "video", "out of memory");
  return f;
}

class Decoder {
 public:
  Decoder(const AVStream* s, std::string_view where) {
    const AVCodec* codec = avcodec_find_decoder(s->codecpar->codec_id);
    Require(codec != nullptr, where, std::string("no decoder for codec ") + avcodec_get_name(s->codecpar->codec_id));
    ctx_.reset(avcodec_alloc_context3(codec));
    Require(ctx_ != nullptr, where, "out of memory");
    if (const int err = avcodec_parameters_to_context(ctx(), s->codecpar); err < 0) Fail(where, "bad codec parameters: " + AvError(err));
    ctx_->pkt_timebase = s->time_base;
    ctx_->thread_count = 1;  // deterministic, and the sampled frames are few
    if (const int err = avcodec_open2(ctx(), codec, nullptr); err < 0) Fail(where, "cannot open the decoder: " + AvError(err));
  }
  AVCodecContext* ctx() const { return ctx_.get(); }

 private:
  std::unique_ptr<AVCodecContext, CodecDeleter> ctx_;
};

// The first audio track as mono float at its own rate: libswresample converts the sample format and mixes the
// channels down by averaging (a 1/n matrix, in float), as the WAV path does; g4::Resample then makes 16 kHz.
class AudioTrack {
 public:
  AudioTrack(const AVStream* s, std::string_view where, double max_seconds) : where_(where), dec_(s, where) {
    const AVCodecContext* c = dec_.ctx();
    rate_ = c->sample_rate;
    Require(rate_ >= static_cast<int>(kMinWavRate) && rate_ <= static_cast<int>(kMaxWavRate), where,
            "audio track at " + std::to_string(rate_) + " Hz (" + std::to_string(kMinWavRate) + ".." + std::to_string(kMaxWavRate) + " accepted)");
    max_samples_ = static_cast<size_t>(max_seconds * rate_) + static_cast<size_t>(rate_);  // a second of slack
  }
  ~AudioTrack() { swr_free(&swr_); }
  AudioTrack(const AudioTrack&) = delete;
  AudioTrack& operator=(const AudioTrack&) = delete;

  void Push(const AVPacket* pkt) {
    if (avcodec_send_packet(dec_.ctx(), pkt) < 0) return;  // a damaged packet is skipped, as ffmpeg does
    Drain();
  }
  std::vector<float> Finish16k() {
    avcodec_send_packet(dec_.ctx(), nullptr);
    Drain();
    if (swr_) Convert(nullptr);
    return Resample(samples_, rate_, kAudioSampleRate);
  }

 private:
  void Drain() {
    while (avcodec_receive_frame(dec_.ctx(), frame_.get()) == 0) {
      Convert(frame_.get());
      av_frame_unref(frame_.get());
    }
  }
  void Convert(const AVFrame* f) {
    if (f && !swr_) Open(f);
    if (f) Require(f->sample_rate == rate_ && f->ch_layout.nb_channels == channels_ && f->format == format_, where_,
                   "the audio track changes its format mid-stream");
    const int in = f ? f->nb_samples : 0;
    const int out = swr_get_out_samples(swr_, in);
    if (out <= 0) return;
    const size_t at = samples_.size();
    samples_.resize(at + static_cast<size_t>(out));
    auto* dst = reinterpret_cast<uint8_t*>(samples_.data() + at);
    const int got = swr_convert(swr_, &dst, out, f ? const_cast<const uint8_t**>(f->extended_data) : nullptr, in);
    Require(got >= 0, where_, "cannot convert the audio track: " + AvError(got));
    samples_.resize(at + static_cast<size_t>(got));
    Require(samples_.size() <= max_samples_, where_, "the audio track is longer than the clip limit allows");
  }
  void Open(const AVFrame* f) {
    channels_ = f->ch_layout.nb_channels;
    format_ = f->format;
    Require(channels_ >= 1 && channels_ <= kMaxWavChannels, where_, "audio track with " + std::to_string(channels_) + " channels");
    Require(f->sample_rate == rate_, where_, "the audio track's frames disagree with its stream on the sample rate");
    AVChannelLayout mono = AV_CHANNEL_LAYOUT_MONO, in_layout = {};
    int err = av_channel_layout_copy(&in_layout, &f->ch_layout);  // FFmpeg 5's swr_alloc_set_opts2 takes non-const
    if (err >= 0) err = swr_alloc_set_opts2(&swr_, &mono, AV_SAMPLE_FMT_FLT, rate_, &in_layout, static_cast<AVSampleFormat>(format_), rate_, 0, nullptr);
    av_channel_layout_uninit(&in_layout);
    Require(err >= 0 && swr_ != nullptr, where_, "cannot convert the audio track: " + AvError(err));
    av_opt_set_sample_fmt(swr_, "internal_sample_fmt", AV_SAMPLE_FMT_FLTP, 0);  // mix in float, not in int16
    std::vector<double> matrix(static_cast<size_t>(channels_), 1.0 / channels_);
    err = swr_set_matrix(swr_, matrix.data(), channels_);
    if (err >= 0) err = swr_init(swr_);
    Require(err >= 0, where_, "cannot convert the audio track: " + AvError(err));
  }

  std::string where_;
  Decoder dec_;
  Frame frame_ = NewFrame();
  SwrContext* swr_ = nullptr;
  int rate_ = 0, channels_ = 0, format_ = -1;
  size_t max_samples_ = 0;
  std::vector<float> samples_;
};

// The demuxing pass: the video stream's frame count and presentation timestamps (and keyframes'), and the audio
// track when asked. Stops with an error as soon as the clip is longer than the limit.
struct StreamIndex {
  VideoInfo info;
  std::vector<int64_t> pts;       // sorted: frame i's presentation timestamp (stream time base)
  std::vector<int64_t> key_pts;   // sorted keyframe timestamps
  bool timed = true;              // every packet had a timestamp: seek by it; else decode from the start
  std::vector<float> audio_16k;
};

inline StreamIndex IndexStreams(const Input& in, const VideoOptions& opt, bool with_audio) {
  const std::string& where = in.where();
  const AVStream* vs = in.video();
  StreamIndex ix;
  ix.info.width = vs->codecpar->width;
  ix.info.height = vs->codecpar->height;
  CheckImageSize(ix.info.width, ix.info.height, where);
  AVRational rate = vs->avg_frame_rate;
  if (rate.num <= 0 || rate.den <= 0) rate = vs->r_frame_rate;
  Require(rate.num > 0 && rate.den > 0, where, "the video stream states no frame rate");
  ix.info.fps = av_q2d(rate);
  Require(ix.info.fps >= 0.01 && ix.info.fps <= 10000, where, "frame rate " + std::to_string(ix.info.fps) + " is not plausible");
  ix.info.has_audio = in.audio() != nullptr;
  Require(opt.max_seconds > 0, where, "the clip limit must be positive");
  std::unique_ptr<AudioTrack> audio;
  if (with_audio && in.audio()) audio = std::make_unique<AudioTrack>(in.audio(), where, opt.max_seconds);

  const Packet pkt = NewPacket();
  for (int err; (err = av_read_frame(in.fmt(), pkt.get())) != AVERROR_EOF;) {
    if (err < 0) break;  // a damaged tail ends the stream, as for ffmpeg; missing frames fail later, when sampled
    if (pkt->stream_index == vs->index && !(pkt->flags & AV_PKT_FLAG_DISCARD)) {  // (an edit list's: not shown)
      const int64_t ts = pkt->pts != AV_NOPTS_VALUE ? pkt->pts : pkt->dts;
      if (ts == AV_NOPTS_VALUE) ix.timed = false;
      ix.pts.push_back(ts);
      if (pkt->flags & AV_PKT_FLAG_KEY) ix.key_pts.push_back(ts);
      ix.info.frames = static_cast<int64_t>(ix.pts.size());
      CheckVideoLength(ix.info, opt, where);
    } else if (audio && pkt->stream_index == in.audio()->index) {
      audio->Push(pkt.get());
    }
    av_packet_unref(pkt.get());
  }
  Require(ix.info.frames > 0, where, "has no video frames");
  Require(vs->nb_frames <= 0 || ix.info.frames >= vs->nb_frames, where,
          "is truncated: its header states " + std::to_string(vs->nb_frames) + " video frames, " + std::to_string(ix.info.frames) + " are there");
  std::sort(ix.pts.begin(), ix.pts.end());
  std::sort(ix.key_pts.begin(), ix.key_pts.end());
  if (std::adjacent_find(ix.pts.begin(), ix.pts.end()) != ix.pts.end()) ix.timed = false;  // no frame by its pts
  if (audio) ix.audio_16k = audio->Finish16k();
  return ix;
}

// Decodes the sampled frames in ascending order.
class FrameReader {
 public:
  FrameReader(const Input& in, const StreamIndex& ix) : in_(in), ix_(ix), dec_(in.video(), in.where()) {}
  ~FrameReader() { sws_freeContext(sws_); }
  FrameReader(const FrameReader&) = delete;
  FrameReader& operator=(const FrameReader&) = delete;

  RgbImage Take(int64_t index) {
    if (!ix_.timed) {  // count decoded frames from the start (targets ascend, so never back)
      while (decoded_ <= index) Next(index);
      return ToRgb();
    }
    const int64_t target = ix_.pts[static_cast<size_t>(index)];
    const auto key = std::upper_bound(ix_.key_pts.begin(), ix_.key_pts.end(), target);
    const int64_t key_pts = key == ix_.key_pts.begin() ? ix_.pts.front() : *(key - 1);
    if (!(have_last_ && last_pts_ >= key_pts && last_pts_ < target)) {  // decoding forward would not get there
      const int err = av_seek_frame(in_.fmt(), in_.video()->index, key_pts, AVSEEK_FLAG_BACKWARD);
      Require(err >= 0, in_.where(), "cannot seek to frame " + std::to_string(index) + ": " + AvError(err));
      avcodec_flush_buffers(dec_.ctx());
      eof_ = false;
      have_last_ = false;
    }
    do {
      Next(index);
      Require(frame_->best_effort_timestamp != AV_NOPTS_VALUE, in_.where(), "decoded frames carry no timestamps");
      last_pts_ = frame_->best_effort_timestamp;
      have_last_ = true;
    } while (last_pts_ < target);
    return ToRgb();
  }

 private:
  // The next decoded frame into frame_; an error when the stream ends before frame `index`.
  void Next(int64_t index) {
    const Packet pkt = NewPacket();
    for (;;) {
      const int got = avcodec_receive_frame(dec_.ctx(), frame_.get());
      if (got == 0) {
        ++decoded_;
        return;
      }
      Require(got == AVERROR(EAGAIN) && !eof_, in_.where(),
              "frame " + std::to_string(index) + " could not be decoded (the file is truncated or corrupt)");
      int err;
      while ((err = av_read_frame(in_.fmt(), pkt.get())) >= 0 && pkt->stream_index != in_.video()->index) av_packet_unref(pkt.get());
      if (err < 0) {
        eof_ = true;
        avcodec_send_packet(dec_.ctx(), nullptr);  // drain what the decoder holds
        continue;
      }
      avcodec_send_packet(dec_.ctx(), pkt.get());  // a damaged packet is skipped, as ffmpeg does
      av_packet_unref(pkt.get());
    }
  }

  // frame_ as 8-bit RGB at its own size. Bilinear is PyAV's default for to_ndarray (it matters only where chroma
  // is subsampled); YUV uses BT.601 coefficients at the range the stream states.
  RgbImage ToRgb() {
    const AVFrame* f = frame_.get();
    CheckImageSize(f->width, f->height, in_.where());
    const auto fmt = static_cast<AVPixelFormat>(f->format);
    Require(sws_isSupportedInput(fmt) > 0, in_.where(), std::string("pixel format ") + (av_get_pix_fmt_name(fmt) ? av_get_pix_fmt_name(fmt) : "?") + " cannot be converted to RGB");
    sws_ = sws_getCachedContext(sws_, f->width, f->height, fmt, f->width, f->height, AV_PIX_FMT_RGB24, SWS_BILINEAR, nullptr, nullptr, nullptr);
    Require(sws_ != nullptr, in_.where(), "cannot convert the frames to RGB");
    const int* coefficients = sws_getCoefficients(SWS_CS_DEFAULT);
    sws_setColorspaceDetails(sws_, coefficients, f->color_range == AVCOL_RANGE_JPEG, coefficients, 1, 0, 1 << 16, 1 << 16);
    // swscale's SIMD paths convert whole blocks of pixels: into an aligned buffer with a padded stride (as the
    // ffmpeg program's frames have), else the last pixels of a row whose width is no multiple of 16 stay unset.
    const int stride = (f->width * 3 + 63) & ~63;
    const std::unique_ptr<uint8_t, decltype(&av_free)> buffer(static_cast<uint8_t*>(av_malloc(static_cast<size_t>(stride) * (f->height + 1))), &av_free);
    Require(buffer != nullptr, in_.where(), "out of memory");
    uint8_t* dst[4] = {buffer.get(), nullptr, nullptr, nullptr};
    const int strides[4] = {stride, 0, 0, 0};
    const int rows = sws_scale(sws_, f->data, f->linesize, 0, f->height, dst, strides);
    Require(rows == f->height, in_.where(), "cannot convert a frame to RGB");
    RgbImage img;
    img.width = f->width;
    img.height = f->height;
    const size_t row_bytes = static_cast<size_t>(img.width) * 3;
    img.pixels.resize(row_bytes * img.height);
    for (int y = 0; y < img.height; ++y) std::memcpy(img.pixels.data() + y * row_bytes, buffer.get() + static_cast<size_t>(y) * stride, row_bytes);
    return img;
  }

  const Input& in_;
  const StreamIndex& ix_;
  Decoder dec_;
  Frame frame_ = NewFrame();
  SwsContext* sws_ = nullptr;
  int64_t decoded_ = 0, last_pts_ = 0;
  bool have_last_ = false, eof_ = false;
};

}  // namespace video_detail

// The clip's size, frame count and rate, without decoding a picture: for checks (length, context) before work.
inline VideoInfo ProbeVideo(std::span<const std::byte> bytes, std::string_view where, const VideoOptions& opt = {}) {
  const video_detail::Input in(bytes, where);
  return video_detail::IndexStreams(in, opt, /*with_audio=*/false).info;
}

// Samples and decodes a clip as transformers' Gemma4UnifiedVideoProcessor would take it (SampleFrameIndices), with
// its audio track at 16 kHz mono unless opt.audio is false. With a sink, frames go there instead of into `frames`.
inline DecodedVideo DecodeVideo(std::span<const std::byte> bytes, std::string_view where, const VideoOptions& opt = {},
                                const VideoFrameSink& sink = {}) {
  const video_detail::Input in(bytes, where);
  video_detail::StreamIndex ix = video_detail::IndexStreams(in, opt, opt.audio);
  DecodedVideo v;
  v.info = ix.info;
  v.indices = SampleFrameIndices(ix.info.frames, ix.info.fps, opt, where);
  v.audio_16k = std::move(ix.audio_16k);
  for (const int64_t index : v.indices) v.timestamps.push_back(static_cast<double>(index) / ix.info.fps);
  video_detail::FrameReader reader(in, ix);
  for (size_t i = 0; i < v.indices.size(); ++i) {
    RgbImage frame = reader.Take(v.indices[i]);
    if (sink)
      sink(i, v.timestamps[i], std::move(frame));
    else
      v.frames.push_back(std::move(frame));
  }
  return v;
}

inline VideoInfo ProbeVideoFile(const std::string& path, const VideoOptions& opt = {}) {
  const MappedFile file(path);
  return ProbeVideo(file.bytes(), path, opt);
}
inline DecodedVideo LoadVideo(const std::string& path, const VideoOptions& opt = {}, const VideoFrameSink& sink = {}) {
  const MappedFile file(path);
  return DecodeVideo(file.bytes(), path, opt, sink);
}

}  // namespace g4
