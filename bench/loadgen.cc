// callbridge benchmark driver: starts the bridge binary against an in-process CRM sink, and
// measures (1) durable intake throughput, closed loop, next to a trivial cpp-httplib handler on
// the same machine as the ceiling of the HTTP stack; (2) event-accepted-to-CRM-request latency at
// a fixed rate; (3) the bridge's peak RSS. Everything runs on loopback.
#include <httplib.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "record_sink.h"

using Clock = std::chrono::steady_clock;

namespace {

struct Options {
  std::string binary = "build/bridge/callbridge";
  int connections = 32;
  double seconds = 10;
  int rate = 1000;  // events/s for the latency run
  double latency_seconds = 10;
  bool fsync = true;
  int workers = 64;  // the bridge's default
};

long rss_kb(int pid, const char* field) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind(field, 0) == 0) return std::atol(line.c_str() + std::string(field).size());
  return 0;
}

// wrk drives the closed-loop throughput runs: a C client on epoll leaves the CPU to the server.
struct WrkResult {
  double rate = 0;
  std::string p50, p99, errors;
};

WrkResult run_wrk(int port, const Options& o, const std::string& script) {
  std::string cmd = "wrk -t2 -c" + std::to_string(o.connections) + " -d" +
                    std::to_string(static_cast<int>(o.seconds)) + "s --latency -s " + script +
                    " http://127.0.0.1:" + std::to_string(port) + "/ 2>&1";
  WrkResult r;
  FILE* pipe = popen(cmd.c_str(), "r");
  if (!pipe) return r;
  char line[512];
  while (std::fgets(line, sizeof line, pipe)) {
    std::string l(line);
    auto field = [&](const char* key) {
      auto at = l.find(key);
      if (at == std::string::npos) return std::string();
      std::string v = l.substr(at + std::strlen(key));
      v.erase(0, v.find_first_not_of(" \t"));
      v.erase(v.find_last_not_of(" \t\n") + 1);
      return v;
    };
    if (l.find("Requests/sec:") != std::string::npos)
      r.rate = std::atof(field("Requests/sec:").c_str());
    if (l.find(" 50%") == 0 || l.find("     50%") != std::string::npos) r.p50 = field("50%");
    if (l.find("     99%") != std::string::npos) r.p99 = field("99%");
    if (l.find("Non-2xx") != std::string::npos || l.find("Socket errors") != std::string::npos)
      r.errors += (r.errors.empty() ? "" : "; ") + std::string(l.substr(0, l.find('\n')));
  }
  pclose(pipe);
  return r;
}

void write_script(const std::string& path, const std::string& event, const std::string& token) {
  std::ofstream(path)
      << "counter = 0\n"
      << "request = function()\n"
      << "  counter = counter + 1\n"
      << "  local body = '{\"event\":\"" << event
      << "\",\"call_id\":\"w' .. counter .. '-' .. math.random(1, 1000000000) .. "
         "'\",\"tel\":\"0312345678\"}'\n"
      << "  return wrk.format(\"POST\", \"/v1/events\", {[\"Content-Type\"]=\"application/json\", "
      << "[\"Authorization\"]=\"Bearer " << token << "\"}, body)\n"
      << "end\n";
}

struct BridgeProcess {
  int pid = -1;
  int port = 0;
  BridgeProcess(const std::string& binary, const std::string& config) {
    int fds[2];
    if (pipe(fds) != 0) return;
    pid = fork();
    if (pid == 0) {
      dup2(fds[1], 2);
      close(fds[0]);
      execl(binary.c_str(), binary.c_str(), "serve", "-c", config.c_str(), nullptr);
      _exit(127);
    }
    close(fds[1]);
    std::string log;
    char buf[4096];
    while (port == 0) {
      ssize_t n = read(fds[0], buf, sizeof buf);
      if (n <= 0) break;
      log.append(buf, static_cast<std::size_t>(n));
      auto at = log.find("\"port\":\"");
      if (log.find("\"listening\"") != std::string::npos && at != std::string::npos)
        port = std::atoi(log.c_str() + at + 8);
    }
    // Keep draining stderr so the bridge never blocks on a full pipe.
    std::thread([fd = fds[0]] {
      char b[4096];
      while (read(fd, b, sizeof b) > 0) {
      }
      close(fd);
    }).detach();
  }
  ~BridgeProcess() {
    if (pid > 0) {
      kill(pid, SIGTERM);
      waitpid(pid, nullptr, 0);
    }
  }
};

}  // namespace

