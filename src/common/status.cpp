#include "common/status.h"

namespace headroom {

std::string_view error_code_name(ErrorCode code) {
  switch (code) {
    case ErrorCode::kOk: return "ok";
    case ErrorCode::kInvalidArgument: return "invalid_argument";
    case ErrorCode::kNotFound: return "not_found";
    case ErrorCode::kAlreadyExists: return "already_exists";
    case ErrorCode::kConflict: return "conflict";
    case ErrorCode::kUnauthenticated: return "unauthenticated";
    case ErrorCode::kPermissionDenied: return "permission_denied";
    case ErrorCode::kPayloadTooLarge: return "payload_too_large";
    case ErrorCode::kInsufficientFunds: return "insufficient_funds";
    case ErrorCode::kQuotaExceeded: return "quota_exceeded";
    case ErrorCode::kRateLimited: return "rate_limited";
    case ErrorCode::kUnavailable: return "unavailable";
    case ErrorCode::kInternal: return "internal";
    case ErrorCode::kMethodNotAllowed: return "method_not_allowed";
  }
  return "internal";
}

std::string Status::to_string() const {
  if (is_ok()) return "ok";
  std::string out(error_code_name(code_));
  out += ": ";
  out += message_;
  return out;
}

}  // namespace headroom
