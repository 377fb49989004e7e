// The fake kintone's records: rendering them as kintone answers, creating and updating them,
// the updateKey index, and selecting them with a query.
#include <algorithm>
#include <atomic>
#include <cctype>
#include <cmath>
#include <limits>
#include <random>

#include "tests/fakes/fake_kintone_server.h"

namespace callbridge::testing::kintone_fake {

std::string random_id() {
  static std::atomic<unsigned> counter{1};
  return "fake" + std::to_string(counter++);
}

std::string random_hex(std::size_t length) {
  static std::mutex mutex;
  static std::mt19937_64 engine{std::random_device{}()};
  static const char* digits = "0123456789abcdef";
  std::lock_guard lock(mutex);
  std::string out;
  for (std::size_t i = 0; i < length; ++i) out += digits[engine() % 16];
  return out;
}

std::string random_uuid() {
  std::string h = random_hex(32);
  return h.substr(0, 8) + "-" + h.substr(8, 4) + "-" + h.substr(12, 4) + "-" + h.substr(16, 4) +
         "-" + h.substr(20);
}

std::string error_body(const KintoneError& e) {
  ojson body;
  body["code"] = e.code;
  body["id"] = random_id();
  body["message"] = e.message;
  if (!e.errors.is_null()) body["errors"] = e.errors;
  return body.dump();
}

Answer answer(const KintoneError& e) {
  return {e.status, error_body(e), {}};
}

KintoneError invalid_input(ojson errors) {
  return {400, "CB_VA01", "入力内容が正しくありません。", std::move(errors)};
}

std::string decode_base64(const std::string& in) {
  static const std::string chars =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  int value = 0, bits = -8;
  for (char c : in) {
    auto pos = chars.find(c);
    if (pos == std::string::npos) break;
    value = (value << 6) + static_cast<int>(pos);
    bits += 6;
    if (bits >= 0) {
      out += static_cast<char>((value >> bits) & 0xFF);
      bits -= 8;
    }
  }
  return out;
}

std::string percent_decode(std::string_view in) {
  std::string out;
  for (std::size_t i = 0; i < in.size(); ++i) {
    if (in[i] == '+') {
      out += ' ';
    } else if (in[i] == '%' && i + 2 < in.size() &&
               std::isxdigit(static_cast<unsigned char>(in[i + 1])) &&
               std::isxdigit(static_cast<unsigned char>(in[i + 2]))) {
      out += static_cast<char>(std::stoi(std::string(in.substr(i + 1, 2)), nullptr, 16));
      i += 2;
    } else {
      out += in[i];
    }
  }
  return out;
}

std::string percent_encode(std::string_view in) {
  static const char* digits = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : in) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += digits[c >> 4];
      out += digits[c & 15];
    }
  }
  return out;
}

// application/x-www-form-urlencoded, as OAuth token requests send it.
std::map<std::string, std::string> parse_form(std::string_view body) {
  std::map<std::string, std::string> out;
  std::size_t start = 0;
  while (start <= body.size()) {
    std::size_t amp = body.find('&', start);
    std::string_view pair =
        body.substr(start, amp == std::string_view::npos ? std::string_view::npos : amp - start);
    if (!pair.empty()) {
      std::size_t eq = pair.find('=');
      out.emplace(percent_decode(pair.substr(0, eq)),
                  eq == std::string_view::npos ? "" : percent_decode(pair.substr(eq + 1)));
    }
    if (amp == std::string_view::npos) break;
    start = amp + 1;
  }
  return out;
}

std::optional<int> as_int(const nlohmann::json& v) {
  if (v.is_number_integer()) return v.get<int>();
  if (v.is_string()) {
    const std::string& s = v.get_ref<const std::string&>();
    if (!s.empty() && s.size() < 10 && s.find_first_not_of("0123456789") == std::string::npos)
      return std::stoi(s);
  }
  return std::nullopt;
}

std::string as_text(const nlohmann::json& v) {
  if (v.is_string()) return v.get<std::string>();
  if (v.is_null()) return "";
  return v.dump();
}

// Compact JSON exactly as ordered_json::dump() writes it, without a serializer per call:
// list answers of hundreds of records stay cheap in sanitizer builds.
void append_json_string(std::string& out, std::string_view s) {
  static const char* hex = "0123456789abcdef";
  out += '"';
  for (char ch : s) {
    auto c = static_cast<unsigned char>(ch);
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\b':
        out += "\\b";
        break;
      case '\f':
        out += "\\f";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (c < 0x20) {
          out += "\\u00";
          out += hex[c >> 4];
          out += hex[c & 15];
        } else {
          out += ch;
        }
    }
  }
  out += '"';
}

