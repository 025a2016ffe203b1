// io: safetensors and GGUF readers, the GGUF writer, config parsing and the Checkpoint, against the reference
// checkpoints in tests/data (their config.json read independently here) and against hostile files written by
// the tests themselves.
#include <doctest/doctest.h>

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "g4/core/dequantize.hpp"
#include "g4/core/quantize.hpp"
#include "g4/io/checkpoint.hpp"
#include "g4/io/gguf_export.hpp"
#include "g4/io/gguf.hpp"
#include "g4/io/gguf_writer.hpp"
#include "g4/text/gguf_vocab.hpp"
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

namespace {

// Two configs describe the same model: every field but the architecture name (HF class vs GGUF arch). A GGUF
// states media token ids only through its tokenizer's pieces, so one written without a tokenizer cannot.
void CheckSameConfig(const Gemma4Config& a, const Gemma4Config& b, bool media_ids = true) {
  CHECK(a.vocab_size == b.vocab_size);
  CHECK(a.hidden_size == b.hidden_size);
  CHECK(a.n_layers == b.n_layers);
  CHECK(a.n_heads == b.n_heads);
  CHECK(a.intermediate_size == b.intermediate_size);
  CHECK(a.sliding_window == b.sliding_window);
  CHECK(a.max_position == b.max_position);
  CHECK(a.rms_eps == b.rms_eps);
  CHECK(a.final_softcap == b.final_softcap);
  CHECK(a.num_kv_shared_layers == b.num_kv_shared_layers);
  REQUIRE(a.layers.size() == b.layers.size());
  for (size_t i = 0; i < a.layers.size(); ++i) {
    CAPTURE(i);
    const LayerConfig &x = a.layers[i], &y = b.layers[i];
    CHECK(x.kind == y.kind);
    CHECK(x.head_dim == y.head_dim);
    CHECK(x.n_kv_heads == y.n_kv_heads);
    CHECK(x.rope_theta == y.rope_theta);
    CHECK(x.rope_partial == y.rope_partial);
    CHECK(x.rope_proportional == y.rope_proportional);
    CHECK(x.k_eq_v == y.k_eq_v);
    CHECK(x.RopeInvFreq() == y.RopeInvFreq());
  }
  CHECK(a.tokens.pad == b.tokens.pad);
  CHECK(a.tokens.bos == b.tokens.bos);
  CHECK(a.tokens.eos == b.tokens.eos);
  CHECK(a.tokens.stop_ids == b.tokens.stop_ids);
  if (media_ids) {
    CHECK(a.tokens.boi == b.tokens.boi);
    CHECK(a.tokens.eoi == b.tokens.eoi);
    CHECK(a.tokens.image == b.tokens.image);
    CHECK(a.tokens.boa == b.tokens.boa);
    CHECK(a.tokens.eoa == b.tokens.eoa);
    CHECK(a.tokens.audio == b.tokens.audio);
    CHECK(a.tokens.video == b.tokens.video);
  }
  CHECK(a.tokens.suppress == b.tokens.suppress);
  REQUIRE(a.vision.has_value() == b.vision.has_value());
  if (a.vision) {
    CHECK(a.vision->patch_px == b.vision->patch_px);
    CHECK(a.vision->mm_embed_dim == b.vision->mm_embed_dim);
    CHECK(a.vision->posemb_size == b.vision->posemb_size);
    CHECK(a.vision->output_dim == b.vision->output_dim);
  }
  REQUIRE(a.audio.has_value() == b.audio.has_value());
  if (a.audio) {
    CHECK(a.audio->frame_samples == b.audio->frame_samples);
    CHECK(a.audio->output_dim == b.audio->output_dim);
  }
  REQUIRE(a.assistant.has_value() == b.assistant.has_value());
  if (a.assistant) {
    CHECK(a.assistant->backbone_hidden == b.assistant->backbone_hidden);
    CHECK(a.assistant->use_ordered_embeddings == b.assistant->use_ordered_embeddings);
    CHECK(a.assistant->num_centroids == b.assistant->num_centroids);
  }
}

void CheckSameValues(const TensorView& a, const TensorView& b) {
  CAPTURE(a.name);
  CAPTURE(b.name);
  REQUIRE((a.data == nullptr) == (b.data == nullptr));
  if (!a.data) return;
  REQUIRE(a.shape == b.shape);
  CHECK(ToF32(a) == ToF32(b));
}

// Every weight by role of two checkpoints of one model holds the same values. The GGUF mmproj's CHW patch
// order and planar position table are undone here from the README's definition, independently of the loader.
void CheckSameWeights(const Checkpoint& hf, const Checkpoint& gg) {
  CheckSameValues(hf.text().embed, gg.text().embed);
  CheckSameValues(hf.text().final_norm, gg.text().final_norm);
  REQUIRE(hf.text().layers.size() == gg.text().layers.size());
  for (size_t i = 0; i < hf.text().layers.size(); ++i)
    for (const LayerTensorName& n : kLayerTensorNames) CheckSameValues(hf.text().layers[i].*n.member, gg.text().layers[i].*n.member);
  REQUIRE(hf.vision().has_value() == gg.vision().has_value());
  if (hf.vision()) {
    const VisionWeights &h = *hf.vision(), &g = *gg.vision();
    CHECK(!h.chw_patch_order);
    CHECK(g.chw_patch_order);
    CHECK(!h.pos_table_planar);
    CHECK(g.pos_table_planar);
    for (auto m : {&VisionWeights::patch_dense_b, &VisionWeights::patch_ln2_w, &VisionWeights::patch_ln2_b,
                   &VisionWeights::pos_norm_w, &VisionWeights::pos_norm_b, &VisionWeights::projection})
      CheckSameValues(h.*m, g.*m);
    const int p = hf.config().vision->patch_px;
    const size_t patch = static_cast<size_t>(p) * p * 3;
    // HWC index row*3p + col*3 + c  <->  CHW index c*p*p + row*p + col
    auto hwc_to_chw = [&](size_t hwc) { return (hwc % 3) * p * p + (hwc / (3 * p)) * p + (hwc / 3) % p; };
    for (auto m : {&VisionWeights::patch_ln1_w, &VisionWeights::patch_ln1_b, &VisionWeights::patch_dense_w}) {
      const std::vector<float> hv = ToF32(h.*m), gv = ToF32(g.*m);
      REQUIRE(hv.size() == gv.size());
      size_t mismatches = 0;
      for (size_t i = 0; i < hv.size(); ++i) mismatches += hv[i] != gv[i / patch * patch + hwc_to_chw(i % patch)];
      CHECK_MESSAGE(mismatches == 0, (h.*m).name);
    }
    const std::vector<float> hp = ToF32(h.pos_embedding), gp = ToF32(g.pos_embedding);
    const int64_t n_pos = h.pos_embedding.shape[0], dim = h.pos_embedding.shape[2];
    CHECK(g.pos_embedding.shape == Shape{2, n_pos, dim});
    size_t mismatches = 0;
    for (int64_t pos = 0; pos < n_pos; ++pos)
      for (int64_t plane = 0; plane < 2; ++plane)
        for (int64_t d = 0; d < dim; ++d) mismatches += hp[(pos * 2 + plane) * dim + d] != gp[(plane * n_pos + pos) * dim + d];
    CHECK(mismatches == 0);
  }
  REQUIRE(hf.audio().has_value() == gg.audio().has_value());
  if (hf.audio()) CheckSameValues(hf.audio()->projection, gg.audio()->projection);
  REQUIRE(hf.assistant().has_value() == gg.assistant().has_value());
  if (hf.assistant()) {
    CheckSameValues(hf.assistant()->pre_projection, gg.assistant()->pre_projection);
    CheckSameValues(hf.assistant()->post_projection, gg.assistant()->post_projection);
    CheckSameValues(hf.assistant()->centroids, gg.assistant()->centroids);
    CheckSameValues(hf.assistant()->token_ordering, gg.assistant()->token_ordering);
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

// ---- hostile files ---------------------------------------------------------------------------------------

namespace {

// This process's scratch folder, removed when the suite exits (the exported models are tens of MB).
struct TempRoot {
  fs::path path = fs::temp_directory_path() / ("g4_test_io_" + std::to_string(::getpid()));
  ~TempRoot() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
};
const TempRoot kTempRoot;

// A fresh folder for the files one test writes.
std::string TempDir(const std::string& name) {
  const fs::path d = kTempRoot.path / name;
  fs::remove_all(d);
  fs::create_directories(d);
  return d.string();
}

void WriteBytes(const std::string& path, const std::vector<std::byte>& bytes) { GgufWriter::WriteFileBytes(path, bytes); }

std::vector<std::byte> Bytes(const std::string& s) {
  std::vector<std::byte> b(s.size());
  std::memcpy(b.data(), s.data(), s.size());
  return b;
}

// A safetensors file from a header text and `data_bytes` bytes of data.
std::vector<std::byte> SafetensorsBytes(const std::string& header, size_t data_bytes, uint64_t header_len_field = UINT64_MAX) {
  std::vector<std::byte> out(8);
  const uint64_t n = header_len_field == UINT64_MAX ? header.size() : header_len_field;
  std::memcpy(out.data(), &n, 8);
  const auto h = Bytes(header);
  out.insert(out.end(), h.begin(), h.end());
  out.resize(out.size() + data_bytes, std::byte{0x3f});
  return out;
}

// `open` must throw a g4::Error naming both `path` and `problem`.
template <typename F> void ExpectError(F&& open, const std::string& path, const std::string& problem) {
  CAPTURE(problem);
  CHECK_THROWS_WITH_AS(open(), doctest::Contains(problem.c_str()), Error);
  CHECK_THROWS_WITH_AS(open(), doctest::Contains(path.c_str()), Error);
}

}  // namespace

TEST_CASE("safetensors: hostile headers are errors naming the file and the problem") {
  const std::string dir = TempDir("safetensors");
  struct Case { const char* name; std::vector<std::byte> bytes; const char* problem; };
  const std::vector<Case> cases = {
      {"truncated", Bytes("\x05\x00\x00"), "truncated"},
      {"len_past_eof", SafetensorsBytes("{}", 0, 1000), "beyond the end of the file"},
      {"len_huge", SafetensorsBytes("{}", 0, uint64_t{1} << 62), "exceeds 100 MB"},
      {"bad_json", SafetensorsBytes("{\"a\": ", 0), "invalid JSON"},
      {"not_object", SafetensorsBytes("[1, 2]", 0), "not a JSON object"},
      {"past_eof", SafetensorsBytes(R"({"a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}})", 8), "past the end"},
      {"wrong_span", SafetensorsBytes(R"({"a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 12]}})", 16), "needs 16"},
      {"reversed", SafetensorsBytes(R"({"a": {"dtype": "F32", "shape": [0], "data_offsets": [8, 0]}})", 16), "reversed"},
      {"overlap", SafetensorsBytes(R"({"a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]},
                                  "b": {"dtype": "F32", "shape": [4], "data_offsets": [8, 24]}})", 24), "overlap"},
      {"overflow", SafetensorsBytes(R"({"a": {"dtype": "F32", "shape": [4294967296, 4294967296, 4], "data_offsets": [0, 16]}})", 16),
       "size overflow"},
      {"bytes_overflow", SafetensorsBytes(R"({"a": {"dtype": "I64", "shape": [4611686018427387904], "data_offsets": [0, 16]}})", 16),
       "size overflow"},
      {"negative_dim", SafetensorsBytes(R"({"a": {"dtype": "F32", "shape": [-4], "data_offsets": [0, 16]}})", 16), "not a non-negative integer"},
      {"rank5", SafetensorsBytes(R"({"a": {"dtype": "F32", "shape": [1,1,1,1,4], "data_offsets": [0, 16]}})", 16), "above 4"},
      {"dtype", SafetensorsBytes(R"({"weird": {"dtype": "F8_E4M3", "shape": [4], "data_offsets": [0, 4]}})", 16), "unknown dtype 'F8_E4M3'"},
      {"dtype_names_tensor", SafetensorsBytes(R"({"weird": {"dtype": "F8_E4M3", "shape": [4], "data_offsets": [0, 4]}})", 16), "'weird'"},
      {"duplicate", SafetensorsBytes(R"({"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]},
                                    "a": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}})", 8), "duplicate key 'a'"},
      {"no_offsets", SafetensorsBytes(R"({"a": {"dtype": "F32", "shape": [1]}})", 8), "data_offsets"},
  };
  for (const Case& c : cases) {
    CAPTURE(c.name);
    const std::string path = dir + "/" + c.name + ".safetensors";
    WriteBytes(path, c.bytes);
    ExpectError([&] { SafetensorsFile f(path); }, path, c.problem);
  }
  // A well-formed file for contrast: values read back in place, misaligned F32 data copied to aligned storage.
  const std::string ok = dir + "/ok.safetensors";
  std::vector<std::byte> bytes = SafetensorsBytes(R"({"b": {"dtype": "U8", "shape": [1], "data_offsets": [0, 1]},)"
                                             R"( "a": {"dtype": "F32", "shape": [2], "data_offsets": [1, 9]}} )", 9);
  const float two[2] = {1.5f, -2.0f};
  std::memcpy(bytes.data() + bytes.size() - 8, two, 8);
  WriteBytes(ok, bytes);
  SafetensorsFile f(ok);
  const TensorView* a = f.Find("a");
  REQUIRE(a != nullptr);
  CHECK(reinterpret_cast<uintptr_t>(a->data) % 4 == 0);
  CHECK(a->as<float>()[0] == 1.5f);
  CHECK(a->as<float>()[1] == -2.0f);
  CHECK(f.Find("b")->type == Type::U8);
}

