#pragma once
// VM events: the state changes of every VM, as `fcvm events` shows them.
//
// Each event is published twice by whoever causes it (the monitor for most, the command for
// `created` and `removed`):
//   - to the subscribers on the VM's control socket (control::Subscribe), live;
//   - to the host-wide journal DATA/events.log: one JSON object a line, appended with a single
//     O_APPEND write (lines from concurrent writers never interleave), rotated to events.log.1
//     past k_journal_max_bytes. `fcvm events` reads it from --since and follows it with inotify,
//     so it sees VMs started after it began, and the past, without connecting to any monitor.
#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "fcvm/util/result.hpp"
#include "fcvm/util/unique_fd.hpp"

namespace fcvm::vm {

enum class EventType {
  kCreated,          // the record exists (run, clone)
  kStarting,         // a monitor started booting or restoring it
  kRunning,          // its container runs
  kReady,            // its readiness gate passed (the container runs, without a gate)
  kExecStarted,      // detail: the command
  kExecExited,       // exit_code
  kStopping,         // a stop began (request, signal, the attached client left, a failure)
  kExited,           // exit_code, or detail: the error
  kRemoved,          // the record and directory are gone
  kSnapshotCreated,  // detail: the snapshot's name
  kCloneStarted,     // a clone was restored; detail: the snapshot's name
  kSignalled,        // fcvm kill sent its container a signal; detail: the signal
  kRenamed,          // detail: the old name (vm_name is the new one)
  kPaused,           // fcvm pause
  kUnpaused,         // fcvm unpause
  kRestarting,       // its restart policy starts it again; detail: the policy and the delay
  kExpired,          // its time-to-live ended: it is stopped
  kBooted,           // held for its client (containerd's Create): the guest is up, no container
};

std::string_view event_type_name(EventType type);
std::optional<EventType> event_type_from_name(std::string_view name);

struct Event {
  int64_t time_ns = 0;  // wall clock (CLOCK_REALTIME) when it happened
  EventType type = EventType::kCreated;
  std::string vm_id;
  std::string vm_name;
  std::optional<int> exit_code{};
  std::string detail{};
};

// An event of now.
Event make_event(EventType type, std::string vm_id, std::string vm_name, std::string detail = {},
                 std::optional<int> exit_code = std::nullopt);

nlohmann::json to_json(const Event& e);
Result<Event> event_from_json(const nlohmann::json& j);

inline constexpr int64_t k_journal_max_bytes = 8 << 20;

// A filter over events: vm=NAME (a name, an id or an id prefix) and event=TYPE; one of each key
// given must match.
struct EventFilter {
  std::vector<std::string> vms;  // a name, an id or an id prefix
  std::vector<EventType> types;
  bool match(const Event& e) const;
};
// "vm=NAME" / "event=TYPE" specs; kInvalidInput names the spec and `what` (e.g. "--filter").
Result<EventFilter> parse_event_filters(const std::vector<std::string>& specs,
                                        const std::string& what);
// TIME: RFC 3339 (2026-12-03T10:00:00Z, seconds optional), unix seconds, or a duration before
// now (90s, 10m, 2h, 1d); unix nanoseconds. kInvalidInput names `what` and the text.
Result<int64_t> parse_event_time(const std::string& what, const std::string& text);
int64_t now_ns();
// 2026-12-03T10:00:00.000000000Z
std::string rfc3339(int64_t unix_ns);

// The journal file of a data directory.
std::string journal_path(const std::string& data_dir);

// Appends one event (best effort: a journal that cannot be written is logged, never fatal).
void journal_append(const std::string& path, const Event& e);

// Events with time_ns >= since_ns, oldest first, from the rotated file and the current one.
// Lines that do not parse are skipped.
Result<std::vector<Event>> journal_read(const std::string& path, int64_t since_ns);

// Follows a journal as it grows: next() returns the events appended since the last call (and
// what a rotation moved away unread), waiting at most `timeout` for one. fd() is an inotify
// descriptor for callers that poll several things.
class JournalFollower {
 public:
  // Starts at the journal's current end, or with from_beginning at the start of what is kept
  // (the rotated file first): then the first next() returns the past, and nothing falls between
  // the past and what follows.
  static Result<JournalFollower> open(const std::string& path, bool from_beginning = false);
  Result<std::vector<Event>> next(int timeout_ms);
  int fd() const { return m_inotify.get(); }

 private:
  Result<std::vector<Event>> read_new();
  std::string m_path;
  UniqueFd m_inotify;
  uint64_t m_inode = 0;
  int64_t m_offset = 0;
  std::string m_partial;
  bool m_rotated_first = false;
};

}  // namespace fcvm::vm
