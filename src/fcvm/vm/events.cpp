#include "fcvm/vm/events.hpp"

#include <fcntl.h>
#include <fmt/format.h>
#include <poll.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <chrono>
#include <cstring>
#include <ctime>
#include <utility>

#include "fcvm/util/log.hpp"
#include "fcvm/util/strings.hpp"
#include "fcvm/util/unix_socket.hpp"

namespace fcvm::vm {
namespace {

constexpr std::array<std::pair<EventType, std::string_view>, 18> k_names = {{
    {EventType::kCreated, "created"},
    {EventType::kStarting, "starting"},
    {EventType::kRunning, "running"},
    {EventType::kReady, "ready"},
    {EventType::kExecStarted, "exec_started"},
    {EventType::kExecExited, "exec_exited"},
    {EventType::kStopping, "stopping"},
    {EventType::kExited, "exited"},
    {EventType::kRemoved, "removed"},
    {EventType::kSnapshotCreated, "snapshot_created"},
    {EventType::kCloneStarted, "clone_started"},
    {EventType::kSignalled, "signalled"},
    {EventType::kRenamed, "renamed"},
    {EventType::kPaused, "paused"},
    {EventType::kUnpaused, "unpaused"},
    {EventType::kRestarting, "restarting"},
    {EventType::kExpired, "expired"},
    {EventType::kBooted, "booted"},
}};

int64_t wall_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// Parses the complete lines of `text` (a trailing partial line is left in `rest`).
std::vector<Event> parse_lines(std::string_view text, int64_t since_ns, std::string* rest) {
  std::vector<Event> out;
  size_t start = 0;
  for (;;) {
    auto nl = text.find('\n', start);
    if (nl == std::string_view::npos) break;
    auto line = text.substr(start, nl - start);
    start = nl + 1;
    // Not an event (blank, torn by a crash): skipped without the JSON parser, whose error path
    // is costly (a journal of junk lines is read in linear time either way).
    if (line.empty() || line.front() != '{') continue;
    auto j = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (j.is_discarded()) continue;
    auto e = event_from_json(j);
    if (e && e->time_ns >= since_ns) out.push_back(std::move(*e));
  }
  if (rest) *rest = std::string(text.substr(start));
  return out;
}

Result<std::string> read_all_if_exists(const std::string& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) {
    if (errno == ENOENT) return std::string();
    return fail_errno(fmt::format("open {}", path));
  }
  std::string out;
  char buf[65536];
  for (;;) {
    ssize_t n = ::read(fd.get(), buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return fail_errno(fmt::format("read {}", path));
    if (n == 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  return out;
}

}  // namespace

std::string_view event_type_name(EventType type) {
  for (const auto& [t, name] : k_names) {
    if (t == type) return name;
  }
  return "unknown";
}

std::optional<EventType> event_type_from_name(std::string_view name) {
  for (const auto& [t, n] : k_names) {
    if (n == name) return t;
  }
  return std::nullopt;
}

Event make_event(EventType type, std::string vm_id, std::string vm_name, std::string detail,
                 std::optional<int> exit_code) {
  return Event{wall_ns(), type, std::move(vm_id), std::move(vm_name), exit_code, std::move(detail)};
}

nlohmann::json to_json(const Event& e) {
  nlohmann::json j = {{"time_ns", e.time_ns},
                      {"event", std::string(event_type_name(e.type))},
                      {"vm_id", e.vm_id},
                      {"vm_name", e.vm_name}};
  if (e.exit_code) j["exit_code"] = *e.exit_code;
  if (!e.detail.empty()) j["detail"] = e.detail;
  return j;
}

Result<Event> event_from_json(const nlohmann::json& j) {
  auto bad = [](std::string_view what) {
    return fail(ErrorCode::kProtocol, fmt::format("event: {}", what));
  };
  if (!j.is_object()) return bad("not an object");
  auto str = [&](const char* key) -> std::optional<std::string> {
    auto it = j.find(key);
    if (it == j.end() || !it->is_string()) return std::nullopt;
    return it->get<std::string>();
  };
  auto name = str("event");
  if (!name) return bad("no \"event\"");
  auto type = event_type_from_name(*name);
  if (!type) return bad(fmt::format("unknown event \"{}\"", *name));
  auto time = j.find("time_ns");
  if (time == j.end() || !time->is_number_integer()) return bad("no \"time_ns\"");
  Event e;
  e.type = *type;
  e.time_ns = time->get<int64_t>();
  e.vm_id = str("vm_id").value_or("");
  e.vm_name = str("vm_name").value_or("");
  e.detail = str("detail").value_or("");
  if (auto code = j.find("exit_code"); code != j.end()) {
    if (!code->is_number_integer()) return bad("\"exit_code\" is not an integer");
    e.exit_code = code->get<int>();
  }
  return e;
}

std::string journal_path(const std::string& data_dir) { return data_dir + "/events.log"; }

void journal_append(const std::string& path, const Event& e) {
  auto line = to_json(e).dump() + "\n";
  UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600));
  if (!fd) {
    FCVM_LOG(kWarn, "events", "open {}: {}", path, std::strerror(errno));
    return;
  }
  struct stat st {};
  if (::fstat(fd.get(), &st) == 0 && st.st_size >= k_journal_max_bytes) {
    // Rotation: whoever sees the file full first moves it aside; a writer that still holds the
    // old file appends its line there, where readers of the rotated file find it.
    (void)::rename(path.c_str(), (path + ".1").c_str());
    fd.reset(::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600));
    if (!fd) return;
  }
  // One write of one line: O_APPEND places it whole at the end, whoever else appends.
  if (auto r = write_all(fd.get(), line); !r) {
    FCVM_LOG(kWarn, "events", "append to {}: {}", path, r.error().to_string());
  }
}

