#include "bridge/journal/postgres/connection.h"

#include <poll.h>

#include <cstdlib>

namespace callbridge::bridge::pg {

namespace {

std::string trimmed(std::string text) {
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.pop_back();
  return text;
}

// Where the password of a URL is: [begin, end) of "postgresql://user:PASSWORD@host".
std::optional<std::pair<std::size_t, std::size_t>> url_password(std::string_view url) {
  std::size_t scheme = url.find("://");
  if (scheme == std::string_view::npos) return std::nullopt;
  std::size_t start = scheme + 3;
  std::size_t at = url.find('@', start);
  std::size_t slash = url.find('/', start);
  if (at == std::string_view::npos || (slash != std::string_view::npos && slash < at))
    return std::nullopt;
  std::size_t colon = url.find(':', start);
  if (colon == std::string_view::npos || colon > at) return std::nullopt;
  return std::pair{colon + 1, at};
}

// Where the value of a "password=" parameter is (URL query or key=value form).
std::optional<std::pair<std::size_t, std::size_t>> keyword_password(std::string_view text) {
  for (std::size_t pos = text.find("password="); pos != std::string_view::npos;
       pos = text.find("password=", pos + 1)) {
    char before = pos == 0 ? ' ' : text[pos - 1];
    if (before != ' ' && before != '?' && before != '&') continue;
    std::size_t start = pos + 9;
    std::size_t end = start;
    if (end < text.size() && text[end] == '\'') {
      ++end;
      while (end < text.size() && text[end] != '\'') end += text[end] == '\\' ? 2 : 1;
      end = std::min(end + 1, text.size());
    } else {
      while (end < text.size() && text[end] != ' ' && text[end] != '&') ++end;
    }
    return std::pair{start, end};
  }
  return std::nullopt;
}

}  // namespace

bool Result::ok() const {
  if (!r_) return false;
  ExecStatusType s = PQresultStatus(r_.get());
  return s == PGRES_COMMAND_OK || s == PGRES_TUPLES_OK;
}

std::string Result::text(int row, int col) const {
  const char* v = PQgetvalue(r_.get(), row, col);
  return std::string(v, static_cast<std::size_t>(PQgetlength(r_.get(), row, col)));
}

std::int64_t Result::integer(int row, int col) const {
  if (null(row, col)) return 0;
  return std::strtoll(PQgetvalue(r_.get(), row, col), nullptr, 10);
}

std::int64_t Result::affected() const {
  if (!r_) return 0;
  return std::strtoll(PQcmdTuples(r_.get()), nullptr, 10);
}

std::string Result::command() const {
  return r_ ? PQcmdStatus(r_.get()) : "";
}

std::string Result::error() const {
  if (!r_) return "no result from the database (connection lost)";
  return trimmed(PQresultErrorMessage(r_.get()));
}

Connection::~Connection() {
  close();
}

void Connection::close() {
  if (conn_) PQfinish(conn_);
  conn_ = nullptr;
  prepared_.clear();
  names_ = 0;
}

bool Connection::open(const std::string& conninfo, std::string& error) {
  conninfo_ = conninfo;
  return ensure(error);
}

bool Connection::ensure(std::string& error) {
  if (good()) return true;
  close();
  // Defaults first: what the URL says overrides them (expand_dbname).
  const char* keys[] = {"connect_timeout", "application_name", "dbname", nullptr};
  const char* values[] = {"5", "callbridge", conninfo_.c_str(), nullptr};
  conn_ = PQconnectdbParams(keys, values, 1);
  if (!conn_) {
    error = "out of memory";
    return false;
  }
  if (PQstatus(conn_) != CONNECTION_OK) {
    error = "cannot connect to PostgreSQL " + redact_conninfo(conninfo_) + ": " +
            trimmed(PQerrorMessage(conn_));
    close();
    return false;
  }
  Result quiet(PQexec(conn_, "SET client_min_messages = warning"));
  return true;
}

PGTransactionStatusType Connection::transaction() const {
  return conn_ ? PQtransactionStatus(conn_) : PQTRANS_UNKNOWN;
}

Result Connection::exec(const char* sql) {
  if (!conn_) return Result();
  bool idle = transaction() == PQTRANS_IDLE;
  Result r(PQexec(conn_, sql));
  if (!r.ok() && idle && reconnected()) return Result(PQexec(conn_, sql));
  return r;
}

bool Connection::reconnected() {
  // Outside a transaction a statement on a connection the server closed (a restart, a
  // failover) is sent again once on a new connection; inside one the transaction is gone.
  if (!conn_ || PQstatus(conn_) != CONNECTION_BAD) return false;
  std::string ignored;
  return ensure(ignored);
}

Result Connection::run(std::string_view sql, const Params& params) {
  if (!conn_) return Result();
  bool idle = transaction() == PQTRANS_IDLE;
  Result r = run_once(sql, params);
  if (!r.ok() && idle && reconnected()) return run_once(sql, params);
  return r;
}

Result Connection::run_once(std::string_view sql, const Params& params) {
  auto it = prepared_.find(sql);
  if (it == prepared_.end()) {
    std::string name = "s" + std::to_string(++names_);
    std::string text(sql);
    Result prepared(PQprepare(conn_, name.c_str(), text.c_str(), 0, nullptr));
    if (!prepared.ok()) return prepared;
    it = prepared_.emplace(std::move(text), std::move(name)).first;
  }
  const auto& values = params.values();
  std::vector<const char*> pointers;
  pointers.reserve(values.size());
  for (const auto& v : values) pointers.push_back(v ? v->c_str() : nullptr);
  return Result(PQexecPrepared(conn_, it->second.c_str(), static_cast<int>(pointers.size()),
                               pointers.data(), nullptr, nullptr, 0));
}

bool Connection::exec(const char* sql, std::string& error) {
  Result r = exec(sql);
  if (r.ok()) return true;
  error = r.error();
  return false;
}

bool Connection::run(std::string_view sql, const Params& params, std::string& error) {
  Result r = run(sql, params);
  if (r.ok()) return true;
  error = r.error();
  return false;
}

std::vector<std::string> Connection::wait_notifications(int timeout_ms) {
  std::vector<std::string> out;
  if (!conn_) return out;
  auto drain = [&] {
    if (!PQconsumeInput(conn_)) return;
    while (PGnotify* n = PQnotifies(conn_)) {
      out.emplace_back(n->extra ? n->extra : "");
      PQfreemem(n);
    }
  };
  drain();
  if (!out.empty() || !good()) return out;
  pollfd fd{PQsocket(conn_), POLLIN, 0};
  if (fd.fd >= 0 && ::poll(&fd, 1, timeout_ms) > 0) drain();
  return out;
}

bool Connection::enter_pipeline() {
  pipeline_prepares_.clear();
  pipeline_read_ = 0;
  return conn_ && PQenterPipelineMode(conn_) == 1;
}

bool Connection::send(std::string_view sql, const Params& params) {
  auto it = prepared_.find(sql);
  std::string prepare;
  if (it == prepared_.end()) {
    std::string name = "s" + std::to_string(++names_);
    prepare = std::string(sql);
    if (PQsendPrepare(conn_, name.c_str(), prepare.c_str(), 0, nullptr) != 1) return false;
    it = prepared_.emplace(prepare, std::move(name)).first;
  }
  pipeline_prepares_.push_back(std::move(prepare));
  const auto& values = params.values();
  std::vector<const char*> pointers;
  pointers.reserve(values.size());
  for (const auto& v : values) pointers.push_back(v ? v->c_str() : nullptr);
  return PQsendQueryPrepared(conn_, it->second.c_str(), static_cast<int>(pointers.size()),
                             pointers.data(), nullptr, nullptr, 0) == 1;
}

bool Connection::flush() {
  return PQsendFlushRequest(conn_) == 1 && PQflush(conn_) == 0;
}

Result Connection::next() {
  if (pipeline_read_ >= pipeline_prepares_.size()) return Result();
  const std::string prepare = std::move(pipeline_prepares_[pipeline_read_++]);
  // Each sent message's results end with a null; a Prepare's result comes first when it was sent.
  auto one = [this] {
    Result r(PQgetResult(conn_));
    while (PGresult* more = PQgetResult(conn_)) PQclear(more);
    return r;
  };
  Result prepared = prepare.empty() ? Result() : one();
  Result r = one();
  if (prepare.empty()) return r;
  if (prepared.ok()) return r;
  prepared_.erase(prepare);  // not prepared (the pipeline was aborted before it): next time
  return prepared;
}

bool Connection::sync() {
  return PQpipelineSync(conn_) == 1;
}

bool Connection::leave() {
  // What was not read yet, then the sync's own result.
  while (pipeline_read_ < pipeline_prepares_.size()) next();
  bool ok = false;
  for (int nulls = 0; good() && nulls < 2;) {
    PGresult* r = PQgetResult(conn_);
    if (!r) {
      ++nulls;
      continue;
    }
    bool at_sync = PQresultStatus(r) == PGRES_PIPELINE_SYNC;
    PQclear(r);
    if (at_sync) {
      ok = PQexitPipelineMode(conn_) == 1;
      break;
    }
  }
  pipeline_prepares_.clear();
  pipeline_read_ = 0;
  if (!ok) close();  // out of step with the server: a new connection next time
  return ok;
}

std::string redact_conninfo(std::string_view conninfo) {
  std::string out(conninfo);
  if (auto p = url_password(out)) out.replace(p->first, p->second - p->first, "[secret]");
  if (auto p = keyword_password(out)) out.replace(p->first, p->second - p->first, "[secret]");
  return out;
}

std::string conninfo_password(std::string_view conninfo) {
  if (auto p = url_password(conninfo))
    return std::string(conninfo.substr(p->first, p->second - p->first));
  if (auto p = keyword_password(conninfo))
    return std::string(conninfo.substr(p->first, p->second - p->first));
  return {};
}

}  // namespace callbridge::bridge::pg
