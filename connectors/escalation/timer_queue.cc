#include "connectors/escalation/timer_queue.h"

namespace callbridge::escalation {

ThreadTimerQueue::ThreadTimerQueue(int workers) {
  timer_ = std::thread([this] { timer_loop(); });
  for (int i = 0; i < std::max(1, workers); ++i) workers_.emplace_back([this] { worker_loop(); });
}

ThreadTimerQueue::~ThreadTimerQueue() {
  stop();
}

void ThreadTimerQueue::stop() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  timer_cv_.notify_all();
  worker_cv_.notify_all();
  if (timer_.joinable()) timer_.join();
  for (auto& w : workers_)
    if (w.joinable()) w.join();
}

Millis ThreadTimerQueue::now() const {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

void ThreadTimerQueue::schedule(Millis at, std::function<void()> task) {
  {
    std::lock_guard lock(mutex_);
    if (stopping_) return;
    timers_.push(Entry{at, seq_++, std::move(task)});
  }
  timer_cv_.notify_one();
}

void ThreadTimerQueue::timer_loop() {
  std::unique_lock lock(mutex_);
  while (!stopping_) {
    if (timers_.empty()) {
      timer_cv_.wait(lock);
      continue;
    }
    Millis due = timers_.top().at;
    Millis current = now();
    if (due > current) {
      timer_cv_.wait_until(lock,
                           std::chrono::system_clock::time_point(std::chrono::milliseconds(due)));
      continue;
    }
    while (!timers_.empty() && timers_.top().at <= current) {
      ready_.push(std::move(const_cast<Entry&>(timers_.top()).task));
      timers_.pop();
    }
    worker_cv_.notify_all();
  }
}

void ThreadTimerQueue::worker_loop() {
  std::unique_lock lock(mutex_);
  while (true) {
    worker_cv_.wait(lock, [this] { return stopping_ || !ready_.empty(); });
    if (stopping_) return;
    auto task = std::move(ready_.front());
    ready_.pop();
    lock.unlock();
    try {
      task();
    } catch (...) {
      // A task's failure must not take the worker down; tasks report through chain state.
    }
    lock.lock();
  }
}

Millis ManualTimerQueue::now() const {
  std::lock_guard lock(mutex_);
  return now_;
}

void ManualTimerQueue::schedule(Millis at, std::function<void()> task) {
  std::lock_guard lock(mutex_);
  timers_.push(Entry{at, seq_++, std::move(task)});
}

bool ManualTimerQueue::run_one(Millis limit) {
  std::function<void()> task;
  {
    std::lock_guard lock(mutex_);
    if (timers_.empty() || timers_.top().at > limit) return false;
    now_ = std::max(now_, timers_.top().at);
    task = std::move(const_cast<Entry&>(timers_.top()).task);
    timers_.pop();
  }
  task();
  return true;
}

std::size_t ManualTimerQueue::advance(std::chrono::milliseconds by) {
  Millis limit = now() + by.count();
  std::size_t ran = 0;
  while (run_one(limit)) ++ran;
  std::lock_guard lock(mutex_);
  now_ = std::max(now_, limit);
  return ran;
}

bool ManualTimerQueue::run_until(const std::function<bool()>& done, std::size_t max_tasks) {
  for (std::size_t i = 0; i < max_tasks && !done(); ++i)
    if (!run_one(INT64_MAX)) break;
  return done();
}

std::size_t ManualTimerQueue::pending() const {
  std::lock_guard lock(mutex_);
  return timers_.size();
}

void ManualTimerQueue::clear() {
  std::lock_guard lock(mutex_);
  while (!timers_.empty()) timers_.pop();
}

}  // namespace callbridge::escalation
