// What the running bridge lends to connector services: a durable key-value store, a way to
// submit events as if they had arrived over HTTP, HTTP routes of their own, and the outbound
// HTTP transport. Connectors see these interfaces only, never the journal or the server.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "http/http_client.h"
#include "rules/engine.h"
#include "rules/error_code.h"
#include "rules/input.h"

namespace callbridge::rules {

struct Config;

// Namespace `event.notes`: a note about one event (a JSON value) under the key
// event_note_key(event_id, name). The call's history shows it under the event's "notes"; it is
// pruned with the call (the bridge declares the namespace's keys as the event's to the journal).
inline constexpr std::string_view kEventNotes = "event.notes";
// "<event_id>/": every key of the event's notes starts with it.
inline std::string event_notes_prefix(std::string_view event_id) {
  return std::string(event_id) + "/";
}
inline std::string event_note_key(std::string_view event_id, std::string_view name) {
  return event_notes_prefix(event_id) + std::string(name);
}

// Durable on return (group-committed with the journal). Namespaces keep connectors apart.
class KeyValueStore {
 public:
  virtual ~KeyValueStore() = default;
  virtual bool put(std::string_view ns, std::string_view key, std::string_view value,
                   std::string& error) = 0;
  // Queued with the next group commit; not durable on return (for records that must not delay
  // an answer: the caller is waiting and a crash losing the record changes nothing else).
  virtual void put_later(std::string_view ns, std::string_view key, std::string_view value) {
    std::string ignored;
    put(ns, key, value, ignored);
  }
  virtual bool erase(std::string_view ns, std::string_view key, std::string& error) = 0;
  virtual std::optional<std::string> get(std::string_view ns, std::string_view key) = 0;
  virtual std::vector<std::pair<std::string, std::string>> scan(std::string_view ns) = 0;
  // Stores `value` only when the key's current value is `expected` (nullopt: the key is
  // absent), atomically for every node sharing the store; durable on return. true: stored;
  // false: not stored, with `error` empty when another value was there. A store that cannot
  // decide this atomically refuses (false with `error`).
  virtual bool put_if(std::string_view /*ns*/, std::string_view /*key*/, std::string_view /*value*/,
                      std::optional<std::string_view> /*expected*/, std::string& error) {
    error = "this store cannot write conditionally";
    return false;
  }
};

// A fencing token: a write carrying it applies only while `lease` is still held with `epoch`.
struct LeaseFence {
  std::string lease;
  std::int64_t epoch = 0;
};

// Named leases shared by every node of the bridge's database (docs/cluster.md): at most one
// node holds a lease at a time, until it lets it go or stops renewing it for lease_time().
// Connectors take them for work that must run once in the cluster (a directory sync, a token
// refresh, an escalation chain); on one node they behave the same.
class Leases {
 public:
  virtual ~Leases() = default;
  // This node's name as a lease owner (cluster.node_id).
  virtual const std::string& owner() const = 0;
  // How long a lease lives without renewal (cluster.lease_seconds).
  virtual std::chrono::milliseconds lease_time() const = 0;
  // Takes `name` when it is free, expired, or this node's already (then renewed): the epoch
  // held, higher than any earlier holder's. nullopt when another node holds it, or on error.
  virtual std::optional<std::int64_t> acquire(std::string_view name) = 0;
  // Extends those of `names` this node still holds; returns the names it no longer holds.
  virtual std::vector<std::string> renew(const std::vector<std::string>& names) = 0;
  // Lets `name` go (it expires now) if still held with `epoch`.
  virtual void release(std::string_view name, std::int64_t epoch) = 0;
  // A durable key-value write applied only while `fence` holds; false with error "lease lost"
  // otherwise. An empty fence.lease writes unfenced.
  virtual bool put_fenced(std::string_view ns, std::string_view key, std::string_view value,
                          const LeaseFence& fence, std::string& error) = 0;
};

// Leases in this process's memory, over `store` for the fenced writes: one node, for tests and
// for hosts without a shared journal.
class LocalLeases final : public Leases {
 public:
  explicit LocalLeases(KeyValueStore& store, std::string owner = "local",
                       std::chrono::milliseconds lease_time = std::chrono::seconds(10));
  ~LocalLeases() override;
  const std::string& owner() const override { return owner_; }
  std::chrono::milliseconds lease_time() const override { return lease_time_; }
  std::optional<std::int64_t> acquire(std::string_view name) override;
  std::vector<std::string> renew(const std::vector<std::string>& names) override;
  void release(std::string_view name, std::int64_t epoch) override;
  bool put_fenced(std::string_view ns, std::string_view key, std::string_view value,
                  const LeaseFence& fence, std::string& error) override;

  // Another owner's view of the same leases (shares the table), for tests of hand-over.
  std::shared_ptr<LocalLeases> as(std::string owner) const;

