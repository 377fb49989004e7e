#include "bridge/cli.h"
#include "bridge/connectors.h"

int main(int argc, char** argv) {
  return callbridge::run_cli(argc, argv, callbridge::bridge::connector_registry());
}
