#include "infer/model/kv_cache.h"

#include <cstring>
#include <utility>

#include "common/check.h"
#include "infer/model/llama_model.h"

namespace headroom::infer {

namespace {

std::size_t value_bytes(TensorType type) {
  CHECK(type == TensorType::kF32 || type == TensorType::kF16) << "a KV cache of " << tensor_type_name(type);
  return type == TensorType::kF32 ? sizeof(float) : sizeof(std::uint16_t);
}

}  // namespace

Result<std::unique_ptr<KvPool>> KvPool::create(const LlamaConfig& config, std::size_t pages) {
  CHECK(pages <= UINT32_MAX) << pages << " pages";
  const std::size_t bytes = pages * page_bytes(config) / 2;  // keys, or values
  Result<LargeBuffer> keys = LargeBuffer::map(bytes);
  if (!keys.is_ok()) return keys.status().with_context("the KV cache's keys: ");
  Result<LargeBuffer> values = LargeBuffer::map(bytes);
  if (!values.is_ok()) return values.status().with_context("the KV cache's values: ");
  return std::unique_ptr<KvPool>(new KvPool(config, pages, std::move(keys).value(), std::move(values).value()));
}

KvPool::KvPool(const LlamaConfig& config, std::size_t pages, LargeBuffer keys, LargeBuffer values)
    : pages_(pages),
      kv_heads_(config.n_kv_heads),
      head_dim_(config.head_dim),
      type_(config.kv_type),
      page_values_(kKvPageTokens * config.kv_dim),
      page_bytes_(page_values_ * value_bytes(config.kv_type)),
      layer_stride_(pages * page_values_),
      keys_(std::move(keys)),
      values_(std::move(values)),
      in_use_(pages, 0) {
  free_.reserve(pages);
  for (std::size_t p = pages; p > 0; --p) free_.push_back(static_cast<std::uint32_t>(p - 1));
}

void KvSequence::store(std::size_t layer, std::size_t pos, const float* keys, const float* values,
                       const Kernels& kernels) const {
  ASSERT(pos < capacity());
  const std::size_t head_dim = pool_->head_dim();
  const std::size_t at = (pos % kKvPageTokens) * head_dim;
  auto* key_page = static_cast<std::uint8_t*>(const_cast<void*>(key_pages_[pos / kKvPageTokens]));
  auto* value_page = static_cast<std::uint8_t*>(const_cast<void*>(value_pages_[pos / kKvPageTokens]));
  const bool f16 = pool_->type() == TensorType::kF16;
  const auto copy = [&](const float* from, std::uint8_t* to) {
    if (f16) {
      kernels.to_f16(from, head_dim, reinterpret_cast<std::uint16_t*>(to));
    } else {
      std::memcpy(to, from, head_dim * sizeof(float));
    }
  };
  for (std::size_t head = 0; head < pool_->kv_heads(); ++head) {
    const std::size_t offset = (head_offset(layer, head) + at) * value_bytes(pool_->type());
    copy(keys + head * head_dim, key_page + offset);
    copy(values + head * head_dim, value_page + offset);
  }
}

std::size_t KvPool::page_bytes(const LlamaConfig& config) {
  return 2 * config.n_layers * kKvPageTokens * config.kv_dim * value_bytes(config.kv_type);
}

std::int64_t KvPool::allocate() {
  if (free_.empty()) return -1;
  const std::uint32_t page = free_.back();
  free_.pop_back();
  in_use_[page] = 1;
  return page;
}

void KvPool::release(std::uint32_t page) {
  // A page freed twice would be handed to two sequences, each overwriting
  // the other's keys.
  CHECK(page < pages_ && in_use_[page]) << "page " << page << " released but not in use";
  in_use_[page] = 0;
  free_.push_back(page);
}

KvSequence::KvSequence(KvSequence&& other) noexcept
    : pool_(other.pool_),
      ids_(std::move(other.ids_)),
      key_pages_(std::move(other.key_pages_)),
      value_pages_(std::move(other.value_pages_)) {
  other.ids_.clear();
  other.key_pages_.clear();
  other.value_pages_.clear();
}

KvSequence& KvSequence::operator=(KvSequence&& other) noexcept {
  if (this != &other) {
    clear();
    pool_ = other.pool_;
    ids_ = std::move(other.ids_);
    key_pages_ = std::move(other.key_pages_);
    value_pages_ = std::move(other.value_pages_);
    other.ids_.clear();
    other.key_pages_.clear();
    other.value_pages_.clear();
  }
  return *this;
}

std::size_t KvSequence::pages_needed(std::size_t tokens) const {
  const std::size_t want = (tokens + kKvPageTokens - 1) / kKvPageTokens;
  return want > ids_.size() ? want - ids_.size() : 0;
}

bool KvSequence::reserve(std::size_t tokens) {
  const std::size_t needed = pages_needed(tokens);
  if (needed > pool_->free_pages()) return false;
  for (std::size_t i = 0; i < needed; ++i) {
    const auto page = static_cast<std::uint32_t>(pool_->allocate());
    ids_.push_back(page);
    key_pages_.push_back(pool_->keys(page));
    value_pages_.push_back(pool_->values(page));
  }
  return true;
}

void KvSequence::clear() {
  for (std::uint32_t page : ids_) pool_->release(page);
  ids_.clear();
  key_pages_.clear();
  value_pages_.clear();
}

}  // namespace headroom::infer
