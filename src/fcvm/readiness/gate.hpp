#pragma once
// Readiness gates: when a VM counts as ready (`--wait-ready SPEC`). SPEC is a comma-separated
// list of key=value pairs:
//   mode=agent                       the guest agent is up (also spelled mode=vsock)
//   mode=http,url=URL[,status=N]     an HTTP GET of URL from inside the guest answers N (200)
//   mode=log,pattern=REGEX           a line of the container's output matches REGEX
//   mode=exec,cmd=CMD                `sh -c CMD` in the container exits 0
// and timeout=SECS (default 60) for any mode. Probes repeat every interval until the timeout.
#include <chrono>
#include <optional>
#include <regex>
#include <string>
#include <string_view>
#include <vector>

#include "fcvm/util/result.hpp"

namespace fcvm::readiness {

enum class Mode { kAgent, kHttp, kLog, kExec };

struct HttpTarget {
  std::string host;
  int port = 80;
  std::string path = "/";
};

struct Gate {
  Mode mode = Mode::kAgent;
  std::string spec;  // as given, for messages
  HttpTarget http{};
  int status = 200;
  std::string pattern{};
  std::string cmd{};
  int timeout_s = 60;

  std::string_view mode_name() const;
  // The guest-side probe for http and exec gates: argv to run (in the guest OS for http, in the
  // container for exec); exit code 0 means ready.
  std::vector<std::string> probe_argv() const;
  bool runs_in_vm() const { return mode == Mode::kHttp; }
};

// kInvalidInput naming the bad part.
Result<Gate> parse_gate(std::string_view spec);
Result<HttpTarget> parse_http_url(std::string_view url);

// Matches container output line by line for a log gate (output arrives in arbitrary chunks).
class LogMatcher {
 public:
  explicit LogMatcher(const std::string& pattern) : m_re(pattern) {}
  // True once a complete or partial line seen so far matches.
  bool feed(std::string_view bytes);

 private:
  std::regex m_re;
  std::string m_line;
};

// Probe pacing: first probe at once, then every `interval`, never past the deadline.
struct ProbeSchedule {
  std::chrono::steady_clock::time_point deadline;
  std::chrono::milliseconds interval{500};
  std::chrono::steady_clock::time_point next{};
};

}  // namespace fcvm::readiness
