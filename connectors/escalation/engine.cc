#include "connectors/escalation/engine.h"

#include <algorithm>
#include <deque>
#include <mutex>
#include <unordered_map>

namespace callbridge::escalation {

namespace {

struct Chain {
  std::mutex mutex;
  ChainState state;
};

}  // namespace

struct Engine::Impl : std::enable_shared_from_this<Engine::Impl> {
  EngineSettings settings;
  TimerQueue& timers;
  ChainStore& store;
  Dialer* dialer;
  RemoteChains* remote;
  FinishedHandler on_finished;

  mutable std::mutex map_mutex;
  std::unordered_map<std::string, std::shared_ptr<Chain>> chains;
  std::deque<std::string> finished_order;  // oldest first, for the in-memory history limit
  std::atomic<bool> stopped{false};

  std::atomic<std::size_t> running{0};
  std::atomic<std::uint64_t> started{0};
  std::array<std::atomic<std::uint64_t>, 4> finished{};
  std::array<std::atomic<std::uint64_t>, 5> attempts{};

  Impl(EngineSettings s, TimerQueue& t, ChainStore& st, Dialer* d, RemoteChains* r)
      : settings(s), timers(t), store(st), dialer(d), remote(r) {}

  std::shared_ptr<Chain> find(const std::string& id) const {
    std::lock_guard lock(map_mutex);
    auto it = chains.find(id);
    return it == chains.end() ? nullptr : it->second;
  }

  // Runs `fn(impl)` later on the timer queue, unless the engine is gone or stopped by then.
  void later(Millis at, std::function<void(Impl&)> fn) {
    std::weak_ptr<Impl> weak = shared_from_this();
    timers.schedule(at, [weak, fn = std::move(fn)] {
      if (auto self = weak.lock(); self && !self->stopped) fn(*self);
    });
  }

  void schedule_step(const std::string& id, Millis at) {
    later(at, [id](Impl& self) { self.step(id); });
  }

  void count_attempt(AttemptOutcome outcome) { ++attempts[static_cast<int>(outcome)]; }

  // ---- chains owned by lease (a store with leases: docs/cluster.md) ----

  // This node no longer holds the chain: forget it here (its owner continues it).
  void drop(const std::string& id) {
    std::lock_guard lock(map_mutex);
    auto it = chains.find(id);
    if (it == chains.end()) return;
    bool was_running;
    {
      std::lock_guard chain_lock(it->second->mutex);
      was_running = it->second->state.status == ChainStatus::running;
    }
    if (!was_running) return;  // an ended chain stays in the history
    chains.erase(it);
    if (running > 0) --running;
  }

  // Every lease_time/3: renews the chains held and forgets the lost ones; every lease_time:
  // takes over chains whose owner stopped renewing them.
  void maintain(std::uint64_t tick) {
    for (const auto& id : store.renew()) drop(id);
    if (tick % 3 == 0) adopt();
    later(timers.now() + std::max<Millis>(store.lease_time().count() / 3, 1),
          [tick](Impl& self) { self.maintain(tick + 1); });
  }

  // Chains that still have work (running, or ended without their event submitted) and whose
  // lease is free: claimed and continued from their stored state at their stored due time.
  void adopt() {
    std::vector<std::string> errors;
    for (auto& s : store.load_all(errors)) {
      if (s.status != ChainStatus::running && s.notified) continue;
      if (store.holds(s.id)) continue;
      drop(s.id);
      if (!store.claim(s.id)) continue;
      // Read again under the lease: the last owner's last fenced write is in it.
      auto fresh = store.load(s.id);
      if (!fresh) {
        store.release(s.id);
        continue;
      }
      resume(std::move(*fresh), timers.now(), "interrupted: its node stopped");
    }
  }

