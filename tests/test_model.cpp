// The decoder's own consistency: chunked prefill equals one pass; decoding after a prefill equals one long
// forward; the sliding ring and image blocks behave as the spec's masks say (checked against a plain
// full-cache recomputation). The reference vectors of transformers are checked by `g4 check` (the golden suite in
// tests/meson.build, examples/g4/cmd_check.cpp).
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <random>

#include "g4/model/gemma4.hpp"
#include "g4/model/prompt.hpp"
#include "g4/kernels/reference.hpp"
#include "support/compare.hpp"
#include "support/random_model.hpp"

namespace g4_test_model {  // this suite's names, apart from the others' in a unity build (tests/meson.build)

using namespace g4;

using testing::RelErr;
using testing::Tokens;

TEST_CASE("chunked prefill and token-by-token decode equal one pass, on random small models") {
  ThreadPool pool(2);
  struct Variant { const char* pattern; int window; bool k_eq_v; };
  for (const Variant& v : {Variant{"SSFSSF", 4, true}, Variant{"SF", 3, false}, Variant{"SSSSSF", 7, true}, Variant{"FS", 1, true}}) {
    CAPTURE(v.pattern);
    CAPTURE(v.window);
    testing::RandomModel rm = testing::MakeRandomModel(v.pattern, v.window, v.k_eq_v, 7 + v.window);
    Gemma4 model(rm.cfg, rm.weights, pool);
    const auto tokens = Tokens(29, rm.cfg.vocab_size, 11);

    Sequence one = model.NewSequence(64, 64);
    ForwardOutput ref;
    ref.all_logits = true;
    model.Forward(one, {tokens}, ref);

    for (size_t chunk : {1, 2, 3, 5, 8, 29}) {
      CAPTURE(chunk);
      Sequence seq = model.NewSequence(64, chunk);
      ForwardOutput out;
      out.all_logits = true;
      model.Forward(seq, {tokens}, out);
      CHECK(RelErr(out.logits, ref.logits) < 1e-5);
    }
    // Prefill 17, then decode one token at a time through the cache (ring of window + 7 slots).
    Sequence seq = model.NewSequence(64, 8);
    ForwardOutput out;
    model.Forward(seq, {std::span(tokens).first(17)}, out);
    const size_t V = static_cast<size_t>(rm.cfg.vocab_size);
    CHECK(RelErr(out.logits, std::span(ref.logits).subspan(16 * V, V)) < 1e-5);
    for (size_t i = 17; i < tokens.size(); ++i) {
      model.Forward(seq, {std::span(tokens).subspan(i, 1)}, out);
      CHECK(RelErr(out.logits, std::span(ref.logits).subspan(i * V, V)) < 1e-5);
    }
  }
}

TEST_CASE("rolling the position back re-computes the same logits (speculative rounds)") {
  ThreadPool pool(1);
  testing::RandomModel rm = testing::MakeRandomModel("SSF", 4, true, 3);
  Gemma4 model(rm.cfg, rm.weights, pool);
  const auto tokens = Tokens(20, rm.cfg.vocab_size, 5);
  Sequence seq = model.NewSequence(40, 6);
  ForwardOutput out;
  model.Forward(seq, {std::span(tokens).first(12)}, out);
  // A speculative round writes up to max_chunk - 2 = 4 tokens (so the rings keep the drafter's window), none kept.
  const auto junk = Tokens(4, rm.cfg.vocab_size, 99);
  model.Forward(seq, {junk}, out);
  seq.Rollback(12);
  model.Forward(seq, {std::span(tokens).subspan(12, 8)}, out);
  Sequence ref = model.NewSequence(40, 40);
  ForwardOutput ref_out;
  model.Forward(ref, {tokens}, ref_out);
  CHECK(RelErr(out.logits, ref_out.logits) < 1e-6);
}

TEST_CASE("an image block is bidirectional on sliding layers only, and chunks never split it") {
  ThreadPool pool(1);
  testing::RandomModel rm = testing::MakeRandomModel("SSF", 6, true, 21);
  Gemma4 model(rm.cfg, rm.weights, pool);
  const auto tokens = Tokens(14, rm.cfg.vocab_size, 8);
  std::vector<int32_t> blocks(14, -1);
  for (int i = 4; i < 9; ++i) blocks[static_cast<size_t>(i)] = 0;  // positions 4..8 form one image
  ForwardOutput causal, vision, vision_chunked;
  causal.all_logits = vision.all_logits = vision_chunked.all_logits = true;
  {
    Sequence s = model.NewSequence(32, 32);
    model.Forward(s, {tokens}, causal);
  }
  {
    Sequence s = model.NewSequence(32, 32);
    model.Forward(s, {tokens, {}, {}, blocks}, vision);
  }
  {
    Sequence s = model.NewSequence(32, 6);  // a chunk of 6 would end inside the block: must move the cut
    model.Forward(s, {tokens, {}, {}, blocks}, vision_chunked);
  }
  const size_t V = static_cast<size_t>(rm.cfg.vocab_size);
  CHECK(RelErr(vision_chunked.logits, vision.logits) < 1e-5);
  // Before the block nothing changes; inside it, tokens see their block's later tokens.
  CHECK(RelErr(std::span(vision.logits).first(4 * V), std::span(causal.logits).first(4 * V)) < 1e-6);
  CHECK(RelErr(std::span(vision.logits).subspan(4 * V, V), std::span(causal.logits).subspan(4 * V, V)) > 1e-3);
  {
    Sequence s = model.NewSequence(32, 3);  // a block of 5 cannot fit a chunk of 3
    ForwardOutput o;
    CHECK_THROWS_WITH_AS(model.Forward(s, {tokens, {}, {}, blocks}, o), doctest::Contains("image block"), Error);
  }
}

TEST_CASE("prompt assembly: soft tokens enter unscaled, placeholders expand, image blocks and audio differ") {
  ThreadPool pool(1);
  testing::RandomModel rm = testing::MakeRandomModel("SSF", 8, true, 4);
  Gemma4Config& c = rm.cfg;
  c.tokens.boi = 60, c.tokens.eoi = 61, c.tokens.image = 62, c.tokens.boa = 57, c.tokens.eoa = 58, c.tokens.audio = 59;
  Gemma4 model(c, rm.weights, pool);
  const size_t H = static_cast<size_t>(c.hidden_size);
  // A "medium" whose soft tokens are the scaled embeddings of tokens 5, 6, 7 must act like those tokens.
  MediaEmbedding audio{MediaEmbedding::Kind::kAudio, std::vector<float>(3 * H), 3, {}};
  for (int i = 0; i < 3; ++i) model.EmbedToken(5 + i, audio.rows.data() + static_cast<size_t>(i) * H);
  const std::vector<int32_t> plain{1, 2, 57, 5, 6, 7, 58, 3};
  Prompt with_audio(c);
  const int32_t before[] = {1, 2, 59, 3};
  with_audio.AddExpandingPlaceholders(before, std::span(&audio, 1));
  CHECK(with_audio.tokens() == std::vector<int32_t>{1, 2, 57, 59, 59, 59, 58, 3});
  ForwardOutput a, b;
  a.all_logits = b.all_logits = true;
  Sequence s1 = model.NewSequence(16), s2 = model.NewSequence(16);
  model.Forward(s1, with_audio.input(), a);
  model.Forward(s2, {plain}, b);
  CHECK(RelErr(a.logits, b.logits) < 1e-6);
  // The same rows as an image: one bidirectional block, so the logits inside it change; AddExpanded of the
  // expanded ids gives the same input as expanding the placeholder.
  MediaEmbedding image = audio;
  image.kind = MediaEmbedding::Kind::kImage;
  Prompt p1(c), p2(c);
  const int32_t with_placeholder[] = {1, 62, 3};
  const int32_t expanded[] = {1, 60, 62, 62, 62, 61, 3};
  p1.AddExpandingPlaceholders(with_placeholder, std::span(&image, 1));
  p2.AddExpanded(expanded, std::span(&image, 1));
  CHECK(p1.tokens() == p2.tokens());
  ForwardOutput i1, i2;
  i1.all_logits = i2.all_logits = true;
  Sequence s3 = model.NewSequence(16), s4 = model.NewSequence(16);
  model.Forward(s3, p1.input(), i1);
  model.Forward(s4, p2.input(), i2);
  CHECK(RelErr(i1.logits, i2.logits) == 0.0);
  const size_t V = static_cast<size_t>(c.vocab_size);
  CHECK(RelErr(std::span(i1.logits).subspan(2 * V, V), std::span(a.logits).subspan(3 * V, V)) > 1e-4);
  // Mismatches are errors that say what is wrong.
  Prompt bad(c);
  CHECK_THROWS_WITH_AS(bad.AddExpandingPlaceholders(before, std::span(&image, 1)), doctest::Contains("placeholder"), Error);
  Prompt short_run(c);
  const int32_t two[] = {62, 62};
  CHECK_THROWS_WITH_AS(short_run.AddExpanded(two, std::span(&image, 1)), doctest::Contains("run of 2"), Error);
}

TEST_CASE("attention over an F16 or F32 cache, any query-head grouping, on every target, against the scalar reference") {
  ThreadPool pool(3);
  std::mt19937 rng(9);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  struct Shape { size_t heads, kv_heads, head_dim, capacity; };
  for (const Shape sh : {Shape{4, 4, 8, 40}, Shape{4, 2, 16, 40}, Shape{16, 1, 32, 70}, Shape{9, 1, 6, 33}, Shape{12, 2, 10, 50}}) {
    for (Type kv_type : {Type::F32, Type::F16}) {
      const size_t n_tok = 5, row = sh.head_dim;
      std::vector<float> q(n_tok * sh.heads * row);
      for (float& x : q) x = nd(rng);
      const size_t plane = sh.kv_heads * sh.capacity * row;
      std::vector<float> k32(plane), v32(plane);
      for (float& x : k32) x = nd(rng);
      for (float& x : v32) x = nd(rng);
      std::vector<f16> k16(plane), v16(plane);
      for (size_t i = 0; i < plane; ++i) k16[i] = F32ToF16(k32[i]), v16[i] = F32ToF16(v32[i]);
      // Ranges wrap around the ring and include an empty one.
      const int64_t begin[] = {0, 3, 30, 10, 7}, end[] = {1, 35, 30 + static_cast<int64_t>(sh.capacity) - 1, 10, 40};
      AttentionArgs a;
      a.q = q.data();
      a.n_tok = n_tok;
      a.n_heads = sh.heads;
      a.n_kv_heads = sh.kv_heads;
      a.head_dim = row;
      a.k_type = a.v_type = kv_type;
      a.k = kv_type == Type::F32 ? static_cast<const void*>(k32.data()) : k16.data();
      a.v = kv_type == Type::F32 ? static_cast<const void*>(v32.data()) : v16.data();
      a.capacity = sh.capacity;
      a.key_begin = begin;
      a.key_end = end;
      a.scale = 0.3f;
      std::vector<float> want(q.size()), got(q.size());
      a.out = want.data();
      ref::Attention(a);
      for (const std::string& target : AvailableTargets()) {
        CAPTURE(target);
        CAPTURE(sh.heads);
        CAPTURE(sh.kv_heads);
        ForceTarget(target);
        std::fill(got.begin(), got.end(), -7.0f);
        a.out = got.data();
        Attention(a, pool);
        // f32 arithmetic over at most ~70 keys of unit-scale values: a few ulps of the largest output.
        CHECK(RelErr(got, want) < 2e-5);
      }
      ForceTarget("");
    }
  }
}

// Models pack their quantized matrices into row groups where the target's kernels read them (AVX3_DL, AVX3, AVX2)
// and multiply from the checkpoint's layout elsewhere, through different kernels: every target must give the same
// logits, up to the int8 activation roundings that a different f32 summation order can flip. With F32 weights the
// targets agree within 4e-7; quantized, most runs do too, and one flipped activation quant moved these logits by
// 3.5e-3 to 5.7e-3 (7 token seeds x 5 targets: 5 such runs); a wrong row or layout moves them by their own size.
TEST_CASE("a quantized model gives the same logits on every target, with and without row groups") {
  ThreadPool pool(2);
  // Vocabulary 100: the tied head ends in a group of 4 rows.
  testing::RandomModel rm = testing::MakeRandomModel("SSFSF", 4, true, 21, 64, 4, 2, 8, 100);
  testing::QuantizeMatrices(rm, Type::Q4_0, Type::Q8_0);
  const auto tokens = Tokens(14, rm.cfg.vocab_size, 5);
  // Logits of a 13-token prefill (every position), then of one decoded token.
  auto logits = [&](Repack repack) {
    Gemma4 model(rm.cfg, rm.weights, pool, repack);
    Sequence seq = model.NewSequence(32, 16);
    ForwardOutput prefill, decode;
    prefill.all_logits = true;
    model.Forward(seq, {std::span(tokens).first(13)}, prefill);
    model.Forward(seq, {std::span(tokens).subspan(13, 1)}, decode);
    prefill.logits.insert(prefill.logits.end(), decode.logits.begin(), decode.logits.end());
    return prefill.logits;
  };
  const std::vector<std::string> targets = AvailableTargets();
  ForceTarget(targets.back());  // the most portable: the unpacked-row kernel, from the checkpoint's layout
  const std::vector<float> want = logits(Repack::kNone);
  for (const std::string& target : targets) {
    CAPTURE(target);
    ForceTarget(target);
    for (Repack repack : {Repack::kWhereRead, Repack::kNone}) {
      CAPTURE(repack == Repack::kNone);
      const double err = RelErr(logits(repack), want);
      MESSAGE(target << std::string(repack == Repack::kNone ? "" : " (row groups where read)") << ": logits relative error " << err);
      CHECK(err < 3e-2);
    }
  }
  ForceTarget("");
}

TEST_CASE("an F16 KV cache: half the bytes, logits within F16 rounding of the F32 cache") {
  ThreadPool pool(2);
  testing::RandomModel rm = testing::MakeRandomModel("SSFSSF", 6, true, 12);
  Gemma4 model(rm.cfg, rm.weights, pool);
  const auto tokens = Tokens(24, rm.cfg.vocab_size, 3);
  Sequence s32 = model.NewSequence(64, 8), s16 = model.NewSequence(64, 8, Type::F16);
  CHECK(s16.cache.bytes() * 2 == s32.cache.bytes());
  ForwardOutput a, b;
  a.all_logits = b.all_logits = true;
  model.Forward(s32, {tokens}, a);
  model.Forward(s16, {tokens}, b);
  // K and V rows are RMS-normalised: F16 keeps 11 bits of each (unit roundoff 2^-11 = 4.9e-4). Measured 2.1e-4
  // through these 6 layers on Zen 3 (AVX2, SSE4, SCALAR alike); rounding 8x coarser (BF16's 2^-8) would scale that
  // to ~1.7e-3.
  const double err = RelErr(b.logits, a.logits);
  MESSAGE("F16 cache vs F32 cache: logits relative error " << err);
  CHECK(err < 1e-3);
  CHECK(err > 0.0);
  CHECK_THROWS_WITH_AS(model.NewSequence(64, 8, Type::Q4_K), doctest::Contains("supported: F32, F16, Q8_0, Q4_0"), Error);
}

TEST_CASE("num_kv_shared_layers: the last layers attend to the KV of the last earlier layer of their kind") {
  ThreadPool pool(1);
  testing::RandomModel rm = testing::MakeRandomModel("SSFSSF", 5, true, 30);
  const auto tokens = Tokens(12, rm.cfg.vocab_size, 2);
  auto logits = [&](const Gemma4Config& cfg, const TextWeights& w) {
    Gemma4 model(cfg, w, pool);
    Sequence s = model.NewSequence(16);
    ForwardOutput out;
    out.all_logits = true;
    model.Forward(s, {tokens}, out);
    return out.logits;
  };
  Gemma4Config shared = rm.cfg;
  shared.num_kv_shared_layers = 2;  // layers 4 (S) and 5 (F) read layers 3 (S) and 2 (F)
  const auto base = logits(rm.cfg, rm.weights), with_sharing = logits(shared, rm.weights);
  CHECK(RelErr(with_sharing, base) > 1e-3);
  // The shared layers' own K/V projections are never read: swapping them in changes nothing.
  TextWeights swapped = rm.weights;
  std::swap(swapped.layers[4].k_proj, swapped.layers[0].k_proj);
  std::swap(swapped.layers[4].v_proj, swapped.layers[0].v_proj);
  std::swap(swapped.layers[5].k_proj, swapped.layers[1].k_proj);
  swapped.layers[0] = rm.weights.layers[0];
  swapped.layers[1] = rm.weights.layers[1];
  CHECK(RelErr(logits(shared, swapped), with_sharing) == 0.0);
  KVCache cache(shared, 16, 4);
  CHECK(!cache.owns(4));
  CHECK(&cache.layer(4) == &cache.layer(3));
  CHECK(&cache.layer(5) == &cache.layer(2));
}

TEST_CASE("limits: context, token ids, positions") {
  ThreadPool pool(1);
  testing::RandomModel rm = testing::MakeRandomModel("SF", 4, true, 1);
  Gemma4 model(rm.cfg, rm.weights, pool);
  CHECK_THROWS_WITH_AS(model.NewSequence(5000), doctest::Contains("supports at most"), Error);
  Sequence seq = model.NewSequence(8);
  ForwardOutput out;
  const auto tokens = Tokens(9, rm.cfg.vocab_size, 1);
  CHECK_THROWS_WITH_AS(model.Forward(seq, {tokens}, out), doctest::Contains("exceed the context"), Error);
  const int32_t bad[] = {1, 64};
  CHECK_THROWS_WITH_AS(model.Forward(seq, {bad}, out), doctest::Contains("outside the vocabulary"), Error);
}

TEST_CASE("the 12B preset matches the spec") {
  const Gemma4Config c = Gemma4Config::Gemma4_12B();
  CHECK_NOTHROW(c.Validate("12B"));
  CHECK(c.n_layers == 48);
  CHECK(c.hidden_size == 3840);
  CHECK(c.n_heads == 16);
  CHECK(c.intermediate_size == 15360);
  CHECK(c.sliding_window == 1024);
  CHECK(c.vocab_size == 262144);
  CHECK(c.max_position == 262144);
  int full = 0;
  for (int i = 0; i < 48; ++i) {
    const LayerConfig& l = c.layers[static_cast<size_t>(i)];
    if (l.kind == AttentionKind::kFull) {
      ++full;
      CHECK(i % 6 == 5);
      CHECK(l.head_dim == 512);
      CHECK(l.n_kv_heads == 1);
      CHECK(l.k_eq_v);
      const auto f = l.RopeInvFreq();
      CHECK(f.size() == 256);
      CHECK(f[63] > 0.0f);
      CHECK(f[64] == 0.0f);
      CHECK(f[1] == doctest::Approx(std::pow(1e6, -2.0 / 512)).epsilon(1e-6));
    } else {
      CHECK(l.head_dim == 256);
      CHECK(l.n_kv_heads == 8);
      CHECK(l.RopeInvFreq()[127] == doctest::Approx(std::pow(1e4, -254.0 / 256)).epsilon(1e-6));
    }
  }
  CHECK(full == 8);
  CHECK(c.LastLayerOf(AttentionKind::kFull) == 47);
  CHECK(c.LastLayerOf(AttentionKind::kSliding) == 46);
  // KV bytes: sliding rings are window-sized, full layers hold the whole context.
  KVCache cache(c, 32768, 512);
  const size_t full_bytes = 8ull * 2 * 512 * 32768 * 4;
  const size_t sliding_bytes = 40ull * 2 * 8 * 256 * (1024 + 511) * 4;
  CHECK(cache.bytes() == full_bytes + sliding_bytes);
}

}  // namespace g4_test_model
