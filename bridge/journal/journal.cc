#include "bridge/journal/journal.h"

#include <algorithm>
#include <limits>
#include <thread>
#include <unordered_set>

#include "bridge/journal/postgres/postgres_journal.h"
#include "bridge/journal/sqlite/sqlite_journal.h"

namespace callbridge::bridge {

namespace {

constexpr EventState kEventStates[] = {EventState::pending, EventState::done, EventState::dead};
constexpr ActionState kActionStates[] = {
    ActionState::started,    ActionState::retrying, ActionState::succeeded,
    ActionState::http_error, ActionState::failed,   ActionState::skipped,
    ActionState::unknown,    ActionState::dead,     ActionState::replayed};

}  // namespace

bool is_failure(ActionState state) {
  return std::find(std::begin(kFailureStates), std::end(kFailureStates), state) !=
         std::end(kFailureStates);
}

std::string_view to_string(EventState state) {
  switch (state) {
    case EventState::pending:
      return "pending";
    case EventState::done:
      return "done";
    case EventState::dead:
      return "dead";
  }
  return "pending";
}

std::string_view to_string(ActionState state) {
  switch (state) {
    case ActionState::started:
      return "started";
    case ActionState::retrying:
      return "retrying";
    case ActionState::succeeded:
      return "succeeded";
    case ActionState::http_error:
      return "http_error";
    case ActionState::failed:
      return "failed";
    case ActionState::skipped:
      return "skipped";
    case ActionState::unknown:
      return "unknown";
    case ActionState::dead:
      return "dead";
    case ActionState::replayed:
      return "replayed";
  }
  return "failed";
}

std::string_view to_string(PruneStep step) {
  switch (step) {
    case PruneStep::select_calls:
      return "select_calls";
    case PruneStep::delete_actions:
      return "delete_actions";
    case PruneStep::delete_event_keys:
      return "delete_event_keys";
    case PruneStep::delete_events:
      return "delete_events";
    case PruneStep::delete_calls:
      return "delete_calls";
  }
  return "select_calls";
}

std::optional<EventState> event_state_from(std::string_view text) {
  for (EventState s : kEventStates)
    if (to_string(s) == text) return s;
  return std::nullopt;
}

std::optional<ActionState> action_state_from(std::string_view text) {
  for (ActionState s : kActionStates)
    if (to_string(s) == text) return s;
  return std::nullopt;
}

std::string event_id_of(std::int64_t seq) {
  return "ev-" + std::to_string(seq);
}

std::unique_ptr<Journal> Journal::open(const JournalOptions& options, std::string& error) {
  switch (options.backend) {
    case JournalBackend::sqlite:
      return SqliteJournal::open(options, error);
    case JournalBackend::postgres:
      return PostgresJournal::open(options, error);
  }
  error = "unknown journal backend";
  return nullptr;
}

// Cluster mode's defaults: a journal one node owns (SQLite). Not one transaction each, which a
// single node does not need: nothing else takes its leases.
std::vector<std::string> not_held(const std::vector<std::string>& names,
                                  const std::vector<std::string>& held) {
  // A node may hold thousands of call leases: a set, not a search per name.
  std::unordered_set<std::string_view> kept(held.begin(), held.end());
  std::vector<std::string> out;
  for (const std::string& name : names)
    if (!kept.count(name)) out.push_back(name);
  return out;
}

std::optional<LeasedEvent> Journal::append_event_leased(
    const std::string& call_id, const std::string& event, const std::string& body,
    std::string_view owner, std::chrono::milliseconds ttl, std::string& error) {
  auto stored = append_event(call_id, event, body, error);
  if (!stored) return std::nullopt;
  LeasedEvent out;
  out.event = std::move(*stored);
  out.epoch = acquire_lease("call:" + call_id, owner, ttl);
  std::int64_t pos = 0;
  for (const StoredEvent& e : events_of_call(call_id)) {
    ++pos;
    if (e.seq == out.event.seq) break;
    if (e.state == EventState::pending && out.earlier_pending == 0) out.earlier_pending = pos;
  }
  out.event.call_pos = pos;
  return out;
}

std::optional<LeasedEvent> Journal::append_idle_event(const std::string& call_id,
                                                      const std::string& event,
                                                      const std::string& body, const std::string&,
                                                      const std::string&, std::string_view owner,
                                                      std::chrono::milliseconds ttl,
                                                      std::string& error) {
  // A journal one node owns: its dispatcher decides (Intake::accept); stored pending here.
  return append_event_leased(call_id, event, body, owner, ttl, error);
}

std::vector<StoredEvent> Journal::pending_events_of(const std::string& call_id) {
  std::vector<StoredEvent> out;
  std::int64_t pos = 0;
  for (StoredEvent& e : events_of_call(call_id)) {
    e.call_pos = ++pos;
    if (e.state == EventState::pending) out.push_back(std::move(e));
  }
  return out;
}

std::vector<PendingCall> Journal::pending_calls(const std::vector<std::string>& only,
                                                std::size_t limit) {
  std::vector<PendingCall> out;
  for (const StoredEvent& e : pending_events()) {
    if (!only.empty() && std::find(only.begin(), only.end(), e.call_id) == only.end()) continue;
    auto it = std::find_if(out.begin(), out.end(),
                           [&](const PendingCall& c) { return c.call_id == e.call_id; });
    if (it != out.end()) continue;
    if (out.size() >= limit) break;
    PendingCall call;
    call.call_id = e.call_id;
    call.last_pos = std::numeric_limits<std::int64_t>::max();  // unknown: read them
    out.push_back(std::move(call));
  }
  return out;
}

bool Journal::record_action_fenced(const ActionRecord& action, const Fence& fence,
                                   std::string& error) {
  if (fence.empty()) return record_action(action, error);
  error = "fenced writes need a PostgreSQL journal";
  return false;
}

void Journal::record_action_later_fenced(ActionRecord action, Fence fence) {
  if (fence.empty()) record_action_later(std::move(action));
}

bool Journal::finish_event_fenced(std::int64_t seq, EventState state, const std::string& call_id,
                                  const std::string& vars_json, const Fence& fence,
                                  std::string& error) {
  if (fence.empty()) return finish_event(seq, state, call_id, vars_json, error);
  error = "fenced writes need a PostgreSQL journal";
  return false;
}

// Correct but not atomic: a crash between the writes leaves the first ones only, which is what
// a crash before the later writes would have left anyway. Backends override both as one write.
bool Journal::record_actions_fenced(const std::vector<ActionRecord>& records, const Fence& fence,
                                    std::string& error) {
  for (const ActionRecord& record : records)
    if (!record_action_fenced(record, fence, error)) return false;
  return true;
}

bool Journal::finish_event_with(const std::vector<ActionRecord>& records, std::int64_t seq,
                                EventState state, const std::string& call_id,
                                const std::string& vars_json, const Fence& fence,
                                std::string& error) {
  return record_actions_fenced(records, fence, error) &&
         finish_event_fenced(seq, state, call_id, vars_json, fence, error);
}

bool Journal::release_call_lease(const std::string& call_id, std::int64_t epoch) {
  release_lease("call:" + call_id, epoch);
  return true;
}

void Journal::release_call_lease_later(const std::string& call_id, std::int64_t epoch) {
  release_call_lease(call_id, epoch);
}

std::vector<std::string> Journal::wait_for_stored_events(std::string_view,
                                                         std::chrono::milliseconds timeout) {
  std::this_thread::sleep_for(timeout);
  return {};
}

}  // namespace callbridge::bridge
