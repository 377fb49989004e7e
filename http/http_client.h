// The outbound HTTP exchange behind every rule's `request`: one call, one value describing
// what happened. Never throws for network or server trouble.
#pragma once

#include <chrono>
#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace callbridge::http {

using Headers = std::vector<std::pair<std::string, std::string>>;

struct Request {
  std::string method;  // GET POST PUT PATCH DELETE
  std::string url;     // http://host[:port]/path?query or https://...
  Headers headers;
  std::string body;
  std::chrono::milliseconds timeout{10000};  // the whole exchange: connect, send, receive
};

enum class OutcomeKind {
  response,         // a status line arrived (any status, 1xx-5xx)
  timeout,          // the exchange did not finish within Request::timeout
  connect_error,    // DNS failure, refused, unreachable: the request surely never left
  tls_error,        // handshake or certificate verification failed
  too_large,        // the response body exceeded ClientOptions::max_response_bytes
  invalid_request,  // bad URL or method; nothing was sent
  io_error,         // the connection broke after the request started
};

std::string_view to_string(OutcomeKind kind);

struct Outcome {
  OutcomeKind kind = OutcomeKind::invalid_request;
  int status = 0;  // HTTP status when kind == response
  std::string body;
  Headers headers;  // response headers, names as received
  std::chrono::microseconds latency{0};
  std::string error;        // human-readable detail when kind != response
  bool maybe_sent = false;  // false only when the request surely never reached the server

  bool ok() const { return kind == OutcomeKind::response && status >= 200 && status < 300; }
};

struct ClientOptions {
  bool verify_tls = true;
  std::string ca_file;                        // empty: the system's trust store
  std::size_t max_response_bytes = 4u << 20;  // larger bodies give OutcomeKind::too_large
  std::size_t max_idle_per_origin = 8;        // kept-alive connections per scheme://host:port
};

// Performs requests; reuses kept-alive connections per origin. Thread-safe.
class Transport {
 public:
  virtual ~Transport() = default;
  virtual Outcome perform(const Request& request) = 0;
};

class HttpClient final : public Transport {
 public:
  explicit HttpClient(ClientOptions options = {});
  ~HttpClient() override;
  HttpClient(const HttpClient&) = delete;
  HttpClient& operator=(const HttpClient&) = delete;

  Outcome perform(const Request& request) override;

 private:
  struct Pool;
  std::unique_ptr<Pool> pool_;
};

}  // namespace callbridge::http
