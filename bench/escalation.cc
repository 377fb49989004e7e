// Escalation chains at scale: N chains started at once on the simulated dialer, every state
// change saved durably in a real journal (SQLite, group commit, fsync), real timers and threads.
// Prints steps (call attempts) per second, journal writes, and the process RSS.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>

#include "bridge/intake.h"
#include "bridge/journal/journal.h"
#include "connectors/escalation/dialer.h"
#include "connectors/escalation/engine.h"
#include "connectors/escalation/store.h"
#include "connectors/escalation/timer_queue.h"

using namespace callbridge;
using namespace callbridge::escalation;
using Clock = std::chrono::steady_clock;

namespace {

long rss_kb(const char* field) {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind(field, 0) == 0) return std::atol(line.c_str() + std::string(field).size());
  return 0;
}

ScriptedAnswer answer(const std::string& text) {
  std::string error;
  return *ScriptedAnswer::parse(text, error);
}

}  // namespace

int main(int argc, char** argv) {
  int chains = argc > 1 ? std::atoi(argv[1]) : 10000;
  auto dir =
      std::filesystem::temp_directory_path() / ("callbridge-bench-esc-" + std::to_string(getpid()));
  std::filesystem::create_directories(dir);
  std::string error;
  auto journal = bridge::Journal::open({(dir / "journal.db").string(), true, 512}, error);
  if (!journal) {
    std::fprintf(stderr, "journal: %s\n", error.c_str());
    return 1;
  }
  bridge::JournalStore kv(*journal);
  KeyValueChainStore store(kv);
  ThreadTimerQueue timers(4);
  // Each chain: A rings 1 s and presses 2 (continue), B leaves (3), C answers without a key;
  // loop 2: A presses 1 (terminate). Four attempts per chain, each ringing 1 s in real time.
  SimulatedDialer dialer(timers, {{"A", {answer("key 2 after 1"), answer("key 1 after 1")}},
                                  {"B", {answer("key 3 after 1")}},
                                  {"C", {answer("no-key after 1")}}});
  EngineSettings settings;
  settings.ring_timeout = std::chrono::seconds(30);
  settings.history_limit = 100;
  Engine engine(settings, timers, store, &dialer);
  std::atomic<int> finished{0};
  engine.set_finished_handler([&](const ChainState&) {
    ++finished;
    return true;
  });
  CallFlow flow;
  flow.id = "oncall";
  flow.name = "障害連絡";
  flow.loop_limit = 2;
  for (std::string id : {"A", "B", "C"})
    flow.contacts.push_back({id, "担当" + id, "090-0000-000" + id});
  Guidance guidance;
  guidance.id = "alert";
  guidance.message = "{{node}} で障害が発生しました。";
  guidance.responses[1] = KeyResponse{Reaction::terminate, "対応をお願いします。"};
  guidance.responses[2] = KeyResponse{Reaction::continue_on, "次の担当者に連絡します。"};
  guidance.responses[3] = KeyResponse{Reaction::leave, "今回の連絡から外します。"};

  long rss_before = rss_kb("VmRSS:");
  auto start = Clock::now();
  for (int i = 0; i < chains; ++i) {
    ChainRequest request{
        flow, guidance, {{"node", "web" + std::to_string(i)}}, "C" + std::to_string(i), "bench"};
    if (!engine.start(std::move(request), error)) {
      std::fprintf(stderr, "start: %s\n", error.c_str());
      return 1;
    }
  }
  double start_s = std::chrono::duration<double>(Clock::now() - start).count();
  std::size_t peak_running = engine.counts().running;
  long peak_rss = rss_kb("VmRSS:");
  while (finished < chains) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    peak_running = std::max(peak_running, engine.counts().running);
    peak_rss = std::max(peak_rss, rss_kb("VmRSS:"));
  }
  double total_s = std::chrono::duration<double>(Clock::now() - start).count();
  auto counts = engine.counts();
  std::uint64_t steps = 0;
  for (auto n : counts.attempts) steps += n;
  engine.stop();
  timers.stop();
  std::printf(
      "escalation: %d chains started in %.2f s (%zu running at once at the peak), all finished in "
      "%.1f s\n",
      chains, start_s, peak_running, total_s);
  std::printf(
      "  %llu call attempts (steps): %.0f steps/s; %llu journal commits; RSS %ld KiB before, "
      "%ld KiB peak\n",
      static_cast<unsigned long long>(steps), static_cast<double>(steps) / total_s,
      static_cast<unsigned long long>(journal->commits()), rss_before, peak_rss);
  journal.reset();
  std::filesystem::remove_all(dir);
  return 0;
}
