#include "fcvm/readiness/gate_runner.hpp"

#include <fmt/format.h>

namespace fcvm::readiness {

GateRunner::GateRunner(std::optional<Gate> gate) : m_gate(std::move(gate)) {
  if (m_gate && m_gate->mode == Mode::kLog) {
    m_matcher = std::make_unique<LogMatcher>(m_gate->pattern);
  }
}

std::string GateRunner::mode_name() const {
  return m_gate ? std::string(m_gate->mode_name()) : std::string("container");
}

void GateRunner::pass() {
  if (m_verdict == Verdict::kPending) m_verdict = Verdict::kPassed;
}

void GateRunner::fail_with(Error e) {
  if (m_verdict != Verdict::kPending) return;
  m_verdict = Verdict::kFailed;
  m_failure = std::move(e);
}

void GateRunner::on_hello() {
  if (m_gate && m_gate->mode == Mode::kAgent) pass();
}

void GateRunner::on_container_running(Clock::time_point now) {
  if (m_running) return;
  m_running = true;
  if (!m_gate) {
    pass();
    return;
  }
  m_deadline = now + std::chrono::seconds(m_gate->timeout_s);
  m_next_probe = now;
}

void GateRunner::on_output(std::string_view bytes) {
  if (m_matcher && m_verdict == Verdict::kPending && m_matcher->feed(bytes)) pass();
}

void GateRunner::on_probe_exit(int code, Clock::time_point now) {
  m_probe_in_flight = false;
  if (code == 0) {
    pass();
  } else {
    m_next_probe = now + k_probe_interval;
  }
}

void GateRunner::on_container_exit(int code) {
  if (!m_gate || m_gate->mode == Mode::kAgent) {
    pass();  // it ran: a short-lived container may exit before it is reported running
    return;
  }
  fail_with(Error(ErrorCode::kSystem,
                  fmt::format("the container exited (code {}) before the readiness gate \"{}\" "
                              "passed",
                              code, m_gate->spec)));
}

std::optional<GateRunner::Probe> GateRunner::tick(Clock::time_point now) {
  if (!m_gate || m_verdict != Verdict::kPending || !m_running) return std::nullopt;
  if (m_deadline && now > *m_deadline) {
    fail_with(
        Error(ErrorCode::kTimeout, fmt::format("readiness gate \"{}\" did not pass within {} s",
                                               m_gate->spec, m_gate->timeout_s)));
    return std::nullopt;
  }
  if (m_gate->mode != Mode::kHttp && m_gate->mode != Mode::kExec) return std::nullopt;
  if (m_probe_in_flight || now < m_next_probe) return std::nullopt;
  m_probe_in_flight = true;
  return Probe{m_gate->probe_argv(), m_gate->runs_in_vm()};
}

}  // namespace fcvm::readiness