TEST_CASE("safetensors: a shard index that disagrees with the shards is an error") {
  const std::string dir = TempDir("sharded");
  WriteBytes(dir + "/s1.safetensors", SafetensorsBytes(R"({"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}})", 4));
  WriteBytes(dir + "/s2.safetensors", SafetensorsBytes(R"({"b": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}})", 4));
  const std::string index = dir + "/model.safetensors.index.json";
  auto write_index = [&](const std::string& text) { WriteBytes(index, Bytes(text)); };
  write_index(R"({"weight_map": {"a": "s1.safetensors", "b": "s2.safetensors"}})");
  {
    const Safetensors st(dir);
    CHECK(st.tensors().size() == 2);
    CHECK(st.FileOf("b") == dir + "/s2.safetensors");
  }
  write_index(R"({"weight_map": {"a": "s2.safetensors", "b": "s1.safetensors"}})");
  ExpectError([&] { Safetensors st(dir); }, index, "mapped to s2.safetensors but stored in");
  write_index(R"({"weight_map": {"a": "s1.safetensors", "b": "s2.safetensors", "c": "s2.safetensors"}})");
  ExpectError([&] { Safetensors st(dir); }, index, "'c' is mapped to s2.safetensors but not stored there");
  write_index(R"({"weight_map": {"a": "../s1.safetensors"}})");
  ExpectError([&] { Safetensors st(dir); }, index, "not a file in the folder");
  write_index(R"({"weight_map": {"a": "s1.safetensors", "b": "s3.safetensors"}})");
  ExpectError([&] { Safetensors st(dir); }, "s3.safetensors", "cannot open");
}

