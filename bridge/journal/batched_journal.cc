#include "bridge/journal/batched_journal.h"

namespace callbridge::bridge {

namespace {

// How often writable() sends its probe while commits fail.
constexpr auto kProbeInterval = std::chrono::seconds(1);

std::int64_t unix_ms(std::chrono::system_clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
}

}  // namespace

std::int64_t BatchedJournal::now_ms() {
  return unix_ms(std::chrono::system_clock::now());
}

StoredEvent BatchedJournal::new_event(const std::string& call_id, const std::string& event,
                                      const std::string& body, EventState state) {
  StoredEvent stored;
  stored.call_id = call_id;
  stored.event = event;
  stored.body = body;
  stored.received_at_ms = now_ms();
  stored.state = state;
  return stored;
}

std::optional<StoredEvent> BatchedJournal::append_event(const std::string& call_id,
                                                        const std::string& event,
                                                        const std::string& body,
                                                        std::string& error) {
  StoredEvent stored = new_event(call_id, event, body, EventState::pending);
  if (!group_->submit([&](std::string& e) { return insert_event(stored, e); }, error))
    return std::nullopt;
  return stored;
}

bool BatchedJournal::record_action(const ActionRecord& action, std::string& error) {
  return group_->submit(write_action(action), error);
}

void BatchedJournal::record_action_later(ActionRecord action) {
  group_->submit_later(write_action(std::move(action)));
}

std::size_t BatchedJournal::prune(std::chrono::system_clock::time_point older_than) {
  return prune_steps(older_than, kPruneSteps);
}

std::size_t BatchedJournal::prune_steps(std::chrono::system_clock::time_point older_than,
                                        std::span<const PruneStep> steps) {
  PruneRun run;
  run.cutoff_ms = unix_ms(older_than);
  std::string error;
  group_->submit(
      [&](std::string& e) {
        for (PruneStep step : steps)
          if (!prune_step(step, run, e)) return false;
        return true;
      },
      error);
  return error.empty() ? run.calls : 0;
}

bool BatchedJournal::kv_put(std::string_view ns, std::string_view key, std::string_view value,
                            std::string& error) {
  return group_->submit(write_kv(std::string(ns), std::string(key), std::string(value)), error);
}

void BatchedJournal::kv_put_later(std::string_view ns, std::string_view key,
                                  std::string_view value) {
  group_->submit_later(write_kv(std::string(ns), std::string(key), std::string(value)));
}

bool BatchedJournal::kv_put_if(std::string_view ns, std::string_view key, std::string_view value,
                               std::optional<std::string_view> expected, std::string& error) {
  std::string n(ns), k(key), v(value);
  std::optional<std::string> e;
  if (expected) e.emplace(*expected);
  bool stored = false;
  if (!group_->submit([&](std::string& err) { return write_kv_if(n, k, v, e, stored, err); },
                      error))
    return false;
  error.clear();
  return stored;
}

void BatchedJournal::note_health(bool ok, std::string reason) {
  std::lock_guard lock(health_mutex_);
  writable_ = ok;
  unwritable_reason_ = std::move(reason);
}

bool BatchedJournal::writable(std::string& reason) {
  std::lock_guard lock(health_mutex_);
  if (writable_) return true;
  reason = unwritable_reason_;
  // Nothing may be written for a while: a small write finds out when the journal works again.
  auto now = std::chrono::steady_clock::now();
  if (now - last_probe_ >= kProbeInterval) {
    last_probe_ = now;
    group_->submit_later(write_kv("journal", "probe", std::to_string(now_ms())));
  }
  return false;
}

}  // namespace callbridge::bridge
