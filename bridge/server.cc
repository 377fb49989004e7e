#include "bridge/server.h"

#include <httplib.h>

#include <nlohmann/json.hpp>

#include "bridge/event_input.h"
#include "bridge/history.h"
#include "bridge/log.h"

namespace callbridge::bridge {

namespace {

using Clock = std::chrono::steady_clock;

void send_error(httplib::Response& res, int status, std::string_view code,
                std::string_view message) {
  nlohmann::ordered_json body;
  body["error"]["code"] = code;
  body["error"]["message"] = message;
  res.status = status;
  res.set_content(body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace),
                  "application/json");
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
  if (req.has_param("token")) return req.get_param_value("token");
  return {};
}

bool is_loopback(const std::string& host) {
  return host == "127.0.0.1" || host == "localhost" || host == "::1" || host.rfind("127.", 0) == 0;
}

// Builds the event JSON from form fields or query parameters (`var.KEY=value` for vars).
nlohmann::json event_from_params(const httplib::Params& params, std::string& error) {
  nlohmann::json j = nlohmann::json::object();
  for (const auto& [key, value] : params) {
    if (!valid_utf8(key) || !valid_utf8(value)) {
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

}  // namespace

struct BridgeServer::Impl {
  const ConfigHolder& config;
  Journal& journal;
  Dispatcher& dispatcher;
  Metrics& metrics;
  httplib::Server server;
  int port = 0;
  bool open_access = false;  // no tokens configured and bound to loopback

  Impl(const ConfigHolder& c, Journal& j, Dispatcher& d, Metrics& m)
      : config(c), journal(j), dispatcher(d), metrics(m) {}

  bool authorized(const httplib::Request& req) {
    auto cfg = config.get();
    if (cfg->server.tokens.empty()) return open_access;
    std::string token = presented_token(req);
    bool ok = false;
    for (const auto& t : cfg->server.tokens) ok |= constant_time_equal(token, t);
    return ok;
  }

  void accept_event(httplib::Response& res, nlohmann::json json) {
    auto started = Clock::now();
    std::string error;
    auto event = event_from_json(json, error);
    if (!event) {
      metrics.rejected_invalid++;
      return send_error(res, 400, "invalid_event", error);
    }
    if (!dispatcher.reserve()) {
      metrics.rejected_busy++;
      res.set_header("Retry-After", "1");
      return send_error(res, 503, "busy", "too many events waiting; retry later");
    }
    auto stored =
        journal.append_event(event->call_id, event->event, event_to_json_text(*event), error);
    if (!stored) {
      dispatcher.cancel_reservation();
      metrics.rejected_journal++;
      log_limited("intake-journal", LogLevel::error, "cannot make event durable",
                  {{"error", error}});
      res.set_header("Retry-After", "1");
      return send_error(res, 503, "journal_unavailable",
                        "the event could not be made durable; retry later");
    }
    nlohmann::ordered_json body;
    body["event_id"] = stored->event_id;
    body["call_id"] = stored->call_id;
    dispatcher.submit(std::move(*stored));
    metrics.events_accepted++;
    metrics.intake_latency.observe(
        std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - started));
    res.status = 202;
    res.set_content(body.dump(), "application/json");
  }

  void routes() {
    server.set_pre_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
      if (req.path == "/healthz") return httplib::Server::HandlerResponse::Unhandled;
      if (!authorized(req)) {
        metrics.rejected_unauthorized++;
        res.set_header("WWW-Authenticate", "Bearer");
        send_error(res, 401, "unauthorized", "a valid token is required");
        return httplib::Server::HandlerResponse::Handled;
      }
      return httplib::Server::HandlerResponse::Unhandled;
    });

    server.Post("/v1/events", [this](const httplib::Request& req, httplib::Response& res) {
      std::string type = req.get_header_value("Content-Type");
      std::string lower = type;
      std::transform(lower.begin(), lower.end(), lower.begin(), ::tolower);
      if (lower.rfind("application/json", 0) == 0) {
        auto json = nlohmann::json::parse(req.body, nullptr, false);
        if (json.is_discarded()) {
          metrics.rejected_invalid++;
          return send_error(res, 400, "invalid_json", "the body is not valid JSON (or not UTF-8)");
        }
        return accept_event(res, std::move(json));
      }
      if (lower.rfind("application/x-www-form-urlencoded", 0) == 0) {
        std::string error;
        auto json = event_from_params(req.params, error);
        if (json.is_null()) {
          metrics.rejected_invalid++;
          return send_error(res, 400, "invalid_encoding", error);
        }
        return accept_event(res, std::move(json));
      }
      metrics.rejected_invalid++;
      send_error(res, 415, "unsupported_media_type",
                 "send application/json or application/x-www-form-urlencoded");
    });

    server.Get("/v1/events", [this](const httplib::Request& req, httplib::Response& res) {
      std::string error;
      auto json = event_from_params(req.params, error);
      if (json.is_null()) {
        metrics.rejected_invalid++;
        return send_error(res, 400, "invalid_encoding", error);
      }
      accept_event(res, std::move(json));
    });

    server.Get(R"(/v1/calls/([^/]+))", [this](const httplib::Request& req, httplib::Response& res) {
      std::string call_id = req.matches[1];
      bool found = false;
      std::string history = call_history(journal, call_id, found);
      if (!found) return send_error(res, 404, "not_found", "no such call");
      res.set_content(history, "application/json");
    });

    server.Get("/healthz", [this](const httplib::Request&, httplib::Response& res) {
      nlohmann::ordered_json body;
      body["status"] = "ok";
      body["queue_depth"] = dispatcher.depth();
      res.set_content(body.dump(), "application/json");
    });

    server.Get("/metrics", [this](const httplib::Request&, httplib::Response& res) {
      res.set_content(metrics.render(), "text/plain; version=0.0.4");
    });

    server.set_error_handler([this](const httplib::Request&, httplib::Response& res) {
      if (!res.body.empty()) return;
      switch (res.status) {
        case 404:
          send_error(res, 404, "not_found", "no such endpoint");
          break;
        case 413:
          metrics.rejected_too_large++;
          send_error(res, 413, "too_large",
                     "the request body is larger than server.max_body_bytes");
          break;
        case 405:
          send_error(res, 405, "method_not_allowed", "method not allowed here");
          break;
        default:
          send_error(res, res.status, "http_error", "request failed");
          break;
      }
    });
    server.set_exception_handler(
        [](const httplib::Request&, httplib::Response& res, std::exception_ptr) {
          send_error(res, 500, "internal", "internal error");
        });
  }
};

BridgeServer::BridgeServer(const ConfigHolder& config, Journal& journal, Dispatcher& dispatcher,
                           Metrics& metrics)
    : impl_(std::make_unique<Impl>(config, journal, dispatcher, metrics)) {}

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
  if (cfg->server.tokens.empty()) {
    if (!is_loopback(host)) {
      error = "server.tokens is empty: refusing to listen on " + host + " without authentication";
      return false;
    }
    impl_->open_access = true;
    log(LogLevel::warn,
        "no server.tokens configured: accepting unauthenticated requests on loopback only");
  }
  auto& s = impl_->server;
  int threads = cfg->server.threads;
  s.new_task_queue = [threads] {
    return new httplib::ThreadPool(static_cast<std::size_t>(threads));
  };
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
  impl_->server.listen_after_bind();
}

void BridgeServer::stop() {
  if (impl_->server.is_running()) impl_->server.stop();
}

}  // namespace callbridge::bridge
