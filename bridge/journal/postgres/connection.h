// RAII over libpq: a result that clears itself, and a connection that prepares each statement
// once and binds every parameter (text format), never splicing values into SQL.
#pragma once

#include <libpq-fe.h>

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace callbridge::bridge::pg {

// One statement's result (PQclear on destruction).
class Result {
 public:
  Result() = default;
  explicit Result(PGresult* r) : r_(r, &PQclear) {}

  // The statement worked (a command, or rows).
  bool ok() const;
  int rows() const { return r_ ? PQntuples(r_.get()) : 0; }
  int columns() const { return r_ ? PQnfields(r_.get()) : 0; }
  bool null(int row, int col) const { return PQgetisnull(r_.get(), row, col) != 0; }
  std::string text(int row, int col) const;
  std::int64_t integer(int row, int col) const;  // 0 when NULL
  std::int64_t affected() const;                 // rows a command changed
  std::string command() const;                   // the command tag: "COMMIT", "ROLLBACK", ...
  // The server's message (or libpq's), without the trailing newline.
  std::string error() const;

 private:
  std::unique_ptr<PGresult, void (*)(PGresult*)> r_{nullptr, &PQclear};
};

// Parameters of one statement, all sent as text; nullopt is SQL NULL.
class Params {
 public:
  Params& add(std::string_view v) {
    values_.emplace_back(std::string(v));
    return *this;
  }
  Params& add(const std::string& v) { return add(std::string_view(v)); }
  Params& add(const char* v) { return add(std::string_view(v)); }
  Params& add(std::int64_t v) { return add(std::to_string(v)); }
  Params& add(int v) { return add(std::to_string(v)); }
  Params& null() {
    values_.emplace_back(std::nullopt);
    return *this;
  }
  const std::vector<std::optional<std::string>>& values() const { return values_; }

 private:
  std::vector<std::optional<std::string>> values_;
};

// A connection with its prepared statements. Used by one thread at a time. When the server
// goes away the connection turns bad; `ensure` connects again (and prepares again), and a
// statement sent outside a transaction is sent once more on the new connection.
class Connection {
 public:
  Connection() = default;
  ~Connection();
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  // Connects to `conninfo` (a postgresql:// URL or key=value string); false with `error`.
  bool open(const std::string& conninfo, std::string& error);
  // Connected, or connects again: false with `error` when the server cannot be reached.
  bool ensure(std::string& error);
  bool good() const { return conn_ && PQstatus(conn_) == CONNECTION_OK; }
  // PQTRANS_IDLE, PQTRANS_INTRANS, PQTRANS_INERROR, ... (PQTRANS_UNKNOWN when bad).
  PGTransactionStatusType transaction() const;

  // Runs `sql` without parameters (one or more statements).
  Result exec(const char* sql);
  // Runs `sql` with `params`, prepared on first use.
  Result run(std::string_view sql, const Params& params = {});
  // exec/run that only report success: false with `error` set.
  bool exec(const char* sql, std::string& error);
  bool run(std::string_view sql, const Params& params, std::string& error);

  // The payloads of the notifications (LISTEN) that arrive within `timeout_ms`, or that had
  // arrived already; empty when none did or the connection broke (then it is bad).
  std::vector<std::string> wait_notifications(int timeout_ms);

  // Pipeline mode (libpq's): statements are sent without waiting for each answer, and their
  // results read afterwards in the order sent. `send` queues a statement (prepared in the same
  // pipeline when new), `flush` asks the server for what it has and sends what is queued, `next`
  // reads the next statement's result (waiting for it), `sync` ends the pipeline's last
  // segment, and `leave` reads what is left up to that point and returns to normal mode. After
  // a failed statement the server skips the rest up to the sync (their results are not ok).
  bool enter_pipeline();
  bool send(std::string_view sql, const Params& params);
  bool flush();
  Result next();
  bool sync();
  bool leave();

 private:
  void close();
  Result run_once(std::string_view sql, const Params& params);
  bool reconnected();  // the connection broke and a new one is up

  PGconn* conn_ = nullptr;
  std::string conninfo_;
  std::map<std::string, std::string, std::less<>> prepared_;  // sql -> statement name
  int names_ = 0;  // statement names given on this connection
  // Pipeline mode: for each statement sent, the SQL of the Prepare sent before it (empty when
  // it was prepared already), read by `next` before the statement's own result.
  std::vector<std::string> pipeline_prepares_;
  std::size_t pipeline_read_ = 0;
};

// The URL or key=value string with its password replaced by "[secret]", for messages.
std::string redact_conninfo(std::string_view conninfo);
// The password the URL or key=value string carries; empty when none.
std::string conninfo_password(std::string_view conninfo);

}  // namespace callbridge::bridge::pg
