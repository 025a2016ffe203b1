// A model loaded once and shared by every session: the checkpoint (HF folder or GGUF, with an optional mmproj),
// its tokenizer and chat format, the decoder, an optional MTP drafter, and the image and audio embedders. Sessions
// hold only per-sequence state (KV caches, samplers); nothing here changes after construction, so one LoadedModel
// serves raw and chat use alike.
#pragma once
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "g4/io/checkpoint.hpp"
#include "g4/media/audio.hpp"
#include "g4/media/audio_embedder.hpp"
#include "g4/media/image.hpp"
#include "g4/media/image_patches.hpp"
#include "g4/media/video.hpp"
#include "g4/media/vision_embedder.hpp"
#include "g4/model/drafter.hpp"
#include "g4/model/gemma4.hpp"
#include "g4/model/prompt.hpp"
#include "g4/core/mapped_file.hpp"
#include "g4/grammar/token_trie.hpp"
#include "g4/text/chat_request.hpp"
#include "g4/text/chat_template.hpp"
#include "g4/text/model_chat_template.hpp"
#include "g4/text/load_tokenizer.hpp"

namespace g4 {

struct ModelFiles {
  std::string model;      // Hugging Face folder or GGUF file
  std::string mmproj;     // GGUF: llama.cpp's mmproj file with the vision and audio embedders
  std::string draft;      // MTP drafter (assistant) checkpoint, or empty
  std::string tokenizer;  // a tokenizer.json to use instead of the model's own, or empty
  Repack repack = Repack::kWhereRead;
  std::string chat_template;  // a Jinja chat template file to use instead of the one the model file carries, or empty
};

using Media = std::shared_ptr<const MediaEmbedding>;

class LoadedModel {
 public:
  LoadedModel(const ModelFiles& files, ThreadPool& pool)
      : pool_(pool), ck_(files.model, files.mmproj), tok_(LoadModelTokenizer(ck_, files.tokenizer)),
        model_(ck_.config(), ck_.text(), pool, files.repack) {
    const Gemma4Config& cfg = model_.config();
    Require(tok_.size() <= cfg.vocab_size, "tokenizer",
            std::to_string(tok_.size()) + " tokens for a model vocabulary of " + std::to_string(cfg.vocab_size));
    for (int32_t id : cfg.tokens.suppress)
      if (id < cfg.vocab_size) suppressed_.push_back(id);
    chat_stop_ids_ = ChatStopIds(tok_);
    // Chat prompts render the template the model file carries (or files.chat_template), parsed once; a file
    // without one (or with one that does not parse) gets the built-in Gemma 4 renderer.
    std::optional<std::string> source;
    try {
      source = !files.chat_template.empty() ? ReadText(files.chat_template) : ModelChatTemplate(files.model);
      if (source && !source->empty()) {
        template_ = std::make_unique<const ChatTemplate>(*source);
        controls_ = std::make_unique<const ControlTexts>(tok_);
      }
    } catch (const Error& e) {
      Require(files.chat_template.empty(), files.chat_template, std::string("chat template: ") + e.what());
      chat_note_ = std::string(e.what()) + "; chat prompts use the built-in Gemma 4 format";
    }
    if (!template_ && source && !source->empty() && chat_note_.empty()) {
      try {
        chat_ = ChatOptionsFromJinja(*source, ck_.path());
      } catch (const Error& e) {
        chat_note_ = std::string(e.what()) + "; chat prompts use the built-in Gemma 4 format";
      }
    }
    if (const auto id = tok_.Find("<|tool_response>")) tool_stop_ids_ = {*id};
    if (!files.draft.empty()) {
      draft_ck_ = std::make_unique<Checkpoint>(files.draft);
      Require(draft_ck_->assistant().has_value(), files.draft, "is not an MTP drafter (assistant) checkpoint");
      drafter_ = std::make_unique<Drafter>(draft_ck_->config(), draft_ck_->text(), *draft_ck_->assistant(), model_);
    }
  }
  LoadedModel(const LoadedModel&) = delete;
  LoadedModel& operator=(const LoadedModel&) = delete;

