// io: safetensors and GGUF readers, the GGUF writer, config parsing and the Checkpoint, against the reference
// checkpoints in tests/data (their config.json read independently here) and against hostile files written by
// the tests themselves.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "g4/core/dequantize.hpp"
#include "g4/io/checkpoint.hpp"
#include "g4/io/gguf.hpp"
#include "g4/io/safetensors.hpp"

using namespace g4;
namespace fs = std::filesystem;

namespace {

std::string DataDir() {
  const char* d = std::getenv("G4_TEST_DATA");
  REQUIRE_MESSAGE(d != nullptr, "G4_TEST_DATA is not set");
  return d;
}

nlohmann::json ReadJson(const std::string& path) {
  std::ifstream in(path);
  REQUIRE_MESSAGE(in.good(), path);
  return nlohmann::json::parse(in);
}

// The whole tensor as f32, whatever its type.
std::vector<float> ToF32(const TensorView& t) {
  std::vector<float> out(static_cast<size_t>(t.shape.elements()));
  if (t.type == Type::I64) {
    for (size_t i = 0; i < out.size(); ++i) {
      int64_t v;
      std::memcpy(&v, t.data + i * 8, 8);
      out[i] = static_cast<float>(v);
    }
  } else if (t.type == Type::I32) {
    for (size_t i = 0; i < out.size(); ++i) {
      int32_t v;
      std::memcpy(&v, t.data + i * 4, 4);
      out[i] = static_cast<float>(v);
    }
  } else {
    DequantizeRow(t.type, t.data, out.size(), out.data());
  }
  return out;
}

// The checks below restate the config in terms of config.json's own keys, read here with plain nlohmann.
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
