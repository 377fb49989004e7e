#include "bridge/server.h"

#include <httplib.h>
#include <unistd.h>

#include <atomic>
#include <nlohmann/json.hpp>
#include <regex>
#include <thread>

#include "bridge/connection_gate.h"
#include "bridge/event_input.h"
#include "bridge/history.h"
#include "bridge/tls.h"
#include "log/log.h"
#include "rules/error_code.h"
#include "rules/input.h"

namespace callbridge::bridge {

namespace {

using Clock = std::chrono::steady_clock;

using rules::ErrorCode;

// How long writing an answer to a client may take before the connection is dropped.
constexpr auto kWriteTimeout = std::chrono::seconds(10);

void send_error(httplib::Response& res, int status, ErrorCode code, std::string_view message) {
  res.status = status;
  res.set_content(rules::error_body(code, message), "application/json");
}

// Compares without an early exit, so response time says nothing about where a guess went wrong.
bool constant_time_equal(std::string_view a, std::string_view b) {
  unsigned char diff = a.size() == b.size() ? 0 : 1;
  std::size_t n = std::max(a.size(), b.size());
  for (std::size_t i = 0; i < n; ++i) {
    unsigned char x = i < a.size() ? static_cast<unsigned char>(a[i]) : 0;
    unsigned char y = i < b.size() ? static_cast<unsigned char>(b[i]) : 0;
    diff |= x ^ y;
  }
  return diff == 0;
}

std::string presented_token(const httplib::Request& req) {
  std::string auth = req.get_header_value("Authorization");
  if (auth.size() > 7 && strncasecmp(auth.c_str(), "Bearer ", 7) == 0) return auth.substr(7);
  if (req.has_header("X-Callbridge-Token")) return req.get_header_value("X-Callbridge-Token");
  // Kompira Pigeon's clients send `X-Authorization: Token T`.
  std::string pigeon = req.get_header_value("X-Authorization");
  if (pigeon.size() > 6 && strncasecmp(pigeon.c_str(), "Token ", 6) == 0) return pigeon.substr(6);
  if (req.has_param("token")) return req.get_param_value("token");
  return {};
}

bool is_loopback(const std::string& host) {
  return host == "127.0.0.1" || host == "localhost" || host == "::1" || host.rfind("127.", 0) == 0;
}

}  // namespace

// Builds the event JSON from form fields or query parameters (`var.KEY=value` for vars).
nlohmann::json event_from_params(const httplib::Params& params, std::string& error) {
  nlohmann::json j = nlohmann::json::object();
  for (const auto& [key, value] : params) {
    if (!rules::valid_utf8(key) || !rules::valid_utf8(value)) {
      error = "parameters must be valid UTF-8";
      return nullptr;
    }
    if (key == "token") continue;
    if (key.rfind("var.", 0) == 0)
      j["vars"][key.substr(4)] = value;
    else
      j[key] = value;
  }
  return j;
}

namespace {

rules::HttpRequest to_route_request(const httplib::Request& req) {
  rules::HttpRequest out;
  out.method = req.method;
  out.path = req.path;
  for (const auto& m : req.matches) out.matches.push_back(m.str());
  for (const auto& [name, value] : req.headers) {
    std::string lower = name;
    std::transform(lower.begin(), lower.end(), lower.begin(), ::tolower);
    out.headers.emplace(std::move(lower), value);
  }
  for (const auto& [name, value] : req.params) out.params.emplace(name, value);
  out.body = req.body;
  out.remote_addr = req.remote_addr;
  return out;
}

// The library's server, except that accepted connections go to the gate, which hands whole
// requests to its workers; the library parses and routes them.
class GatedServer final : public httplib::Server {
 public:
  GatedServer() {
    // Accepting only hands the socket over (process_and_close_socket below): run it inline.
    new_task_queue = [] { return new InlineTaskQueue(); };
  }
  std::unique_ptr<ConnectionGate> gate;

  bool serve(httplib::Stream& stream, bool last, bool& closed) {
    return process_request(stream, last, closed, nullptr);
  }

 private:
  struct InlineTaskQueue final : httplib::TaskQueue {
    void enqueue(std::function<void()> fn) override { fn(); }
    void shutdown() override {}
  };

