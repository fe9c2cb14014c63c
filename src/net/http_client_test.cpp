#include "net/http_client.h"

#include "net/test_server.h"

#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <sys/socket.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <future>
#include <mutex>
#include <optional>
#include <thread>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>

namespace headroom::net {
namespace {

using namespace testing;

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = boost::beast::http;
namespace ssl = boost::asio::ssl;
using tcp = boost::asio::ip::tcp;

HttpClient make_client(const std::string& url, HttpClientOptions options = {}) {
  auto client = HttpClient::create(url, std::move(options));
  EXPECT_TRUE(client.is_ok()) << client.status().to_string();
  return std::move(client).value();
}

TEST(HttpClient, GetReturnsStatusBodyAndHeaders) {
  TestServer server(ok_handler);
  HttpClient client = make_client(server.url());
  auto response = client.request("GET", "/v1/me", {}, {{"Authorization", "Bearer hr_x"}});
  ASSERT_TRUE(response.is_ok()) << response.status().to_string();
  EXPECT_EQ(response->status, 200);
  EXPECT_EQ(response->body, "{\"echo\":\"/v1/me\"}");
  EXPECT_EQ(response->header("x-request-id"), "req_1");
  EXPECT_EQ(response->header("CONTENT-TYPE"), "application/json");
  EXPECT_EQ(response->header("missing"), "");
  const auto seen = server.requests();
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_EQ(seen[0].method, "GET");
  EXPECT_EQ(seen[0].host, "127.0.0.1:" + std::to_string(server.port()));
  EXPECT_EQ(seen[0].authorization, "Bearer hr_x");
  EXPECT_EQ(seen[0].user_agent.rfind("headroom/", 0), 0u);
}

TEST(HttpClient, PostSendsJsonBody) {
  TestServer server(ok_handler);
  HttpClient client = make_client(server.url());
  auto response = client.request("POST", "/v1/tenants", R"({"name":"acme"})");
  ASSERT_TRUE(response.is_ok()) << response.status().to_string();
  const auto seen = server.requests();
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_EQ(seen[0].method, "POST");
  EXPECT_EQ(seen[0].body, R"({"name":"acme"})");
  EXPECT_EQ(seen[0].content_type, "application/json");
}

TEST(HttpClient, ErrorStatusIsAValueNotAnError) {
  TestServer server([](const SeenRequest&, ServerConnection& connection) {
    connection.respond(404, R"({"error":{"code":"not_found"}})", "x-request-id: req_9\r\n");
  });
  HttpClient client = make_client(server.url());
  auto response = client.request("GET", "/v1/tenants/ten_x");
  ASSERT_TRUE(response.is_ok()) << response.status().to_string();
  EXPECT_EQ(response->status, 404);
  EXPECT_EQ(response->header("X-Request-Id"), "req_9");
}

TEST(HttpClient, BaseUrlPathIsAPrefix) {
  TestServer server(ok_handler);
  HttpClient client = make_client(server.url() + "/headroom/");
  EXPECT_EQ(client.base_url(), server.url() + "/headroom");
  auto response = client.request("GET", "/v1/me?x=1");
  ASSERT_TRUE(response.is_ok()) << response.status().to_string();
  EXPECT_EQ(server.requests().at(0).target, "/headroom/v1/me?x=1");
}

TEST(HttpClient, KeepsTheConnectionAlive) {
  TestServer server(ok_handler);
  HttpClient client = make_client(server.url());
  for (int i = 0; i < 3; ++i) {
    auto response = client.request("GET", "/v1/me");
    ASSERT_TRUE(response.is_ok()) << response.status().to_string();
  }
  EXPECT_EQ(server.connections(), 1);
  EXPECT_EQ(server.requests().size(), 3u);
}

TEST(HttpClient, ConnectionCloseIsHonoured) {
  TestServer server([](const SeenRequest&, ServerConnection& connection) {
    connection.respond(200, "{}", "Connection: close\r\n");
    connection.close();
  });
  HttpClient client = make_client(server.url());
  for (int i = 0; i < 2; ++i) {
    auto response = client.request("GET", "/v1/me");
    ASSERT_TRUE(response.is_ok()) << response.status().to_string();
  }
  EXPECT_EQ(server.connections(), 2);
}

TEST(HttpClient, ReconnectsWhenTheServerClosedAKeptConnection) {
  // The server answers as if keeping the connection, then closes it.
  TestServer server([](const SeenRequest&, ServerConnection& connection) {
    connection.respond(200, "{}");
    connection.close();
  });
  HttpClient client = make_client(server.url());
  for (int i = 0; i < 3; ++i) {
    auto response = client.request("POST", "/v1/tenants", "{}");
    ASSERT_TRUE(response.is_ok()) << response.status().to_string();
  }
  EXPECT_EQ(server.connections(), 3);
  EXPECT_EQ(server.requests().size(), 3u);  // none sent twice
}

TEST(HttpClient, RetriesOnceWhenAKeptConnectionClosesBeforeAnswering) {
  // The second request on each connection is dropped unanswered, as a server
  // that closes an idle connection just as a request arrives does.
  TestServer server([](const SeenRequest&, ServerConnection& connection) {
    if (connection.index == 1) {
      connection.close();
      return;
    }
    connection.respond(200, "{}");
  });
  HttpClient client = make_client(server.url());
  ASSERT_TRUE(client.request("GET", "/a").is_ok());
  auto response = client.request("GET", "/b");
  ASSERT_TRUE(response.is_ok()) << response.status().to_string();
  EXPECT_EQ(response->status, 200);
  EXPECT_EQ(server.connections(), 2);
  const auto seen = server.requests();
  ASSERT_EQ(seen.size(), 3u);
  EXPECT_EQ(seen[1].target, "/b");
  EXPECT_EQ(seen[2].target, "/b");
}

TEST(HttpClient, DoesNotRetryOnAFreshConnection) {
  TestServer server([](const SeenRequest&, ServerConnection& connection) { connection.close(); });
  HttpClient client = make_client(server.url());
  auto response = client.request("POST", "/v1/tenants", "{}");
  ASSERT_FALSE(response.is_ok());
  EXPECT_EQ(response.status().code(), ErrorCode::kUnavailable);
  EXPECT_NE(response.status().message().find("POST " + server.url() + "/v1/tenants"), std::string::npos)
      << response.status().message();
  EXPECT_NE(response.status().message().find("closed"), std::string::npos) << response.status().message();
  EXPECT_EQ(server.requests().size(), 1u);
}

TEST(HttpClient, ReadsAnAnswerSentBeforeTheBodyWasTaken) {
  // A server that refuses a body after its header, answers 413 and closes
  // without reading it, as servers do with bodies over their limit.
  asio::io_context io;
  tcp::acceptor acceptor(io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
  const std::string url = "http://127.0.0.1:" + std::to_string(acceptor.local_endpoint().port());
  std::thread server([&] {
    for (int i = 0; i < 2; ++i) {
      tcp::socket socket(io);
      beast::error_code ec;
      acceptor.accept(socket, ec);
      if (ec) return;
      std::string head;
      char c = 0;
      while (head.find("\r\n\r\n") == std::string::npos && asio::read(socket, asio::buffer(&c, 1), ec) == 1) {
        head += c;
      }
      asio::write(socket, asio::buffer(response_text(413, R"({"error":{"code":"payload_too_large"}})",
                                                     "Connection: close\r\n")),
                  ec);
      socket.close(ec);
    }
  });
  HttpClient client = make_client(url);
  const std::string body(8 * 1024 * 1024, 'x');  // more than the socket buffers hold
  for (int i = 0; i < 2; ++i) {
    auto response = client.request("POST", "/v1/tenants", body);
    ASSERT_TRUE(response.is_ok()) << response.status().to_string();
    EXPECT_EQ(response->status, 413);
  }
  server.join();
}

TEST(HttpClient, ConnectionRefusedIsUnavailableNamingTheUrl) {
  std::string url;
  {
    asio::io_context io;
    tcp::acceptor acceptor(io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
    url = "http://127.0.0.1:" + std::to_string(acceptor.local_endpoint().port());
  }
  HttpClient client = make_client(url);
  auto response = client.request("GET", "/v1/me");
  ASSERT_FALSE(response.is_ok());
  EXPECT_EQ(response.status().code(), ErrorCode::kUnavailable);
  EXPECT_NE(response.status().message().find("cannot reach " + url), std::string::npos) << response.status().message();
  EXPECT_NE(response.status().message().find("refused"), std::string::npos) << response.status().message();
}

TEST(HttpClient, ReadTimeoutIsUnavailable) {
  std::promise<void> release;
  std::shared_future<void> released = release.get_future().share();
  TestServer server([released](const SeenRequest&, ServerConnection& connection) {
    released.wait();  // never answers; the client gives up first
    connection.close();
  });
  HttpClientOptions options;
  options.read_timeout_ms = 100;
  HttpClient client = make_client(server.url(), options);
  auto response = client.request("GET", "/slow");
  release.set_value();
  ASSERT_FALSE(response.is_ok());
  EXPECT_EQ(response.status().code(), ErrorCode::kUnavailable);
  EXPECT_NE(response.status().message().find("within 100 ms"), std::string::npos) << response.status().message();
}

TEST(HttpClient, MalformedResponseIsUnavailable) {
  TestServer server([](const SeenRequest&, ServerConnection& connection) {
    connection.write("SMTP ready\r\n\r\n");
    connection.close();
  });
  HttpClient client = make_client(server.url());
  auto response = client.request("GET", "/v1/me");
  ASSERT_FALSE(response.is_ok());
  EXPECT_EQ(response.status().code(), ErrorCode::kUnavailable);
  EXPECT_NE(response.status().message().find("malformed response"), std::string::npos) << response.status().message();
}

TEST(HttpClient, BodyOverTheLimitIsUnavailable) {
  TestServer server([](const SeenRequest&, ServerConnection& connection) {
    connection.respond(200, std::string(1000, 'x'));
  });
  HttpClientOptions options;
  options.max_body_bytes = 100;
  HttpClient client = make_client(server.url(), options);
  auto response = client.request("GET", "/big");
  ASSERT_FALSE(response.is_ok());
  EXPECT_NE(response.status().message().find("over 100 bytes"), std::string::npos) << response.status().message();
}

TEST(HttpClient, HeadResponseHasNoBody) {
  TestServer server([](const SeenRequest&, ServerConnection& connection) {
    connection.write("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n");
  });
  HttpClient client = make_client(server.url());
  auto response = client.request("HEAD", "/v1/me");
  ASSERT_TRUE(response.is_ok()) << response.status().to_string();
  EXPECT_EQ(response->body, "");
  ASSERT_TRUE(client.request("HEAD", "/v1/me").is_ok());
  EXPECT_EQ(server.connections(), 1);
}

TEST(HttpClient, RejectsBadUrlsAndArguments) {
  for (const char* url : {"", "ftp://host/", "http://", "not a url", "http://user@host/", "http://host/?q=1",
                          "http://host:0/", "http://host:99999/"}) {
    auto client = HttpClient::create(url);
    ASSERT_FALSE(client.is_ok()) << url;
    EXPECT_EQ(client.status().code(), ErrorCode::kInvalidArgument) << url;
  }
  TestServer server(ok_handler);
  HttpClient client = make_client(server.url());
  EXPECT_EQ(client.request("GET", "v1/me").status().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(client.request("GET", "/v1/me x").status().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(client.request("GE T", "/v1/me").status().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(client.request("GET", "/", {}, {{"X-A", "b\r\nX-Injected: 1"}}).status().code(),
            ErrorCode::kInvalidArgument);
  EXPECT_EQ(client.request("GET", "/", {}, {{"Content-Length", "3"}}).status().code(), ErrorCode::kInvalidArgument);
  EXPECT_TRUE(server.requests().empty());
}

TEST(HttpClient, StreamDeliversChunksAsTheyArrive) {
  std::promise<void> first_chunk_seen;
  std::shared_future<void> seen = first_chunk_seen.get_future().share();
  TestServer server([seen](const SeenRequest& request, ServerConnection& connection) {
    if (request.target != "/stream") {
      connection.respond(200, "{}");
      return;
    }
    connection.write("HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n");
    connection.write("7\r\ndata: 1\r\n");
    // The second chunk is sent only once the client has handed on the first:
    // the client cannot be waiting for the whole body.
    if (seen.wait_for(std::chrono::seconds(10)) != std::future_status::ready) return;
    connection.write("8\r\ndata: 22\r\n0\r\n\r\n");
  });
  HttpClient client = make_client(server.url());
  std::vector<std::string> chunks;
  int head_status = 0;
  std::string content_type;
  const Status status = client.request_stream(
      "GET", "/stream", {}, {},
      [&](std::string_view chunk) {
        if (chunks.empty()) first_chunk_seen.set_value();
        chunks.emplace_back(chunk);
        return true;
      },
      [&](const HttpClientResponse& head) {
        head_status = head.status;
        content_type = head.header("content-type");
      });
  ASSERT_TRUE(status.is_ok()) << status.to_string();
  EXPECT_EQ(head_status, 200);
  EXPECT_EQ(content_type, "text/event-stream");
  ASSERT_EQ(chunks.size(), 2u);
  EXPECT_EQ(chunks[0], "data: 1");
  EXPECT_EQ(chunks[1], "data: 22");
  // The stream ended cleanly, so the connection carries the next request.
  ASSERT_TRUE(client.request("GET", "/after").is_ok());
  EXPECT_EQ(server.connections(), 1);
}

TEST(HttpClient, StreamStopsWhenTheCallbackSaysSo) {
  TestServer server([](const SeenRequest& request, ServerConnection& connection) {
    if (request.target != "/stream") {
      connection.respond(200, "{}");
      return;
    }
    connection.write("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nfirst\r\n");
    // ...and never ends: the client must stop on its own.
  });
  HttpClient client = make_client(server.url());
  int calls = 0;
  const Status status = client.request_stream("GET", "/stream", {}, {}, [&](std::string_view) {
    ++calls;
    return false;
  });
  ASSERT_TRUE(status.is_ok()) << status.to_string();
  EXPECT_EQ(calls, 1);
  ASSERT_TRUE(client.request("GET", "/after").is_ok());
  EXPECT_EQ(server.connections(), 2);
}

TEST(HttpClient, StreamOfAnErrorResponseShowsItsStatus) {
  TestServer server([](const SeenRequest&, ServerConnection& connection) {
    connection.respond(404, R"({"error":{"code":"not_found"}})");
  });
  HttpClient client = make_client(server.url());
  int head_status = 0;
  std::string body;
  const Status status = client.request_stream(
      "GET", "/v1/jobs/x/logs", {}, {},
      [&](std::string_view chunk) {
        body += chunk;
        return true;
      },
      [&](const HttpClientResponse& head) { head_status = head.status; });
  ASSERT_TRUE(status.is_ok()) << status.to_string();
  EXPECT_EQ(head_status, 404);
  EXPECT_EQ(body, R"({"error":{"code":"not_found"}})");
}

TEST(HttpClient, StreamCallbackExceptionIsAStatus) {
  TestServer server(ok_handler);
  HttpClient client = make_client(server.url());
  const Status status = client.request_stream("GET", "/x", {}, {}, [](std::string_view) -> bool {
    throw std::runtime_error("boom");
  });
  EXPECT_EQ(status.code(), ErrorCode::kInternal);
  EXPECT_NE(status.message().find("boom"), std::string::npos);
  ASSERT_TRUE(client.request("GET", "/after").is_ok());
}

TEST(HttpClient, StreamIdleTimeoutIsUnavailable) {
  std::promise<void> release;
  std::shared_future<void> released = release.get_future().share();
  TestServer server([released](const SeenRequest&, ServerConnection& connection) {
    connection.write("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n");
    released.wait();
    connection.close();
  });
  HttpClientOptions options;
  options.stream_idle_timeout_ms = 100;
  HttpClient client = make_client(server.url(), options);
  const Status status = client.request_stream("GET", "/quiet", {}, {}, [](std::string_view) { return true; });
  release.set_value();
  EXPECT_EQ(status.code(), ErrorCode::kUnavailable);
  EXPECT_NE(status.message().find("no data for 100 ms"), std::string::npos) << status.message();
}

class HttpClientTls : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { certificate_ = new TestCertificate(TestCertificate::make()); }
  static void TearDownTestSuite() {
    delete certificate_;
    certificate_ = nullptr;
  }
  std::string write_ca_file() {
    const std::string path = ::testing::TempDir() + "/headroom_http_client_test_ca.pem";
    std::ofstream(path) << certificate_->cert_pem;
    return path;
  }
  static TestCertificate* certificate_;
};
TestCertificate* HttpClientTls::certificate_ = nullptr;

TEST_F(HttpClientTls, VerifiesAgainstAGivenCaFile) {
  TestServer server(ok_handler, *certificate_);
  HttpClientOptions options;
  options.ca_file = write_ca_file();
  HttpClient client = make_client(server.url(), options);
  for (int i = 0; i < 2; ++i) {
    auto response = client.request("GET", "/v1/me");
    ASSERT_TRUE(response.is_ok()) << response.status().to_string();
    EXPECT_EQ(response->status, 200);
  }
  EXPECT_EQ(server.connections(), 1);
  client.close();  // the test server serves one connection at a time
  // "localhost" is in the certificate too, and goes out as SNI.
  HttpClient by_name = make_client("https://localhost:" + std::to_string(server.port()), options);
  auto response = by_name.request("GET", "/v1/me");
  ASSERT_TRUE(response.is_ok()) << response.status().to_string();
}

TEST_F(HttpClientTls, RejectsAnUntrustedCertificate) {
  TestServer server(ok_handler, *certificate_);
  HttpClient client = make_client(server.url());  // the system store does not know this certificate
  auto response = client.request("GET", "/v1/me");
  ASSERT_FALSE(response.is_ok());
  EXPECT_EQ(response.status().code(), ErrorCode::kUnavailable);
  EXPECT_NE(response.status().message().find("TLS handshake failed"), std::string::npos)
      << response.status().message();
  EXPECT_NE(response.status().message().find(server.url()), std::string::npos) << response.status().message();
}

TEST_F(HttpClientTls, SkipsVerificationWhenAsked) {
  TestServer server(ok_handler, *certificate_);
  HttpClientOptions options;
  options.tls_verify = TlsVerify::kSkip;
  HttpClient client = make_client(server.url(), options);
  auto response = client.request("GET", "/v1/me");
  ASSERT_TRUE(response.is_ok()) << response.status().to_string();
}

TEST_F(HttpClientTls, PlainHttpAgainstTlsIsUnavailable) {
  TestServer server(ok_handler, *certificate_);
  HttpClientOptions options;
  options.read_timeout_ms = 2000;
  HttpClient client = make_client("http://127.0.0.1:" + std::to_string(server.port()), options);
  auto response = client.request("GET", "/v1/me");
  ASSERT_FALSE(response.is_ok());
  EXPECT_EQ(response.status().code(), ErrorCode::kUnavailable);
}

TEST(HttpClient, MissingCaFileFailsAtCreate) {
  HttpClientOptions options;
  options.ca_file = "/nonexistent/ca.pem";
  auto client = HttpClient::create("https://127.0.0.1:1", options);
  ASSERT_FALSE(client.is_ok());
  EXPECT_EQ(client.status().code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(client.status().message().find("/nonexistent/ca.pem"), std::string::npos);
}

}  // namespace
}  // namespace headroom::net
