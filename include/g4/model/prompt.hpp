// A prompt of text and media, assembled into the model's input (spec 2.4, 3): an image becomes
// <|image>, N soft tokens, <image|>; an audio clip <|audio>, N soft tokens, <audio|>; a video, per frame, its
// "mm:ss " text, <|image>, N soft tokens (as <|video|>), <image|>, frames joined by a space. Soft tokens enter the
// model unscaled; each image's and each video frame's soft tokens form one bidirectional block (sliding layers
// only); audio is causal.
#pragma once
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "g4/model/config.hpp"
#include "g4/model/gemma4.hpp"

namespace g4 {

struct MediaEmbedding {
  enum class Kind { kImage, kAudio, kVideo } kind = Kind::kImage;
  std::vector<float> rows;  // [n, hidden] soft tokens
  size_t n = 0;
  // kVideo: each frame's soft-token count (they sum to n) and the ids of the text before its <|image>: "mm:ss " for
  // the first frame, " mm:ss " after (transformers joins the frames with single spaces).
  struct Frame {
    size_t tokens = 0;
    std::vector<int32_t> prefix_ids;
  };
  std::vector<Frame> frames;
};

class Prompt {
 public:
  explicit Prompt(const Gemma4Config& cfg) : cfg_(cfg) {}

  void AddTokens(std::span<const int32_t> ids) {
    for (int32_t id : ids) Push(id, -1, -1);
  }

  // Appends boi/boa, the media's soft tokens, eoi/eoa; a video's frames each with their timestamp text.
  void AddMedia(const MediaEmbedding& m) {
    if (m.kind == MediaEmbedding::Kind::kVideo) return AddVideo(m);
    const bool image = m.kind == MediaEmbedding::Kind::kImage;
    Push(image ? cfg_.tokens.boi : cfg_.tokens.boa, -1, -1);
    AddSoftRun(m, 0, m.n, image ? next_block_++ : -1);
    Push(image ? cfg_.tokens.eoi : cfg_.tokens.eoa, -1, -1);
  }

  // `ids` hold one <|image|> / <|audio|> / <|video|> placeholder per media item, in order (as the chat template
  // renders them); each expands to the whole media sequence.
  void AddExpandingPlaceholders(std::span<const int32_t> ids, std::span<const MediaEmbedding> media) {
    size_t next = 0;
    for (int32_t id : ids) {
      if (id != cfg_.tokens.image && id != cfg_.tokens.audio && id != cfg_.tokens.video) {
        Push(id, -1, -1);
        continue;
      }
      const MediaEmbedding& m = TakeMedia(media, next, id);
      AddMedia(m);
    }
    Require(next == media.size(), "prompt", std::to_string(media.size() - next) + " media item(s) have no placeholder in the prompt");
  }

  // `ids` are already expanded (a processor's input_ids): each maximal run of <|image|> (or <|audio|>) tokens
  // takes the next media item of the prompt, which must have exactly that many rows.
  void AddExpanded(std::span<const int32_t> ids, std::span<const MediaEmbedding> media) {
    size_t next = 0;
    for (size_t i = 0; i < ids.size();) {
      const int32_t id = ids[i];
      Require(id != cfg_.tokens.video, "prompt", "expanded <|video|> runs are not taken: give one <|video|> per video item");
      if (id != cfg_.tokens.image && id != cfg_.tokens.audio) {
        Push(id, -1, -1);
        ++i;
        continue;
      }
      size_t run = 1;
      while (i + run < ids.size() && ids[i + run] == id) ++run;
      const MediaEmbedding& m = TakeMedia(media, next, id);
      Require(m.n == run, "prompt", "a run of " + std::to_string(run) + " placeholders for a media item of " + std::to_string(m.n) + " soft tokens");
      AddSoftRun(m, 0, m.n, id == cfg_.tokens.image ? next_block_++ : -1);
      i += run;
    }
    Require(next == media.size(), "prompt", std::to_string(media.size() - next) + " media item(s) have no placeholder in the prompt");
  }

