// A conversation with a loaded model: one sequence (KV cache) and what it holds. Each call takes the whole
// conversation (or a raw prompt), reuses the cache for the longest prefix it still holds (Sequence::Rollback; a
// changed image or audio clip never matches, whatever its token count), and streams the answer as UTF-8-safe text
// through a callback that can stop it. Sampling, stops, limits and drafting are per call: one LoadedModel serves
// raw and chat sessions at once.
//
// Chat prompts render the model file's own chat template (LoadedModel::ChatPromptIds; the built-in Gemma 4 format
// for files without one), from Messages or from an OpenAI-style request JSON (RespondTo: tools, tool_calls, tool
// messages, enable_thinking / chat_template_kwargs). A chat answer is parsed as it streams (ToolCallParser): the
// text callback sees only the answer's content, never a marker, a thought or a tool call's raw text; thoughts and
// tool calls come as MessageDeltas through a second callback, and whole in the Reply.
#pragma once
#include <chrono>
#include <functional>
#include <optional>
#include <random>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "g4/model/generate.hpp"
#include "g4/model/sequence_file.hpp"
#include "g4/session/chat_constraint.hpp"
#include "g4/session/loaded_model.hpp"
#include "g4/text/stop_strings.hpp"
#include "g4/text/stream_decoder.hpp"
#include "g4/text/tool_calls.hpp"

namespace g4 {

struct GenerateParams {
  SamplerConfig sampling;                  // temperature (<= 0: greedy), top-k/p, min-p, penalties, seed
  size_t max_tokens = 256;
  std::vector<std::string> stop_strings;   // the text ends before the first of these
  std::vector<int32_t> stop_ids;           // besides the model's own (and <turn|> in chat)
  bool speculative = true;                 // decode with the model's drafter, when it has one
  SpeculativeOptions draft;
  bool enable_thinking = false;            // chat: the template's thinking mode
  bool keep_markup = false;                // stream control tokens' text too (<|channel>, <|tool_call>, ...) for a
                                           // caller that parses the answer's markup (g4/text/tool_calls.hpp)
  bool logprobs = false;                   // record each answer token's logprob (g4/model/logprobs.hpp: a pass over
  size_t top_logprobs = 0;                 // the vocabulary per token) and this many alternatives (at most 20)
};

struct Part {
  enum class Kind { kText, kImage, kAudio, kVideo } kind = Kind::kText;
  std::string text;  // kText
  Media media;       // kImage, kAudio, kVideo: from LoadedModel::EmbedImage / EmbedAudio / EmbedVideo (a video's
                     // sound is audio parts after it: g4/session/video_parts.hpp)

  static Part Text(std::string t) { return {Kind::kText, std::move(t), nullptr}; }
  static Part Image(Media m) { return {Kind::kImage, {}, std::move(m)}; }
  static Part Audio(Media m) { return {Kind::kAudio, {}, std::move(m)}; }
  static Part Video(Media m) { return {Kind::kVideo, {}, std::move(m)}; }
};

struct Message {
  std::string role;  // "system" (or "developer"), "user", "assistant" (or "model")
  std::vector<Part> parts;
};

enum class FinishReason { kStop, kLength, kCancelled };

struct Reply {
  std::string text;             // what was streamed: no stop string, no control tokens; in chat the content only
  std::vector<int32_t> tokens;  // every generated token, a final stop id included
  FinishReason finish = FinishReason::kLength;
  size_t prompt_tokens = 0, cached_tokens = 0;  // the prompt's length, and how much of it the cache already held
  double prompt_seconds = 0, generation_seconds = 0;  // to the first token, and after it
  SpeculativeStats draft_stats;
  // Chat: the thought channel's text, the tool calls (OpenAI's [{id, type, function: {name, arguments}}], the
  // arguments a JSON string; a reply with calls is OpenAI's finish_reason "tool_calls"), and why some markup was
  // kept as text (a malformed tool call).
  std::string reasoning_content;
  nlohmann::ordered_json tool_calls = nlohmann::ordered_json::array();
  std::vector<std::string> warnings;
  // With GenerateParams::logprobs: one per generated token but a final stop id, in order (markup tokens included).
  std::optional<std::vector<TokenLogprob>> logprobs;

