#include "net/http.h"

#include <spdlog/spdlog.h>

#include "common/check.h"

namespace headroom::net {
namespace {

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

void percent_decode(std::string_view in, std::string& out) {
  out.clear();
  for (std::size_t i = 0; i < in.size(); ++i) {
    if (in[i] == '+') {
      out += ' ';
    } else if (in[i] == '%' && i + 2 < in.size() && hex_value(in[i + 1]) >= 0 && hex_value(in[i + 2]) >= 0) {
      out += static_cast<char>(hex_value(in[i + 1]) * 16 + hex_value(in[i + 2]));
      i += 2;
    } else {
      out += in[i];
    }
  }
}

}  // namespace

BodyStream::~BodyStream() = default;

void BodyStream::wake() {
  std::lock_guard lock(waker_mutex_);
  if (waker_) waker_();
}

void BodyStream::set_waker(std::function<void()> waker) {
  std::lock_guard lock(waker_mutex_);
  waker_ = std::move(waker);
}

std::shared_ptr<DeferredResponse> HttpResponse::defer() {
  if (!deferred) deferred = std::make_shared<DeferredResponse>();
  return deferred;
}

void DeferredResponse::complete(HttpResponse response) {
  ASSERT(!response.deferred) << "a deferred response is completed with a response, not with another deferral";
  response.deferred.reset();
  std::lock_guard lock(mutex_);
  switch (state_) {
    case State::kPending:
      break;
    case State::kAbandoned:
      return;  // the server has given up on it: nobody to send it to
    case State::kCompleted:
    case State::kTaken:
      spdlog::error("a deferred response was completed twice; the second completion (status {}) is ignored",
                    response.status);
      return;
  }
  state_ = State::kCompleted;
  response_.emplace(std::move(response));
  for (Hook& hook : hooks_) hook(*response_);
  hooks_.clear();
}

bool DeferredResponse::done() const {
  std::lock_guard lock(mutex_);
  return state_ != State::kPending;
}

void DeferredResponse::on_complete(Hook hook) {
  std::lock_guard lock(mutex_);
  switch (state_) {
    case State::kPending:
      hooks_.push_back(std::move(hook));
      return;
    case State::kCompleted:
      hook(*response_);
      return;
    case State::kTaken:
    case State::kAbandoned:
      return;  // nothing left to run it on
  }
}

std::optional<HttpResponse> DeferredResponse::take() {
  std::lock_guard lock(mutex_);
  if (state_ != State::kCompleted) return std::nullopt;
  state_ = State::kTaken;
  std::optional<HttpResponse> out = std::move(response_);
  response_.reset();
  return out;
}

void DeferredResponse::abandon() {
  std::vector<Hook> dropped;
  std::optional<HttpResponse> dropped_response;
  {
    std::lock_guard lock(mutex_);
    if (state_ == State::kTaken) return;
    state_ = State::kAbandoned;
    dropped.swap(hooks_);
    dropped_response.swap(response_);
  }
  // Destroyed outside the lock: a dropped response may hold a stream whose
  // destructor is someone else's code.
}

bool query_param(std::string_view query, std::string_view name, std::string& value) {
  while (!query.empty()) {
    std::size_t amp = query.find('&');
    std::string_view pair = query.substr(0, amp);
    query = amp == std::string_view::npos ? std::string_view() : query.substr(amp + 1);
    std::size_t eq = pair.find('=');
    std::string_view key = pair.substr(0, eq);
    if (key == name) {
      percent_decode(eq == std::string_view::npos ? std::string_view() : pair.substr(eq + 1), value);
      return true;
    }
  }
  return false;
}

}  // namespace headroom::net