Result<std::vector<Event>> journal_read(const std::string& path, int64_t since_ns) {
  std::vector<Event> out;
  for (const auto& p : {path + ".1", path}) {
    auto text = read_all_if_exists(p);
    if (!text) return tl::unexpected<Error>(text.error());
    auto events = parse_lines(*text, since_ns, nullptr);
    out.insert(out.end(), std::make_move_iterator(events.begin()),
               std::make_move_iterator(events.end()));
  }
  return out;
}

Result<JournalFollower> JournalFollower::open(const std::string& path, bool from_beginning) {
  JournalFollower f;
  f.m_path = path;
  f.m_inotify.reset(::inotify_init1(IN_CLOEXEC | IN_NONBLOCK));
  if (!f.m_inotify) return fail_errno("inotify_init1");
  auto slash = path.rfind('/');
  auto dir = slash == std::string::npos ? std::string(".") : path.substr(0, slash);
  // The directory, not the file: the journal may not exist yet, and rotation replaces it.
  if (::inotify_add_watch(f.m_inotify.get(), dir.c_str(),
                          IN_MODIFY | IN_CREATE | IN_MOVED_TO | IN_MOVED_FROM) < 0) {
    return fail_errno(fmt::format("watch {}", dir));
  }
  struct stat st {};
  if (::stat(path.c_str(), &st) == 0) {
    f.m_inode = st.st_ino;
    f.m_offset = from_beginning ? 0 : st.st_size;
  }
  f.m_rotated_first = from_beginning;
  return f;
}