namespace {

// A small valid GGUF: a few keys and two tensors.
GgufWriter SmallGguf() {
  GgufWriter w;
  w.Set("general.architecture", GgufValue::String("test"));
  w.Set("test.count", GgufValue::U32(7));
  std::vector<std::byte> a(4 * 8), b(2 * 3 * 2);
  for (size_t i = 0; i < a.size(); ++i) a[i] = std::byte(i);
  w.AddTensor("tensor_a", Type::F32, Shape{8}, a);
  w.AddTensor("tensor_b", Type::BF16, Shape{2, 3}, b);
  return w;
}

size_t FindBytes(const std::vector<std::byte>& hay, const std::string& needle) {
  const auto n = Bytes(needle);
  const auto it = std::search(hay.begin(), hay.end(), n.begin(), n.end());
  REQUIRE(it != hay.end());
  return static_cast<size_t>(it - hay.begin());
}

template <typename T> void Poke(std::vector<std::byte>& b, size_t at, T v) { std::memcpy(b.data() + at, &v, sizeof(T)); }

// Byte position of a tensor info's field, found from the tensor's name: name, n_dims, ne..., type, offset.
size_t TensorInfoField(const std::vector<std::byte>& b, const std::string& name, const char* field) {
  const size_t at = FindBytes(b, name) + name.size();
  uint32_t n_dims;
  std::memcpy(&n_dims, b.data() + at, 4);
  if (std::string(field) == "n_dims") return at;
  if (std::string(field) == "ne") return at + 4;
  if (std::string(field) == "type") return at + 4 + 8 * n_dims;
  return at + 4 + 8 * n_dims + 4;  // offset
}

}  // namespace

