// A fake Kompira Pigeon: a real HTTP server on 127.0.0.1 (port 0) speaking Pigeon's chain API
// (000/001 seeds): POST /api/apps/pigeon/chain/invoke -> {"resultId"}, GET
// /api/apps/pigeon/results/{resultId} (isActive, status, keyInput, history), POST
// /api/apps/pigeon/chain/abort, each with `X-Authorization: Token T`. Calls are answered from a
// script per contact and loop; a result stays active for a set number of polls.
#pragma once

#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

namespace callbridge::testing {

struct PigeonRequestLog {
  std::string method;
  std::string path;
  std::multimap<std::string, std::string> headers;  // lower-case names
  std::string body;
};

class FakePigeon {
 public:
  explicit FakePigeon(std::string token);
  ~FakePigeon();
  FakePigeon(const FakePigeon&) = delete;
  FakePigeon& operator=(const FakePigeon&) = delete;

  int port() const;
  std::string base_url() const;  // http://127.0.0.1:PORT

  void add_contact(std::string id, std::string name, std::string phone);
  void add_callflow(std::string id, std::string name, int loop_limit,
                    std::vector<std::string> contact_ids);
  // responses: key -> {type (terminate|continue|leave), message template}
  void add_guidance(std::string id, std::string name, std::string message,
                    std::map<int, std::pair<std::string, std::string>> responses);
  // Answers per loop ("key N", "no-key", "no-answer", "fail"); the last repeats. Unscripted
  // contacts do not answer.
  void script(const std::string& contact_id, std::vector<std::string> answers);
  // GET results answers isActive true this many times before the final result (default 1).
  void set_polls_until_done(int polls);

  std::vector<PigeonRequestLog> requests() const;
  std::vector<nlohmann::json> invocations() const;  // the `params` of each accepted invoke
  // Calls placed, as "CONTACT_ID@LOOP", over every chain, in order.
  std::vector<std::string> calls() const;
  int aborts() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace callbridge::testing
