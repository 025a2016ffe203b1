// Checkpoint: opens a model in any supported layout and yields ONE typed description: the config, and the
// weights by role as views into the mapped files (zero copy). Accepted paths:
//   - a folder with config.json and model.safetensors or model.safetensors.index.json (+ shards);
//   - a .safetensors file with a config.json beside it;
//   - a .gguf (llama.cpp layout, arch gemma4 or gemma4-assistant), optionally with an mmproj .gguf (arch clip)
//     for the vision and audio embedders.
// Every tensor's shape and type is checked against the config; all missing, unexpected or mis-shaped tensors are
// reported together in one g4::Error. Keep the Checkpoint alive while its views are used: it owns the mappings.
#pragma once
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "g4/core/error.hpp"
#include "g4/core/tensor.hpp"
#include "g4/io/gguf.hpp"
#include "g4/io/gguf_config.hpp"
#include "g4/io/gguf_tokenizer.hpp"
#include "g4/io/hf_config.hpp"
#include "g4/io/json.hpp"
#include "g4/io/safetensors.hpp"
#include "g4/io/tensor_names.hpp"
#include "g4/io/weight_binder.hpp"
#include "g4/model/config.hpp"
#include "g4/model/weights.hpp"

namespace g4 {

// One stored tensor, as listed by `g4 info --tensors`.
struct TensorRecord {
  std::string name;
  Type type;
  Shape shape;
  uint64_t bytes;
  std::string file;
};

class Checkpoint {
 public:
  explicit Checkpoint(const std::string& path, const std::string& mmproj_path = "") : path_(path) {
    namespace fs = std::filesystem;
    std::error_code ec;  // non-throwing checks: an unreadable path reads as absent, and the open names it
    Require(fs::exists(path, ec), path, "no such file or folder");
    if (!fs::is_directory(path, ec) && fs::path(path).extension() == ".gguf") {
      OpenGguf(mmproj_path);
    } else {
      Require(mmproj_path.empty(), mmproj_path, "an mmproj file goes with a .gguf model; safetensors hold the embedders themselves");
      OpenSafetensors();
    }
  }

  const std::string& path() const { return path_; }
  bool is_gguf() const { return gguf_ != nullptr; }
  const Gemma4Config& config() const { return config_; }
  const TextWeights& text() const { return text_; }
  const std::optional<VisionWeights>& vision() const { return vision_; }
  const std::optional<AudioWeights>& audio() const { return audio_; }
  const std::optional<AssistantWeights>& assistant() const { return assistant_; }
  // Every tensor of every file, in file order.
  const std::vector<TensorRecord>& tensors() const { return records_; }
  const GgufFile* gguf() const { return gguf_.get(); }
  const GgufFile* mmproj() const { return mmproj_.get(); }
  // The GGUF's tokenizer arrays, if the model is a GGUF that carries them.
  std::optional<GgufTokenizer> tokenizer() const {
    if (!gguf_ || !gguf_->Has("tokenizer.ggml.tokens")) return std::nullopt;
    return ReadGgufTokenizer(*gguf_);
  }

 private:
  void OpenSafetensors() {
    namespace fs = std::filesystem;
    std::error_code ec;
    const fs::path dir = fs::is_directory(path_, ec) ? fs::path(path_) : fs::path(path_).parent_path();
    const std::string config_path = (dir / "config.json").string();
    Require(fs::exists(config_path, ec), path_, "no config.json next to the safetensors");
    config_ = ReadHfConfig(ReadJsonFile(config_path), config_path);
    ReadGenerationConfig((dir / "generation_config.json").string());
    st_ = std::make_unique<Safetensors>(path_);
    for (const TensorView& t : st_->tensors()) records_.push_back({t.name, t.type, t.shape, t.nbytes, st_->FileOf(t.name)});

    WeightBinder b(path_);
    for (const auto& file : st_->files()) b.AddSource(file->tensors(), file->path());
    // Multimodal checkpoints nest the decoder under model.language_model.; text-only and assistant ones use model.
    const std::string prefix = b.Has("model.language_model.embed_tokens.weight") ? "model.language_model." : "model.";
    BindText(b, [&](int layer, const char* suffix) { return prefix + "layers." + std::to_string(layer) + "." + suffix; },
             prefix + kEmbedName.hf, prefix + kFinalNormName.hf);
    if (config_.vision) {
      VisionWeights v;
      for (const VisionTensorName& n : kVisionTensorNames)
        v.*n.member = b.Need(n.hf, VisionTensorShape(n.member, *config_.vision, false), n.kind);
      vision_ = v;
    }
    if (config_.audio) audio_ = AudioWeights{b.Need(kAudioProjectionName.hf, AudioShape(), TensorKind::kMatrix)};
    if (config_.assistant) BindAssistant(b, false);
    b.Finish();
  }