TEST_CASE("gguf: hostile files are errors naming the file and the problem, never a crash or bad_alloc") {
  const std::string dir = TempDir("gguf");
  const std::vector<std::byte> good = SmallGguf().Serialize();
  const size_t key_len_at = FindBytes(good, "test.count") - 8;                     // u64 length of the key string
  struct Case { const char* name; std::vector<std::byte> bytes; std::string problem; };
  std::vector<Case> cases;
  auto mutate = [&](const char* name, std::string problem, auto&& f) {
    std::vector<std::byte> b = good;
    f(b);
    cases.push_back({name, std::move(b), std::move(problem)});
  };
  mutate("magic", "bad magic", [](auto& b) { b[0] = std::byte{'X'}; });
  mutate("version1", "unsupported GGUF version 1", [](auto& b) { Poke<uint32_t>(b, 4, 1); });
  mutate("version4", "unsupported GGUF version 4", [](auto& b) { Poke<uint32_t>(b, 4, 4); });
  mutate("truncated_header", "remain in the file", [](auto& b) { b.resize(20); });
  mutate("truncated_infos", "remain in the file", [&](auto& b) { b.resize(FindBytes(good, "tensor_b") + 3); });
  mutate("huge_string", "needs 4611686018427387904 bytes", [&](auto& b) { Poke<uint64_t>(b, key_len_at, uint64_t{1} << 62); });
  mutate("kv_count", "metadata entries", [](auto& b) { Poke<uint64_t>(b, 16, uint64_t{1} << 60); });
  mutate("tensor_count", "tensor infos", [](auto& b) { Poke<uint64_t>(b, 8, uint64_t{1} << 55); });
  mutate("value_type", "unknown value type 99", [&](auto& b) { Poke<uint32_t>(b, FindBytes(good, "test.count") + 10, 99); });
  mutate("ggml_type", "unknown ggml type id 3", [&](auto& b) { Poke<uint32_t>(b, TensorInfoField(good, "tensor_a", "type"), 3); });
  mutate("ggml_type_names_tensor", "tensor 'tensor_a'", [&](auto& b) { Poke<uint32_t>(b, TensorInfoField(good, "tensor_a", "type"), 99); });
  mutate("misaligned", "not a multiple of the alignment 32", [&](auto& b) { Poke<uint64_t>(b, TensorInfoField(good, "tensor_b", "offset"), 4); });
  mutate("past_eof", "past the end", [&](auto& b) { Poke<uint64_t>(b, TensorInfoField(good, "tensor_b", "offset"), 1 << 20); });
  mutate("overlap", "overlap", [&](auto& b) { Poke<uint64_t>(b, TensorInfoField(good, "tensor_b", "offset"), 0); });
  mutate("rank5", "5 dimensions", [&](auto& b) { Poke<uint32_t>(b, TensorInfoField(good, "tensor_a", "n_dims"), 5); });
  mutate("dim_overflow", "size overflow", [&](auto& b) {
    const size_t ne = TensorInfoField(good, "tensor_b", "ne");
    Poke<uint64_t>(b, ne, uint64_t{1} << 40);
    Poke<uint64_t>(b, ne + 8, uint64_t{1} << 40);
  });
  mutate("duplicate_tensor", "duplicate tensor name", [&](auto& b) { b[FindBytes(good, "tensor_b") + 7] = std::byte{'a'}; });
  for (const Case& c : cases) {
    CAPTURE(c.name);
    const std::string path = dir + "/" + c.name + ".gguf";
    WriteBytes(path, c.bytes);
    ExpectError([&] { GgufFile f(path); }, path, c.problem);
  }

  // Values the writer encodes faithfully even when they lie: arrays claiming 2^40 elements, nesting too deep,
  // a duplicate key, a non-power-of-two alignment.
  auto expect_writer = [&](const char* name, const std::string& problem, auto&& build) {
    CAPTURE(name);
    GgufWriter w;
    build(w);
    const std::string path = dir + "/" + name + ".gguf";
    WriteBytes(path, w.Serialize());
    ExpectError([&] { GgufFile f(path); }, path, problem);
  };
  expect_writer("array_2_40", "1099511627776 elements", [](GgufWriter& w) {
    GgufValue v = GgufValue::Array<uint8_t>(GgufType::U8, {});
    v.count = uint64_t{1} << 40;  // no element bytes follow
    w.Set("big", v);
  });
  expect_writer("string_array_2_40", "1099511627776 elements", [](GgufWriter& w) {
    GgufValue v = GgufValue::StringArray({});
    v.count = uint64_t{1} << 40;
    w.Set("big", v);
  });
  expect_writer("nested_too_deep", "nested deeper than 8", [](GgufWriter& w) {
    GgufValue v = GgufValue::Array<int32_t>(GgufType::I32, {1});
    for (int i = 0; i < 10; ++i) v = GgufValue::ArrayOfArrays({v});
    w.Set("deep", v);
  });
  {
    // Duplicate keys: the writer replaces on Set, so splice a second copy of an entry into the bytes.
    GgufWriter w;
    w.Set("dup.key", GgufValue::U32(1));
    std::vector<std::byte> b = w.Serialize();
    const size_t entry = 24, entry_len = 8 + 7 + 4 + 4;
    b.insert(b.begin() + static_cast<std::ptrdiff_t>(entry + entry_len), b.begin() + entry, b.begin() + static_cast<std::ptrdiff_t>(entry + entry_len));
    Poke<uint64_t>(b, 16, 2);
    const std::string path = dir + "/duplicate_key.gguf";
    WriteBytes(path, b);
    ExpectError([&] { GgufFile f(path); }, path, "duplicate metadata key 'dup.key'");
  }
  {
    GgufWriter w;
    w.Set("general.alignment", GgufValue::U32(32));
    std::vector<std::byte> b = w.Serialize();
    Poke<uint32_t>(b, FindBytes(b, "general.alignment") + 17 + 4, 48);
    const std::string path = dir + "/alignment.gguf";
    WriteBytes(path, b);
    ExpectError([&] { GgufFile f(path); }, path, "48 is not a power of two");
  }
  // Typed accessors name the key.
  const std::string okp = dir + "/ok.gguf";
  WriteBytes(okp, good);
  const GgufFile f(okp);
  CHECK(f.GetU32("test.count") == 7);
  ExpectError([&] { f.GetString("test.count"); }, okp, "key 'test.count': expected a string, found u32");
  ExpectError([&] { f.GetU32("no.such.key"); }, okp, "key 'no.such.key': missing");
  ExpectError([&] { f.GetInt("test.count", 0, 5); }, okp, "outside [0, 5]");
}

