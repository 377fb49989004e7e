#include "bridge/backlog.h"

#include <algorithm>
#include <cmath>

namespace callbridge::bridge {

namespace {

std::int64_t second_of(Backlog::Clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::seconds>(t.time_since_epoch()).count();
}

}  // namespace

Backlog::Entry Backlog::add(Clock::time_point received) {
  std::lock_guard lock(mutex_);
  return pending_.insert(received);
}

void Backlog::finish(Entry entry, Clock::time_point now) {
  std::int64_t second = second_of(now);
  auto slot = static_cast<std::size_t>(second % kWindowSeconds);
  std::lock_guard lock(mutex_);
  pending_.erase(entry);
  if (second_of_[slot] != second) {
    second_of_[slot] = second;
    finished_[slot] = 0;
  }
  ++finished_[slot];
}

double Backlog::oldest_seconds(Clock::time_point now) const {
  std::lock_guard lock(mutex_);
  if (pending_.empty()) return 0;
  std::chrono::duration<double> age = now - *pending_.begin();
  return std::max(age.count(), 0.0);
}

double Backlog::drain_locked(Clock::time_point now) const {
  std::int64_t second = second_of(now);
  std::uint64_t finished = 0;
  for (std::size_t i = 0; i < finished_.size(); ++i)
    if (second_of_[i] > second - kWindowSeconds && second_of_[i] <= second)
      finished += finished_[i];
  // Just after the start the window is as long as the bridge has run, and at least a second.
  std::chrono::duration<double> running = now - created_;
  double window = std::clamp(running.count(), 1.0, static_cast<double>(kWindowSeconds));
  return static_cast<double>(finished) / window;
}

double Backlog::drain_per_second(Clock::time_point now) const {
  std::lock_guard lock(mutex_);
  return drain_locked(now);
}

std::chrono::seconds Backlog::retry_after(std::int64_t depth, Clock::time_point now) const {
  if (depth <= 0) return kMinRetryAfter;
  double rate = drain_per_second(now);
  if (rate <= 0) return kMaxRetryAfter;
  double seconds = std::ceil(static_cast<double>(depth) / rate);
  if (seconds >= static_cast<double>(kMaxRetryAfter.count())) return kMaxRetryAfter;
  return std::max(kMinRetryAfter, std::chrono::seconds(static_cast<std::int64_t>(seconds)));
}

}  // namespace callbridge::bridge