  void OpenGguf(const std::string& mmproj_path) {
    gguf_ = std::make_unique<GgufFile>(path_);
    config_ = ReadGgufConfig(*gguf_);
    if (!mmproj_path.empty()) {
      mmproj_ = std::make_unique<GgufFile>(mmproj_path);
      ReadGgufMmprojConfig(*mmproj_, config_);
    }
    WeightBinder b(path_);
    b.AddSource(gguf_->tensors(), gguf_->path());
    for (const TensorView& t : gguf_->tensors()) records_.push_back({t.name, t.type, t.shape, t.nbytes, gguf_->path()});
    if (mmproj_) {
      b.AddSource(mmproj_->tensors(), mmproj_->path());
      for (const TensorView& t : mmproj_->tensors()) records_.push_back({t.name, t.type, t.shape, t.nbytes, mmproj_->path()});
    }
    b.Consume(kRopeFreqsGguf);
    BindText(b, [](int layer, const char* suffix) { return "blk." + std::to_string(layer) + "." + suffix; },
             kEmbedName.gguf, kFinalNormName.gguf);
    if (config_.vision) {
      VisionWeights v;
      v.chw_patch_order = true;
      v.pos_table_planar = true;
      for (const VisionTensorName& n : kVisionTensorNames)
        v.*n.member = b.Need(n.gguf, VisionTensorShape(n.member, *config_.vision, true), n.kind);
      vision_ = v;
    }
    if (config_.audio) audio_ = AudioWeights{b.Need(kAudioProjectionName.gguf, AudioShape(), TensorKind::kMatrix)};
    if (config_.assistant) BindAssistant(b, true);
    b.Finish();
  }

  template <typename LayerName>
  void BindText(WeightBinder& b, LayerName layer_name, const std::string& embed, const std::string& final_norm) {
    const Gemma4Config& c = config_;
    text_.embed = b.Need(embed, Shape{c.vocab_size, c.hidden_size}, TensorKind::kMatrix);
    text_.final_norm = b.Need(final_norm, Shape{c.hidden_size}, TensorKind::kVector);
    text_.layers.resize(static_cast<size_t>(c.n_layers));
    for (int i = 0; i < c.n_layers; ++i) {
      const LayerConfig& l = c.layers[static_cast<size_t>(i)];
      for (const LayerTensorName& n : kLayerTensorNames) {
        if (!LayerTensorPresent(n, c, l)) continue;
        text_.layers[static_cast<size_t>(i)].*n.member = b.Need(layer_name(i, is_gguf() ? n.gguf : n.hf), n.shape(c, l), n.kind);
      }
    }
  }

  void BindAssistant(WeightBinder& b, bool gguf) {
    const Gemma4Config& c = config_;
    const AssistantConfig& a = *c.assistant;
    auto name = [&](const GlobalTensorName& n) { return std::string(gguf ? n.gguf : n.hf); };
    AssistantWeights w;
    w.pre_projection = b.Need(name(kPreProjectionName), Shape{c.hidden_size, 2 * int64_t{a.backbone_hidden}}, TensorKind::kMatrix);
    w.post_projection = b.Need(name(kPostProjectionName), Shape{a.backbone_hidden, c.hidden_size}, TensorKind::kMatrix);
    if (a.use_ordered_embeddings) {
      w.centroids = b.Need(name(kCentroidsName), Shape{a.num_centroids, c.hidden_size}, TensorKind::kMatrix);
      w.token_ordering = b.NeedIds(name(kTokenOrderingName), Shape{c.vocab_size});
    }
    assistant_ = w;
  }

  Shape AudioShape() const { return Shape{config_.audio->output_dim, config_.audio->frame_samples}; }

  // generation_config.json (optional) holds the real stop list and the suppressed tokens of IT checkpoints.
  void ReadGenerationConfig(const std::string& gen_path) {
    std::error_code ec;
    if (!std::filesystem::exists(gen_path, ec)) return;
    const nlohmann::json g = ReadJsonFile(gen_path);
    auto ids = [&](const char* key) {
      std::vector<int> out;
      const nlohmann::json& v = g[key];
      for (const auto& x : v.is_array() ? v : nlohmann::json::array({v})) {
        Require(x.is_number_integer(), gen_path + ": key '" + key + "'", "expected token ids, found " + x.dump());
        out.push_back(x.get<int>());
      }
      return out;
    };
    Require(g.is_object(), gen_path, "not a JSON object");
    if (g.contains("eos_token_id") && !g["eos_token_id"].is_null()) {
      config_.tokens.stop_ids = ids("eos_token_id");
      Require(!config_.tokens.stop_ids.empty(), gen_path + ": key 'eos_token_id'", "empty list");
    }
    if (g.contains("suppress_tokens") && !g["suppress_tokens"].is_null()) config_.tokens.suppress = ids("suppress_tokens");
  }

  std::string path_;
  std::unique_ptr<Safetensors> st_;
  std::unique_ptr<GgufFile> gguf_, mmproj_;
  Gemma4Config config_;
  TextWeights text_;
  std::optional<VisionWeights> vision_;
  std::optional<AudioWeights> audio_;
  std::optional<AssistantWeights> assistant_;
  std::vector<TensorRecord> records_;
};

}  // namespace g4