  // The answer as the assistant message of a request's next turn.
  nlohmann::ordered_json message() const {
    nlohmann::ordered_json m = {{"role", "assistant"}, {"content", text}};
    if (!reasoning_content.empty()) m["reasoning_content"] = reasoning_content;
    if (!tool_calls.empty()) m["tool_calls"] = tool_calls;
    return m;
  }
};

// Receives text as it is decoded (in chat, the content only); returning false stops generation
// (FinishReason::kCancelled).
using TextCallback = std::function<bool(std::string_view)>;
// Receives every part of the answer as it streams: in chat the parsed parts (content, reasoning, tool-call deltas as
// OpenAI streams them: id and name first, then argument fragments), else the text as content; with
// GenerateParams::logprobs each delta carries the logprobs of the tokens generated since the last. Returning false
// stops generation.
using DeltaCallback = std::function<bool(const MessageDelta&)>;

// Messages as an OpenAI-style request ({"messages": [...]}, a model turn named "assistant"), their media in order.
inline nlohmann::ordered_json MessagesToRequest(std::span<const Message> conversation, std::vector<Media>* media = nullptr) {
  nlohmann::ordered_json messages = nlohmann::ordered_json::array();
  for (const Message& msg : conversation) {
    nlohmann::ordered_json parts = nlohmann::ordered_json::array();
    for (const Part& p : msg.parts) {
      if (p.kind == Part::Kind::kText) {
        parts.push_back({{"type", "text"}, {"text", p.text}});
        continue;
      }
      const char* type = p.kind == Part::Kind::kImage ? "image" : p.kind == Part::Kind::kAudio ? "audio" : "video";
      const MediaEmbedding::Kind want = p.kind == Part::Kind::kImage   ? MediaEmbedding::Kind::kImage
                                        : p.kind == Part::Kind::kAudio ? MediaEmbedding::Kind::kAudio
                                                                       : MediaEmbedding::Kind::kVideo;
      Require(p.media != nullptr, "message", std::string("a ") + type + " part without media");
      Require(p.media->kind == want, "message", std::string("a ") + type + " part whose embedding is of another kind");
      parts.push_back({{"type", type}});
      if (media) media->push_back(p.media);
    }
    nlohmann::ordered_json m = {{"role", msg.role == "model" ? "assistant" : msg.role}};
    if (parts.size() == 1 && parts[0]["type"] == "text")
      m["content"] = parts[0]["text"];
    else
      m["content"] = std::move(parts);
    messages.push_back(std::move(m));
  }
  return {{"messages", std::move(messages)}};
}

namespace session_detail {

// Generated ids -> the Reply and the callbacks: decoded, cut at stop strings, and in chat parsed (content,
// reasoning, tool calls of what the request's ToolChoice allows) so that the text callback never sees markup.
// Control tokens are dropped, except in chat those that are the parser's markers. With params.logprobs, whoever
// picks the tokens passes each pick's logits (Picked) before the token is pushed; one implementation for
// Session::Run and RequestDecoding.
class Output {
 public:
  Output(const Tokenizer& tok, const GenerateParams& params, Reply& reply, TextCallback on_text, DeltaCallback on_delta,
         bool chat, ToolChoice tools = {})
      : tok_(tok), decoder_(tok), stops_(params.stop_strings), reply_(reply), on_text_(std::move(on_text)), on_delta_(std::move(on_delta)),
        chat_(chat), keep_markup_(!chat && params.keep_markup), parser_(std::move(tools), CallIdPrefix()),
        top_logprobs_(params.logprobs ? std::optional<size_t>(params.top_logprobs) : std::nullopt) {
    Require(params.top_logprobs <= kMaxTopLogprobs, "top_logprobs", "at most " + std::to_string(kMaxTopLogprobs));
    if (top_logprobs_) reply_.logprobs.emplace();
    if (chat)
      for (const std::string_view m : {"<|tool_call>", "<tool_call|>", "<|channel>", "<channel|>", "<|\"|>", "<turn|>", "<|tool_response>"})
        if (const auto id = tok.Find(m)) markers_.insert(*id);
  }
  static constexpr size_t kMaxTopLogprobs = 20;

  // The logits a token was picked from (before Push of that token); records its logprob when asked.
  void Picked(std::span<const float> logits, int32_t id) {
    if (!top_logprobs_) return;
    picked_ = LogprobOf(logits, id, *top_logprobs_);
    picked_->text = tok_.TokenText(id);
    for (TokenLogprob::Alternative& a : picked_->top) a.text = tok_.TokenText(a.id);
  }

