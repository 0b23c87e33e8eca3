#include "fcvm/ttrpc/frame.hpp"

#include <fmt/format.h>

namespace fcvm::ttrpc {
namespace {

void put32(std::string& out, uint32_t v) {
  for (int shift = 24; shift >= 0; shift -= 8)
    out.push_back(static_cast<char>((v >> shift) & 0xff));
}

uint32_t get32(const std::string& in, size_t at) {
  uint32_t v = 0;
  for (size_t i = 0; i < 4; ++i) v = (v << 8) | static_cast<uint8_t>(in[at + i]);
  return v;
}

}  // namespace

Result<std::string> encode_frame(const Frame& frame) {
  if (frame.payload.size() > k_max_payload) {
    return fail(ErrorCode::kInvalidInput,
                fmt::format("ttrpc: a payload of {} bytes exceeds the limit of {}",
                            frame.payload.size(), k_max_payload));
  }
  std::string out;
  out.reserve(k_header_size + frame.payload.size());
  put32(out, static_cast<uint32_t>(frame.payload.size()));
  put32(out, frame.stream_id);
  out.push_back(static_cast<char>(frame.type));
  out.push_back(static_cast<char>(frame.flags));
  out += frame.payload;
  return out;
}

void FrameReader::feed(std::string_view bytes) {
  if (m_skip > 0) {
    auto dropped = std::min<uint64_t>(m_skip, bytes.size());
    m_skip -= dropped;
    bytes.remove_prefix(static_cast<size_t>(dropped));
  }
  m_buffer.append(bytes);
}

std::optional<Frame> FrameReader::next() {
  if (m_skip > 0 || m_buffer.size() < k_header_size) return std::nullopt;
  uint32_t length = get32(m_buffer, 0);
  Frame f;
  f.stream_id = get32(m_buffer, 4);
  f.type = static_cast<MessageType>(static_cast<uint8_t>(m_buffer[8]));
  f.flags = static_cast<uint8_t>(m_buffer[9]);
  if (length > k_max_payload) {
    // Report it now and drop its payload as it arrives.
    uint64_t have = m_buffer.size() - k_header_size;
    if (have >= length) {
      m_buffer.erase(0, k_header_size + length);
    } else {
      m_skip = length - have;
      m_buffer.clear();
    }
    f.oversized = true;
    return f;
  }
  if (m_buffer.size() < k_header_size + length) return std::nullopt;
  f.payload = m_buffer.substr(k_header_size, length);
  m_buffer.erase(0, k_header_size + length);
  return f;
}

}  // namespace fcvm::ttrpc
