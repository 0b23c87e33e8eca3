#include "fcvm/vm/restart.hpp"

#include <fmt/format.h>

#include <algorithm>

#include "fcvm/util/strings.hpp"

namespace fcvm::vm {

Result<RestartPolicy> parse_restart_policy(std::string_view text) {
  auto bad = [&](std::string_view why) {
    return fail(ErrorCode::kInvalidInput, fmt::format("invalid --restart \"{}\": {}", text, why));
  };
  if (text == "no") return RestartPolicy{};
  if (text == "always") return RestartPolicy{RestartPolicy::Kind::kAlways, 0};
  if (text == "unless-stopped") return RestartPolicy{RestartPolicy::Kind::kUnlessStopped, 0};
  constexpr std::string_view k_on_failure = "on-failure";
  if (text.substr(0, k_on_failure.size()) == k_on_failure) {
    auto rest = text.substr(k_on_failure.size());
    if (rest.empty()) return RestartPolicy{RestartPolicy::Kind::kOnFailure, 0};
    if (rest[0] == ':') {
      auto n = parse_int(rest.substr(1), 1, 1000000);
      if (n) return RestartPolicy{RestartPolicy::Kind::kOnFailure, static_cast<int>(*n)};
      return bad("the retry count must be a whole number >= 1");
    }
  }
  return bad("expected no, on-failure[:N], always or unless-stopped");
}

std::string to_string(const RestartPolicy& policy) {
  switch (policy.kind) {
    case RestartPolicy::Kind::kNo:
      return "no";
    case RestartPolicy::Kind::kOnFailure:
      return policy.max_retries > 0 ? fmt::format("on-failure:{}", policy.max_retries)
                                    : std::string("on-failure");
    case RestartPolicy::Kind::kAlways:
      return "always";
    case RestartPolicy::Kind::kUnlessStopped:
      return "unless-stopped";
  }
  return "no";
}

bool restart_due(const RestartPolicy& policy, const RunOutcome& outcome, int restarts) {
  if (outcome.stop_requested) return false;
  switch (policy.kind) {
    case RestartPolicy::Kind::kNo:
      return false;
    case RestartPolicy::Kind::kOnFailure: {
      bool failed = !outcome.exit_code || *outcome.exit_code != 0;
      return failed && (policy.max_retries == 0 || restarts < policy.max_retries);
    }
    case RestartPolicy::Kind::kAlways:
    case RestartPolicy::Kind::kUnlessStopped:
      return true;
  }
  return false;
}

std::chrono::milliseconds restart_delay(int quick_failures) {
  std::chrono::milliseconds delay{100};
  for (int i = 0; i < quick_failures && delay < k_restart_delay_max; ++i) delay *= 2;
  return std::min<std::chrono::milliseconds>(delay, k_restart_delay_max);
}

}  // namespace fcvm::vm
