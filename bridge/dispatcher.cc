#include "bridge/dispatcher.h"

#include <pthread.h>
#include <strings.h>

#include <algorithm>
#include <nlohmann/json.hpp>
#include <random>

#include "bridge/action_record.h"
#include "bridge/event_input.h"
#include "log/log.h"
#include "rules/engine.h"

namespace callbridge::bridge {

namespace {

using Clock = std::chrono::steady_clock;

// An event whose step threw (a bug) is tried again after this.
constexpr auto kFailedStepDelay = std::chrono::seconds(5);
// An event waiting for the journal (full disk, I/O error) is tried again after this.
constexpr auto kJournalWaitDelay = std::chrono::seconds(1);
// How long the destructor lets running steps finish before letting their threads go.
constexpr auto kDestructorGrace = std::chrono::minutes(10);
// Cluster mode: calls one poll claims or reloads at most, and the longest wait for a NOTIFY
// between checks of whether the dispatcher stops.
constexpr std::size_t kPollLimit = 500;
constexpr auto kLongestWait = std::chrono::milliseconds(500);

std::string lease_of(const std::string& call_id) {
  return "call:" + call_id;
}

bool is_final(ActionState state) {
  return state != ActionState::started && state != ActionState::retrying;
}

// When a recovered event was received, on the steady clock: its journaled wall-clock time
// moved by how long ago that was (never after `now`).
Clock::time_point received_at(const StoredEvent& event, Clock::time_point now) {
  std::int64_t ago_ms = std::max<std::int64_t>(unix_ms_now() - event.received_at_ms, 0);
  return now - std::chrono::milliseconds(ago_ms);
}

}  // namespace

RetryDecision decide_retry(const rules::Rule& rule, const rules::RetryPolicy& policy,
                           const http::Outcome* response, int attempt,
                           std::optional<bool> retryable) {
  if (retryable) {
    if (!*retryable) return RetryDecision::final;
    return attempt < policy.attempts ? RetryDecision::retry : RetryDecision::final;
  }
  if (response == nullptr) return RetryDecision::final;  // render or regex failure: deterministic
  bool safe = rules::Engine::idempotent(rule);
  bool on_connect = policy.on_connect.value_or(true);
  bool on_timeout = policy.on_timeout.value_or(safe);
  bool wanted = false;
  switch (response->kind) {
    case http::OutcomeKind::connect_error:
    case http::OutcomeKind::tls_error:
      wanted = on_connect;
      break;
    case http::OutcomeKind::timeout:
    case http::OutcomeKind::io_error:
      if (!response->maybe_sent) {
        wanted = on_connect;
      } else if (!on_timeout) {
        return RetryDecision::unknown;  // it may have reached the server: do not repeat blindly
      } else {
        wanted = true;
      }
      break;
    case http::OutcomeKind::response:
      if (response->status == 429)
        wanted = policy.on_429.value_or(safe);
      else if (response->status >= 500)
        wanted = policy.on_5xx.value_or(safe);
      break;
    default:
      break;
  }
  if (!wanted) return RetryDecision::final;
  return attempt < policy.attempts ? RetryDecision::retry : RetryDecision::final;
}

std::chrono::milliseconds backoff_delay(const rules::RetryPolicy& policy, int attempt,
                                        const http::Outcome* response) {
  // Exponential with "equal jitter": half fixed, half random, so retries of many calls spread.
  auto delay = policy.backoff;
  for (int i = 1; i < attempt && delay < policy.max_backoff; ++i) delay *= 2;
  delay = std::min(delay, policy.max_backoff);
  thread_local std::mt19937_64 rng{std::random_device{}()};
  auto half = delay.count() / 2;
  auto jittered = std::chrono::milliseconds(
      half + std::uniform_int_distribution<std::int64_t>(0, std::max<std::int64_t>(half, 0))(rng));
  if (response && response->kind == http::OutcomeKind::response) {
    for (const auto& [name, value] : response->headers) {
      if (strcasecmp(name.c_str(), "Retry-After") != 0) continue;
      char* end = nullptr;
      long seconds = std::strtol(value.c_str(), &end, 10);
      if (end != value.c_str() && seconds >= 0)
        jittered = std::min(std::max(jittered, std::chrono::milliseconds(seconds * 1000)),
                            policy.max_backoff);
    }
  }
  return jittered;
}

const ActionRecord* last_attempt(const std::vector<ActionRecord>& actions, std::string_view rule) {
  const ActionRecord* last = nullptr;
  for (const auto& a : actions)
    if (a.rule == rule && (!last || a.attempt >= last->attempt)) last = &a;
  return last;
}

int next_attempt_number(const std::vector<ActionRecord>& actions, std::string_view rule) {
  const ActionRecord* last = last_attempt(actions, rule);
  return last ? last->attempt + 1 : 1;
}

AttemptRun run_attempt(Journal& journal, const rules::Engine& engine, const rules::Rule& rule,
                       rules::CallContext& call, Attempt& attempt,
                       const std::function<void()>& on_send, const Fence& fence,
                       const std::vector<ActionRecord>& earlier) {
  AttemptRun run;
  attempt.started_ms = unix_ms_now();
  run.outcome = engine.run_rule(rule, call, [&](const http::Request& shown) {
    if (on_send) on_send();
    std::string error;
    ActionRecord started =
        started_record(attempt.event_seq, attempt.rule, attempt.number, attempt.started_ms, shown);
    auto commit_start = Clock::now();
    if (earlier.empty()) {
      run.journal_failed = !journal.record_action_fenced(started, fence, error);
    } else {
      std::vector<ActionRecord> records = earlier;
      records.push_back(std::move(started));
      run.journal_failed = !journal.record_actions_fenced(records, fence, error);
    }
    run.sent_at = Clock::now();
    run.started_commit =
        std::chrono::duration_cast<std::chrono::microseconds>(run.sent_at - commit_start);
    run.lease_lost = run.journal_failed && error == kLeaseLost;
    run.started = !run.journal_failed;
    return run.started;
  });
  return run;
}

ActionRecord attempt_record(const Attempt& attempt, ActionState state,
                            const rules::RuleOutcome& outcome, const rules::SecretSet& secrets) {
  return finished_record(attempt.event_seq, attempt.rule, attempt.number, state, outcome,
                         attempt.started_ms, secrets);
}

struct Dispatcher::EventWork {
  StoredEvent stored;
  Clock::time_point accepted;
  std::optional<Backlog::Entry> in_backlog;  // its place in metrics_.backlog until it finishes
  bool recovered = false;
  bool prepared = false;
  Fence fence;                      // cluster mode: the call's lease when it was queued
  bool lease_lost = false;          // a fenced write was refused: the call is no longer ours
  bool finished_elsewhere = false;  // cluster mode: found finished when it was prepared
  bool first_request_seen = false;
  std::shared_ptr<const rules::Config> config;
  std::unique_ptr<rules::Engine> engine;
  rules::CallContext call;
  std::vector<const rules::Rule*> rules;
  std::size_t next = 0;
  int attempt = 1;
  std::shared_ptr<rules::EventObserver> observer;
  // Final outcomes (and skipped gates) not yet written: they go with the event's next durable
  // write, the next rule's started record or the finish (docs/reliability.md).
  std::vector<ActionRecord> unwritten;
  bool unwritten_sent = false;  // one of them is of an attempt whose request left
  bool taken = false;           // a worker took it (the queue phase is measured)
};

Dispatcher::Dispatcher(Journal& journal, const ConfigHolder& config, http::Transport& transport,
                       Metrics& metrics)
    : journal_(journal), config_(config), transport_(transport), metrics_(metrics) {}

Dispatcher::~Dispatcher() {
  // Requests have bounded timeouts, so running steps end; a thread still joinable here would
  // terminate the process, so as a last resort it is let go.
  if (!stop(kDestructorGrace))
    for (auto& t : workers_) t.detach();
}

void Dispatcher::start(int workers, std::size_t capacity) {
  capacity_ = capacity;
  for (int i = 0; i < workers; ++i)
    workers_.emplace_back([this] {
      pthread_setname_np(pthread_self(), "cb-action");
      worker_loop();
    });
  if (clustered())
    cluster_thread_ = std::thread([this] {
      pthread_setname_np(pthread_self(), "cb-cluster");
      cluster_loop();
    });
}

bool Dispatcher::reserve() {
  if (in_flight_.fetch_add(1) >= static_cast<std::int64_t>(capacity_)) {
    in_flight_.fetch_sub(1);
    return false;
  }
  return true;
}

void Dispatcher::cancel_reservation() {
  in_flight_.fetch_sub(1);
}

void Dispatcher::submit(StoredEvent event, std::shared_ptr<rules::EventObserver> observer) {
  auto work = std::make_unique<EventWork>();
  work->stored = std::move(event);
  work->observer = std::move(observer);
  work->accepted = Clock::now();
  work->in_backlog = metrics_.backlog.add(work->accepted);
  enqueue(std::move(work));
}

std::size_t Dispatcher::recover() {
  std::vector<StoredEvent> pending = journal_.pending_events();
  for (auto& event : pending) {
    in_flight_.fetch_add(1);
    auto work = std::make_unique<EventWork>();
    work->stored = std::move(event);
    work->accepted = Clock::now();
    work->in_backlog = metrics_.backlog.add(received_at(work->stored, work->accepted));
    work->recovered = true;
    enqueue(std::move(work));
  }
  return pending.size();
}

void Dispatcher::submit_leased(LeasedEvent leased, std::shared_ptr<rules::EventObserver> observer) {
  if (!leased.epoch) {  // another node holds the call: it runs the event
    cancel_reservation();
    return;
  }
  const std::string call_id = leased.event.call_id;
  const std::int64_t epoch = *leased.epoch;
  const std::int64_t pos = leased.event.call_pos;
  {
    std::lock_guard lock(mutex_);
    auto it = calls_.find(call_id);
    bool fresh = it == calls_.end();
    bool same = !fresh && !it->second.lost && it->second.fence.epoch == epoch;
    // Queued here at once when it follows what is queued, or starts the call's work; the rest
    // (earlier events stored by other nodes, a new epoch) is read back from the journal.
    if ((fresh && leased.earlier_pending == 0) || (same && it->second.last_pos == pos - 1)) {
      if (fresh) {
        it = calls_.try_emplace(call_id).first;
        it->second.generation = ++generations_;
        it->second.fence = {lease_of(call_id), epoch};
      }
      CallQueue& queue = it->second;
      auto work = std::make_unique<EventWork>();
      work->stored = std::move(leased.event);
      work->observer = std::move(observer);
      work->accepted = Clock::now();
      work->in_backlog = metrics_.backlog.add(work->accepted);
      work->fence = queue.fence;
      queue.events.push_back(std::move(work));
      queue.last_pos = pos;
      if (queue.events.size() == 1 && !queue.busy) schedule(call_id, queue);
      return;
    }
    if (same && it->second.last_pos >= pos) {  // the poller queued it already
      in_flight_.fetch_sub(1);
      return;
    }
  }
  cancel_reservation();
  adopt(call_id, epoch);
}

void Dispatcher::adopt(const std::string& call_id, std::int64_t epoch) {
  std::vector<StoredEvent> pending = journal_.pending_events_of(call_id);
  std::unique_lock lock(mutex_);
  if (stopping_) return;
  auto [it, fresh] = calls_.try_emplace(call_id);
  CallQueue& queue = it->second;
  if (fresh) {
    queue.generation = ++generations_;
    queue.fence = {lease_of(call_id), epoch};
  } else if (queue.lost || queue.fence.epoch != epoch) {
    // Held under another epoch since: what is queued goes, and a later poll reads it again.
    queue.lost = true;
    if (!queue.busy) discard(call_id);
    return;
  }
  bool was_empty = queue.events.empty();
  Clock::time_point now = Clock::now();
  for (StoredEvent& event : pending) {
    if (event.call_pos <= queue.last_pos) continue;
    queue.last_pos = event.call_pos;
    in_flight_.fetch_add(1);
    auto work = std::make_unique<EventWork>();
    work->stored = std::move(event);
    work->accepted = now;
    work->in_backlog = metrics_.backlog.add(received_at(work->stored, now));
    work->recovered = true;
    work->fence = queue.fence;
    queue.events.push_back(std::move(work));
  }
  if (queue.events.empty() && !queue.busy) {
    // Nothing to run (finished meanwhile): let the lease go.
    calls_.erase(it);
    lock.unlock();
    journal_.release_call_lease_later(call_id, epoch);
    return;
  }
  if (was_empty && !queue.busy && !queue.events.empty()) schedule(call_id, queue);
}

void Dispatcher::poll_calls(const std::vector<std::string>& only) {
  for (const PendingCall& call : journal_.pending_calls(only, kPollLimit)) {
    if (cluster_stopping_) return;
    if (!call.owner.empty() && call.owner != cluster_.owner) continue;  // another node's
    std::int64_t epoch = call.epoch;
    if (call.owner.empty()) {
      // Claimable: nobody holds it (its node died, or let it go as the event arrived).
      if (in_flight_.load() >= static_cast<std::int64_t>(capacity_)) continue;
      auto taken = journal_.acquire_lease(lease_of(call.call_id), cluster_.owner, cluster_.lease);
      if (!taken) continue;
      epoch = *taken;
    } else {
      // Ours: anything this node has not queued (stored by another node)?
      std::lock_guard lock(mutex_);
      auto it = calls_.find(call.call_id);
      if (it != calls_.end() && !it->second.lost && it->second.fence.epoch == epoch &&
          it->second.last_pos >= call.last_pos)
        continue;
    }
    adopt(call.call_id, epoch);
  }
}

void Dispatcher::renew() {
  std::vector<std::string> names;
  std::map<std::string, std::int64_t> epochs;
  {
    std::lock_guard lock(mutex_);
    for (const auto& [call_id, queue] : calls_) {
      if (queue.lost || queue.fence.empty()) continue;
      names.push_back(queue.fence.lease);
      epochs[call_id] = queue.fence.epoch;
    }
  }
  if (names.empty()) return;
  std::vector<std::string> lost = journal_.renew_leases(cluster_.owner, names, cluster_.lease);
  if (lost.empty()) return;
  std::lock_guard lock(mutex_);
  for (const std::string& name : lost) {
    std::string call_id = name.substr(lease_of("").size());
    auto it = calls_.find(call_id);
    // Only the queue that held that epoch: the call may have been let go and taken anew since.
    if (it == calls_.end() || it->second.fence.epoch != epochs[call_id]) continue;
    it->second.lost = true;
    log::write_limited("lease-lost-renewal", log::Level::warn,
                       "call lease lost on renewal; its new holder runs it",
                       {{"call_id", call_id}});
    if (!it->second.busy) discard(call_id);
  }
}

void Dispatcher::release_all() {
  std::vector<Fence> held;
  {
    std::lock_guard lock(mutex_);
    for (auto it = calls_.begin(); it != calls_.end();) {
      if (it->second.busy) {
        ++it;
        continue;
      }
      if (!it->second.lost && !it->second.fence.empty()) held.push_back(it->second.fence);
      std::string call_id = it->first;
      ++it;
      discard(call_id);
    }
  }
  for (const Fence& fence : held) journal_.release_lease(fence.lease, fence.epoch);
}

void Dispatcher::cluster_loop() {
  // Polling is the mechanism (every quarter lease, at most half a second apart so that a dead
  // node's calls move within the lease and a second; and at start: what is pending then, this
  // node's or a dead one's, is claimed); NOTIFY from other nodes only makes it sooner.
  const auto poll_every = std::clamp(cluster_.lease / 4, std::chrono::milliseconds(50),
                                     std::chrono::milliseconds(kLongestWait));
  const auto renew_every = std::max(cluster_.lease / 3, std::chrono::milliseconds(50));
  auto next_poll = Clock::now();
  auto next_renew = Clock::now() + renew_every;
  while (!cluster_stopping_) {
    try {
      auto now = Clock::now();
      if (now >= next_renew) {
        renew();
        next_renew = now + renew_every;
      }
      if (now >= next_poll) {
        poll_calls({});
        next_poll = Clock::now() + poll_every;
      }
      now = Clock::now();
      auto wait = std::min({next_poll - now, next_renew - now, Clock::duration(kLongestWait)});
      auto ms = std::max<std::int64_t>(
          std::chrono::duration_cast<std::chrono::milliseconds>(wait).count(), 1);
      std::vector<std::string> hinted =
          journal_.wait_for_stored_events(cluster_.owner, std::chrono::milliseconds(ms));
      if (hinted.empty() || cluster_stopping_) continue;
      if (std::find(hinted.begin(), hinted.end(), "*") != hinted.end())
        next_poll = Clock::now();
      else
        poll_calls(hinted);
    } catch (const std::exception& e) {
      log::write_limited("cluster-poll", log::Level::error, "cluster poll failed",
                         {{"error", e.what()}});
      std::this_thread::sleep_for(kLongestWait);
    }
  }
}

bool Dispatcher::claim_direct(const std::string& call_id) {
  std::lock_guard lock(mutex_);
  auto [it, fresh] = calls_.try_emplace(call_id);
  if (!fresh) return false;
  it->second.generation = ++generations_;
  it->second.busy = true;
  return true;
}

void Dispatcher::release_direct(const std::string& call_id) {
  std::lock_guard lock(mutex_);
  auto it = calls_.find(call_id);
  if (it == calls_.end()) return;
  it->second.busy = false;
  if (it->second.events.empty())
    calls_.erase(it);
  else
    schedule(call_id, it->second);
}

void Dispatcher::schedule(const std::string& call_id, CallQueue& queue) {
  ready_.push_back({call_id, queue.generation});
  wake_.notify_one();
}

void Dispatcher::enqueue(std::unique_ptr<EventWork> work) {
  std::lock_guard lock(mutex_);
  std::string call_id = work->stored.call_id;
  auto [it, fresh] = calls_.try_emplace(call_id);
  CallQueue& queue = it->second;
  if (fresh) queue.generation = ++generations_;
  queue.events.push_back(std::move(work));
  // A call is scheduled once: when its first event arrives; later ones wait behind it.
  if (queue.events.size() == 1 && !queue.busy) schedule(call_id, queue);
}

void Dispatcher::discard(const std::string& call_id) {
  auto it = calls_.find(call_id);
  if (it == calls_.end()) return;
  for (auto& work : it->second.events) {
    if (work->in_backlog) metrics_.backlog.finish(*work->in_backlog);
    in_flight_.fetch_sub(1);
  }
  calls_.erase(it);
}

bool Dispatcher::stop(std::chrono::milliseconds grace) {
  std::unique_lock lock(mutex_);
  stopping_ = true;
  cluster_stopping_ = true;
  wake_.notify_all();
  bool drained = idle_.wait_for(lock, grace, [this] { return running_steps_ == 0; });
  lock.unlock();
  if (cluster_thread_.joinable()) cluster_thread_.join();
  if (!drained) return false;
  for (auto& t : workers_)
    if (t.joinable()) t.join();
  workers_.clear();
  // What this node still holds goes to the other nodes at once instead of after its leases.
  if (clustered()) release_all();
  return true;
}

void Dispatcher::worker_loop() {
  std::unique_lock lock(mutex_);
  while (true) {
    if (stopping_) return;
    auto now = Clock::now();
    while (!timers_.empty() && timers_.begin()->first <= now) {
      ready_.push_back(timers_.begin()->second);
      timers_.erase(timers_.begin());
    }
    if (ready_.empty()) {
      if (timers_.empty()) {
        wake_.wait(lock);
      } else {
        auto due = timers_.begin()->first;  // a copy: the node may go while we wait
        wake_.wait_until(lock, due);
      }
      continue;
    }
    Slot slot = std::move(ready_.front());
    ready_.pop_front();
    auto found = calls_.find(slot.call_id);
    // A stale entry: its queue went (lost, discarded) or is another one now.
    if (found == calls_.end() || found->second.generation != slot.generation ||
        found->second.busy || found->second.events.empty())
      continue;
    const std::string call_id = slot.call_id;
    CallQueue& queue = found->second;
    if (queue.lost) {
      discard(call_id);
      continue;
    }
    queue.busy = true;
    EventWork* work = queue.events.front().get();
    ++running_steps_;
    lock.unlock();

    Clock::time_point retry_at;
    StepResult result = StepResult::wait;
    try {
      result = step(*work, retry_at);
    } catch (const std::exception& e) {
      // A bug must not take the bridge down; the event stays pending and is retried.
      std::string what = work->config ? work->config->secrets->redact(e.what()) : e.what();
      log::write(log::Level::error, "event step failed",
                 {{"event_id", work->stored.event_id}, {"error", what}});
      retry_at = Clock::now() + kFailedStepDelay;
    }

    lock.lock();
    queue.busy = false;
    if (result == StepResult::done) {
      if (work->in_backlog) metrics_.backlog.finish(*work->in_backlog);
      queue.events.pop_front();
      in_flight_.fetch_sub(1);
    }
    if (result == StepResult::lost || queue.lost) {
      // Another node holds the call now: stop running it; nothing more is written for it.
      log::write_limited("lease-lost-write", log::Level::warn,
                         result == StepResult::lost
                             ? "call lease lost: a fenced write was refused; its new holder runs it"
                             : "call lease lost; its new holder runs it",
                         {{"call_id", call_id}});
      discard(call_id);
    } else if (result == StepResult::done) {
      if (!queue.events.empty()) {
        schedule(call_id, queue);
      } else if (!clustered()) {
        calls_.erase(call_id);
      } else {
        // Nothing pending here: let the lease go unless an event arrived meanwhile (the
        // journal checks; whoever stored it runs it or the poller claims it). Queued without
        // waiting: a later append of this node comes after it in the group commit's order.
        std::int64_t epoch = queue.fence.epoch;
        calls_.erase(call_id);
        lock.unlock();
        journal_.release_call_lease_later(call_id, epoch);
        lock.lock();
      }
    } else {
      timers_.emplace(retry_at, Slot{call_id, queue.generation});
    }
    --running_steps_;
    if (stopping_ && running_steps_ == 0) idle_.notify_all();
    if (!ready_.empty()) wake_.notify_one();  // this worker takes one; wake another for the rest
  }
}

bool Dispatcher::prepare(EventWork& work) {
  std::string error;
  if (work.recovered && clustered()) {
    // Loaded from the journal: this node may have finished it since it was read.
    auto current = journal_.event(work.stored.seq);
    if (current && current->state != EventState::pending) {
      work.finished_elsewhere = true;
      work.prepared = true;
      return true;
    }
  }
  auto json = nlohmann::json::parse(work.stored.body, nullptr, false);
  auto input = event_from_json(json, error);
  work.config = config_.get();
  work.engine = std::make_unique<rules::Engine>(work.config->rules, work.config->secrets,
                                                &transport_, services_);
  if (!input) {
    log::write(log::Level::error, "stored event unreadable",
               {{"event_id", work.stored.event_id}, {"error", error}});
    return false;
  }
  auto call = call_context(journal_, work.stored.call_id, &*input, error);
  if (!call) {
    log::write_limited("journal-read", log::Level::error, "journal read failed",
                       {{"error", error}});
    return false;  // tried again: the call's variables must not start empty
  }
  work.call = std::move(*call);
  if (services_) {
    for (const auto& [name, service] : services_->all()) {
      try {
        service->enrich(*input, work.call.vars);
      } catch (const std::exception& e) {
        log::write_limited("enrich:" + name, log::Level::error, "service failed to enrich an event",
                           {{"service", name}, {"error", work.config->secrets->redact(e.what())}});
      }
    }
  }
  work.rules = work.config->rules->for_event(input->event);
  if (work.recovered) {
    // Resume after a crash or stop: keep what finished, decide about what was interrupted.
    std::vector<ActionRecord> done;
    if (!journal_.read_actions_of(work.stored.seq, done, error)) {
      // Not knowing what was sent is not "nothing was sent": wait until the journal answers.
      log::write_limited("journal-read", log::Level::error, "journal read failed",
                         {{"error", error}});
      return false;
    }
    while (work.next < work.rules.size()) {
      const rules::Rule& rule = *work.rules[work.next];
      const ActionRecord* last = last_attempt(done, rule.name);
      if (!last) break;
      if (is_final(last->state)) {
        for (const auto& [k, v] :
             variables_from_json(last->extracted.empty() ? "{}" : last->extracted))
          work.call.vars[k] = v;
        if (last->status > 0) work.call.vars["RESPONSE_STATUS"] = std::to_string(last->status);
        ++work.next;
        continue;
      }
      if (last->state == ActionState::started && !rules::Engine::idempotent(rule)) {
        ActionRecord unknown = *last;
        unknown.state = ActionState::unknown;
        unknown.finished_at_ms = unix_ms_now();
        unknown.error = "interrupted after the request may have been sent; not repeated";
        if (!journal_.record_action_fenced(unknown, work.fence, error)) {
          work.lease_lost = error == kLeaseLost;
          return false;
        }
        metrics_.actions_unknown++;
        metrics_.actions_completed++;
        ++work.next;
        continue;
      }
      // An interrupted idempotent request, or a pending retry.
      work.attempt = next_attempt_number(done, rule.name);
      break;
    }
  }
  work.prepared = true;
  return true;
}

bool Dispatcher::record(EventWork& work, ActionRecord record) {
  std::string error;
  std::vector<ActionRecord> records = work.unwritten;
  records.push_back(std::move(record));
  if (journal_.record_actions_fenced(records, work.fence, error)) {
    outcomes_written(work);
    return true;
  }
  if (error == kLeaseLost) {
    work.lease_lost = true;
    return false;
  }
  log::write_limited("journal-action", log::Level::error, "journal write failed",
                     {{"error", error}});
  return false;
}

void Dispatcher::outcomes_written(EventWork& work) {
  for (const ActionRecord& record : work.unwritten) {
    switch (record.state) {
      case ActionState::succeeded:
        metrics_.actions_succeeded++;
        break;
      case ActionState::skipped:
        metrics_.actions_skipped++;
        break;
      case ActionState::http_error:
        metrics_.actions_http_error++;
        break;
      case ActionState::failed:
        metrics_.actions_failed++;
        break;
      case ActionState::unknown:
        metrics_.actions_unknown++;
        break;
      case ActionState::dead:
        metrics_.actions_dead++;
        break;
      default:
        break;
    }
    if (record.state != ActionState::skipped) metrics_.actions_completed++;
  }
  work.unwritten.clear();
  work.unwritten_sent = false;
}

Dispatcher::StepResult Dispatcher::outcome_unrecorded(EventWork& work, rules::Variables before,
                                                      bool started) {
  if (!started) {
    // Nothing left: the rule runs again as if for the first time.
    work.call.vars = std::move(before);
    return StepResult::wait;
  }
  // The journal shows the attempt started and nothing after: the same as a crash after sending.
  // The event resumes as after a restart, from the journal, once it can be written again: an
  // idempotent request may be sent again, a POST or PATCH becomes `unknown` and is not.
  work.prepared = false;
  work.recovered = true;
  work.next = 0;
  work.attempt = 1;
  work.call = {};
  work.rules.clear();
  work.unwritten.clear();
  work.unwritten_sent = false;
  return StepResult::wait;
}

Dispatcher::StepResult Dispatcher::step(EventWork& work, Clock::time_point& retry_at) {
  const auto taken_at = Clock::now();
  retry_at = taken_at + kJournalWaitDelay;
  if (!work.taken) {
    work.taken = true;
    if (!work.recovered)
      metrics_.action_phases.queue.observe(
          std::chrono::duration_cast<std::chrono::microseconds>(taken_at - work.accepted));
  }
  if (!work.prepared && !prepare(work))
    return work.lease_lost ? StepResult::lost : StepResult::wait;
  if (work.finished_elsewhere) return StepResult::done;
  while (work.next < work.rules.size()) {
    const rules::Rule& rule = *work.rules[work.next];
    rules::Variables before = work.call.vars;
    Attempt attempt{work.stored.seq, rule.name, work.attempt, 0};
    AttemptRun run = run_attempt(
        journal_, *work.engine, rule, work.call, attempt,
        [&] {
          if (!work.first_request_seen && !work.recovered) {
            work.first_request_seen = true;
            auto now = Clock::now();
            metrics_.event_to_request.observe(
                std::chrono::duration_cast<std::chrono::microseconds>(now - work.accepted));
            metrics_.action_phases.prepare.observe(
                std::chrono::duration_cast<std::chrono::microseconds>(now - taken_at));
          }
        },
        work.fence, work.unwritten);
    const rules::RuleOutcome& outcome = run.outcome;
    bool started = run.started;
    if (run.lease_lost) return StepResult::lost;
    if (run.journal_failed) {
      // The earlier outcomes were in that write: if one of them was sent, as any outcome that
      // could not be recorded; otherwise the rule runs again later with them still unwritten.
      if (work.unwritten_sent) return outcome_unrecorded(work, std::move(before), true);
      work.call.vars = std::move(before);
      return StepResult::wait;
    }
    if (started) {
      outcomes_written(work);
      metrics_.action_phases.started_commit.observe(run.started_commit);
      metrics_.action_phases.request.observe(
          std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - run.sent_at));
    }
    if (outcome.response && outcome.sent)
      metrics_.action_latency.observe(outcome.response->latency);

    ActionState state = state_of(outcome.status);
    if (state == ActionState::http_error || state == ActionState::failed) {
      const rules::RetryPolicy& policy = rule.retry ? *rule.retry : work.config->dispatcher.retry;
      const http::Outcome* response = outcome.response ? &*outcome.response : nullptr;
      switch (decide_retry(rule, policy, response, work.attempt, outcome.retryable)) {
        case RetryDecision::retry:
          // Its own write: the event waits for the next attempt, nothing to fold it into.
          if (!record(work, attempt_record(attempt, ActionState::retrying, outcome,
                                           *work.config->secrets)))
            return work.lease_lost ? StepResult::lost
                                   : outcome_unrecorded(work, std::move(before),
                                                        started || work.unwritten_sent);
          metrics_.actions_retried++;
          retry_at = Clock::now() + backoff_delay(policy, work.attempt, response);
          work.call.vars = std::move(before);
          ++work.attempt;
          log::write_limited("retry:" + rule.name, log::Level::warn, "action failed, will retry",
                             {{"rule", rule.name},
                              {"call_id", work.stored.call_id},
                              {"error", work.config->secrets->redact(outcome.error)},
                              {"attempt", std::to_string(work.attempt - 1)}});
          return StepResult::wait;
        case RetryDecision::unknown:
          state = ActionState::unknown;
          break;
        case RetryDecision::final:
          if (work.attempt > 1) state = ActionState::dead;
          break;
      }
    }
    // Whoever waits on the event (a commubo callback) learns the outcome before its record is
    // durable: the event itself is, and a rule run again after a crash decides the same.
    if (work.observer) work.observer->on_rule(outcome, work.call.vars);
    // The outcome goes with the event's next durable write (the next rule's started record or
    // the finish): until then the journal shows the attempt started, as after a crash after
    // sending. A skipped gate's record too: losing it only means the gate is evaluated again.
    work.unwritten.push_back(attempt_record(attempt, state, outcome, *work.config->secrets));
    work.unwritten_sent = work.unwritten_sent || started;
    if (is_failure(state))
      log::write_limited("action:" + rule.name, log::Level::warn, "action did not succeed",
                         {{"rule", rule.name},
                          {"call_id", work.stored.call_id},
                          {"state", std::string(to_string(state))},
                          {"error", work.config->secrets->redact(outcome.error)}});
    ++work.next;
    work.attempt = 1;
  }
  std::string error;
  auto commit_start = Clock::now();
  if (!journal_.finish_event_with(work.unwritten, work.stored.seq, EventState::done,
                                  work.stored.call_id, variables_to_json(work.call.vars),
                                  work.fence, error)) {
    if (error == kLeaseLost) return StepResult::lost;
    log::write_limited("journal-finish", log::Level::error, "journal write failed",
                       {{"error", error}});
    // An outcome of a request that left is not recorded: as after a crash after sending.
    if (work.unwritten_sent) return outcome_unrecorded(work, {}, true);
    return StepResult::wait;
  }
  metrics_.action_phases.finish_commit.observe(
      std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - commit_start));
  outcomes_written(work);
  metrics_.events_processed++;
  if (work.observer) work.observer->on_finished(work.call.vars);
  return StepResult::done;
}

}  // namespace callbridge::bridge
