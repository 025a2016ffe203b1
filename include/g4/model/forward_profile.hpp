// Where one forward pass spends its time, by part (g4 bench's decode breakdown). Off unless
// ForwardOutput::profile points at one: then each timed part costs two clock reads (~40 ns; a 12B decode step has
// ~400 parts), and everything between the timed parts is timed too, as `rest`, so the parts add up to the pass.
#pragma once
#include <chrono>
#include <map>

#include "g4/core/tensor.hpp"
#include "g4/kernels/ops.hpp"

namespace g4 {

struct ForwardProfile {
  using Clock = std::chrono::steady_clock;
  std::map<Type, double> matmul_s;  // the layers' projections by weight type (seconds, summed over passes)
  double attention_s = 0, head_s = 0, softcap_s = 0, rest_s = 0;

  // Called where a pass begins.
  void Start() { last_ = Clock::now(); }
  // Opens a timed part: the time since the last part closed goes to rest.
  void Open() { rest_s += Lap(); }
  // Closes the open part, adding its time to `slot`.
  void Close(double& slot) { slot += Lap(); }
  double total_s() const {
    double s = attention_s + head_s + softcap_s + rest_s;
    for (const auto& [type, t] : matmul_s) s += t;
    return s;
  }

 private:
  double Lap() {
    const Clock::time_point t = Clock::now();
    const double s = std::chrono::duration<double>(t - last_).count();
    last_ = t;
    return s;
  }
  Clock::time_point last_ = Clock::now();
};

// MatMul, timed under its weight type when there is a profile.
inline void ProfiledMatMul(ForwardProfile* p, const TensorView& w, const float* x, size_t n_tok, float* y, ThreadPool& pool) {
  if (p) p->Open();
  MatMul(w, x, n_tok, y, pool);
  if (p) p->Close(p->matmul_s[w.type]);
}

}  // namespace g4