  // A stored chain this node now runs (after a restart, or taken over from another node).
  void resume(ChainState s, Millis now, const char* interrupted = "interrupted by restart") {
    bool was_running = s.status == ChainStatus::running;
    if (was_running && s.phase == Phase::dialing && !s.attempts.empty() &&
        !s.attempts.back().outcome) {
      // It may have rung already: never dial it again; record it and move on.
      Attempt& a = s.attempts.back();
      a.outcome = AttemptOutcome::failed;
      a.ended_at = now;
      a.error = interrupted;
      count_attempt(AttemptOutcome::failed);
      advance(s, true, now);
      save_or_retry(s);
    } else if (was_running && s.phase == Phase::remote && s.remote_id.empty()) {
      finish(s, ChainStatus::failed,
             std::string(interrupted) + " before Kompira Pigeon confirmed the invoke", now);
      save_or_retry(s);
    }
    auto chain = std::make_shared<Chain>();
    chain->state = s;
    {
      std::lock_guard lock(map_mutex);
      chains[s.id] = chain;
      if (!was_running) finished_order.push_back(s.id);
    }
    if (s.status == ChainStatus::running) {
      ++running;
      if (s.phase == Phase::remote)
        schedule_poll(s.id, std::max(now, s.due_at));
      else
        schedule_step(s.id, std::max(now, s.due_at));
    } else if (was_running) {  // ended just now
      ++running;
      finished_chain(s);
    } else if (!s.notified) {
      std::string id = s.id;
      later(now, [id, s](Impl& me) { me.notify(id, s); });
    }
  }

  // Moves to the next contact to call, or ends the chain. Pigeon: loops restart from the top;
  // contacts who left are skipped; past the loop limit the chain fails.
  void advance(ChainState& s, bool after_attempt, Millis now) {
    const auto& contacts = s.callflow.contacts;
    bool anyone = std::any_of(contacts.begin(), contacts.end(),
                              [&](const Contact& c) { return !s.left.count(c.id); });
    if (!anyone) {
      finish(s, ChainStatus::failed, "every contact left the chain", now);
      return;
    }
    int index = s.position + 1;
    int loop = s.loop;
    bool wrapped = false;
    for (;;) {
      if (index >= static_cast<int>(contacts.size())) {
        ++loop;
        index = 0;
        wrapped = true;
        if (loop > s.callflow.loop_limit) {
          finish(s, ChainStatus::failed,
                 "no one terminated the chain in " + std::to_string(s.callflow.loop_limit) +
                     (s.callflow.loop_limit == 1 ? " loop" : " loops"),
                 now);
          return;
        }
      }
      if (!s.left.count(contacts[index].id)) break;
      ++index;
    }
    s.loop = loop;
    s.position = index;
    s.phase = Phase::waiting;
    auto pause = !after_attempt ? std::chrono::milliseconds(0)
                 : wrapped      ? settings.pause_between_loops
                                : settings.pause_between_calls;
    s.due_at = now + pause.count();
  }

  void finish(ChainState& s, ChainStatus status, std::string reason, Millis now) {
    s.status = status;
    s.phase = Phase::finished;
    s.reason = std::move(reason);
    s.finished_at = now;
    s.due_at = 0;
  }

  // Bookkeeping once a chain's state says finished (saved already).
  void finished_chain(const ChainState& s) {
    if (running > 0) --running;
    ++finished[static_cast<int>(s.status)];
    {
      std::lock_guard lock(map_mutex);
      finished_order.push_back(s.id);
      while (finished_order.size() > settings.history_limit) {
        chains.erase(finished_order.front());
        finished_order.pop_front();
      }
    }
    notify(s.id, s);
  }

  void notify(const std::string& id, ChainState snapshot) {
    if (!on_finished) return;
    bool delivered = false;
    try {
      delivered = on_finished(snapshot);
    } catch (...) {
      delivered = false;
    }
    if (!delivered) {
      later(timers.now() + settings.store_retry.count(), [id](Impl& self) {
        std::optional<ChainState> s;
        if (auto chain = self.find(id)) {
          std::lock_guard lock(chain->mutex);
          s = chain->state;
        } else {
          s = self.store.load(id);
        }
        if (s && !s->notified) self.notify(id, *s);
      });
      return;
    }
    auto chain = find(id);
    bool saved;
    std::string error;
    if (chain) {
      std::lock_guard lock(chain->mutex);
      chain->state.notified = true;
      saved = store.save(chain->state, error);
    } else {
      snapshot.notified = true;
      saved = store.save(snapshot, error);
    }
    if (saved) store.release(id);  // nothing left to do for it anywhere
  }