  bool process_and_close_socket(socket_t sock) override {
    if (gate)
      gate->admit(sock);
    else
      ::close(sock);
    return true;
  }
};

using TlsContext = std::unique_ptr<SSL_CTX, decltype(&SSL_CTX_free)>;

// The TLS context of server.tls, with the certificate read now; null for plain HTTP, or with
// `error` set when the listener must not start.
TlsContext make_tls_context(const rules::ServerConfig& config, std::unique_ptr<TlsCertificate>& tls,
                            std::string& error) {
  TlsContext context(nullptr, &SSL_CTX_free);
  if (config.tls_cert_file.empty()) return context;
  tls = std::make_unique<TlsCertificate>(config.tls_cert_file, config.tls_key_file);
  if (!tls->load(error)) return context;
  context.reset(SSL_CTX_new(TLS_server_method()));
  if (!context) {
    error = "cannot set up TLS";
    return context;
  }
  SSL_CTX_set_options(context.get(), SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION);
  if (!tls->install(*context, error)) context.reset();
  return context;
}

}  // namespace

struct BridgeServer::Impl {
  const ConfigHolder& config;
  Journal& journal;
  Dispatcher& dispatcher;
  Metrics& metrics;
  Intake& intake;
  const std::vector<rules::Route>& extra_routes;
  const rules::Services* services;
  std::string tls_error;                // server.tls could not be set up
  std::unique_ptr<TlsCertificate> tls;  // when server.tls is set
  TlsContext tls_context;               // the gate speaks TLS on every connection with it
  GatedServer server;
  int port = 0;
  // The listener's loop: 0 not started, 1 started, 2 finished or never to start. The library's
  // stop() does nothing before its loop runs, so a stop that comes first must not be lost.
  std::atomic<int> listen_state{0};
  std::atomic<bool> draining{false};     // SIGTERM came: not ready, still serving
  bool open_access = false;              // no tokens configured and bound to loopback
  std::vector<std::regex> public_paths;  // connector routes that authenticate by themselves

  Impl(const ConfigHolder& c, Journal& j, Dispatcher& d, Metrics& m, Intake& i,
       const std::vector<rules::Route>& r, const rules::Services* s)
      : config(c),
        journal(j),
        dispatcher(d),
        metrics(m),
        intake(i),
        extra_routes(r),
        services(s),
        tls_context(make_tls_context(c.get()->server, tls, tls_error)) {}

  bool is_public(const httplib::Request& req) const {
    if (req.path == "/healthz" || req.path == "/readyz") return true;
    for (const auto& re : public_paths)
      if (std::regex_match(req.path, re)) return true;
    return false;
  }

  void mount(const rules::Route& route) {
    if (route.auth == rules::RouteAuth::none) public_paths.emplace_back(route.pattern);
    auto handler = [handle = route.handler](const httplib::Request& req, httplib::Response& res) {
      rules::HttpResponse out;
      handle(to_route_request(req), out);
      res.status = out.status;
      for (const auto& [name, value] : out.headers) res.set_header(name, value);
      res.set_content(out.body, out.content_type);
    };
    if (route.method == "GET")
      server.Get(route.pattern, handler);
    else if (route.method == "POST")
      server.Post(route.pattern, handler);
    else if (route.method == "PUT")
      server.Put(route.pattern, handler);
    else if (route.method == "DELETE")
      server.Delete(route.pattern, handler);
  }

  bool authorized(const httplib::Request& req) {
    auto cfg = config.get();
    if (cfg->server.tokens.empty()) return open_access;
    std::string token = presented_token(req);
    bool ok = false;
    for (const auto& t : cfg->server.tokens) ok |= constant_time_equal(token, t);
    return ok;
  }

  rules::InputLimits input_limits() const {
    auto cfg = config.get();
    return {cfg->server.max_json_depth, cfg->server.max_expanded_bytes};
  }

  void accept_event(httplib::Response& res, nlohmann::json json) {
    auto started = Clock::now();
    std::string error;
    auto event = event_from_json(json, error);
    if (!event) {
      metrics.rejected_invalid++;
      return send_error(res, 400, ErrorCode::invalid_event, error);
    }
    Intake::Rejection rejection;
    auto submitted = intake.accept(*event, nullptr, rejection);
    if (!submitted) {
      res.set_header("Retry-After", std::to_string(rejection.retry_after_seconds));
      return send_error(res, rejection.status, rejection.error_code(), rejection.message);
    }
    nlohmann::ordered_json body;
    body["event_id"] = submitted->event_id;
    body["call_id"] = submitted->call_id;
    metrics.intake_latency.observe(
        std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - started));
    res.status = 202;
    res.set_content(body.dump(), "application/json");
  }

