#include "bridge/journal/journal.h"

#include <algorithm>

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

}  // namespace callbridge::bridge
