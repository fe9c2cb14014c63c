// Counts every allocation in the sampling test binary, so that a test can
// show that the per-token paths allocate nothing after warm-up. It lives in
// its own file so that the compiler never inlines these replacements into a
// test and takes the malloc/free pair for a mismatch.
#include <atomic>
#include <cstdlib>
#include <new>

namespace {
std::atomic<long> g_allocations{0};
}  // namespace

namespace headroom::infer::testing {
long allocation_count() { return g_allocations.load(); }
}  // namespace headroom::infer::testing

void* operator new(std::size_t size) {
  ++g_allocations;
  if (void* p = std::malloc(size == 0 ? 1 : size)) return p;
  throw std::bad_alloc();
}
void* operator new[](std::size_t size) { return operator new(size); }
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t) noexcept { std::free(p); }
