#include "connectors/kintone/directory.h"

#include <algorithm>
#include <unordered_set>

#include "connectors/kintone/phone.h"
#include "log/log.h"
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

std::vector<Customer> Directory::customers() const {
  std::shared_lock lock(mutex_);
  std::vector<Customer> out;
  out.reserve(by_id_.size());
  for (const auto& [id, c] : by_id_) out.push_back(c);
  return out;
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
        if (directory_->upsert(c)) {
          ++changed;
          report_change(c.id, &c);
        }
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
    if (!seen.count(id) && directory_->remove(id)) {
      ++removed;
      report_change(id, nullptr);
    }
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
        if (directory_->upsert(c)) {
          ++changed;
          report_change(c.id, &c);
        }
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

void DirectorySync::set_change_sink(ChangeSink sink) {
  std::lock_guard lock(sync_mutex_);
  change_sink_ = std::move(sink);
}

void DirectorySync::report_change(const std::string& id, const Customer* customer) {
  if (change_sink_) change_sink_(id, customer);  // sync_mutex_ is held by the running sync
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

// ---- SharedDirectory ----

namespace {

constexpr auto kSharedPoll = std::chrono::seconds(1);  // how often nodes look at the mark

std::int64_t unix_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// FNV-1a: the same bucket for an ID on every node and build.
int bucket_of(std::string_view id) {
  std::uint32_t h = 2166136261u;
  for (unsigned char c : id) h = (h ^ c) * 16777619u;
  return static_cast<int>(h % SharedDirectory::kBuckets);
}

std::string bucket_key(int bucket) {
  return "b/" + std::to_string(bucket);
}

json customer_json(const Customer& c) {
  return {{"id", c.id},           {"revision", c.revision}, {"name", c.name},
          {"company", c.company}, {"phones", c.phones},     {"updated", c.updated}};
}

std::optional<Customer> customer_from(const json& j) {
  if (!j.is_object() || !j.contains("id") || !j["id"].is_string()) return std::nullopt;
  Customer c;
  c.id = j.value("id", "");
  c.revision = j.value("revision", "");
  c.name = j.value("name", "");
  c.company = j.value("company", "");
  c.updated = j.value("updated", "");
  if (j.contains("phones") && j["phones"].is_array())
    for (const auto& p : j["phones"])
      if (p.is_string()) c.phones.push_back(p.get<std::string>());
  return c;
}

}  // namespace

SharedDirectory::SharedDirectory(DirectorySync& sync, rules::KeyValueStore& store,
                                 rules::Leases& leases, Log log)
    : sync_(sync),
      store_(store),
      leases_(leases),
      log_(std::move(log)),
      ns_(namespace_of(sync.spec().connection)),
      runner_(leases, lease_name(sync.spec().connection),
              std::min<std::chrono::milliseconds>(kSharedPoll, sync.spec().interval),
              [this](const rules::LeaseFence& fence) { job(fence); }) {
  if (!log_) log_ = [](const std::string&) {};
  sync_.set_change_sink([this](const std::string& id, const Customer*) {
    std::lock_guard lock(mutex_);
    dirty_[static_cast<std::size_t>(bucket_of(id))] = true;
  });
}

SharedDirectory::~SharedDirectory() {
  stop();
}

void SharedDirectory::start() {
  {
    std::lock_guard lock(mutex_);
    if (refresher_.joinable()) return;
    stopping_ = false;
  }
  refresh();  // what the cluster knows already, before the first event
  refresher_ = std::thread([this] { refresh_loop(); });
  runner_.start();
}

void SharedDirectory::stop() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  changed_.notify_all();
  if (refresher_.joinable()) refresher_.join();
  runner_.stop();
}

void SharedDirectory::refresh_loop() {
  std::unique_lock lock(mutex_);
  while (!stopping_) {
    changed_.wait_for(lock, kSharedPoll, [&] { return stopping_; });
    if (stopping_) return;
    lock.unlock();
    // The holder's directory is the source (it reloads once when it takes the lease): a reload
    // racing its own publishing could drop customers it has not published yet.
    if (!runner_.held()) refresh();
    lock.lock();
  }
}

std::optional<SharedDirectory::Mark> SharedDirectory::read_mark() {
  auto text = store_.get(ns_, "mark");
  if (!text) return std::nullopt;
  auto j = json::parse(*text, nullptr, false);
  if (!j.is_object()) return std::nullopt;
  Mark m;
  m.version = j.value("version", std::uint64_t{0});
  m.synced_at_ms = j.value("synced_at_ms", std::int64_t{0});
  m.watermark = j.value("watermark", "");
  m.syncs = j.value("syncs", std::uint64_t{0});
  m.error = j.value("error", "");
  return m;
}

bool SharedDirectory::refresh() {
  std::lock_guard refresh_lock(refresh_mutex_);
  auto mark = read_mark();
  if (!mark) return false;
  // Records the sync as seen here once the directory holds its result.
  auto seen = [&] {
    {
      std::lock_guard lock(mutex_);
      version_ = mark->version;
      syncs_ = std::max(syncs_, mark->syncs);
      last_error_ = mark->error;
    }
    changed_.notify_all();
  };
  bool same_version, same_syncs;
  {
    std::lock_guard lock(mutex_);
    same_version = mark->version == version_;
    same_syncs = mark->syncs <= syncs_;
  }
  if (same_version) {
    if (!same_syncs) seen();  // a sync that failed or changed nothing
    return false;
  }
  Directory& directory = sync_.directory();
  std::unordered_set<std::string> present;
  std::size_t changed = 0;
  for (const auto& [key, text] : store_.scan(ns_)) {
    if (key.rfind("b/", 0) != 0) continue;
    auto rows = json::parse(text, nullptr, false);
    if (!rows.is_array()) continue;
    for (const auto& row : rows)
      if (auto c = customer_from(row)) {
        present.insert(c->id);
        if (directory.upsert(std::move(*c))) ++changed;
      }
  }
  for (const auto& id : directory.ids())
    if (!present.count(id) && directory.remove(id)) ++changed;
  seen();
  if (changed > 0)
    log_("kintone directory " + sync_.spec().connection + ": " + std::to_string(changed) +
         " customers changed by the cluster's sync " + std::to_string(mark->version));
  return true;
}

void SharedDirectory::job(const rules::LeaseFence& fence) {
  auto mark = read_mark();
  if (resumed_epoch_ != fence.epoch) {
    // A new holding: start from what the cluster published. This process's first sync is a
    // full import (as at start-up on one node), which also finds the customers deleted in
    // kintone; unchanged customers leave their buckets alone.
    refresh();
    resumed_epoch_ = fence.epoch;
  }
  std::int64_t now = unix_ms();
  std::int64_t requested = 0;
  if (auto r = store_.get(ns_, "requested")) requested = std::atoll(r->c_str());
  auto interval =
      std::chrono::duration_cast<std::chrono::milliseconds>(sync_.spec().interval).count();
  bool asked = requested > handled_request_ms_ && (!mark || requested >= mark->synced_at_ms);
  if (mark && now - mark->synced_at_ms < interval && !asked) return;
  handled_request_ms_ = std::max(handled_request_ms_, requested);
  Result r = sync_.sync();
  Mark next;
  next.version = mark ? mark->version : 0;
  next.syncs = (mark ? mark->syncs : 0) + 1;
  next.synced_at_ms = now;
  next.watermark = sync_.progress().watermark;
  if (r.ok())
    ++next.version;
  else
    next.error = r.error_text();
  publish(fence, next);
}

bool SharedDirectory::publish(const rules::LeaseFence& fence, const Mark& mark) {
  std::vector<bool> dirty;
  {
    std::lock_guard lock(mutex_);
    dirty = dirty_;
  }
  std::string error;
  bool any = std::find(dirty.begin(), dirty.end(), true) != dirty.end();
  if (any) {
    std::vector<json> buckets(kBuckets, json::array());
    for (const auto& c : sync_.directory().customers())
      if (dirty[static_cast<std::size_t>(bucket_of(c.id))])
        buckets[static_cast<std::size_t>(bucket_of(c.id))].push_back(customer_json(c));
    for (int b = 0; b < kBuckets; ++b) {
      if (!dirty[static_cast<std::size_t>(b)]) continue;
      if (!leases_.put_fenced(ns_, bucket_key(b), buckets[static_cast<std::size_t>(b)].dump(),
                              fence, error)) {
        log_("kintone directory " + sync_.spec().connection +
             ": publishing the sync failed: " + error);
        return false;
      }
    }
  }
  json m{{"version", mark.version},
         {"syncs", mark.syncs},
         {"synced_at_ms", mark.synced_at_ms},
         {"watermark", mark.watermark},
         {"error", mark.error}};
  if (!leases_.put_fenced(ns_, "mark", m.dump(), fence, error)) {
    log_("kintone directory " + sync_.spec().connection + ": publishing the sync failed: " + error);
    return false;
  }
  {
    std::lock_guard lock(mutex_);
    // Buckets changed while publishing stay dirty for the next sync.
    for (std::size_t b = 0; b < dirty.size(); ++b)
      if (dirty[b]) dirty_[b] = false;
    version_ = mark.version;
    syncs_ = mark.syncs;
    last_error_ = mark.error;
  }
  changed_.notify_all();
  return true;
}

void SharedDirectory::request_sync() {
  std::string error;
  store_.put(ns_, "requested", std::to_string(unix_ms()), error);
  runner_.wake();
}

std::optional<std::string> SharedDirectory::wait_for_sync(std::uint64_t after,
                                                          std::chrono::milliseconds timeout) {
  std::unique_lock lock(mutex_);
  if (!changed_.wait_for(lock, timeout, [&] { return syncs_ > after || stopping_; }) ||
      syncs_ <= after)
    return std::nullopt;
  return last_error_;
}

std::uint64_t SharedDirectory::syncs() const {
  std::lock_guard lock(mutex_);
  return syncs_;
}

std::uint64_t SharedDirectory::version() const {
  std::lock_guard lock(mutex_);
  return version_;
}

}  // namespace callbridge::kintone
