// A raw HTTP/1.1 test server for the clients' tests: each request goes to a
// handler that writes bytes back, so tests can send anything, malformed
// responses included. Tests only.
#pragma once

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <sys/socket.h>

#include <atomic>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace headroom::net::testing {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = boost::beast::http;
namespace ssl = boost::asio::ssl;
using tcp = boost::asio::ip::tcp;

// A self-signed certificate for "localhost" and 127.0.0.1, made in memory.
struct TestCertificate {
  std::string cert_pem;
  std::string key_pem;

  static TestCertificate make() {
    EVP_PKEY* key = EVP_EC_gen("P-256");
    X509* cert = X509_new();
    X509_set_version(cert, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(cert), 1);
    X509_gmtime_adj(X509_getm_notBefore(cert), -3600);
    X509_gmtime_adj(X509_getm_notAfter(cert), 24 * 3600);
    X509_set_pubkey(cert, key);
    X509_NAME* name = X509_get_subject_name(cert);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, reinterpret_cast<const unsigned char*>("localhost"), -1, -1,
                               0);
    X509_set_issuer_name(cert, name);
    X509V3_CTX ctx;
    X509V3_set_ctx_nodb(&ctx);
    X509V3_set_ctx(&ctx, cert, cert, nullptr, nullptr, 0);
    for (auto [nid, value] : {std::pair{NID_subject_alt_name, "DNS:localhost,IP:127.0.0.1"},
                              std::pair{NID_basic_constraints, "critical,CA:TRUE"}}) {
      X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value);
      X509_add_ext(cert, ext, -1);
      X509_EXTENSION_free(ext);
    }
    X509_sign(cert, key, EVP_sha256());
    TestCertificate out;
    BIO* bio = BIO_new(BIO_s_mem());
    PEM_write_bio_X509(bio, cert);
    out.cert_pem = drain(bio);
    PEM_write_bio_PrivateKey(bio, key, nullptr, nullptr, 0, nullptr, nullptr);
    out.key_pem = drain(bio);
    BIO_free(bio);
    X509_free(cert);
    EVP_PKEY_free(key);
    return out;
  }

  static std::string drain(BIO* bio) {
    char* data = nullptr;
    const long size = BIO_get_mem_data(bio, &data);
    std::string text(data, static_cast<std::size_t>(size));
    (void)BIO_reset(bio);
    return text;
  }
};

inline std::string response_text(int status, std::string_view body, const std::string& extra_headers = "") {
  return "HTTP/1.1 " + std::to_string(status) + " X\r\nContent-Length: " + std::to_string(body.size()) + "\r\n" +
         extra_headers + "\r\n" + std::string(body);
}

struct SeenRequest {
  std::string method;
  std::string target;
  std::string body;
  std::string host;
  std::string user_agent;
  std::string content_type;
  std::string authorization;
};

// The server's side of one connection, as a handler sees it.
class ServerConnection {
 public:
  explicit ServerConnection(std::function<void(std::string_view)> write) : write_(std::move(write)) {}
  void write(std::string_view bytes) { write_(bytes); }
  void respond(int status, std::string_view body, const std::string& extra_headers = "") {
    write(response_text(status, body, extra_headers));
  }
  void close() { closed_ = true; }
  bool closed() const { return closed_; }
  // How many requests came before this one on this connection.
  int index = 0;

 private:
  std::function<void(std::string_view)> write_;
  bool closed_ = false;
};

using Handler = std::function<void(const SeenRequest&, ServerConnection&)>;

// A tiny HTTP/1.1 server on 127.0.0.1, port 0, one connection at a time, on
// a background thread. Each request goes to the handler, which writes raw
// bytes back: so tests can send anything, malformed responses included.
class TestServer {
 public:
  explicit TestServer(Handler handler, std::optional<TestCertificate> tls = std::nullopt)
      : handler_(std::move(handler)), acceptor_(io_, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0)) {
    if (tls) {
      tls_context_.emplace(ssl::context::tls_server);
      tls_context_->use_certificate_chain(asio::buffer(tls->cert_pem));
      tls_context_->use_private_key(asio::buffer(tls->key_pem), ssl::context::pem);
    }
    port_ = acceptor_.local_endpoint().port();
    thread_ = std::thread([this] { serve(); });
  }

  ~TestServer() {
    stopping_ = true;
    const int fd = current_fd_.load();
    if (fd >= 0) ::shutdown(fd, SHUT_RDWR);
    beast::error_code ignored;
    tcp::socket wake(io_);
    wake.connect(acceptor_.local_endpoint(), ignored);
    thread_.join();
  }

  std::string url() const {
    return std::string(tls_context_ ? "https" : "http") + "://127.0.0.1:" + std::to_string(port_);
  }
  std::uint16_t port() const { return port_; }
  int connections() const { return connections_.load(); }
  std::vector<SeenRequest> requests() const {
    std::lock_guard lock(mutex_);
    return requests_;
  }

 private:
  void serve() {
    while (!stopping_) {
      tcp::socket socket(io_);
      beast::error_code ec;
      acceptor_.accept(socket, ec);
      if (ec || stopping_) break;
      ++connections_;
      current_fd_ = socket.native_handle();
      if (tls_context_) {
        ssl::stream<tcp::socket> stream(std::move(socket), *tls_context_);
        stream.handshake(ssl::stream_base::server, ec);
        if (!ec) serve_connection(stream);
      } else {
        serve_connection(socket);
      }
      current_fd_ = -1;
    }
  }

  template <typename Stream>
  void serve_connection(Stream& stream) {
    beast::flat_buffer buffer;
    ServerConnection connection([&](std::string_view bytes) {
      beast::error_code ignored;
      asio::write(stream, asio::buffer(bytes.data(), bytes.size()), ignored);
    });
    for (; !stopping_; ++connection.index) {
      http::request<http::string_body> req;
      beast::error_code ec;
      http::read(stream, buffer, req, ec);
      if (ec) return;
      SeenRequest seen{std::string(req.method_string()),
                       std::string(req.target()),
                       req.body(),
                       std::string(req[http::field::host]),
                       std::string(req[http::field::user_agent]),
                       std::string(req[http::field::content_type]),
                       std::string(req[http::field::authorization])};
      {
        std::lock_guard lock(mutex_);
        requests_.push_back(seen);
      }
      handler_(seen, connection);
      if (connection.closed()) return;
    }
  }

  Handler handler_;
  asio::io_context io_;
  tcp::acceptor acceptor_;
  std::optional<ssl::context> tls_context_;
  std::uint16_t port_ = 0;
  std::thread thread_;
  std::atomic<bool> stopping_{false};
  std::atomic<int> current_fd_{-1};
  std::atomic<int> connections_{0};
  mutable std::mutex mutex_;
  std::vector<SeenRequest> requests_;
};

inline void ok_handler(const SeenRequest& request, ServerConnection& connection) {
  connection.respond(200, "{\"echo\":\"" + request.target + "\"}",
                     "Content-Type: application/json\r\nX-Request-Id: req_1\r\n");
}

}  // namespace headroom::net::testing