  // Saves after an outcome; if the store is down the state is kept and saved again shortly.
  void save_or_retry(ChainState& s) {
    std::string error;
    if (store.save(s, error)) return;
    std::string id = s.id;
    if (!store.holds(id)) {
      // Another node continues it from its last saved state; forget it here (not under the
      // chain's lock, which this caller holds).
      later(timers.now(), [id](Impl& self) { self.drop(id); });
      return;
    }
    later(timers.now() + settings.store_retry.count(), [id](Impl& self) {
      if (auto chain = self.find(id)) {
        std::lock_guard lock(chain->mutex);
        self.save_or_retry(chain->state);
      }
    });
  }

  void fill_request(const ChainState& s, const Attempt& a, const Contact& contact,
                    DialRequest& request) const {
    request.chain_id = s.id;
    request.attempt_id = a.id;
    request.contact = contact;
    request.loop = a.loop;
    request.position = a.position;
    request.message = a.message;
    for (const auto& [key, r] : s.guidance.responses)
      request.responses[key] = KeyResponse{r.reaction, render_message(r.message, s.parameters)};
    request.ring_timeout = settings.ring_timeout;
  }

  void step(const std::string& id) {
    auto chain = find(id);
    if (!chain) return;
    if (!store.holds(id)) {
      drop(id);
      return;
    }
    DialRequest request;
    Millis request_time = 0;
    bool lost = false;
    {
      std::lock_guard lock(chain->mutex);
      ChainState& s = chain->state;
      if (s.status != ChainStatus::running || s.phase != Phase::waiting) return;
      Millis now = timers.now();
      if (now < s.due_at) {
        schedule_step(id, s.due_at);
        return;
      }
      const Contact& contact = s.callflow.contacts.at(static_cast<std::size_t>(s.position));
      Attempt a;
      a.id = s.id + "-" + std::to_string(s.attempts.size() + 1);
      a.contact_id = contact.id;
      a.contact_name = contact.name;
      a.phone = contact.phone;
      a.loop = s.loop;
      a.position = s.position;
      a.started_at = now;
      a.message = render_message(s.guidance.message, s.parameters);
      s.attempts.push_back(a);
      s.phase = Phase::dialing;
      std::string error;
      if (!store.save(s, error)) {
        // Not durable (or the chain's lease is lost): do not dial.
        s.attempts.pop_back();
        s.phase = Phase::waiting;
        if (store.holds(id)) {  // try again shortly
          s.due_at = now + settings.store_retry.count();
          schedule_step(id, s.due_at);
          return;
        }
        lost = true;
      } else {
        fill_request(s, a, contact, request);
        request_time = now;
      }
    }
    if (lost) {
      drop(id);  // its new owner continues it from the saved state
      return;
    }
    {
      std::string attempt_id = request.attempt_id;
      later(request_time + settings.attempt_timeout.count(), [id, attempt_id](Impl& self) {
        if (self.on_outcome(id, attempt_id,
                            DialResult{AttemptOutcome::failed, std::nullopt,
                                       "no outcome within the attempt timeout"}) &&
            self.dialer)
          self.dialer->cancel(attempt_id);
      });
    }
    std::weak_ptr<Impl> weak = shared_from_this();
    std::string attempt_id = request.attempt_id;
    dialer->dial(request, [weak, id, attempt_id](DialResult result) {
      auto self = weak.lock();
      if (!self || self->stopped) return;
      self->later(self->timers.now(),
                  [id, attempt_id, result](Impl& me) { me.on_outcome(id, attempt_id, result); });
    });
  }

