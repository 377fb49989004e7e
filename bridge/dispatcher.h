// Runs accepted events: strictly in arrival order within a call, calls in parallel on a bounded
// worker pool, retries with backoff without holding a worker, every attempt journaled before
// the request leaves so a crash can neither lose nor blindly repeat an action.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <vector>

#include "bridge/journal/journal.h"
#include "bridge/metrics.h"
#include "http/http_client.h"
#include "rules/config.h"
#include "rules/engine.h"
#include "rules/host.h"

namespace callbridge::bridge {

// The configuration in force; replaced whole on reload.
class ConfigHolder {
 public:
  explicit ConfigHolder(std::shared_ptr<const rules::Config> config) : config_(std::move(config)) {}
  std::shared_ptr<const rules::Config> get() const {
    std::lock_guard lock(mutex_);
    return config_;
  }
  void set(std::shared_ptr<const rules::Config> config) {
    std::lock_guard lock(mutex_);
    config_ = std::move(config);
  }

 private:
  mutable std::mutex mutex_;
  std::shared_ptr<const rules::Config> config_;
};

// Whether a failed attempt is tried again, given the rule's policy and method.
enum class RetryDecision { retry, unknown, final };
// `retryable`: the action's own verdict (RuleOutcome::retryable), when it has one.
RetryDecision decide_retry(const rules::Rule& rule, const rules::RetryPolicy& policy,
                           const http::Outcome* response, int attempt,
                           std::optional<bool> retryable = std::nullopt);
std::chrono::milliseconds backoff_delay(const rules::RetryPolicy& policy, int attempt,
                                        const http::Outcome* response);

// One attempt of a rule on a stored event. Every attempt, the dispatcher's and `callbridge
// replay`'s, is numbered and journaled the same way: numbered after the last one the journal
// holds for the rule, journaled as started before its request leaves, then with its outcome.
struct Attempt {
  std::int64_t event_seq = 0;
  std::string rule;
  int number = 1;
  std::int64_t started_ms = 0;
};
// The last attempt of `rule` among an event's journaled actions, or null.
const ActionRecord* last_attempt(const std::vector<ActionRecord>& actions, std::string_view rule);
// The number the next attempt of `rule` on an event takes: 1 after none.
int next_attempt_number(const std::vector<ActionRecord>& actions, std::string_view rule);

struct AttemptRun {
  rules::RuleOutcome outcome;
  bool started = false;         // journaled as started: the request may have left
  bool journal_failed = false;  // the started record could not be written; nothing was sent
  bool lease_lost = false;      // ... because the call's lease is gone (journal_failed too)
  // When the request left: `started_commit` is how long its started record took to be durable
  // (zero and unset when it never left).
  std::chrono::microseconds started_commit{0};
  std::chrono::steady_clock::time_point sent_at{};
};
// Runs `attempt` of `rule`; `on_send` (may be empty) runs as the request is about to leave,
// before its started record. Stamps attempt.started_ms. With a `fence` (cluster mode) the
// started record is fenced: when the lease is gone the request is not sent. `earlier` (the
// event's outcomes not yet written) go in the started record's transaction, before it: when
// `started` they are durable; when the started record failed, so did they.
AttemptRun run_attempt(Journal& journal, const rules::Engine& engine, const rules::Rule& rule,
                       rules::CallContext& call, Attempt& attempt,
                       const std::function<void()>& on_send = {}, const Fence& fence = {},
                       const std::vector<ActionRecord>& earlier = {});

// Cluster mode (docs/cluster.md): several nodes on one PostgreSQL journal. A node runs a call's
// events only while it holds the call's lease (`call:<call_id>`), fences every state change of
// the call with it, renews its leases every third of `lease`, and claims calls with pending
// events that no node holds.
struct ClusterMode {
  std::string owner;  // cluster.node_id
  std::chrono::milliseconds lease{10000};
};
// The journal record of the outcome of `attempt` as `state` (errors redacted).
ActionRecord attempt_record(const Attempt& attempt, ActionState state,
                            const rules::RuleOutcome& outcome, const rules::SecretSet& secrets);

class Dispatcher {
 public:
  Dispatcher(Journal& journal, const ConfigHolder& config, http::Transport& transport,
             Metrics& metrics);
  ~Dispatcher();

