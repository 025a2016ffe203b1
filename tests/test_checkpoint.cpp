// The Checkpoint: every reference case's safetensors and GGUF files load with the config their config.json states
// (read independently here) and the same weights; broken models and bad GGUF keys are errors naming what is wrong.
#include <doctest/doctest.h>

#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "g4/io/checkpoint.hpp"
#include "g4/io/gguf.hpp"
#include "g4/io/gguf_writer.hpp"
#include "support/errors.hpp"
#include "support/same_model.hpp"
#include "support/temp_files.hpp"
#include "support/test_data.hpp"

namespace g4_test_checkpoint {  // this suite's names, apart from the others' in a unity build (tests/meson.build)

using namespace g4;
using namespace g4::testing;
namespace fs = std::filesystem;

namespace {

void CheckConfigAgainstJson(const Gemma4Config& c, const nlohmann::json& root) {
  const nlohmann::json& j = root.contains("text_config") ? root["text_config"] : root;
  CHECK(c.vocab_size == j["vocab_size"].get<int>());
  CHECK(c.hidden_size == j["hidden_size"].get<int>());
  CHECK(c.n_layers == j["num_hidden_layers"].get<int>());
  CHECK(c.n_heads == j["num_attention_heads"].get<int>());
  CHECK(c.intermediate_size == j["intermediate_size"].get<int>());
  CHECK(c.sliding_window == j["sliding_window"].get<int>());
  CHECK(c.rms_eps == doctest::Approx(j["rms_norm_eps"].get<double>()));
  REQUIRE(c.layers.size() == j["layer_types"].size());
  for (size_t i = 0; i < c.layers.size(); ++i) {
    CAPTURE(i);
    const bool full = j["layer_types"][i] == "full_attention";
    const LayerConfig& l = c.layers[i];
    CHECK((l.kind == AttentionKind::kFull) == full);
    // per_layer_config keys are zero-padded to the width of the largest layer index.
    const std::string key = c.n_layers > 10 && i < 10 ? "0" + std::to_string(i) : std::to_string(i);
    const nlohmann::json over = j["per_layer_config"].contains(key) ? j["per_layer_config"][key] : nlohmann::json::object();
    CHECK(l.head_dim == over.value("head_dim", j["head_dim"].get<int>()));
    CHECK(l.n_kv_heads == over.value("num_key_value_heads", j["num_key_value_heads"].get<int>()));
    const nlohmann::json& rope = j["rope_parameters"][full ? "full_attention" : "sliding_attention"];
    CHECK(l.rope_theta == doctest::Approx(rope["rope_theta"].get<double>()));
    CHECK(l.rope_proportional == (rope["rope_type"] == "proportional"));
    CHECK(l.rope_partial == doctest::Approx(rope.value("partial_rotary_factor", 1.0)));
  }
}

// Shape of every stored tensor equals what the safetensors header says (read here with plain JSON).
void CheckRecordsAgainstHeader(const Checkpoint& ck, const std::string& file) {
  std::ifstream in(file, std::ios::binary);
  uint64_t n = 0;
  in.read(reinterpret_cast<char*>(&n), 8);
  std::string text(n, '\0');
  in.read(text.data(), static_cast<std::streamsize>(n));
  const nlohmann::json h = nlohmann::json::parse(text);
  for (const TensorRecord& r : ck.tensors()) {
    if (r.file != file) continue;
    CAPTURE(r.name);
    REQUIRE(h.contains(r.name));
    std::vector<int64_t> dims(r.shape.dims.begin(), r.shape.dims.begin() + r.shape.rank);
    CHECK(dims == h[r.name]["shape"].get<std::vector<int64_t>>());
    CHECK(TypeName(r.type) == (h[r.name]["dtype"] == "BOOL" ? "U8" : h[r.name]["dtype"].get<std::string>()));
  }
}

}  // namespace

TEST_CASE("checkpoint: golden text case from safetensors") {
  const std::string dir = DataDir() + "/golden/text";
  Checkpoint ck(dir);
  const nlohmann::json cfg = ReadJson(dir + "/config.json");
  CheckConfigAgainstJson(ck.config(), cfg);
  const Gemma4Config& c = ck.config();
  CHECK(c.architecture == "Gemma4UnifiedForCausalLM");
  CHECK(c.final_softcap == 30.0f);
  CHECK(!c.vision);
  CHECK(!c.assistant);
  CHECK(c.tokens.stop_ids == std::vector<int>{1});
  CHECK(!c.layers[2].k_eq_v);  // text: attention_k_eq_v false, full layers keep v_proj
  const TextWeights& w = ck.text();
  CHECK(w.embed.shape == Shape{512, 128});
  CHECK(w.embed.type == Type::BF16);
  REQUIRE(w.layers.size() == 6);
  CHECK(w.layers[2].q_proj.shape == Shape{4 * 64, 128});
  CHECK(w.layers[2].v_proj.shape == Shape{2 * 64, 128});
  CHECK(w.layers[0].layer_scalar.shape == Shape{1});
  CHECK(ck.tensors().size() == 2 + 6 * 14);
}

TEST_CASE("checkpoint: every golden and demo safetensors case loads with a config matching config.json") {
  for (const char* name : {"golden/text", "golden/text-kv", "golden/multimodal", "golden/mtp-target", "golden/mtp",
                           "golden/mtp-ordered", "demo", "demo/drafter"}) {
    CAPTURE(name);
    const std::string dir = DataDir() + "/" + name;
    const Checkpoint ck(dir);
    const nlohmann::json cfg = ReadJson(dir + "/config.json");
    CheckConfigAgainstJson(ck.config(), cfg);
    const Gemma4Config& c = ck.config();
    const bool drafter = cfg.contains("backbone_hidden_size");
    CHECK(c.assistant.has_value() == drafter);
    CHECK(c.vision.has_value() == cfg.contains("vision_config"));
    const nlohmann::json& t = cfg.contains("text_config") ? cfg["text_config"] : cfg;
    for (int i = 0; i < c.n_layers; ++i) {
      const LayerWeights& l = ck.text().layers[static_cast<size_t>(i)];
      const bool full = c.layers[static_cast<size_t>(i)].kind == AttentionKind::kFull;
      CHECK((l.v_proj.data != nullptr) == (!drafter && !(full && t["attention_k_eq_v"].get<bool>())));
      CHECK((l.k_proj.data != nullptr) == !drafter);
      CHECK(l.q_proj.shape == Shape{c.n_heads * c.layers[static_cast<size_t>(i)].head_dim, c.hidden_size});
    }
    if (drafter) {
      CHECK(c.assistant->backbone_hidden == cfg["backbone_hidden_size"].get<int>());
      CHECK(c.assistant->use_ordered_embeddings == cfg["use_ordered_embeddings"].get<bool>());
      CHECK(ck.assistant()->pre_projection.shape == Shape{c.hidden_size, 2 * cfg["backbone_hidden_size"].get<int64_t>()});
      CHECK((ck.assistant()->token_ordering.data != nullptr) == cfg["use_ordered_embeddings"].get<bool>());
    }
    if (fs::exists(dir + "/model.safetensors")) {
      CheckRecordsAgainstHeader(ck, dir + "/model.safetensors");
    } else {
      for (int s = 1; s <= 3; ++s) CheckRecordsAgainstHeader(ck, dir + "/model-0000" + std::to_string(s) + "-of-00003.safetensors");
      CHECK(ck.tensors().size() == ReadJson(dir + "/model.safetensors.index.json")["weight_map"].size());
    }
  }
}

TEST_CASE("checkpoint: multimodal special ids and embedder configs") {
  const std::string dir = DataDir() + "/golden/multimodal";
  const Checkpoint ck(dir);
  const nlohmann::json special = ReadJson(dir + "/case.json")["special_tokens"];
  const SpecialTokens& t = ck.config().tokens;
  CHECK(t.boi == special["boi"].get<int>());
  CHECK(t.eoi == special["eoi"].get<int>());
  CHECK(t.image == special["image"].get<int>());
  CHECK(t.boa == special["boa"].get<int>());
  CHECK(t.eoa == special["eoa"].get<int>());
  CHECK(t.audio == special["audio"].get<int>());
  CHECK(t.video == special["video"].get<int>());
  REQUIRE(ck.config().vision);
  CHECK(ck.config().vision->patch_px == 48);
  CHECK(ck.config().vision->patch_dim() == 6912);
  CHECK(ck.config().vision->output_dim == 128);
  CHECK(ck.vision()->pos_embedding.shape == Shape{64, 2, 64});
  REQUIRE(ck.config().audio);
  CHECK(ck.audio()->projection.shape == Shape{128, 640});
}

TEST_CASE("checkpoint: every GGUF case describes the same model as its safetensors, value for value") {
  struct Pair { const char* gguf; const char* mmproj; const char* hf; };
  for (const Pair& p : {Pair{"text-bf16.gguf", "", "text"}, Pair{"text-kv-bf16.gguf", "", "text-kv"}, Pair{"text-kv.gguf", "", "text-kv"},
                        Pair{"mtp-target-bf16.gguf", "", "mtp-target"}, Pair{"multimodal-bf16.gguf", "multimodal-mmproj-bf16.gguf", "multimodal"},
                        Pair{"mtp-bf16.gguf", "", "mtp"}, Pair{"mtp-ordered-with-centroids.gguf", "", "mtp-ordered"}}) {
    CAPTURE(p.gguf);
    const std::string gdir = DataDir() + "/golden-gguf/";
    const Checkpoint gg(gdir + p.gguf, *p.mmproj ? gdir + p.mmproj : "");
    const Checkpoint hf(DataDir() + "/golden/" + p.hf);
    CheckSameConfig(hf.config(), gg.config());
    CheckSameWeights(hf, gg);
    CHECK(gg.config().architecture == (hf.config().assistant ? "gemma4-assistant" : "gemma4"));
    const auto tok = gg.tokenizer();
    REQUIRE(tok.has_value());
    CHECK(tok->model == "gemma4");
    CHECK(tok->tokens.size() == static_cast<size_t>(hf.config().vocab_size));
    CHECK(tok->scores.size() == tok->tokens.size());
    CHECK(tok->merges == std::vector<std::string>{"\xE2\x96\x81 \xE2\x96\x81"});
    CHECK(tok->bos == 2);
    CHECK(tok->add_bos);
  }
}

TEST_CASE("checkpoint: llama.cpp's own ordered-drafter GGUF drops the centroid head") {
  const Checkpoint gg(DataDir() + "/golden-gguf/mtp-ordered-bf16.gguf");
  REQUIRE(gg.config().assistant);
  CHECK(!gg.config().assistant->use_ordered_embeddings);
  CHECK(gg.assistant()->centroids.data == nullptr);
}

TEST_CASE("checkpoint: missing, mis-shaped and unexpected tensors are reported together") {
  const std::string dir = TempDir("broken");
  const GgufFile src(DataDir() + "/golden-gguf/text-bf16.gguf");
  GgufWriter w;
  for (const auto& [k, v] : src.metadata()) w.Set(k, v);
  for (const TensorView& t : src.tensors()) {
    if (t.name == "blk.1.attn_q.weight") continue;  // missing
    if (t.name == "blk.2.ffn_up.weight") {           // mis-shaped: [256, 128] written as [128, 256]
      w.AddTensor(t.name, t.type, Shape{t.shape[1], t.shape[0]}, std::vector<std::byte>(t.data, t.data + t.nbytes));
      continue;
    }
    w.AddTensor(t);
  }
  w.AddTensor("blk.9.surprise.weight", Type::F32, Shape{4}, std::vector<std::byte>(16));
  const std::string path = dir + "/broken.gguf";
  w.Write(path);
  const std::string msg = [&] {
    try {
      Checkpoint ck(path);
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  }();
  CHECK(msg.find(path) != std::string::npos);
  CHECK(msg.find("3 problem(s)") != std::string::npos);
  CHECK(msg.find("missing tensor 'blk.1.attn_q.weight' [128, 128]") != std::string::npos);
  CHECK(msg.find("tensor 'blk.2.ffn_up.weight' in " + path + " is BF16 [128, 256], expected a weight type [256, 128]") != std::string::npos);
  CHECK(msg.find("unexpected tensor 'blk.9.surprise.weight'") != std::string::npos);

  // A config that disagrees with the weights: every affected tensor is named.
  const std::string hf = dir + "/hf";
  fs::create_directories(hf);
  fs::copy_file(DataDir() + "/golden/text/model.safetensors", hf + "/model.safetensors");
  nlohmann::json cfg = ReadJson(DataDir() + "/golden/text/config.json");
  cfg["intermediate_size"] = 512;
  WriteBytes(hf + "/config.json", Bytes(cfg.dump()));
  CHECK_THROWS_WITH_AS(Checkpoint{hf}, doctest::Contains("18 problem(s)"), Error);
  CHECK_THROWS_WITH_AS(Checkpoint{hf}, doctest::Contains("model.layers.5.mlp.down_proj.weight"), Error);
  cfg["intermediate_size"] = "wide";
  WriteBytes(hf + "/config.json", Bytes(cfg.dump()));
  CHECK_THROWS_WITH_AS(Checkpoint{hf}, doctest::Contains("config.json: key 'intermediate_size': expected a 32-bit integer"), Error);
  fs::remove(hf + "/config.json");
  CHECK_THROWS_WITH_AS(Checkpoint{hf}, doctest::Contains("no config.json"), Error);
}

TEST_CASE("checkpoint: hub-style global_head_dim / num_global_key_value_heads equal per_layer_config") {
  const std::string dir = TempDir("hubstyle");
  nlohmann::json cfg = ReadJson(DataDir() + "/golden/text-kv/config.json");
  cfg.erase("per_layer_config");
  cfg["global_head_dim"] = 64;
  cfg["num_global_key_value_heads"] = 1;
  WriteBytes(dir + "/config.json", Bytes(cfg.dump()));
  fs::copy_file(DataDir() + "/golden/text-kv/model.safetensors", dir + "/model.safetensors");
  const Checkpoint hub(dir), tf(DataDir() + "/golden/text-kv");
  CheckSameConfig(hub.config(), tf.config());
  CHECK(hub.config().layers[2].head_dim == 64);
  CHECK(hub.config().layers[2].n_kv_heads == 1);
}

TEST_CASE("gguf config: bad or missing gemma4 keys are errors naming the key") {
  const std::string dir = TempDir("gguf-config");
  const GgufFile src(DataDir() + "/golden-gguf/text-kv-bf16.gguf");
  // Copies the source with one change applied to the writer.
  auto variant = [&](const char* name, auto&& change) {
    GgufWriter w;
    for (const auto& [k, v] : src.metadata()) w.Set(k, v);
    for (const TensorView& t : src.tensors()) {
      if (t.name == "rope_freqs.weight") continue;  // re-added below, possibly changed
      w.AddTensor(t);
    }
    std::vector<float> freqs = {1, 1, 1, 1, 1, 1, 1, 1};
    freqs.resize(32, 1e30f);
    change(w, freqs);
    std::vector<std::byte> fb(freqs.size() * 4);
    std::memcpy(fb.data(), freqs.data(), fb.size());
    w.AddTensor("rope_freqs.weight", Type::F32, Shape{static_cast<int64_t>(freqs.size())}, fb);
    const std::string path = dir + "/" + name + ".gguf";
    w.Write(path);
    return path;
  };
  const std::string same = variant("same", [](GgufWriter&, std::vector<float>&) {});
  CheckSameConfig(Checkpoint(same).config(), Checkpoint(DataDir() + "/golden/text-kv").config());

  struct Bad { const char* name; std::string problem; std::function<void(GgufWriter&, std::vector<float>&)> change; };
  const std::vector<Bad> bad = {
      {"no_arch", "key 'general.architecture': missing", [](GgufWriter& w, auto&) { w.Erase("general.architecture"); }},
      {"no_blocks", "key 'gemma4.block_count': missing", [](GgufWriter& w, auto&) { w.Erase("gemma4.block_count"); }},
      {"wrong_arch", "architecture 'llama' is not gemma4", [](GgufWriter& w, auto&) { w.Set("general.architecture", GgufValue::String("llama")); }},
      {"kv_len", "key 'gemma4.attention.head_count_kv': 5 entries for 6 layers",
       [](GgufWriter& w, auto&) { w.Set("gemma4.attention.head_count_kv", GgufValue::Array(GgufType::I32, std::vector<int32_t>{2, 2, 1, 2, 2})); }},
      {"kv_zero", "implausible KV head count 0",
       [](GgufWriter& w, auto&) { w.Set("gemma4.attention.head_count_kv", GgufValue::Array(GgufType::I32, std::vector<int32_t>{2, 2, 0, 2, 2, 1})); }},
      {"pattern_type", "key 'gemma4.attention.sliding_window_pattern': expected an array, found string",
       [](GgufWriter& w, auto&) { w.Set("gemma4.attention.sliding_window_pattern", GgufValue::String("SSFSSF")); }},
      {"eps_type", "key 'gemma4.attention.layer_norm_rms_epsilon': expected a float, found u32",
       [](GgufWriter& w, auto&) { w.Set("gemma4.attention.layer_norm_rms_epsilon", GgufValue::U32(1)); }},
      {"blocks_negative", "key 'gemma4.block_count': value -6 outside",
       [](GgufWriter& w, auto&) { w.Set("gemma4.block_count", GgufValue::I32(-6)); }},
      {"head_dim_zero", "key_length(_swa) must lie in [1, 4096]",
       [](GgufWriter& w, auto&) { w.Set("gemma4.attention.key_length", GgufValue::U32(0)); }},
      {"rope_factor", "is neither 1 nor huge", [](GgufWriter&, std::vector<float>& f) { f[20] = 0.5f; }},
      {"rope_len", "tensor 'rope_freqs.weight': expected F32 [32]", [](GgufWriter&, std::vector<float>& f) { f.resize(16); }},
  };
  for (const Bad& b : bad) {
    CAPTURE(b.name);
    const std::string path = variant(b.name, b.change);
    ExpectError([&] { Checkpoint ck(path); }, path, b.problem);
  }
}

}  // namespace g4_test_checkpoint
