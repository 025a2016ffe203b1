// The video bench's clip (bench_media): a moving test pattern, made at bench start so nothing is downloaded. With
// the ffmpeg program (Debian's ffmpeg) it is H.264 with B-frames in MP4, as phones and browsers write video; without
// it, MPEG-4 Part 2 in Matroska encoded in memory through libavcodec (its built-in encoder; decoding it costs less
// than H.264, so the two rows are not comparable). Needs FFmpeg's libraries (G4_HAVE_VIDEO).
#pragma once
extern "C" {
#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
}

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <string>
#include <unistd.h>
#include <vector>

#include "g4/core/error.hpp"

namespace g4::bench {

struct SyntheticClip {
  std::vector<std::byte> bytes;
  std::string how;  // what wrote it, for the bench's report
};

namespace clip_detail {

inline void Check(int err, const char* what) { Require(err >= 0, "synthetic clip", std::string(what) + " failed (" + std::to_string(err) + ")"); }

// MPEG-4 Part 2 frames of a moving gradient, muxed as Matroska into memory.
inline std::vector<std::byte> EncodeInMemory(int width, int height, int fps, int frames) {
  AVFormatContext* fmt = nullptr;
  Check(avformat_alloc_output_context2(&fmt, nullptr, "matroska", nullptr), "avformat_alloc_output_context2");
  const AVCodec* codec = avcodec_find_encoder(AV_CODEC_ID_MPEG4);
  Require(codec != nullptr, "synthetic clip", "libavcodec has no MPEG-4 encoder");
  AVStream* st = avformat_new_stream(fmt, nullptr);
  AVCodecContext* enc = avcodec_alloc_context3(codec);
  enc->width = width;
  enc->height = height;
  enc->pix_fmt = AV_PIX_FMT_YUV420P;
  enc->time_base = {1, fps};
  enc->framerate = {fps, 1};
  enc->gop_size = 12;
  enc->bit_rate = 2'000'000;
  if (fmt->oformat->flags & AVFMT_GLOBALHEADER) enc->flags |= AV_CODEC_FLAG_GLOBAL_HEADER;
  Check(avcodec_open2(enc, codec, nullptr), "avcodec_open2");
  Check(avcodec_parameters_from_context(st->codecpar, enc), "avcodec_parameters_from_context");
  st->time_base = enc->time_base;
  Check(avio_open_dyn_buf(&fmt->pb), "avio_open_dyn_buf");
  Check(avformat_write_header(fmt, nullptr), "avformat_write_header");
  AVFrame* frame = av_frame_alloc();
  frame->format = enc->pix_fmt;
  frame->width = width;
  frame->height = height;
  Check(av_frame_get_buffer(frame, 0), "av_frame_get_buffer");
  AVPacket* pkt = av_packet_alloc();
  auto drain = [&] {
    while (avcodec_receive_packet(enc, pkt) == 0) {
      av_packet_rescale_ts(pkt, enc->time_base, st->time_base);
      pkt->stream_index = st->index;
      Check(av_interleaved_write_frame(fmt, pkt), "av_interleaved_write_frame");
    }
  };
  for (int i = 0; i < frames; ++i) {
    Check(av_frame_make_writable(frame), "av_frame_make_writable");
    for (int y = 0; y < height; ++y)
      for (int x = 0; x < width; ++x) frame->data[0][y * frame->linesize[0] + x] = static_cast<uint8_t>(x + y + 3 * i);
    for (int y = 0; y < height / 2; ++y)
      for (int x = 0; x < width / 2; ++x) {
        frame->data[1][y * frame->linesize[1] + x] = static_cast<uint8_t>(128 + y + 2 * i);
        frame->data[2][y * frame->linesize[2] + x] = static_cast<uint8_t>(64 + x - i);
      }
    frame->pts = i;
    Check(avcodec_send_frame(enc, frame), "avcodec_send_frame");
    drain();
  }
  Check(avcodec_send_frame(enc, nullptr), "avcodec_send_frame (flush)");
  drain();
  Check(av_write_trailer(fmt), "av_write_trailer");
  uint8_t* buf = nullptr;
  const int size = avio_close_dyn_buf(fmt->pb, &buf);
  fmt->pb = nullptr;
  std::vector<std::byte> out(reinterpret_cast<const std::byte*>(buf), reinterpret_cast<const std::byte*>(buf) + size);
  av_free(buf);
  av_packet_free(&pkt);
  av_frame_free(&frame);
  avcodec_free_context(&enc);
  avformat_free_context(fmt);
  return out;
}

}  // namespace clip_detail

inline SyntheticClip MakeClip(int width, int height, int fps, double seconds) {
  const std::string size = std::to_string(width) + "x" + std::to_string(height);
  if (std::system("command -v ffmpeg >/dev/null 2>&1") == 0) {
    char path[] = "/tmp/g4-bench-clip-XXXXXX.mp4";
    const int fd = mkstemps(path, 4);
    Require(fd >= 0, "synthetic clip", "cannot make a temporary file");
    close(fd);
    const std::string cmd = "ffmpeg -hide_banner -nostdin -loglevel error -y -f lavfi -i testsrc2=size=" + size + ":rate=" +
                            std::to_string(fps) + ":duration=" + std::to_string(seconds) +
                            " -c:v libx264 -bf 2 -g 30 -pix_fmt yuv420p " + path;
    const int rc = std::system(cmd.c_str());
    std::ifstream f(path, std::ios::binary);
    std::vector<char> bytes((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    std::remove(path);
    Require(rc == 0 && !bytes.empty(), "synthetic clip", "the ffmpeg program failed: " + cmd);
    std::vector<std::byte> out(bytes.size());
    std::memcpy(out.data(), bytes.data(), bytes.size());
    return {std::move(out), "H.264 (B-frames, GOP 30) in MP4, written by the ffmpeg program"};
  }
  return {clip_detail::EncodeInMemory(width, height, fps, static_cast<int>(seconds * fps)),
          "MPEG-4 Part 2 (GOP 12) in Matroska, encoded in memory by libavcodec (no ffmpeg program)"};
}

}  // namespace g4::bench
