#pragma once
// Signal names as the protocol spells them (docs/agent-protocol.md, `signal`): shared by the host,
// which checks what a user typed, and the agent, which delivers it.
#include <optional>
#include <string_view>

namespace fcvm::agent_proto {

// "TERM", "SIGTERM", "term" or a number (1..64) -> the signal number; nullopt for anything else.
std::optional<int> signal_number(std::string_view name);

}  // namespace fcvm::agent_proto