int main(int argc, char** argv) {
  Options o;
  CLI::App app{"callbridge-loadgen: durable intake, event-to-CRM latency and RSS of the bridge"};
  app.add_option("--binary", o.binary, "the callbridge executable")->capture_default_str();
  app.add_option("--connections", o.connections, "wrk connections for the throughput runs")
      ->capture_default_str();
  app.add_option("--seconds", o.seconds, "length of each throughput run")->capture_default_str();
  app.add_option("--rate", o.rate, "events/s for the latency run")->capture_default_str();
  app.add_option("--latency-seconds", o.latency_seconds, "length of the latency run")
      ->capture_default_str();
  app.add_option("--fsync", o.fsync, "journal fsync on each commit")->capture_default_str();
  app.add_option("--workers", o.workers, "dispatcher workers")->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  signal(SIGPIPE, SIG_IGN);
  const std::string token = "bench-token-0123456789abcdef";

  char dir_template[] = "/tmp/callbridge-bench-XXXXXX";
  std::string dir = mkdtemp(dir_template);
  std::string script_norule = dir + "/norule.lua", script_rule = dir + "/rule.lua";
  write_script(script_norule, "bench.norule", token);
  write_script(script_rule, "bench", token);

  // 1. The ceiling: a trivial handler on the same HTTP stack and the same client.
  double trivial_rate;
  {
    httplib::Server trivial;
    trivial.new_task_queue = [] { return new httplib::ThreadPool(64); };
    trivial.set_tcp_nodelay(true);
    trivial.set_keep_alive_max_count(1000000);
    trivial.Post("/v1/events", [](const httplib::Request&, httplib::Response& res) {
      res.status = 202;
      res.set_content(R"({"event_id":"ev-1","call_id":"x"})", "application/json");
    });
    int port = trivial.bind_to_any_port("127.0.0.1");
    std::thread t([&] { trivial.listen_after_bind(); });
    while (!trivial.is_running()) std::this_thread::yield();
    auto r = run_wrk(port, o, script_norule);
    trivial_rate = r.rate;
    trivial.stop();
    t.join();
    std::printf("trivial handler:   %9.0f req/s   p50 %s  p99 %s  %s\n", r.rate, r.p50.c_str(),
                r.p99.c_str(), r.errors.c_str());
  }

  bench::RecordSink sink;
  std::string config = dir + "/bench.yaml";
  std::ofstream(config)
      << "server:\n  listen: 127.0.0.1:0\n  tokens: [\"" << token
      << "\"]\n  threads: " << o.connections + 8
      << "\n  keep_alive_max_count: 1000000\n  drain_seconds: 0\nstorage:\n  path: " << dir
      << "/journal.db\n  fsync: " << (o.fsync ? "true" : "false")
      << "\ndispatcher:\n  workers: " << o.workers << "\n  queue_capacity: 1000000\n"
      << "rules:\n  - name: to-crm\n    event: bench\n    request:\n"
      << "      method: POST\n      url: http://127.0.0.1:" << sink.port << "/k/v1/record.json\n"
      << "      body: '{\"app\":1,\"record\":{\"call\":{\"value\":\"{ID}\"}}}'\n";

  // 2. Durable intake, closed loop.
  BridgeProcess bridge(o.binary, config);
  if (bridge.port == 0) {
    std::fprintf(stderr, "the bridge did not start (%s)\n", o.binary.c_str());
    return 1;
  }
  // Events with no rules: the cost of accepting and making durable alone.
  auto durable = run_wrk(bridge.port, o, script_norule);
  std::printf("durable intake:    %9.0f ev/s    p50 %s  p99 %s  %s\n", durable.rate,
              durable.p50.c_str(), durable.p99.c_str(), durable.errors.c_str());
  std::printf("intake / trivial:  %9.1f %%\n", 100.0 * durable.rate / trivial_rate);
  // Events whose rule posts to the CRM: intake while the dispatcher works on the same 2 cores.
  auto intake = run_wrk(bridge.port, o, script_rule);
  std::printf("intake with a CRM rule running: %9.0f ev/s    p50 %s  p99 %s  %s\n", intake.rate,
              intake.p50.c_str(), intake.p99.c_str(), intake.errors.c_str());
  // Let the backlog of both runs drain (the bridge's queue depth reaches 0) before the latency run.
  auto drain_start = Clock::now();
  {
    httplib::Client health("127.0.0.1", bridge.port);
    health.set_tcp_nodelay(true);
    for (int i = 0; i < 30000; ++i) {
      auto r = health.Get("/healthz");
      if (r && r->body.find("\"queue_depth\":0}") != std::string::npos) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  }
  std::printf("backlog drained in %.1f s (%ld CRM requests so far)\n",
              std::chrono::duration<double>(Clock::now() - drain_start).count(), sink.count.load());

  // 3. Latency at a fixed rate: event sent to CRM request received.
  {
    std::vector<std::pair<std::string, Clock::time_point>> sent;
    std::mutex mutex;
    std::atomic<long> failures{0};
    int senders = 8;
    long total = static_cast<long>(o.rate * o.latency_seconds);
    auto start = Clock::now() + std::chrono::milliseconds(100);
    std::vector<std::thread> threads;
    for (int s = 0; s < senders; ++s) {
      threads.emplace_back([&, s] {
        httplib::Client client("127.0.0.1", bridge.port);
        client.set_tcp_nodelay(true);
        client.set_keep_alive(true);
        client.set_bearer_token_auth(token);
        std::vector<std::pair<std::string, Clock::time_point>> mine;
        for (long i = s; i < total; i += senders) {
          auto due = start + std::chrono::microseconds(i * 1000000 / o.rate);
          std::this_thread::sleep_until(due);
          std::string id = "L-" + std::to_string(i);
          auto t0 = Clock::now();
          auto r = client.Post("/v1/events", R"({"event":"bench","call_id":")" + id + R"("})",
                               "application/json");
          if (r && r->status == 202)
            mine.emplace_back(id, t0);
          else if (failures++ == 0)
            std::fprintf(stderr, "latency run: %s\n",
                         r ? (std::to_string(r->status) + " " + r->body).c_str()
                           : httplib::to_string(r.error()).c_str());
        }
        std::lock_guard lock(mutex);
        sent.insert(sent.end(), mine.begin(), mine.end());
      });
    }
    // RSS over the fixed-rate run, sampled every 10 s: it should stay flat.
    std::atomic<bool> sampling{true};
    std::vector<long> rss;
    std::thread sampler([&] {
      while (sampling) {
        rss.push_back(rss_kb(bridge.pid, "VmRSS:"));
        for (int i = 0; i < 100 && sampling; ++i)
          std::this_thread::sleep_for(std::chrono::milliseconds(100));
      }
    });
    for (auto& t : threads) t.join();
    sampling = false;
    sampler.join();
    if (rss.size() >= 2) {
      std::printf("RSS during the %d ev/s run (every 10 s, KiB):", o.rate);
      for (long r : rss) std::printf(" %ld", r);
      std::printf(
          "\nRSS change from 1st to last sample: %+.1f %%\n",
          100.0 * static_cast<double>(rss.back() - rss.front()) / static_cast<double>(rss.front()));
    }
    for (int i = 0; i < 1000; ++i) {
      {
        std::lock_guard lock(sink.mutex);
        std::size_t got = 0;
        for (const auto& [id, t] : sent) got += sink.arrived.count(id);
        if (got == sent.size()) break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    std::vector<double> ms;
    {
      std::lock_guard lock(sink.mutex);
      for (const auto& [id, t0] : sent) {
        auto it = sink.arrived.find(id);
        if (it != sink.arrived.end())
          ms.push_back(std::chrono::duration<double, std::milli>(it->second - t0).count());
      }
    }
    std::printf(
        "event -> CRM request at %d ev/s (%zu events): p50 %.2f ms  p99 %.2f ms  p99.9 %.2f ms  "
        "max %.2f ms\n",
        o.rate, ms.size(), bench::percentile(ms, 50), bench::percentile(ms, 99),
        bench::percentile(ms, 99.9), ms.empty() ? 0.0 : *std::max_element(ms.begin(), ms.end()));
  }
  std::printf("bridge peak RSS:   %9ld KiB (now %ld KiB)\n", rss_kb(bridge.pid, "VmHWM:"),
              rss_kb(bridge.pid, "VmRSS:"));
  std::printf("journal fsync:     %s\n",
              o.fsync ? "on (synchronous=FULL)" : "off (synchronous=NORMAL)");
  return 0;
}
