// The queries behind the web console on PostgreSQL. PLACEHOLDER: not yet implemented.
#include "bridge/journal/postgres/postgres_journal.h"

namespace callbridge::bridge {

std::vector<Journal::CallRow> PostgresJournal::search_calls(const CallQuery&) {
  return {};
}
std::vector<Journal::FailureRow> PostgresJournal::failures(const std::string&, std::int64_t,
                                                           std::int64_t, std::size_t) {
  return {};
}
std::vector<std::pair<std::string, std::int64_t>> PostgresJournal::action_counts(std::int64_t) {
  return {};
}
std::vector<std::pair<std::int64_t, std::int64_t>> PostgresJournal::events_per_minute(
    std::int64_t) {
  return {};
}
std::vector<std::int64_t> PostgresJournal::action_latencies(std::int64_t, std::size_t) {
  return {};
}

}  // namespace callbridge::bridge
