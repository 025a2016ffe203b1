// `g4 quantize`'s GGUF export: F32 and BF16 round trips are bit-identical, quantized types hold QuantizeRow's blocks
// in llama-quantize's type mix, and a safetensors checkpoint's tokenizer.json travels into the file.
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "g4/core/dequantize.hpp"
#include "g4/core/quantize.hpp"
#include "g4/io/checkpoint.hpp"
#include "g4/io/gguf_export.hpp"
#include "g4/text/gguf_vocab.hpp"
#include "support/same_model.hpp"
#include "support/temp_files.hpp"
#include "support/test_data.hpp"

namespace g4_test_gguf_export {  // this suite's names, apart from the others' in a unity build (tests/meson.build)

using namespace g4;
using namespace g4::testing;

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

}  // namespace g4_test_gguf_export
