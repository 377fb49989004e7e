// callbridge next to its peer, Node-RED 4, in one run: the same job on both (one rule: a regex gate
// on the caller number, then a POST of a kintone-style record to the CRM), the same closed-loop
// client and the same in-process CRM, which records when each call's request arrived. Each side
// runs alone, one after the other, and is stopped before the next starts. Everything is loopback.
#include <fcntl.h>
#include <httplib.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <mutex>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <tuple>
#include <unordered_map>
#include <vector>

#include "record_sink.h"

using Clock = std::chrono::steady_clock;

namespace {

struct Options {
  std::string binary = "build/bridge/callbridge";
  std::string nodered_dir = "bench/nodered";
  std::string node = "node";
  int connections = 16;
  double seconds = 10;
  double drain_seconds = 120;
  int workers = 0;  // 0: the bridge's default
  std::string first = "callbridge";
  bool no_rule_run = true;
  bool bridge_only = false;  // A/B runs of two builds of the bridge: no peer
};

const std::string kToken = "bench-token-0123456789abcdef";

long status_kb(int pid, const char* field) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind(field, 0) == 0) return std::atol(line.c_str() + std::string(field).size());
  return 0;
}

// CPU time (user + system, all threads) of a process so far, in seconds.
double cpu_seconds(int pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string stat((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  auto close = stat.rfind(')');
  if (close == std::string::npos) return 0;
  std::istringstream fields(stat.substr(close + 2));
  std::string field;
  double ticks = 0;
  for (int i = 3; fields >> field && i <= 15; ++i)
    if (i == 14 || i == 15) ticks += std::atof(field.c_str());  // utime, stime
  return ticks / static_cast<double>(sysconf(_SC_CLK_TCK));
}

// CPU time of the server and of this process (the client and the CRM stand-in) from when it was
// made; per_event() divides what was used since by `events`, in microseconds.
struct CpuMeter {
  int pid;
  double server = cpu_seconds(pid), bench = cpu_seconds(getpid());
  std::pair<double, double> per_event(std::size_t events) const {
    if (events == 0) return {0, 0};
    double n = static_cast<double>(events);
    return {1e6 * (cpu_seconds(pid) - server) / n, 1e6 * (cpu_seconds(getpid()) - bench) / n};
  }
};

double seconds_between(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

// A server under test as a child process; `ready` reads its log and returns the port it listens
// on once it is ready to serve, 0 before.
struct Child {
  int pid = -1;
  int port = 0;
  std::string log;
  Child(const std::vector<std::string>& argv, const std::function<int(const std::string&)>& ready) {
    int fds[2];
    if (pipe(fds) != 0) return;
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    pid = fork();
    if (pid == 0) {
      dup2(fds[1], 1);
      dup2(fds[1], 2);
      close(fds[0]);
      execvp(args[0], args.data());
      _exit(127);
    }
    close(fds[1]);
    auto deadline = Clock::now() + std::chrono::seconds(60);
    char buf[4096];
    while (port == 0 && Clock::now() < deadline) {
      pollfd p{fds[0], POLLIN, 0};
      if (poll(&p, 1, 200) <= 0) continue;
      ssize_t n = read(fds[0], buf, sizeof buf);
      if (n <= 0) break;
      log.append(buf, static_cast<std::size_t>(n));
      port = ready(log);
    }
    // Keep draining its output so the child never blocks on a full pipe.
    std::thread([fd = fds[0]] {
      char b[4096];
      while (read(fd, b, sizeof b) > 0) {
      }
      close(fd);
    }).detach();
  }
  ~Child() {
    if (pid > 0) {
      kill(pid, SIGTERM);
      waitpid(pid, nullptr, 0);
    }
  }
};

struct Sent {
  std::string id;
  Clock::time_point sent, answered;
};

struct Load {
  std::vector<Sent> acknowledged;
  long rejected = 0;  // answered, but not 202
  long failed = 0;    // no answer (connection error, timeout)
  std::string first_rejection;
  Clock::time_point start, stop;
};

// Closed loop: each connection sends its next event as soon as the previous one is answered.
Load closed_loop(int port, const std::string& prefix, const std::string& event, const Options& o) {
  Load load;
  std::mutex mutex;
  load.start = Clock::now();
  auto until = load.start + std::chrono::microseconds(static_cast<long>(o.seconds * 1e6));
  std::vector<std::thread> threads;
  for (int c = 0; c < o.connections; ++c) {
    threads.emplace_back([&, c] {
      httplib::Client client("127.0.0.1", port);
      client.set_tcp_nodelay(true);
      client.set_keep_alive(true);
      client.set_bearer_token_auth(kToken);
      client.set_read_timeout(30, 0);
      std::vector<Sent> mine;
      long rejected = 0, failed = 0;
      std::string first;
      for (long n = 0; Clock::now() < until; ++n) {
        std::string id = prefix + std::to_string(c) + "-" + std::to_string(n);
        auto t0 = Clock::now();
        auto r = client.Post(
            "/v1/events",
            R"({"event":")" + event + R"(","call_id":")" + id + R"(","tel":"0312345678"})",
            "application/json");
        auto t1 = Clock::now();
        if (r && r->status == 202) {
          mine.push_back({std::move(id), t0, t1});
        } else if (r) {
          ++rejected;
          if (first.empty()) first = std::to_string(r->status) + " " + r->body.substr(0, 120);
        } else {
          ++failed;
          if (first.empty()) first = httplib::to_string(r.error());
        }
      }
      std::lock_guard lock(mutex);
      load.acknowledged.insert(load.acknowledged.end(), std::make_move_iterator(mine.begin()),
                               std::make_move_iterator(mine.end()));
      load.rejected += rejected;
      load.failed += failed;
      if (load.first_rejection.empty()) load.first_rejection = first;
    });
  }
  for (auto& t : threads) t.join();
  load.stop = Clock::now();
  return load;
}

struct Figures {
  std::string name;
  bool ran = false;
  double acknowledged_rate = 0;
  long acknowledged = 0, rejected = 0, failed = 0;
  std::string first_rejection;
  long at_crm_when_load_stopped = 0, at_crm = 0;
  double until_all_at_crm = 0;  // seconds from the start of the load
  bool all_at_crm = false;
  double sustained = 0;
  double ack_p50 = 0, ack_p99 = 0, crm_p50 = 0, crm_p99 = 0;
  long peak_rss_kb = 0;
  double cpu_us = 0;        // the server's CPU time (user + system) per acknowledged event
  double no_rule_rate = 0;  // the bridge's durable intake of events no rule listens to
  double no_rule_cpu_us = 0;
  // The same for this process (the client and the CRM stand-in), which shares the machine.
  double bench_cpu_us = 0, no_rule_bench_cpu_us = 0;
  std::string phases;  // the bridge's callbridge_action_phase_seconds after the drain
};

// The bridge's callbridge_action_phase_seconds histograms (docs/server.md, "Metrics") as one
// line per phase: count, mean, and the bucket bounds holding the median and the 99th
// percentile. Empty when the bridge has none (an older build).
std::string action_phases(int port) {
  httplib::Client client("127.0.0.1", port);
  client.set_bearer_token_auth(kToken);
  auto r = client.Get("/metrics");
  if (!r || r->status != 200) return "";
  struct Phase {
    std::vector<std::pair<double, double>> buckets;  // (le, cumulative count)
    double sum = 0, count = 0;
  };
  std::vector<std::pair<std::string, Phase>> phases;
  auto phase_of = [&](const std::string& name) -> Phase& {
    for (auto& [n, p] : phases)
      if (n == name) return p;
    return phases.emplace_back(name, Phase{}).second;
  };
  const std::string metric = "callbridge_action_phase_seconds_";
  std::istringstream lines(r->body);
  for (std::string line; std::getline(lines, line);) {
    if (line.compare(0, metric.size(), metric) != 0) continue;
    auto q1 = line.find("phase=\"");
    if (q1 == std::string::npos) continue;
    auto q2 = line.find('"', q1 + 7);
    Phase& p = phase_of(line.substr(q1 + 7, q2 - q1 - 7));
    double value = std::strtod(line.c_str() + line.rfind(' ') + 1, nullptr);
    std::string kind = line.substr(metric.size(), line.find('{') - metric.size());
    if (kind == "sum") {
      p.sum = value;
    } else if (kind == "count") {
      p.count = value;
    } else if (kind == "bucket") {
      auto le = line.find("le=\"");
      std::string bound = line.substr(le + 4, line.find('"', le + 4) - le - 4);
      p.buckets.emplace_back(bound == "+Inf" ? 1e9 : std::strtod(bound.c_str(), nullptr), value);
    }
  }
  auto bound_of = [](const Phase& p, double share) {
    for (const auto& [le, cumulative] : p.buckets) {
      if (cumulative < share * p.count) continue;
      if (le >= 1e9) return std::string("> 10 s");
      char b[32];
      std::snprintf(b, sizeof b, "<= %g ms", le * 1000);
      return std::string(b);
    }
    return std::string("?");
  };
  std::string out;
  for (const auto& [name, p] : phases) {
    if (p.count == 0) continue;
    char line[256];
    std::snprintf(line, sizeof line, "  %-15s %9.0f  mean %8.3f ms  p50 %-12s p99 %s\n",
                  name.c_str(), p.count, 1000 * p.sum / p.count, bound_of(p, 0.5).c_str(),
                  bound_of(p, 0.99).c_str());
    out += line;
  }
  return out;
}

std::size_t count_arrived(bench::RecordSink& crm, const std::vector<Sent>& sent) {
  std::lock_guard lock(crm.mutex);
  std::size_t n = 0;
  for (const auto& s : sent) n += crm.arrived.count(s.id);
  return n;
}

// Runs the job against a started server and waits until the CRM has every acknowledged action.
void measure(Figures& f, bench::RecordSink& crm, int port, int pid, const std::string& prefix,
             const Options& o) {
  crm.reset();
  CpuMeter cpu{pid};
  auto load = closed_loop(port, prefix, "bench", o);
  f.at_crm_when_load_stopped = static_cast<long>(count_arrived(crm, load.acknowledged));
  auto deadline = load.stop + std::chrono::microseconds(static_cast<long>(o.drain_seconds * 1e6));
  while (Clock::now() < deadline) {
    if (crm.count.load() >= static_cast<long>(load.acknowledged.size()) &&
        count_arrived(crm, load.acknowledged) == load.acknowledged.size())
      break;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  f.ran = true;
  f.acknowledged = static_cast<long>(load.acknowledged.size());
  std::tie(f.cpu_us, f.bench_cpu_us) = cpu.per_event(load.acknowledged.size());
  f.rejected = load.rejected;
  f.failed = load.failed;
  f.first_rejection = load.first_rejection;
  f.acknowledged_rate =
      static_cast<double>(f.acknowledged) / seconds_between(load.start, load.stop);
  std::vector<double> ack, to_crm;
  Clock::time_point last = load.start;
  {
    std::lock_guard lock(crm.mutex);
    for (const auto& s : load.acknowledged) {
      ack.push_back(std::chrono::duration<double, std::milli>(s.answered - s.sent).count());
      auto it = crm.arrived.find(s.id);
      if (it == crm.arrived.end()) continue;
      ++f.at_crm;
      last = std::max(last, it->second);
      to_crm.push_back(std::chrono::duration<double, std::milli>(it->second - s.sent).count());
    }
  }
  f.all_at_crm = f.at_crm == f.acknowledged;
  f.until_all_at_crm = seconds_between(load.start, last);
  f.sustained = f.until_all_at_crm > 0 ? static_cast<double>(f.at_crm) / f.until_all_at_crm : 0;
  f.ack_p50 = bench::percentile(ack, 50);
  f.ack_p99 = bench::percentile(ack, 99);
  f.crm_p50 = bench::percentile(to_crm, 50);
  f.crm_p99 = bench::percentile(to_crm, 99);
  f.peak_rss_kb = status_kb(pid, "VmHWM:");
}

Figures run_bridge(bench::RecordSink& crm, const std::string& dir, const Options& o) {
  Figures f;
  f.name = "callbridge";
  std::string config = dir + "/bridge.yaml";
  {
    std::ofstream out(config);
    out << "server:\n  listen: 127.0.0.1:0\n  tokens: [\"" << kToken
        << "\"]\n  threads: " << o.connections + 8
        << "\n  keep_alive_max_count: 1000000\n  drain_seconds: 0\n"
        << "storage:\n  path: " << dir << "/journal.db\n";
    if (o.workers > 0) out << "dispatcher:\n  workers: " << o.workers << "\n";
    out << "rules:\n  - name: to-crm\n    event: bench\n"
        << "    when: { code: \"{TEL}\", pattern: '/^0\\d{9,10}$/' }\n"
        << "    request:\n      method: POST\n      url: http://127.0.0.1:" << crm.port
        << "/k/v1/record.json\n      headers: { Content-Type: application/json }\n"
        << "      body: '{\"app\":1,\"record\":{\"call\":{\"value\":\"{ID}\"},"
        << "\"tel\":{\"value\":\"{TEL}\"}}}'\n";
  }
  Child bridge({o.binary, "serve", "-c", config}, [](const std::string& log) {
    auto at = log.find("\"port\":\"");
    if (log.find("\"listening\"") == std::string::npos || at == std::string::npos) return 0;
    return std::atoi(log.c_str() + at + 8);
  });
  if (bridge.port == 0) {
    std::fprintf(stderr, "the bridge did not start (%s):\n%s\n", o.binary.c_str(),
                 bridge.log.c_str());
    return f;
  }
  measure(f, crm, bridge.port, bridge.pid, "B-", o);
  f.phases = action_phases(bridge.port);
  if (o.no_rule_run) {
    // The same client against events no rule listens to: durable intake alone, the yardstick of
    // the issue's target for sustained actions.
    CpuMeter cpu{bridge.pid};
    auto load = closed_loop(bridge.port, "R-", "bench.norule", o);
    std::tie(f.no_rule_cpu_us, f.no_rule_bench_cpu_us) = cpu.per_event(load.acknowledged.size());
    f.no_rule_rate =
        static_cast<double>(load.acknowledged.size()) / seconds_between(load.start, load.stop);
    f.peak_rss_kb = status_kb(bridge.pid, "VmHWM:");
  }
  return f;
}

std::string read_all(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

std::string nodered_version(const std::string& nodered_dir) {
  std::string pkg = read_all(nodered_dir + "/node_modules/node-red/package.json");
  auto at = pkg.find("\"version\"");
  if (at == std::string::npos) return "?";
  auto q1 = pkg.find('"', pkg.find(':', at));
  return pkg.substr(q1 + 1, pkg.find('"', q1 + 1) - q1 - 1);
}

Figures run_nodered(bench::RecordSink& crm, const std::string& dir, const Options& o) {
  Figures f;
  f.name = "Node-RED " + nodered_version(o.nodered_dir);
  namespace fs = std::filesystem;
  std::string user_dir = dir + "/nodered";
  fs::create_directories(user_dir);
  fs::copy_file(o.nodered_dir + "/flow.json", user_dir + "/flows.json");
  std::string crm_url = "http://127.0.0.1:" + std::to_string(crm.port) + "/k/v1/record.json";
  // env(1) sets the variables and execs node in the same process, so the pid is Node-RED's.
  Child nodered(
      {"env", "CALLBRIDGE_BENCH_CRM_URL=" + crm_url, "CALLBRIDGE_BENCH_TOKEN=" + kToken, o.node,
       fs::absolute(o.nodered_dir + "/node_modules/node-red/red.js").string(), "-u", user_dir, "-s",
       fs::absolute(o.nodered_dir + "/settings.js").string(), "-p", "0"},
      [](const std::string& log) {
        const std::string running = "Server now running at http://127.0.0.1:";
        auto at = log.find(running);
        if (at == std::string::npos || log.find("Started flows") == std::string::npos) return 0;
        return std::atoi(log.c_str() + at + running.size());
      });
  if (nodered.port == 0) {
    std::fprintf(stderr, "Node-RED did not start (run scripts/setup --bench):\n%s\n",
                 nodered.log.c_str());
    return f;
  }
  measure(f, crm, nodered.port, nodered.pid, "N-", o);
  return f;
}

std::string thousands(double v) {
  std::string digits = std::to_string(static_cast<long>(v + 0.5));
  for (int i = static_cast<int>(digits.size()) - 3; i > 0; i -= 3)
    digits.insert(static_cast<std::size_t>(i), ",");
  return digits;
}

void row(const char* measure, const std::string& bridge, const std::string& peer,
         const std::string& ratio) {
  std::printf("| %s | %s | %s | %s |\n", measure, bridge.c_str(), peer.c_str(), ratio.c_str());
}

std::string ratio(double a, double b) {
  if (b <= 0) return "";
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2fx", a / b);
  return buf;
}

std::string us(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.0f us", v);
  return buf;
}

std::string ms(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, v < 10 ? "%.2f ms" : v < 100 ? "%.1f ms" : "%.0f ms", v);
  return buf;
}

void print(const Figures& b, const Figures& n, const Options& o) {
  std::printf(
      "\njob: one rule (regex gate on the caller number, POST of a kintone-style record to the "
      "CRM on loopback), %d connections, closed loop, %.0f s each, one after the other\n\n",
      o.connections, o.seconds);
  std::printf("| measure | %s | %s | callbridge / Node-RED |\n|---|---|---|---|\n", b.name.c_str(),
              n.name.c_str());
  row("acknowledged events/s", thousands(b.acknowledged_rate), thousands(n.acknowledged_rate),
      ratio(b.acknowledged_rate, n.acknowledged_rate));
  auto rejected = [](const Figures& f) {
    std::string s = thousands(static_cast<double>(f.rejected));
    if (f.failed > 0) s += " (+" + thousands(static_cast<double>(f.failed)) + " unanswered)";
    return s;
  };
  row("rejected", rejected(b), rejected(n), "");
  auto at_stop = [](const Figures& f) {
    return thousands(static_cast<double>(f.at_crm_when_load_stopped)) + " of " +
           thousands(static_cast<double>(f.acknowledged));
  };
  row("actions at the CRM when the load stopped", at_stop(b), at_stop(n), "");
  auto sustained = [](const Figures& f) {
    char buf[160];
    std::snprintf(buf, sizeof buf, "%s (%s%s in %.1f s)", thousands(f.sustained).c_str(),
                  f.all_at_crm ? "" : "only ", thousands(static_cast<double>(f.at_crm)).c_str(),
                  f.until_all_at_crm);
    return std::string(buf);
  };
  row("sustained actions/s", sustained(b), sustained(n), ratio(b.sustained, n.sustained));
  row("acknowledgement p50 / p99", ms(b.ack_p50) + " / " + ms(b.ack_p99),
      ms(n.ack_p50) + " / " + ms(n.ack_p99), "");
  row("event to CRM p50 / p99", ms(b.crm_p50) + " / " + ms(b.crm_p99),
      ms(n.crm_p50) + " / " + ms(n.crm_p99), "");
  row("server CPU per event", us(b.cpu_us), us(n.cpu_us), ratio(b.cpu_us, n.cpu_us));
  row("client and CRM CPU per event", us(b.bench_cpu_us), us(n.bench_cpu_us), "");
  row("peak RSS", thousands(static_cast<double>(b.peak_rss_kb) / 1024.0) + " MB",
      thousands(static_cast<double>(n.peak_rss_kb) / 1024.0) + " MB",
      ratio(static_cast<double>(b.peak_rss_kb), static_cast<double>(n.peak_rss_kb)));
  if (b.no_rule_rate > 0)
    std::printf(
        "\ncallbridge durable intake of events no rule listens to, same client: %s ev/s; "
        "sustained actions / that: %.1f %%; CPU per event with no rule: %.0f us (client: %.0f "
        "us)\n",
        thousands(b.no_rule_rate).c_str(), 100.0 * b.sustained / b.no_rule_rate, b.no_rule_cpu_us,
        b.no_rule_bench_cpu_us);
  if (!b.phases.empty())
    std::printf(
        "\ncallbridge action phases over the one-rule load (count, mean, bucket bounds):\n%s",
        b.phases.c_str());
  for (const auto* f : {&b, &n})
    if (!f->first_rejection.empty())
      std::printf("%s, first rejection: %s\n", f->name.c_str(), f->first_rejection.c_str());
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  CLI::App app{"callbridge-bench-peer: callbridge and Node-RED 4 doing the same job in one run"};
  app.add_option("--binary", o.binary, "the callbridge executable")->capture_default_str();
  app.add_option("--nodered-dir", o.nodered_dir,
                 "the folder with flow.json, settings.js and node_modules/node-red")
      ->capture_default_str();
  app.add_option("--node", o.node, "the Node.js executable")->capture_default_str();
  app.add_option("--connections", o.connections, "client connections")->capture_default_str();
  app.add_option("--seconds", o.seconds, "length of each load")->capture_default_str();
  app.add_option("--drain-seconds", o.drain_seconds,
                 "how long to wait after the load for the CRM to have every action")
      ->capture_default_str();
  app.add_option("--workers", o.workers, "dispatcher.workers of the bridge (0: its default)")
      ->capture_default_str();
  app.add_option("--first", o.first, "which side runs first")
      ->check(CLI::IsMember({"callbridge", "nodered"}))
      ->capture_default_str();
  app.add_option("--no-rule-run", o.no_rule_run,
                 "also measure the bridge's intake of events no rule listens to")
      ->capture_default_str();
  app.add_flag("--callbridge-only", o.bridge_only,
               "run the bridge's side alone (comparing two builds of the bridge)");
  CLI11_PARSE(app, argc, argv);
  signal(SIGPIPE, SIG_IGN);

  char dir_template[] = "/tmp/callbridge-peer-XXXXXX";
  std::string dir = mkdtemp(dir_template);
  bench::RecordSink crm;
  Figures bridge, nodered;
  if (o.bridge_only) {
    bridge = run_bridge(crm, dir, o);
    nodered.name = "(not run)";
    nodered.ran = true;
  } else if (o.first == "callbridge") {
    bridge = run_bridge(crm, dir, o);
    nodered = run_nodered(crm, dir, o);
  } else {
    nodered = run_nodered(crm, dir, o);
    bridge = run_bridge(crm, dir, o);
  }
  std::filesystem::remove_all(dir);
  if (!bridge.ran || !nodered.ran) return 1;
  print(bridge, nodered, o);
  return 0;
}
