#include "bridge/cli.h"

int main(int argc, char** argv) {
  return callbridge::run_cli(argc, argv);
}
