#include "net/async_http_client.h"

#include <gtest/gtest.h>

#include <boost/asio/io_context.hpp>
#include <chrono>
#include <future>
#include <optional>

#include "net/test_server.h"

namespace headroom::net {
namespace {

using namespace testing;

std::shared_ptr<AsyncHttpClient> make_client(const std::string& url, HttpClientOptions options = {}) {
  auto client = AsyncHttpClient::create(url, std::move(options));
  EXPECT_TRUE(client.is_ok()) << client.status().to_string();
  return std::move(client).value();
}

// What a call saw.
struct Outcome {
  int status = 0;
  std::string content_type;
  std::string body;
  std::vector<std::string> chunks;
  int done_calls = 0;
  Status done;
};

// Starts a call recording into `out`; `stop_after` chunks, then on_chunk says stop.
void start(asio::io_context& io, AsyncHttpClient& client, std::string method, std::string target, Outcome& out,
           int stop_after = -1) {
  AsyncHttpCall call;
  call.method = std::move(method);
  call.target = std::move(target);
  call.on_head = [&out](const HttpClientResponse& head) {
    out.status = head.status;
    out.content_type = head.header("content-type");
  };
  call.on_chunk = [&out, stop_after](std::string_view chunk) {
    out.chunks.emplace_back(chunk);
    out.body.append(chunk);
    return stop_after < 0 || static_cast<int>(out.chunks.size()) < stop_after;
  };
  call.on_done = [&out](const Status& status) {
    ++out.done_calls;
    out.done = status;
  };
  client.start(io, std::move(call));
}

Outcome call(asio::io_context& io, AsyncHttpClient& client, std::string method, std::string target,
             int stop_after = -1) {
  Outcome out;
  start(io, client, std::move(method), std::move(target), out, stop_after);
  io.restart();
  io.run();  // idle kept connections hold no work: returns once the call is done
  return out;
}

TEST(AsyncHttpClient, ReadsTheAnswerAndKeepsTheConnection) {
  TestServer server(ok_handler);
  asio::io_context io;
  auto client = make_client(server.url() + "/v1");
  for (int i = 0; i < 3; ++i) {
    Outcome out = call(io, *client, "GET", "/models");
    ASSERT_TRUE(out.done.is_ok()) << out.done.to_string();
    EXPECT_EQ(out.done_calls, 1);
    EXPECT_EQ(out.status, 200);
    EXPECT_EQ(out.content_type, "application/json");
    EXPECT_EQ(out.body, "{\"echo\":\"/v1/models\"}");
  }
  EXPECT_EQ(server.connections(), 1);
}

TEST(AsyncHttpClient, ErrorStatusIsAValue) {
  TestServer server([](const SeenRequest&, ServerConnection& c) { c.respond(429, "{\"error\":{}}"); });
  asio::io_context io;
  auto client = make_client(server.url());
  Outcome out = call(io, *client, "POST", "/x");
  ASSERT_TRUE(out.done.is_ok()) << out.done.to_string();
  EXPECT_EQ(out.status, 429);
  EXPECT_EQ(out.body, "{\"error\":{}}");
}

TEST(AsyncHttpClient, RetriesOnceWhenAKeptConnectionClosesBeforeAnswering) {
  TestServer server([](const SeenRequest&, ServerConnection& connection) {
    if (connection.index == 1) {
      connection.close();
      return;
    }
    connection.respond(200, "{}");
  });
  asio::io_context io;
  auto client = make_client(server.url());
  ASSERT_TRUE(call(io, *client, "GET", "/a").done.is_ok());
  Outcome out = call(io, *client, "GET", "/b");
  ASSERT_TRUE(out.done.is_ok()) << out.done.to_string();
  EXPECT_EQ(out.status, 200);
  EXPECT_EQ(server.connections(), 2);
  const auto seen = server.requests();
  ASSERT_EQ(seen.size(), 3u);
  EXPECT_EQ(seen[2].target, "/b");
}

TEST(AsyncHttpClient, DoesNotRetryOnAFreshConnection) {
  TestServer server([](const SeenRequest&, ServerConnection& connection) { connection.close(); });
  asio::io_context io;
  auto client = make_client(server.url());
  Outcome out = call(io, *client, "POST", "/x");
  EXPECT_EQ(out.done.code(), ErrorCode::kUnavailable);
  EXPECT_EQ(out.status, 0);
  EXPECT_EQ(server.requests().size(), 1u);
}

TEST(AsyncHttpClient, ConnectionRefusedIsUnavailableNamingTheUrl) {
  std::uint16_t port;
  {
    TestServer server(ok_handler);
    port = server.port();
  }
  asio::io_context io;
  auto client = make_client("http://127.0.0.1:" + std::to_string(port));
  Outcome out = call(io, *client, "GET", "/models");
  EXPECT_EQ(out.done.code(), ErrorCode::kUnavailable);
  EXPECT_NE(out.done.message().find("127.0.0.1:" + std::to_string(port)), std::string::npos) << out.done.message();
  EXPECT_EQ(out.done_calls, 1);
}

TEST(AsyncHttpClient, BadTargetIsReportedThroughOnDone) {
  asio::io_context io;
  auto client = make_client("http://127.0.0.1:9");
  Outcome out = call(io, *client, "GET", "no-slash");
  EXPECT_EQ(out.done.code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(out.done_calls, 1);
}

TEST(AsyncHttpClient, StreamsChunksAndStopsWhenTold) {
  TestServer server([](const SeenRequest& request, ServerConnection& connection) {
    if (request.target != "/stream") {
      connection.respond(200, "{}");
      return;
    }
    connection.write("HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n");
    connection.write("7\r\ndata: 1\r\n");
    // ...and never ends: the client must stop on its own.
  });
  asio::io_context io;
  auto client = make_client(server.url());
  Outcome out = call(io, *client, "GET", "/stream", /*stop_after=*/1);
  ASSERT_TRUE(out.done.is_ok()) << out.done.to_string();
  EXPECT_EQ(out.content_type, "text/event-stream");
  ASSERT_EQ(out.chunks.size(), 1u);
  EXPECT_EQ(out.chunks[0], "data: 1");
  // The stopped connection is not reused.
  ASSERT_TRUE(call(io, *client, "GET", "/after").done.is_ok());
  EXPECT_EQ(server.connections(), 2);
}

TEST(AsyncHttpClient, StreamIdleTimeoutIsUnavailable) {
  TestServer server([](const SeenRequest&, ServerConnection& connection) {
    connection.write("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nfirst\r\n");
  });
  asio::io_context io;
  HttpClientOptions options;
  options.stream_idle_timeout_ms = 100;
  auto client = make_client(server.url(), options);
  Outcome out = call(io, *client, "GET", "/stream");
  EXPECT_EQ(out.done.code(), ErrorCode::kUnavailable);
  EXPECT_NE(out.done.message().find("no data for 100 ms"), std::string::npos) << out.done.message();
  EXPECT_EQ(out.body, "first");
}

TEST(AsyncHttpClient, ACallOutlivesItsClient) {
  TestServer server(ok_handler);
  asio::io_context io;
  auto client = make_client(server.url());
  Outcome out;
  start(io, *client, "GET", "/late", out);
  client.reset();  // an undeployed model's client, its last request in flight
  io.run();
  ASSERT_TRUE(out.done.is_ok()) << out.done.to_string();
  EXPECT_EQ(out.status, 200);
}

TEST(AsyncHttpClient, OnDoneRunsOnceWhenTheIoContextGoesFirst) {
  std::promise<void> release;
  std::shared_future<void> released = release.get_future().share();
  TestServer server([released](const SeenRequest&, ServerConnection& connection) {
    released.wait_for(std::chrono::seconds(10));  // answers only once the test is done
    connection.respond(200, "{}");
  });
  auto client = make_client(server.url());
  Outcome out;
  {
    asio::io_context io;
    start(io, *client, "GET", "/never", out);
    io.run_for(std::chrono::milliseconds(200));
    EXPECT_EQ(out.done_calls, 0);
  }  // destroyed with the call in flight
  EXPECT_EQ(out.done_calls, 1);
  EXPECT_EQ(out.done.code(), ErrorCode::kUnavailable);
  release.set_value();
}

TEST(AsyncHttpClient, OnAbandonedRunsInsteadWhenGiven) {
  std::promise<void> release;
  std::shared_future<void> released = release.get_future().share();
  TestServer server([released](const SeenRequest&, ServerConnection& connection) {
    released.wait_for(std::chrono::seconds(10));
    connection.respond(200, "{}");
  });
  auto client = make_client(server.url());
  int done = 0, abandoned = 0;
  {
    asio::io_context io;
    AsyncHttpCall call;
    call.target = "/never";
    call.on_done = [&](const Status&) { ++done; };
    call.on_abandoned = [&] { ++abandoned; };
    client->start(io, std::move(call));
    io.run_for(std::chrono::milliseconds(100));
  }
  EXPECT_EQ(done, 0);
  EXPECT_EQ(abandoned, 1);
  release.set_value();
}

TEST(AsyncHttpClient, IdleConnectionsCloseWithTheIoContext) {
  TestServer server(ok_handler);
  auto client = make_client(server.url());
  {
    asio::io_context io;
    ASSERT_TRUE(call(io, *client, "GET", "/a").done.is_ok());
  }  // its kept connection goes with it (ASan would see a socket outliving it)
  asio::io_context io;
  ASSERT_TRUE(call(io, *client, "GET", "/b").done.is_ok());
  EXPECT_EQ(server.connections(), 2);
}

class AsyncHttpClientTls : public ::testing::Test {
 protected:
  TestCertificate cert_ = TestCertificate::make();
};

TEST_F(AsyncHttpClientTls, SpeaksTls) {
  TestServer server(ok_handler, cert_);
  asio::io_context io;
  HttpClientOptions options;
  options.tls_verify = TlsVerify::kSkip;
  auto client = make_client(server.url(), options);
  for (int i = 0; i < 2; ++i) {
    Outcome out = call(io, *client, "GET", "/tls");
    ASSERT_TRUE(out.done.is_ok()) << out.done.to_string();
    EXPECT_EQ(out.body, "{\"echo\":\"/tls\"}");
  }
  EXPECT_EQ(server.connections(), 1);
}

TEST_F(AsyncHttpClientTls, RejectsAnUntrustedCertificate) {
  TestServer server(ok_handler, cert_);
  asio::io_context io;
  auto client = make_client(server.url());
  Outcome out = call(io, *client, "GET", "/tls");
  EXPECT_EQ(out.done.code(), ErrorCode::kUnavailable);
  EXPECT_NE(out.done.message().find("TLS handshake failed"), std::string::npos) << out.done.message();
}

}  // namespace
}  // namespace headroom::net
