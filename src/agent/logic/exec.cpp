#include "agent/logic/exec.hpp"

#include <signal.h>

#include <algorithm>
#include <cctype>

#include "fcvm/util/strings.hpp"

namespace fcvm::agent {
namespace {

std::vector<std::string_view> nul_fields(std::string_view text) {
  auto fields = split(text, '\0');
  if (!fields.empty() && fields.back().empty()) fields.pop_back();  // the final NUL
  return fields;
}

}  // namespace

std::vector<std::string> in_vm_env(const agent_proto::Exec& exec) {
  auto env = exec.env;
  bool has_term = std::any_of(env.begin(), env.end(),
                              [](const std::string& kv) { return kv.rfind("TERM=", 0) == 0; });
  if (exec.tty && !has_term) env.insert(env.begin(), "TERM=xterm");
  return env;
}

bool environ_has(std::string_view environ, std::string_view entry) {
  auto fields = nul_fields(environ);
  return std::find(fields.begin(), fields.end(), entry) != fields.end();
}

std::optional<std::string> cmdline_option(std::string_view cmdline, std::string_view option) {
  auto args = nul_fields(cmdline);
  for (size_t i = 0; i < args.size(); ++i) {
    if (args[i] == option && i + 1 < args.size()) return std::string(args[i + 1]);
    if (args[i].size() > option.size() && args[i].substr(0, option.size()) == option &&
        args[i][option.size()] == '=') {
      return std::string(args[i].substr(option.size() + 1));
    }
  }
  return std::nullopt;
}

std::optional<pid_t> stat_parent(std::string_view stat) {
  auto close = stat.rfind(')');
  if (close == std::string_view::npos) return std::nullopt;
  auto fields = split(trim(stat.substr(close + 1)), ' ');
  // fields[0] is the state, fields[1] the parent pid.
  if (fields.size() < 2) return std::nullopt;
  auto ppid = parse_int(fields[1], 0, INT32_MAX);
  if (!ppid) return std::nullopt;
  return static_cast<pid_t>(*ppid);
}

std::vector<pid_t> process_tree(pid_t root, const std::vector<std::pair<pid_t, pid_t>>& parents) {
  std::vector<pid_t> tree = {root};
  // Breadth first; a pid is taken once, so a cycle (pids reused during the scan) cannot loop.
  for (size_t i = 0; i < tree.size(); ++i) {
    for (const auto& [pid, parent] : parents) {
      if (parent == tree[i] && std::find(tree.begin(), tree.end(), pid) == tree.end()) {
        tree.push_back(pid);
      }
    }
  }
  return tree;
}

}  // namespace fcvm::agent
