#pragma once
// `ls --filter`: which VMs a list shows, as podman reads its filters. Filters of one key match
// if any of them does (labels: if all of them do); different keys must all match.
//   label=KEY       the VM has the label
//   label=KEY=VALUE the label has this value
//   name=TEXT       the name contains TEXT
//   id=PREFIX       the id starts with PREFIX
//   status=STATUS   created | starting | running | paused | stopping | restarting | exited
//   restart-policy=POLICY  no | on-failure | always | unless-stopped
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "fcvm/state/vm_store.hpp"
#include "fcvm/util/result.hpp"

namespace fcvm::vm {

struct VmFilter {
  struct Label {
    std::string key;
    std::optional<std::string> value;
  };
  std::vector<Label> labels{};
  std::vector<std::string> names{};
  std::vector<std::string> ids{};
  std::vector<state::VmStatus> statuses{};
  std::vector<std::string> restart_policies{};  // "on-failure" matches any on-failure[:N]
  bool empty() const {
    return labels.empty() && names.empty() && ids.empty() && statuses.empty() &&
           restart_policies.empty();
  }
};

// kInvalidInput naming the filter for anything else.
Result<VmFilter> parse_vm_filters(const std::vector<std::string>& specs);
bool matches(const VmFilter& filter, const state::VmRecord& rec);

// `snapshot ls --filter` and `images --filter`: KEY=VALUE with KEY one of `keys`; filters of
// one key match if any of them does, different keys must all match. kInvalidInput names the
// filter and the keys known.
struct FieldFilter {
  std::map<std::string, std::vector<std::string>> values{};  // key -> values
};
Result<FieldFilter> parse_field_filters(const std::vector<std::string>& specs,
                                        const std::vector<std::string>& keys);
// test(key, value): whether the listed object matches that one filter.
bool matches(const FieldFilter& filter,
             const std::function<bool(const std::string&, const std::string&)>& test);

}  // namespace fcvm::vm
