// A Gemma 4 model of any configuration with synthetic weights of a chosen type (no download, no model file): each
// matrix is tiled from a pool of genuinely quantized random blocks, so the kernels see valid
// scales and realistic bit patterns, and building the 12B takes seconds instead of quantizing 12 G values.
// The matrices are written to an unlinked temporary file and used from its mapping, as a checkpoint's are: where
// Gemma4 packs row-group copies it drops each original's pages once packed, so the process holds about one copy of
// the weights (built in memory and then packed, the 12B Q8_0 peaked at 24.4 GB: two copies).
#pragma once
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "g4/core/mapped_file.hpp"
#include "g4/core/quantize.hpp"
#include "g4/core/tensor.hpp"
#include "g4/model/config.hpp"
#include "g4/model/kv_cache.hpp"
#include "g4/model/weights.hpp"

namespace g4::bench {

// Writes every slot of the cache buffers (a small positive value, 0x3C bytes: 0.0115 in F32, 1.06 in F16), so
// that decoding at some context reads its keys and values from memory as with a real cache. Untouched, the
// buffers are the kernel's shared zero page, which stays in the CPU caches: attention over them costs its
// arithmetic but none of the memory traffic (at 32K tokens, F32, 1.7 GB per decode step of the 12B).
inline void FillKVCache(KVCache& cache) {
  for (int i = 0; i < cache.n_layers(); ++i) {
    if (!cache.owns(i)) continue;
    LayerKV& l = cache.layer(i);
    std::memset(l.k.data(), 0x3C, l.k.size());
    std::memset(l.v.data(), 0x3C, l.v.size());
  }
}

class SyntheticModel {
 public:
  SyntheticModel(const Gemma4Config& cfg, Type type) : cfg_(cfg), type_(type) {
    // 4 MiB of random values (scaled like a trained layer's weights), quantized once.
    std::mt19937 rng(1);
    std::normal_distribution<float> nd(0.0f, 0.02f);
    const size_t pool_values = size_t{1} << 20;
    std::vector<float> values(pool_values);
    for (float& v : values) v = nd(rng);
    pool_.resize(TensorBytes(type, Shape{1, static_cast<int64_t>(pool_values)}, "pool"));
    QuantizeRow(type, values.data(), pool_values, pool_.data());
    std::string path = (std::filesystem::temp_directory_path() / "g4-synthetic-XXXXXX").string();
    fd_ = ::mkstemp(path.data());
    Require(fd_ >= 0, path, std::string("cannot create: ") + std::strerror(errno));

    const int64_t H = cfg.hidden_size, F = cfg.intermediate_size;
    w_.embed = Matrix("token_embd", cfg.vocab_size, H);
    w_.final_norm = Ones("output_norm", H);
    for (int i = 0; i < cfg.n_layers; ++i) {
      const LayerConfig& l = cfg.layers[static_cast<size_t>(i)];
      const std::string p = "blk." + std::to_string(i) + ".";
      const int64_t q = static_cast<int64_t>(cfg.n_heads) * l.head_dim, kv = static_cast<int64_t>(l.n_kv_heads) * l.head_dim;
      LayerWeights& lw = w_.layers.emplace_back();
      lw.attn_norm = Ones(p + "attn_norm", H);
      lw.q_proj = Matrix(p + "attn_q", q, H);
      if (!cfg.assistant) {  // a drafter reads the target's K/V
        lw.k_proj = Matrix(p + "attn_k", kv, H);
        if (!l.k_eq_v) lw.v_proj = Matrix(p + "attn_v", kv, H);
        lw.k_norm = Ones(p + "attn_k_norm", l.head_dim);
      }
      lw.o_proj = Matrix(p + "attn_output", H, q);
      lw.q_norm = Ones(p + "attn_q_norm", l.head_dim);
      lw.post_attn_norm = Ones(p + "post_attention_norm", H);
      lw.ffn_norm = Ones(p + "ffn_norm", H);
      lw.gate_proj = Matrix(p + "ffn_gate", F, H);
      lw.up_proj = Matrix(p + "ffn_up", F, H);
      lw.down_proj = Matrix(p + "ffn_down", H, F);
      lw.post_ffn_norm = Ones(p + "post_ffw_norm", H);
      lw.layer_scalar = Ones(p + "layer_output_scale", 1);
    }
    if (cfg.assistant) {
      aw_.pre_projection = Matrix("nextn.pre_projection", H, 2 * static_cast<int64_t>(cfg.assistant->backbone_hidden));
      aw_.post_projection = Matrix("nextn.post_projection", cfg.assistant->backbone_hidden, H);
    }
    ::close(fd_);
    file_ = std::make_unique<MappedFile>(path);
    std::filesystem::remove(path);  // the mapping keeps the data
    for (TensorView* v : {&w_.embed, &aw_.pre_projection, &aw_.post_projection}) Locate(*v);
    for (LayerWeights& l : w_.layers)
      for (TensorView* v : {&l.q_proj, &l.k_proj, &l.v_proj, &l.o_proj, &l.gate_proj, &l.up_proj, &l.down_proj}) Locate(*v);
  }
  SyntheticModel(const SyntheticModel&) = delete;
  SyntheticModel& operator=(const SyntheticModel&) = delete;