  void routes() {
    server.set_pre_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
      if (is_public(req)) return httplib::Server::HandlerResponse::Unhandled;
      if (!authorized(req)) {
        metrics.rejected_unauthorized++;
        res.set_header("WWW-Authenticate", "Bearer");
        send_error(res, 401, ErrorCode::unauthorized, "a valid token is required");
        return httplib::Server::HandlerResponse::Handled;
      }
      return httplib::Server::HandlerResponse::Unhandled;
    });

    server.Post("/v1/events", [this](const httplib::Request& req, httplib::Response& res) {
      std::string type = req.get_header_value("Content-Type");
      if (rules::is_json_content_type(type)) {
        std::string error;
        auto json = rules::parse_json_body(req.body, input_limits(), error);
        if (json.is_discarded()) {
          metrics.rejected_invalid++;
          return send_error(res, 400, ErrorCode::invalid_json, error);
        }
        return accept_event(res, std::move(json));
      }
      if (rules::is_form_content_type(type)) {
        std::string error;
        auto json = event_from_params(req.params, error);
        if (json.is_null()) {
          metrics.rejected_invalid++;
          return send_error(res, 400, ErrorCode::invalid_encoding, error);
        }
        return accept_event(res, std::move(json));
      }
      metrics.rejected_invalid++;
      send_error(res, 415, ErrorCode::unsupported_media_type,
                 "send application/json or application/x-www-form-urlencoded");
    });

    server.Get("/v1/events", [this](const httplib::Request& req, httplib::Response& res) {
      std::string error;
      auto json = event_from_params(req.params, error);
      if (json.is_null()) {
        metrics.rejected_invalid++;
        return send_error(res, 400, ErrorCode::invalid_encoding, error);
      }
      accept_event(res, std::move(json));
    });

    // The rest of the path, '/' included: a PBX chooses its call IDs (`a/b` is asked for as
    // `a%2Fb`, which the library has decoded by now).
    server.Get(R"(/v1/calls/(.+))", [this](const httplib::Request& req, httplib::Response& res) {
      std::string call_id = req.matches[1];
      bool found = false;
      std::string history = call_history(journal, call_id, found, *config.get()->secrets);
      if (!found) return send_error(res, 404, ErrorCode::not_found, "no such call");
      res.set_content(history, "application/json");
    });

    server.Get("/healthz", [this](const httplib::Request&, httplib::Response& res) {
      nlohmann::ordered_json body;
      body["status"] = "ok";
      body["queue_depth"] = dispatcher.depth();
      res.set_content(body.dump(), "application/json");
    });

    // Readiness, for a load balancer or an orchestrator: whether events can be accepted now.
    // /healthz stays liveness (the process answers).
    server.Get("/readyz", [this](const httplib::Request&, httplib::Response& res) {
      std::string reason;
      nlohmann::ordered_json body;
      if (draining) {
        body["ready"] = false;
        body["reason"] = "draining";
      } else if (!journal.writable(reason)) {
        body["ready"] = false;
        body["reason"] = "journal cannot be written: " + reason;
      } else {
        body["ready"] = true;
      }
      if (!body["ready"]) res.status = 503;
      res.set_content(body.dump(), "application/json");
    });

    server.Get("/metrics", [this](const httplib::Request&, httplib::Response& res) {
      std::string text = metrics.render();
      if (services)
        for (const auto& [name, service] : services->all()) service->metrics(text);
      res.set_content(text, "text/plain; version=0.0.4");
    });

    for (const auto& route : extra_routes) mount(route);

    server.set_error_handler([this](const httplib::Request&, httplib::Response& res) {
      if (!res.body.empty()) return;
      switch (res.status) {
        case 404:
          send_error(res, 404, ErrorCode::not_found, "no such endpoint");
          break;
        case 413:
          metrics.rejected_too_large++;
          send_error(res, 413, ErrorCode::too_large,
                     "the request body is larger than server.max_body_bytes");
          break;
        case 405:
          send_error(res, 405, ErrorCode::method_not_allowed, "method not allowed here");
          break;
        default:
          send_error(res, res.status, ErrorCode::http_error, "request failed");
          break;
      }
    });
    server.set_exception_handler(
        [](const httplib::Request&, httplib::Response& res, std::exception_ptr) {
          send_error(res, 500, ErrorCode::internal, "internal error");
        });
  }
};

