// Against files llama.cpp itself wrote (tests/data/ggml-quants, see its README): our Q4_K_M type mix gives the
// types llama-quantize chose, tensor by tensor.
#include <doctest/doctest.h>

#include <filesystem>
#include <string>
#include <vector>

#include "g4/core/thread_pool.hpp"
#include "g4/io/checkpoint.hpp"
#include "g4/io/gguf.hpp"
#include "g4/io/gguf_export.hpp"
#include "g4/io/quant_mix.hpp"
#include "support/test_data.hpp"

using namespace g4;
using g4::testing::DataDir;

namespace {

std::string LlamaQuant(const std::string& type) { return DataDir() + "/ggml-quants/demo-" + type + "-llama-quantize.gguf"; }

}  // namespace

TEST_CASE("Q4_K_M mix: g4 quantize of the demo writes llama-quantize's type for every tensor") {
  const Checkpoint demo(DataDir() + "/demo");
  const std::string out = (std::filesystem::temp_directory_path() / "g4-test-demo-q4_k_m.gguf").string();
  ThreadPool pool(2);
  ExportModelGguf(demo, out, *ParseQuantScheme("Q4_K_M"), pool);
  const GgufFile ours(out);
  const GgufFile llama(LlamaQuant("q4_k_m"));
  CHECK(ours.tensors().size() == llama.tensors().size());
  for (const TensorView& want : llama.tensors()) {
    CAPTURE(want.name);
    const TensorView* got = ours.FindTensor(want.name);
    REQUIRE(got != nullptr);
    CHECK(TypeName(got->type) == TypeName(want.type));
  }
  CHECK(ours.GetU32("general.file_type") == llama.GetU32("general.file_type"));
  std::filesystem::remove(out);
}

TEST_CASE("Q4_K_M mix: attn_v's Q6_K layers count only the attn_v tensors that exist") {
  // The demo (12 layers, full layers 5 and 11 k_eq_v): the layers of llama-quantize's file above.
  const Checkpoint demo(DataDir() + "/demo");
  CHECK(Q4KMMix(demo.config()).AttnVQ6KLayers() == std::vector<int>{0, 3, 7, 9, 10});
  // The 12B (48 layers, every sixth k_eq_v): llama-quantize's choice on google/gemma-4-12B-it (issue 38).
  const std::vector<int> llama_12b{0, 1, 2, 3, 4, 8, 12, 15, 19, 22, 26, 30, 33, 37, 40, 42, 43, 44, 45, 46};
  const Q4KMMix mix(Gemma4Config::Gemma4_12B());
  CHECK(mix.AttnVQ6KLayers() == llama_12b);
  // ffn_down counts every layer: llama.cpp's use_more_bits(i, 48) is i < 6, i >= 42 or (i - 6) % 3 == 2.
  std::vector<int> down;
  for (int i = 0; i < 48; ++i)
    if (mix.TypeOf("blk." + std::to_string(i) + ".ffn_down.weight", i) == Type::Q6_K) down.push_back(i);
  CHECK(down == std::vector<int>{0, 1, 2, 3, 4, 5, 8, 11, 14, 17, 20, 23, 26, 29, 32, 35, 38, 41, 42, 43, 44, 45, 46, 47});
  CHECK(mix.TypeOf("token_embd.weight", -1) == Type::Q6_K);
  CHECK(mix.TypeOf("blk.0.attn_q.weight", 0) == Type::Q4_K);
  CHECK(mix.TypeOf("blk.0.attn_k.weight", 0) == Type::Q4_K);
  CHECK(mix.TypeOf("blk.0.attn_output.weight", 0) == Type::Q4_K);
  CHECK(mix.TypeOf("blk.0.ffn_gate.weight", 0) == Type::Q4_K);
  CHECK(mix.TypeOf("blk.0.ffn_up.weight", 0) == Type::Q4_K);
}
