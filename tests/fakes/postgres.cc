#include "tests/fakes/postgres.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pwd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <vector>

#include "bridge/journal/postgres/connection.h"
#include "tests/fakes/subprocess.h"

namespace callbridge::testing {

namespace {

const std::string kBin = "/usr/lib/postgresql/15/bin/";
constexpr const char* kServerUser = "postgres";

// A port nobody listens on now (the kernel's choice for port 0).
int free_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof addr;
  int port = 0;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0 &&
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0)
    port = ntohs(addr.sin_port);
  ::close(fd);
  return port;
}

std::string describe(const ProcessResult& r) {
  return "exit " + std::to_string(r.exit_code) + ": " + r.err + r.out;
}

}  // namespace

PostgresServer* PostgresServer::shared(std::string& why_not) {
  static std::string reason;
  static std::unique_ptr<PostgresServer> server = [] {
    const char* skip = std::getenv("CALLBRIDGE_SKIP_POSTGRES");
    if (skip && std::string(skip) == "1") {
      reason = "CALLBRIDGE_SKIP_POSTGRES=1";
      return std::unique_ptr<PostgresServer>();
    }
    if (!std::filesystem::exists(kBin + "initdb") || !std::filesystem::exists(kBin + "postgres")) {
      reason = "PostgreSQL 15 is not installed (" + kBin + "initdb); scripts/setup installs it";
      return std::unique_ptr<PostgresServer>();
    }
    std::unique_ptr<PostgresServer> s(new PostgresServer());
    if (!s->start(reason)) return std::unique_ptr<PostgresServer>();
    return s;
  }();
  if (!server) why_not = "PostgreSQL tests skipped: " + reason;
  return server.get();
}

std::vector<std::string> PostgresServer::as_server_user(std::vector<std::string> argv) const {
  if (::geteuid() != 0) return argv;
  std::vector<std::string> wrapped{"/usr/sbin/runuser", "-u", kServerUser, "--"};
  wrapped.insert(wrapped.end(), argv.begin(), argv.end());
  return wrapped;
}

bool PostgresServer::start(std::string& error) {
  char pattern[] = "/tmp/callbridge-pg-XXXXXX";
  if (!::mkdtemp(pattern)) {
    error = "cannot create a scratch directory";
    return false;
  }
  dir_ = pattern;
  if (::geteuid() == 0) {
    passwd* user = ::getpwnam(kServerUser);
    if (!user || ::chown(dir_.c_str(), user->pw_uid, user->pw_gid) != 0) {
      error = std::string("no user ") + kServerUser + " to run PostgreSQL as (initdb refuses root)";
      return false;
    }
  }
  ProcessResult init = run_process(
      as_server_user({kBin + "initdb", "-D", dir_ + "/data", "-U", "postgres", "-A", "trust", "-E",
                      "UTF8", "--locale=C", "--no-sync", "--no-instructions"}));
  if (init.exit_code != 0) {
    error = "initdb failed, " + describe(init);
    return false;
  }
  // A few tries: another process may take the free port before the server binds it.
  for (int attempt = 0; attempt < 3; ++attempt) {
    port_ = free_port();
    options_ = "-p " + std::to_string(port_) + " -k " + dir_ +
               " -c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off "
               "-c max_connections=200 -c shared_buffers=32MB";
    if (start_again(error)) return true;
  }
  return false;
}

bool PostgresServer::start_again(std::string& error) {
  ProcessResult started =
      run_process(as_server_user({kBin + "pg_ctl", "-D", dir_ + "/data", "-l", dir_ + "/server.log",
                                  "-w", "-t", "30", "-o", options_, "start"}));
  running_ = started.exit_code == 0;
  if (!running_) error = "postgres did not start, " + describe(started) + log();
  return running_;
}

bool PostgresServer::stop(std::string& error) {
  ProcessResult stopped = run_process(
      as_server_user({kBin + "pg_ctl", "-D", dir_ + "/data", "-m", "fast", "-w", "stop"}));
  if (stopped.exit_code != 0) {
    error = "postgres did not stop, " + describe(stopped);
    return false;
  }
  running_ = false;
  return true;
}

PostgresServer::~PostgresServer() {
  if (running_)
    run_process(
        as_server_user({kBin + "pg_ctl", "-D", dir_ + "/data", "-m", "immediate", "-w", "stop"}));
  std::error_code ignored;
  if (!dir_.empty()) std::filesystem::remove_all(dir_, ignored);
}

std::string PostgresServer::url(const std::string& name, const std::string& password) const {
  return "postgresql://postgres" + (password.empty() ? "" : ":" + password) +
         "@127.0.0.1:" + std::to_string(port_) + "/" + name;
}

std::string PostgresServer::create_database(std::string& error) {
  std::string name = "t" + std::to_string(::getpid()) + "_" + std::to_string(++databases_);
  bridge::pg::Connection admin;
  if (!admin.open(url("postgres"), error)) return {};
  // A name made here of letters and digits: CREATE DATABASE takes no parameters.
  if (!admin.exec(("CREATE DATABASE " + name).c_str(), error)) return {};
  return url(name);
}

std::string PostgresServer::log() const {
  return read_file(dir_ + "/server.log");
}

}  // namespace callbridge::testing
