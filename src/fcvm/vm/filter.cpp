#include "fcvm/vm/filter.hpp"

#include <fmt/format.h>

#include <algorithm>

#include "fcvm/vm/options.hpp"

namespace fcvm::vm {

Result<VmFilter> parse_vm_filters(const std::vector<std::string>& specs) {
  VmFilter f;
  for (const auto& spec : specs) {
    auto eq = spec.find('=');
    auto key = spec.substr(0, eq);
    auto value = eq == std::string::npos ? std::string() : spec.substr(eq + 1);
    if (eq == std::string::npos || value.empty()) {
      return fail(ErrorCode::kInvalidInput,
                  fmt::format("invalid --filter \"{}\": expected label=KEY[=VALUE], name=TEXT, "
                              "id=PREFIX, status=STATUS or restart-policy=POLICY",
                              spec));
    }
    if (key == "label") {
      auto veq = value.find('=');
      VmFilter::Label label{value.substr(0, veq), std::nullopt};
      if (veq != std::string::npos) label.value = value.substr(veq + 1);
      if (label.key.empty()) {
        return fail(ErrorCode::kInvalidInput,
                    fmt::format("invalid --filter \"{}\": the label has no key", spec));
      }
      f.labels.push_back(std::move(label));
    } else if (key == "name") {
      f.names.push_back(value);
    } else if (key == "id") {
      f.ids.push_back(value);
    } else if (key == "status") {
      auto status = state::parse_status(value);
      if (!status) {
        return fail(ErrorCode::kInvalidInput,
                    fmt::format("invalid --filter \"{}\": unknown status \"{}\" (created, "
                                "starting, running, paused, stopping, restarting, exited)",
                                spec, value));
      }
      f.statuses.push_back(*status);
    } else if (key == "restart-policy") {
      auto policy = parse_restart_policy(value);
      if (!policy || policy->max_retries != 0) {
        return fail(ErrorCode::kInvalidInput,
                    fmt::format("invalid --filter \"{}\": unknown restart policy \"{}\" (no, "
                                "on-failure, always, unless-stopped)",
                                spec, value));
      }
      f.restart_policies.push_back(value);
    } else {
      return fail(ErrorCode::kInvalidInput,
                  fmt::format("invalid --filter \"{}\": unknown key \"{}\" (label, name, id, "
                              "status, restart-policy)",
                              spec, key));
    }
  }
  return f;
}

bool matches(const VmFilter& f, const state::VmRecord& rec) {
  auto any = [](const auto& list, auto pred) {
    return list.empty() || std::any_of(list.begin(), list.end(), pred);
  };
  if (!any(f.names, [&](const std::string& n) { return rec.name.find(n) != std::string::npos; })) {
    return false;
  }
  if (!any(f.ids, [&](const std::string& p) { return rec.id.rfind(p, 0) == 0; })) return false;
  if (!any(f.statuses, [&](state::VmStatus s) { return rec.status == s; })) return false;
  if (f.labels.empty() && f.restart_policies.empty()) return true;
  auto options = options_from_json(rec.options_json);
  if (!options) return false;
  auto policy = to_string(RestartPolicy{options->restart.kind, 0});
  if (!any(f.restart_policies, [&](const std::string& p) { return p == policy; })) return false;
  const auto& labels = options->labels;
  return std::all_of(f.labels.begin(), f.labels.end(), [&](const VmFilter::Label& l) {
    auto it = labels.find(l.key);
    return it != labels.end() && (!l.value || it->second == *l.value);
  });
}

Result<FieldFilter> parse_field_filters(const std::vector<std::string>& specs,
                                        const std::vector<std::string>& keys) {
  FieldFilter f;
  for (const auto& spec : specs) {
    auto eq = spec.find('=');
    auto key = spec.substr(0, eq);
    if (eq == std::string::npos || eq + 1 == spec.size() ||
        std::find(keys.begin(), keys.end(), key) == keys.end()) {
      std::string known;
      for (const auto& k : keys) known += (known.empty() ? "" : ", ") + k + "=";
      return fail(ErrorCode::kInvalidInput,
                  fmt::format("invalid --filter \"{}\": expected one of {}", spec, known));
    }
    f.values[key].push_back(spec.substr(eq + 1));
  }
  return f;
}

bool matches(const FieldFilter& filter,
             const std::function<bool(const std::string&, const std::string&)>& test) {
  return std::all_of(filter.values.begin(), filter.values.end(), [&](const auto& entry) {
    return std::any_of(entry.second.begin(), entry.second.end(),
                       [&](const std::string& value) { return test(entry.first, value); });
  });
}

}  // namespace fcvm::vm