  // Connector services: enrich events before their rules and serve typed actions. Set before
  // start(); may stay null.
  void set_services(const rules::Services* services) { services_ = services; }
  // Cluster mode; set before start(). Without it (SQLite) this node owns every call.
  void set_cluster(ClusterMode mode) { cluster_ = std::move(mode); }
  bool clustered() const { return !cluster_.owner.empty(); }
  const ClusterMode& cluster() const { return cluster_; }
  void start(int workers, std::size_t capacity);
  // Backpressure: take a slot before making an event durable; false means full (answer 503).
  bool reserve();
  void cancel_reservation();
  // Uses a reserved slot. `observer` (may be null) follows the event's rules.
  void submit(StoredEvent event, std::shared_ptr<rules::EventObserver> observer = nullptr);
  // An event no rule listens to may be finished at intake, in its append transaction, when
  // nothing of its call is queued: claim_direct() holds the call's place (later events of the
  // call wait behind it) and says whether it may; release_direct() lets them go.
  bool claim_direct(const std::string& call_id);
  void release_direct(const std::string& call_id);
  // Cluster mode: an event stored with Journal::append_event_leased on a reserved slot. Queued
  // here when this node holds the call (the slot is used), else left to the holder (the slot is
  // given back).
  void submit_leased(LeasedEvent event, std::shared_ptr<rules::EventObserver> observer = nullptr);
  // Queues every pending event of the journal (after a crash or a stop); returns the count.
  // Cluster mode needs none: the poller claims what is pending at start.
  std::size_t recover();
  // Stops taking work; waits up to `grace` for running steps. True when all stopped in time.
  bool stop(std::chrono::milliseconds grace);
  std::int64_t depth() const { return in_flight_.load(); }

 private:
  struct EventWork;
  struct CallQueue {
    std::deque<std::unique_ptr<EventWork>> events;
    bool busy = false;
    // Cluster mode: the lease this node holds the call with, the highest call_pos queued, and
    // whether the lease was lost (the queue goes once its running step ends).
    Fence fence;
    std::int64_t last_pos = 0;
    bool lost = false;
    std::uint64_t generation = 0;  // which queue of the call a scheduled entry is for
  };
  // A call scheduled to run (ready_, timers_): stale once its queue went.
  struct Slot {
    std::string call_id;
    std::uint64_t generation = 0;
  };
  enum class StepResult { done, wait, lost };

  void worker_loop();
  void enqueue(std::unique_ptr<EventWork> work);
  void schedule(const std::string& call_id, CallQueue& queue);  // under mutex_
  // Drops a call's queue and what it held (mutex_ held, the call not running).
  void discard(const std::string& call_id);
  // Cluster mode.
  void cluster_loop();
  void poll_calls(const std::vector<std::string>& only);
  // Queues the call's pending events from the journal under `epoch`, after what is queued.
  void adopt(const std::string& call_id, std::int64_t epoch);
  void renew();
  void release_all();
  StepResult step(EventWork& work, std::chrono::steady_clock::time_point& retry_at);
  bool prepare(EventWork& work);
  // The outcome of an attempt could not be journaled (full disk, I/O error).
  StepResult outcome_unrecorded(EventWork& work, rules::Variables before, bool started);
  // Writes the event's unwritten outcomes, then `record` (a retrying attempt), in one write.
  bool record(EventWork& work, ActionRecord record);
  // The event's unwritten outcomes are durable: count them.
  void outcomes_written(EventWork& work);

  Journal& journal_;
  const ConfigHolder& config_;
  http::Transport& transport_;
  Metrics& metrics_;
  const rules::Services* services_ = nullptr;

  std::mutex mutex_;
  std::condition_variable wake_;
  std::condition_variable idle_;
  std::unordered_map<std::string, CallQueue> calls_;
  std::deque<Slot> ready_;
  std::multimap<std::chrono::steady_clock::time_point, Slot> timers_;
  std::uint64_t generations_ = 0;
  std::vector<std::thread> workers_;
  ClusterMode cluster_;
  std::thread cluster_thread_;
  std::atomic<bool> cluster_stopping_{false};
  int running_steps_ = 0;
  bool stopping_ = false;
  std::size_t capacity_ = 10000;
  std::atomic<std::int64_t> in_flight_{0};
};

}  // namespace callbridge::bridge
