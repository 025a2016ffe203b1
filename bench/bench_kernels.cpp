// Matmul benchmark on the Gemma 4 12B shapes: for each weight type and token count, time, GB/s of weights
// streamed and GFLOP/s; beside them the machine's read bandwidth (read_bandwidth.hpp's probe), and Eigen and xsimd f32
// baselines on the same shapes and threads. Quantized types also run from row-group copies (impl g4-rg) where the
// kernels read them, as the model does there. Prints a table; --json FILE writes the same rows.
//
//   bench_kernels [--shapes full|small] [--filter NAME] [--types F32,BF16,...] [--n 1,4,8,512]
//                 [--threads N] [--max-gb G] [--target NAME] [--json FILE]
//
// --target runs the kernels of one Highway target (as g4::ForceTarget: AVX2 on an AVX-512 machine, say).
// Weights are cycled through enough copies to exceed the last-level cache (480 MB here), so decode numbers are
// DRAM numbers as in the real model. GB/s, %bw and GFLOP/s come from a row's best call, %bw against the best pass
// of the bandwidth probe run between the row's calls. Beside wall time, each row gives the process CPU time per thread
// (cpu_ms, cpuGFLOP): on a shared machine that is what the kernel costs when it has the cores to itself.
// Speed goals are reported, never asserted.
#include <Eigen/Core>
#include <xsimd/xsimd.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <ctime>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "g4/core/quantize.hpp"
#include "g4/core/row_groups.hpp"
#include "g4/core/tensor.hpp"
#include "g4/kernels/ops.hpp"
#include "support/read_bandwidth.hpp"

namespace {

using Clock = std::chrono::steady_clock;

struct ShapeCase {
  std::string name;
  int64_t n_out, n_in;
};

const std::vector<ShapeCase> kFullShapes = {
    {"ffn_gate_up", 15360, 3840}, {"ffn_down", 3840, 15360}, {"attn_q_sliding", 4096, 3840},
    {"attn_q_full", 8192, 3840},  {"attn_kv", 2048, 3840},   {"attn_o_sliding", 3840, 4096},
    {"attn_o_full", 3840, 8192},  {"output_head", 262144, 3840},
};
const std::vector<ShapeCase> kSmallShapes = {{"attn_kv", 2048, 3840}, {"attn_o_sliding", 3840, 4096}};

struct Options {
  std::vector<ShapeCase> shapes = kFullShapes;
  std::string filter;
  std::vector<g4::Type> types = {g4::Type::F32, g4::Type::BF16, g4::Type::F16, g4::Type::Q8_0,
                                 g4::Type::Q4_0, g4::Type::Q4_K, g4::Type::Q6_K};
  std::vector<size_t> ns = {1, 4, 8, 512};
  size_t threads = 2;
  double max_gb = 3.0;  // skip a weight whose copies would exceed this
  std::string json;
};

std::vector<std::string> Split(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  for (std::string item; std::getline(ss, item, ',');) out.push_back(item);
  return out;
}

Options ParseArgs(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&]() -> std::string {
      g4::Require(i + 1 < argc, "bench_kernels", a + " needs a value");
      return argv[++i];
    };
    if (a == "--shapes") {
      const std::string v = value();
      g4::Require(v == "full" || v == "small", "--shapes", "full or small, got " + v);
      o.shapes = v == "full" ? kFullShapes : kSmallShapes;
    } else if (a == "--filter") {
      o.filter = value();
    } else if (a == "--types") {
      o.types.clear();
      for (const auto& t : Split(value())) {
        const auto type = g4::TypeFromName(t);
        g4::Require(type && g4::GetTypeInfo(*type).is_float_weight, "--types", "not a weight type: " + t);
        o.types.push_back(*type);
      }
    } else if (a == "--n") {
      o.ns.clear();
      for (const auto& n : Split(value())) o.ns.push_back(std::stoul(n));
    } else if (a == "--threads") {
      o.threads = std::stoul(value());
    } else if (a == "--max-gb") {
      o.max_gb = std::stod(value());
    } else if (a == "--target") {
      g4::ForceTarget(value());
    } else if (a == "--json") {
      o.json = value();
    } else {
      g4::Fail("bench_kernels", "unknown argument " + a);
    }
  }
  return o;
}

