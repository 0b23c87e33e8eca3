#include "fcvm/util/result.hpp"

#include <fmt/format.h>

#include <cerrno>
#include <cstring>

namespace fcvm {

Error Error::wrap(std::string_view context) const& {
  return Error(m_code, fmt::format("{}: {}", context, m_message), m_errno);
}

Error Error::wrap(std::string_view context) && {
  m_message = fmt::format("{}: {}", context, m_message);
  return std::move(*this);
}

std::string Error::to_string() const {
  if (m_errno == 0) return m_message;
  return fmt::format("{}: {}", m_message, std::strerror(m_errno));
}

tl::unexpected<Error> fail_errno(std::string message, int sys_errno) {
  return tl::unexpected<Error>(Error(ErrorCode::kSystem, std::move(message), sys_errno));
}

tl::unexpected<Error> fail_errno(std::string message) {
  return fail_errno(std::move(message), errno);
}

}  // namespace fcvm
