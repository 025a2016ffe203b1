// The per-target entry points that g4/impl.hpp's dispatch tables name, declared only. A translation unit that
// compiles the kernels of some targets (G4_IMPL_TARGETS) declares the other targets' entry points with this header;
// the units compiling those targets define them. Toggle-guarded: included once per target.
#if defined(G4_KERNELS_EXPORTS_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef G4_KERNELS_EXPORTS_INL_H_
#undef G4_KERNELS_EXPORTS_INL_H_
#else
#define G4_KERNELS_EXPORTS_INL_H_
#endif

#include <cstddef>
#include <cstdint>

#include <hwy/highway.h>

#include "g4/core/tensor.hpp"
#include "g4/core/thread_pool.hpp"
#include "g4/kernels/ops.hpp"

HWY_BEFORE_NAMESPACE();
namespace g4::HWY_NAMESPACE {

void GeluTanhGateValues(const float* gate, const float* up, size_t n, float* out);
void SoftmaxValues(float* x, size_t n);
void SoftcapValues(float* x, size_t n, float cap);
void AttentionHeads(const AttentionArgs& a, ThreadPool& pool);
void MatMulWeights(const TensorView& w, const float* x, size_t n_tok, float* y, ThreadPool& pool);
void RMSNormRows(const float* x, const float* w, float eps, size_t rows, size_t dim, float* y);
void LayerNormRows(const float* x, const float* w, const float* b, float eps, size_t rows, size_t dim, float* y);
void RopeNeoxHeads(float* x, size_t n_heads, size_t head_dim, const float* inv_freq, int64_t pos);

}  // namespace g4::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#endif  // toggle guard