Result<std::vector<Event>> JournalFollower::read_new() {
  std::vector<Event> out;
  if (m_rotated_first) {
    m_rotated_first = false;
    FCVM_TRY_ASSIGN(auto old, read_all_if_exists(m_path + ".1"));
    out = parse_lines(old, 0, nullptr);
  }
  struct stat st {};
  if (::stat(m_path.c_str(), &st) != 0) return out;
  if (m_inode != 0 && st.st_ino != m_inode) {
    // Rotated: the rest of the old file is now events.log.1.
    UniqueFd old(::open((m_path + ".1").c_str(), O_RDONLY | O_CLOEXEC));
    struct stat ost {};
    if (old && ::fstat(old.get(), &ost) == 0 && ost.st_ino == m_inode && ost.st_size > m_offset) {
      std::string tail(static_cast<size_t>(ost.st_size - m_offset), '\0');
      ssize_t n = ::pread(old.get(), tail.data(), tail.size(), m_offset);
      if (n > 0) {
        tail.resize(static_cast<size_t>(n));
        auto events = parse_lines(m_partial + tail, 0, nullptr);
        out.insert(out.end(), events.begin(), events.end());
      }
    }
    m_partial.clear();
    m_offset = 0;
  }
  m_inode = st.st_ino;
  if (st.st_size <= m_offset) return out;
  UniqueFd fd(::open(m_path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) return out;
  std::string chunk(static_cast<size_t>(st.st_size - m_offset), '\0');
  ssize_t n = ::pread(fd.get(), chunk.data(), chunk.size(), m_offset);
  if (n <= 0) return out;
  chunk.resize(static_cast<size_t>(n));
  m_offset += n;
  auto events = parse_lines(m_partial + chunk, 0, &m_partial);
  out.insert(out.end(), events.begin(), events.end());
  return out;
}

Result<std::vector<Event>> JournalFollower::next(int timeout_ms) {
  auto now = read_new();
  if (!now || !now->empty()) return now;
  pollfd p{m_inotify.get(), POLLIN, 0};
  int r = ::poll(&p, 1, timeout_ms);
  if (r < 0 && errno != EINTR) return fail_errno("poll inotify");
  char buf[4096];
  while (::read(m_inotify.get(), buf, sizeof buf) > 0) {
  }
  return read_new();
}

bool EventFilter::match(const Event& e) const {
  bool vm_ok = vms.empty();
  for (const auto& v : vms) {
    vm_ok = vm_ok || e.vm_name == v || (v.size() >= 3 && e.vm_id.rfind(v, 0) == 0);
  }
  bool type_ok = types.empty();
  for (auto t : types) type_ok = type_ok || e.type == t;
  return vm_ok && type_ok;
}

int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

Result<int64_t> parse_event_time(const std::string& flag, const std::string& text) {
  auto bad = [&] {
    return fail(ErrorCode::kInvalidInput,
                fmt::format("invalid {} \"{}\": expected an RFC 3339 time "
                            "(2026-12-03T10:00:00Z), unix seconds, or a duration ago (10m, 2h)",
                            flag, text));
  };
  if (text.empty()) return bad();
  if (auto secs = parse_int(text, 0, INT64_MAX / 1'000'000'000)) return *secs * 1'000'000'000;
  char unit = text.back();
  int64_t scale = unit == 's' ? 1 : unit == 'm' ? 60 : unit == 'h' ? 3600 : unit == 'd' ? 86400 : 0;
  if (scale != 0) {
    if (auto n = parse_int(text.substr(0, text.size() - 1), 0, 100LL * 365 * 86400)) {
      return now_ns() - *n * scale * 1'000'000'000;
    }
  }
  tm t{};
  const char* end = ::strptime(text.c_str(), "%Y-%m-%dT%H:%M:%S", &t);
  if (end == nullptr) {
    t = {};
    end = ::strptime(text.c_str(), "%Y-%m-%dT%H:%M", &t);
  }
  if (end == nullptr || (std::string_view(end) != "Z" && std::string_view(end) != "")) {
    return bad();
  }
  return static_cast<int64_t>(::timegm(&t)) * 1'000'000'000;
}

Result<EventFilter> parse_event_filters(const std::vector<std::string>& specs,
                                        const std::string& what) {
  EventFilter f;
  for (const auto& spec : specs) {
    auto eq = spec.find('=');
    auto key = spec.substr(0, eq);
    auto value = eq == std::string::npos ? std::string() : spec.substr(eq + 1);
    if (eq == std::string::npos || value.empty() || (key != "vm" && key != "event")) {
      return fail(ErrorCode::kInvalidInput,
                  fmt::format("invalid {} \"{}\": expected vm=NAME or event=TYPE", what, spec));
    }
    if (key == "vm") {
      f.vms.push_back(value);
      continue;
    }
    auto type = event_type_from_name(value);
    if (!type) {
      return fail(ErrorCode::kInvalidInput,
                  fmt::format("invalid {} \"{}\": unknown event \"{}\" (created, starting, "
                              "running, ready, exec_started, exec_exited, stopping, exited, "
                              "removed, snapshot_created, clone_started, signalled, renamed, "
                              "paused, unpaused, restarting, expired)",
                              what, spec, value));
    }
    f.types.push_back(*type);
  }
  return f;
}

std::string rfc3339(int64_t ns) {
  time_t secs = static_cast<time_t>(ns / 1'000'000'000);
  tm t{};
  gmtime_r(&secs, &t);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &t);
  return fmt::format("{}.{:09d}Z", buf, ns % 1'000'000'000);
}

}  // namespace fcvm::vm
