#include "fcvm/vm/logs.hpp"

#include <fcntl.h>
#include <fmt/format.h>
#include <unistd.h>

#include <chrono>
#include <deque>
#include <string_view>
#include <thread>

#include "fcvm/util/strings.hpp"
#include "fcvm/util/unique_fd.hpp"
#include "fcvm/vm/lifecycle.hpp"

namespace fcvm::vm {

Result<std::optional<size_t>> parse_tail(const std::string& text, const std::string& what) {
  if (text == "all") return std::optional<size_t>();
  auto n = parse_int(text, 0, 100000000);
  if (!n) {
    return fail(ErrorCode::kInvalidInput,
                fmt::format("invalid {} \"{}\": expected a number or \"all\"", what, text));
  }
  return std::optional<size_t>(static_cast<size_t>(*n));
}

namespace {

// Splits what is read into lines; a partial last line waits in `m_carry`.
class LineSplitter {
 public:
  // false: the consumer asked to stop.
  template <class F>
  bool feed(std::string_view chunk, F&& each) {
    m_carry.append(chunk);
    size_t start = 0;
    bool go_on = true;
    for (;;) {
      auto nl = m_carry.find('\n', start);
      if (nl == std::string::npos) break;
      go_on = each(m_carry.substr(start, nl - start));
      start = nl + 1;
      if (!go_on) break;
    }
    m_carry.erase(0, start);
    return go_on;
  }

 private:
  std::string m_carry;
};

}  // namespace

Result<> read_logs(state::VmStore& store, const state::VmRecord& rec, const LogQuery& query,
                   const std::function<bool(const std::string&)>& line,
                   const std::function<bool()>& idle) {
  auto path = rec.dir + (query.console ? "/console.log" : "/container.log");
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  LineSplitter split;
  char buf[65536];
  // 1. What is there now (only the last N lines with a tail).
  if (fd) {
    std::deque<std::string> last;
    auto keep = [&](std::string l) {
      if (!query.tail) return line(l);
      last.push_back(std::move(l));
      if (last.size() > *query.tail) last.pop_front();
      return true;
    };
    for (;;) {
      ssize_t n = ::read(fd.get(), buf, sizeof buf);
      if (n <= 0) break;
      if (!split.feed(std::string_view(buf, static_cast<size_t>(n)), keep)) return {};
    }
    for (const auto& l : last) {
      if (!line(l)) return {};
    }
  }
  // 2. With follow, what comes while the VM runs.
  while (query.follow) {
    if (!fd) fd.reset(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    ssize_t n = fd ? ::read(fd.get(), buf, sizeof buf) : 0;
    if (n > 0) {
      if (!split.feed(std::string_view(buf, static_cast<size_t>(n)), line)) return {};
      continue;
    }
    auto current = store.get(rec.id);
    if (!current || !*current || !is_active(**current) || !(**current).monitor.alive()) {
      // One last read: the monitor flushes before it ends.
      while (fd && (n = ::read(fd.get(), buf, sizeof buf)) > 0) {
        if (!split.feed(std::string_view(buf, static_cast<size_t>(n)), line)) return {};
      }
      break;
    }
    if (idle && !idle()) return {};
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  return {};
}

}  // namespace fcvm::vm