  const Checkpoint& checkpoint() const { return ck_; }
  const Gemma4& model() const { return model_; }
  const Drafter* drafter() const { return drafter_.get(); }
  const Tokenizer& tokenizer() const { return tok_; }
  ThreadPool& pool() const { return pool_; }
  const std::vector<int32_t>& suppressed() const { return suppressed_; }  // never sampled (the checkpoint's list)
  const std::vector<int32_t>& chat_stop_ids() const { return chat_stop_ids_; }  // end a model turn: <eos>, <turn|>
  const ChatOptions& chat_options() const { return chat_; }
  // Non-empty when the file's chat template could not be used: what chat prompts do instead.
  const std::string& chat_note() const { return chat_note_; }
  // The model's chat template (the file's own, or ModelFiles::chat_template); null: the built-in renderer.
  const ChatTemplate* chat_template() const { return template_.get(); }
  // Ids that end a model turn after a tool call (<|tool_response>, where the vocabulary has it).
  const std::vector<int32_t>& tool_stop_ids() const { return tool_stop_ids_; }
  // The vocabulary's prefix tree for constrained output (grammar/model_grammar.hpp), built on first use (about a
  // second for 262144 tokens) and shared by every request.
  std::shared_ptr<const TokenTrie> token_trie() const {
    std::call_once(trie_once_, [this] { trie_ = std::make_shared<const TokenTrie>(TokenTrie::FromTokenizer(tok_, model_.config().vocab_size)); });
    return trie_;
  }

  // A chat request's prompt ({"messages", "tools", "enable_thinking", "chat_template_kwargs", ...}, OpenAI style):
  // its text, and its token ids with one <|image|> / <|audio|> placeholder per media item. Through the chat
  // template, the template's markup becomes control tokens and the request's text never does; without one, the
  // built-in renderer (which knows no tools). `thinking` applies when the request does not say.
  std::string ChatPromptText(const nlohmann::ordered_json& request, bool thinking = false) const {
    if (template_) return template_->Render(WithThinking(request, thinking));
    ChatOptions opt = chat_;
    opt.enable_thinking = RequestEnablesThinking(request, thinking);
    opt.add_generation_prompt = RequestFlag(request, "add_generation_prompt", true);
    return RenderChat(RequestToChatMessages(request), opt);
  }
  std::vector<int32_t> ChatPromptIds(const nlohmann::ordered_json& request, bool thinking = false) const {
    if (template_) return template_->Tokenize(tok_, *controls_, WithThinking(request, thinking));
    ChatOptions opt = chat_;
    opt.enable_thinking = RequestEnablesThinking(request, thinking);
    opt.add_generation_prompt = RequestFlag(request, "add_generation_prompt", true);
    return TokenizeChat(tok_, RequestToChatMessages(request), opt);
  }

  // Reads every page of the decoder's weights once, reporting progress (bytes done, total): turns the first
  // token's page faults into one sequential read of the file, and tells how long loading a multi-GB model takes.
  // Matrices with row-group copies are left out: the copies were written at load, and their originals' pages were
  // given back (reading those again would hold the file twice).
  void Prefault(const std::function<void(uint64_t, uint64_t)>& progress = {}) const {
    std::vector<const TensorView*> views;
    auto add = [&](const TensorView& v) { if (v.data && v.row_groups == nullptr) views.push_back(&v); };
    add(model_.weights().embed);
    for (const LayerWeights& l : model_.weights().layers)
      for (const TensorView* v : {&l.q_proj, &l.k_proj, &l.v_proj, &l.o_proj, &l.gate_proj, &l.up_proj, &l.down_proj}) add(*v);
    uint64_t total = 0, done = 0;
    for (const TensorView* v : views) total += v->nbytes;
    volatile uint8_t sink = 0;
    for (const TensorView* v : views) {
      const auto* p = reinterpret_cast<const uint8_t*>(v->data);
      for (size_t off = 0; off < v->nbytes; off += 4096) sink = sink + p[off];
      done += v->nbytes;
      if (progress) progress(done, total);
    }
  }

