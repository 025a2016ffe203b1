// A conversation with a loaded model: one sequence (KV cache) and what it holds. Each call takes the whole
// conversation (or a raw prompt), reuses the cache for the longest prefix it still holds (Sequence::Rollback; a
// changed image or audio clip never matches, whatever its token count), and streams the answer as UTF-8-safe text
// through a callback that can stop it. Sampling, stops, limits and drafting are per call: one LoadedModel serves
// raw and chat sessions at once.
#pragma once
#include <chrono>
#include <functional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "g4/model/generate.hpp"
#include "g4/model/sequence_file.hpp"
#include "g4/session/loaded_model.hpp"
#include "g4/text/stop_strings.hpp"
#include "g4/text/stream_decoder.hpp"

namespace g4 {

struct GenerateParams {
  SamplerConfig sampling;                  // temperature (<= 0: greedy), top-k/p, min-p, penalties, seed
  size_t max_tokens = 256;
  std::vector<std::string> stop_strings;   // the text ends before the first of these
  std::vector<int32_t> stop_ids;           // besides the model's own (and <turn|> in chat)
  bool speculative = true;                 // decode with the model's drafter, when it has one
  SpeculativeOptions draft;
  bool enable_thinking = false;            // chat: the template's thinking mode
};

struct Part {
  enum class Kind { kText, kImage, kAudio } kind = Kind::kText;
  std::string text;  // kText
  Media media;       // kImage, kAudio: from LoadedModel::EmbedImage / EmbedAudio

  static Part Text(std::string t) { return {Kind::kText, std::move(t), nullptr}; }
  static Part Image(Media m) { return {Kind::kImage, {}, std::move(m)}; }
  static Part Audio(Media m) { return {Kind::kAudio, {}, std::move(m)}; }
};

struct Message {
  std::string role;  // "system" (or "developer"), "user", "assistant" (or "model")
  std::vector<Part> parts;
};

enum class FinishReason { kStop, kLength, kCancelled };

struct Reply {
  std::string text;             // what was streamed: no stop string, no control tokens
  std::vector<int32_t> tokens;  // every generated token, a final stop id included
  FinishReason finish = FinishReason::kLength;
  size_t prompt_tokens = 0, cached_tokens = 0;  // the prompt's length, and how much of it the cache already held
  double prompt_seconds = 0, generation_seconds = 0;  // to the first token, and after it
  SpeculativeStats draft_stats;
};

// Receives text as it is decoded; returning false stops generation (FinishReason::kCancelled).
using TextCallback = std::function<bool(std::string_view)>;

struct SessionOptions {
  size_t context = 4096;   // most positions (prompt + answer)
  size_t max_chunk = 512;  // most tokens per forward pass (prefill chunks); the sliding rings keep this much spare
  Type cache_type = Type::F32;
};

class Session {
 public:
  Session(const LoadedModel& model, const SessionOptions& opt = {})
      : m_(model), seq_(model.model().NewSequence(opt.context, opt.max_chunk, opt.cache_type)) {}

  // Answers the conversation's last turn (a model turn follows the rendered conversation).
  Reply Respond(std::span<const Message> conversation, const GenerateParams& params, const TextCallback& on_text = {}) {
    std::vector<ChatMessage> chat;
    std::vector<MediaEmbedding> media;
    for (const Message& msg : conversation) {
      ChatMessage& c = chat.emplace_back(ChatMessage{msg.role, {}});
      for (const Part& p : msg.parts) {
        if (p.kind == Part::Kind::kText) {
          c.parts.push_back(ChatPart::Text(p.text));
          continue;
        }
        Require(p.media != nullptr, "message", "a " + std::string(p.kind == Part::Kind::kImage ? "image" : "audio") + " part without media");
        Require((p.media->kind == MediaEmbedding::Kind::kImage) == (p.kind == Part::Kind::kImage), "message",
                "a media part whose embedding is of the other kind");
        c.parts.push_back(p.kind == Part::Kind::kImage ? ChatPart::Image() : ChatPart::Audio());
        media.push_back(*p.media);
      }
    }
    ChatOptions opt = m_.chat_options();
    opt.enable_thinking = params.enable_thinking;
    Prompt prompt(m_.model().config());
    prompt.AddExpandingPlaceholders(TokenizeChat(m_.tokenizer(), chat, opt), media);
    return Run(prompt, m_.chat_stop_ids(), params, on_text);
  }

  // Continues raw text (no chat template): <bos>, the media (in order), then the text.
  Reply Complete(std::string_view text, std::span<const Media> media, const GenerateParams& params, const TextCallback& on_text = {}) {
    const Gemma4Config& cfg = m_.model().config();
    Prompt prompt(cfg);
    std::vector<int32_t> ids = m_.tokenizer().Encode(text, {.add_bos = true, .parse_special = false});
    const size_t after_bos = ids.empty() || ids[0] != cfg.tokens.bos ? 0 : 1;
    prompt.AddTokens(std::span(ids).first(after_bos));
    for (const Media& m : media) {
      Require(m != nullptr, "media", "null media item");
      prompt.AddMedia(*m);
    }
    prompt.AddTokens(std::span(ids).subspan(after_bos));
    return Run(prompt, {}, params, on_text);
  }