void append_json(std::string& out, const ojson& v) {
  if (v.is_string()) {
    append_json_string(out, v.get_ref<const std::string&>());
  } else if (v.is_object()) {
    out += '{';
    bool first = true;
    for (const auto& [key, value] : v.items()) {
      if (!first) out += ',';
      first = false;
      append_json_string(out, key);
      out += ':';
      append_json(out, value);
    }
    out += '}';
  } else if (v.is_array()) {
    out += '[';
    for (std::size_t i = 0; i < v.size(); ++i) {
      if (i) out += ',';
      append_json(out, v[i]);
    }
    out += ']';
  } else {
    out += v.dump();
  }
}

}  // namespace callbridge::testing::kintone_fake

namespace callbridge::testing {

ojson FakeKintone::Impl::render(const App& app, const Record& r,
                                const std::vector<std::string>& fields) const {
  ojson out = ojson::object();
  auto add = [&](const std::string& code) {
    if (code == app.record_number_field)
      out[code] = {{"type", "RECORD_NUMBER"}, {"value", r.id}};
    else if (code == "$id")
      out[code] = {{"type", "__ID__"}, {"value", r.id}};
    else if (code == "$revision")
      out[code] = {{"type", "__REVISION__"}, {"value", std::to_string(r.revision)}};
    else if (code == kCreatedTime)
      out[code] = {{"type", "CREATED_TIME"}, {"value", format_time(r.created)}};
    else if (code == kUpdatedTime)
      out[code] = {{"type", "UPDATED_TIME"}, {"value", format_time(r.updated)}};
    else if (r.fields.contains(code))
      out[code] = r.fields[code];
  };
  if (!fields.empty()) {
    for (const auto& f : fields) add(f);
    return out;
  }
  add(app.record_number_field);
  for (const auto& [code, value] : r.fields.items()) out[code] = value;
  add(kCreatedTime);
  add(kUpdatedTime);
  add("$revision");
  add("$id");
  return out;
}

void FakeKintone::Impl::render_json(const App& app, const Record& r,
                                    const std::vector<std::string>& fields,
                                    std::string& out) const {
  auto system = [&](const std::string& code) {
    return code == app.record_number_field || code == "$id" || code == "$revision";
  };
  bool collides = false;  // a user field named like a system one: rare, leave it to render()
  for (const auto& [code, value] : r.fields.items()) collides = collides || system(code);
  if (collides) {
    out += render(app, r, fields).dump();
    return;
  }
  auto member = [&](const std::string& code, const char* type, const std::string& value) {
    append_json_string(out, code);
    out += R"(:{"type":")";
    out += type;
    out += R"(","value":)";
    append_json_string(out, value);
    out += '}';
  };
  auto add = [&](const std::string& code) {
    if (code == app.record_number_field)
      member(code, "RECORD_NUMBER", r.id);
    else if (code == "$id")
      member(code, "__ID__", r.id);
    else if (code == "$revision")
      member(code, "__REVISION__", std::to_string(r.revision));
    else if (code == kCreatedTime)
      member(code, "CREATED_TIME", format_time(r.created));
    else if (code == kUpdatedTime)
      member(code, "UPDATED_TIME", format_time(r.updated));
    else if (auto it = r.fields.find(code); it != r.fields.end()) {
      append_json_string(out, code);
      out += ':';
      append_json(out, *it);
    } else
      return false;
    return true;
  };
  out += '{';
  if (!fields.empty()) {
    std::set<std::string> done;
    bool first = true;
    for (const auto& f : fields) {
      if (!done.insert(f).second) continue;
      std::size_t mark = out.size();
      if (!first) out += ',';
      if (add(f))
        first = false;
      else
        out.resize(mark);
    }
    out += '}';
    return;
  }
  add(app.record_number_field);
  if (!r.fields_json) {
    std::string text;
    for (const auto& [code, value] : r.fields.items()) {
      text += ',';
      append_json_string(text, code);
      text += ':';
      append_json(text, value);
    }
    r.fields_json = std::move(text);
  }
  out += *r.fields_json;
  for (const std::string& code :
       {kCreatedTime, kUpdatedTime, std::string("$revision"), std::string("$id")}) {
    out += ',';
    add(code);
  }
  out += '}';
}

