#pragma once
// The container's output as the monitor keeps it (the VM's container.log), in the CRI log format
// that Kubernetes and podman use:  <RFC3339Nano time> <stdout|stderr> <F|P> <text>\n
// F ends a line, P is a partial line continued by the next record of the same stream.
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace fcvm::vm {

enum class LogStream { kStdout, kStderr };

struct LogRecord {
  std::string time;  // RFC3339Nano, UTC
  LogStream stream = LogStream::kStdout;
  bool partial = false;
  std::string text;  // without the trailing newline
};

class ContainerLogWriter {
 public:
  explicit ContainerLogWriter(int fd) : m_fd(fd) {}  // borrowed
  // Appends output of one stream: every complete line becomes an F record.
  void write(LogStream stream, std::string_view bytes);
  // Writes what is pending without a newline as P records (at exit).
  void flush();

 private:
  void emit(LogStream stream, std::string_view text, bool partial);
  int m_fd;
  std::string m_pending[2];
};

std::optional<LogRecord> parse_log_line(std::string_view line);
std::string format_time_rfc3339nano(int64_t unix_ns);

}  // namespace fcvm::vm