  const Sequence& sequence() const { return seq_; }
  // Cache keys (Prompt::keys) of the positions the cache holds, one per position.
  const std::vector<uint64_t>& cached_keys() const { return keys_; }

  void Save(const std::string& path) const { SequenceFile::Save(seq_, keys_, path); }
  void Restore(const std::string& path) {
    keys_.clear();
    try {
      keys_ = SequenceFile::Restore(seq_, path);
    } catch (...) {
      seq_.Rollback(0);  // a file rejected half-way leaves nothing half-restored behind
      throw;
    }
  }
  // A session that continues exactly like this one, with a cache of its own (a shared system prompt).
  Session Fork() const { return Session(m_, seq_.Clone(), keys_); }

 private:
  using Clock = std::chrono::steady_clock;
  Session(const LoadedModel& m, Sequence seq, std::vector<uint64_t> keys) : m_(m), seq_(std::move(seq)), keys_(std::move(keys)) {}

  Reply Run(const Prompt& prompt, std::span<const int32_t> turn_stops, const GenerateParams& params, const TextCallback& on_text) {
    const Gemma4& model = m_.model();
    const size_t context = seq_.cache.context();
    Require(prompt.size() + 1 <= context, "prompt",
            std::to_string(prompt.size()) + " tokens do not fit the context of " + std::to_string(context));
    Reply reply;
    reply.prompt_tokens = prompt.size();
    // Reuse what the cache holds of the prompt, as far back as the sliding rings allow.
    size_t keep = prompt.CommonPrefix(keys_);
    if (!seq_.CanRollback(static_cast<int64_t>(keep))) keep = 0;
    seq_.Rollback(static_cast<int64_t>(keep));
    keys_.resize(keep);
    reply.cached_tokens = keep;

    SamplerConfig sc = params.sampling;
    sc.suppressed.insert(sc.suppressed.end(), m_.suppressed().begin(), m_.suppressed().end());
    Sampler sampler(sc, model.config().vocab_size);
    for (int32_t id : prompt.tokens()) sampler.Accept(id);
    std::vector<int32_t> stop_ids(model.config().tokens.stop_ids.begin(), model.config().tokens.stop_ids.end());
    stop_ids.insert(stop_ids.end(), turn_stops.begin(), turn_stops.end());
    stop_ids.insert(stop_ids.end(), params.stop_ids.begin(), params.stop_ids.end());

    StreamDecoder stream(m_.tokenizer(), /*skip_control=*/true);
    StopStrings stops(params.stop_strings);
    bool cancelled = false;
    auto emit = [&](const std::string& text) {
      if (text.empty()) return;
      reply.text += text;
      if (on_text && !on_text(text)) cancelled = true;
    };
    const auto t0 = Clock::now();
    auto t_first = t0;
    auto on_token = [&](int32_t id) {
      if (reply.tokens.empty()) t_first = Clock::now();
      reply.tokens.push_back(id);
      sampler.Accept(id);
      if (std::find(stop_ids.begin(), stop_ids.end(), id) != stop_ids.end()) return true;  // the loop ends on it
      emit(stops.Push(stream.Push(id)));
      return !cancelled && !stops.stopped();
    };
    const Drafter* drafter = params.speculative ? m_.drafter() : nullptr;
    const std::vector<int32_t> out =
        Generate(model, drafter, seq_, prompt.input(keep), {std::min(params.max_tokens, context - prompt.size()), stop_ids},
                 params.draft, SamplerVerify(sampler), &reply.draft_stats, on_token);
    const bool stopped_by_id = !out.empty() && std::find(stop_ids.begin(), stop_ids.end(), out.back()) != stop_ids.end();
    if (!cancelled && !stops.stopped()) emit(stops.Push(stream.Flush()) + stops.Flush());
    reply.finish = cancelled ? FinishReason::kCancelled : stopped_by_id || stops.stopped() ? FinishReason::kStop : FinishReason::kLength;
    const auto t1 = Clock::now();
    reply.prompt_seconds = std::chrono::duration<double>(t_first - t0).count();
    reply.generation_seconds = std::chrono::duration<double>(t1 - t_first).count();

    // The cache now holds the prompt and every generated token but the last.
    keys_ = prompt.keys();
    for (size_t i = 0; i + 1 < out.size(); ++i) keys_.push_back(static_cast<uint32_t>(out[i]));
    Require(keys_.size() == static_cast<size_t>(seq_.pos()), "session",
            "internal: " + std::to_string(keys_.size()) + " cache keys for a sequence at position " + std::to_string(seq_.pos()));
    return reply;
  }

  const LoadedModel& m_;
  Sequence seq_;
  std::vector<uint64_t> keys_;  // Prompt::keys() of what seq_ holds, one per position
};

}  // namespace g4