std::string FakeKintone::Impl::render_list(const App& app, const std::vector<std::size_t>& rows,
                                           std::size_t from, std::size_t to,
                                           const std::vector<std::string>& fields) const {
  std::string out = R"({"records":[)";
  for (std::size_t i = from; i < to && i < rows.size(); ++i) {
    if (i != from) out += ',';
    render_json(app, app.records[rows[i]], fields, out);
  }
  out += ']';
  return out;
}

ojson FakeKintone::Impl::normalize_fields(const nlohmann::json& record) {
  ojson fields = ojson::object();
  if (!record.is_object()) return fields;
  for (auto it = record.begin(); it != record.end(); ++it) {
    const std::string& code = it.key();
    if (code == kCreatedTime || code == kUpdatedTime) continue;  // system fields
    const nlohmann::json& value = it.value();
    auto inner = value.is_object() ? value.find("value") : value.end();
    const nlohmann::json& v = inner != value.end() ? *inner : value;
    ojson field = ojson::object();
    field["type"] = v.is_array() ? "CHECK_BOX" : "SINGLE_LINE_TEXT";
    if (v.is_string())
      field["value"] = v.get_ref<const std::string&>();
    else if (v.is_array())
      field["value"] = v;
    else
      field["value"] = as_text(v);
    fields[code] = std::move(field);
  }
  return fields;
}

std::optional<std::size_t> FakeKintone::Impl::find(const App& app, const std::string& id) const {
  if (id.empty() || id.size() > 18 || id.find_first_not_of("0123456789") != std::string::npos)
    return std::nullopt;
  long long n = std::stoll(id);
  auto it = std::lower_bound(app.records.begin(), app.records.end(), n,
                             [](const Record& r, long long v) { return r.number < v; });
  if (it == app.records.end() || it->id != id) return std::nullopt;
  return static_cast<std::size_t>(it - app.records.begin());
}

std::string FakeKintone::Impl::key_text(const App& app, const Record& r, const std::string& field) {
  return field_text(r, field, kind_of(field, app.record_number_field));
}

void FakeKintone::Impl::unindex(App& app, std::size_t pos) {
  for (auto& [field, values] : app.keys) {
    auto it = values.find(key_text(app, app.records[pos], field));
    if (it == values.end()) continue;
    it->second.erase(pos);
    if (it->second.empty()) values.erase(it);
  }
}

void FakeKintone::Impl::index(App& app, std::size_t pos) {
  for (auto& [field, values] : app.keys) values[key_text(app, app.records[pos], field)].insert(pos);
}

std::optional<std::size_t> FakeKintone::Impl::find_by_key(App& app, const std::string& field,
                                                          const std::string& value) {
  if (kind_of(field, app.record_number_field) == FieldKind::id) return find(app, value);
  auto built = app.keys.find(field);
  if (built == app.keys.end()) {
    built = app.keys.emplace(field, decltype(App::keys)::mapped_type{}).first;
    for (std::size_t i = 0; i < app.records.size(); ++i)
      built->second[key_text(app, app.records[i], field)].insert(i);
  }
  auto it = built->second.find(value);
  if (it == built->second.end() || it->second.empty()) return std::nullopt;
  return *it->second.rbegin();
}

std::size_t FakeKintone::Impl::create(App& app, const nlohmann::json& record) {
  Record r;
  r.number = app.next_id++;
  r.id = std::to_string(r.number);
  r.created = r.updated = stamp();
  if (record.is_object()) {
    // kintone lets a new record carry its creation and update times (data migration).
    auto given = [&](const std::string& code, long long& into) {
      if (!record.contains(code)) return;
      const auto& v = record[code];
      auto t = parse_time(as_text(v.is_object() && v.contains("value") ? v["value"] : v));
      if (t) into = t->seconds - t->seconds % 60;
    };
    given(kCreatedTime, r.created);
    given(kUpdatedTime, r.updated);
  }
  r.fields = normalize_fields(record.is_object() ? record : nlohmann::json::object());
  app.records.push_back(std::move(r));
  index(app, app.records.size() - 1);
  return app.records.size() - 1;
}

void FakeKintone::Impl::update(App& app, std::size_t pos, const nlohmann::json& record) {
  unindex(app, pos);
  Record& r = app.records[pos];
  ojson changes = normalize_fields(record.is_object() ? record : nlohmann::json::object());
  for (const auto& [code, value] : changes.items()) r.fields[code] = value;
  r.fields_json.reset();
  ++r.revision;
  r.updated = stamp();
  index(app, pos);
}

