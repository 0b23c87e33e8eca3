#pragma once
// GateRunner: when a VM becomes ready, as a pure state machine (no I/O, no clock of its own), so
// that every rule is unit-tested without a VM. The monitor feeds it what happens and runs the
// probes it asks for:
//
//   on_hello()                   the agent answered          -> mode=agent passes
//   on_container_running(now)    the container runs          -> no gate passes; the gate's
//                                                               timeout starts
//   on_output(bytes)             main container output       -> mode=log may pass
//   tick(now)                    -> a probe to run now (http, exec), at most one in flight, the
//                                   first at once and then every k_probe_interval; or the gate
//                                   fails at its deadline
//   on_probe_exit(code, now)     the probe ended             -> exit 0 passes
//   on_container_exit(code)      the main container ended    -> without a gate (or with
//                                                               mode=agent) it counts as ready;
//                                                               otherwise a pending gate fails
// verdict() is kPending until it becomes kPassed or kFailed, and then never changes.
#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "fcvm/readiness/gate.hpp"
#include "fcvm/util/result.hpp"

namespace fcvm::readiness {

class GateRunner {
 public:
  using Clock = std::chrono::steady_clock;
  static constexpr std::chrono::milliseconds k_probe_interval{500};

  enum class Verdict { kPending, kPassed, kFailed };
  struct Probe {
    std::vector<std::string> argv;
    bool in_vm = false;
  };

  explicit GateRunner(std::optional<Gate> gate);

  void on_hello();
  void on_container_running(Clock::time_point now);
  void on_output(std::string_view bytes);
  void on_probe_exit(int code, Clock::time_point now);
  void on_container_exit(int code);
  std::optional<Probe> tick(Clock::time_point now);

  Verdict verdict() const { return m_verdict; }
  // Why it failed (kFailed only).
  const Error& failure() const { return m_failure; }
  const std::optional<Gate>& gate() const { return m_gate; }
  // "container" without a gate, else the gate's mode.
  std::string mode_name() const;
  bool probe_in_flight() const { return m_probe_in_flight; }

 private:
  void pass();
  void fail_with(Error e);

  std::optional<Gate> m_gate;
  std::unique_ptr<LogMatcher> m_matcher;
  Verdict m_verdict = Verdict::kPending;
  Error m_failure;
  bool m_running = false;
  std::optional<Clock::time_point> m_deadline;
  Clock::time_point m_next_probe{};
  bool m_probe_in_flight = false;
};

}  // namespace fcvm::readiness