  // False once the answer ends here (a stop string, a callback said stop, or the tool calls allowed are made).
  bool Push(int32_t id) {
    if (picked_ && picked_->id == id) {
      reply_.logprobs->push_back(*picked_);
      pending_logprobs_.push_back(std::move(*picked_));
    }
    picked_.reset();
    if (tok_.IsControl(id) && !keep_markup_ && !markers_.count(id)) return running();
    Emit(stops_.Push(decoder_.Push(id)));
    return running();
  }

  void Finish() {
    if (running()) Emit(stops_.Push(decoder_.Flush()) + stops_.Flush());
    if (chat_) {
      Deliver(parser_.Finish());
      reply_.tool_calls = ToolCallParser::Message(all_)["tool_calls"];
    }
    if (!pending_logprobs_.empty()) Deliver({});
  }

  bool cancelled() const { return cancelled_; }
  bool stopped() const { return stops_.stopped() || parser_.ended(); }

 private:
  bool running() const { return !cancelled_ && !stopped(); }
  void Emit(const std::string& text) {
    if (text.empty()) return;
    if (chat_) return Deliver(parser_.Feed(text));
    MessageDelta d;
    d.content = text;
    Deliver(std::move(d));
  }
  void Deliver(MessageDelta d) {
    d.logprobs = std::move(pending_logprobs_);
    pending_logprobs_.clear();
    if (d.empty()) return;
    reply_.text += d.content;
    reply_.reasoning_content += d.reasoning_content;
    reply_.warnings.insert(reply_.warnings.end(), d.warnings.begin(), d.warnings.end());
    all_.tool_calls.insert(all_.tool_calls.end(), d.tool_calls.begin(), d.tool_calls.end());
    if (cancelled_) return;
    if (on_text_ && !d.content.empty() && !on_text_(d.content)) cancelled_ = true;
    if (on_delta_ && !on_delta_(d)) cancelled_ = true;
  }
  // Tool call ids unique across a conversation's turns (as OpenAI's are): call_ + 8 random hex digits + _N.
  static std::string CallIdPrefix() {
    static thread_local std::mt19937_64 rng{std::random_device{}()};
    char buf[32];
    std::snprintf(buf, sizeof buf, "call_%08x_", static_cast<unsigned>(rng()));
    return buf;
  }

  const Tokenizer& tok_;
  StreamDecoder decoder_;
  StopStrings stops_;
  Reply& reply_;
  TextCallback on_text_;
  DeltaCallback on_delta_;
  bool chat_, keep_markup_;
  ToolCallParser parser_;
  std::set<int32_t> markers_;
  MessageDelta all_;  // the tool-call deltas so far
  std::optional<size_t> top_logprobs_;       // set: logprobs asked for, with this many alternatives
  std::optional<TokenLogprob> picked_;        // the last pick's, until its token is pushed
  std::vector<TokenLogprob> pending_logprobs_;  // pushed tokens' logprobs not yet delivered
  bool cancelled_ = false;
};

// A pick rule that shows each pick's logits to `output` (its token's logprob, when asked). Generate and the
// Scheduler emit each picked token before the next pick, drafting or not, so the logits reach their tokens.
inline VerifyRule Recording(VerifyRule rule, Output& output) {
  return [rule = std::move(rule), &output](std::span<const float> logits, int32_t draft) {
    const std::pair<int32_t, bool> r = rule(logits, draft);
    output.Picked(logits, r.first);
    return r;
  };
}

// The forced call of a named tool_choice, as the model would write its start: <|tool_call>call:NAME{ (the marker
// as the template's markup is read: its control token where the vocabulary has one; the name never is markup).
inline std::vector<int32_t> ForcedCallIds(const Tokenizer& tok, const std::string& name) {
  std::vector<int32_t> ids = tok.Encode("<|tool_call>", {.add_bos = false, .parse_special = true});
  const std::vector<int32_t> rest = tok.Encode("call:" + name + "{", {.add_bos = false, .parse_special = false});
  ids.insert(ids.end(), rest.begin(), rest.end());
  return ids;
}

}  // namespace session_detail

// The params a chat request is answered with (Session::RespondTo, g4 serve): the caller's, constrained as the request
// asks (ChatConstraint: response_format, tool calls; a grammar the caller set wins).
inline GenerateParams ConstrainedChatParams(const LoadedModel& m, const nlohmann::ordered_json& request, GenerateParams params) {
  if (!params.sampling.grammar) params.sampling.grammar = ChatConstraint(m, request);
  return params;
}

struct SessionOptions {
  size_t context = 4096;   // most positions (prompt + answer)
  size_t max_chunk = 512;  // most tokens per forward pass (prefill chunks); the sliding rings keep this much spare
  KVTypes cache_type = {};  // of keys and values (default F32)
};

class Session {
 public:
  Session(const LoadedModel& model, const SessionOptions& opt = {})
      : m_(model), seq_(model.model().NewSequence(opt.context, opt.max_chunk, opt.cache_type)) {}

