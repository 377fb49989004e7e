// Accepted events not yet finished, as /metrics and a `busy` answer need them: the age of the
// oldest one and how fast events finish (the drain rate). One short lock per event accepted and
// per event finished; nothing here reads the journal.
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <mutex>
#include <set>

namespace callbridge::bridge {

class Backlog {
 public:
  using Clock = std::chrono::steady_clock;
  using Entry = std::multiset<Clock::time_point>::const_iterator;
  // The drain rate is measured over this many seconds.
  static constexpr int kWindowSeconds = 10;
  // Bounds of the Retry-After a `busy` answer carries.
  static constexpr std::chrono::seconds kMinRetryAfter{1}, kMaxRetryAfter{30};

  explicit Backlog(Clock::time_point created = Clock::now()) : created_(created) {}

  // An event accepted (or recovered from the journal) at `received`; pass the entry to finish().
  Entry add(Clock::time_point received);
  // The event is finished: it leaves the backlog and counts towards the drain rate.
  void finish(Entry entry, Clock::time_point now = Clock::now());

  // Age of the oldest unfinished event; 0 when there is none.
  double oldest_seconds(Clock::time_point now = Clock::now()) const;
  // Events finished per second over the last kWindowSeconds (less just after the start).
  double drain_per_second(Clock::time_point now = Clock::now()) const;
  // When a caller turned away as `busy` should come back: the time the events ahead of it
  // (`depth`) take to drain at the measured rate, within [kMinRetryAfter, kMaxRetryAfter];
  // kMaxRetryAfter when nothing finished in the window.
  std::chrono::seconds retry_after(std::int64_t depth, Clock::time_point now = Clock::now()) const;

 private:
  double drain_locked(Clock::time_point now) const;

  const Clock::time_point created_;
  mutable std::mutex mutex_;
  std::multiset<Clock::time_point> pending_;
  // Events finished per second, a ring indexed by the second; second_of_ says which second a
  // slot counts, so a stale slot reads as zero.
  std::array<std::uint64_t, kWindowSeconds> finished_{};
  std::array<std::int64_t, kWindowSeconds> second_of_{};
};

}  // namespace callbridge::bridge
