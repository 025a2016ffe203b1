// llama-perplexity's --kl-divergence-base file, byte for byte (so a base computed by either program serves the
// other): "_logits_", uint32 n_ctx, int32 n_vocab, int32 n_chunk, int32 tokens[n_chunk * n_ctx] (the text's tokens
// as tokenized, before <bos> replaces each chunk's first), then per chunk the compact rows (eval/log_prob_rows.hpp)
// of its n_ctx - 1 - n_ctx/2 scored positions. It names no model: only the vocabulary size and the tokens can be
// checked. Cost: 2 bytes per vocabulary entry per scored position (128 MiB per chunk of 512 for Gemma 4).
#pragma once
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "g4/core/error.hpp"
#include "g4/eval/log_prob_rows.hpp"

namespace g4 {

struct LogitsFileHeader {
  uint32_t n_ctx = 0;
  int32_t n_vocab = 0;
  int32_t n_chunk = 0;
  std::vector<int32_t> tokens;  // n_chunk * n_ctx
  size_t scored_per_chunk() const { return n_ctx - 1 - n_ctx / 2; }
  size_t chunk_words() const { return scored_per_chunk() * CompactRowWords(static_cast<size_t>(n_vocab)); }
};

namespace logits_file_detail {
inline constexpr char kMagic[8] = {'_', 'l', 'o', 'g', 'i', 't', 's', '_'};
struct FileCloser {
  void operator()(std::FILE* f) const { std::fclose(f); }
};
using File = std::unique_ptr<std::FILE, FileCloser>;
}  // namespace logits_file_detail

class LogitsFileWriter {
 public:
  LogitsFileWriter(const std::string& path, const LogitsFileHeader& h) : path_(path) {
    Require(h.tokens.size() == static_cast<size_t>(h.n_chunk) * h.n_ctx, path, "token count differs from n_chunk * n_ctx");
    f_.reset(std::fopen(path.c_str(), "wb"));
    Require(f_ != nullptr, path, std::string("cannot open for writing: ") + std::strerror(errno));
    Write(logits_file_detail::kMagic, 8);
    Write(&h.n_ctx, 4);
    Write(&h.n_vocab, 4);
    Write(&h.n_chunk, 4);
    Write(h.tokens.data(), h.tokens.size() * 4);
  }
  void WriteRows(std::span<const uint16_t> words) { Write(words.data(), words.size_bytes()); }
  void Close() {
    Require(std::fclose(f_.release()) == 0, path_, "write failed on close");
  }

 private:
  void Write(const void* p, size_t n) { Require(std::fwrite(p, 1, n, f_.get()) == n, path_, "write failed (disk full?)"); }
  std::string path_;
  logits_file_detail::File f_;
};

class LogitsFileReader {
 public:
  // Checks the magic, the header's sizes and that the file's length is exactly what they imply.
  explicit LogitsFileReader(const std::string& path) : path_(path) {
    f_.reset(std::fopen(path.c_str(), "rb"));
    Require(f_ != nullptr, path, std::string("cannot open: ") + std::strerror(errno));
    char magic[8] = {};
    Require(std::fread(magic, 1, 8, f_.get()) == 8 && std::memcmp(magic, logits_file_detail::kMagic, 8) == 0, path,
            "is not a file of base log-probabilities (no \"_logits_\" header; write one with --kl-divergence-base FILE "
            "without --kl-divergence)");
    Read(&h_.n_ctx, 4);
    Read(&h_.n_vocab, 4);
    Read(&h_.n_chunk, 4);
    Require(h_.n_ctx >= 4 && h_.n_ctx <= (1u << 24), path, "context size " + std::to_string(h_.n_ctx) + " out of range");
    Require(h_.n_vocab > 0 && h_.n_vocab <= (1 << 24), path, "vocabulary size " + std::to_string(h_.n_vocab) + " out of range");
    Require(h_.n_chunk > 0 && h_.n_chunk <= (1 << 20), path, "chunk count " + std::to_string(h_.n_chunk) + " out of range");
    const uint64_t want = 20 + uint64_t(h_.n_chunk) * (uint64_t(h_.n_ctx) * 4 + uint64_t(h_.chunk_words()) * 2);
    Require(std::fseek(f_.get(), 0, SEEK_END) == 0, path, "cannot seek");
    const long size = std::ftell(f_.get());
    Require(size >= 0 && uint64_t(size) == want, path,
            std::to_string(size) + " bytes where its header (n_ctx " + std::to_string(h_.n_ctx) + ", n_vocab " +
                std::to_string(h_.n_vocab) + ", " + std::to_string(h_.n_chunk) + " chunks) implies " +
                std::to_string(want) + ": truncated or not written by a perplexity run");
    Require(std::fseek(f_.get(), 20, SEEK_SET) == 0, path, "cannot seek");
    h_.tokens.resize(size_t(h_.n_chunk) * h_.n_ctx);
    Read(h_.tokens.data(), h_.tokens.size() * 4);
    for (const int32_t t : h_.tokens)
      Require(t >= 0 && t < h_.n_vocab, path, "token id " + std::to_string(t) + " outside its vocabulary of " + std::to_string(h_.n_vocab));
  }
  const LogitsFileHeader& header() const { return h_; }
  const std::string& path() const { return path_; }
  // The next chunk's rows (chunks are read in order).
  void ReadChunk(std::vector<uint16_t>& words) {
    words.resize(h_.chunk_words());
    Read(words.data(), words.size() * 2);
  }

 private:
  void Read(void* p, size_t n) { Require(std::fread(p, 1, n, f_.get()) == n, path_, "ends early"); }
  std::string path_;
  logits_file_detail::File f_;
  LogitsFileHeader h_;
};

}  // namespace g4
