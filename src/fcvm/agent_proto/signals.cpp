#include "fcvm/agent_proto/signals.hpp"

#include <signal.h>

#include <algorithm>
#include <cctype>
#include <string>

#include "fcvm/util/strings.hpp"

namespace fcvm::agent_proto {
namespace {

struct SignalName {
  const char* name;
  int number;
};
constexpr SignalName k_signals[] = {
    {"HUP", SIGHUP},   {"INT", SIGINT},   {"QUIT", SIGQUIT},   {"KILL", SIGKILL}, {"USR1", SIGUSR1},
    {"USR2", SIGUSR2}, {"PIPE", SIGPIPE}, {"ALRM", SIGALRM},   {"TERM", SIGTERM}, {"CONT", SIGCONT},
    {"STOP", SIGSTOP}, {"TSTP", SIGTSTP}, {"WINCH", SIGWINCH},
};

}  // namespace

std::optional<int> signal_number(std::string_view name) {
  if (auto number = parse_int(name, 1, 64)) return static_cast<int>(*number);
  std::string upper(name);
  std::transform(upper.begin(), upper.end(), upper.begin(),
                 [](unsigned char c) { return static_cast<char>(std::toupper(c)); });
  std::string_view bare = upper;
  if (bare.substr(0, 3) == "SIG") bare.remove_prefix(3);
  for (const auto& s : k_signals) {
    if (bare == s.name) return s.number;
  }
  return std::nullopt;
}

}  // namespace fcvm::agent_proto