double CpuSeconds() {
  timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + 1e-9 * static_cast<double>(ts.tv_nsec);
}

// One call's wall seconds, median and best, its median process CPU seconds per thread (on a machine shared with
// other work, what the kernel would take alone; on a quiet machine the two agree), and the best pass of the
// bandwidth probe, in bytes per second.
struct Timing {
  double wall, best, cpu, probe;
};

// Runs f for ~0.3 s (after one warm-up) in 3 rounds, each after one pass of the bandwidth probe: a burst of the
// host's other work then slows calls and probe passes alike instead of only one of them.
template <typename F>
Timing TimeIt(F&& f, size_t threads, g4::bench::ReadBandwidthProbe& probe) {
  f();
  std::vector<double> wall, cpu;
  double probe_rate = 0;
  for (int round = 0; round < 3; ++round) {
    probe_rate = std::max(probe_rate, probe.BestRate(1));
    const auto start = Clock::now();
    const size_t calls0 = wall.size();
    while (wall.size() == calls0 ||
           (std::chrono::duration<double>(Clock::now() - start).count() < 0.1 && wall.size() - calls0 < 70)) {
      const auto t0 = Clock::now();
      const double c0 = CpuSeconds();
      f();
      cpu.push_back((CpuSeconds() - c0) / static_cast<double>(threads));
      wall.push_back(std::chrono::duration<double>(Clock::now() - t0).count());
    }
  }
  auto median = [](std::vector<double>& v) {
    std::nth_element(v.begin(), v.begin() + v.size() / 2, v.end());
    return v[v.size() / 2];
  };
  const double best = *std::min_element(wall.begin(), wall.end());
  return {median(wall), best, median(cpu), probe_rate};
}

// A weight of `type`, [n_out, n_in], in `copies` copies: a few hundred distinct quantized random rows repeated.
std::vector<g4::Tensor> MakeWeights(g4::Type type, const ShapeCase& s, size_t copies) {
  const size_t distinct = 64;
  std::mt19937 rng(7);
  std::normal_distribution<float> g(0.0f, 0.02f);
  std::vector<float> rows(distinct * static_cast<size_t>(s.n_in));
  for (float& v : rows) v = g(rng);
  g4::Tensor proto("proto", type, {static_cast<int64_t>(distinct), s.n_in});
  for (size_t r = 0; r < distinct; ++r)
    g4::QuantizeRow(type, rows.data() + r * s.n_in, static_cast<size_t>(s.n_in), proto.data() + r * proto.view().row_bytes());
  std::vector<g4::Tensor> out;
  for (size_t c = 0; c < copies; ++c) {
    g4::Tensor t(s.name, type, {s.n_out, s.n_in});
    const size_t row_bytes = t.view().row_bytes();
    for (int64_t r = 0; r < s.n_out; ++r)
      std::memcpy(t.data() + r * row_bytes, proto.view().row(static_cast<int64_t>((r + c) % distinct)), row_bytes);
    out.push_back(std::move(t));
  }
  return out;
}

// Baseline f32 GEMM/GEMV with xsimd: one dot product per (token, row), rows split over the pool.
void XsimdMatMul(const float* w, int64_t n_out, int64_t n_in, const float* x, size_t n_tok, float* y,
                 g4::ThreadPool& pool) {
  using batch = xsimd::batch<float>;
  pool.ParallelFor(static_cast<size_t>(n_out), 16, [&](size_t b, size_t e, size_t) {
    for (size_t t = 0; t < n_tok; ++t)
      for (size_t o = b; o < e; ++o) {
        const float* wr = w + o * n_in;
        const float* xt = x + t * n_in;
        batch acc(0.0f);
        int64_t i = 0;
        for (; i + static_cast<int64_t>(batch::size) <= n_in; i += batch::size)
          acc = xsimd::fma(batch::load_unaligned(wr + i), batch::load_unaligned(xt + i), acc);
        // Summed through memory: xsimd 8 (Debian 12) names the reduction hadd, xsimd 13 (Debian 13) reduce_add.
        alignas(64) float lanes[batch::size];
        acc.store_aligned(lanes);
        float s = 0.0f;
        for (float lane : lanes) s += lane;
        for (; i < n_in; ++i) s += wr[i] * xt[i];
        y[t * n_out + o] = s;
      }
  });
}

