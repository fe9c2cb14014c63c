// Status and Result<T>: expected failures as values.
//
// A Status is either ok or an error with a stable machine code (ErrorCode)
// and a human message. Result<T> holds a T or an error Status, shaped like
// std::expected. Both are [[nodiscard]]: an ignored error is a compile warning.
// Programmer errors are not Statuses: they crash through CHECK (check.h).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

#include "common/check.h"

namespace headroom {

// Stable codes: they appear in API errors and scripts depend on them, so a
// code is never renamed or reused. Add new ones at the end.
enum class ErrorCode : std::uint8_t {
  kOk,
  kInvalidArgument,     // the caller sent something malformed or out of range
  kNotFound,            // no such object, or not one the caller may see
  kAlreadyExists,       // a unique name or key is taken
  kConflict,            // the object's state forbids the operation
  kUnauthenticated,     // no credentials, or credentials that do not verify
  kPermissionDenied,    // valid credentials without the needed scope
  kPayloadTooLarge,     // a body or header past its limit
  kInsufficientFunds,   // balance and credit spent
  kQuotaExceeded,       // a tenant's limit reached
  kRateLimited,         // too many requests for now
  kUnavailable,         // a dependency (store, executor) is down; retry later
  kInternal,            // a bug or an unexpected failure of ours
  kMethodNotAllowed,    // the route exists, the method does not
};

// The stable snake_case name of a code, as written in API errors.
std::string_view error_code_name(ErrorCode code);

class [[nodiscard]] Status {
 public:
  Status() = default;  // ok

  static Status ok() { return Status(); }
  static Status invalid_argument(std::string message) { return {ErrorCode::kInvalidArgument, std::move(message)}; }
  static Status not_found(std::string message) { return {ErrorCode::kNotFound, std::move(message)}; }
  static Status already_exists(std::string message) { return {ErrorCode::kAlreadyExists, std::move(message)}; }
  static Status conflict(std::string message) { return {ErrorCode::kConflict, std::move(message)}; }
  static Status unauthenticated(std::string message) { return {ErrorCode::kUnauthenticated, std::move(message)}; }
  static Status permission_denied(std::string message) { return {ErrorCode::kPermissionDenied, std::move(message)}; }
  static Status payload_too_large(std::string message) { return {ErrorCode::kPayloadTooLarge, std::move(message)}; }
  static Status insufficient_funds(std::string message) { return {ErrorCode::kInsufficientFunds, std::move(message)}; }
  static Status quota_exceeded(std::string message) { return {ErrorCode::kQuotaExceeded, std::move(message)}; }
  static Status rate_limited(std::string message) { return {ErrorCode::kRateLimited, std::move(message)}; }
  static Status unavailable(std::string message) { return {ErrorCode::kUnavailable, std::move(message)}; }
  static Status internal(std::string message) { return {ErrorCode::kInternal, std::move(message)}; }
  static Status method_not_allowed(std::string message) { return {ErrorCode::kMethodNotAllowed, std::move(message)}; }

  bool is_ok() const { return code_ == ErrorCode::kOk; }
  explicit operator bool() const { return is_ok(); }
  ErrorCode code() const { return code_; }
  const std::string& message() const { return message_; }

  // "not_found: tenant ten_x does not exist"
  std::string to_string() const;
  // The same error with `context` before its message ("prices[2]: " + ...).
  Status with_context(std::string_view context) const {
    return is_ok() ? Status() : Status(code_, std::string(context) + message_);
  }

 private:
  Status(ErrorCode code, std::string message) : code_(code), message_(std::move(message)) {}

  ErrorCode code_ = ErrorCode::kOk;
  std::string message_;
};

template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : value_(std::move(value)) {}  // NOLINT: implicit by design
  Result(Status status) : value_(std::move(status)) {  // NOLINT: implicit by design
    CHECK(!std::get<Status>(value_).is_ok()) << "a Result's error must not be ok";
  }

  bool is_ok() const { return std::holds_alternative<T>(value_); }
  explicit operator bool() const { return is_ok(); }

  T& value() & { CHECK(is_ok()) << status().to_string(); return std::get<T>(value_); }
  const T& value() const& { CHECK(is_ok()) << status().to_string(); return std::get<T>(value_); }
  T&& value() && { CHECK(is_ok()) << status().to_string(); return std::get<T>(std::move(value_)); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }

  // The error; ok when the Result holds a value.
  Status status() const { return is_ok() ? Status::ok() : std::get<Status>(value_); }

 private:
  std::variant<T, Status> value_;
};

}  // namespace headroom

// Returns early with the error of a Status-returning expression.
#define HR_RETURN_IF_ERROR(expr)                      \
  do {                                                \
    ::headroom::Status hr_status_ = (expr);           \
    if (!hr_status_.is_ok()) return hr_status_;       \
  } while (false)

#define HR_CONCAT_INNER(a, b) a##b
#define HR_CONCAT(a, b) HR_CONCAT_INNER(a, b)

// HR_ASSIGN_OR_RETURN(auto x, result_expr): binds the value or returns the error.
#define HR_ASSIGN_OR_RETURN(decl, expr) HR_ASSIGN_OR_RETURN_IMPL(HR_CONCAT(hr_result_, __LINE__), decl, expr)
#define HR_ASSIGN_OR_RETURN_IMPL(tmp, decl, expr) \
  auto tmp = (expr);                              \
  if (!tmp.is_ok()) return tmp.status();          \
  decl = std::move(tmp).value()