  // An image as soft tokens, at `budget` soft tokens (70, 140, 280, 560 or 1120).
  Media EmbedImage(const RgbImage& image, int budget = kDefaultImageBudget) const {
    Require(ck_.vision().has_value(), "image", ck_.path() + " has no vision embedder" + (ck_.is_gguf() ? " (pass an mmproj file)" : ""));
    CheckImageBudget(budget);
    const VisionEmbedder embedder(*ck_.vision());
    const ImagePatches patches = PreprocessImage(image, budget, embedder.order());
    return std::make_shared<const MediaEmbedding>(MediaEmbedding{MediaEmbedding::Kind::kImage, embedder.Embed(patches, pool_), patches.size(), {}});
  }
  // 16 kHz mono samples as soft tokens: one clip, or 30 s pieces with LongAudio::kSplit.
  std::vector<Media> EmbedAudio(std::span<const float> samples_16k, LongAudio long_audio = LongAudio::kError) const {
    Require(ck_.audio().has_value(), "audio", ck_.path() + " has no audio embedder" + (ck_.is_gguf() ? " (pass an mmproj file)" : ""));
    const AudioEmbedder embedder(ck_.audio()->projection);
    std::vector<Media> out;
    for (const AudioFrames& clip : FrameAudio(samples_16k, long_audio))
      out.push_back(std::make_shared<const MediaEmbedding>(MediaEmbedding{MediaEmbedding::Kind::kAudio, embedder.Embed(clip, pool_), clip.size(), {}}));
    return out;
  }
  // Appends one frame to a video item being built (frames in order; a decoder's sink can call this, so that only
  // soft tokens are kept): the image preprocessing at `budget` with the video processor's pixel scaling
  // (PixelScale::kVideo), the vision embedder, and its timestamp text (docs/video.md).
  void AddVideoFrame(MediaEmbedding& video, const RgbImage& frame, double seconds, int budget = kDefaultVideoFrameBudget) const {
    Require(ck_.vision().has_value(), "video", ck_.path() + " has no vision embedder" + (ck_.is_gguf() ? " (pass an mmproj file)" : ""));
    CheckImageBudget(budget);
    const VisionEmbedder embedder(*ck_.vision());
    const ImagePatches patches = PreprocessImage(frame, budget, embedder.order(), PixelScale::kVideo);
    const std::vector<float> rows = embedder.Embed(patches, pool_);
    video.kind = MediaEmbedding::Kind::kVideo;
    video.rows.insert(video.rows.end(), rows.begin(), rows.end());
    video.n += patches.size();
    const std::string text = (video.frames.empty() ? "" : " ") + TimestampText(seconds) + " ";
    video.frames.push_back({patches.size(), tok_.Encode(text, {.add_bos = false, .parse_special = false})});
  }
  // Decoded frames (g4/media/video_ffmpeg.hpp) and their timestamps in seconds as one video item.
  Media EmbedVideo(std::span<const RgbImage> frames, std::span<const double> seconds, int budget = kDefaultVideoFrameBudget) const {
    Require(!frames.empty() && frames.size() == seconds.size(), "video", std::to_string(frames.size()) + " frames with " +
                                                                           std::to_string(seconds.size()) + " timestamps");
    MediaEmbedding video;
    for (size_t i = 0; i < frames.size(); ++i) AddVideoFrame(video, frames[i], seconds[i], budget);
    return std::make_shared<const MediaEmbedding>(std::move(video));
  }

 private:
  ThreadPool& pool_;
  Checkpoint ck_;
  Tokenizer tok_;
  Gemma4 model_;
  std::unique_ptr<Checkpoint> draft_ck_;
  std::unique_ptr<Drafter> drafter_;
  std::vector<int32_t> suppressed_, chat_stop_ids_;
  ChatOptions chat_;
  std::string chat_note_;
  std::unique_ptr<const ChatTemplate> template_;
  std::unique_ptr<const ControlTexts> controls_;
  std::vector<int32_t> tool_stop_ids_;
  mutable std::once_flag trie_once_;
  mutable std::shared_ptr<const TokenTrie> trie_;

  static std::string ReadText(const std::string& path) {
    const MappedFile f(path);
    return std::string(reinterpret_cast<const char*>(f.bytes().data()), f.size());
  }
  static bool RequestFlag(const nlohmann::ordered_json& request, const char* key, bool fallback) {
    Require(request.is_object(), "chat request", "must be a JSON object");
    const auto it = request.find(key);
    if (it == request.end() || it->is_null()) return fallback;
    Require(it->is_boolean(), "chat request", std::string(key) + " must be true or false");
    return it->get<bool>();
  }
  static nlohmann::ordered_json WithThinking(const nlohmann::ordered_json& request, bool thinking) {
    Require(request.is_object(), "chat request", "must be a JSON object");
    if (!thinking || RequestEnablesThinking(request, false) || request.contains("enable_thinking")) return request;
    if (const auto k = request.find("chat_template_kwargs"); k != request.end() && k->is_object() && k->contains("enable_thinking"))
      return request;
    tool_request_detail::RequireShallow(request);  // before nlohmann's recursive copy
    nlohmann::ordered_json out = request;
    out["enable_thinking"] = true;
    return out;
  }
};

}  // namespace g4