std::vector<std::size_t> FakeKintone::Impl::select(const App& app, const Query& q, std::size_t want,
                                                   std::size_t* total) const {
  // Conditions on $id joined by `and` narrow the range of positions to look at.
  long long lo = std::numeric_limits<long long>::min(), hi = std::numeric_limits<long long>::max();
  bool captured = true;  // every condition is one of those bounds
  std::vector<const Expr*> conjuncts;
  if (q.where.type == Expr::leaf) conjuncts.push_back(&q.where);
  if (q.where.type == Expr::all)
    for (const auto& k : q.where.kids) conjuncts.push_back(&k);
  if (q.where.type == Expr::any) captured = false;
  for (const Expr* e : conjuncts) {
    const Condition& c = e->condition;
    bool bound = e->type == Expr::leaf && c.kind == FieldKind::id && c.number &&
                 std::fabs(*c.number) < 1e15 && *c.number == std::floor(*c.number) &&
                 (c.op == "=" || c.op == "<" || c.op == ">" || c.op == "<=" || c.op == ">=");
    if (!bound) {
      captured = false;
      continue;
    }
    long long n = static_cast<long long>(*c.number);
    if (c.op == "=" || c.op == ">=") lo = std::max(lo, n);
    if (c.op == "=" || c.op == "<=") hi = std::min(hi, n);
    if (c.op == ">") lo = std::max(lo, n + 1);
    if (c.op == "<") hi = std::min(hi, n - 1);
  }
  auto first = std::lower_bound(app.records.begin(), app.records.end(), lo,
                                [](const Record& r, long long v) { return r.number < v; });
  auto last = std::upper_bound(first, app.records.end(), hi,
                               [](long long v, const Record& r) { return v < r.number; });
  std::size_t begin = static_cast<std::size_t>(first - app.records.begin());
  std::size_t end = std::max(begin, static_cast<std::size_t>(last - app.records.begin()));
  auto selected = [&](std::size_t i) { return captured || matches(q.where, app.records[i]); };

  std::vector<std::pair<std::string, bool>> order = q.order;
  if (order.empty()) order.emplace_back("$id", true);  // kintone's default order
  std::vector<std::size_t> out;
  if (order.size() == 1 && kind_of(order[0].first, app.record_number_field) == FieldKind::id) {
    bool desc = order[0].second;
    std::size_t count = 0;
    if (captured) {
      count = end - begin;
      for (std::size_t k = 0; k < count && k < want; ++k)
        out.push_back(desc ? end - 1 - k : begin + k);
    } else {
      for (std::size_t k = 0; k < end - begin; ++k) {
        std::size_t i = desc ? end - 1 - k : begin + k;
        if (!selected(i)) continue;
        ++count;
        if (out.size() < want) out.push_back(i);
        if (!total && out.size() >= want) break;
      }
    }
    if (total) *total = count;
    return out;
  }
  std::vector<std::size_t> found;
  for (std::size_t i = begin; i < end; ++i)
    if (selected(i)) found.push_back(i);
  if (total) *total = found.size();
  std::vector<std::vector<SortKey>> keys(found.size());
  std::vector<FieldKind> kinds;
  for (const auto& [field, desc] : order) kinds.push_back(kind_of(field, app.record_number_field));
  for (std::size_t m = 0; m < found.size(); ++m)
    for (std::size_t k = 0; k < order.size(); ++k)
      keys[m].push_back(sort_key(app.records[found[m]], order[k].first, kinds[k]));
  std::vector<std::size_t> rank(found.size());
  for (std::size_t m = 0; m < rank.size(); ++m) rank[m] = m;
  auto before = [&](std::size_t a, std::size_t b) {
    for (std::size_t k = 0; k < order.size(); ++k) {
      int c = compare_keys(keys[a][k], keys[b][k]);
      if (c != 0) return order[k].second ? c > 0 : c < 0;
    }
    return a < b;  // ties keep ID order, like a stable sort
  };
  std::size_t n = std::min(want, rank.size());
  std::partial_sort(rank.begin(), rank.begin() + static_cast<std::ptrdiff_t>(n), rank.end(),
                    before);
  for (std::size_t m = 0; m < n; ++m) out.push_back(found[rank[m]]);
  return out;
}

std::optional<Query> FakeKintone::Impl::parse_query(const App& app, const std::string& text,
                                                    QueryError& error) const {
  return kintone_fake::parse_query(text, app.record_number_field, now(), error);
}

KintoneError FakeKintone::Impl::query_error(const QueryError& e) {
  if (e.code == "GAIA_IQ11")
    return {400, e.code, "クエリ記法が間違っています。" + e.detail, nullptr};
  return {400, e.code, e.detail, nullptr};
}

}  // namespace callbridge::testing
