#include "fcvm/vm/container_log.hpp"

#include <fmt/format.h>
#include <time.h>

#include <chrono>

#include "fcvm/util/unix_socket.hpp"

namespace fcvm::vm {

std::string format_time_rfc3339nano(int64_t unix_ns) {
  time_t secs = static_cast<time_t>(unix_ns / 1000000000);
  tm t{};
  gmtime_r(&secs, &t);
  return fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:09}Z", t.tm_year + 1900, t.tm_mon + 1,
                     t.tm_mday, t.tm_hour, t.tm_min, t.tm_sec, unix_ns % 1000000000);
}

void ContainerLogWriter::emit(LogStream stream, std::string_view text, bool partial) {
  if (m_fd < 0) return;
  auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(
                std::chrono::system_clock::now().time_since_epoch())
                .count();
  auto line =
      fmt::format("{} {} {} {}\n", format_time_rfc3339nano(ns),
                  stream == LogStream::kStdout ? "stdout" : "stderr", partial ? 'P' : 'F', text);
  (void)write_all(m_fd, line);
}

void ContainerLogWriter::write(LogStream stream, std::string_view bytes) {
  auto& pending = m_pending[static_cast<int>(stream)];
  pending.append(bytes);
  size_t start = 0;
  for (;;) {
    auto nl = pending.find('\n', start);
    if (nl == std::string::npos) break;
    emit(stream, std::string_view(pending).substr(start, nl - start), false);
    start = nl + 1;
  }
  pending.erase(0, start);
  // A very long line without a newline is written in pieces.
  if (pending.size() >= 16384) {
    emit(stream, pending, true);
    pending.clear();
  }
}

void ContainerLogWriter::flush() {
  for (int s = 0; s < 2; ++s) {
    if (!m_pending[s].empty()) emit(static_cast<LogStream>(s), m_pending[s], true);
    m_pending[s].clear();
  }
}

std::optional<LogRecord> parse_log_line(std::string_view line) {
  auto sp1 = line.find(' ');
  if (sp1 == std::string_view::npos) return std::nullopt;
  auto sp2 = line.find(' ', sp1 + 1);
  if (sp2 == std::string_view::npos || sp2 + 2 > line.size()) return std::nullopt;
  LogRecord r;
  r.time = std::string(line.substr(0, sp1));
  auto stream = line.substr(sp1 + 1, sp2 - sp1 - 1);
  if (stream == "stdout") {
    r.stream = LogStream::kStdout;
  } else if (stream == "stderr") {
    r.stream = LogStream::kStderr;
  } else {
    return std::nullopt;
  }
  char tag = line[sp2 + 1];
  if (tag != 'F' && tag != 'P') return std::nullopt;
  r.partial = tag == 'P';
  r.text = sp2 + 3 <= line.size() ? std::string(line.substr(sp2 + 3)) : std::string();
  return r;
}

}  // namespace fcvm::vm
