#include "connectors/escalation/model.h"

#include <algorithm>
#include <cstdio>
#include <ctime>
#include <mutex>
#include <random>

#include "rules/clock_text.h"

namespace callbridge::escalation {

using json = nlohmann::json;

std::string_view to_string(Reaction reaction) {
  switch (reaction) {
    case Reaction::terminate:
      return "terminate";
    case Reaction::continue_on:
      return "continue";
    case Reaction::leave:
      return "leave";
  }
  return "terminate";
}

std::optional<Reaction> reaction_from_string(std::string_view text) {
  if (text == "terminate" || text == "終了") return Reaction::terminate;
  if (text == "continue" || text == "継続") return Reaction::continue_on;
  if (text == "leave" || text == "離脱") return Reaction::leave;
  return std::nullopt;
}

std::string validate(const Guidance& guidance) {
  bool terminate = false;
  for (const auto& [key, response] : guidance.responses) {
    if (key < 1 || key > 9) return "response keys are 1-9, got " + std::to_string(key);
    if (response.reaction == Reaction::terminate) terminate = true;
  }
  if (!terminate) return "a guidance needs at least one response of type terminate";
  return {};
}

std::string validate(const CallFlow& flow) {
  if (flow.contacts.empty()) return "a call flow needs at least one contact";
  if (flow.loop_limit < 1 || flow.loop_limit > 100)
    return "loop limit must be between 1 and 100, got " + std::to_string(flow.loop_limit);
  return {};
}

std::string render_message(std::string_view text, const Parameters& parameters,
                           std::vector<std::string>* missing) {
  std::string out;
  out.reserve(text.size());
  std::size_t i = 0;
  while (i < text.size()) {
    auto open = text.find("{{", i);
    if (open == std::string_view::npos) break;
    bool triple = text.substr(open, 3) == "{{{";
    std::string_view close_mark = triple ? "}}}" : "}}";
    auto close = text.find(close_mark, open + (triple ? 3 : 2));
    if (close == std::string_view::npos) break;
    out.append(text.substr(i, open - i));
    std::string_view key = text.substr(open + (triple ? 3 : 2), close - open - (triple ? 3 : 2));
    while (!key.empty() && (key.front() == ' ' || key.front() == '&')) key.remove_prefix(1);
    while (!key.empty() && key.back() == ' ') key.remove_suffix(1);
    auto it = parameters.find(key);
    if (it != parameters.end()) {
      out += it->second;
    } else if (missing) {
      missing->emplace_back(key);
    }
    i = close + close_mark.size();
  }
  out.append(text.substr(i));
  return out;
}

std::string_view to_string(AttemptOutcome outcome) {
  switch (outcome) {
    case AttemptOutcome::succeeded:
      return "succeeded";
    case AttemptOutcome::ignored:
      return "ignored";
    case AttemptOutcome::missed:
      return "missed";
    case AttemptOutcome::failed:
      return "failed";
    case AttemptOutcome::aborted:
      return "aborted";
  }
  return "failed";
}

std::optional<AttemptOutcome> attempt_outcome_from_string(std::string_view text) {
  for (auto o : {AttemptOutcome::succeeded, AttemptOutcome::ignored, AttemptOutcome::missed,
                 AttemptOutcome::failed, AttemptOutcome::aborted})
    if (to_string(o) == text) return o;
  return std::nullopt;
}

std::string_view to_string(ChainStatus status) {
  switch (status) {
    case ChainStatus::running:
      return "running";
    case ChainStatus::succeeded:
      return "succeeded";
    case ChainStatus::failed:
      return "failed";
    case ChainStatus::aborted:
      return "aborted";
  }
  return "failed";
}

std::optional<ChainStatus> chain_status_from_string(std::string_view text) {
  for (auto s :
       {ChainStatus::running, ChainStatus::succeeded, ChainStatus::failed, ChainStatus::aborted})
    if (to_string(s) == text) return s;
  return std::nullopt;
}

std::string_view to_string(Phase phase) {
  switch (phase) {
    case Phase::waiting:
      return "waiting";
    case Phase::dialing:
      return "dialing";
    case Phase::remote:
      return "remote";
    case Phase::finished:
      return "finished";
  }
  return "finished";
}

std::string iso8601(Millis at) {
  return rules::iso8601_ms(at);
}

int ChainState::loops() const {
  int highest = 0;
  for (const auto& a : attempts) highest = std::max(highest, a.loop);
  return highest;
}

// ---- callbridge's own JSON (the store and /v1/escalation/chains) ----

json to_json(const Contact& c) {
  return json{{"id", c.id}, {"name", c.name}, {"phone", c.phone}};
}

json to_json(const CallFlow& f) {
  json contacts = json::array();
  for (const auto& c : f.contacts) contacts.push_back(to_json(c));
  return json{{"id", f.id}, {"name", f.name}, {"loop_limit", f.loop_limit}, {"contacts", contacts}};
}

json to_json(const Guidance& g) {
  json responses = json::object();
  for (const auto& [key, r] : g.responses)
    responses[std::to_string(key)] = json{{"type", to_string(r.reaction)}, {"message", r.message}};
  return json{{"id", g.id}, {"name", g.name}, {"message", g.message}, {"responses", responses}};
}

json to_json(const Attempt& a) {
  json j{{"id", a.id},
         {"contact_id", a.contact_id},
         {"contact_name", a.contact_name},
         {"phone", a.phone},
         {"loop", a.loop},
         {"position", a.position},
         {"started_at", a.started_at},
         {"ended_at", a.ended_at},
         {"outcome", a.outcome ? json(to_string(*a.outcome)) : json(nullptr)},
         {"key", a.key ? json(*a.key) : json(nullptr)},
         {"reaction", a.reaction ? json(to_string(*a.reaction)) : json(nullptr)},
         {"message", a.message},
         {"response_message", a.response_message},
         {"error", a.error}};
  return j;
}

json to_json(const ChainState& s) {
  json attempts = json::array();
  for (const auto& a : s.attempts) attempts.push_back(to_json(a));
  json params = json::object();
  for (const auto& [k, v] : s.parameters) params[k] = v;
  return json{{"id", s.id},
              {"origin_call_id", s.origin_call_id},
              {"origin_rule", s.origin_rule},
              {"backend", s.backend},
              {"remote_id", s.remote_id},
              {"callflow", to_json(s.callflow)},
              {"guidance", to_json(s.guidance)},
              {"parameters", params},
              {"status", to_string(s.status)},
              {"phase", to_string(s.phase)},
              {"reason", s.reason},
              {"created_at", s.created_at},
              {"finished_at", s.finished_at},
              {"due_at", s.due_at},
              {"loop", s.loop},
              {"position", s.position},
              {"left", s.left},
              {"attempts", attempts},
              {"key", s.key ? json(*s.key) : json(nullptr)},
              {"terminated_by", s.terminated_by},
              {"notified", s.notified},
              {"remote_polls", s.remote_polls}};
}

namespace {

Contact contact_from(const json& j) {
  return Contact{j.value("id", ""), j.value("name", ""), j.value("phone", "")};
}

std::optional<int> optional_int(const json& j, const char* key) {
  auto it = j.find(key);
  if (it == j.end() || !it->is_number_integer()) return std::nullopt;
  return it->get<int>();
}

}  // namespace

std::optional<ChainState> chain_from_json(const json& j, std::string& error) {
  try {
    ChainState s;
    s.id = j.at("id").get<std::string>();
    s.origin_call_id = j.value("origin_call_id", "");
    s.origin_rule = j.value("origin_rule", "");
    s.backend = j.value("backend", "engine");
    s.remote_id = j.value("remote_id", "");
    const json& f = j.at("callflow");
    s.callflow.id = f.value("id", "");
    s.callflow.name = f.value("name", "");
    s.callflow.loop_limit = f.value("loop_limit", 1);
    for (const auto& c : f.at("contacts")) s.callflow.contacts.push_back(contact_from(c));
    const json& g = j.at("guidance");
    s.guidance.id = g.value("id", "");
    s.guidance.name = g.value("name", "");
    s.guidance.message = g.value("message", "");
    for (const auto& [key, r] : g.at("responses").items()) {
      auto reaction = reaction_from_string(r.value("type", ""));
      if (!reaction) throw std::runtime_error("bad response type for key " + key);
      s.guidance.responses[std::stoi(key)] = KeyResponse{*reaction, r.value("message", "")};
    }
    for (const auto& [k, v] : j.at("parameters").items()) s.parameters[k] = v.get<std::string>();
    auto status = chain_status_from_string(j.at("status").get<std::string>());
    if (!status) throw std::runtime_error("bad status");
    s.status = *status;
    std::string phase = j.value("phase", "finished");
    s.phase = phase == "waiting"   ? Phase::waiting
              : phase == "dialing" ? Phase::dialing
              : phase == "remote"  ? Phase::remote
                                   : Phase::finished;
    s.reason = j.value("reason", "");
    s.created_at = j.value("created_at", Millis{0});
    s.finished_at = j.value("finished_at", Millis{0});
    s.due_at = j.value("due_at", Millis{0});
    s.loop = j.value("loop", 1);
    s.position = j.value("position", -1);
    for (const auto& id : j.value("left", json::array())) s.left.insert(id.get<std::string>());
    for (const auto& a : j.at("attempts")) {
      Attempt at;
      at.id = a.value("id", "");
      at.contact_id = a.value("contact_id", "");
      at.contact_name = a.value("contact_name", "");
      at.phone = a.value("phone", "");
      at.loop = a.value("loop", 1);
      at.position = a.value("position", 0);
      at.started_at = a.value("started_at", Millis{0});
      at.ended_at = a.value("ended_at", Millis{0});
      if (a.contains("outcome") && a["outcome"].is_string())
        at.outcome = attempt_outcome_from_string(a["outcome"].get<std::string>());
      at.key = optional_int(a, "key");
      if (a.contains("reaction") && a["reaction"].is_string())
        at.reaction = reaction_from_string(a["reaction"].get<std::string>());
      at.message = a.value("message", "");
      at.response_message = a.value("response_message", "");
      at.error = a.value("error", "");
      s.attempts.push_back(std::move(at));
    }
    s.key = optional_int(j, "key");
    s.terminated_by = j.value("terminated_by", "");
    s.notified = j.value("notified", false);
    s.remote_polls = j.value("remote_polls", 0);
    return s;
  } catch (const std::exception& e) {
    error = e.what();
    return std::nullopt;
  }
}

// ---- Kompira Pigeon's shapes ----

json pigeon_callflow(const CallFlow& f) {
  json contacts = json::array();
  for (const auto& c : f.contacts)
    contacts.push_back(
        json{{"contactId", c.id}, {"displayName", c.name}, {"phoneNumber", c.phone}});
  return json{{"callflowId", f.id.empty() ? json(nullptr) : json(f.id)},
              {"displayName", f.name},
              {"loopLimit", f.loop_limit},
              {"contacts", contacts}};
}

json pigeon_guidance(const Guidance& g) {
  json reactions = json::array();
  for (const auto& [key, r] : g.responses)
    reactions.push_back(json{{"key", std::to_string(key)},
                             {"type", to_string(r.reaction)},
                             {"messageTemplate", r.message}});
  return json{{"guidanceId", g.id.empty() ? json(nullptr) : json(g.id)},
              {"displayName", g.name},
              {"messageTemplate", g.message},
              {"reactions", reactions}};
}

json pigeon_result(const ChainState& s) {
  json history = json::array();
  for (const auto& a : s.attempts) {
    history.push_back(json{
        {"attemptId", a.id},
        {"contactId", a.contact_id},
        {"displayName", a.contact_name},
        {"phoneNumber", a.phone},
        {"loop", a.loop},
        {"startedAt", iso8601(a.started_at)},
        {"endedAt", a.ended_at ? json(iso8601(a.ended_at)) : json(nullptr)},
        {"result", a.outcome ? json(to_string(*a.outcome)) : json("calling")},
        {"keyInput", a.key ? json(std::to_string(*a.key)) : json(nullptr)},
        {"reaction", a.reaction ? json(to_string(*a.reaction)) : json(nullptr)},
        {"message", a.message},
    });
  }
  json params = json::object();
  for (const auto& [k, v] : s.parameters) params[k] = v;
  json terminated_by = nullptr;
  if (!s.terminated_by.empty()) {
    terminated_by = json{{"contactId", s.terminated_by}};
    for (const auto& c : s.callflow.contacts)
      if (c.id == s.terminated_by) terminated_by["displayName"] = c.name;
  }
  return json{{"resultId", s.id},
              {"isActive", s.active()},
              {"status", to_string(s.status)},
              {"reason", s.reason},
              {"keyInput", s.key ? json(std::to_string(*s.key)) : json(nullptr)},
              {"terminatedBy", terminated_by},
              {"loopCount", s.loops()},
              {"startedAt", iso8601(s.created_at)},
              {"finishedAt", s.finished_at ? json(iso8601(s.finished_at)) : json(nullptr)},
              {"callflow", pigeon_callflow(s.callflow)},
              {"guidance", pigeon_guidance(s.guidance)},
              {"parameters", params},
              {"history", history}};
}

namespace {

std::string text_of(const json& j) {
  if (j.is_string()) return j.get<std::string>();
  if (j.is_null()) return "";
  return j.dump();
}

std::string first_string(const json& j, std::initializer_list<const char*> keys) {
  for (const char* k : keys) {
    auto it = j.find(k);
    if (it != j.end() && !it->is_null()) return text_of(*it);
  }
  return "";
}

}  // namespace

std::string callflow_from_pigeon(const json& j,
                                 const std::map<std::string, Contact, std::less<>>& known,
                                 CallFlow& out) {
  if (!j.is_object()) return "callflow must be an object";
  out.id = first_string(j, {"callflowId", "id"});
  out.name = first_string(j, {"displayName", "name"});
  auto loop = j.find("loopLimit");
  if (loop == j.end()) loop = j.find("loop_limit");
  if (loop != j.end()) {
    if (!loop->is_number_integer()) return "loopLimit must be an integer";
    out.loop_limit = loop->get<int>();
  }
  auto contacts = j.find("contacts");
  if (contacts == j.end() || !contacts->is_array()) return "callflow.contacts must be a list";
  int n = 0;
  for (const auto& c : *contacts) {
    ++n;
    if (c.is_string()) {
      auto it = known.find(c.get<std::string>());
      if (it == known.end()) return "unknown contact \"" + c.get<std::string>() + "\"";
      out.contacts.push_back(it->second);
    } else if (c.is_object()) {
      std::string id = first_string(c, {"contactId", "id"});
      if (!id.empty() && !c.contains("phoneNumber") && !c.contains("phone") &&
          !c.contains("phones")) {
        auto it = known.find(id);
        if (it == known.end()) return "unknown contact \"" + id + "\"";
        out.contacts.push_back(it->second);
        continue;
      }
      Contact contact{id.empty() ? "inline-" + std::to_string(n) : id,
                      first_string(c, {"displayName", "name"}),
                      first_string(c, {"phoneNumber", "phone"})};
      // Pigeon also writes the number as a list, `"phones": [{"phoneNumber": "..."}]`. A Pigeon
      // contact has one number, so with several the first is called.
      if (auto phones = c.find("phones");
          contact.phone.empty() && phones != c.end() && phones->is_array()) {
        for (const auto& p : *phones) {
          if (!contact.phone.empty()) break;
          if (p.is_object()) contact.phone = first_string(p, {"phoneNumber", "phone"});
          if (p.is_string()) contact.phone = p.get<std::string>();
        }
      }
      if (contact.phone.empty()) return "contact " + std::to_string(n) + " has no phoneNumber";
      if (contact.name.empty()) contact.name = contact.phone;
      out.contacts.push_back(std::move(contact));
    } else {
      return "callflow.contacts entries are contact ids or objects";
    }
  }
  return validate(out);
}

std::string guidance_from_pigeon(const json& j, Guidance& out) {
  if (!j.is_object()) return "guidance must be an object";
  out.id = first_string(j, {"guidanceId", "id"});
  out.name = first_string(j, {"displayName", "name"});
  out.message = first_string(j, {"messageTemplate", "message"});
  auto reactions = j.find("reactions");
  if (reactions == j.end()) reactions = j.find("responses");
  if (reactions == j.end()) return "guidance.reactions is required";
  auto add = [&](const std::string& key_text, const json& r) -> std::string {
    int key = 0;
    if (key_text.size() != 1 || key_text[0] < '1' || key_text[0] > '9')
      return "reaction key must be 1-9, got \"" + key_text + "\"";
    key = key_text[0] - '0';
    std::string type = r.is_string() ? r.get<std::string>() : first_string(r, {"type"});
    auto reaction = reaction_from_string(type);
    if (!reaction)
      return "reaction type must be terminate, continue or leave, got \"" + type + "\"";
    out.responses[key] = KeyResponse{
        *reaction, r.is_object() ? first_string(r, {"messageTemplate", "message"}) : ""};
    return "";
  };
  if (reactions->is_array()) {
    for (const auto& r : *reactions) {
      if (!r.is_object()) return "guidance.reactions entries are objects";
      std::string err = add(first_string(r, {"key", "button"}), r);
      if (!err.empty()) return err;
    }
  } else if (reactions->is_object()) {
    for (const auto& [key, r] : reactions->items()) {
      std::string err = add(key, r);
      if (!err.empty()) return err;
    }
  } else {
    return "guidance.reactions must be a list";
  }
  return validate(out);
}

Parameters parameters_from_json(const json& j) {
  Parameters out;
  if (!j.is_object()) return out;
  for (const auto& [k, v] : j.items()) out[k] = text_of(v);
  return out;
}

std::string new_uuid() {
  static std::mutex mutex;
  static std::mt19937_64 rng{std::random_device{}()};
  std::uint64_t a, b;
  {
    std::lock_guard lock(mutex);
    a = rng();
    b = rng();
  }
  a = (a & 0xffffffffffff0fffULL) | 0x0000000000004000ULL;  // version 4
  b = (b & 0x3fffffffffffffffULL) | 0x8000000000000000ULL;  // variant 10
  char out[37];
  std::snprintf(out, sizeof out, "%08x-%04x-%04x-%04x-%012llx", static_cast<unsigned>(a >> 32),
                static_cast<unsigned>((a >> 16) & 0xffff), static_cast<unsigned>(a & 0xffff),
                static_cast<unsigned>(b >> 48),
                static_cast<unsigned long long>(b & 0xffffffffffffULL));
  return out;
}

}  // namespace callbridge::escalation
