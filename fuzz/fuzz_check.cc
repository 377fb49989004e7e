#include <cstdio>
#include <cstdlib>

#include "fuzz/fuzz_input.h"

namespace callbridge::fuzz {

void check(bool condition, const char* what) {
  if (condition) return;
  std::fprintf(stderr, "fuzz invariant broken: %s\n", what);
  std::abort();
}

}  // namespace callbridge::fuzz
