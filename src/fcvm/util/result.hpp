#pragma once
// Errors are values: every fallible function returns Result<T>. An Error carries a short code, a
// message that reads like a stack of intentions ("run web1: start qemu: ...") and the errno that
// caused it, if any. Context is added once per layer with Error::wrap / with_context().
#include <string>
#include <string_view>
#include <tl/expected.hpp>
#include <utility>

namespace fcvm {

enum class ErrorCode {
  kInternal,      // a bug or an unexpected state of the machine
  kInvalidInput,  // the user gave a bad value: exit code 2
  kNotFound,      // a named thing does not exist
  kAlreadyExists,
  kUnavailable,  // a prerequisite (binary, device, privilege) is missing
  kTimeout,
  kSystem,     // a system call or helper failed; see errno / message
  kProtocol,   // a peer spoke something we do not understand
  kCancelled,  // the user interrupted the operation
  kConflict,   // the thing is in use, or its state forbids the operation
};

class Error {
 public:
  Error() = default;
  Error(ErrorCode code, std::string message, int sys_errno = 0)
      : m_code(code), m_message(std::move(message)), m_errno(sys_errno) {}

  ErrorCode code() const { return m_code; }
  const std::string& message() const { return m_message; }
  int sys_errno() const { return m_errno; }

  // "context: message" — keeps code and errno.
  Error wrap(std::string_view context) const&;
  Error wrap(std::string_view context) &&;

  // Message with the errno text appended when one is set.
  std::string to_string() const;

 private:
  ErrorCode m_code = ErrorCode::kInternal;
  std::string m_message;
  int m_errno = 0;
};

template <typename T = void>
using Result = tl::expected<T, Error>;

inline tl::unexpected<Error> fail(ErrorCode code, std::string message, int sys_errno = 0) {
  return tl::unexpected<Error>(Error(code, std::move(message), sys_errno));
}
inline tl::unexpected<Error> fail(Error error) { return tl::unexpected<Error>(std::move(error)); }

// An error for a failed system call: keeps errno and names the call and its object.
tl::unexpected<Error> fail_errno(std::string message, int sys_errno);
tl::unexpected<Error> fail_errno(std::string message);  // reads errno

// Adds context to the error of a Result, leaves a value untouched.
template <typename T>
Result<T> with_context(Result<T> r, std::string_view context) {
  if (!r) return tl::unexpected<Error>(std::move(r.error()).wrap(context));
  return r;
}

}  // namespace fcvm

// Propagates an error from an expression that yields a Result, optionally with context.
#define FCVM_TRY(expr)                                                                        \
  do {                                                                                        \
    auto fcvm_try_r_ = (expr);                                                                \
    if (!fcvm_try_r_) return ::tl::unexpected<::fcvm::Error>(std::move(fcvm_try_r_.error())); \
  } while (0)
#define FCVM_TRY_CTX(expr, ctx)                                                         \
  do {                                                                                  \
    auto fcvm_try_r_ = (expr);                                                          \
    if (!fcvm_try_r_)                                                                   \
      return ::tl::unexpected<::fcvm::Error>(std::move(fcvm_try_r_.error()).wrap(ctx)); \
  } while (0)

// Declares or assigns `lhs` from an expression that yields a Result, propagating its error:
//   FCVM_TRY_ASSIGN(auto fd, open_socket(path));
//   FCVM_TRY_ASSIGN(options.name, parse_name(text));
#define FCVM_TRY_CONCAT_INNER_(a, b) a##b
#define FCVM_TRY_CONCAT_(a, b) FCVM_TRY_CONCAT_INNER_(a, b)
#define FCVM_TRY_ASSIGN(lhs, expr) \
  FCVM_TRY_ASSIGN_IMPL_(FCVM_TRY_CONCAT_(fcvm_try_v_, __LINE__), lhs, expr)
#define FCVM_TRY_ASSIGN_IMPL_(tmp, lhs, expr)                               \
  auto tmp = (expr);                                                        \
  if (!tmp) return ::tl::unexpected<::fcvm::Error>(std::move(tmp.error())); \
  lhs = std::move(*tmp)
