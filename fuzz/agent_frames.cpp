// The agent protocol as either side reads it: the host's frame decoder fed in pieces of the
// sizes the input chooses, every control payload through every message decoder the host (hello,
// exit, event, error, log, exec_error) and the guest (plan, exec, resize, signal) use. A message
// that decodes must encode and decode again.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "fcvm/agent_proto/frame.hpp"
#include "fcvm/agent_proto/messages.hpp"

namespace proto = fcvm::agent_proto;

namespace {

void require(bool ok) {
  if (!ok) std::abort();  // a property broke: the fuzzer reports the input
}

// m, encoded by `encode`, parses and decodes again.
template <class T, class Encode, class Decode>
void round_trip(const T& m, Encode encode, Decode decode) {
  auto j = proto::parse_control(encode(m));
  require(j && decode(*j).has_value());
}

void decode_control(const std::string& payload) {
  auto j = proto::parse_control(payload);
  if (!j) return;
  if (auto m = proto::hello_from_json(*j))
    round_trip(*m, proto::encode_hello, proto::hello_from_json);
  if (auto m = proto::exit_from_json(*j)) round_trip(*m, proto::encode_exit, proto::exit_from_json);
  if (auto m = proto::event_from_json(*j))
    round_trip(*m, proto::encode_event, proto::event_from_json);
  if (auto m = proto::error_from_json(*j))
    round_trip(*m, proto::encode_error, proto::error_from_json);
  if (auto m = proto::log_from_json(*j)) round_trip(*m, proto::encode_log, proto::log_from_json);
  if (auto m = proto::exec_error_from_json(*j)) {
    round_trip(*m, proto::encode_exec_error, proto::exec_error_from_json);
  }
  // The plan is the "plan" member of its message (and the MMDS document's).
  if (auto it = j->find("plan"); it != j->end()) {
    if (auto m = proto::plan_from_json(*it))
      require(proto::plan_from_json(proto::to_json(*m)).has_value());
  }
  if (auto m = proto::exec_from_json(*j)) round_trip(*m, proto::encode_exec, proto::exec_from_json);
  if (auto m = proto::resize_from_json(*j))
    round_trip(*m, proto::encode_resize, proto::resize_from_json);
  if (auto m = proto::signal_from_json(*j))
    round_trip(*m, proto::encode_signal, proto::signal_from_json);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  // The first byte chooses the size of the pieces the stream arrives in (1-256 bytes).
  size_t piece = in.empty() ? 1 : static_cast<size_t>(static_cast<uint8_t>(in[0])) + 1;
  if (!in.empty()) in.remove_prefix(1);
  proto::Decoder decoder;
  for (size_t off = 0; off < in.size(); off += piece) {
    decoder.feed(in.substr(off, piece));
    for (;;) {
      auto frame = decoder.next();
      if (!frame) return 0;  // a malformed stream ends the connection
      if (!*frame) break;
      const auto& f = **frame;
      if (f.kind == proto::Kind::kControl) decode_control(f.payload);
      // What decodes encodes to a frame that decodes to the same frame.
      proto::Decoder again;
      again.feed(proto::encode(f));
      auto back = again.next();
      require(back && *back && (*back)->kind == f.kind && (*back)->stream == f.stream &&
              (*back)->payload == f.payload);
    }
  }
  return 0;
}
