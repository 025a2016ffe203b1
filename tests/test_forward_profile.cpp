// ForwardProfile (g4 bench's decode breakdown) times the forward pass it is given without changing it: the same
// logits as without, its matrix parts named by the file's own weight types, and its parts within the pass's time.
#include <doctest/doctest.h>

#include <chrono>
#include <set>

#include "g4/io/checkpoint.hpp"
#include "g4/model/gemma4.hpp"
#include "support/test_data.hpp"

namespace g4_test_forward_profile {  // this suite's names, apart from the others' in a unity build (tests/meson.build)

using namespace g4;

TEST_CASE("a profiled forward pass gives the unprofiled logits, with its parts by the file's weight types") {
  // llama-quantize's Q4_K_M file of the demo: Q4_K and Q6_K layer matrices, a Q6_K head.
  const Checkpoint ck(testing::DataDir() + "/ggml-quants/demo-q4_k_m-llama-quantize.gguf");
  std::set<Type> layer_types;
  for (const TensorRecord& t : ck.tensors())
    if (t.name.starts_with("blk.") && t.shape.rank == 2) layer_types.insert(t.type);
  REQUIRE(layer_types == std::set<Type>{Type::Q4_K, Type::Q6_K});

  ThreadPool pool(2);
  const Gemma4 model(ck.config(), ck.text(), pool);
  const std::vector<int32_t> prompt{2, 105, 2364, 107, 818}, next{5};
  auto run = [&](ForwardProfile* prof, double* decode_s) {
    Sequence seq = model.NewSequence(16);
    ForwardOutput out;
    model.Forward(seq, {prompt}, out);
    out.profile = prof;
    const auto t0 = std::chrono::steady_clock::now();
    model.Forward(seq, {next}, out);
    if (decode_s) *decode_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    return out.logits;
  };
  ForwardProfile prof;
  double decode_s = 0;
  const std::vector<float> plain = run(nullptr, nullptr), profiled = run(&prof, &decode_s);
  CHECK(plain == profiled);  // bit for bit: the hooks only read clocks

  std::set<Type> timed;
  for (const auto& [type, s] : prof.matmul_s) {
    timed.insert(type);
    CHECK(s > 0);
  }
  CHECK(timed == layer_types);
  CHECK(prof.attention_s > 0);
  CHECK(prof.head_s > 0);
  CHECK(prof.softcap_s > 0);
  CHECK(prof.rest_s > 0);
  CHECK(prof.total_s() <= decode_s);  // parts of the one pass, each timed inside it
}

}  // namespace g4_test_forward_profile