  // False when the attempt is no longer the one in progress (late, duplicate, aborted).
  bool on_outcome(const std::string& id, const std::string& attempt_id, DialResult result) {
    auto chain = find(id);
    if (!chain) return false;
    std::optional<ChainState> ended;
    {
      std::lock_guard lock(chain->mutex);
      ChainState& s = chain->state;
      if (s.status != ChainStatus::running || s.phase != Phase::dialing || s.attempts.empty())
        return false;
      Attempt& a = s.attempts.back();
      if (a.id != attempt_id || a.outcome) return false;  // late or duplicate
      Millis now = timers.now();
      a.ended_at = now;
      a.outcome = result.outcome;
      a.error = result.error;
      if (result.outcome == AttemptOutcome::succeeded) {
        a.key = result.key;
        auto it = result.key ? s.guidance.responses.find(*result.key) : s.guidance.responses.end();
        if (it == s.guidance.responses.end()) {
          // A key without a response does nothing in Pigeon: answered, no usable key.
          a.outcome = AttemptOutcome::ignored;
          a.error = result.key ? "key " + std::to_string(*result.key) + " has no response"
                               : "succeeded without a key";
        } else {
          a.reaction = it->second.reaction;
          a.response_message = render_message(it->second.message, s.parameters);
        }
      }
      count_attempt(*a.outcome);
      if (a.reaction == Reaction::terminate) {
        s.key = a.key;
        s.terminated_by = a.contact_id;
        finish(s, ChainStatus::succeeded,
               "terminated by " + a.contact_name + " with key " + std::to_string(*a.key), now);
      } else {
        if (a.reaction == Reaction::leave) s.left.insert(a.contact_id);
        advance(s, true, now);
      }
      save_or_retry(s);
      if (s.phase == Phase::finished)
        ended = s;
      else
        schedule_step(id, s.due_at);
    }
    if (ended) finished_chain(*ended);
    return true;
  }

  // ---- remote (Kompira Pigeon) ----

  void remote_invoke(const std::string& id) {
    auto chain = find(id);
    if (!chain) return;
    ChainState snapshot;
    {
      std::lock_guard lock(chain->mutex);
      if (chain->state.status != ChainStatus::running || !chain->state.remote_id.empty()) return;
      snapshot = chain->state;
    }
    RemoteChains::Invoked invoked = remote->invoke(snapshot);
    std::optional<ChainState> ended;
    {
      std::lock_guard lock(chain->mutex);
      ChainState& s = chain->state;
      if (s.status != ChainStatus::running) return;  // aborted meanwhile
      Millis now = timers.now();
      if (invoked.result_id.empty()) {
        finish(s, ChainStatus::failed,
               (invoked.maybe_sent ? "Pigeon invoke outcome unknown: " : "Pigeon invoke failed: ") +
                   invoked.error,
               now);
        ended = s;
      } else {
        s.remote_id = invoked.result_id;
        s.due_at = now + settings.poll_interval.count();
        schedule_poll(id, s.due_at);
      }
      save_or_retry(s);
    }
    if (ended) finished_chain(*ended);
  }

  void schedule_poll(const std::string& id, Millis at) {
    later(at, [id](Impl& self) { self.remote_poll(id); });
  }

  void remote_poll(const std::string& id) {
    auto chain = find(id);
    if (!chain) return;
    std::string result_id;
    {
      std::lock_guard lock(chain->mutex);
      if (chain->state.status != ChainStatus::running) return;
      result_id = chain->state.remote_id;
    }
    RemoteChains::Polled polled = remote->poll(result_id);
    std::optional<ChainState> ended;
    {
      std::lock_guard lock(chain->mutex);
      ChainState& s = chain->state;
      if (s.status != ChainStatus::running) return;
      Millis now = timers.now();
      ++s.remote_polls;
      if (polled.ok) {
        std::size_t before = s.attempts.size();
        bool done = remote->apply(polled.result, s);
        for (std::size_t i = before; i < s.attempts.size(); ++i)
          if (s.attempts[i].outcome) count_attempt(*s.attempts[i].outcome);
        if (done) {
          s.phase = Phase::finished;
          if (!s.finished_at) s.finished_at = now;
          if (s.status == ChainStatus::running) s.status = ChainStatus::failed;
          ended = s;
        }
      }
      if (!ended) {
        // Backoff: 1.5x per poll from poll_interval up to poll_max_interval.
        double interval = static_cast<double>(settings.poll_interval.count());
        for (int i = 1; i < s.remote_polls && interval < settings.poll_max_interval.count(); ++i)
          interval *= 1.5;
        auto wait =
            std::min<Millis>(static_cast<Millis>(interval), settings.poll_max_interval.count());
        s.due_at = now + wait;
        schedule_poll(id, s.due_at);
      }
      save_or_retry(s);
    }
    if (ended) finished_chain(*ended);
  }

