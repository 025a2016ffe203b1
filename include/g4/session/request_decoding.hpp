// One request's decoding state, token by token, apart from any forward pass: the stop ids it ends on, its seeded
// sampler (the model's suppressed tokens added, the prompt accepted for the penalties), the UTF-8-safe text stream
// cut at stop strings (session_detail::Output), the token limit, and the Reply it fills. Whoever runs the forward
// passes (the Scheduler, one step at a time for many requests) feeds it logits and emitted tokens; the rules are
// those of Session::Run, which could drive its own generation through this class too.
#pragma once
#include <algorithm>
#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <span>
#include <vector>

#include "g4/model/generate.hpp"
#include "g4/model/prompt.hpp"
#include "g4/model/sampler.hpp"
#include "g4/session/session.hpp"

namespace g4 {

// The ids that end an answer: the model's own, a turn's (a chat's: LoadedModel::chat_stop_ids), the request's.
inline std::vector<int32_t> AnswerStopIds(const Gemma4Config& cfg, std::span<const int32_t> turn_stops,
                                          std::span<const int32_t> request_stops) {
  std::vector<int32_t> ids(cfg.tokens.stop_ids.begin(), cfg.tokens.stop_ids.end());
  ids.insert(ids.end(), turn_stops.begin(), turn_stops.end());
  ids.insert(ids.end(), request_stops.begin(), request_stops.end());
  return ids;
}

// A request's sampler: its config plus the model's suppressed tokens, the prompt's tokens accepted (penalties).
inline Sampler RequestSampler(const SamplerConfig& config, std::span<const int32_t> suppressed, int32_t vocab,
                              std::span<const int32_t> prompt_tokens) {
  SamplerConfig sc = config;
  sc.suppressed.insert(sc.suppressed.end(), suppressed.begin(), suppressed.end());
  Sampler sampler(std::move(sc), vocab);
  for (const int32_t id : prompt_tokens) sampler.Accept(id);
  return sampler;
}

class RequestDecoding {
 public:
  // tokenizer may be null (a model without one, e.g. in tests): then no text is streamed and stop strings are not
  // looked for. context: the sequence's; the answer is cut where it would not fit.
  // chat: the answer is parsed as Session::RespondTo parses it (content to on_text, thoughts and the tool calls
  // `tools` allows to on_delta, and into the Reply; tools: RequestToolChoice of the request the prompt was built
  // from); else the text streams unparsed (params.keep_markup), to on_text and on_delta.
  RequestDecoding(const Gemma4Config& cfg, const Tokenizer* tokenizer, std::span<const int32_t> suppressed, const Prompt& prompt,
                  std::span<const int32_t> turn_stops, GenerateParams params, TextCallback on_text, size_t context,
                  bool chat = false, ToolChoice tools = {}, DeltaCallback on_delta = {})
      : params_(std::move(params)),
        stop_ids_(AnswerStopIds(cfg, turn_stops, params_.stop_ids)),
        sampler_(RequestSampler(params_.sampling, suppressed, cfg.vocab_size, prompt.tokens())),
        pick_(SamplerVerify(sampler_)) {
    Require(prompt.size() > 0, "request", "empty prompt");
    Require(prompt.size() + 1 <= context, "prompt",
            std::to_string(prompt.size()) + " tokens do not fit the context of " + std::to_string(context));
    max_tokens_ = std::min(params_.max_tokens, context - prompt.size());
    reply_.prompt_tokens = prompt.size();
    Require(tokenizer || !chat, "request", "a chat answer needs the model's tokenizer");
    if (tokenizer) {
      output_.emplace(*tokenizer, params_, reply_, std::move(on_text), std::move(on_delta), chat, std::move(tools));
      pick_ = session_detail::Recording(std::move(pick_), *output_);
    }
  }
  RequestDecoding(const RequestDecoding&) = delete;
  RequestDecoding& operator=(const RequestDecoding&) = delete;

  // The token to emit after these logits: the draw Generate makes (greedy, or one seeded draw). Emit it next.
  int32_t Pick(std::span<const float> logits) { return pick_(logits, -1).first; }
  // The rule a speculative round verifies drafts with (the same draws as Pick).
  const VerifyRule& verify_rule() const { return pick_; }

  // Records an emitted token. False when the answer ends with it: a stop id (kept in the tokens), a stop string,
  // the text callback said stop, or the token limit.
  bool Emit(int32_t id) {
    reply_.tokens.push_back(id);
    sampler_.AcceptOutput(id);
    bool go = true;
    if (std::find(stop_ids_.begin(), stop_ids_.end(), id) != stop_ids_.end()) {
      stopped_by_id_ = true;
      go = false;
    } else if (output_) {
      go = output_->Push(id);
    }
    return go && reply_.tokens.size() < max_tokens_;
  }

  // Flushes the held text and sets the finish reason; cancelled: stopped from outside.
  void Finish(bool cancelled) {
    if (output_ && !cancelled) output_->Finish();
    const bool callback_stop = output_ && output_->cancelled();
    reply_.finish = cancelled || callback_stop                          ? FinishReason::kCancelled
                    : stopped_by_id_ || (output_ && output_->stopped()) ? FinishReason::kStop
                                                                        : FinishReason::kLength;
  }

  size_t max_tokens() const { return max_tokens_; }  // after the context's cut
  const std::vector<int32_t>& stop_ids() const { return stop_ids_; }
  Reply& reply() { return reply_; }

 private:
  GenerateParams params_;
  std::vector<int32_t> stop_ids_;
  Sampler sampler_;
  VerifyRule pick_;  // refers to sampler_ (and output_: logprobs)
  Reply reply_;
  std::optional<session_detail::Output> output_;  // refers to reply_
  size_t max_tokens_ = 0;
  bool stopped_by_id_ = false;
};

}  // namespace g4
