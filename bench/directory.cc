// Customer directory lookup per event: the directory holds N customers (as the sync fills it
// from kintone) and each inbound event asks for its caller, written as PBXs write numbers.
#include "connectors/kintone/directory.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

using Clock = std::chrono::steady_clock;

namespace {

// 03-XXXX-XXXX style numbers, one per customer.
std::string national(int i) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "03-%04d-%04d", (i / 10000) % 10000, i % 10000);
  return buf;
}

// The same number as a PBX might send it.
std::string as_sent(int i, int style) {
  std::string n = national(i);
  std::string digits;
  for (char c : n)
    if (c != '-') digits += c;
  switch (style) {
    case 0:
      return digits;  // 0312345678
    case 1:
      return "+81" + digits.substr(1);  // +81312345678
    case 2:
      return "+81-3-" + n.substr(3);  // +81-3-1234-5678
    default:
      return n;  // 03-1234-5678
  }
}

double percentile(std::vector<double>& v, double p) {
  std::size_t i =
      std::min(v.size() - 1, static_cast<std::size_t>(p / 100.0 * static_cast<double>(v.size())));
  std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(i), v.end());
  return v[i];
}

}  // namespace

int main(int argc, char** argv) {
  int customers = argc > 1 ? std::atoi(argv[1]) : 100000;
  int lookups = argc > 2 ? std::atoi(argv[2]) : 1000000;
  callbridge::kintone::Directory directory;
  auto load_start = Clock::now();
  for (int i = 0; i < customers; ++i) {
    callbridge::kintone::Customer c;
    c.id = std::to_string(i + 1);
    c.revision = "1";
    c.name = "顧客" + std::to_string(i);
    c.company = "株式会社" + std::to_string(i % 997);
    c.phones = {national(i)};
    directory.upsert(std::move(c));
  }
  double load_s = std::chrono::duration<double>(Clock::now() - load_start).count();

  std::mt19937 rng(42);
  std::uniform_int_distribution<int> pick(0, customers * 10 / 9);  // about 10 % unknown callers
  std::vector<std::string> tels(static_cast<std::size_t>(lookups));
  for (int i = 0; i < lookups; ++i) tels[static_cast<std::size_t>(i)] = as_sent(pick(rng), i % 4);

  std::vector<double> ns;
  ns.reserve(tels.size());
  std::size_t found = 0;
  auto start = Clock::now();
  for (const auto& tel : tels) {
    auto t0 = Clock::now();
    auto customer = directory.lookup(tel);
    auto t1 = Clock::now();
    found += customer.has_value();
    ns.push_back(std::chrono::duration<double, std::nano>(t1 - t0).count());
  }
  double total_s = std::chrono::duration<double>(Clock::now() - start).count();
  std::printf("directory: %d customers loaded in %.2f s (%zu phone keys)\n", customers, load_s,
              directory.phone_keys());
  std::printf(
      "lookup per event (%d lookups, %zu found, numbers in 4 notations): mean %.2f us  p50 %.2f "
      "us  p99 %.2f us  p99.9 %.2f us\n",
      lookups, found, total_s * 1e6 / lookups, percentile(ns, 50) / 1000, percentile(ns, 99) / 1000,
      percentile(ns, 99.9) / 1000);
  return 0;
}
