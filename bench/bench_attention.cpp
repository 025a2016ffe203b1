// Decode attention alone (g4::Attention, one token) on the Gemma 4 12B's layer shapes, per KV cache type: a full
// layer (16 query heads on 1 KV head of 512) at each context, and a sliding layer (16 query heads on 8 KV heads of
// 256) over its 1024-token window. The cache holds random rows of realistic scale in ggml's encoding of each type,
// several layers' worth so that it is read from memory as in the model. Prints ms per call (best and median of
// --repetitions), the median's GB/s of cache read, and the median process CPU time per call (all threads): on a
// shared machine wall times follow the other processes' load, CPU time much less so. Nothing is asserted.
//
//   bench_attention [--threads 2] [--contexts 4096,32768] [--types f32,f16,q8_0,q4_0] [--repetitions 20]
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "g4/core/quantize.hpp"
#include "g4/core/thread_pool.hpp"
#include "g4/kernels/ops.hpp"
#include "g4/model/kv_cache.hpp"

using namespace g4;

namespace {

std::vector<std::string> Split(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  for (std::string x; std::getline(ss, x, ',');) out.push_back(x);
  return out;
}

struct Row {
  double best_ms, median_ms, gbps, cpu_ms;
};

double CpuMs() {
  timespec t;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
  return static_cast<double>(t.tv_sec) * 1e3 + static_cast<double>(t.tv_nsec) * 1e-6;
}

// n_copies planes of [kv_heads, context] rows in `type`, attended to one after another (a layer each).
Row Measure(ThreadPool& pool, Type type, size_t heads, size_t kv_heads, size_t hd, size_t context, size_t reps) {
  const size_t row_bytes = KVRowBytes(type, hd), plane = kv_heads * context * row_bytes;
  const size_t n_copies = std::max<size_t>(1, (512u << 20) / (2 * plane));  // > the last-level cache
  // 1021 random rows, encoded once and repeated (a prime count, so a key and its value differ).
  std::mt19937 rng(1);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  const size_t n_pool = 1021;
  std::vector<float> values(n_pool * hd);
  for (float& x : values) x = nd(rng);
  std::vector<std::byte> pool_rows(n_pool * row_bytes);
  for (size_t r = 0; r < n_pool; ++r) QuantizeRow(type, values.data() + r * hd, hd, pool_rows.data() + r * row_bytes);
  std::vector<std::byte> k(n_copies * plane), v(n_copies * plane);
  for (std::vector<std::byte>* buf : {&k, &v})
    for (size_t r = 0; r < buf->size() / row_bytes; ++r)
      std::copy_n(pool_rows.data() + (r + (buf == &v ? 7 : 0)) % n_pool * row_bytes, row_bytes, buf->data() + r * row_bytes);
  std::vector<float> q(heads * hd), out(heads * hd);
  for (float& x : q) x = nd(rng);
  const int64_t begin = 0, end = static_cast<int64_t>(context);
  AttentionArgs a;
  a.q = q.data();
  a.n_tok = 1;
  a.n_heads = heads;
  a.n_kv_heads = kv_heads;
  a.head_dim = hd;
  a.k_type = a.v_type = type;
  a.capacity = context;
  a.key_begin = &begin;
  a.key_end = &end;
  a.scale = 1.0f / std::sqrt(static_cast<float>(hd));
  a.out = out.data();
  std::vector<double> ms, cpu;
  for (size_t r = 0; r < reps + 1; ++r) {
    const size_t c = r % n_copies;
    a.k = k.data() + c * plane;
    a.v = v.data() + c * plane;
    const auto t0 = std::chrono::steady_clock::now();
    const double c0 = CpuMs();
    Attention(a, pool);
    const double dt = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    if (r > 0) ms.push_back(dt), cpu.push_back(CpuMs() - c0);  // the first call warms the pool
  }
  std::sort(ms.begin(), ms.end());
  std::sort(cpu.begin(), cpu.end());
  return {ms.front(), ms[ms.size() / 2], 2.0 * static_cast<double>(plane) / (ms[ms.size() / 2] * 1e6), cpu[cpu.size() / 2]};
}

}  // namespace

int main(int argc, char** argv) try {
  size_t threads = 2, reps = 20;
  std::string contexts = "4096,32768", types = "f32,f16,q8_0,q4_0";
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string a = argv[i], v = argv[i + 1];
    if (a == "--threads") threads = std::stoul(v);
    else if (a == "--contexts") contexts = v;
    else if (a == "--types") types = v;
    else if (a == "--repetitions") reps = std::stoul(v);
    else Fail(a, "unknown option (see the top of bench/bench_attention.cpp)");
  }
  ThreadPool pool(threads);
  std::printf("decode attention, 1 token, %zu threads, target %s: ms per call (best / median), GB/s, CPU ms (median)\n",
              threads, CurrentTarget().c_str());
  for (const std::string& name : Split(types)) {
    const Type t = KVCacheTypeFromName(name, "--types");
    const Row s = Measure(pool, t, 16, 8, 256, 1024, reps);
    std::printf("%-5s sliding 1024 (8 x 256): %7.3f / %7.3f ms %6.1f GB/s %8.3f cpu ms\n", name.c_str(), s.best_ms, s.median_ms, s.gbps, s.cpu_ms);
    for (const std::string& c : Split(contexts)) {
      const Row f = Measure(pool, t, 16, 1, 512, std::stoul(c), reps);
      std::printf("%-5s full %6s (1 x 512):   %7.3f / %7.3f ms %6.1f GB/s %8.3f cpu ms\n", name.c_str(), c.c_str(), f.best_ms, f.median_ms, f.gbps,
                  f.cpu_ms);
    }
  }
} catch (const Error& e) {
  std::fprintf(stderr, "error: %s\n", e.what());
  return 1;
}
