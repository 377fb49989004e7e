// Runs the real binary from tests: arguments, extra environment, captured output, exit code.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

namespace callbridge::testing {

struct ProcessResult {
  int exit_code = -1;  // -1 when killed by a signal
  std::string out, err;
};

ProcessResult run_process(const std::vector<std::string>& argv,
                          const std::map<std::string, std::string>& extra_env = {});

// A long-running `callbridge serve`: started, its port read from the "listening" log line,
// its stderr collected in the background. Killed with SIGKILL on destruction if still running.
class ServerProcess {
 public:
  ServerProcess(const std::vector<std::string>& argv,
                const std::map<std::string, std::string>& extra_env = {});
  ~ServerProcess();
  ServerProcess(const ServerProcess&) = delete;
  ServerProcess& operator=(const ServerProcess&) = delete;

  bool started() const { return port_ > 0; }
  int port() const { return port_; }
  int pid() const { return pid_; }
  // Sends `signal` and waits for the exit; returns the exit code (-1 when killed by a signal).
  int stop(int signal);
  void signal(int signal) const;
  std::string log() const;
  // Waits until the log contains `text` (up to `seconds`).
  bool wait_for_log(const std::string& text, int seconds = 10) const;

 private:
  int pid_ = -1;
  int port_ = 0;
  int exit_code_ = -1;
  struct Output;
  std::shared_ptr<Output> output_;
};

// A scratch directory removed on destruction.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }
  std::string write(const std::string& name, const std::string& content) const;

 private:
  std::string path_;
};

std::string read_file(const std::string& path);
// Replaces every occurrence of `from` with `to`.
std::string replace_all(std::string text, const std::string& from, const std::string& to);

}  // namespace callbridge::testing
