// Quantized KV caches (ggml's Q8_0 and Q4_0 blocks of 32, keys and values typed apart): the cache stores ggml's
// encoding and reads it back within the format's rounding; attention on every target stays within a bound derived
// from that rounding of a double-precision reference on the unquantized values, and within the query's own int8
// rounding of the reference on the cache's dequantized rows; rollback, clone, save/restore and batched forward
// passes behave with them exactly as with F32.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include "g4/core/dequantize.hpp"
#include "g4/core/quantize.hpp"
#include "g4/kernels/ops.hpp"
#include "g4/kernels/reference.hpp"
#include "g4/model/gemma4.hpp"
#include "g4/model/sequence_file.hpp"
#include "g4/session/scheduler.hpp"
#include "g4/session/session.hpp"
#include "support/compare.hpp"
#include "support/demo_model.hpp"
#include "support/random_model.hpp"

namespace g4_test_kv_quant {  // this suite's names, apart from the others' in a unity build (tests/meson.build)

using namespace g4;

namespace {

using testing::RelErr;
using testing::Tokens;

constexpr Type kTypes[] = {Type::F32, Type::F16, Type::Q8_0, Type::Q4_0};

bool IsBlock(Type t) { return t == Type::Q8_0 || t == Type::Q4_0; }

// The most a cached value x can move, from the format alone, in a block of 32 whose largest magnitude is amax:
//   Q8_0: steps d = amax / 127, rounded to nearest (d / 2), d stored as f16 (relative 2^-11 over up to 127
//         levels: 0.062 d more): under d = amax / 127;
//   Q4_0: steps d = amax / 8, rounded to nearest except the top level, clamped (one step), f16 d (8 x 2^-11 d
//         more): under amax / 7;
//   F16: half an ulp, 2^-11 |x|, or 2^-25 among f16's subnormals; F32: exact.
double ValueBound(Type t, double x, double amax) {
  switch (t) {
    case Type::Q8_0: return amax / 127;
    case Type::Q4_0: return amax / 7;
    case Type::F16: return std::ldexp(std::abs(x), -11) + std::ldexp(1.0, -25);
    default: return 0.0;
  }
}

// Per value of `row` (head_dim values): ValueBound with each block's largest magnitude.
std::vector<double> RowBounds(Type t, const float* row, size_t hd) {
  std::vector<double> b(hd);
  for (size_t i = 0; i < hd; i += 32) {
    double amax = 0;
    for (size_t j = i; j < std::min(hd, i + 32); ++j) amax = std::max(amax, double(std::abs(row[j])));
    for (size_t j = i; j < std::min(hd, i + 32); ++j) b[j] = ValueBound(t, row[j], amax);
  }
  return b;
}

// Values ~ N(0, 1) times a factor per block of 32 drawn from [1/4, 4], so that blocks have scales of their own.
std::vector<float> BlockScaledNormals(size_t n, std::mt19937& rng) {
  std::normal_distribution<float> nd(0.0f, 1.0f);
  std::uniform_real_distribution<float> ex(-2.0f, 2.0f);
  std::vector<float> v(n);
  for (size_t i = 0; i < n; i += 32) {
    const float f = std::exp2(ex(rng));
    for (size_t j = i; j < std::min(n, i + 32); ++j) v[j] = nd(rng) * f;
  }
  return v;
}

// A plane [kv_heads, capacity] of rows of hd values in type t: ggml's encoding of each row (QuantizeRow).
std::vector<std::byte> Encode(Type t, const std::vector<float>& values, size_t hd) {
  const TypeInfo info = GetTypeInfo(t);
  const size_t row_bytes = hd / info.block_elems * info.block_bytes, rows = values.size() / hd;
  std::vector<std::byte> out(rows * row_bytes);
  for (size_t r = 0; r < rows; ++r) QuantizeRow(t, values.data() + r * hd, hd, out.data() + r * row_bytes);
  return out;
}

std::vector<float> Decode(Type t, const std::vector<std::byte>& bytes, size_t rows, size_t hd) {
  std::vector<float> out(rows * hd);
  const size_t row_bytes = bytes.size() / rows;
  for (size_t r = 0; r < rows; ++r) DequantizeRow(t, bytes.data() + r * row_bytes, hd, out.data() + r * hd);
  return out;
}

// How far attention over keys k' and values v' with a query q' can be from the exact attention over k, v, q, per
// output column, when |k' - k| <= ek, |v' - v| <= ev elementwise and the query, quantized against block keys, is
// off by at most qerr per block (amax / 254: half of d = amax / 127, as ggml quantizes activations; 0 for float
// keys). A score moves by at most D_j = scale (sum |q| ek + sum (|k| + ek) qerr); softmax weights p_j e^{d_j} / sum
// with |d_j| <= D then move by at most p_j (e^{2D} - 1), so an output moves by at most (e^{2D} - 1) max |v'| + max ev.
// The f32 arithmetic adds 1e-5 of the scores' and the values' magnitudes (a generous ulp count over <= 512 terms).
std::vector<double> OutputBound(const float* q, size_t hd, float scale, bool quantized_query, const std::vector<const float*>& k,
                                const std::vector<std::vector<double>>& ek, const std::vector<const float*>& v,
                                const std::vector<std::vector<double>>& ev) {
  std::vector<double> qerr(hd, 0.0);
  if (quantized_query)
    for (size_t i = 0; i < hd; i += 32) {
      double amax = 0;
      for (size_t j = i; j < i + 32; ++j) amax = std::max(amax, double(std::abs(q[j])));
      for (size_t j = i; j < i + 32; ++j) qerr[j] = amax / 254 * (1 + 1e-5);
    }
  double shift = 0;
  for (size_t j = 0; j < k.size(); ++j) {
    double d = 0, mag = 0;
    for (size_t i = 0; i < hd; ++i) {
      d += std::abs(q[i]) * ek[j][i] + (std::abs(k[j][i]) + ek[j][i]) * qerr[i];
      mag += std::abs(q[i]) * (std::abs(k[j][i]) + ek[j][i]);
    }
    shift = std::max(shift, scale * (d + 1e-5 * mag));
  }
  std::vector<double> bound(hd, 0.0);
  for (size_t c = 0; c < hd; ++c) {
    double vmax = 0, emax = 0;
    for (size_t j = 0; j < v.size(); ++j) {
      vmax = std::max(vmax, std::abs(v[j][c]) + ev[j][c]);
      emax = std::max(emax, ev[j][c]);
    }
    bound[c] = std::expm1(2 * shift) * vmax + emax + 1e-5 * vmax + 1e-7;
  }
  return bound;
}

// Exact attention of one query over rows [b, e) of a plane (ring slots), in double.
std::vector<double> ExactAttention(const float* q, size_t hd, float scale, const float* k, const float* v, size_t capacity,
                                   int64_t b, int64_t e) {
  std::vector<double> s;
  for (int64_t p = b; p < e; ++p) {
    const float* kr = k + static_cast<size_t>(p) % capacity * hd;
    double d = 0;
    for (size_t i = 0; i < hd; ++i) d += double(q[i]) * kr[i];
    s.push_back(d * scale);
  }
  std::vector<double> out(hd, 0.0);
  if (s.empty()) return out;
  const double m = *std::max_element(s.begin(), s.end());
  double sum = 0;
  for (double& x : s) sum += (x = std::exp(x - m));
  for (int64_t p = b; p < e; ++p) {
    const float* vr = v + static_cast<size_t>(p) % capacity * hd;
    for (size_t i = 0; i < hd; ++i) out[i] += s[static_cast<size_t>(p - b)] / sum * vr[i];
  }
  return out;
}

// Feeds tokens in chunks of at most `chunk` and returns the last chunk's logits (every position).
std::vector<float> Feed(const Gemma4& model, Sequence& seq, std::span<const int32_t> tokens) {
  ForwardOutput out;
  out.all_logits = true;
  model.Forward(seq, {tokens}, out);
  return out.logits;
}

}  // namespace

TEST_CASE("kv cache rows of Q8_0 and Q4_0 are ggml's blocks and read back within the format's rounding") {
  std::mt19937 rng(5);
  Gemma4Config cfg = testing::MakeRandomModel("SSF", 4, true, 3, 32, 4, 2, 64).cfg;
  for (Type t : kTypes) {
    CAPTURE(TypeName(t));
    KVCache cache(cfg, 40, 6, KVTypes{t, t == Type::Q4_0 ? Type::Q8_0 : t});
    LayerKV& l = cache.layer(0);  // a sliding ring of 4 + 6 - 1 = 9 slots
    REQUIRE(l.capacity == 9);
    CHECK(l.row_bytes(l.k) == KVRowBytes(t, 64));
    CHECK(KVRowBytes(Type::Q8_0, 64) == 2 * 34);
    CHECK(KVRowBytes(Type::Q4_0, 256) == 8 * 18);
    const size_t hd = l.head_dim;
    std::vector<std::vector<float>> keys, values;
    for (int64_t p = 0; p < 13; ++p) {  // wraps the ring: positions 4..12 stay
      keys.push_back(BlockScaledNormals(hd, rng));
      values.push_back(BlockScaledNormals(hd, rng));
      for (size_t h = 0; h < l.n_kv_heads; ++h) l.Store(h, p, keys.back().data(), values.back().data());
      l.MarkWritten(p, p + 1);
    }
    std::vector<float> k(hd), v(hd);
    for (int64_t p = 4; p < 13; ++p) {
      const size_t i = static_cast<size_t>(p);
      for (size_t h = 0; h < l.n_kv_heads; ++h) {
        CHECK(std::memcmp(l.RowBytes(l.k, h, p), Encode(l.k_type, keys[i], hd).data(), l.row_bytes(l.k)) == 0);
        CHECK(std::memcmp(l.RowBytes(l.v, h, p), Encode(l.v_type, values[i], hd).data(), l.row_bytes(l.v)) == 0);
        l.Load(h, p, k.data(), v.data());
        const std::vector<double> kb = RowBounds(l.k_type, keys[i].data(), hd), vb = RowBounds(l.v_type, values[i].data(), hd);
        for (size_t c = 0; c < hd; ++c) {
          CHECK(std::abs(double(k[c]) - keys[i][c]) <= kb[c]);
          CHECK(std::abs(double(v[c]) - values[i][c]) <= vb[c]);
        }
      }
    }
    CHECK_THROWS_WITH_AS(l.Load(0, 3, k.data(), v.data()), doctest::Contains("not all in the cache"), Error);
    std::vector<float> bad(hd, 1.0f);
    bad[5] = std::nanf("");
    if (IsBlock(t)) CHECK_THROWS_WITH_AS(l.Store(0, 13, bad.data(), bad.data()), doctest::Contains("not finite"), Error);
  }
  CHECK(KVBytesPerToken(cfg, Type::F32) == 3 * 2 * 2 * 64 * 4);  // 3 layers x 2 KV heads x (K + V) x 64 floats
  CHECK(KVBytesPerToken(cfg, {Type::Q8_0, Type::Q4_0}) == 3 * 2 * (2 * 34 + 2 * 18));
  CHECK(KVCacheTypesFromNames("", "q8_0", "") == KVTypes{Type::Q8_0, Type::F32});
  CHECK(KVCacheTypesFromNames("q4_0", "", "F16") == KVTypes{Type::Q4_0, Type::F16});
  CHECK_THROWS_WITH_AS(KVCacheTypesFromNames("", "", "q4_k"), doctest::Contains("--cache-type-v: 'q4_k' is not a cache type"), Error);
  CHECK_THROWS_WITH_AS(KVCache(testing::MakeRandomModel("SSF", 4, true, 3).cfg, 40, 6, Type::Q8_0),  // head_dim 8
                       doctest::Contains("not a whole number of Q8_0 blocks"), Error);
}

TEST_CASE("attention over every pair of cache types, on every target, within the format's bound of exact attention") {
  ThreadPool pool(3);
  std::mt19937 rng(11);
  struct Shape { size_t heads, kv_heads, head_dim, capacity; };
  double worst[4][4] = {};  // largest error / bound, by key type and value type
  for (const Shape sh : {Shape{4, 4, 32, 40}, Shape{16, 1, 64, 70}, Shape{8, 2, 256, 37}}) {
    const size_t hd = sh.head_dim, n_tok = 6, rows = sh.kv_heads * sh.capacity;
    const std::vector<float> q = BlockScaledNormals(n_tok * sh.heads * hd, rng);
    const std::vector<float> k = BlockScaledNormals(rows * hd, rng), v = BlockScaledNormals(rows * hd, rng);
    const float scale = 1.0f / std::sqrt(static_cast<float>(hd));
    // One key; an odd count; ranges that wrap the ring, the whole ring, an empty one, and the first two slots.
    const int64_t cap = static_cast<int64_t>(sh.capacity);
    const int64_t begin[] = {0, 3, 30, cap - 5, 10, 0}, end[] = {1, 20, 30 + cap - 1, 2 * cap - 5, 10, 2};
    for (size_t ki = 0; ki < 4; ++ki)
      for (size_t vi = 0; vi < 4; ++vi) {
        const Type kt = kTypes[ki], vt = kTypes[vi];
        CAPTURE(TypeName(kt));
        CAPTURE(TypeName(vt));
        CAPTURE(hd);
        const std::vector<std::byte> kc = Encode(kt, k, hd), vc = Encode(vt, v, hd);
        const std::vector<float> kd = Decode(kt, kc, rows, hd), vd = Decode(vt, vc, rows, hd);
        AttentionArgs a;
        a.q = q.data();
        a.n_tok = n_tok;
        a.n_heads = sh.heads;
        a.n_kv_heads = sh.kv_heads;
        a.head_dim = hd;
        a.k_type = kt;
        a.v_type = vt;
        a.k = kc.data();
        a.v = vc.data();
        a.capacity = sh.capacity;
        a.key_begin = begin;
        a.key_end = end;
        a.scale = scale;
        std::vector<float> on_cache(q.size());  // double-precision attention over the cache's dequantized rows
        a.out = on_cache.data();
        ref::Attention(a);
        // Bounds per output: from the unquantized values (the format's rounding and the query's), and from the
        // dequantized rows (the query's rounding alone).
        std::vector<std::vector<double>> exact(n_tok * sh.heads), bound(n_tok * sh.heads), bound_on_cache(n_tok * sh.heads);
        for (size_t t = 0; t < n_tok; ++t)
          for (size_t h = 0; h < sh.heads; ++h) {
            const size_t qi = t * sh.heads + h, kvh = h / (sh.heads / sh.kv_heads);
            const float* qr = q.data() + qi * hd;
            const size_t plane = kvh * sh.capacity * hd;
            exact[qi] = ExactAttention(qr, hd, scale, k.data() + plane, v.data() + plane, sh.capacity, begin[t], end[t]);
            std::vector<const float*> kr, vr, kdr, vdr;
            std::vector<std::vector<double>> ek, ev, zero;
            for (int64_t p = begin[t]; p < end[t]; ++p) {
              const size_t at = plane + static_cast<size_t>(p) % sh.capacity * hd;
              kr.push_back(k.data() + at);
              vr.push_back(v.data() + at);
              kdr.push_back(kd.data() + at);
              vdr.push_back(vd.data() + at);
              ek.push_back(RowBounds(kt, k.data() + at, hd));
              ev.push_back(RowBounds(vt, v.data() + at, hd));
              zero.emplace_back(hd, 0.0);
            }
            bound[qi] = OutputBound(qr, hd, scale, IsBlock(kt), kr, ek, vr, ev);
            bound_on_cache[qi] = OutputBound(qr, hd, scale, IsBlock(kt), kdr, zero, vdr, zero);
          }
        std::vector<float> got(q.size());
        for (const std::string& target : AvailableTargets()) {
          CAPTURE(target);
          ForceTarget(target);
          std::fill(got.begin(), got.end(), -7.0f);
          a.out = got.data();
          Attention(a, pool);
          size_t over = 0, over_on_cache = 0;
          for (size_t qi = 0; qi < n_tok * sh.heads; ++qi)
            for (size_t c = 0; c < hd; ++c) {
              const double g = got[qi * hd + c], e = std::abs(g - exact[qi][c]);
              over += e > bound[qi][c];
              over_on_cache += std::abs(g - on_cache[qi * hd + c]) > bound_on_cache[qi][c];
              worst[ki][vi] = std::max(worst[ki][vi], e / bound[qi][c]);
            }
          CHECK(over == 0);
          CHECK(over_on_cache == 0);
        }
        ForceTarget("");
      }
  }
  for (size_t ki = 0; ki < 4; ++ki)
    for (size_t vi = 0; vi < 4; ++vi)
      MESSAGE("keys " << TypeName(kTypes[ki]) << ", values " << TypeName(kTypes[vi]) << ": largest error / bound "
                      << worst[ki][vi]);
}

TEST_CASE("quantized caches: rollback, clone, save and restore, and batched passes continue exactly as without them") {
  ThreadPool pool(2);
  // Sliding rings of 4 + 6 - 1 = 9 slots, head_dim 32 (one block per row).
  testing::RandomModel rm = testing::MakeRandomModel("SSFSSF", 4, true, 21, 64, 4, 2, 32);
  const Gemma4 model(rm.cfg, rm.weights, pool);
  const int V = rm.cfg.vocab_size;
  const auto history = Tokens(30, V, 1), detour = Tokens(3, V, 2), next = Tokens(5, V, 3);
  const std::string path = (std::filesystem::temp_directory_path() / "g4_test_kv_quant.kv").string();
  for (const KVTypes types : {KVTypes{Type::Q8_0}, KVTypes{Type::Q4_0}, KVTypes{Type::Q8_0, Type::Q4_0}, KVTypes{Type::F16, Type::Q8_0}}) {
    CAPTURE(types.Name());
    Sequence straight = model.NewSequence(64, 6, types);
    Feed(model, straight, history);
    Sequence copy = straight.Clone();
    const std::vector<uint64_t> keys(history.begin(), history.end());
    SequenceFile::Save(straight, keys, path);
    const std::vector<float> want = Feed(model, straight, next);

    // Rollback: a detour of 3 tokens (the rings wrapped long before), dropped, then the same continuation.
    Sequence rolled = model.NewSequence(64, 6, types);
    Feed(model, rolled, history);
    Feed(model, rolled, detour);
    rolled.Rollback(30);
    CHECK(RelErr(Feed(model, rolled, next), want) == 0.0);
    CHECK(RelErr(Feed(model, copy, next), want) == 0.0);
    Sequence restored = model.NewSequence(64, 16, types);  // another ring size: rows are stored by position
    CHECK(SequenceFile::Restore(restored, path) == keys);
    CHECK(RelErr(Feed(model, restored, next), want) == 0.0);
    // A file of other cache types is refused, naming both.
    Sequence other = model.NewSequence(64, 6, KVTypes{Type::F32, Type::Q4_0});
    const std::string saved_as = "was saved with a cache of keys " + std::string(TypeName(types.k));
    CHECK_THROWS_WITH_AS(SequenceFile::Restore(other, path), doctest::Contains(saved_as.c_str()), Error);

    // Batched: three sequences in one pass (decode, a prefill chunk, a 3-token verification) equal each alone.
    const auto short_history = Tokens(7, V, 4), chunk = Tokens(6, V, 5);
    Sequence a1 = model.NewSequence(64, 6, types), b1 = model.NewSequence(64, 6, types), c1 = model.NewSequence(64, 6, types);
    Sequence a2 = model.NewSequence(64, 6, types), b2 = model.NewSequence(64, 6, types), c2 = model.NewSequence(64, 6, types);
    for (Sequence* s : {&a1, &a2}) Feed(model, *s, history);
    for (Sequence* s : {&c1, &c2}) Feed(model, *s, short_history);
    std::vector<ForwardOutput> alone(3), batched(3);
    for (ForwardOutput* o : {&alone[0], &alone[1], &alone[2], &batched[0], &batched[1], &batched[2]}) o->all_logits = true;
    model.Forward(a1, {std::span(next).first(1)}, alone[0]);
    model.Forward(b1, {chunk}, alone[1]);
    model.Forward(c1, {std::span(detour)}, alone[2]);
    model.ForwardBatch(std::vector<Gemma4::BatchEntry>{{&a2, {std::span(next).first(1)}, &batched[0]},
                                                        {&b2, {chunk}, &batched[1]},
                                                        {&c2, {std::span(detour)}, &batched[2]}});
    for (size_t i = 0; i < 3; ++i) {
      CAPTURE(i);
      CHECK(RelErr(batched[i].logits, alone[i].logits) < 1e-5);
    }
  }
  std::filesystem::remove(path);
}

TEST_CASE("quantized caches on the demo model: the batched scheduler answers as a session does") {
  const testing::DemoModel demo;
  GenerateParams greedy;
  greedy.sampling.temperature = 0;
  greedy.max_tokens = 24;
  const Prompt prompt = Session::RawPrompt(demo.lm, "Returns the", {});
  const Prompt other = Session::RawPrompt(demo.lm, "def add(a, b):", {});
  for (const KVTypes types : {KVTypes{Type::Q8_0}, KVTypes{Type::Q4_0}}) {
    CAPTURE(types.Name());
    SchedulerOptions opt;
    opt.slots = 2;
    opt.context = 256;
    opt.cache_type = types;
    Scheduler sched(demo.lm, opt);
    const uint64_t a = sched.Submit({prompt, greedy, {}}), b = sched.Submit({other, greedy, {}});
    sched.RunUntilIdle();
    const Completion ca = *sched.Take(a), cb = *sched.Take(b);
    Session sa(demo.lm, {.context = 256, .cache_type = types}), sb(demo.lm, {.context = 256, .cache_type = types});
    CHECK(ca.reply.tokens == sa.Run(prompt, {}, greedy).tokens);
    CHECK(cb.reply.tokens == sb.Run(other, {}, greedy).tokens);
  }
}

}  // namespace g4_test_kv_quant