BridgeServer::BridgeServer(const ConfigHolder& config, Journal& journal, Dispatcher& dispatcher,
                           Metrics& metrics, Intake& intake,
                           const std::vector<rules::Route>& routes, const rules::Services* services)
    : impl_(
          std::make_unique<Impl>(config, journal, dispatcher, metrics, intake, routes, services)) {}

BridgeServer::~BridgeServer() {
  stop();
}

bool BridgeServer::bind(const std::string& listen, std::string& error) {
  auto cfg = impl_->config.get();
  auto colon = listen.rfind(':');
  std::string host = listen.substr(0, colon);
  if (host.size() > 2 && host.front() == '[' && host.back() == ']')
    host = host.substr(1, host.size() - 2);
  int port = std::stoi(listen.substr(colon + 1));
  if (!impl_->tls_error.empty()) {
    error = "server.tls: " + impl_->tls_error;
    return false;
  }
  if (cfg->server.tokens.empty()) {
    if (!is_loopback(host)) {
      error = "server.tokens is empty: refusing to listen on " + host + " without authentication";
      return false;
    }
    impl_->open_access = true;
    log::write(log::Level::warn,
               "no server.tokens configured: accepting unauthenticated requests on loopback only");
  }
  auto& s = impl_->server;
  GateLimits limits;
  limits.max_body_bytes = cfg->server.max_body_bytes;
  limits.read_timeout = std::chrono::milliseconds(cfg->server.read_timeout_ms);
  limits.idle_timeout = std::chrono::seconds(cfg->server.keep_alive_timeout_seconds);
  limits.write_timeout = kWriteTimeout;
  limits.max_waiting = static_cast<std::size_t>(cfg->server.max_waiting_connections);
  limits.keep_alive_max_count = cfg->server.keep_alive_max_count;
  limits.threads = cfg->server.threads;
  auto* metrics = &impl_->metrics;
  s.gate = std::make_unique<ConnectionGate>(
      limits,
      [server = &s](httplib::Stream& stream, bool last, bool& closed) {
        return server->serve(stream, last, closed);
      },
      [metrics](int status) {
        if (status == 413) metrics->rejected_too_large++;
        if (status == 400 || status == 408 || status == 431) metrics->rejected_invalid++;
      },
      impl_->tls_context.get());
  s.set_tcp_nodelay(true);
  s.set_keep_alive_max_count(static_cast<std::size_t>(cfg->server.keep_alive_max_count));
  s.set_keep_alive_timeout(cfg->server.keep_alive_timeout_seconds);
  s.set_read_timeout(10, 0);
  s.set_write_timeout(10, 0);
  s.set_payload_max_length(cfg->server.max_body_bytes);
  impl_->routes();
  if (port == 0) {
    impl_->port = s.bind_to_any_port(host.c_str());
  } else {
    impl_->port = s.bind_to_port(host.c_str(), port) ? port : -1;
  }
  if (impl_->port <= 0) {
    error = "cannot listen on " + listen;
    return false;
  }
  return true;
}

int BridgeServer::port() const {
  return impl_->port;
}

void BridgeServer::run() {
  int idle = 0;
  if (!impl_->listen_state.compare_exchange_strong(idle, 1)) return;  // stopped before it ran
  impl_->server.listen_after_bind();
  impl_->listen_state = 2;
}

void BridgeServer::stop() {
  int idle = 0;
  if (!impl_->listen_state.compare_exchange_strong(idle, 2)) {
    // run() has begun: wait until the library's loop is up, so that its stop() reaches it.
    while (impl_->listen_state == 1 && !impl_->server.is_running())
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    if (impl_->listen_state == 1) impl_->server.stop();
  }
  if (impl_->server.gate) impl_->server.gate->stop();
}

void BridgeServer::drain() {
  impl_->draining = true;
}

bool BridgeServer::draining() const {
  return impl_->draining;
}

bool BridgeServer::reload_tls(std::string& error) {
  return !impl_->tls || impl_->tls->load(error);
}

bool BridgeServer::tls() const {
  return impl_->tls != nullptr;
}

}  // namespace callbridge::bridge
