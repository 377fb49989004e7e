// Runs escalation chains with Kompira Pigeon's semantics: contacts in call-flow order, up to the
// loop limit; a key's `terminate` ends the chain with success, `continue` goes on, `leave` drops
// the contact from later loops; no terminate by the end of the last loop is a failure.
// Event-driven on one TimerQueue; every state change is saved before the engine acts on it, and
// a call that was ringing when the process died is never placed again after a restart.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "connectors/escalation/dialer.h"
#include "connectors/escalation/model.h"
#include "connectors/escalation/store.h"
#include "connectors/escalation/timer_queue.h"

namespace callbridge::escalation {

// A chain service elsewhere (Kompira Pigeon): the engine invokes, polls and aborts it.
class RemoteChains {
 public:
  virtual ~RemoteChains() = default;
  struct Invoked {
    std::string result_id;  // empty: failed
    std::string error;
    bool maybe_sent = false;  // a failure after which the chain may be running anyway
  };
  virtual Invoked invoke(const ChainState& state) = 0;
  struct Polled {
    bool ok = false;
    std::string error;
    nlohmann::json result;  // the service's result document
  };
  virtual Polled poll(const std::string& result_id) = 0;
  virtual bool abort(const std::string& result_id, std::string& error) = 0;
  // Copies a result document into `state` (attempts, status, key); true when it has ended.
  virtual bool apply(const nlohmann::json& result, ChainState& state) const = 0;
};

struct EngineSettings {
  std::chrono::milliseconds ring_timeout{30000};
  std::chrono::milliseconds pause_between_calls{0};
  std::chrono::milliseconds pause_between_loops{0};
  std::chrono::milliseconds attempt_timeout{300000};  // no outcome by then: failed
  std::chrono::milliseconds store_retry{5000};        // store or event sink down: try again
  std::chrono::milliseconds poll_interval{15000};     // remote: first poll, then backoff x1.5
  std::chrono::milliseconds poll_max_interval{60000};
  std::size_t history_limit = 1000;  // finished chains kept in memory (all stay in the store)
};

struct ChainRequest {
  CallFlow callflow;  // contacts empty: Pigeon's call flow `id` (remote only)
  Guidance guidance;  // message and responses empty: Pigeon's guidance `id` (remote only)
  Parameters parameters;
  std::string origin_call_id;
  std::string origin_rule;
};

class Engine {
 public:
  // Called once per finished chain (also after a restart if it had not succeeded yet), on a
  // worker; false: try again after `store_retry`.
  using FinishedHandler = std::function<bool(const ChainState&)>;

  // `remote` set: chains run there and `dialer` is unused.
  Engine(EngineSettings settings, TimerQueue& timers, ChainStore& store, Dialer* dialer,
         RemoteChains* remote = nullptr);
  ~Engine();
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  void set_finished_handler(FinishedHandler handler);
  // Loads stored chains and continues the running ones; returns unreadable entries.
  std::vector<std::string> recover();
  // Starts a chain (saved before this returns); nullopt with `error` when it cannot, and in
  // `code`: journal_unavailable (not saved), invalid_callflow, invalid_guidance or
  // escalation_unavailable (stopped, no dialer).
  std::optional<ChainState> start(ChainRequest request, std::string& error,
                                  rules::ErrorCode* code = nullptr);
  // False with `error` (and `status` 404 or 409/502) when it is unknown or already finished.
  bool abort(const std::string& id, std::string& error, int& status);
  std::optional<ChainState> get(const std::string& id) const;
  std::vector<ChainState> list(std::size_t limit = 100) const;  // newest first
  // A remote chain changed (Pigeon's completion webhook): poll it now.
  void poke(const std::string& id);
  // Ends the engine's work: later timer tasks and dial completions do nothing.
  void stop();

  struct Counts {
    std::size_t running = 0;
    std::array<std::uint64_t, 4> finished{};  // by ChainStatus
    std::array<std::uint64_t, 5> attempts{};  // by AttemptOutcome
    std::uint64_t started = 0;
  };
  Counts counts() const;
  const EngineSettings& settings() const;

 private:
  struct Impl;
  std::shared_ptr<Impl> impl_;
};

}  // namespace callbridge::escalation