  size_t size() const { return tokens_.size(); }
  const std::vector<int32_t>& tokens() const { return tokens_; }
  // Per position: the bidirectional block (an image's or a video frame's soft tokens), or -1.
  const std::vector<int32_t>& block_ids() const { return block_id_; }
  // transformers' mm_token_type_ids: 0 text (boi/eoi/boa/eoa too), 1 image, 2 video, 3 audio soft tokens.
  std::vector<int8_t> token_types() const {
    std::vector<int8_t> t(tokens_.size(), 0);
    for (size_t i = 0; i < t.size(); ++i)
      if (soft_index_[i] >= 0) t[i] = tokens_[i] == cfg_.tokens.image ? 1 : tokens_[i] == cfg_.tokens.video ? 2 : 3;
    return t;
  }
  // The input from position `from` on (a cache already holds the tokens before it).
  ForwardInput input(size_t from = 0) const {
    Require(from < tokens_.size(), "prompt", "nothing left to run after position " + std::to_string(from));
    return {std::span(tokens_).subspan(from), soft_, std::span(soft_index_).subspan(from), std::span(block_id_).subspan(from)};
  }
  // What each position's cache entry depends on: the token id, or for a soft token its media item's content and
  // row (so a changed image of the same size never matches a cached one).
  const std::vector<uint64_t>& keys() const { return keys_; }
  // Length of the prefix shared with `cached` (the keys of what a cache holds), shortened so that at least one token
  // is left to run and no image block is split (its tokens must attend to each other in one forward pass).
  size_t CommonPrefix(std::span<const uint64_t> cached) const {
    size_t n = 0;
    while (n < cached.size() && n + 1 < keys_.size() && cached[n] == keys_[n]) ++n;
    while (n > 0 && block_id_[n] >= 0 && block_id_[n - 1] == block_id_[n]) --n;
    return n;
  }

 private:
  void Push(int32_t id, int32_t soft, int32_t block, uint64_t key = 0) {
    keys_.push_back(soft < 0 ? static_cast<uint32_t>(id) : key);
    tokens_.push_back(id);
    soft_index_.push_back(soft);
    block_id_.push_back(block);
  }
  // Rows [first, first + count) of the media as soft tokens.
  void AddSoftRun(const MediaEmbedding& m, size_t first, size_t count, int32_t block) {
    const size_t H = static_cast<size_t>(cfg_.hidden_size);
    Require(m.rows.size() == m.n * H, "prompt", "media embedding of " + std::to_string(m.rows.size()) + " values for " +
                                                    std::to_string(m.n) + " tokens of width " + std::to_string(H));
    const int32_t placeholder = m.kind == MediaEmbedding::Kind::kImage ? cfg_.tokens.image
                                : m.kind == MediaEmbedding::Kind::kVideo ? cfg_.tokens.video : cfg_.tokens.audio;
    const std::span<const float> rows = std::span(m.rows).subspan(first * H, count * H);
    // FNV-1a over the rows' bytes; soft keys have the top bit set, token keys are the id.
    uint64_t content = 0xcbf29ce484222325ull;
    for (const std::byte b : std::as_bytes(rows)) content = (content ^ static_cast<uint8_t>(b)) * 0x100000001b3ull;
    for (size_t r = 0; r < count; ++r)
      Push(placeholder, static_cast<int32_t>(soft_.size() / H + r), block, (1ull << 63) | ((content + r * 0x9e3779b97f4a7c15ull) >> 1));
    soft_.insert(soft_.end(), rows.begin(), rows.end());
  }
  void AddVideo(const MediaEmbedding& m) {
    size_t total = 0;
    for (const MediaEmbedding::Frame& f : m.frames) total += f.tokens;
    Require(!m.frames.empty() && total == m.n, "prompt", "a video whose frames hold " + std::to_string(total) + " of its " + std::to_string(m.n) + " soft tokens");
    size_t first = 0;
    for (const MediaEmbedding::Frame& f : m.frames) {
      AddTokens(f.prefix_ids);
      Push(cfg_.tokens.boi, -1, -1);
      AddSoftRun(m, first, f.tokens, next_block_++);
      Push(cfg_.tokens.eoi, -1, -1);
      first += f.tokens;
    }
  }
  const MediaEmbedding& TakeMedia(std::span<const MediaEmbedding> media, size_t& next, int32_t placeholder) const {
    Require(next < media.size(), "prompt", "more media placeholders in the prompt than media items");
    const MediaEmbedding& m = media[next++];
    const MediaEmbedding::Kind want = placeholder == cfg_.tokens.image   ? MediaEmbedding::Kind::kImage
                                      : placeholder == cfg_.tokens.video ? MediaEmbedding::Kind::kVideo
                                                                         : MediaEmbedding::Kind::kAudio;
    static constexpr const char* kNames[] = {"an image", "audio", "a video"};
    static constexpr const char* kPlaceholders[] = {"<|image|>", "<|audio|>", "<|video|>"};
    Require(m.kind == want, "prompt", std::string("media item ") + std::to_string(next) + " is " + kNames[static_cast<int>(m.kind)] +
                                          " but its placeholder is " + kPlaceholders[static_cast<int>(want)]);
    return m;
  }

  const Gemma4Config& cfg_;
  std::vector<int32_t> tokens_, soft_index_, block_id_;
  std::vector<uint64_t> keys_;
  std::vector<float> soft_;  // [n_soft, hidden]
  int32_t next_block_ = 0;
};

}  // namespace g4