  const TextWeights& weights() const { return w_; }
  const AssistantWeights& assistant() const { return aw_; }  // drafters (cfg.assistant) only

 private:
  // A matrix tiled from the pool, appended to the file at a page boundary; its data is located once mapped.
  TensorView Matrix(const std::string& name, int64_t rows, int64_t cols) {
    TensorView v;
    v.name = name;
    v.type = type_;
    v.shape = Shape{rows, cols};
    v.nbytes = TensorBytes(type_, v.shape, name);
    const size_t page = static_cast<size_t>(::sysconf(_SC_PAGESIZE));
    file_bytes_ = (file_bytes_ + page - 1) / page * page;
    offset_[name] = file_bytes_;
    for (size_t done = 0; done < v.nbytes;) {
      const size_t take = std::min(v.nbytes - done, pool_.size() - pool_offset_);
      const ssize_t w = ::pwrite(fd_, pool_.data() + pool_offset_, take, static_cast<off_t>(file_bytes_ + done));
      Require(w > 0, name, std::string("cannot write the synthetic weights: ") + std::strerror(errno));
      done += static_cast<size_t>(w);
      pool_offset_ = (pool_offset_ + static_cast<size_t>(w)) % pool_.size();
    }
    // Keep the pool aligned to whole blocks so every tensor starts on a block boundary.
    pool_offset_ -= pool_offset_ % GetTypeInfo(type_).block_bytes;
    file_bytes_ += v.nbytes;
    return v;
  }
  void Locate(TensorView& v) const {
    if (v.nbytes > 0) v.data = file_->bytes().data() + offset_.at(v.name);
  }
  TensorView Ones(const std::string& name, int64_t n) {
    auto t = std::make_unique<Tensor>(name, Type::F32, Shape{n});
    for (float& v : t->as<float>()) v = 1.0f;
    return Keep(std::move(t));
  }
  TensorView Keep(std::unique_ptr<Tensor> t) {
    TensorView v = t->view();
    storage_.push_back(std::move(t));
    return v;
  }

  Gemma4Config cfg_;
  Type type_;
  std::vector<std::byte> pool_;
  size_t pool_offset_ = 0;
  int fd_ = -1;
  size_t file_bytes_ = 0;
  std::map<std::string, size_t> offset_;  // by matrix name
  std::unique_ptr<MappedFile> file_;
  std::vector<std::unique_ptr<Tensor>> storage_;
  TextWeights w_;
  AssistantWeights aw_;
};

}  // namespace g4::bench
