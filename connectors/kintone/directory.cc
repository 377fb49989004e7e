#include "connectors/kintone/directory.h"

#include <algorithm>
#include <unordered_set>

#include "connectors/kintone/phone.h"
#include "rules/template.h"

namespace callbridge::kintone {

using nlohmann::json;

namespace {

bool id_less(const std::string& a, const std::string& b) {
  return a.size() != b.size() ? a.size() < b.size() : a < b;  // numeric order of digit strings
}

std::string value_text(const json& record, const std::string& field) {
  if (field.empty()) return "";
  auto it = record.find(field);
  if (it == record.end() || !it->is_object()) return "";
  auto v = it->find("value");
  if (v == it->end()) return "";
  if (v->is_string()) return v->get<std::string>();
  if (v->is_number()) return v->dump();
  return "";
}

// One field may hold several numbers: "03-1234-5678\n090-1111-2222", "03-..., 090-...".
std::vector<std::string> split_numbers(const std::string& text) {
  std::vector<std::string> out;
  std::string current;
  auto flush = [&] {
    auto b = current.find_first_not_of(" \t\r");
    auto e = current.find_last_not_of(" \t\r");
    if (b != std::string::npos) out.push_back(current.substr(b, e - b + 1));
    current.clear();
  };
  for (std::size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (c == '\n' || c == ',' || c == ';' || c == '/') {
      flush();
    } else if (text.compare(i, 3, "、") == 0 || text.compare(i, 3, "，") == 0 ||
               text.compare(i, 3, "／") == 0) {
      flush();
      i += 2;
    } else {
      current += c;
    }
  }
  flush();
  return out;
}

std::string escape_label(const std::string& v) {
  std::string out;
  for (char c : v) {
    if (c == '"' || c == '\\') out += '\\';
    out += c == '\n' ? ' ' : c;
  }
  return out;
}

}  // namespace

// ---- Directory ----

std::optional<Customer> Directory::lookup(std::string_view tel) const {
  auto key = phone_key(tel);
  if (!key) return std::nullopt;
  std::shared_lock lock(mutex_);
  auto it = by_phone_.find(*key);
  if (it == by_phone_.end() || it->second.empty()) return std::nullopt;
  auto c = by_id_.find(it->second.front());
  if (c == by_id_.end()) return std::nullopt;
  return c->second;
}

void Directory::unindex(const Customer& c) {
  for (const auto& phone : c.phones) {
    auto key = phone_key(phone);
    if (!key) continue;
    auto it = by_phone_.find(*key);
    if (it == by_phone_.end()) continue;
    auto& ids = it->second;
    ids.erase(std::remove(ids.begin(), ids.end(), c.id), ids.end());
    if (ids.empty()) by_phone_.erase(it);
  }
}

bool Directory::upsert(Customer customer) {
  std::unique_lock lock(mutex_);
  auto existing = by_id_.find(customer.id);
  if (existing != by_id_.end()) {
    if (!customer.revision.empty() && existing->second.revision == customer.revision) return false;
    unindex(existing->second);
  }
  for (const auto& phone : customer.phones) {
    auto key = phone_key(phone);
    if (!key) continue;
    auto& ids = by_phone_[*key];
    auto pos = std::lower_bound(ids.begin(), ids.end(), customer.id, id_less);
    if (pos == ids.end() || *pos != customer.id) ids.insert(pos, customer.id);
  }
  std::string id = customer.id;
  by_id_[id] = std::move(customer);
  return true;
}

bool Directory::remove(const std::string& id) {
  std::unique_lock lock(mutex_);
  auto it = by_id_.find(id);
  if (it == by_id_.end()) return false;
  unindex(it->second);
  by_id_.erase(it);
  return true;
}

std::size_t Directory::size() const {
  std::shared_lock lock(mutex_);
  return by_id_.size();
}

std::size_t Directory::phone_keys() const {
  std::shared_lock lock(mutex_);
  return by_phone_.size();
}

std::vector<std::string> Directory::ids() const {
  std::shared_lock lock(mutex_);
  std::vector<std::string> out;
  out.reserve(by_id_.size());
  for (const auto& [id, c] : by_id_) out.push_back(id);
  return out;
}

// ---- DirectorySync ----

DirectorySync::DirectorySync(Client& client, DirectorySpec spec,
                             std::shared_ptr<Directory> directory, Log log)
    : client_(client),
      spec_(std::move(spec)),
      directory_(directory ? std::move(directory) : std::make_shared<Directory>()),
      log_(std::move(log)) {
  if (!log_) log_ = [](const std::string&) {};
}

DirectorySync::~DirectorySync() {
  stop();
}

std::vector<std::string> DirectorySync::fields() const {
  std::vector<std::string> f = spec_.phone_fields;
  for (const auto* extra : {&spec_.name_field, &spec_.company_field, &spec_.updated_field})
    if (!extra->empty()) f.push_back(*extra);
  f.push_back("$id");
  f.push_back("$revision");
  return f;
}

Customer DirectorySync::to_customer(const json& record) const {
  Customer c;
  c.id = value_text(record, "$id");
  c.revision = value_text(record, "$revision");
  c.name = value_text(record, spec_.name_field);
  c.company = value_text(record, spec_.company_field);
  c.updated = value_text(record, spec_.updated_field);
  for (const auto& field : spec_.phone_fields)
    for (auto& number : split_numbers(value_text(record, field))) c.phones.push_back(number);
  return c;
}

Result DirectorySync::full_import() {
  std::lock_guard sync_lock(sync_mutex_);
  auto started = std::chrono::steady_clock::now();
  {
    std::lock_guard lock(progress_mutex_);
    progress_.running = true;
    progress_.full = true;
    progress_.fetched = progress_.changed = 0;
    progress_.expected = 0;
    progress_.rate = 0;
  }
  // One cheap request for the total, so progress lines can say "of N".
  FindQuery count_query;
  count_query.fields = {"$id"};
  count_query.limit = 1;
  Result counted = client_.find(spec_.app, count_query);
  if (counted.ok() && counted.body["totalCount"].is_string()) {
    std::lock_guard lock(progress_mutex_);
    progress_.expected = std::stoull(counted.body["totalCount"].get<std::string>());
  }
  log_("kintone directory " + spec_.connection + "/app " + std::to_string(spec_.app) +
       ": full import of " + (counted.ok() ? counted.body.value("totalCount", "?") : "?") +
       " records started");

  std::unordered_set<std::string> seen;
  std::string watermark;
  std::uint64_t fetched = 0, changed = 0;
  auto report = [&](bool done) {
    double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    std::lock_guard lock(progress_mutex_);
    progress_.fetched = fetched;
    progress_.changed = changed;
    progress_.rate = seconds > 0 ? static_cast<double>(fetched) / seconds : 0;
    if (done) {
      progress_.running = false;
      progress_.last_duration =
          std::chrono::milliseconds(static_cast<std::int64_t>(seconds * 1000));
    }
    return progress_;
  };
  Result r = client_.find_all(
      spec_.app, "", fields(),
      [&](json&& record) {
        Customer c = to_customer(record);
        if (c.updated > watermark) watermark = c.updated;
        seen.insert(c.id);
        if (directory_->upsert(std::move(c))) ++changed;
        ++fetched;
        if (fetched % 5000 == 0) {
          SyncProgress p = report(false);
          log_("kintone directory " + spec_.connection + "/app " + std::to_string(spec_.app) +
               ": imported " + std::to_string(fetched) + " of " + std::to_string(p.expected) +
               " records (" + std::to_string(static_cast<long long>(p.rate)) + " records/s)");
        }
        return !stopping_.load();
      },
      spec_.paging, spec_.page_size);
  SyncProgress p = report(true);
  if (!r.ok() || stopping_.load()) {
    std::lock_guard lock(progress_mutex_);
    ++progress_.failures;
    progress_.last_error = r.ok() ? "stopped" : r.error_text();
    log_("kintone directory " + spec_.connection + "/app " + std::to_string(spec_.app) +
         ": full import failed after " + std::to_string(fetched) +
         " records: " + progress_.last_error);
    return r;
  }
  std::uint64_t removed = 0;
  for (const auto& id : directory_->ids())
    if (!seen.count(id) && directory_->remove(id)) ++removed;
  {
    std::lock_guard lock(progress_mutex_);
    ++progress_.full_syncs;
    if (watermark > progress_.watermark) progress_.watermark = watermark;
    progress_.last_error.clear();
    progress_.last_success = std::chrono::system_clock::now();
  }
  imported_ = true;
  log_("kintone directory " + spec_.connection + "/app " + std::to_string(spec_.app) +
       ": full import done, " + std::to_string(fetched) + " records, " +
       std::to_string(directory_->size()) + " customers, " + std::to_string(removed) +
       " removed (" + std::to_string(static_cast<long long>(p.rate)) + " records/s)");
  return r;
}

Result DirectorySync::incremental() {
  std::lock_guard sync_lock(sync_mutex_);
  std::string since;
  {
    std::lock_guard lock(progress_mutex_);
    since = progress_.watermark;
    progress_.running = true;
    progress_.full = false;
    progress_.fetched = progress_.changed = 0;
  }
  auto started = std::chrono::steady_clock::now();
  std::string query;
  if (!since.empty()) query = spec_.updated_field + " >= " + rules::kintone_query_literal(since);
  std::string watermark = since;
  std::uint64_t fetched = 0, changed = 0;
  Result r = client_.find_all(
      spec_.app, query, fields(),
      [&](json&& record) {
        Customer c = to_customer(record);
        if (c.updated > watermark) watermark = c.updated;
        if (directory_->upsert(std::move(c))) ++changed;
        ++fetched;
        return !stopping_.load();
      },
      spec_.paging, spec_.page_size);
  double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  std::lock_guard lock(progress_mutex_);
  progress_.running = false;
  progress_.fetched = fetched;
  progress_.changed = changed;
  progress_.rate = seconds > 0 ? static_cast<double>(fetched) / seconds : 0;
  progress_.last_duration = std::chrono::milliseconds(static_cast<std::int64_t>(seconds * 1000));
  if (!r.ok()) {
    ++progress_.failures;
    progress_.last_error = r.error_text();
    log_("kintone directory " + spec_.connection + "/app " + std::to_string(spec_.app) +
         ": sync failed: " + progress_.last_error);
    return r;
  }
  ++progress_.incremental_syncs;
  progress_.watermark = watermark;
  progress_.last_error.clear();
  progress_.last_success = std::chrono::system_clock::now();
  if (changed > 0)
    log_("kintone directory " + spec_.connection + "/app " + std::to_string(spec_.app) + ": " +
         std::to_string(changed) + " customers changed since " + since);
  return r;
}

Result DirectorySync::sync() {
  bool done;
  {
    std::lock_guard lock(sync_mutex_);
    done = imported_;
  }
  return done ? incremental() : full_import();
}

void DirectorySync::start() {
  if (thread_.joinable()) return;
  stopping_ = false;
  thread_ = std::thread([this] { run(); });
}

void DirectorySync::run() {
  for (;;) {
    sync();
    std::unique_lock lock(wake_mutex_);
    wake_.wait_for(lock, spec_.interval, [&] { return requested_ || stopping_.load(); });
    if (stopping_.load()) return;
    requested_ = false;
  }
}

void DirectorySync::stop() {
  {
    std::lock_guard lock(wake_mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void DirectorySync::request_sync() {
  {
    std::lock_guard lock(wake_mutex_);
    requested_ = true;
  }
  wake_.notify_all();
}

SyncProgress DirectorySync::progress() const {
  std::lock_guard lock(progress_mutex_);
  return progress_;
}

void DirectorySync::metrics(std::string& out) const {
  SyncProgress p = progress();
  std::string labels = "connection=\"" + escape_label(spec_.connection) + "\",app=\"" +
                       std::to_string(spec_.app) + "\"";
  auto line = [&](const std::string& name, const std::string& extra, double value) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.15g", value);
    out += "callbridge_kintone_directory_" + name + "{" + labels + extra + "} " + buf + "\n";
  };
  line("customers", "", static_cast<double>(directory_->size()));
  line("phone_keys", "", static_cast<double>(directory_->phone_keys()));
  line("sync_running", "", p.running ? 1 : 0);
  line("import_expected_records", "", static_cast<double>(p.expected));
  line("sync_fetched_records", "", static_cast<double>(p.fetched));
  line("sync_rate_records_per_second", "", p.rate);
  line("syncs_total", ",kind=\"full\"", static_cast<double>(p.full_syncs));
  line("syncs_total", ",kind=\"incremental\"", static_cast<double>(p.incremental_syncs));
  line("sync_failures_total", "", static_cast<double>(p.failures));
  line("last_success_timestamp_seconds", "",
       static_cast<double>(
           std::chrono::duration_cast<std::chrono::seconds>(p.last_success.time_since_epoch())
               .count()));
}

}  // namespace callbridge::kintone
