// The implementation of the compute kernels declared in g4/kernels/ops.hpp. Include it in exactly one
// translation unit of a program, after `#define G4_IMPLEMENTATION` (the doctest/stb pattern):
//
//   #define G4_IMPLEMENTATION
//   #include "g4/impl.hpp"
//
// Highway's foreach_target re-includes this file once per SIMD target (AVX3_DL, AVX3, AVX2, SSE4, SCALAR),
// compiling the toggle-guarded kernels/*-inl.h headers into namespaces g4::N_AVX2 etc. with the matching
// target attributes; no -march flag is needed anywhere. The public functions below validate their arguments
// (throwing g4::Error naming what is wrong) and then jump once per call through HWY_DYNAMIC_DISPATCH to the
// best target the CPU supports, or to the one ForceTarget chose.
#ifdef G4_IMPLEMENTATION

// A build may compile the kernels as several units, in parallel, that each include this file: one defines
// G4_IMPL_DISPATCH (the dispatch tables and the public functions; every target's kernels only declared), each other
// G4_IMPL_PART_BEST and G4_IMPL_PART_WORST, the range of targets it compiles (Highway numbers better targets lower;
// the part whose range holds the baseline target compiles it). examples/g4/impl/ is the g4 program's split.
#ifndef G4_IMPL_CONFIGURED  // the first inclusion (foreach_target re-includes this file once per target)
#define G4_IMPL_CONFIGURED
#ifdef G4_IMPL_PART_WORST
#ifdef HWY_DISABLED_TARGETS
#error "g4/impl.hpp: a part of a split build cannot also take HWY_DISABLED_TARGETS"
#endif
// Outside the range, apart from the baseline targets (Highway needs them in every unit): better, or worse.
#define HWY_DISABLED_TARGETS                                                                                       \
  (HWY_SSSE3 | ((((G4_IMPL_PART_BEST) - 1) | ~((G4_IMPL_PART_WORST) | ((G4_IMPL_PART_WORST) - 1))) & ~HWY_BASELINE_TARGETS))
#endif
// SSSE3 adds nothing over SSE4 for these kernels and would cost another full compile of them.
#ifndef HWY_DISABLED_TARGETS
#define HWY_DISABLED_TARGETS HWY_SSSE3
#endif
#endif  // G4_IMPL_CONFIGURED
// AVX3_DL (Ice Lake and later: VNNI, VBMI) is opt-in in Highway 1.0.3; the int8 matmul uses its VNNI dot.
#ifndef HWY_WANT_AVX3_DL
#define HWY_WANT_AVX3_DL
#endif

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "g4/impl.hpp"
#include <hwy/foreach_target.h>  // IWYU pragma: keep
#include <hwy/highway.h>

#if defined(G4_IMPL_DISPATCH)
#include "g4/kernels/exports-inl.h"
#elif !defined(G4_IMPL_PART_WORST) || (HWY_TARGET >= (G4_IMPL_PART_BEST) && HWY_TARGET <= (G4_IMPL_PART_WORST))
#include "g4/kernels/activations-inl.h"
#include "g4/kernels/attention-inl.h"
#include "g4/kernels/matmul-inl.h"
#include "g4/kernels/norms-inl.h"
#include "g4/kernels/rope-inl.h"
#endif

#if HWY_ONCE && !defined(G4_IMPL_PART_WORST)
#include <string>
#include <vector>

#include "g4/core/error.hpp"
#include "g4/kernels/ops.hpp"

