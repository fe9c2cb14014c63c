// The paged KV cache: every sequence's keys and values in one pool of
// fixed-size pages, so that the engine's memory for them is bounded and
// shared, and a sequence grows a page at a time instead of reserving its
// whole context up front (vLLM's PagedAttention, without the GPU).
//
// A page holds kKvPageTokens consecutive positions of one sequence, for every
// layer. The pool lays its memory out as
//
//   keys:   [layer][page][kv head][position in page][head_dim]   values
//   values: [layer][page][kv head][position in page][head_dim]   values
//
// of the model's LlamaConfig::kv_type: F32, or F16 (half the memory, and
// half the bytes a batch's attention streams; llama.cpp's default). The
// keys and values are computed in f32 and rounded to F16 as they are stored.
//
// so that page p's keys at layer l lie at keys + l * layer_stride + p *
// page_values, and one head's keys of a page are one contiguous run: the
// attention of a head streams them in order instead of picking head_dim
// floats out of every position's row (a stride the prefetchers do not
// follow). A KvSequence keeps the layer-0 address of each of its pages, in
// position order; attention reaches a layer's head by adding head_offset()
// to each (KvPages, infer/kernels/kernels.h). Keys and values share the
// layout, so one offset serves both.
//
// Not thread-safe: the engine's scheduler thread allocates and frees pages;
// forward() only reads and writes the pages of the sequences it is given.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "common/status.h"
#include "infer/kernels/kernels.h"
#include "infer/kernels/large_buffer.h"

namespace headroom::infer {

struct LlamaConfig;

inline constexpr std::size_t kKvPageTokens = 16;

class KvPool {
 public:
  // A pool of `pages` pages for a model of `config`'s shape, or
  // unavailable when its memory cannot be mapped.
  static Result<std::unique_ptr<KvPool>> create(const LlamaConfig& config, std::size_t pages);
  KvPool(const KvPool&) = delete;
  KvPool& operator=(const KvPool&) = delete;

  // The bytes one page takes (keys and values, every layer).
  static std::size_t page_bytes(const LlamaConfig& config);

  TensorType type() const { return type_; }

  std::size_t pages() const { return pages_; }
  std::size_t free_pages() const { return free_.size(); }
  std::size_t layer_stride() const { return layer_stride_; }
  std::size_t kv_heads() const { return kv_heads_; }
  std::size_t head_dim() const { return head_dim_; }

  // A free page's index, or -1 when none is left.
  std::int64_t allocate();
  void release(std::uint32_t page);

  // A page's layer-0 keys and values (type() values).
  std::uint8_t* keys(std::uint32_t page) { return keys_.data() + std::size_t{page} * page_bytes_; }
  std::uint8_t* values(std::uint32_t page) { return values_.data() + std::size_t{page} * page_bytes_; }

 private:
  KvPool(const LlamaConfig& config, std::size_t pages, LargeBuffer keys, LargeBuffer values);

  std::size_t pages_;
  std::size_t kv_heads_;
  std::size_t head_dim_;
  TensorType type_;
  std::size_t page_values_;   // kKvPageTokens * kv_dim, in one layer of keys (or values)
  std::size_t page_bytes_;    // page_values_ of type_
  std::size_t layer_stride_;  // pages_ * page_values_
  // Committed as pages are first written, not for the whole limit up front.
  // Huge pages: attention jumps from page to page of the cache.
  LargeBuffer keys_, values_;
  std::vector<std::uint32_t> free_;  // a stack: the most recently freed page is reused first
  std::vector<std::uint8_t> in_use_;
};

// One sequence's pages in a pool, in position order. Returns them to the pool
// when destroyed or cleared. Move-only; the pool must outlive it.
class KvSequence {
 public:
  explicit KvSequence(KvPool& pool) : pool_(&pool) {}
  ~KvSequence() { clear(); }
  KvSequence(KvSequence&& other) noexcept;
  KvSequence& operator=(KvSequence&& other) noexcept;
  KvSequence(const KvSequence&) = delete;
  KvSequence& operator=(const KvSequence&) = delete;

  // Positions 0 .. capacity() - 1 have room.
  std::size_t capacity() const { return key_pages_.size() * kKvPageTokens; }
  // The pages that room for `tokens` positions takes beyond those held.
  std::size_t pages_needed(std::size_t tokens) const;

  // Takes pages until positions 0 .. tokens - 1 have room. False, having
  // taken none, when the pool has too few free pages.
  bool reserve(std::size_t tokens);
  // Returns every page to the pool.
  void clear();

  // Stores position pos's keys and values at `layer`: kv_heads * head_dim
  // floats each, head by head, as the pool's type (rounded by `kernels`
  // to F16). pos < capacity().
  void store(std::size_t layer, std::size_t pos, const float* keys, const float* values,
             const Kernels& kernels) const;

  // What attention reads: the pages, with head_offset(layer, head) for one
  // kv head of one layer.
  KvPages pages() const {
    return {key_pages_.data(), value_pages_.data(), kKvPageTokens, pool_->head_dim(), pool_->type()};
  }
  std::size_t head_offset(std::size_t layer, std::size_t head) const {
    return layer * pool_->layer_stride() + head * kKvPageTokens * pool_->head_dim();
  }

 private:
  KvPool* pool_;
  std::vector<std::uint32_t> ids_;
  std::vector<const void*> key_pages_, value_pages_;  // layer-0 addresses, one per page
};

}  // namespace headroom::infer
