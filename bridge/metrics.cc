#include "bridge/metrics.h"

#include <cstdio>

#include "bridge/version.h"

namespace callbridge::bridge {

void Histogram::observe(std::chrono::microseconds value) {
  double seconds = static_cast<double>(value.count()) / 1e6;
  std::size_t i = 0;
  while (i < kBounds.size() && seconds > kBounds[i]) ++i;
  buckets_[i].fetch_add(1, std::memory_order_relaxed);
  count_.fetch_add(1, std::memory_order_relaxed);
  sum_us_.fetch_add(static_cast<std::uint64_t>(value.count()), std::memory_order_relaxed);
}

void Histogram::render(std::string& out, const std::string& name, const std::string& labels) const {
  std::uint64_t cumulative = 0;
  char line[256];
  std::string sep = labels.empty() ? "" : labels + ",";
  for (std::size_t i = 0; i <= kBounds.size(); ++i) {
    cumulative += buckets_[i].load(std::memory_order_relaxed);
    if (i < kBounds.size()) {
      std::snprintf(line, sizeof line, "%s_bucket{%sle=\"%g\"} %llu\n", name.c_str(), sep.c_str(),
                    kBounds[i], static_cast<unsigned long long>(cumulative));
    } else {
      std::snprintf(line, sizeof line, "%s_bucket{%sle=\"+Inf\"} %llu\n", name.c_str(), sep.c_str(),
                    static_cast<unsigned long long>(cumulative));
    }
    out += line;
  }
  std::string braces = labels.empty() ? "" : "{" + labels + "}";
  std::snprintf(line, sizeof line, "%s_sum%s %.6f\n%s_count%s %llu\n", name.c_str(), braces.c_str(),
                static_cast<double>(sum_us_.load()) / 1e6, name.c_str(), braces.c_str(),
                static_cast<unsigned long long>(count_.load()));
  out += line;
}

void Metrics::render_backlog(std::string& out) const {
  out +=
      "# HELP callbridge_actions_completed_total Actions that reached a final outcome: "
      "succeeded, http_error, failed, unknown or dead (not skipped, not retried). Its rate is the "
      "drain rate.\n"
      "# TYPE callbridge_actions_completed_total counter\n"
      "callbridge_actions_completed_total " +
      std::to_string(actions_completed.load()) + "\n";
  char line[128];
  std::snprintf(line, sizeof line, "callbridge_backlog_oldest_seconds %.3f\n",
                backlog.oldest_seconds());
  out +=
      "# HELP callbridge_backlog_oldest_seconds Age of the oldest accepted event not yet "
      "finished; 0 when none.\n"
      "# TYPE callbridge_backlog_oldest_seconds gauge\n" +
      std::string(line);
}

std::string Metrics::render() const {
  std::string out =
      "# HELP callbridge_build_info The running build: version and commit.\n"
      "# TYPE callbridge_build_info gauge\n"
      "callbridge_build_info{version=\"" +
      std::string(build::kVersion) + "\",commit=\"" + build::kCommit + "\"} 1\n";
  auto counter = [&](const char* name, const char* help, const char* labels, std::uint64_t value,
                     bool header = true) {
    if (header)
      out += std::string("# HELP ") + name + " " + help + "\n# TYPE " + name + " counter\n";
    out += std::string(name) + labels + " " + std::to_string(value) + "\n";
  };
  counter("callbridge_events_accepted_total", "Events made durable and acknowledged.", "",
          events_accepted.load());
  counter("callbridge_events_rejected_total", "Events refused, by reason.",
          "{reason=\"unauthorized\"}", rejected_unauthorized.load());
  counter("callbridge_events_rejected_total", "", "{reason=\"invalid\"}", rejected_invalid.load(),
          false);
  counter("callbridge_events_rejected_total", "", "{reason=\"too_large\"}",
          rejected_too_large.load(), false);
  counter("callbridge_events_rejected_total", "", "{reason=\"busy\"}", rejected_busy.load(), false);
  counter("callbridge_events_rejected_total", "", "{reason=\"journal\"}", rejected_journal.load(),
          false);
  counter("callbridge_events_processed_total", "Events whose rules all finished.", "",
          events_processed.load());
  counter("callbridge_actions_total", "Rule attempts, by outcome.", "{outcome=\"succeeded\"}",
          actions_succeeded.load());
  counter("callbridge_actions_total", "", "{outcome=\"http_error\"}", actions_http_error.load(),
          false);
  counter("callbridge_actions_total", "", "{outcome=\"failed\"}", actions_failed.load(), false);
  counter("callbridge_actions_total", "", "{outcome=\"skipped\"}", actions_skipped.load(), false);
  counter("callbridge_actions_total", "", "{outcome=\"retried\"}", actions_retried.load(), false);
  counter("callbridge_actions_total", "", "{outcome=\"unknown\"}", actions_unknown.load(), false);
  counter("callbridge_actions_total", "", "{outcome=\"dead\"}", actions_dead.load(), false);
  render_backlog(out);
  out +=
      "# HELP callbridge_action_latency_seconds Request sent to response received.\n"
      "# TYPE callbridge_action_latency_seconds histogram\n";
  action_latency.render(out, "callbridge_action_latency_seconds");
  out +=
      "# HELP callbridge_event_to_request_seconds Event accepted to its first request sent.\n"
      "# TYPE callbridge_event_to_request_seconds histogram\n";
  event_to_request.render(out, "callbridge_event_to_request_seconds");
  out +=
      "# HELP callbridge_action_phase_seconds Where an event's actions spend their time, by "
      "phase: queue, prepare, started_commit, request, finish_commit.\n"
      "# TYPE callbridge_action_phase_seconds histogram\n";
  action_phases.queue.render(out, "callbridge_action_phase_seconds", "phase=\"queue\"");
  action_phases.prepare.render(out, "callbridge_action_phase_seconds", "phase=\"prepare\"");
  action_phases.started_commit.render(out, "callbridge_action_phase_seconds",
                                      "phase=\"started_commit\"");
  action_phases.request.render(out, "callbridge_action_phase_seconds", "phase=\"request\"");
  action_phases.finish_commit.render(out, "callbridge_action_phase_seconds",
                                     "phase=\"finish_commit\"");
  out +=
      "# HELP callbridge_intake_latency_seconds Event received to acknowledged (durable).\n"
      "# TYPE callbridge_intake_latency_seconds histogram\n";
  intake_latency.render(out, "callbridge_intake_latency_seconds");
  if (queue_depth)
    out +=
        "# HELP callbridge_queue_depth Accepted events not yet finished.\n"
        "# TYPE callbridge_queue_depth gauge\ncallbridge_queue_depth " +
        std::to_string(queue_depth()) + "\n";
  if (journal_commits)
    counter("callbridge_journal_commits_total", "Journal transactions committed.", "",
            journal_commits());
  if (journal_failed_queued_writes)
    counter("callbridge_journal_failed_queued_writes_total",
            "Queued journal writes (skipped gates, notes) that did not commit.", "",
            journal_failed_queued_writes());
  if (journal_last_commit_seconds) {
    char line[128];
    std::snprintf(line, sizeof line, "callbridge_journal_last_commit_seconds %.6f\n",
                  journal_last_commit_seconds());
    out +=
        "# HELP callbridge_journal_last_commit_seconds Duration of the last commit, fsync "
        "included.\n"
        "# TYPE callbridge_journal_last_commit_seconds gauge\n" +
        std::string(line);
  }
  return out;
}

}  // namespace callbridge::bridge