 private:
  struct Table;
  LocalLeases(std::shared_ptr<Table> table, KeyValueStore& store, std::string owner,
              std::chrono::milliseconds lease_time);
  std::shared_ptr<Table> table_;
  KeyValueStore& store_;
  std::string owner_;
  std::chrono::milliseconds lease_time_;
};

// Follows one submitted event through the dispatcher (in memory; gone after a restart).
class EventObserver {
 public:
  virtual ~EventObserver() = default;
  // After each rule of the event, with the call's variables as they are then.
  virtual void on_rule(const RuleOutcome& /*outcome*/, const Variables& /*vars*/) {}
  // After the event's last rule, or when it cannot run (vars then are what was known).
  virtual void on_finished(const Variables& /*vars*/) {}
};

struct SubmittedEvent {
  std::string event_id;
  std::string call_id;
};

// Why an event was not accepted. The same codes on every intake path: `busy` (the queue is
// full) and `journal_unavailable` (it could not be made durable), both 503 and worth retrying
// after Retry-After.
struct SubmitRejection {
  int status = 0;
  std::string code;  // the JSON name of its ErrorCode; empty while nothing was rejected
  std::string message;
  int retry_after_seconds = 1;  // the Retry-After to answer with

  void set(int status, ErrorCode code, std::string message);
  // The code by its enum; journal_unavailable while none is set.
  ErrorCode error_code() const;
};

class EventSink {
 public:
  virtual ~EventSink() = default;
  // Makes `event` durable and queues it behind the call's earlier events, exactly as
  // POST /v1/events does. nullopt with the reason in `rejection`.
  virtual std::optional<SubmittedEvent> submit(const EventInput& event,
                                               std::shared_ptr<EventObserver> observer,
                                               SubmitRejection& rejection) = 0;
};

struct HttpRequest {
  std::string method;
  std::string path;
  std::vector<std::string> matches;                 // the route pattern's groups, [0] the path
  std::multimap<std::string, std::string> headers;  // names in lower case
  std::multimap<std::string, std::string> params;   // query and form parameters
  std::string body;
  std::string remote_addr;

  std::string header(std::string_view lower_name) const;
  std::string param(std::string_view name) const;
  bool has_param(std::string_view name) const;
};

struct HttpResponse {
  int status = 200;
  std::string content_type = "application/json";
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;

  // {"error": {"code": CODE, "message": MESSAGE}} with `status`, the bridge's error shape.
  void error(int status, ErrorCode code, std::string_view message);
};

enum class RouteAuth {
  token,  // one of server.tokens, as for /v1/events (Bearer, X-Callbridge-Token, ?token=)
  none,   // the handler authenticates (HMAC signature, OAuth state) or the route is public
};

struct Route {
  std::string method;   // GET POST PUT DELETE
  std::string pattern;  // ECMAScript regex over the path; groups land in HttpRequest::matches
  RouteAuth auth = RouteAuth::token;
  std::function<void(const HttpRequest&, HttpResponse&)> handler;
  // A GET that starts something (an OAuth authorization): the console lets only operators
  // through it, as it does every other method.
  bool changes_state = false;
};

// A connector's long-lived runtime part (a directory sync, a chain engine, a token store).
class Service {
 public:
  virtual ~Service() = default;
  virtual void start() {}
  virtual void stop() {}  // before the dispatcher stops; must return promptly
  // Adds variables to every event before its rules run (the customer directory).
  virtual void enrich(const EventInput& /*event*/, Variables& /*vars*/) const {}
  // Appends Prometheus text lines to /metrics.
  virtual void metrics(std::string& /*out*/) const {}
};

class Services {
 public:
  void add(std::string name, std::shared_ptr<Service> service);
  Service* find(std::string_view name) const;
  template <class T>
  T* find(std::string_view name) const {
    return dynamic_cast<T*>(find(name));
  }
  const std::vector<std::pair<std::string, std::shared_ptr<Service>>>& all() const {
    return services_;
  }

 private:
  std::vector<std::pair<std::string, std::shared_ptr<Service>>> services_;
};

// Handed to service factories at start-up.
struct Host {
  KeyValueStore& store;
  EventSink& events;
  http::Transport& transport;
  std::vector<Route>& routes;  // the mounted endpoints; services add theirs with add_route
  const Services& services;    // those created before this one
  InputLimits limits = {};     // bounds every JSON body the service's routes parse
  // The cluster's leases (the bridge's journal); null: LocalLeases over `store` (one node).
  Leases* leases = nullptr;

  // Mounts one of `service`'s endpoints. The route keeps the service alive, and an exception
  // from its handler answers 500 `internal` with the common error body (and is logged).
  void add_route(std::shared_ptr<Service> service, Route route);
};

}  // namespace callbridge::rules
