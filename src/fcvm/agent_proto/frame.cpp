#include "fcvm/agent_proto/frame.hpp"

#include <fmt/format.h>

#include "fcvm/util/unix_socket.hpp"

namespace fcvm::agent_proto {
namespace {
void put_u32(std::string& out, uint32_t v) {
  out.push_back(static_cast<char>((v >> 24) & 0xff));
  out.push_back(static_cast<char>((v >> 16) & 0xff));
  out.push_back(static_cast<char>((v >> 8) & 0xff));
  out.push_back(static_cast<char>(v & 0xff));
}
uint32_t get_u32(const char* p) {
  auto b = [p](int i) { return static_cast<uint32_t>(static_cast<unsigned char>(p[i])); };
  return (b(0) << 24) | (b(1) << 16) | (b(2) << 8) | b(3);
}
bool valid_kind(uint8_t k) { return k >= 1 && k <= 5; }
}  // namespace

std::string encode(Kind kind, uint32_t stream, std::string_view payload) {
  std::string out;
  out.reserve(k_header_size + payload.size());
  put_u32(out, static_cast<uint32_t>(5 + payload.size()));
  out.push_back(static_cast<char>(kind));
  put_u32(out, stream);
  out.append(payload);
  return out;
}

Result<std::optional<Frame>> Decoder::next() {
  size_t avail = m_buffer.size() - m_offset;
  if (avail < 4) return std::optional<Frame>{};
  const char* p = m_buffer.data() + m_offset;
  uint32_t length = get_u32(p);
  if (length < 5 || length - 5 > k_max_payload) {
    return fail(ErrorCode::kProtocol, fmt::format("bad frame length {}", length));
  }
  if (avail < 4 + static_cast<size_t>(length)) return std::optional<Frame>{};
  auto kind = static_cast<uint8_t>(p[4]);
  if (!valid_kind(kind)) return fail(ErrorCode::kProtocol, fmt::format("bad frame kind {}", kind));
  Frame f;
  f.kind = static_cast<Kind>(kind);
  f.stream = get_u32(p + 5);
  f.payload.assign(p + k_header_size, length - 5);
  m_offset += 4 + length;
  if (m_offset > 65536 && m_offset * 2 > m_buffer.size()) {
    m_buffer.erase(0, m_offset);
    m_offset = 0;
  }
  return std::optional<Frame>(std::move(f));
}

Result<> write_frame(int fd, Kind kind, uint32_t stream, std::string_view payload) {
  if (payload.size() > k_max_payload) {
    return fail(ErrorCode::kInternal, fmt::format("frame payload too large: {}", payload.size()));
  }
  return write_all(fd, encode(kind, stream, payload));
}

Result<Frame> read_frame(int fd) {
  char header[k_header_size];
  FCVM_TRY(read_exact(fd, header, sizeof header));
  uint32_t length = get_u32(header);
  if (length < 5 || length - 5 > k_max_payload) {
    return fail(ErrorCode::kProtocol, fmt::format("bad frame length {}", length));
  }
  auto kind = static_cast<uint8_t>(header[4]);
  if (!valid_kind(kind)) return fail(ErrorCode::kProtocol, fmt::format("bad frame kind {}", kind));
  Frame f;
  f.kind = static_cast<Kind>(kind);
  f.stream = get_u32(header + 5);
  f.payload.resize(length - 5);
  if (!f.payload.empty()) FCVM_TRY(read_exact(fd, f.payload.data(), f.payload.size()));
  return f;
}

}  // namespace fcvm::agent_proto