  // Answers the conversation's last turn (a model turn follows the rendered conversation).
  Reply Respond(std::span<const Message> conversation, const GenerateParams& params, const TextCallback& on_text = {},
                const DeltaCallback& on_delta = {}) {
    std::vector<Media> media;
    const nlohmann::ordered_json request = MessagesToRequest(conversation, &media);
    return RespondTo(request, media, params, on_text, on_delta);
  }

  // Answers an OpenAI-style chat request: {"messages": [...]} with roles system / developer / user / assistant /
  // tool, content a string or parts ({"type": "text", "text"}, {"type": "image"} / "image_url", {"type": "audio"} /
  // "input_audio"), assistant tool_calls (arguments a JSON string or an object); "tools" (OpenAI function
  // declarations), "tool_choice" and "parallel_tool_calls" (RequestToolChoice), "enable_thinking" or
  // "chat_template_kwargs", "add_generation_prompt". `media` are the request's images and audio clips in the order
  // their parts appear. Tool calls to undeclared functions stay text.
  Reply RespondTo(const nlohmann::ordered_json& request, std::span<const Media> media, const GenerateParams& params,
                  const TextCallback& on_text = {}, const DeltaCallback& on_delta = {}) {
    const Prompt prompt = ChatPrompt(m_, request, media, params.enable_thinking);
    std::vector<int32_t> stops = m_.chat_stop_ids();
    stops.insert(stops.end(), m_.tool_stop_ids().begin(), m_.tool_stop_ids().end());
    const GenerateParams constrained = ConstrainedChatParams(m_, request, params);  // response_format, tool calls
    Reply reply;
    session_detail::Output out(m_.tokenizer(), constrained, reply, on_text, on_delta, /*chat=*/true, RequestToolChoice(request));
    Run(prompt, stops, constrained, out, reply);
    return reply;
  }

  // Continues raw text (no chat template): <bos>, the media (in order), then the text.
  Reply Complete(std::string_view text, std::span<const Media> media, const GenerateParams& params, const TextCallback& on_text = {},
                 const DeltaCallback& on_delta = {}) {
    return Run(RawPrompt(m_, text, media), {}, params, on_text, on_delta);
  }

