#include "fcvm/util/signal_fd.hpp"

#include <sys/signalfd.h>
#include <unistd.h>

namespace fcvm {

SignalFd::SignalFd(std::initializer_list<int> signals) {
  sigset_t set;
  sigemptyset(&set);
  for (int s : signals) sigaddset(&set, s);
  ::pthread_sigmask(SIG_BLOCK, &set, &m_old);
  m_fd.reset(::signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK));
}

SignalFd::~SignalFd() { ::pthread_sigmask(SIG_SETMASK, &m_old, nullptr); }

std::optional<int> SignalFd::take() {
  signalfd_siginfo info{};
  // A signalfd read returns whole signalfd_siginfo records only.
  if (::read(m_fd.get(), &info, sizeof info) != sizeof info) return std::nullopt;
  return static_cast<int>(info.ssi_signo);
}

}  // namespace fcvm
