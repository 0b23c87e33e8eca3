#pragma once
// Pure functions behind exec sessions: signal names, the environment of an exec in the guest OS,
// and parsers of the /proc records the agent reads to find the process a `podman exec` started.
#include <sys/types.h>

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "fcvm/agent_proto/messages.hpp"
#include "fcvm/agent_proto/signals.hpp"

namespace fcvm::agent {

// The environment variable that marks the conmon of one container exec session. podman hands its
// LC_* variables (podman 4; all of them in podman 5) to conmon, and nothing of its own
// environment to the container's process, so the mark finds conmon without showing up in the
// user's program.
inline constexpr const char* k_exec_mark_variable = "LC_FCVM_EXEC";

using agent_proto::signal_number;  // fcvm/agent_proto/signals.hpp

// The extra environment of an exec in the guest OS: the host's env, and TERM=xterm on a terminal
// unless the host chose a TERM (podman exec -t does the same for containers).
std::vector<std::string> in_vm_env(const agent_proto::Exec& exec);

// True when a NUL-separated environment (/proc/PID/environ) holds exactly this "K=V" entry.
bool environ_has(std::string_view environ, std::string_view entry);

// The value of an option in a NUL-separated command line (/proc/PID/cmdline), given as
// "OPTION VALUE" or "OPTION=VALUE"; the first occurrence.
std::optional<std::string> cmdline_option(std::string_view cmdline, std::string_view option);

// The parent pid in /proc/PID/stat ("pid (comm) state ppid ..."; comm may contain spaces and
// parentheses, so the fields are counted from the last ')').
std::optional<pid_t> stat_parent(std::string_view stat);

// A process and its descendants (parents before children), given every process's (pid, parent).
std::vector<pid_t> process_tree(pid_t root, const std::vector<std::pair<pid_t, pid_t>>& parents);

}  // namespace fcvm::agent