  // The prompts Respond, RespondTo and Complete run (for a caller that picks among sessions by
  // Prompt::CommonPrefix). A chat prompt follows the request's tool_choice: "none" renders no tools, a named
  // function ends the prompt with that call's start (session_detail::ForcedCallIds).
  static Prompt ChatPrompt(const LoadedModel& m, const nlohmann::ordered_json& request, std::span<const Media> media, bool enable_thinking) {
    std::vector<MediaEmbedding> embedded;
    for (const Media& item : media) {
      Require(item != nullptr, "media", "null media item");
      embedded.push_back(*item);
    }
    const ToolChoice choice = RequestToolChoice(request);
    std::vector<int32_t> ids;
    if (choice.allowed) {
      ids = m.ChatPromptIds(request, enable_thinking);
    } else {
      nlohmann::ordered_json offered = request;
      offered.erase("tools");
      ids = m.ChatPromptIds(offered, enable_thinking);
    }
    if (!choice.forced.empty()) {
      const std::vector<int32_t> call = session_detail::ForcedCallIds(m.tokenizer(), choice.forced);
      ids.insert(ids.end(), call.begin(), call.end());
    }
    Prompt prompt(m.model().config());
    prompt.AddExpandingPlaceholders(ids, embedded);
    return prompt;
  }
  static Prompt ChatPrompt(const LoadedModel& m, std::span<const Message> conversation, bool enable_thinking) {
    std::vector<Media> media;
    const nlohmann::ordered_json request = MessagesToRequest(conversation, &media);
    return ChatPrompt(m, request, media, enable_thinking);
  }
  static Prompt RawPrompt(const LoadedModel& m, std::string_view text, std::span<const Media> media) {
    const Gemma4Config& cfg = m.model().config();
    Prompt prompt(cfg);
    std::vector<int32_t> ids = m.tokenizer().Encode(text, {.add_bos = true, .parse_special = false});
    const size_t after_bos = ids.empty() || ids[0] != cfg.tokens.bos ? 0 : 1;
    prompt.AddTokens(std::span(ids).first(after_bos));
    for (const Media& item : media) {
      Require(item != nullptr, "media", "null media item");
      prompt.AddMedia(*item);
    }
    prompt.AddTokens(std::span(ids).subspan(after_bos));
    return prompt;
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

  // Runs a prompt built by the caller (ChatPrompt, RawPrompt, or a template's rendering) and streams its text
  // unparsed (with params.keep_markup, control tokens' text too); turn_stops end the answer besides the model's own
  // stop ids (a chat's: LoadedModel::chat_stop_ids).
  Reply Run(const Prompt& prompt, std::span<const int32_t> turn_stops, const GenerateParams& params, const TextCallback& on_text = {},
            const DeltaCallback& on_delta = {}) {
    Reply reply;
    session_detail::Output out(m_.tokenizer(), params, reply, on_text, on_delta, /*chat=*/false);
    Run(prompt, turn_stops, params, out, reply);
    return reply;
  }

 private:
  void Run(const Prompt& prompt, std::span<const int32_t> turn_stops, const GenerateParams& params, session_detail::Output& output,
           Reply& reply) {
    const Gemma4& model = m_.model();
    const size_t context = seq_.cache.context();
    Require(prompt.size() + 1 <= context, "prompt",
            std::to_string(prompt.size()) + " tokens do not fit the context of " + std::to_string(context));
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

    const auto t0 = Clock::now();
    auto t_first = t0;
    auto on_token = [&](int32_t id) {
      if (reply.tokens.empty()) t_first = Clock::now();
      reply.tokens.push_back(id);
      sampler.AcceptOutput(id);  // penalties, and the grammar of a constrained answer
      if (std::find(stop_ids.begin(), stop_ids.end(), id) != stop_ids.end()) return true;  // the loop ends on it
      return output.Push(id);
    };
    const Drafter* drafter = params.speculative ? m_.drafter() : nullptr;
    const VerifyRule pick = session_detail::Recording(SamplerVerify(sampler), output);
    const std::vector<int32_t> out =
        Generate(model, drafter, seq_, prompt.input(keep), {std::min(params.max_tokens, context - prompt.size()), stop_ids},
                 params.draft, pick, &reply.draft_stats, on_token);
    const bool stopped_by_id = !out.empty() && std::find(stop_ids.begin(), stop_ids.end(), out.back()) != stop_ids.end();
    output.Finish();
    reply.finish = output.cancelled() ? FinishReason::kCancelled : stopped_by_id || output.stopped() ? FinishReason::kStop : FinishReason::kLength;
    const auto t1 = Clock::now();
    reply.prompt_seconds = std::chrono::duration<double>(t_first - t0).count();
    reply.generation_seconds = std::chrono::duration<double>(t1 - t_first).count();

    // The cache now holds the prompt and every generated token but the last.
    keys_ = prompt.keys();
    for (size_t i = 0; i + 1 < out.size(); ++i) keys_.push_back(static_cast<uint32_t>(out[i]));
    Require(keys_.size() == static_cast<size_t>(seq_.pos()), "session",
            "internal: " + std::to_string(keys_.size()) + " cache keys for a sequence at position " + std::to_string(seq_.pos()));
  }

 private:
  using Clock = std::chrono::steady_clock;
  Session(const LoadedModel& m, Sequence seq, std::vector<uint64_t> keys) : m_(m), seq_(std::move(seq)), keys_(std::move(keys)) {}

  const LoadedModel& m_;
  Sequence seq_;
  std::vector<uint64_t> keys_;  // Prompt::keys() of what seq_ holds, one per position
};

}  // namespace g4
