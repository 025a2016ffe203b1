// What the kernels ask of the CPU beyond Highway's target (AMX-INT8 and the kernel's grant of its tile state, the
// AMD family) and the per-CPU choices that follow from it, each with a setter that tests and benchmarks use to force
// either way. Measured reasons for each default: docs/performance.md ("Per-CPU kernel choices").
#pragma once
#include <atomic>

#if defined(__x86_64__)
#include <cpuid.h>
#include <sys/syscall.h>
#include <unistd.h>
#endif

namespace g4 {

// AMX tiles are used where the CPU has them and the kernel grants them (default). AllowAmx(false) makes the
// quantized matmuls take their AVX-512 VNNI paths instead, as on CPUs without AMX (tests, benchmarks).
namespace detail {
inline std::atomic<bool> amx_allowed{true};
}
inline void AllowAmx(bool allowed) { detail::amx_allowed.store(allowed, std::memory_order_relaxed); }

// AMX-TILE and AMX-INT8 in CPUID, and the kernel grants this process the tile data state (asked once).
inline bool AmxGranted() {
#if defined(__x86_64__)
  static const bool granted = [] {
    unsigned a, b, c, d;
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return false;
    if (!((d >> 24) & 1) || !((d >> 25) & 1)) return false;
    constexpr long kArchReqXcompPerm = 0x1023, kXfeatureXtileData = 18;
    return syscall(SYS_arch_prctl, kArchReqXcompPerm, kXfeatureXtileData) == 0;
  }();
  return granted;
#else
  return false;
#endif
}

// The CPU family (base plus extended, CPUID leaf 1) where the vendor is AMD ("AuthenticAMD"), else 0: 0x19 is Zen 3
// and Zen 4, 0x1A Zen 5.
inline unsigned AmdCpuFamily() {
#if defined(__x86_64__)
  static const unsigned family = [] {
    unsigned a, b, c, d;
    if (!__get_cpuid(0, &a, &b, &c, &d) || b != 0x68747541 || d != 0x69746E65 || c != 0x444D4163) return 0u;
    if (!__get_cpuid(1, &a, &b, &c, &d)) return 0u;
    const unsigned base = (a >> 8) & 0xF;
    return base == 0xF ? base + ((a >> 20) & 0xFF) : base;
  }();
  return family;
#else
  return 0;
#endif
}

// Whether the AVX3_DL quantized matmuls take AMX tiles for 16 tokens or more: the CPU has them, the kernel grants
// them, and AllowAmx has not turned them off. AMX reads the original matrices, not their row-group copies.
inline bool AmxUsable() { return detail::amx_allowed.load(std::memory_order_relaxed) && AmxGranted(); }

// How the few-token quantized matmul (AVX3_DL) reads a group's 16 per-row f16 scales: one vector gather, or 16
// scalar loads merged in registers. kAuto takes the gather on Intel and the scalar loads on AMD, whose Zen cores
// run vpgatherdd as microcode (about 20% per block on Zen 4).
enum class ScaleLoads { kAuto, kGather, kScalar };
namespace detail {
inline std::atomic<ScaleLoads> scale_loads{ScaleLoads::kAuto};
}
inline void SetScaleLoads(ScaleLoads how) { detail::scale_loads.store(how, std::memory_order_relaxed); }

// How one token's quantized matmul from row groups (decode; matmul_maddubs-inl.h) gets the bytes ahead of its
// stream into L2: prefetched in software a fixed distance ahead, as more tokens always do, or left to the hardware
// prefetcher. kAuto leaves them to the hardware on AMD family 0x19, whose prefetcher follows the stream (software
// prefetches cost it up to 10 points of the bandwidth bound), and prefetches elsewhere (without them Zen 5's Q4_K
// reads Q4_K at under half its bound).
enum class OneTokenPrefetch { kAuto, kSoftware, kHardware };
namespace detail {
inline std::atomic<OneTokenPrefetch> one_token_prefetch{OneTokenPrefetch::kAuto};
}
inline void SetOneTokenPrefetch(OneTokenPrefetch how) { detail::one_token_prefetch.store(how, std::memory_order_relaxed); }
inline bool OneTokenPrefetchInSoftware() {
  const OneTokenPrefetch how = detail::one_token_prefetch.load(std::memory_order_relaxed);
  return how == OneTokenPrefetch::kSoftware || (how == OneTokenPrefetch::kAuto && AmdCpuFamily() != 0x19);
}

}  // namespace g4