  // Pigeon's completion webhook (or anyone who knows the chain changed): poll now.
  void poke(const std::string& id) {
    later(timers.now(), [id](Impl& self) { self.remote_poll(id); });
  }
};

Engine::Engine(EngineSettings settings, TimerQueue& timers, ChainStore& store, Dialer* dialer,
               RemoteChains* remote)
    : impl_(std::make_shared<Impl>(settings, timers, store, dialer, remote)) {}

Engine::~Engine() {
  stop();
}

void Engine::poke(const std::string& id) {
  impl_->poke(id);
}

void Engine::stop() {
  if (impl_->stopped.exchange(true)) return;
  if (!impl_->store.leased()) return;
  // Hand the chains over now rather than after lease_time: another node continues them.
  std::vector<std::string> ids;
  {
    std::lock_guard lock(impl_->map_mutex);
    for (const auto& [id, chain] : impl_->chains) ids.push_back(id);
  }
  for (const auto& id : ids) impl_->store.release(id);
}

void Engine::set_finished_handler(FinishedHandler handler) {
  impl_->on_finished = std::move(handler);
}

const EngineSettings& Engine::settings() const {
  return impl_->settings;
}

std::vector<std::string> Engine::recover() {
  Impl& self = *impl_;
  std::vector<std::string> errors;
  std::vector<ChainState> states = self.store.load_all(errors);
  // Oldest finished first, so the in-memory history keeps the newest.
  std::sort(states.begin(), states.end(),
            [](const ChainState& a, const ChainState& b) { return a.created_at < b.created_at; });
  Millis now = self.timers.now();
  for (auto& s : states) {
    // With leases, a chain with work left is this node's only once it holds the chain's lease;
    // the others run elsewhere (maintain() takes them over when their owner dies).
    bool work_left = s.status == ChainStatus::running || !s.notified;
    if (self.store.leased() && work_left && !self.store.claim(s.id)) continue;
    self.resume(std::move(s), now);
  }
  {
    std::lock_guard lock(self.map_mutex);
    while (self.finished_order.size() > self.settings.history_limit) {
      self.chains.erase(self.finished_order.front());
      self.finished_order.pop_front();
    }
  }
  if (self.store.leased()) self.maintain(1);
  return errors;
}

std::optional<ChainState> Engine::start(ChainRequest request, std::string& error,
                                        rules::ErrorCode* code) {
  Impl& self = *impl_;
  auto fail = [&](rules::ErrorCode c) {
    if (code) *code = c;
    return std::nullopt;
  };
  if (self.stopped) {
    error = "the escalation engine is stopped";
    return fail(rules::ErrorCode::escalation_unavailable);
  }
  ChainState s;
  s.id = new_uuid();
  s.origin_call_id = std::move(request.origin_call_id);
  s.origin_rule = std::move(request.origin_rule);
  s.callflow = std::move(request.callflow);
  s.guidance = std::move(request.guidance);
  s.parameters = std::move(request.parameters);
  s.created_at = self.timers.now();
  if (self.remote) {
    s.backend = "pigeon";
    s.phase = Phase::remote;
  } else {
    if (!self.dialer) {
      error = "no dialer configured";
      return fail(rules::ErrorCode::escalation_unavailable);
    }
    if (auto e = validate(s.callflow); !e.empty()) {
      error = e;
      return fail(rules::ErrorCode::invalid_callflow);
    }
    if (auto e = validate(s.guidance); !e.empty()) {
      error = e;
      return fail(rules::ErrorCode::invalid_guidance);
    }
    self.advance(s, false, s.created_at);
  }
  if (!self.store.claim(s.id)) {
    error = "the chain's lease could not be taken";
    return fail(rules::ErrorCode::journal_unavailable);
  }
  if (!self.store.save(s, error)) {
    self.store.release(s.id);
    return fail(rules::ErrorCode::journal_unavailable);
  }
  auto chain = std::make_shared<Chain>();
  chain->state = s;
  {
    std::lock_guard lock(self.map_mutex);
    self.chains[s.id] = chain;
  }
  ++self.started;
  ++self.running;
  std::string id = s.id;
  if (self.remote)
    self.later(s.created_at, [id](Impl& me) { me.remote_invoke(id); });
  else
    self.schedule_step(id, s.due_at);
  return s;
}

bool Engine::abort(const std::string& id, std::string& error, int& status) {
  Impl& self = *impl_;
  auto chain = self.find(id);
  if (!chain) {
    auto stored = self.store.load(id);
    status = stored ? 409 : 404;
    error = !stored ? "no chain " + id
            : stored->status == ChainStatus::running
                ? "chain " + id + " runs on another node of the cluster; abort it there"
                : "chain " + id + " has already ended";
    return false;
  }
  std::string remote_id;
  {
    std::lock_guard lock(chain->mutex);
    if (chain->state.status != ChainStatus::running) {
      status = 409;
      error = "chain " + id + " has already ended (" + std::string(to_string(chain->state.status)) +
              ")";
      return false;
    }
    remote_id = chain->state.remote_id;
  }
  if (self.remote && !remote_id.empty() && !self.remote->abort(remote_id, error)) {
    status = 502;
    error = "Kompira Pigeon did not abort: " + error;
    return false;
  }
  std::string cancel;
  ChainState ended;
  {
    std::lock_guard lock(chain->mutex);
    ChainState& s = chain->state;
    if (s.status != ChainStatus::running) {
      status = 409;
      error = "chain " + id + " has already ended";
      return false;
    }
    Millis now = self.timers.now();
    // The call in progress ends with the chain: ours (its dialer is told) or Pigeon's, whose
    // result is not polled again after the abort.
    bool calling = s.phase == Phase::dialing || s.phase == Phase::remote;
    if (calling && !s.attempts.empty() && !s.attempts.back().outcome) {
      Attempt& a = s.attempts.back();
      a.outcome = AttemptOutcome::aborted;
      a.ended_at = now;
      self.count_attempt(AttemptOutcome::aborted);
      if (s.phase == Phase::dialing) cancel = a.id;
    }
    self.finish(s, ChainStatus::aborted, "aborted", now);
    self.save_or_retry(s);
    ended = s;
  }
  if (!cancel.empty() && self.dialer) self.dialer->cancel(cancel);
  self.finished_chain(ended);
  return true;
}

std::optional<ChainState> Engine::get(const std::string& id) const {
  if (auto chain = impl_->find(id)) {
    std::lock_guard lock(chain->mutex);
    return chain->state;
  }
  return impl_->store.load(id);
}

std::vector<ChainState> Engine::list(std::size_t limit) const {
  std::vector<std::shared_ptr<Chain>> all;
  {
    std::lock_guard lock(impl_->map_mutex);
    all.reserve(impl_->chains.size());
    for (const auto& [id, chain] : impl_->chains) all.push_back(chain);
  }
  std::vector<ChainState> out;
  out.reserve(all.size());
  for (const auto& chain : all) {
    std::lock_guard lock(chain->mutex);
    out.push_back(chain->state);
  }
  std::sort(out.begin(), out.end(), [](const ChainState& a, const ChainState& b) {
    return a.created_at != b.created_at ? a.created_at > b.created_at : a.id > b.id;
  });
  if (out.size() > limit) out.resize(limit);
  return out;
}

Engine::Counts Engine::counts() const {
  Counts c;
  c.running = impl_->running;
  c.started = impl_->started;
  for (std::size_t i = 0; i < c.finished.size(); ++i) c.finished[i] = impl_->finished[i];
  for (std::size_t i = 0; i < c.attempts.size(); ++i) c.attempts[i] = impl_->attempts[i];
  return c;
}

}  // namespace callbridge::escalation
