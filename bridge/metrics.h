// Counters and histograms for /metrics (Prometheus text format). Lock-free on the hot path
// but for the backlog's one short lock per event accepted and finished.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <string>

#include "bridge/backlog.h"

namespace callbridge::bridge {

class Histogram {
 public:
  // Upper bounds in seconds.
  static constexpr std::array<double, 14> kBounds{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                                  0.1,    0.25,  0.5,    1,     2.5,  5,     10};
  void observe(std::chrono::microseconds value);
  void render(std::string& out, const std::string& name, const std::string& labels = "") const;

 private:
  std::array<std::atomic<std::uint64_t>, kBounds.size() + 1> buckets_{};
  std::atomic<std::uint64_t> count_{0};
  std::atomic<std::uint64_t> sum_us_{0};
};

struct Metrics {
  std::atomic<std::uint64_t> events_accepted{0};
  std::atomic<std::uint64_t> rejected_unauthorized{0}, rejected_invalid{0}, rejected_too_large{0},
      rejected_busy{0}, rejected_journal{0};
  // Actions by final outcome of an attempt.
  std::atomic<std::uint64_t> actions_succeeded{0}, actions_http_error{0}, actions_failed{0},
      actions_skipped{0}, actions_retried{0}, actions_unknown{0}, actions_dead{0};
  // Actions that will not be tried again and did run: succeeded, http_error, failed, unknown,
  // dead (not skipped, not retried). Its rate is the drain rate.
  std::atomic<std::uint64_t> actions_completed{0};
  std::atomic<std::uint64_t> events_processed{0};
  Histogram action_latency;    // request sent to response
  Histogram event_to_request;  // event accepted to its first request sent
  Histogram intake_latency;    // request received to 202 (includes the journal commit)
  // Where an action's time goes, by phase (docs/server.md, "Metrics").
  struct ActionPhases {
    Histogram queue;           // event accepted to a worker taking it
    Histogram prepare;         // worker taking it to its first request ready (reads, render)
    Histogram started_commit;  // the durable `started` record (with earlier rules' outcomes)
    Histogram request;         // started record durable to response received
    Histogram finish_commit;   // the last outcome with the event's finish, durable
  } action_phases;
  Backlog backlog;  // unfinished accepted events: the oldest one's age, the drain rate

  // Gauges read at render time.
  std::function<std::int64_t()> queue_depth;
  std::function<std::uint64_t()> journal_commits;
  std::function<std::uint64_t()> journal_failed_queued_writes;
  std::function<double()> journal_last_commit_seconds;

  std::string render() const;

 private:
  void render_backlog(std::string& out) const;
};

}  // namespace callbridge::bridge