namespace g4 {

HWY_EXPORT(MatMulWeights);
HWY_EXPORT(RMSNormRows);
HWY_EXPORT(LayerNormRows);
HWY_EXPORT(GeluTanhGateValues);
HWY_EXPORT(SoftmaxValues);
HWY_EXPORT(RopeNeoxHeads);
HWY_EXPORT(SoftcapValues);
HWY_EXPORT(AttentionHeads);

namespace detail {

template <typename Where>  // a name, or a callable building one (WhereText)
void RequireData(const void* p, size_t n, const Where& where) {
  if (p == nullptr && n > 0) Fail(WhereText(where), "null pointer for " + std::to_string(n) + " values");
}

// The mask of targets ForceTarget installed (0: none, the CPU's full set applies).
inline int64_t& ForcedTargetMask() {
  static int64_t mask = 0;
  return mask;
}

inline void ApplyTargetMask(int64_t mask) {
  hwy::SetSupportedTargetsForTest(mask);
  hwy::GetChosenTarget().Update(hwy::SupportedTargets());
}

}  // namespace detail

void MatMul(const TensorView& w, const float* x, size_t n_tok, float* y, ThreadPool& pool) {
  // Messages are built only on failure: building them eagerly (name, shape, numbers) cost ~450 ns of
  // allocations per call (a [16 x 256] F32 matmul: 600 -> 155 ns per call).
  const auto where = [&] { return "matmul " + (w.name.empty() ? std::string("weight") : w.name); };
  const auto info = FindTypeInfo(w.type);
  if (!info || !info->is_float_weight)
    Fail(where(), "type " + std::to_string(static_cast<uint32_t>(w.type)) + " is not a matmul weight type");
  if (w.shape.rank != 2) Fail(where(), "weight must be 2-D [n_out, n_in], got " + w.shape.str());
  if (w.shape[0] <= 0 || w.shape[1] <= 0) Fail(where(), "empty weight " + w.shape.str());
  const size_t n_in = static_cast<size_t>(w.cols());
  if (n_in % info->block_elems != 0)
    Fail(where(), "n_in " + std::to_string(n_in) + " is not a multiple of the " + std::string(info->name) +
                      " block size " + std::to_string(info->block_elems));
  const uint64_t need = CheckedMul(static_cast<uint64_t>(w.rows()), w.row_bytes(), where);
  if (w.data == nullptr || w.nbytes < need)
    Fail(where(), "weight data holds " + std::to_string(w.nbytes) + " bytes, shape " + w.shape.str() + " needs " +
                      std::to_string(need));
  detail::RequireData(x, n_tok, [&] { return where() + " input"; });
  detail::RequireData(y, n_tok, [&] { return where() + " output"; });
  if (n_tok == 0) return;
  HWY_DYNAMIC_DISPATCH(MatMulWeights)(w, x, n_tok, y, pool);
}

void RMSNorm(const float* x, const float* w, float eps, size_t rows, size_t dim, float* y) {
  detail::RequireData(x, rows * dim, "rmsnorm input");
  detail::RequireData(y, rows * dim, "rmsnorm output");
  HWY_DYNAMIC_DISPATCH(RMSNormRows)(x, w, eps, rows, dim, y);
}

void LayerNorm(const float* x, const float* w, const float* b, float eps, size_t rows, size_t dim, float* y) {
  detail::RequireData(x, rows * dim, "layernorm input");
  detail::RequireData(w, dim, "layernorm weight");
  detail::RequireData(b, dim, "layernorm bias");
  detail::RequireData(y, rows * dim, "layernorm output");
  HWY_DYNAMIC_DISPATCH(LayerNormRows)(x, w, b, eps, rows, dim, y);
}

void GeluTanhGate(const float* gate, const float* up, size_t n, float* out) {
  detail::RequireData(gate, n, "gelu gate");
  detail::RequireData(up, n, "gelu up");
  detail::RequireData(out, n, "gelu output");
  HWY_DYNAMIC_DISPATCH(GeluTanhGateValues)(gate, up, n, out);
}

void Softmax(float* x, size_t n) {
  detail::RequireData(x, n, "softmax input");
  if (n == 0) return;
  HWY_DYNAMIC_DISPATCH(SoftmaxValues)(x, n);
}

void RopeNeox(float* x, size_t n_heads, size_t head_dim, const float* inv_freq, int64_t pos) {
  Require(head_dim % 2 == 0, "rope", "head_dim " + std::to_string(head_dim) + " is odd");
  detail::RequireData(x, n_heads * head_dim, "rope input");
  detail::RequireData(inv_freq, head_dim / 2, "rope inv_freq");
  HWY_DYNAMIC_DISPATCH(RopeNeoxHeads)(x, n_heads, head_dim, inv_freq, pos);
}

void Softcap(float* x, size_t n, float cap) {
  Require(cap > 0.0f, "softcap", "cap must be positive, got " + std::to_string(cap));
  detail::RequireData(x, n, "softcap input");
  HWY_DYNAMIC_DISPATCH(SoftcapValues)(x, n, cap);
}

void Attention(const AttentionArgs& a, ThreadPool& pool) {
  Require(a.n_heads > 0 && a.n_kv_heads > 0 && a.n_heads % a.n_kv_heads == 0, "attention",
          "n_heads " + std::to_string(a.n_heads) + " is not a positive multiple of n_kv_heads " +
              std::to_string(a.n_kv_heads));
  Require(a.head_dim > 0, "attention", "head_dim is 0");
  Require(a.capacity > 0, "attention", "KV capacity is 0");
  for (Type t : {a.k_type, a.v_type}) {
    const bool blocks = t == Type::Q8_0 || t == Type::Q4_0;
    Require(t == Type::F32 || t == Type::F16 || blocks, "attention",
            "KV cache type " + std::string(TypeName(t)) + " (supported: F32, F16, Q8_0, Q4_0)");
    Require(!blocks || a.head_dim % 32 == 0, "attention",
            "head_dim " + std::to_string(a.head_dim) + " is not a whole number of " + std::string(TypeName(t)) + " blocks of 32");
  }
  if (a.n_tok == 0) return;
  detail::RequireData(a.q, 1, "attention q");
  detail::RequireData(a.k, 1, "attention k");
  detail::RequireData(a.v, 1, "attention v");
  detail::RequireData(a.out, 1, "attention out");
  detail::RequireData(a.key_begin, 1, "attention key_begin");
  detail::RequireData(a.key_end, 1, "attention key_end");
  for (size_t t = 0; t < a.n_tok; ++t) {
    const int64_t b = a.key_begin[t], e = a.key_end[t];
    Require(b >= 0 && b <= e && static_cast<uint64_t>(e - b) <= a.capacity, "attention",
            "query " + std::to_string(t) + ": key range [" + std::to_string(b) + ", " + std::to_string(e) +
                ") is not a range of at most capacity " + std::to_string(a.capacity) + " positions >= 0");
  }
  HWY_DYNAMIC_DISPATCH(AttentionHeads)(a, pool);
}

std::vector<std::string> AvailableTargets() {
  // Ask without the mock of a forced target, then put it back.
  const int64_t forced = detail::ForcedTargetMask();
  if (forced) detail::ApplyTargetMask(0);
  const int64_t supported = hwy::SupportedTargets();
  if (forced) detail::ApplyTargetMask(forced);
  std::vector<std::string> names;
  for (int64_t t = supported & HWY_TARGETS; t != 0; t &= t - 1) names.push_back(hwy::TargetName(t & -t));
  return names;
}

void ForceTarget(const std::string& name) {
  int64_t mask = 0;
  if (!name.empty()) {
    for (int64_t t = HWY_TARGETS; t != 0; t &= t - 1)
      if (name == hwy::TargetName(t & -t)) mask = t & -t;
    Require(mask != 0, "target", "unknown or not compiled SIMD target '" + name + "'");
    detail::ApplyTargetMask(0);
    Require((hwy::SupportedTargets() & mask) != 0, "target", "this CPU does not support target '" + name + "'");
  }
  detail::ForcedTargetMask() = mask;
  detail::ApplyTargetMask(mask);
}

std::string CurrentTarget() {
  const int64_t t = hwy::SupportedTargets() & HWY_TARGETS;
  return hwy::TargetName(t & -t);
}

bool KernelsReadRowGroups() {
  const int64_t t = hwy::SupportedTargets() & HWY_TARGETS;
  // Highway numbers x86 targets best first, so this holds for AVX2 and every newer one (AVX3_ZEN4, AVX3_SPR, ...),
  // the same test as the kernels' `HWY_TARGET <= HWY_AVX2`.
  return HWY_ARCH_X86 && (t & -t) <= HWY_AVX2;
}

}  // namespace g4
#include "g4/media/stb_image_impl.hpp"  // stb_image's code, for g4/media/image.hpp
#endif  // HWY_ONCE
#endif  // G4_IMPLEMENTATION
