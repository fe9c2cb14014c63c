#include "common/status.h"

#include <gtest/gtest.h>

#include <memory>
#include <set>
#include <string>

namespace headroom {
namespace {

TEST(ErrorCodeName, StableSnakeCaseNames) {
  EXPECT_EQ(error_code_name(ErrorCode::kOk), "ok");
  EXPECT_EQ(error_code_name(ErrorCode::kInvalidArgument), "invalid_argument");
  EXPECT_EQ(error_code_name(ErrorCode::kNotFound), "not_found");
  EXPECT_EQ(error_code_name(ErrorCode::kAlreadyExists), "already_exists");
  EXPECT_EQ(error_code_name(ErrorCode::kConflict), "conflict");
  EXPECT_EQ(error_code_name(ErrorCode::kUnauthenticated), "unauthenticated");
  EXPECT_EQ(error_code_name(ErrorCode::kPermissionDenied), "permission_denied");
  EXPECT_EQ(error_code_name(ErrorCode::kPayloadTooLarge), "payload_too_large");
  EXPECT_EQ(error_code_name(ErrorCode::kInsufficientFunds), "insufficient_funds");
  EXPECT_EQ(error_code_name(ErrorCode::kQuotaExceeded), "quota_exceeded");
  EXPECT_EQ(error_code_name(ErrorCode::kRateLimited), "rate_limited");
  EXPECT_EQ(error_code_name(ErrorCode::kUnavailable), "unavailable");
  EXPECT_EQ(error_code_name(ErrorCode::kInternal), "internal");
  EXPECT_EQ(error_code_name(ErrorCode::kMethodNotAllowed), "method_not_allowed");
  // The numeric values are stable too: scripts and stored data depend on them.
  EXPECT_EQ(static_cast<int>(ErrorCode::kOk), 0);
  EXPECT_EQ(static_cast<int>(ErrorCode::kInternal), 12);
  EXPECT_EQ(static_cast<int>(ErrorCode::kMethodNotAllowed), 13);
  // An out-of-range value does not crash.
  EXPECT_EQ(error_code_name(static_cast<ErrorCode>(200)), "internal");
}

TEST(ErrorCodeName, DistinctForEveryCode) {
  std::set<std::string_view> names;
  for (int c = 0; c <= static_cast<int>(ErrorCode::kMethodNotAllowed); ++c) {
    names.insert(error_code_name(static_cast<ErrorCode>(c)));
  }
  EXPECT_EQ(names.size(), static_cast<std::size_t>(ErrorCode::kMethodNotAllowed) + 1);
}

TEST(StatusTest, OkByDefault) {
  Status s;
  EXPECT_TRUE(s.is_ok());
  EXPECT_TRUE(static_cast<bool>(s));
  EXPECT_EQ(s.code(), ErrorCode::kOk);
  EXPECT_EQ(s.message(), "");
  EXPECT_EQ(s.to_string(), "ok");
  EXPECT_TRUE(Status::ok().is_ok());
}

TEST(StatusTest, FactoriesSetCodeAndMessage) {
  struct Case {
    Status status;
    ErrorCode code;
  };
  Case cases[] = {
      {Status::invalid_argument("m"), ErrorCode::kInvalidArgument},
      {Status::not_found("m"), ErrorCode::kNotFound},
      {Status::already_exists("m"), ErrorCode::kAlreadyExists},
      {Status::conflict("m"), ErrorCode::kConflict},
      {Status::unauthenticated("m"), ErrorCode::kUnauthenticated},
      {Status::permission_denied("m"), ErrorCode::kPermissionDenied},
      {Status::payload_too_large("m"), ErrorCode::kPayloadTooLarge},
      {Status::insufficient_funds("m"), ErrorCode::kInsufficientFunds},
      {Status::quota_exceeded("m"), ErrorCode::kQuotaExceeded},
      {Status::rate_limited("m"), ErrorCode::kRateLimited},
      {Status::unavailable("m"), ErrorCode::kUnavailable},
      {Status::internal("m"), ErrorCode::kInternal},
      {Status::method_not_allowed("m"), ErrorCode::kMethodNotAllowed},
  };
  for (const auto& c : cases) {
    EXPECT_FALSE(c.status.is_ok());
    EXPECT_FALSE(static_cast<bool>(c.status));
    EXPECT_EQ(c.status.code(), c.code);
    EXPECT_EQ(c.status.message(), "m");
    EXPECT_EQ(c.status.to_string(), std::string(error_code_name(c.code)) + ": m");
  }
  EXPECT_EQ(Status::not_found("tenant ten_x does not exist").to_string(), "not_found: tenant ten_x does not exist");
}

TEST(ResultTest, HoldsAValue) {
  Result<int> r = 7;
  EXPECT_TRUE(r.is_ok());
  EXPECT_TRUE(static_cast<bool>(r));
  EXPECT_EQ(r.value(), 7);
  EXPECT_EQ(*r, 7);
  EXPECT_TRUE(r.status().is_ok());
  *r = 8;
  EXPECT_EQ(r.value(), 8);

  Result<std::string> s = std::string("abc");
  EXPECT_EQ(s->size(), 3u);
  std::string moved = std::move(s).value();
  EXPECT_EQ(moved, "abc");
}

TEST(ResultTest, HoldsAnError) {
  Result<int> r = Status::not_found("nope");
  EXPECT_FALSE(r.is_ok());
  EXPECT_FALSE(static_cast<bool>(r));
  EXPECT_EQ(r.status().code(), ErrorCode::kNotFound);
  EXPECT_EQ(r.status().message(), "nope");
}

TEST(ResultTest, MoveOnlyValues) {
  Result<std::unique_ptr<int>> r = std::make_unique<int>(5);
  ASSERT_TRUE(r.is_ok());
  std::unique_ptr<int> p = std::move(r).value();
  EXPECT_EQ(*p, 5);
}

Status fails_when(bool fail) { return fail ? Status::conflict("it failed") : Status::ok(); }
Result<int> number(bool fail) {
  if (fail) return Status::unavailable("no number");
  return 41;
}

Status uses_return_if_error(bool fail, int& reached) {
  HR_RETURN_IF_ERROR(fails_when(fail));
  reached = 1;
  return Status::ok();
}

Result<int> uses_assign_or_return(bool fail) {
  HR_ASSIGN_OR_RETURN(int n, number(fail));
  HR_ASSIGN_OR_RETURN(auto m, number(false));  // twice in one scope: distinct temporaries
  return n + m - 40;
}

TEST(StatusMacros, ReturnIfError) {
  int reached = 0;
  Status s = uses_return_if_error(true, reached);
  EXPECT_EQ(s.code(), ErrorCode::kConflict);
  EXPECT_EQ(s.message(), "it failed");
  EXPECT_EQ(reached, 0);
  EXPECT_TRUE(uses_return_if_error(false, reached).is_ok());
  EXPECT_EQ(reached, 1);
}

TEST(StatusMacros, AssignOrReturn) {
  Result<int> bad = uses_assign_or_return(true);
  ASSERT_FALSE(bad.is_ok());
  EXPECT_EQ(bad.status().code(), ErrorCode::kUnavailable);
  EXPECT_EQ(bad.status().message(), "no number");
  Result<int> good = uses_assign_or_return(false);
  ASSERT_TRUE(good.is_ok());
  EXPECT_EQ(*good, 42);
}

TEST(ResultDeathTest, AnOkStatusIsNotAnError) {
  EXPECT_DEATH({ Result<int> r(Status::ok()); (void)r; }, "must not be ok");
}

TEST(ResultDeathTest, ValueOfAnErrorCrashesWithTheStatus) {
  EXPECT_DEATH({
    Result<int> r = Status::not_found("tenant ten_x");
    (void)r.value();
  }, "not_found: tenant ten_x");
}

}  // namespace
}  // namespace headroom
