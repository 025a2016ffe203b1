// Limits that must fail cleanly (a g4::Error naming the problem, nothing allocated for it) and that other suites do not
// already cover. Covered elsewhere: a context beyond the model's maximum and a prompt longer than the context
// (test_model "limits: context, token ids, positions"), audio beyond 30 s (test_audio), a tensor whose declared bytes
// exceed the file (test_file_formats: safetensors "past_eof" / GGUF "past_eof"), GGUF string and array counts beyond
// the file (test_file_formats "array_2_40", "string_array_2_40", "truncated_*"), and --threads 0 / 10000 of the CLI
// (test_cli.sh).
#include <doctest/doctest.h>

#include <algorithm>
#include <cstddef>
#include <span>
#include <string>
#include <thread>

#include "g4/core/error.hpp"
#include "g4/core/thread_pool.hpp"
#include "g4/media/image.hpp"
#include "g4/media/image_patches.hpp"
#include "support/errors.hpp"

namespace g4_test_limits {  // this suite's names, apart from the others' in a unity build (tests/meson.build)

using namespace g4;
using g4::testing::ErrorOf;

namespace {

// A binary PPM whose header declares width x height but carries a single pixel: the size check must refuse it
// from the header, before the decoder allocates the declared raster.
std::string PpmHeader(int width, int height) {
  return "P6\n" + std::to_string(width) + " " + std::to_string(height) + "\n255\n\x01\x02\x03";
}

}  // namespace

TEST_SUITE("limits") {
  TEST_CASE("thread counts: 0 means one per hardware thread, beyond 1024 is refused") {
    const ThreadPool hw(0);
    CHECK(hw.size() == std::max(1u, std::thread::hardware_concurrency()));
    CHECK(ErrorOf([] { ThreadPool pool(10000); }).find("10000 threads requested; at most 1024") != std::string::npos);
    CHECK(ErrorOf([] { ThreadPool pool(ThreadPool::kMaxThreads + 1); }).find("at most 1024") != std::string::npos);
    CHECK(ThreadPool(ThreadPool::kMaxThreads).size() == ThreadPool::kMaxThreads);
  }

  TEST_CASE("image budgets: only 70, 140, 280, 560 and 1120 soft tokens") {
    RgbImage img;
    img.width = img.height = 48;
    img.pixels.assign(48 * 48 * 3, 128);
    for (int budget : {0, -70, 69, 71, 2240, 1 << 30})
      CHECK(ErrorOf([&] { PreprocessImage(img, budget, PatchOrder::kHWC); }).find("is not one of 70, 140") !=
            std::string::npos);
    CHECK(PreprocessImage(img, 1120, PatchOrder::kHWC).size() <= 1120);
  }

  TEST_CASE("images beyond the pixel limits are refused from the header") {
    for (const auto& [w, h] : {std::pair{kMaxImageSide + 1, 1}, std::pair{1, kMaxImageSide + 1},
                               std::pair{16384, 16384}}) {
      const std::string ppm = PpmHeader(w, h);
      const std::string err = ErrorOf([&] { DecodeImage(std::as_bytes(std::span(ppm)), "big.ppm"); });
      INFO(w << "x" << h << ": " << err);
      CHECK(err.find("big.ppm") != std::string::npos);
      CHECK(err.find("pixel limit") != std::string::npos);
    }
    // At the limit the header passes the size check (stb_image then fills the missing pixels or refuses them).
    const std::string ok = PpmHeader(kMaxImageSide, 2);
    try {
      DecodeImage(std::as_bytes(std::span(ok)), "short.ppm");
    } catch (const Error& e) {
      CHECK(std::string(e.what()).find("pixel limit") == std::string::npos);
    }
    CHECK(ErrorOf([] { TargetImageSize(kMaxImageSide + 1, 1, 70); }).find("pixel limit") != std::string::npos);
    CHECK(ErrorOf([] { TargetImageSize(0, 10, 70); }).find("no pixels") != std::string::npos);
  }
}

}  // namespace g4_test_limits
