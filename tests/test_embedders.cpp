// The vision and audio embedders against the multimodal reference case's image_embeddings and audio_embeddings,
// from the safetensors checkpoint (HWC patches) and from llama.cpp's mmproj GGUF (CHW patches, planar positions).
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "g4/core/aligned_buffer.hpp"
#include "g4/core/thread_pool.hpp"
#include "g4/io/gguf.hpp"
#include "g4/media/audio.hpp"
#include "g4/media/audio_embedder.hpp"
#include "g4/media/image_patches.hpp"
#include "g4/media/vision_embedder.hpp"
#include "support/compare.hpp"
#include "support/errors.hpp"
#include "support/golden_multimodal.hpp"

namespace g4_test_embedders {  // this suite's names, apart from the others' in a unity build (tests/meson.build)

using namespace g4;
using namespace g4::testing;

namespace {

VisionWeights GoldenVisionWeights() {
  const Golden& m = GoldenModel();
  VisionWeights w;
  w.patch_ln1_w = m["model.vision_embedder.patch_ln1.weight"];
  w.patch_ln1_b = m["model.vision_embedder.patch_ln1.bias"];
  w.patch_dense_w = m["model.vision_embedder.patch_dense.weight"];
  w.patch_dense_b = m["model.vision_embedder.patch_dense.bias"];
  w.patch_ln2_w = m["model.vision_embedder.patch_ln2.weight"];
  w.patch_ln2_b = m["model.vision_embedder.patch_ln2.bias"];
  w.pos_embedding = m["model.vision_embedder.pos_embedding"];
  w.pos_norm_w = m["model.vision_embedder.pos_norm.weight"];
  w.pos_norm_b = m["model.vision_embedder.pos_norm.bias"];
  w.projection = m["model.embed_vision.embedding_projection.weight"];
  return w;
}

// HWC index of CHW index k within one patch (the mmproj converter's column permutation).
size_t HwcOfChw(size_t k) {
  const size_t c = k / 2304, r = k % 2304 / 48, col = k % 48;
  return (r * 48 + col) * 3 + c;
}

// Holds re-laid-out copies of 16-bit tensors for the GGUF-style (CHW, [2, n_pos, dim]) weights.
struct Relaid {
  std::vector<AlignedBuffer> bufs;
  TensorView Make(const TensorView& src, Shape shape, const std::function<size_t(size_t)>& src_index) {
    REQUIRE(src.type == Type::BF16);
    bufs.emplace_back(src.nbytes);
    const auto in = src.as<uint16_t>();
    auto* out = bufs.back().as<uint16_t>();
    for (size_t i = 0; i < in.size(); ++i) out[i] = in[src_index(i)];
    return TensorView{src.name + " (relaid)", src.type, shape, bufs.back().data(), src.nbytes};
  }
};

}  // namespace

TEST_CASE("vision embedder: golden image_embeddings, HWC safetensors layout and CHW GGUF layout") {
  ThreadPool pool(2);
  const auto pixels = GoldenCase().values<float>("pixel_values");  // [70, 6912]
  const auto pos = GoldenCase().values<int32_t>("image_position_ids");
  const auto want = GoldenCase().values<float>("image_embeddings");  // [60, 128]
  const size_t n = 60;
  const std::vector<float> px(pixels.begin(), pixels.begin() + n * 6912);
  const std::vector<int32_t> ps(pos.begin(), pos.begin() + n * 2);

  const VisionEmbedder hwc(GoldenVisionWeights());
  REQUIRE(hwc.hidden() == 128);
  REQUIRE(hwc.dim() == 64);
  std::vector<float> out(n * 128);
  hwc.Embed(px, ps, n, out.data(), pool);
  const double rel_hwc = RelErr(out, want);
  MESSAGE("image_embeddings (HWC, safetensors layout): rel err " << rel_hwc);
  CHECK(rel_hwc <= 1e-4);

  // End to end from the source pixels.
  const std::vector<float> e2e = hwc.Embed(PreprocessImage(GoldenImage(), 70, PatchOrder::kHWC), pool);
  const double rel_e2e = RelErr(e2e, want);
  MESSAGE("image_embeddings from image_rgb_u8 (decode-free end to end): rel err " << rel_e2e);
  CHECK(rel_e2e <= 1e-4);

  // The same weights as llama.cpp's mmproj holds them: patch_dense columns and patch_ln1 in CHW order, the
  // position table as [2, n_pos, dim].
  VisionWeights g = GoldenVisionWeights();
  Relaid relaid;
  const int64_t dim = 64, n_pos = g.pos_embedding.shape[0];
  g.patch_ln1_w = relaid.Make(g.patch_ln1_w, Shape{6912}, HwcOfChw);
  g.patch_ln1_b = relaid.Make(g.patch_ln1_b, Shape{6912}, HwcOfChw);
  g.patch_dense_w = relaid.Make(g.patch_dense_w, Shape{dim, 6912}, [](size_t i) { return i / 6912 * 6912 + HwcOfChw(i % 6912); });
  g.pos_embedding = relaid.Make(g.pos_embedding, Shape{2, n_pos, dim}, [&](size_t i) {
    const size_t axis = i / static_cast<size_t>(n_pos * dim), p = i / dim % n_pos, k = i % dim;
    return (p * 2 + axis) * dim + k;
  });
  g.chw_patch_order = true;
  g.pos_table_planar = true;
  const VisionEmbedder chw(g);
  std::vector<float> px_chw(px.size());
  for (size_t t = 0; t < n; ++t)
    for (size_t k = 0; k < 6912; ++k) px_chw[t * 6912 + k] = px[t * 6912 + HwcOfChw(k)];
  std::vector<float> out_chw(n * 128);
  chw.Embed(px_chw, ps, n, out_chw.data(), pool);
  const double rel_chw = RelErr(out_chw, want);
  MESSAGE("image_embeddings (CHW, GGUF layout): rel err " << rel_chw);
  CHECK(rel_chw <= 1e-4);
  const std::vector<float> e2e_chw = chw.Embed(PreprocessImage(GoldenImage(), 70, PatchOrder::kCHW), pool);
  CHECK(RelErr(e2e_chw, want) <= 1e-4);

  // Mismatches are errors, not garbage.
  CHECK(ErrorOf([&] { chw.Embed(PreprocessImage(GoldenImage(), 70, PatchOrder::kHWC), pool); }).find("order") != std::string::npos);
  std::vector<int32_t> far = ps;
  far[1] = 5000;
  CHECK(ErrorOf([&] { hwc.Embed(px, far, n, out.data(), pool); }).find("5000") != std::string::npos);
  CHECK(ErrorOf([&] { hwc.Embed(px, ps, n - 1, out.data(), pool); }).find("patch values") != std::string::npos);
  VisionWeights bad = GoldenVisionWeights();
  bad.pos_table_planar = true;  // [64, 2, 64] read as [2, n, 64]
  CHECK(ErrorOf([&] { VisionEmbedder{bad}; }).find("pos_embedding") != std::string::npos);
  bad = GoldenVisionWeights();
  bad.patch_ln2_w = bad.patch_ln1_w;
  CHECK(ErrorOf([&] { VisionEmbedder{bad}; }).find("patch_ln2 weight has shape [6912], expected [64]") != std::string::npos);
}

TEST_CASE("audio embedder: golden audio_embeddings; a zero frame maps to zero") {
  ThreadPool pool(2);
  const AudioEmbedder emb(GoldenModel()["model.embed_audio.embedding_projection.weight"]);
  REQUIRE(emb.hidden() == 128);
  const auto want = GoldenCase().values<float>("audio_embeddings");  // [26, 128]
  const std::vector<AudioFrames> f = FrameAudio(GoldenCase().values<float>("audio_waveform"));
  const std::vector<float> out = emb.Embed(f[0], pool);
  REQUIRE(out.size() == want.size());
  const double rel = RelErr(out, want);
  MESSAGE("audio_embeddings: rel err " << rel);
  CHECK(rel <= 1e-4);

  std::vector<float> frames(2 * 640, 0.0f);
  for (size_t i = 640; i < 1280; ++i) frames[i] = 0.25f;
  std::vector<float> two(2 * 128, 1.0f);
  emb.Embed(frames.data(), 2, two.data(), pool);
  for (size_t i = 0; i < 128; ++i) REQUIRE(two[i] == 0.0f);
  // A constant frame normalises to all ones: the embedding is the projection's row sums.
  const TensorView& proj = GoldenModel()["model.embed_audio.embedding_projection.weight"];
  std::vector<float> row(640);
  for (int64_t o = 0; o < 128; ++o) {
    DequantizeTensorRow(proj, o, row.data());
    double s = 0;
    for (float v : row) s += v;
    REQUIRE(two[128 + static_cast<size_t>(o)] == doctest::Approx(s * 0.25 / std::sqrt(0.0625 + 1e-6)).epsilon(1e-5));
  }
  CHECK(ErrorOf([&] { AudioEmbedder{GoldenModel()["model.embed_vision.embedding_projection.weight"]}; }).find("expected [128, 640]") != std::string::npos);
}

TEST_CASE("embedders: llama.cpp mmproj GGUF (CHW patches, [2, n_pos, dim] positions) reproduces the golden") {
  ThreadPool pool(2);
  const GgufFile mmproj(DataDir() + "/golden-gguf/multimodal-mmproj-bf16.gguf");
  auto t = [&](const std::string& name) {
    const TensorView* v = mmproj.FindTensor(name);
    REQUIRE_MESSAGE(v != nullptr, name);
    return *v;
  };
  VisionWeights w;
  w.patch_ln1_w = t("v.patch_norm.1.weight");
  w.patch_ln1_b = t("v.patch_norm.1.bias");
  w.patch_dense_w = t("v.patch_embd.weight");
  w.patch_dense_b = t("v.patch_embd.bias");
  w.patch_ln2_w = t("v.patch_norm.2.weight");
  w.patch_ln2_b = t("v.patch_norm.2.bias");
  w.pos_embedding = t("v.position_embd.weight");
  w.pos_norm_w = t("v.patch_norm.3.weight");
  w.pos_norm_b = t("v.patch_norm.3.bias");
  w.projection = t("mm.input_projection.weight");
  w.chw_patch_order = true;
  w.pos_table_planar = true;
  const VisionEmbedder vision(w);
  const auto want_img = GoldenCase().values<float>("image_embeddings");
  const std::vector<float> img = vision.Embed(PreprocessImage(GoldenImage(), 70, PatchOrder::kCHW), pool);
  REQUIRE(img.size() == want_img.size());
  const double rel_img = RelErr(img, want_img);
  MESSAGE("image_embeddings from the mmproj GGUF: rel err " << rel_img);
  CHECK(rel_img <= 1e-4);

  const AudioEmbedder audio(t("mm.a.input_projection.weight"));
  const auto want_audio = GoldenCase().values<float>("audio_embeddings");
  const std::vector<float> aud = audio.Embed(FrameAudio(GoldenCase().values<float>("audio_waveform"))[0], pool);
  REQUIRE(aud.size() == want_audio.size());
  const double rel_audio = RelErr(aud, want_audio);
  MESSAGE("audio_embeddings from the mmproj GGUF: rel err " << rel_audio);
  CHECK(rel_audio <= 1e-4);
}

}  // namespace g4_test_embedders
