// The connectors callbridge knows, registered explicitly in one function (bridge/connectors.cc):
// the top-level config sections they read, the typed rule actions they provide, the services
// they run beside the dispatcher, what they add to raw requests (credentials, checks of their
// API's requests), their command-line subcommands and history views, and their schema text.
#pragma once

#include <functional>
#include <iosfwd>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "rules/action.h"
#include "rules/config.h"
#include "rules/host.h"

namespace YAML {
class Node;
}

namespace callbridge::rules {

class ConfigReader;

// A connector's look at every raw `request:` of a rule, for the requests its own API receives.
class RequestInspector {
 public:
  virtual ~RequestInspector() = default;
  // At load, once the request's URL and body are compiled (`request` is its YAML mapping): may
  // add notes or change how placeholders are escaped. True keeps the inspector with the request,
  // so that `adapt` runs before each send.
  virtual bool inspect(RequestSpec& spec, const YAML::Node& request,
                       ConfigReader& reader) const = 0;
  // Just before the request is sent or shown: `request` is sent, `shown` is its redacted copy.
  virtual void adapt(http::Request& /*request*/, http::Request& /*shown*/) const {}
};

// What an auth kind of `request.auth` (`type: NAME` with its own keys) reads and adds.
class AuthReader {
 public:
  AuthReader(const YAML::Node& node, std::string type, ConfigReader& reader, RequestSpec& out);
  const YAML::Node& node() const { return node_; }
  ConfigReader& reader() { return reader_; }
  // The kind's keys (besides `type`); unknown ones are reported.
  void check_keys(std::vector<std::string> keys);
  // A required key's value, a secret; a missing key is reported with the kind's name.
  std::optional<std::string> secret(const char* key);
  // A computed header, always shown as [secret].
  void add_header(std::string name, std::string value);

 private:
  const YAML::Node& node_;
  std::string type_;
  ConfigReader& reader_;
  RequestSpec& out_;
};

// A subcommand a connector adds to `callbridge` (`directory-sync`). Every one takes
// `-c,--config`; the configuration is loaded and checked before `run`.
struct CommandOption {
  std::string name;  // --NAME VALUE
  std::string help;
};
struct CommandContext {
  const Config& config;
  http::Transport& transport;  // the outbound client, set up from the configuration's `http:`
  const std::map<std::string, std::string>& options;  // by name; absent when not given
  std::ostream& out;
  std::ostream& err;
};
struct Command {
  std::string name;
  std::string help;
  std::vector<CommandOption> options;
  // The exit status: 0 success, 1 runtime failure, 2 bad configuration or usage.
  std::function<int(const CommandContext&)> run;
};

// A view of a connector's records that `callbridge history` shows: `--LIST` lists them, `--ITEM
// ID` shows one. They read the key-value store the connector's service writes.
struct HistoryView {
  std::string list_flag;  // `history --chains`
  std::string list_help;
  std::string item_option;  // `history --chain ID`
  std::string item_help;
  std::function<int(KeyValueStore& store, std::size_t limit, std::ostream& out, std::ostream& err)>
      list;
  std::function<int(KeyValueStore& store, const std::string& id, std::ostream& out,
                    std::ostream& err)>
      show;
};

class Registry {
 public:
  // Loads a top-level section (`kintone:`, `escalation:`...); nullptr after reporting errors.
  using SectionLoader =
      std::function<std::shared_ptr<const Section>(const YAML::Node&, ConfigReader&)>;
  // Loads a rule's typed action from the value of its key (`kintone:`, `decide:`...).
  using ActionLoader = std::function<std::shared_ptr<const Action>(const YAML::Node&, ConfigReader&,
                                                                   const std::string& rule_name)>;
  // Builds a running service at `serve` start; nullptr when the config does not need it.
  using ServiceFactory = std::function<std::shared_ptr<Service>(const Config&, Host&)>;

  // Fills the credentials of a raw request's `auth: {type: NAME, ...}`.
  using AuthKind = std::function<void(AuthReader& auth)>;

  void add_section(std::string key, SectionLoader loader);
  void add_action(std::string key, ActionLoader loader);
  void add_service(std::string name, ServiceFactory factory);
  void add_request_inspector(std::shared_ptr<const RequestInspector> inspector);
  void add_auth_kind(std::string type, AuthKind kind);
  void add_command(Command command);
  void add_history_view(HistoryView view);
  // A line of the configuration schema's text for a key path (`kintone.connections`).
  void add_description(std::string path, std::string text);

  struct NamedSection {
    std::string key;
    SectionLoader load;
  };
  struct NamedAction {
    std::string key;
    ActionLoader load;
  };
  struct NamedService {
    std::string name;
    ServiceFactory make;
  };
  const std::vector<NamedSection>& sections() const { return sections_; }
  const std::vector<NamedAction>& actions() const { return actions_; }
  const std::vector<NamedService>& services() const { return services_; }
  const NamedAction* action(std::string_view key) const;
  const std::vector<std::shared_ptr<const RequestInspector>>& request_inspectors() const {
    return inspectors_;
  }
  struct NamedAuthKind {
    std::string type;
    AuthKind load;
  };
  const std::vector<NamedAuthKind>& auth_kinds() const { return auth_kinds_; }
  const std::vector<Command>& commands() const { return commands_; }
  const std::vector<HistoryView>& history_views() const { return history_views_; }
  const std::map<std::string, std::string>& descriptions() const { return descriptions_; }

 private:
  std::vector<NamedSection> sections_;
  std::vector<NamedAction> actions_;
  std::vector<NamedService> services_;
  std::vector<std::shared_ptr<const RequestInspector>> inspectors_;
  std::vector<NamedAuthKind> auth_kinds_;
  std::vector<Command> commands_;
  std::vector<HistoryView> history_views_;
  std::map<std::string, std::string> descriptions_;
};

}  // namespace callbridge::rules
