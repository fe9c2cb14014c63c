// CHECK and ASSERT: programmer errors crash loudly.
//
// CHECK is always on, for invariants that protect money and capacity (a GPU
// given twice, a ledger out of balance): a wrong answer there costs more than
// a crash. ASSERT is on in debug builds only, for everything else. Neither is
// ever used on outside input: bad input is a Status (status.h).
//
//   CHECK(gpu.holder == kNoJob) << "gpu " << gpu.id << " already held";
#pragma once

#include <sstream>

namespace headroom::detail {

// Collects the streamed message and aborts in its destructor.
class CheckFailure {
 public:
  CheckFailure(const char* file, int line, const char* condition);
  [[noreturn]] ~CheckFailure();
  template <typename T>
  CheckFailure& operator<<(const T& value) {
    message_ << value;
    return *this;
  }

 private:
  std::ostringstream message_;
};

// Lets `cond ? (void)0 : Voidify() & CheckFailure(...) << ...` type-check.
struct Voidify {
  void operator&(const CheckFailure&) {}
};

}  // namespace headroom::detail

#define CHECK(condition)                                  \
  (condition) ? (void)0                                   \
              : ::headroom::detail::Voidify() &           \
                    ::headroom::detail::CheckFailure(__FILE__, __LINE__, #condition)

#ifdef NDEBUG
#define ASSERT(condition) \
  true ? (void)0 : ::headroom::detail::Voidify() & ::headroom::detail::CheckFailure(__FILE__, __LINE__, #condition)
#else
#define ASSERT(condition) CHECK(condition)
#endif
