// Public declarations of the compute kernels. No SIMD here: the definitions live in g4/impl.hpp (included in
// exactly one translation unit of the program, after `#define G4_IMPLEMENTATION`), which dispatches at run
// time to the best Highway target of the CPU (per-target code in g4/kernels/*-inl.h).
//
// Conventions: activations are f32, row-major, rows = tokens. Weights are TensorViews of any weight type
// ([n_out, n_in], used in place from the file). Every function validates its shapes and throws g4::Error
// naming the tensor or argument on a mismatch.
#pragma once
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "g4/core/tensor.hpp"
#include "g4/core/thread_pool.hpp"

namespace g4 {

// y[t, o] = sum_i w[o, i] * x[t, i].   w: [n_out, n_in]; x: [n_tok, n_in]; y: [n_tok, n_out].
// Decode (n_tok small) is matrix-vector and memory-bound; prefill is matrix-matrix and compute-bound.
// Accuracy: F32/BF16/F16 weights meet f32 activations with f32 accumulation (|err| <= n_in eps sum|w x|).
// Block-quantized weights (Q8_0, Q4_0, Q4_K, Q6_K) meet activations rounded to int8 blocks of 32, as in
// ggml: each x[i] moves by at most amax(its block) / 254, so |err| <= sum_i |w_i| amax_i / 254 + the f32 term.
void MatMul(const TensorView& w, const float* x, size_t n_tok, float* y, ThreadPool& pool);

// Per row of `dim`: y = x * (mean(x^2) + eps)^-1/2 * w (w may be null: no weight). In place allowed.
void RMSNorm(const float* x, const float* w, float eps, size_t rows, size_t dim, float* y);

// Per row: y = (x - mean) / sqrt(var + eps) * w + b. In place allowed.
void LayerNorm(const float* x, const float* w, const float* b, float eps, size_t rows, size_t dim, float* y);

// out[i] = gelu_tanh(gate[i]) * up[i]. In place (out == gate) allowed.
void GeluTanhGate(const float* gate, const float* up, size_t n, float* out);

// x = softmax(x) over n values, in place, computed in f32 with max subtraction.
void Softmax(float* x, size_t n);

// NeoX ("rotate_half") RoPE on x [n_heads, head_dim] at position pos: dim j pairs with j + head_dim/2 and
// rotates by pos * inv_freq[j] (inv_freq has head_dim/2 entries; zeros leave a pair unrotated, which is how
// the proportional partial RoPE of full layers is expressed).
void RopeNeox(float* x, size_t n_heads, size_t head_dim, const float* inv_freq, int64_t pos);

// x[i] = cap * tanh(x[i] / cap).
void Softcap(float* x, size_t n, float cap);

// Grouped-query attention of n_tok queries over a KV cache, with online softmax (one pass over the keys).
// The cache stores, per KV head, `capacity` slots of head_dim floats; the key at absolute position p lives in
// slot p % capacity (a ring for sliding layers; capacity >= every position for full layers).
// Query t (absolute position q_pos[t]) attends to the positions [key_begin[t], key_end[t]) — one contiguous
// range expresses causal, sliding-window and image-block masks alike. The caller guarantees the slots of
// that range hold those positions.
// K and V are F32, or F16 (half the memory of a long context; values are RMS-normalised, so well inside F16's
// range). The query heads that share a KV head are processed together, so every key and value is read once per
// group of up to 8 heads rather than once per head.
struct AttentionArgs {
  const float* q = nullptr;  // [n_tok, n_heads, head_dim]
  size_t n_tok = 0, n_heads = 0, n_kv_heads = 0, head_dim = 0;
  Type k_type = Type::F32, v_type = Type::F32;  // F32, F16, Q8_0 or Q4_0 (rows of head_dim / 32 blocks)
  const void* k = nullptr;  // [n_kv_heads, capacity] rows of head_dim values of k_type
  const void* v = nullptr;  // [n_kv_heads, capacity] rows of head_dim values of v_type
  size_t capacity = 0;
  const int64_t* key_begin = nullptr;  // [n_tok]
  const int64_t* key_end = nullptr;    // [n_tok], exclusive
  float scale = 1.0f;
  float* out = nullptr;  // [n_tok, n_heads, head_dim]
};
void Attention(const AttentionArgs& args, ThreadPool& pool);

// ---- Dispatch control (tests and benchmarks) ---------------------------------------------------------------

// Highway targets compiled into this program and supported by this CPU, best first ("AVX3_SPR", "AVX3_DL",
// "AVX3", "AVX2", ..., "EMU128"/"SCALAR").
std::vector<std::string> AvailableTargets();
// Forces all kernels onto one target (a name from AvailableTargets()); an empty name restores the best.
void ForceTarget(const std::string& name);
// The target the next kernel call will use.
std::string CurrentTarget();
// Whether that target's quantized matmuls read TensorView::row_groups (the fused kernels of AVX2 and every better
// x86 target): models pack their quantized matrices at load time where they do (core/row_groups.hpp).
bool KernelsReadRowGroups();
// The CPU's AMX grant and the kernels' per-CPU choices (scale loads, one-token prefetch) are in cpu_tuning.hpp.

}  // namespace g4
