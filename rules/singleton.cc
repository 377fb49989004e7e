#include "rules/singleton.h"

namespace callbridge::rules {

SingletonRunner::SingletonRunner(Leases& leases, std::string name, std::chrono::milliseconds period,
                                 Job job)
    : leases_(leases), name_(std::move(name)), period_(period), job_(std::move(job)) {}

SingletonRunner::~SingletonRunner() {
  stop();
}

void SingletonRunner::start() {
  std::lock_guard lock(mutex_);
  if (lease_thread_.joinable()) return;
  stopping_ = false;
  lease_thread_ = std::thread([this] { lease_loop(); });
  job_thread_ = std::thread([this] { job_loop(); });
}

void SingletonRunner::stop() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  lease_cv_.notify_all();
  job_cv_.notify_all();
  if (job_thread_.joinable()) job_thread_.join();
  if (lease_thread_.joinable()) lease_thread_.join();
  std::optional<std::int64_t> epoch;
  {
    std::lock_guard lock(mutex_);
    epoch = epoch_;
    epoch_.reset();
  }
  if (epoch) leases_.release(name_, *epoch);
}

void SingletonRunner::wake() {
  {
    std::lock_guard lock(mutex_);
    woken_ = true;
  }
  job_cv_.notify_all();
}

bool SingletonRunner::held() const {
  std::lock_guard lock(mutex_);
  return epoch_.has_value();
}

std::optional<LeaseFence> SingletonRunner::fence() const {
  std::lock_guard lock(mutex_);
  if (!epoch_) return std::nullopt;
  return LeaseFence{name_, *epoch_};
}

std::uint64_t SingletonRunner::runs() const {
  std::lock_guard lock(mutex_);
  return runs_;
}

std::uint64_t SingletonRunner::acquisitions() const {
  std::lock_guard lock(mutex_);
  return acquisitions_;
}

void SingletonRunner::lease_loop() {
  const auto ttl = leases_.lease_time();
  const auto renew_every = ttl / 3;
  std::unique_lock lock(mutex_);
  while (!stopping_) {
    bool holding = epoch_.has_value();
    lock.unlock();
    // The database calls run without the lock: held() and fence() stay quick.
    std::optional<std::int64_t> taken;
    bool lost = false;
    if (holding)
      lost = !leases_.renew({name_}).empty();
    else
      taken = leases_.acquire(name_);
    lock.lock();
    if (lost) epoch_.reset();
    if (taken && !stopping_) {
      epoch_ = taken;
      ++generation_;
      ++acquisitions_;
      job_cv_.notify_all();
    }
    lease_cv_.wait_for(lock, epoch_ ? renew_every : ttl, [&] { return stopping_; });
  }
}

void SingletonRunner::job_loop() {
  std::unique_lock lock(mutex_);
  std::uint64_t seen_generation = 0;
  auto next = std::chrono::steady_clock::now();
  while (!stopping_) {
    if (!epoch_) {
      job_cv_.wait(lock, [&] { return stopping_ || epoch_.has_value(); });
      continue;
    }
    bool fresh = generation_ != seen_generation;
    if (!fresh && !woken_ && std::chrono::steady_clock::now() < next) {
      job_cv_.wait_until(lock, next, [&] {
        return stopping_ || woken_ || !epoch_ || generation_ != seen_generation;
      });
      continue;
    }
    seen_generation = generation_;
    woken_ = false;
    LeaseFence fence{name_, *epoch_};
    ++runs_;
    lock.unlock();
    job_(fence);
    lock.lock();
    next = std::chrono::steady_clock::now() + period_;
  }
}

}  // namespace callbridge::rules