// Baseline f32 with Eigen: y_block = X * W_block^T per thread's block of rows.
void EigenMatMul(const float* w, int64_t n_out, int64_t n_in, const float* x, size_t n_tok, float* y,
                 g4::ThreadPool& pool) {
  using RowMajor = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
  const Eigen::Map<const RowMajor> X(x, static_cast<Eigen::Index>(n_tok), n_in);
  pool.ParallelFor(static_cast<size_t>(n_out), 64, [&](size_t b, size_t e, size_t) {
    const Eigen::Map<const RowMajor> W(w + b * n_in, static_cast<Eigen::Index>(e - b), n_in);
    Eigen::Map<RowMajor, 0, Eigen::OuterStride<>> Y(y + b, static_cast<Eigen::Index>(n_tok),
                                                     static_cast<Eigen::Index>(e - b), Eigen::OuterStride<>(n_out));
    Y.noalias() = X * W.transpose();
  });
}

struct Row {
  std::string shape, impl, type;
  size_t n;
  double ms, best_ms, gbps, bw, gflops, cpu_ms, cpu_gflops;  // bw: the probe's best pass between the row's calls
};

}  // namespace

int main(int argc, char** argv) {
  try {
    const Options opt = ParseArgs(argc, argv);
    g4::ThreadPool pool(opt.threads);
    // The host's bandwidth drifts (other tenants), so the probe runs again between a row's calls (TimeIt), and a
    // row's GB/s, %bw and GFLOP/s compare its best call with the probe's best pass: the same statistic on both
    // sides. ms is the median call.
    g4::bench::ReadBandwidthProbe probe(pool, size_t{512} << 20);
    std::printf("target %s, %zu threads, read bandwidth %.1f GB/s at the start (probed again per row: bw)\n",
                g4::CurrentTarget().c_str(), opt.threads, probe.BestRate(5) / 1e9);
    std::printf("%-16s %-6s %-5s %4s %9s %9s %7s %5s %5s %9s %9s %9s\n", "shape", "impl", "type", "n", "ms", "best_ms",
                "GB/s", "bw", "%bw", "GFLOP/s", "cpu_ms", "cpuGFLOP");
    std::vector<Row> rows;
    // Times one call of f beside the probe, and prints and keeps the row.
    auto measure = [&](const ShapeCase& s, const std::string& impl, const std::string& type, size_t n, double bytes,
                       auto&& f) {
      const Timing t = TimeIt(f, opt.threads, probe);
      const double bw = t.probe / 1e9;
      const double flop = 2.0 * static_cast<double>(s.n_out) * static_cast<double>(s.n_in) * static_cast<double>(n);
      const Row r{s.name, impl, type, n, t.wall * 1e3, t.best * 1e3, bytes / t.best / 1e9, bw, flop / t.best / 1e9,
                  t.cpu * 1e3, flop / t.cpu / 1e9};
      std::printf("%-16s %-6s %-5s %4zu %9.3f %9.3f %7.1f %5.1f %4.0f%% %9.1f %9.3f %9.1f\n", r.shape.c_str(),
                  r.impl.c_str(), r.type.c_str(), n, r.ms, r.best_ms, r.gbps, r.bw, 100 * r.gbps / r.bw, r.gflops,
                  r.cpu_ms, r.cpu_gflops);
      std::fflush(stdout);
      rows.push_back(r);
    };
    const size_t llc_bytes = size_t{2} << 30;  // cycle at least this much weight data (4x the LLC)
    for (const ShapeCase& s : opt.shapes) {
      if (!opt.filter.empty() && s.name.find(opt.filter) == std::string::npos) continue;
      const size_t max_n = *std::max_element(opt.ns.begin(), opt.ns.end());
      std::vector<float> x(max_n * s.n_in), y(max_n * s.n_out);
      std::mt19937 rng(1);
      std::normal_distribution<float> g(0.0f, 1.0f);
      for (float& v : x) v = g(rng);
      for (g4::Type type : opt.types) {
        const double bytes = static_cast<double>(g4::TensorBytes(type, {s.n_out, s.n_in}, s.name));
        // One copy of a weight over 1 GB is already twice the LLC.
        const size_t copies = bytes > 1e9 ? 1 : static_cast<size_t>(std::ceil(static_cast<double>(llc_bytes) / bytes));
        if (bytes * static_cast<double>(copies) > opt.max_gb * 1e9) {
          std::printf("%-16s %-10s %-5s skipped: %.1f GB over --max-gb\n", s.name.c_str(), "g4",
                      std::string(g4::TypeName(type)).c_str(), bytes * copies / 1e9);
          continue;
        }
        const std::vector<g4::Tensor> w = MakeWeights(type, s, copies);
        const std::string type_name(g4::TypeName(type));
        for (size_t n : opt.ns) {
          size_t c = 0;
          measure(s, "g4", type_name, n, bytes, [&] { g4::MatMul(w[c++ % copies].view(), x.data(), n, y.data(), pool); });
        }
        if (g4::HasRowGroupLayout(type) && g4::KernelsReadRowGroups()) {  // the layout Gemma4 runs on here
          std::vector<g4::RowGroupWeights> grouped;
          for (const g4::Tensor& t : w) grouped.emplace_back(t.view(), pool);
          for (size_t n : opt.ns) {
            size_t c = 0;
            measure(s, "g4-rg", type_name, n, bytes,
                    [&] { g4::MatMul(grouped[c++ % copies].view(), x.data(), n, y.data(), pool); });
          }
        }
        if (type == g4::Type::F32) {
          for (size_t n : opt.ns) {
            size_t c = 0;
            measure(s, "eigen", "F32", n, bytes, [&] {
              const g4::TensorView& v = w[c++ % copies].view();
              EigenMatMul(reinterpret_cast<const float*>(v.data), s.n_out, s.n_in, x.data(), n, y.data(), pool);
            });
          }
          for (size_t n : opt.ns) {
            if (n > 8) continue;  // a dot product per output: no blocking, hopeless at prefill sizes
            size_t c = 0;
            measure(s, "xsimd", "F32", n, bytes, [&] {
              const g4::TensorView& v = w[c++ % copies].view();
              XsimdMatMul(reinterpret_cast<const float*>(v.data), s.n_out, s.n_in, x.data(), n, y.data(), pool);
            });
          }
        }
      }
    }
    if (!opt.json.empty()) {
      std::ofstream f(opt.json);
      g4::Require(f.good(), opt.json, "cannot write");
      f << "{\n  \"target\": \"" << g4::CurrentTarget() << "\",\n  \"threads\": " << opt.threads
        << ",\n  \"results\": [\n";
      for (size_t i = 0; i < rows.size(); ++i) {
        const Row& r = rows[i];
        f << "    {\"shape\": \"" << r.shape << "\", \"impl\": \"" << r.impl << "\", \"type\": \"" << r.type
          << "\", \"n\": " << r.n << ", \"ms\": " << r.ms << ", \"gbps\": " << r.gbps
          << ", \"read_bandwidth_gbps\": " << r.bw << ", \"pct_bandwidth\": " << 100 * r.gbps / r.bw
          << ", \"gflops\": " << r.gflops
          << ", \"cpu_ms\": " << r.cpu_ms << ", \"cpu_gflops\": " << r.cpu_gflops << "}"
          << (i + 1 < rows.size() ? ",\n" : "\n");
      }
      f << "  ]\n}\n";
    }
  } catch (const g4::Error& e) {
    std::fprintf(stderr, "bench_kernels: %s\n", e.what());
    return 1;
  }
  return 0;
}
