#pragma once
// Reading a VM's container log (or its serial console) for every front end: `fcvm logs` and the
// HTTP API's logs stream.
#include <cstddef>
#include <functional>
#include <optional>
#include <string>

#include "fcvm/state/vm_store.hpp"
#include "fcvm/util/result.hpp"

namespace fcvm::vm {

struct LogQuery {
  std::optional<size_t> tail{};  // only the last N lines of what is there (none: all)
  bool follow = false;           // then new lines until the VM ends
  bool console = false;          // the serial console instead of the container's output
};

// Parses --tail / ?tail=: a number or "all" (none). kInvalidInput names the value.
Result<std::optional<size_t>> parse_tail(const std::string& text, const std::string& what);

// Each complete line (without its newline) to `line`; a line of the container log is a
// container_log.hpp record. Returns when the lines are read (with follow: when the VM is no longer
// running and its last output is read), or as soon as `line` returns false. With follow,
// `idle` is called about every 100 ms while nothing is new; returning false ends the reading
// (the reader went away).
Result<> read_logs(state::VmStore& store, const state::VmRecord& rec, const LogQuery& query,
                   const std::function<bool(const std::string&)>& line,
                   const std::function<bool()>& idle = {});

}  // namespace fcvm::vm
