#include "tests/fakes/subprocess.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <condition_variable>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <sstream>
#include <stdexcept>
#include <thread>

extern char** environ;

namespace callbridge::testing {

namespace {

std::vector<char*> c_strings(std::vector<std::string>& strings) {
  std::vector<char*> out;
  for (auto& s : strings) out.push_back(s.data());
  out.push_back(nullptr);
  return out;
}

std::vector<std::string> merged_env(const std::map<std::string, std::string>& extra_env) {
  std::vector<std::string> env;
  for (char** e = environ; *e != nullptr; ++e) {
    std::string entry(*e);
    if (!extra_env.count(entry.substr(0, entry.find('=')))) env.push_back(entry);
  }
  for (const auto& [k, v] : extra_env) env.push_back(k + "=" + v);
  return env;
}

}  // namespace

ProcessResult run_process(const std::vector<std::string>& argv,
                          const std::map<std::string, std::string>& extra_env) {
  int out_pipe[2], err_pipe[2];
  if (pipe(out_pipe) != 0 || pipe(err_pipe) != 0) throw std::runtime_error("pipe failed");
  std::vector<std::string> env = merged_env(extra_env), argv_copy = argv;
  auto envp = c_strings(env), args = c_strings(argv_copy);

  pid_t pid = fork();
  if (pid < 0) throw std::runtime_error("fork failed");
  if (pid == 0) {
    dup2(out_pipe[1], 1);
    dup2(err_pipe[1], 2);
    close(out_pipe[0]);
    close(err_pipe[0]);
    close(out_pipe[1]);
    close(err_pipe[1]);
    execve(args[0], args.data(), envp.data());
    _exit(127);
  }
  close(out_pipe[1]);
  close(err_pipe[1]);
  ProcessResult result;
  pollfd fds[2] = {{out_pipe[0], POLLIN, 0}, {err_pipe[0], POLLIN, 0}};
  int open_count = 2;
  char buffer[4096];
  while (open_count > 0) {
    if (poll(fds, 2, -1) < 0) break;
    for (int i = 0; i < 2; ++i) {
      if (fds[i].fd < 0 || !(fds[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
      ssize_t n = read(fds[i].fd, buffer, sizeof buffer);
      if (n <= 0) {
        close(fds[i].fd);
        fds[i].fd = -1;
        --open_count;
      } else {
        (i == 0 ? result.out : result.err).append(buffer, static_cast<std::size_t>(n));
      }
    }
  }
  int status = 0;
  waitpid(pid, &status, 0);
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return result;
}

struct ServerProcess::Output {
  std::mutex mutex;
  std::condition_variable changed;
  std::string text;
  bool closed = false;
  std::thread reader;
};

ServerProcess::ServerProcess(const std::vector<std::string>& argv,
                             const std::map<std::string, std::string>& extra_env)
    : output_(std::make_shared<Output>()) {
  int err_pipe[2];
  if (pipe(err_pipe) != 0) throw std::runtime_error("pipe failed");
  std::vector<std::string> env = merged_env(extra_env), args = argv;
  auto envp = c_strings(env), argp = c_strings(args);
  pid_ = fork();
  if (pid_ < 0) throw std::runtime_error("fork failed");
  if (pid_ == 0) {
    int devnull = open("/dev/null", O_WRONLY);
    dup2(devnull, 1);
    dup2(err_pipe[1], 2);
    close(err_pipe[0]);
    close(err_pipe[1]);
    execve(argp[0], argp.data(), envp.data());
    _exit(127);
  }
  close(err_pipe[1]);
  auto output = output_;
  int fd = err_pipe[0];
  output_->reader = std::thread([output, fd] {
    char buffer[4096];
    while (true) {
      ssize_t n = read(fd, buffer, sizeof buffer);
      std::lock_guard lock(output->mutex);
      if (n <= 0) {
        output->closed = true;
        output->changed.notify_all();
        break;
      }
      output->text.append(buffer, static_cast<std::size_t>(n));
      output->changed.notify_all();
    }
    close(fd);
  });
  if (wait_for_log("\"msg\":\"listening\"")) {
    std::string text = log();
    auto at = text.find("\"port\":\"");
    if (at != std::string::npos) port_ = std::atoi(text.c_str() + at + 8);
  }
}

ServerProcess::~ServerProcess() {
  if (pid_ > 0) stop(SIGKILL);
  if (output_->reader.joinable()) output_->reader.join();
}

void ServerProcess::signal(int signal) const {
  if (pid_ > 0) kill(pid_, signal);
}

int ServerProcess::stop(int signal) {
  if (pid_ <= 0) return exit_code_;
  kill(pid_, signal);
  int status = 0;
  waitpid(pid_, &status, 0);
  pid_ = -1;
  exit_code_ = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  if (output_->reader.joinable()) output_->reader.join();
  return exit_code_;
}

std::string ServerProcess::log() const {
  std::lock_guard lock(output_->mutex);
  return output_->text;
}

bool ServerProcess::wait_for_log(const std::string& text, int seconds) const {
  std::unique_lock lock(output_->mutex);
  return output_->changed.wait_for(lock, std::chrono::seconds(seconds), [&] {
    return output_->text.find(text) != std::string::npos || output_->closed;
  }) && output_->text.find(text) != std::string::npos;
}

TempDir::TempDir() {
  std::string pattern =
      (std::filesystem::temp_directory_path() / "callbridge-test-XXXXXX").string();
  if (mkdtemp(pattern.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
  path_ = pattern;
}

TempDir::~TempDir() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

std::string TempDir::write(const std::string& name, const std::string& content) const {
  std::string file = path_ + "/" + name;
  std::ofstream(file, std::ios::binary) << content;
  return file;
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

std::string replace_all(std::string text, const std::string& from, const std::string& to) {
  for (std::size_t at = text.find(from); at != std::string::npos;
       at = text.find(from, at + to.size()))
    text.replace(at, from.size(), to);
  return text;
}

}  // namespace callbridge::testing
