// The customer directory: kintone's customer app held in memory, indexed by normalised phone
// number, so an inbound call is matched in microseconds without a request to kintone.
// DirectorySync fills it: the whole app at start-up, then what changed since, by the app's
// updated-time field, on an interval and on demand.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <vector>

#include "connectors/kintone/client.h"
#include "rules/host.h"
#include "rules/singleton.h"

namespace callbridge::kintone {

struct Customer {
  std::string id;        // kintone record ID
  std::string revision;  // $revision, to skip records seen already
  std::string name, company;
  std::vector<std::string> phones;  // as written in kintone, for writing back
  std::string updated;              // the updated-time field's value
};

// Thread-safe; lookups take a shared lock and one hash probe.
class Directory {
 public:
  // The customer for a caller ID however it is written; nullopt for withheld numbers. Several
  // customers sharing a number: the lowest record ID wins.
  std::optional<Customer> lookup(std::string_view tel) const;
  // Adds or replaces by ID; false when the stored revision is the same (nothing changed).
  bool upsert(Customer customer);
  bool remove(const std::string& id);
  std::size_t size() const;
  std::size_t phone_keys() const;
  std::vector<std::string> ids() const;
  std::vector<Customer> customers() const;

 private:
  void unindex(const Customer& c);  // mutex_ held exclusively
  mutable std::shared_mutex mutex_;
  std::unordered_map<std::string, Customer> by_id_;
  std::unordered_map<std::string, std::vector<std::string>> by_phone_;  // key -> IDs, sorted
};

// Which app and fields make the directory.
struct DirectorySpec {
  std::string connection;  // the section's connection name, for logs and metrics
  int app = 0;
  std::vector<std::string> phone_fields;  // several per record: 電話番号, 携帯番号...
  std::string name_field;                 // optional
  std::string company_field;              // optional
  std::string updated_field = "更新日時";
  std::chrono::seconds interval{3600};
  Paging paging = Paging::id;
  int page_size = kMaxRecordsPerRequest;
};

struct SyncProgress {
  bool running = false;
  bool full = false;           // the running (or last) sync was a full import
  std::uint64_t expected = 0;  // records kintone said the full import covers
  std::uint64_t fetched = 0;   // records read by the running (or last) sync
  std::uint64_t changed = 0;   // of those, new or changed in the directory
  double rate = 0;             // records per second of the running (or last) sync
  std::uint64_t full_syncs = 0, incremental_syncs = 0, failures = 0;
  std::string watermark;   // the highest updated-time seen
  std::string last_error;  // of the last failed sync
  std::chrono::system_clock::time_point last_success{};
  std::chrono::milliseconds last_duration{0};  // of the last finished sync
};

class DirectorySync {
 public:
  using Log = std::function<void(const std::string& line)>;

  DirectorySync(Client& client, DirectorySpec spec, std::shared_ptr<Directory> directory,
                Log log = {});
  ~DirectorySync();
  DirectorySync(const DirectorySync&) = delete;
  DirectorySync& operator=(const DirectorySync&) = delete;

  // Reads the whole app; customers gone from kintone leave the directory.
  Result full_import();
  // Reads records whose updated-time is >= the watermark (kintone keeps minutes only, so the
  // last minute is read again and records with an unchanged revision are skipped).
  Result incremental();
  // full_import() until one succeeded, incremental() after. Serialised with the thread.
  Result sync();

  void start();  // a thread: sync now, then every interval or when requested
  void stop();   // returns promptly once the running page is done
  void request_sync();

  // Called for every customer a sync adds or changes, and with null for one it removes (on the
  // sync's thread, inside the sync).
  using ChangeSink = std::function<void(const std::string& id, const Customer* customer)>;
  void set_change_sink(ChangeSink sink);

  SyncProgress progress() const;
  const DirectorySpec& spec() const { return spec_; }
  Directory& directory() { return *directory_; }
  // Prometheus lines about the directory and its imports.
  void metrics(std::string& out) const;

 private:
  std::vector<std::string> fields() const;
  Customer to_customer(const nlohmann::json& record) const;
  void run();
  void report_change(const std::string& id, const Customer* customer);

  Client& client_;
  DirectorySpec spec_;
  std::shared_ptr<Directory> directory_;
  Log log_;

  std::mutex sync_mutex_;  // one sync at a time
  mutable std::mutex progress_mutex_;
  SyncProgress progress_;
  bool imported_ = false;
  ChangeSink change_sink_;

  std::mutex wake_mutex_;
  std::condition_variable wake_;
  bool requested_ = false;
  std::atomic<bool> stopping_{false};
  std::thread thread_;
};

// The directory on every node of a cluster (docs/cluster.md). The node holding the lease
// `singleton:kintone-directory:<connection>` syncs from kintone once per interval and publishes
// the customers to the shared key-value store (namespace `kintone.directory.<connection>`:
// customers in buckets, then a mark with a version, every write fenced by the lease); every node
// reloads its in-memory directory from there when the mark's version changes, and answers
// lookups from memory as on one node.
class SharedDirectory {
 public:
  using Log = std::function<void(const std::string& line)>;
  static constexpr int kBuckets = 64;
  static std::string lease_name(std::string_view connection) {
    return "singleton:kintone-directory:" + std::string(connection);
  }
  static std::string namespace_of(std::string_view connection) {
    return "kintone.directory." + std::string(connection);
  }

  SharedDirectory(DirectorySync& sync, rules::KeyValueStore& store, rules::Leases& leases,
                  Log log = {});
  ~SharedDirectory();
  SharedDirectory(const SharedDirectory&) = delete;
  SharedDirectory& operator=(const SharedDirectory&) = delete;

  void start();
  void stop();
  // Asks whichever node holds the lease to sync now.
  void request_sync();
  // Syncs the cluster has run (failed ones too), as this node last saw them.
  std::uint64_t syncs() const;
  // Waits until the cluster's sync number `after + 1` (or a later one) is loaded here: its
  // error, empty when it worked; nullopt when none came within `timeout`.
  std::optional<std::string> wait_for_sync(std::uint64_t after, std::chrono::milliseconds timeout);
  // The published version this node's directory holds.
  std::uint64_t version() const;
  bool holder() const { return runner_.held(); }
  // Reads the mark and reloads the directory when its version changed; true when it did.
  bool refresh();

 private:
  struct Mark {
    std::uint64_t version = 0;  // syncs that worked
    std::uint64_t syncs = 0;    // every sync
    std::string error;          // of the last sync
    std::int64_t synced_at_ms = 0;
    std::string watermark;
  };
  std::optional<Mark> read_mark();
  void job(const rules::LeaseFence& fence);  // on the lease holder
  bool publish(const rules::LeaseFence& fence, const Mark& mark);
  void refresh_loop();

  DirectorySync& sync_;
  rules::KeyValueStore& store_;
  rules::Leases& leases_;
  Log log_;
  std::string ns_;
  rules::SingletonRunner runner_;

  std::mutex refresh_mutex_;  // one reload at a time
  mutable std::mutex mutex_;
  std::condition_variable changed_;
  std::uint64_t syncs_ = 0;
  std::string last_error_;
  std::uint64_t version_ = 0;        // applied to the directory here
  std::int64_t resumed_epoch_ = -1;  // the lease holding this node's sync continues from
  std::int64_t handled_request_ms_ = 0;
  std::vector<bool> dirty_ = std::vector<bool>(kBuckets, false);
  bool stopping_ = false;
  std::thread refresher_;
};

}  // namespace callbridge::kintone
