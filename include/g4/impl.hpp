// TEMPORARY implementation header: forwards every kernel to the scalar reference until the Highway dispatch
// (issue 4) replaces this file. Include in exactly one translation unit after #define G4_IMPLEMENTATION.
#pragma once
#ifdef G4_IMPLEMENTATION
#include "g4/kernels/ops.hpp"
#include "g4/kernels/reference.hpp"

namespace g4 {
void MatMul(const TensorView& w, const float* x, size_t n_tok, float* y, ThreadPool&) { ref::MatMul(w, x, n_tok, y); }
void RMSNorm(const float* x, const float* w, float eps, size_t rows, size_t dim, float* y) { ref::RMSNorm(x, w, eps, rows, dim, y); }
void LayerNorm(const float* x, const float* w, const float* b, float eps, size_t rows, size_t dim, float* y) { ref::LayerNorm(x, w, b, eps, rows, dim, y); }
void GeluTanhGate(const float* g, const float* u, size_t n, float* o) { ref::GeluTanhGate(g, u, n, o); }
void Softmax(float* x, size_t n) { ref::Softmax(x, n); }
void RopeNeox(float* x, size_t nh, size_t hd, const float* f, int64_t pos) { ref::RopeNeox(x, nh, hd, f, pos); }
void Softcap(float* x, size_t n, float cap) { ref::Softcap(x, n, cap); }
void Attention(const AttentionArgs& a, ThreadPool&) { ref::Attention(a); }
std::vector<std::string> AvailableTargets() { return {"REFERENCE"}; }
void ForceTarget(const std::string&) {}
std::string CurrentTarget() { return "REFERENCE"; }
}  // namespace g4
#endif
