#pragma once
// Restart policies (`run --restart`): what the monitor does when a VM's container has ended.
#include <chrono>
#include <optional>
#include <string>
#include <string_view>

#include "fcvm/util/result.hpp"

namespace fcvm::vm {

struct RestartPolicy {
  enum class Kind { kNo, kOnFailure, kAlways, kUnlessStopped };
  Kind kind = Kind::kNo;
  int max_retries = 0;  // on-failure:N (0: no limit)

  bool operator==(const RestartPolicy&) const = default;
};

// "no" | "on-failure[:N]" (N >= 1) | "always" | "unless-stopped"; kInvalidInput names the value.
Result<RestartPolicy> parse_restart_policy(std::string_view text);
std::string to_string(const RestartPolicy& policy);

// How one run of the VM ended, as the monitor saw it.
struct RunOutcome {
  std::optional<int> exit_code{};  // the container's (none: the VM failed or was killed)
  bool stop_requested = false;     // fcvm stop / rm -f / a signal to the monitor
  std::chrono::milliseconds ran{0};
};

// Whether the VM is started again, after `restarts` restarts since it was last started by hand.
// A stop asked for never restarts; on-failure restarts on a non-zero exit code or a failure.
bool restart_due(const RestartPolicy& policy, const RunOutcome& outcome, int restarts);

// The wait before a restart: 100 ms doubled for each quick failure in a row (a run shorter than
// k_restart_reset), at most k_restart_delay_max.
inline constexpr std::chrono::seconds k_restart_reset{10};
inline constexpr std::chrono::seconds k_restart_delay_max{30};
std::chrono::milliseconds restart_delay(int quick_failures);

}  // namespace fcvm::vm