// ---- writer round trip, export, whole-checkpoint error reports ------------------------------------------------

TEST_CASE("gguf writer: every metadata type and a few tensors read back unchanged") {
  const std::string dir = TempDir("roundtrip");
  GgufWriter w;
  w.Set("general.alignment", GgufValue::U32(64));
  w.Set("k.u8", GgufValue::U8(250));
  w.Set("k.i8", GgufValue::I8(-120));
  w.Set("k.u16", GgufValue::U16(65000));
  w.Set("k.i16", GgufValue::I16(-32000));
  w.Set("k.u32", GgufValue::U32(4000000000u));
  w.Set("k.i32", GgufValue::I32(-2000000000));
  w.Set("k.f32", GgufValue::F32(0.15625f));
  w.Set("k.bool", GgufValue::Bool(true));
  w.Set("k.string", GgufValue::String("h\xC3\xA9llo\n"));
  w.Set("k.u64", GgufValue::U64(uint64_t{1} << 60));
  w.Set("k.i64", GgufValue::I64(-(int64_t{1} << 60)));
  w.Set("k.f64", GgufValue::F64(1e300));
  w.Set("k.arr.i32", GgufValue::Array(GgufType::I32, std::vector<int32_t>{3, -1, 7}));
  w.Set("k.arr.f32", GgufValue::Array(GgufType::F32, std::vector<float>{0.5f, -2.0f}));
  w.Set("k.arr.bool", GgufValue::Array(GgufType::BOOL, std::vector<uint8_t>{1, 0, 1}));
  w.Set("k.arr.str", GgufValue::StringArray({"a", "", "\xE2\x96\x81 \xE2\x96\x81"}));
  w.Set("k.arr.empty", GgufValue::Array(GgufType::U64, std::vector<uint64_t>{}));
  w.Set("k.arr.nested", GgufValue::ArrayOfArrays({GgufValue::Array(GgufType::I16, std::vector<int16_t>{1, 2}),
                                                  GgufValue::StringArray({"x"})}));
  std::vector<std::byte> f32(4 * 6), bf(2 * 64 * 2), q8(34 * 2), empty;
  for (size_t i = 0; i < f32.size(); ++i) f32[i] = std::byte(i * 7);
  for (size_t i = 0; i < bf.size(); ++i) bf[i] = std::byte(i * 3);
  for (size_t i = 0; i < q8.size(); ++i) q8[i] = std::byte(i);
  q8[0] = q8[34] = std::byte{0};  // finite f16 scales
  w.AddTensor("t.f32", Type::F32, Shape{2, 3}, f32);
  w.AddTensor("t.bf16", Type::BF16, Shape{2, 1, 64}, bf);
  w.AddTensor("t.q8", Type::Q8_0, Shape{2, 32}, q8);
  w.AddTensor("t.empty", Type::F32, Shape{0}, empty);
  const std::string path = dir + "/all.gguf";
  w.Write(path);

  const GgufFile f(path);
  CHECK(f.version() == 3);
  CHECK(f.alignment() == 64);
  CHECK(f.data_offset() % 64 == 0);
  CHECK(f.GetInt("k.u8") == 250);
  CHECK(f.GetInt("k.i8") == -120);
  CHECK(f.GetInt("k.u16") == 65000);
  CHECK(f.GetInt("k.i16") == -32000);
  CHECK(f.GetU32("k.u32") == 4000000000u);
  CHECK(f.GetI32("k.i32") == -2000000000);
  CHECK(f.GetF32("k.f32") == 0.15625f);
  CHECK(f.GetBool("k.bool"));
  CHECK(f.GetString("k.string") == "h\xC3\xA9llo\n");
  CHECK(f.GetU64("k.u64") == uint64_t{1} << 60);
  CHECK(f.GetInt("k.i64") == -(int64_t{1} << 60));
  CHECK(f.GetF64("k.f64") == 1e300);
  CHECK(f.Get("k.u8").type == GgufType::U8);
  CHECK(f.Get("k.f64").type == GgufType::F64);
  CHECK(f.GetIntArray("k.arr.i32") == std::vector<int64_t>{3, -1, 7});
  CHECK(f.GetF32Array("k.arr.f32") == std::vector<float>{0.5f, -2.0f});
  CHECK(f.GetBoolArray("k.arr.bool") == std::vector<bool>{true, false, true});
  CHECK(f.GetStringArray("k.arr.str") == std::vector<std::string>{"a", "", "\xE2\x96\x81 \xE2\x96\x81"});
  CHECK(f.GetArray("k.arr.empty").count == 0);
  CHECK(f.GetArray("k.arr.empty").elem_type == GgufType::U64);
  const GgufValue& nested = f.GetArray("k.arr.nested");
  REQUIRE(nested.arrays.size() == 2);
  CHECK(nested.arrays[0].elem_type == GgufType::I16);
  CHECK(nested.arrays[0].count == 2);
  CHECK(nested.arrays[1].strings == std::vector<std::string>{"x"});
  CHECK(f.metadata().size() == 19);
  REQUIRE(f.tensors().size() == 4);
  const TensorView* t = f.FindTensor("t.f32");
  REQUIRE(t != nullptr);
  CHECK(t->shape == Shape{2, 3});
  CHECK(std::memcmp(t->data, f32.data(), f32.size()) == 0);
  t = f.FindTensor("t.bf16");
  CHECK(t->shape == Shape{2, 1, 64});
  CHECK(t->type == Type::BF16);
  CHECK(std::memcmp(t->data, bf.data(), bf.size()) == 0);
  t = f.FindTensor("t.q8");
  CHECK(t->type == Type::Q8_0);
  CHECK(std::memcmp(t->data, q8.data(), q8.size()) == 0);
  CHECK(f.FindTensor("t.empty")->nbytes == 0);
  for (const GgufTensorInfo& i : f.tensor_infos()) CHECK(i.offset % 64 == 0);
  // ggml order on disk: the writer reverses the shape, as llama.cpp's reader expects (ne[0] = 3 for [2, 3]).
  const std::vector<std::byte> raw = w.Serialize();
  uint64_t ne0;
  std::memcpy(&ne0, raw.data() + TensorInfoField(raw, "t.f32", "ne"), 8);
  CHECK(ne0 == 3);
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

namespace {

// The GGUF `g4 quantize` writes, read back by our own reader.
std::string Export(const Checkpoint& ck, const std::string& dir, const std::string& type, std::string* mmproj = nullptr) {
  const std::string out = dir + "/" + type + ".gguf";
  const QuantScheme s = *ParseQuantScheme(type);
  ThreadPool pool(2);
  ExportModelGguf(ck, out, s, pool);
  if (mmproj) {
    *mmproj = dir + "/" + type + "-mmproj.gguf";
    ExportMmprojGguf(ck, *mmproj, s, pool);
  }
  return out;
}

}  // namespace

TEST_CASE("quantize: F32 and BF16 round trips give the same config and bit-identical weights") {
  const std::string dir = TempDir("quantize");
  for (const char* name : {"text", "text-kv", "mtp", "mtp-ordered"}) {
    CAPTURE(name);
    const Checkpoint hf(DataDir() + "/golden/" + name);
    for (const char* type : {"F32", "BF16"}) {
      CAPTURE(type);
      const Checkpoint gg(Export(hf, dir, type));
      CheckSameConfig(hf.config(), gg.config());
      CheckSameWeights(hf, gg);
      for (const TensorRecord& r : gg.tensors()) {
        CAPTURE(r.name);
        const bool vector = r.shape.rank == 1;
        CHECK(r.type == (vector || std::string(type) == "F32" ? Type::F32 : Type::BF16));
      }
      // BF16 matrices are the source bytes, unchanged.
      if (std::string(type) == "BF16") {
        const TensorView &a = hf.text().layers[0].q_proj, &b = gg.text().layers[0].q_proj;
        REQUIRE(a.nbytes == b.nbytes);
        CHECK(std::memcmp(a.data, b.data, a.nbytes) == 0);
      }
    }
  }
  // Multimodal: the text GGUF plus the clip mmproj, whose CHW permutation CheckSameWeights undoes independently.
  const Checkpoint mm(DataDir() + "/golden/multimodal");
  std::string mmproj;
  const std::string text = Export(mm, dir, "F32", &mmproj);
  const Checkpoint gg(text, mmproj);
  CheckSameConfig(mm.config(), gg.config(), /*media_ids=*/false);  // the golden case has no tokenizer to copy
  CheckSameWeights(mm, gg);
  // And our output against llama.cpp's own conversion of the same checkpoint.
  const Checkpoint lc(DataDir() + "/golden-gguf/multimodal-bf16.gguf", DataDir() + "/golden-gguf/multimodal-mmproj-bf16.gguf");
  for (const char* key : {"gemma4.attention.head_count_kv", "gemma4.rope.dimension_count", "gemma4.attention.key_length_swa",
                          "gemma4.attention.sliding_window_pattern", "gemma4.final_logit_softcapping"}) {
    CAPTURE(key);
    CHECK(gg.gguf()->Get(key).type == lc.gguf()->Get(key).type);
  }
  for (const TensorRecord& r : lc.tensors()) {
    CAPTURE(r.name);
    const bool ours = std::any_of(gg.tensors().begin(), gg.tensors().end(), [&](const TensorRecord& o) { return o.name == r.name && o.shape == r.shape; });
    CHECK(ours);
  }
  CHECK(gg.tensors().size() == lc.tensors().size());
}

TEST_CASE("quantize: Q8_0 .. Q4_K_M write QuantizeRow's blocks with llama.cpp's type mix") {
  const std::string dir = TempDir("quantize-q");
  const Checkpoint hf(DataDir() + "/demo");  // hidden 256, ffn 1024: every matrix fills whole K-quant blocks
  const int n = hf.config().n_layers;
  for (const char* type : {"Q8_0", "Q4_K_M"}) {  // Q4_K_M covers Q4_K and Q6_K; Q4_0 takes Q8_0's export path
    CAPTURE(type);
    const Checkpoint gg(Export(hf, dir, type));
    CheckSameConfig(hf.config(), gg.config());
    const QuantScheme s = *ParseQuantScheme(type);
    for (int i = 0; i < n; ++i) {
      const bool more = i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2;  // llama.cpp's use_more_bits
      const LayerWeights& l = gg.text().layers[static_cast<size_t>(i)];
      CHECK(l.q_proj.type == s.type);
      CHECK(l.attn_norm.type == Type::F32);
      CHECK(l.down_proj.type == (s.q4_k_m && more ? Type::Q6_K : s.type));
    }
    CHECK(gg.text().embed.type == (s.q4_k_m ? Type::Q6_K : s.type));
    // Each row is exactly the quantizer's encoding of the source row.
    for (const TensorView* pair : {&hf.text().layers[3].gate_proj, &hf.text().embed}) {
      const TensorView& src = *pair;
      const TensorView& dst = pair == &hf.text().embed ? gg.text().embed : gg.text().layers[3].gate_proj;
      std::vector<float> row(static_cast<size_t>(src.cols()));
      std::vector<std::byte> want(dst.row_bytes());
      size_t bad_rows = 0;
      for (int64_t r = 0; r < src.rows(); ++r) {
        DequantizeTensorRow(src, r, row.data());
        QuantizeRow(dst.type, row.data(), row.size(), want.data());
        bad_rows += std::memcmp(want.data(), dst.row(r), want.size()) != 0;
      }
      CHECK(bad_rows == 0);
    }
  }
}

TEST_CASE("quantize: a safetensors checkpoint's tokenizer.json travels into the GGUF and tokenizes identically") {
  const std::string dir = TempDir("quantize-tok");
  const std::string demo = DataDir() + "/demo";
  const Checkpoint hf(demo);
  const GgufTokenizer tok = GgufTokenizerFromHf(demo + "/tokenizer.json");
  ThreadPool pool(2);
  const std::string out = dir + "/demo.gguf";
  ExportModelGguf(hf, out, *ParseQuantScheme("BF16"), pool, {}, &tok);
  const Checkpoint gg(out);
  // The demo's config.json (text-only) names no media tokens; its vocabulary does, and GGUF takes them from there.
  CheckSameConfig(hf.config(), gg.config(), /*media_ids=*/false);
  CHECK(gg.config().tokens.boi == 7);
  CHECK(gg.config().tokens.video == 13);
  CheckSameWeights(hf, gg);
  const auto back = gg.tokenizer();
  REQUIRE(back.has_value());
  CHECK(back->model == "gemma4");
  CHECK(back->tokens.size() == 8192);
  CHECK(back->tokens[14] == "<0x00>");
  CHECK(back->token_type[14] == 6);  // BYTE
  CHECK(back->token_type[2] == 3);   // <bos>: CONTROL
  CHECK(back->merges.size() == ReadJson(demo + "/tokenizer.json")["model"]["merges"].size());
  CHECK(back->bos == 2);
  CHECK(back->eos == 1);
  CHECK(back->eot == -1);  // the demo's stop list is eos only
  // The reference ids in demo_reference.json come from Hugging Face tokenizers on tokenizer.json.
  const Tokenizer from_gguf = TokenizerFromGguf(*back, out);
  const nlohmann::json reference = ReadJson(demo + "/demo_reference.json");
  for (const auto& c : reference["tokenizer_cases"]) {
    CAPTURE(c["text"].get<std::string>());
    CHECK(from_gguf.Encode(c["text"].get<std::string>()) == c["ids"].get<std::vector<int32_t>>());
  }
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
